"""The torch reference backend: runs the checkpoints a bundle was exported from, behind the runtime's Graph API.

Importing this module registers it: ``create_backend("torch")`` then returns it (training extra needed). For a graph
file of a bundle it reads the manifest beside it, finds which model and kind (step / unrolled K) the graph is and which
checkpoint it came from (``provenance.checkpoints``), and runs the very modules ``export.onnx`` traced
(``export.graphs``). The contract test compares it with ONNX Runtime and TensorRT on the same inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from export.graphs import StepGraph, UnrolledGraph
from runtime.model.backends import Signature, register_backend
from runtime.model.bundle import MANIFEST
from runtime.model.sampling import Schedule

KIND_OF_MODEL = {"face": "face", "body_lower": "body", "body_upper": "body", "body_single": "body_single"}


def _find_checkpoint(entry: dict, bundle: Path) -> Path:
    raw = Path(entry["path"])
    repo = Path(__file__).resolve().parents[1]
    for candidate in (raw, bundle / raw, bundle / "checkpoints" / raw.name, repo / raw):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{bundle / MANIFEST}: checkpoint {raw} not found (needed by the torch backend)")


class TorchGraph:
    def __init__(self, module: torch.nn.Module, name: str, signature: Signature) -> None:
        self.module = module.eval()
        self.name = name
        self.signature = signature

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self.signature.inputs]
            return {"x0": self.module(*args).numpy()}


class TorchBackend:
    name = "torch"

    def __init__(self, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self._nets: dict[tuple[str, str], torch.nn.Module] = {}

    def _net(self, bundle: Path, manifest: dict, model: str, checkpoint: str | None = None) -> torch.nn.Module:
        """The network ``model`` of the bundle's checkpoint ``checkpoint`` (default: its kind's; a distilled
        student's graph names its own)."""
        from export.onnx import load_models

        kind = KIND_OF_MODEL[model]
        source = checkpoint or kind
        key = (str(bundle), source, model)
        if key not in self._nets:
            entry = manifest["provenance"]["checkpoints"][source]
            nets, _ = load_models({kind: _find_checkpoint(entry, bundle)})
            for name, net in nets.items():
                self._nets[(str(bundle), source, name)] = net
        return self._nets[key]

    def load(self, path: Path, signature: Signature) -> TorchGraph:
        manifest = json.loads((path.parent / MANIFEST).read_text())
        entry = manifest["graphs"][path.stem]
        net = self._net(path.parent, manifest, entry["model"], entry.get("checkpoint"))
        if entry["kind"] == "step":
            module = StepGraph(net, entry["model"])
        else:
            s = manifest["schedule"]
            module = UnrolledGraph(net, entry["model"], Schedule(s["n_train_steps"], s["offset"]), int(entry["steps"]))
        return TorchGraph(module, path.stem, signature)


register_backend("torch", lambda threads=1, cache_dir=None: TorchBackend(threads=threads))
