"""``python -m runtime.viewer [mic_demo arguments]``: a mic_demo session shown in the browser.

The same as ``python -m runtime.mic_demo --demo --browser 127.0.0.1:8030 --browser-wait 60 --view none`` plus the
arguments given: an input (``--wav A.wav B.wav``, ``--devices``, ``--stereo-device``) replaces ``--demo``, and a
given ``--browser``, ``--browser-wait`` or ``--view`` replaces its default. The replay starts when a page connects
(or after 60 s), so the conversation is seen from its first word.
"""

from __future__ import annotations

import sys

from runtime.apps import mic_demo
from runtime.viewer import DEFAULT_ADDRESS, DEFAULT_WAIT_S

INPUTS = {"--demo", "--wav", "--devices", "--stereo-device", "--list-devices"}


def viewer_argv(argv: list[str]) -> list[str]:
    """mic_demo's arguments for ``python -m runtime.viewer ARGV``."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    out = [] if given & INPUTS else ["--demo"]
    for option, value in (("--browser", DEFAULT_ADDRESS), ("--browser-wait", str(DEFAULT_WAIT_S)), ("--view", "none")):
        if option not in given:
            out += [option, value]
    return out + list(argv)


def main(argv: list[str] | None = None) -> int:
    return mic_demo.main(viewer_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
