"""Checkpoints that describe themselves (STYLE 5): config, data facts (stats, layout, styles) and weights.

Two kinds: a *training state* (``runs/<name>/state.pt``: raw + EMA weights, optimiser, step; resumable, never
committed) and a *weights-only* checkpoint (``<name>.pt``: EMA weights in float16 plus everything export needs;
small enough to commit next to the bundle it was exported from).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

FORMAT = "interact-checkpoint/1"


def save_weights(path: str | Path, kind: str, model_config: dict, state_dict: dict, meta: dict[str, Any]) -> str:
    """Write a weights-only checkpoint (float16 weights); returns its sha256."""
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state_dict.items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "kind": kind, "model_config": model_config, "state_dict": half, "meta": meta}, buf)
    data = buf.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: str | Path) -> dict:
    """Read a weights-only checkpoint; weights come back as float32. Raises a message naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable torch checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an {FORMAT} checkpoint (format={ckpt.get('format')!r})")
    ckpt["state_dict"] = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    ckpt["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return ckpt
