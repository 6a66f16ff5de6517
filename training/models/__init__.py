"""Denoiser networks (torch). ``build_nets`` turns a checkpoint's kind + config into its named networks."""

from __future__ import annotations

from torch import nn

from training.models.body import BodyConfig, BodyDenoiser
from training.models.face import FaceConfig, FaceDenoiser

# Checkpoint kind -> the graph models it holds (names used in bundles: face, body_lower, body_upper, body_single).
KINDS: dict[str, tuple[str, ...]] = {
    "face": ("face",),
    "body": ("body_lower", "body_upper"),
    "body_single": ("body_single",),
}


def build_nets(kind: str, model_config: dict) -> dict[str, nn.Module]:
    """``model_config`` maps each model name of ``kind`` to its config dict (as checkpoints store them)."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {', '.join(KINDS)}")
    nets: dict[str, nn.Module] = {}
    for name in KINDS[kind]:
        cfg = model_config[name]
        nets[name] = FaceDenoiser(FaceConfig(**cfg)) if name == "face" else BodyDenoiser(BodyConfig(**cfg))
    return nets
