"""Everyday English sentences for the synthetic corpus: templates over a few hundred words, deterministic per rng.

The vocabulary leans on what a lip model must learn: bilabials (b, p, m), labiodentals (f, v), rounded vowels
(oo, o, w) and open vowels (a, ah, ow, eye), so every few words the mouth has to seal, bite or round.
"""

from __future__ import annotations

import numpy as np

NAMES = (
    "Bob Pam Mike Molly Phil Vivian Ben Paula Max Fiona Bill Mary Tom Amy Paul Victor Maya Bruno Pablo Mavis "
    "Frank Vera Moe Pete Bonnie Martha Fred Bobby Marvin Penny Abby Boris Mabel Felix Wendy Howard Rosa Owen"
).split()
FAMILY = "mom dad brother sister boss boyfriend buddy neighbour father mother baby cousin partner".split()
NOUNS = (
    "book map boat bike box bag cup phone van bus movie piano umbrella apple pie pumpkin balloon poster "
    "painting picture puppy bottle blanket bucket pillow mirror window laptop wallet envelope football "
    "fridge oven violin camera photo mop broom pan spoon moon rope room roof pool shop mall bench lamp jar "
    "cab garden fence bath basket backpack table ticket parcel jacket coat boot blouse"
).split()
PLURALS = "books maps boats bikes boxes bags cups movies apples pies balloons posters photos spoons tickets".split()
FOODS = "bread butter pasta pizza muffins popcorn mangoes plums beans coffee milk soup waffles berries fish".split()
ADJS = (
    "big blue brown purple pink bumpy funny fancy famous beautiful perfect pretty massive broken empty "
    "awful lovely old new tiny huge cheap posh frozen hot heavy soft wobbly messy shiny proper"
).split()
OPINIONS = (
    "amazing|awful|brilliant|pretty bad|marvellous|boring|fabulous|wonderful|a bit much|a mess|perfect|"
    "too expensive|hilarious|impossible|fine with me"
).split("|")
PLACES = (
    "at the beach|by the pool|in the park|at the mall|on the boat|in the backyard|at the pub|in my room|"
    "on the bus|at the office|at the museum|by the bakery|in the van|up the mountain|over the bridge|"
    "at the fair|on the farm|at my mom's place"
).split("|")
TIMES = (
    "on Monday|this morning|last February|every Friday|before bed|after lunch|by five|over the summer|"
    "tomorrow|most evenings|about a month ago|at midnight|all afternoon|by November"
).split("|")
DEADLINES = "Monday|lunch|the weekend|dinner|five o'clock|the party|Friday|the movie|we move|my mom visits".split("|")
VERBS = (
    "buy:bought|make:made|move:moved|find:found|borrow:borrowed|paint:painted|fix:fixed|bring:brought|"
    "visit:visited|open:opened|push:pushed|pull:pulled|wash:washed|pack:packed|bake:baked|watch:watched|"
    "miss:missed|forget:forgot|keep:kept|sell:sold|love:loved|plan:planned|book:booked|drop:dropped|"
    "fold:folded|follow:followed|prove:proved|map:mapped|mop:mopped|pick up:picked up|fetch:fetched|"
    "throw away:threw away|park:parked|polish:polished|babysit:babysat|bump into:bumped into"
).split("|")
ACTIVITIES = (
    "go bowling|watch a movie|play football|bake a pie|ride bikes|go for a walk|visit my mom|book a trip|"
    "buy a boat|move the piano|paint the fence|fix the van|play the violin|have a picnic|go to the pool"
).split("|")
STARTERS = "Well,|Oh,|Yes,|No,|Maybe,|Honestly,|By the way,|Look,|You know,|Oh boy,|Hmm,|Wow,|But".split("|")
NUMBERS = "two three four five seven nine twelve fifty a few some many".split()

TEMPLATES = (
    "{name} {past} the {adj} {noun} {place}.",
    "Did you {verb} the {noun} {time}?",
    "I think we should {verb} some {food} before {time2}.",
    "My {family} {past} a {adj} {noun} {place}.",
    "Why would {name} {verb} a {noun}?",
    "Maybe we could {activity} {time}.",
    "Oh, that movie was {opinion}!",
    "Remember when {name} {past} the {noun} {place}?",
    "I'm not sure, but {name} {past} it {time}.",
    "The {noun} was {opinion}, honestly.",
    "We {past} {number} {plural} {place}.",
    "Could you pass me the {adj} {noun}, please?",
    "People pay a lot of money for {food} {place}.",
    "{name} and {name2} want to {activity} {time}.",
    "My {family} bought a {adj} {noun} for my birthday.",
    "Please bring the {noun} back by Friday.",
    "Have you ever been {place} {time}?",
    "That's why I moved the {noun} from the {noun2}.",
    "I'd love to {activity}, but my {family} needs the {noun}.",
    "Maybe the {noun} is in the {noun2}.",
    "Five bucks for a {adj} {noun}? That's {opinion}.",
    "We might {activity} if the weather is fine.",
    "Which {noun} do you mean, the {adj} one?",
    "Oh my, {name} {past} my {noun} again!",
)

BACKCHANNELS = (
    "Umm hmm.", "Yeah.", "Right.", "Oh really?", "Okay.", "I see.", "Wow.", "Sure.", "Hmm.", "Uh-huh.",
    "Oh, nice.", "Mmm, maybe.", "Oh boy.", "No way!",
)  # fmt: skip


def _pick(rng: np.random.Generator, words: tuple[str, ...] | list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def sentence(rng: np.random.Generator) -> str:
    """One sentence from a random template with its slots filled."""
    base, past = _pick(rng, VERBS).split(":")
    slots = {
        "name": _pick(rng, NAMES),
        "name2": _pick(rng, NAMES),
        "family": _pick(rng, FAMILY),
        "noun": _pick(rng, NOUNS),
        "noun2": _pick(rng, NOUNS),
        "plural": _pick(rng, PLURALS),
        "food": _pick(rng, FOODS),
        "adj": _pick(rng, ADJS),
        "opinion": _pick(rng, OPINIONS),
        "place": _pick(rng, PLACES),
        "time": _pick(rng, TIMES),
        "time2": _pick(rng, DEADLINES),
        "verb": base,
        "past": past,
        "activity": _pick(rng, ACTIVITIES),
        "number": _pick(rng, NUMBERS),
    }
    text = _pick(rng, TEMPLATES).format(**slots)
    return text[:1].upper() + text[1:]


def turn(rng: np.random.Generator, max_sentences: int = 3) -> str:
    """A speaking turn: 1..max_sentences sentences, sometimes opened with a discourse marker ("Well, ...")."""
    n = int(rng.integers(1, max_sentences + 1))
    parts = [sentence(rng) for _ in range(n)]
    if rng.random() < 0.3:
        first = parts[0]
        head = first.split()[0].strip(",?!.")
        if head not in NAMES and head != "I" and not head.startswith("I'"):
            first = first[:1].lower() + first[1:]
        parts[0] = f"{_pick(rng, STARTERS)} {first}"
    return " ".join(parts)


def backchannel(rng: np.random.Generator) -> str:
    """A short listener response ("Yeah.", "Umm hmm.") spoken while the partner holds the turn."""
    return _pick(rng, BACKCHANNELS)
