"""Checkpoints -> ONNX graphs -> model bundle (DESIGN 6, STYLE 9: stages with artefacts between them).

    python -m export.onnx --face FACE.pt --body BODY.pt --out bundles/NAME [--steps 4 2] [--body-single SINGLE.pt]

For each model (face, body_lower, body_upper; body_single on request) this writes the per-step graph
``<model>_step.onnx`` (flexible K, the runtime loops it) and the K-step sampler unrolled into one graph
``<model>_k<K>.onnx`` for each requested K (the preferred runtime artefact: one call per block). Both graphs of a
model read the same external weights file ``<model>.weights``, so the bundle holds every weight once. Each graph is
checked against torch on random inputs (max abs error logged and bounded) before the manifest is written.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import external_data_helper, numpy_helper

from export.graphs import INT_INPUTS, StepGraph, UnrolledGraph, example_inputs
from runtime.model.backends import Signature, TensorSpec
from runtime.model.sampling import Schedule
from training.checkpoint import load_weights
from training.models import KINDS, build_nets
from training.models.body import as_served

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2  # float16 graphs, run by ONNX Runtime's CPU kernels for the check (measured ~1e-3)
# int8 graphs (normalised units, random inputs; measured 0.04-0.2): a guard against a broken graph only. Whether the
# int8 model is good enough is decided by training.evaluate on the bundle (README, issue 14).
INT8_TOLERANCE = 0.5
PER_FRAME = {"x", "noise", "mel_self", "mel_partner", "mel_a", "mel_b", "facing", "actions", "context",
             "context_mask", "lower", "x0"}  # fmt: skip


def _signature(names: list[str], inputs: dict[str, torch.Tensor], out_dim: int) -> Signature:
    def spec(name: str, t: torch.Tensor | None, dims: int | None = None) -> TensorSpec:
        rank = t.dim() if t is not None else 3
        shape: list[int | str] = ["batch"] + ([] if rank == 1 else ["frames"] if name in PER_FRAME else [])
        last = dims if dims is not None else (t.shape[-1] if t is not None and rank >= 2 else None)
        if rank == 3:
            shape.append(int(last))
        elif rank == 2 and name not in PER_FRAME:
            shape.append(int(last))
        dtype = "int64" if name in INT_INPUTS else "float32"
        return TensorSpec(name, tuple(shape), dtype)

    return Signature(tuple(spec(n, inputs[n]) for n in names), (spec("x0", None, out_dim),))


def export_graph(module: torch.nn.Module, inputs: dict[str, torch.Tensor], path: Path) -> Signature:
    """Trace ``module`` on ``inputs`` (ordered) into ``path`` with dynamic batch/frame axes; returns its signature."""
    names = list(inputs)
    dynamic = {n: ({0: "batch", 1: "frames"} if n in PER_FRAME else {0: "batch"}) for n in names + ["x0"]}
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints in shapes are expected here
        torch.onnx.export(
            module, tuple(inputs.values()), str(path), input_names=names, output_names=["x0"],
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        out_dim = module(*inputs.values()).shape[-1]
    sig = _signature(names, inputs, out_dim)
    for s in sig.inputs + sig.outputs:
        log.info("  %s %-13s %-8s %s", path.name, s.name, s.dtype, list(s.shape))
    return sig


def _tensor_digest(t: onnx.TensorProto) -> str:
    return hashlib.sha256(bytes([t.data_type]) + str(list(t.dims)).encode() + t.raw_data).hexdigest()


def share_weights(paths: list[Path], weights_name: str, min_bytes: int = 1024) -> None:
    """Move the large initializers of several graphs into one external file, each distinct tensor stored once.

    Float32 weights that float16 represents exactly (checkpoints keep float16 weights, so all of them) are stored
    as float16 with a Cast to float32 in front: half the bytes, bit-identical numbers. ONNX Runtime folds the casts
    when it loads the graph, so inference runs in float32 as before.
    """
    folder = paths[0].parent
    offsets: dict[str, tuple[int, int]] = {}
    with open(folder / weights_name, "wb") as blob:
        for path in paths:
            model = onnx.load(str(path))
            graph = model.graph
            kept, casts = [], []
            for t in graph.initializer:
                if not t.HasField("raw_data") or len(t.raw_data) < min_bytes:
                    kept.append(t)
                    continue
                if t.data_type == onnx.TensorProto.FLOAT:
                    arr = numpy_helper.to_array(t)
                    half = arr.astype(np.float16)
                    if np.array_equal(half.astype(np.float32), arr):
                        casts.append(
                            onnx.helper.make_node("Cast", [t.name + "::fp16"], [t.name], to=onnx.TensorProto.FLOAT)
                        )
                        t = numpy_helper.from_array(half, t.name + "::fp16")
                key = _tensor_digest(t)
                if key not in offsets:
                    blob.write(b"\0" * ((-blob.tell()) % 64))  # aligned so ORT can memory-map it
                    offsets[key] = (blob.tell(), len(t.raw_data))
                    blob.write(t.raw_data)
                offset, length = offsets[key]
                external_data_helper.set_external_data(t, weights_name, offset, length)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
                kept.append(t)
            del graph.initializer[:]
            graph.initializer.extend(kept)
            nodes = casts + list(graph.node)
            del graph.node[:]
            graph.node.extend(nodes)
            onnx.save(model, str(path))


def check_parity(
    module: torch.nn.Module, inputs: dict[str, torch.Tensor], path: Path, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Max abs error between torch and ONNX Runtime (CPU) on the same inputs; raises beyond ``tolerance``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["x0"], {k: v.numpy() for k, v in inputs.items()})[0]
    with torch.no_grad():
        want = module(*inputs.values()).numpy()
    err = float(np.abs(got - want).max())
    log.info("  parity %s: max abs error %.2e", path.name, err)
    if not err < tolerance:
        raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {err:.2e} (> {tolerance})")
    return err


def to_fp16(src: Path, dst: Path) -> None:
    """A float16 copy of a float32 graph for GPU execution providers: float32 inputs/outputs, float16 inside.

    Casts, ranges and cumulative sums (step embedding, positions, attention bias) stay in float32.
    """
    from onnxconverter_common import float16

    keep = list(float16.DEFAULT_OP_BLOCK_LIST) + ["Cast", "Range", "CumSum"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values truncated to float16 range": none are, weights come from fp16
        half = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=keep)
    onnx.save(half, str(dst))


def to_int8(src: Path, dst: Path) -> None:
    """An int8 copy of a float32 graph for ONNX Runtime on CPU: the weights of every MatMul quantised to int8 per
    tensor, activations quantised on the fly (``quantize_dynamic``). The float16-stored weights are first folded to
    float32 initialisers (ORT's basic graph optimisation), which the quantiser needs; the result holds its weights."""
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        quantize_dynamic(folded, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         extra_options={"MatMulConstBOnly": True})  # fmt: skip


def export_model(
    model: str, net: torch.nn.Module, schedule: Schedule, steps: list[int], out: Path, frames: int = 33,
    fp16: bool = False, step: bool = True, weights: str | None = None, checkpoint: str | None = None,
    int8: set[str] = frozenset(),
) -> dict[str, dict]:  # fmt: skip
    """All graphs of one model into ``out``; returns manifest graph entries. ``fp16`` adds a float16 copy of each
    unrolled graph (precision "fp16", for CUDA / TensorRT execution providers); graphs named in ``int8`` get an int8
    copy ``<name>_int8`` (precision "int8", ONNX Runtime CPU). A distilled student exports only its unrolled graph
    (``step`` False) with its own weights file (``weights``, default ``<model>.weights``) and names the provenance
    entry of its checkpoint (``checkpoint``)."""
    entries, paths = {}, []
    weights = weights or f"{model}.weights"
    if step:
        graph = StepGraph(net, model)
        inputs = example_inputs(model, net, batch=2, frames=frames, unrolled=False)
        path = out / f"{model}_step.onnx"
        sig = export_graph(graph, inputs, path)
        entries[path.stem] = {"model": model, "kind": "step", "sig": sig, "module": graph, "inputs": inputs,
                              "weights": weights}  # fmt: skip
        paths.append(path)
    for k in steps:
        unrolled = UnrolledGraph(net, model, schedule, k)
        inputs = example_inputs(model, net, batch=2, frames=frames, unrolled=True)
        path = out / f"{model}_k{k}.onnx"
        sig = export_graph(unrolled, inputs, path)
        entries[path.stem] = {"model": model, "kind": "unrolled", "steps": k, "sig": sig, "module": unrolled,
                              "inputs": inputs, "weights": weights}  # fmt: skip
        paths.append(path)
        if fp16:
            half = out / f"{model}_k{k}_fp16.onnx"
            to_fp16(path, half)
            entries[half.stem] = dict(entries[path.stem], precision="fp16")
            paths.append(half)
    share_weights(paths, weights)
    for name in sorted(set(entries) & set(int8)):
        to_int8(out / f"{name}.onnx", out / f"{name}_int8.onnx")
        entries[f"{name}_int8"] = dict(entries[name], precision="int8", weights=None)
    if checkpoint is not None:
        for e in entries.values():
            e["checkpoint"] = checkpoint
    tolerances = {"fp16": FP16_TOLERANCE, "int8": INT8_TOLERANCE}
    for name, e in entries.items():
        tolerance = tolerances.get(e.get("precision"), PARITY_TOLERANCE)
        e["parity"] = check_parity(e.pop("module"), e.pop("inputs"), out / f"{name}.onnx", tolerance)
    return entries


def load_models(checkpoints: dict[str, Path]) -> tuple[dict[str, torch.nn.Module], dict[str, dict]]:
    """Checkpoint kind -> path  =>  (model name -> eval-mode network, kind -> checkpoint dict)."""
    nets, ckpts = {}, {}
    for kind, path in checkpoints.items():
        ckpt = load_weights(path)
        if ckpt["kind"] != kind:
            raise ValueError(f"{path}: is a {ckpt['kind']!r} checkpoint, expected {kind!r}")
        built = build_nets(kind, ckpt["model_config"])
        for name, net in built.items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
            net.load_state_dict(state)
            nets[name] = as_served(net.eval())  # voice guidance inside the graph where the config asks for it
        ckpt["path"] = str(path)
        ckpts[kind] = ckpt
    return nets, ckpts


def main(argv: list[str] | None = None) -> None:
    from export.bundle import write_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--face", type=Path, required=True, help="face checkpoint (lip-fine-tuned for shipping)")
    ap.add_argument("--body", type=Path, required=True, help="hierarchical body checkpoint")
    ap.add_argument("--body-single", type=Path, help="single-network baseline checkpoint (optional)")
    ap.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    ap.add_argument("--steps", type=int, nargs="+", default=[4], help="K values to unroll (default: 4)")
    ap.add_argument("--name", default=None, help="bundle name (default: the folder name)")
    ap.add_argument("--fp16", action="store_true", help="also write float16 unrolled graphs for GPU providers")
    ap.add_argument("--evaluation", type=Path, nargs="*", default=[], help="evaluation JSONs for the provenance")
    ap.add_argument("--card", type=Path, help="model card Markdown to copy in as README.md")
    ap.add_argument(
        "--students",
        nargs="*",
        default=[],
        metavar="KIND:K=CKPT",
        help="distilled students: K-step graphs from their own checkpoints (e.g. face:1=face_k1.pt)",
    )
    ap.add_argument("--int8", nargs="*", default=[], metavar="GRAPH",
                    help="graphs that also get an int8 copy for ONNX Runtime CPU (e.g. face_k1)")  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    checkpoints = {"face": args.face, "body": args.body}
    if args.body_single:
        checkpoints["body_single"] = args.body_single
    nets, ckpts = load_models(checkpoints)
    args.out.mkdir(parents=True, exist_ok=True)
    schedule = Schedule()
    students: dict[tuple[str, int], Path] = {}
    for spec in args.students:
        kind, _, rest = spec.partition(":")
        k, sep, path = rest.partition("=")
        if kind not in checkpoints or not (sep and k.isdigit() and int(k) >= 1):
            ap.error(f"--students: expected KIND:K=CHECKPOINT with KIND one of {sorted(checkpoints)}, got {spec!r}")
        students[(kind, int(k))] = Path(path)
    graphs = {}
    for kind in checkpoints:
        for model in KINDS[kind]:
            log.info("exporting %s", model)
            ks = sorted(set(args.steps) - {k for (sk, k) in students if sk == kind})
            graphs.update(export_model(model, nets[model], schedule, ks, args.out, fp16=args.fp16, int8=set(args.int8)))
    for (kind, k), path in sorted(students.items()):  # a student's K-step graphs replace the teacher's at that K
        log.info("exporting the K%d %s student %s", k, kind, path)
        student, ckpt = load_models({kind: path})
        for model in KINDS[kind]:
            graphs.update(export_model(model, student[model], schedule, [k], args.out, fp16=args.fp16, step=False,
                                       weights=f"{model}_k{k}.weights", checkpoint=f"{kind}_k{k}",
                                       int8=set(args.int8)))  # fmt: skip
        ckpts[f"{kind}_k{k}"] = ckpt[kind]
    write_bundle(args.out, args.name or args.out.name, graphs, ckpts, schedule, args.evaluation, args.card)


if __name__ == "__main__":
    main()
