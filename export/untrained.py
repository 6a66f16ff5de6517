"""A bundle exported from untrained (random) networks: same graphs, names and shapes as a real one, tiny.

    python -m export.untrained --out bundles/untrained [--dim 32 --depth 1]

For developing and testing the runtime without a trained model (servers, clients, sinks, benchmark smoke runs):
the frames it streams are structurally valid (ranges, quaternions, time codes) but meaningless. The skeleton is
the synthetic corpus's reference actor; normalisation statistics are plausible constants.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from export.bundle import write_bundle
from export.onnx import export_model
from runtime.constants import N_MELS
from runtime.formats.arkit import N_BLENDSHAPES
from runtime.model.sampling import Schedule
from runtime.motion.posing import Poser
from runtime.motion.root import MotionLayout
from training.checkpoint import save_weights
from training.data.skeleton_def import make_skeleton
from training.models import build_nets
from training.models.body import as_served

STYLES = ["actor_001", "actor_002"]


def _stats(n: int, mean: float, std: float) -> dict[str, list[float]]:
    return {"mean": [mean] * n, "std": [std] * n}


def make_untrained_bundle(
    out: Path, dim: int = 32, depth: int = 1, steps: tuple[int, ...] = (4,), seed: int = 0
) -> Path:
    """Write checkpoints (in ``out/checkpoints``) and the bundle (in ``out``) of random networks; returns ``out``."""
    torch.manual_seed(seed)
    skeleton = make_skeleton().scaled(0.01)  # the generator's reference actor, metres
    layout = MotionLayout.from_skeleton(skeleton)
    poser = Poser(skeleton, layout)
    nl, nu = 2 * len(poser.lower_cols), 2 * len(poser.upper_cols)
    lower = _stats(nl, 0.0, 0.1)
    height = list(poser.lower_cols).index(3)  # root_height column of each person: mean ~ standing hips
    for p in (0, 1):
        lower["mean"][p * (nl // 2) + height] = 0.95
    meta = {
        "stats": {"mel": _stats(N_MELS, -8.0, 3.0), "face": _stats(N_BLENDSHAPES, 0.1, 0.1), "lower": lower,
                  "upper": _stats(nu, 0.0, 0.2)},
        "skeleton": skeleton.to_dict(), "layout": layout.to_dict(), "styles": STYLES,
        "data": {"corpus": "none (untrained)"}, "train": {"steps": 0},
    }  # fmt: skip
    net = {"dim": dim, "depth": depth, "n_heads": 4, "ff_mult": 2}
    configs = {
        "face": {"face": {"n_features": N_BLENDSHAPES, "n_styles": len(STYLES), **net}},
        "body": {
            "body_lower": {"part": "lower", "n_features": nl, **net},
            "body_upper": {"part": "upper", "n_features": nu, "n_lower": nl, "guidance": 2.0, **net},
        },
    }  # fmt: skip  (the upper body guided as the shipped one is, so every test runs that graph)
    out.mkdir(parents=True, exist_ok=True)
    ckpts, graphs, schedule = {}, {}, Schedule()
    for kind, cfg in configs.items():
        nets = build_nets(kind, cfg)
        for n in nets.values():  # small random output layers so frames move instead of sitting at the mean
            torch.nn.init.normal_(n.out.weight, std=0.02)
        state = {f"{name}.{k}": v for name, n in nets.items() for k, v in n.state_dict().items()}
        path = out / "checkpoints" / f"untrained_{kind}.pt"
        sha = save_weights(path, kind, cfg, state, meta)
        ckpts[kind] = {"path": str(path), "sha256": sha, "kind": kind, "model_config": cfg, "meta": meta}
        for name, n in nets.items():
            n.load_state_dict({k: v.half().float() for k, v in n.state_dict().items()})  # as the checkpoint holds
            graphs.update(export_model(name, as_served(n.eval()), schedule, list(steps), out))
    write_bundle(out, "untrained", graphs, ckpts, schedule)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--steps", type=int, nargs="+", default=[4])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_untrained_bundle(args.out, args.dim, args.depth, tuple(args.steps))
    logging.getLogger(__name__).info("wrote %s", args.out)


if __name__ == "__main__":
    main()
