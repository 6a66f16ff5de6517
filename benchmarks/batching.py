"""Sessions sustained in real time by one server process, without and with cross-session batching (issue 14).

    python -m benchmarks.batching [--steps K] [--block B] [--lookahead L] [--seconds 10] [--max-sessions 12]
        [--batch-wait 2 5] [--batch-threads 1 2]

Runs the scaling section's levels (``benchmarks.scaling``: 1, 2, 3, ... concurrent sessions of real speech at
wall-clock pace through one ``runtime.server``; a level is sustained when every frame arrives and every session's
p95 block latency is within one block period) once per server configuration: ``--workers 1`` (the default, no
batching), then ``--batch-wait MS --batch-threads T`` for each MS and T given. Prints one line per level and a
table; run it on a quiet machine (no training, no other benchmark).
"""

from __future__ import annotations

import argparse
import logging

from benchmarks.common import Setting, load_pair, machine
from benchmarks.scaling import run_scaling
from benchmarks.server_process import ServerProcess
from runtime.model.bundle import load_bundle
from runtime.model.model import DEFAULT_BUNDLE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE))
    for key in ("steps", "block", "lookahead", "context"):
        ap.add_argument(f"--{key}", type=int, help="default: the bundle's")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per session per level")
    ap.add_argument("--max-sessions", type=int, default=12)
    ap.add_argument("--batch-wait", type=float, nargs="+", default=[2.0], help="ms; one run per value")
    ap.add_argument("--batch-threads", type=int, nargs="+", default=[1, 2], help="one run per value (and wait)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    defaults = load_bundle(args.bundle, verify=False).defaults
    pick = {
        k: defaults[k] if getattr(args, k) is None else getattr(args, k)
        for k in ("steps", "block", "lookahead", "context")
    }
    setting = Setting(**pick)
    a, b, source = load_pair(args.seconds)
    rows = []
    runs = [("no batching (--workers 1)", ())]
    runs += [(f"--batch-wait {w:g} --batch-threads {t}", ("--batch-wait", f"{w:g}", "--batch-threads", str(t)))
             for w in args.batch_wait for t in args.batch_threads]  # fmt: skip
    for label, extra in runs:
        with ServerProcess(args.bundle, "ort-cpu", max_sessions=args.max_sessions + 1, extra_args=extra) as srv:
            result = run_scaling(srv, setting, a, b, args.max_sessions)
        last = [lv for lv in result["levels"] if lv["sustained"]]
        cpu = f"{last[-1]['cpu_per_session']:.3f}" if last else "-"
        rows.append((label, result["sustained_sessions"], cpu, result["stopped_because"]))
    m = machine(["ort-cpu"])
    print(f"\n{setting.label}, {source['kind']}, {args.seconds:g} s per session; {m['cpu']}, {m['cores']} cores\n")
    print("| server | sessions sustained | CPU per session at the last sustained level (cores) | stopped because |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
