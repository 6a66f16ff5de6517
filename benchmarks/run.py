"""Latency, throughput, scaling and quality-vs-speed report of the runtime (DESIGN 10, 11).

    python benchmarks/run.py [--bundle DIR] [--backend ort-cpu ...] [--quick] [--out benchmarks/reports]

Writes ``<out>/<date>-<host>.json``, ``.md`` and ``.png`` (``-quick`` appended for ``--quick``) and prints the
Markdown. Sections (``--sections``; all by default), per backend unless noted:

1. compute    per-stage compute per block and the real-time factor, over every K x B x L of the grid
2. streaming  paced replay of two speakers through the in-process engine and the gRPC server (every K at the
              default B/L, every B/L at the default K): chunk->frame latency, jitter, first frame, RTF
3. scaling    concurrent paced sessions on one server until it cannot keep up (first backend)
   memory     server RSS over one long session (first backend)
4. reference  50-step DDIM and 150-step DDPM on the same graphs, side by side with ours (default setting)
5. quality    lip error and FID_g per K x L at the default B on held-out clips (first backend; training extra)

``--quick`` (CI smoke, < 2 min): the first available backend, K in {1, 4}, the bundle's default B/L, 4 s clips,
up to 2 sessions, a 1-minute memory run, one 8 s quality clip. Definitions: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run.py` imports the repo's packages

import argparse
import datetime as dt
import logging
import os
import shlex
import socket
import time
from dataclasses import dataclass

from benchmarks import compute, quality, reference, report, scaling, streaming
from benchmarks.common import Setting, cross, grid, load_pair, machine
from benchmarks.server_process import ServerProcess
from runtime.model.backends import BACKENDS, BackendUnavailable
from runtime.model.model import DEFAULT_BUNDLE, PRECISIONS, Model

log = logging.getLogger("benchmarks")

SECTIONS = ("compute", "streaming", "scaling", "memory", "reference", "quality")
SERVING_BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt")  # tried by default; torch is the training reference


@dataclass(frozen=True)
class Plan:
    """What a run measures (``--quick`` changes the defaults; explicit options win)."""

    steps: list[int]
    blocks: list[int] | None  # None = the bundle's default block
    lookaheads: list[int] | None
    seconds: float  # audio per compute / streaming / scaling run
    max_sessions: int
    memory_minutes: float
    memory_every: float  # s of audio between RSS readings
    quality_clips: int
    quality_seconds: float
    repeats: int  # timings of our sampler per model in the equal-window reference


FULL = Plan([1, 2, 4, 8], [3, 6, 12], [0, 3, 6], 10.0, 16, 10.0, 60.0, 3, 20.0, 5)
QUICK = Plan([1, 4], None, None, 4.0, 2, 1.0, 15.0, 1, 8.0, 2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle (default: %(default)s)")
    ap.add_argument("--backend", nargs="+", choices=[*(b for b in BACKENDS if b != "auto"), "torch"],
                    help=f"backends to measure (default: every one of {', '.join(SERVING_BACKENDS)} that works here; "
                         "--quick: the first)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="CI smoke run, under 2 minutes")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "reports")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per graph (2-core CPU: 1)")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="auto: the bundle's int8 graphs on ort-cpu where present; fp32: float32 only")  # fmt: skip
    ap.add_argument("--steps", type=int, nargs="+", help="DDIM steps K (default 1 2 4 8; quick 1 4)")
    ap.add_argument("--blocks", type=int, nargs="+", help="block sizes B in frames (default 3 6 12; quick: bundle's)")
    ap.add_argument("--lookaheads", type=int, nargs="+", help="lookaheads L in frames (default 0 3 6; quick: bundle's)")
    ap.add_argument("--seconds", type=float, help="audio per run, s (default 10; quick 4)")
    ap.add_argument("--max-sessions", type=int, help="scaling: most concurrent sessions tried (default 16; quick 2)")
    ap.add_argument("--memory-minutes", type=float, help="long-session length (default 10; quick 1)")
    ap.add_argument("--quality-clips", type=int, help="held-out clips scored per setting (default 3; quick 1)")
    ap.add_argument("--quality-seconds", type=float, help="seconds of each clip scored (default 20; quick 8)")
    ap.add_argument("--corpus", type=Path, help="corpus for the quality section (default: the bundle's)")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    pick = {"steps": args.steps, "blocks": args.blocks, "lookaheads": args.lookaheads, "seconds": args.seconds,
            "max_sessions": args.max_sessions, "memory_minutes": args.memory_minutes,
            "quality_clips": args.quality_clips, "quality_seconds": args.quality_seconds}  # fmt: skip
    return Plan(**{**vars(base), **{k: v for k, v in pick.items() if v is not None}})


def load_models(
    bundle: Path, names: list[str], threads: int, first_only: bool, precision: str = "auto"
) -> tuple[dict, dict]:
    models, skipped = {}, {}
    for name in names:
        try:
            if name == "torch":
                import export.torch_backend  # noqa: F401 - registers the torch reference (training extra)
            models[name] = Model.load(bundle, backend=name, threads=threads, precision=precision)
            models[name].warm_up(frames=8, steps=1)  # a backend may fail only when a graph is built
        except (BackendUnavailable, ImportError) as e:
            skipped[name] = str(e)
            log.info("backend %s skipped: %s", name, e)
            continue
        if first_only:
            break
    if not models:
        raise SystemExit(f"no backend works here: {skipped}")
    return models, skipped


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    plan = make_plan(args)
    models, skipped = load_models(args.bundle, args.backend or list(SERVING_BACKENDS), args.threads,
                                  first_only=args.quick and not args.backend, precision=args.precision)  # fmt: skip
    primary = next(iter(models))
    pm = models[primary]
    d = pm.bundle.defaults
    default = Setting(int(d["steps"]), int(d["block"]), int(d["lookahead"]), int(d["context"]))
    blocks, lookaheads = plan.blocks or [default.block], plan.lookaheads or [default.lookahead]
    settings = grid(plan.steps, blocks, lookaheads, default.context)
    settings += [default] if default not in settings else []
    paced = cross(default, plan.steps, blocks, lookaheads)
    a, b, audio = load_pair(plan.seconds)
    provenance = pm.bundle.manifest["provenance"].get("checkpoints") or {}
    r: dict = {
        "schema": 1, "date": dt.date.today().isoformat(), "host": socket.gethostname(), "quick": args.quick,
        "command": shlex.join([Path(sys.executable).name, "benchmarks/run.py", *(sys.argv[1:] if argv is None
                                                                                 else argv)]),
        "machine": machine(list(models)), "backends": list(models), "backends_skipped": skipped,
        "primary_backend": primary, "threads": args.threads,
        "bundle": {"path": str(args.bundle), "name": pm.bundle.name, "defaults": d,
                   "trained": any((c.get("train") or {}).get("steps", 0) for c in provenance.values()),
                   "graphs": pm.bundle.graph_names()},
        "audio": audio, "plan": vars(plan),
        "settings": {"default": default.to_dict(), "grid": [s.to_dict() for s in settings],
                     "paced": [s.to_dict() for s in paced]},
        "compute": [], "streaming": [], "reference": [], "phases": {},
    }  # fmt: skip

    def phase(name: str, fn):
        t0 = time.perf_counter()
        log.info("== %s", name)
        out = fn()
        r["phases"][name] = r["phases"].get(name, 0.0) + time.perf_counter() - t0
        return out

    for name, model in models.items():
        if "compute" in args.sections:
            r["compute"] += phase("compute", lambda m=model, n=name: compute.run_sweep(m, n, settings, a, b))
        if "streaming" in args.sections:
            r["streaming"] += phase("streaming", lambda m=model, n=name: [
                streaming.replay_in_process(m, s, a, b, n) for s in paced])  # fmt: skip
        if "reference" in args.sections and "compute" in args.sections:
            row = report.find_row(r["compute"], default.to_dict(), backend=name)
            r["reference"].append({"backend": name, **phase("reference", lambda m=model, x=row: reference.run_reference(
                m, default, x, plan.repeats))})  # fmt: skip
        served = {"streaming", "scaling", "memory"} & set(args.sections)
        if (name == primary and served) or "streaming" in served:
            with ServerProcess(
                args.bundle,
                name,
                threads=args.threads,
                max_sessions=max(64, plan.max_sessions),
                extra_args=("--precision", args.precision),
            ) as srv:
                if "streaming" in served:
                    r["streaming"] += phase("grpc", lambda n=name, s=srv: [
                        streaming.replay_grpc(s, x, a, b, n) for x in paced])  # fmt: skip
                if name == primary and "scaling" in served:
                    r["scaling"] = phase("scaling", lambda s=srv: scaling.run_scaling(s, default, a, b,
                                                                                      plan.max_sessions))  # fmt: skip
                if name == primary and "memory" in served:
                    r["memory"] = phase("memory", lambda s=srv: scaling.run_memory(
                        s, default, a, b, plan.memory_minutes, plan.memory_every))  # fmt: skip
    if "quality" in args.sections:
        r["quality"] = phase("quality", lambda: run_quality(r, pm, plan, default, args.corpus))
    r["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    r["elapsed_seconds"] = time.perf_counter() - t_start
    r["targets"] = report.targets(r)
    stem = f"{r['date']}-{r['host']}" + ("-quick" if args.quick else "")
    files = report.write(r, args.out, stem)
    print(files["md"].read_text())
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return r


def run_quality(r: dict, model: Model, plan: Plan, default: Setting, corpus: Path | None) -> dict:
    """Quality per K x L at the default B; latency = (B + L) / fps + p95 block compute of the matching compute run."""
    rows = [c for c in r["compute"] if c["backend"] == r["primary_backend"]]
    settings = [Setting(k, default.block, la, default.context) for k in plan.steps
                for la in (plan.lookaheads or [default.lookahead])]  # fmt: skip

    def compute_row(s: dict) -> dict | None:
        return report.find_row(rows, s)

    def latency_of(s: Setting) -> float:
        row = compute_row(s.to_dict())  # absent when section 1 did not run: the algorithmic latency alone
        return s.algorithmic_ms + (row["stages_ms"]["total"]["p95"] if row else 0.0)

    out = quality.run_quality(model, settings, corpus, plan.quality_clips, plan.quality_seconds, latency_of)
    if out["available"]:
        r["suggested_default"] = quality.suggest_default(out["points"], lambda p: (compute_row(p) or {}).get("rtf"))
    return out


if __name__ == "__main__":
    main()
