"""GPU on paper: FLOPs and bytes per block per network from the bundle's ONNX graphs, and what they imply for
sessions per H100 and per L4 with TensorRT FP16 and cross-session batching (issue 14, item 5). No GPU here: the
estimate is arithmetic over stated assumptions, not a measurement.

    python -m benchmarks.gpu_paper [--bundle DIR] [--steps 4 2] [--block 6 --lookahead 3]

FLOPs: every MatMul/Gemm of the unrolled K-step graph, 2 x M x N x K, with the shapes of one real call (ONNX Runtime
runs the graph once with every MatMul input exposed as an output); everything else (norms, activations, softmax)
is a few percent and left out. Bytes: the graph's weights (fp32 as stored; fp16 on the GPU is half). Kernels: the
graph's compute nodes (shape bookkeeping left out) before fusion.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from runtime.constants import FPS
from runtime.model.model import DEFAULT_BUNDLE, MODELS, Model

BOOKKEEPING = {"Constant", "Identity", "Shape", "Unsqueeze", "Squeeze", "Gather", "Cast", "Concat", "Reshape",
               "Slice", "Range", "Expand", "ConstantOfShape", "Equal", "Where"}  # fmt: skip


@dataclass(frozen=True)
class Gpu:
    name: str
    fp16_tflops: float  # dense tensor-core peak
    bandwidth_gbs: float  # memory bandwidth
    efficiency: float = 0.3  # share of peak small transformer layers reach at large batch (assumed)
    kernel_us: float = 4.0  # per fused kernel in a CUDA-graph-launched TensorRT engine, small tensors (assumed)


GPUS = (Gpu("H100 SXM", 989.0, 3350.0), Gpu("L4", 121.0, 300.0, kernel_us=6.0))
FUSION = 0.4  # TensorRT kernels per ONNX compute node after layer fusion (assumed)
HOST_MS_PER_BLOCK = 5.7  # CPU work per session per block outside the graphs: features + posing + the rest
# (benchmarks/reports/2026-11-25-vm.md, K4 B6 L3: 1.94 + 1.75 + 2.03 ms)


def graph_cost(model: Model, graph: str, net: str, frames: int) -> dict:
    import onnx
    import onnxruntime as ort

    path = model.bundle.path / model.bundle.manifest["graphs"][graph]["file"]
    g = onnx.load(str(path))
    matmuls = [n for n in g.graph.node if n.op_type in ("MatMul", "Gemm")]
    weights = {t.name: list(t.dims) for t in g.graph.initializer}
    exposed = {o.name for o in g.graph.output}
    for name in dict.fromkeys(x for n in matmuls for x in n.input[:2]):
        if name not in exposed and name not in weights:
            g.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(g.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = 2 if net == "face" else 1  # the face window holds both people
    feed = {"noise": np.zeros((batch, frames, model._width(net)), np.float32),
            **model.example_conditions(net, batch, frames)}  # fmt: skip
    names = {i.name for i in session.get_inputs()}
    values = session.run(None, {k: v for k, v in feed.items() if k in names})
    shapes = {o.name: v.shape for o, v in zip(session.get_outputs(), values, strict=True)} | weights
    flops = sum(2 * int(np.prod(shapes[n.input[0]])) * shapes[n.input[1]][-1] for n in matmuls)
    size = sum(int(np.prod(t.dims)) * 4 for t in g.graph.initializer)
    nodes = sum(n.op_type not in BOOKKEEPING for n in g.graph.node)
    return {"graph": graph, "gflop": flops / 1e9, "weights_mb": size / 1e6, "compute_nodes": nodes}


def estimate(rows: list[dict], gpu: Gpu, block: int) -> dict:
    """Sessions one GPU keeps in real time: a round runs every network once for a batch of sessions; its time is the
    larger of the compute time and the kernel-latency floor; rounds run back to back within one block period."""
    gflop = sum(r["gflop"] for r in rows)  # per session per block
    kernels = sum(r["compute_nodes"] for r in rows) * FUSION
    floor_ms = kernels * gpu.kernel_us / 1000
    per_session_ms = gflop / (gpu.fp16_tflops * gpu.efficiency)  # GFLOP / TFLOPS = ms
    period_ms = 1000 * block / FPS
    batch = max(1, int(floor_ms / per_session_ms))  # sessions that fit under the latency floor in one round
    rounds = period_ms / floor_ms
    weight_ms = sum(r["weights_mb"] for r in rows) / 2 / gpu.bandwidth_gbs  # fp16 weights read once per round
    return {"gpu": gpu.name, "floor_ms": floor_ms, "per_session_us": 1000 * per_session_ms, "batch": batch,
            "sessions_compute": int(rounds * batch), "weights_ms": weight_ms,
            "sessions_host_core": int(period_ms / HOST_MS_PER_BLOCK)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 2])
    ap.add_argument("--block", type=int, default=6)
    ap.add_argument("--lookahead", type=int, default=3)
    args = ap.parse_args(argv)
    model = Model.load(args.bundle)
    frames = int(model.bundle.defaults["context"]) + args.block + args.lookahead
    print(f"{model.bundle.name}, one two-person session, window {frames} frames, block {args.block}\n")
    print("| graph | GFLOP per block | weights (MB, fp32) | compute nodes |\n|---|---|---|---|")
    for k in args.steps:
        rows = [graph_cost(model, model.bundle.unrolled(net, k), net, frames) for net in MODELS]
        for r in rows:
            print(f"| {r['graph']} | {r['gflop']:.3f} | {r['weights_mb']:.2f} | {r['compute_nodes']} |")
        total = sum(r["gflop"] for r in rows)
        print(f"| **K{k}, all three** | **{total:.3f}** ({total * FPS / args.block:.1f} GFLOP/s per session) | "
              f"{sum(r['weights_mb'] for r in rows):.2f} | {sum(r['compute_nodes'] for r in rows)} |")  # fmt: skip
        for gpu in GPUS:
            e = estimate(rows, gpu, args.block)
            print(f"|   {gpu.name}: round floor {e['floor_ms']:.2f} ms, {e['per_session_us']:.1f} us compute per "
                  f"session, batch {e['batch']} per round, ~{e['sessions_compute']} sessions per GPU; host CPU "
                  f"~{e['sessions_host_core']} sessions per core | | | |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
