"""The report: targets with pass/miss, the Markdown tables, the JSON, the latency-vs-quality plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from benchmarks.compute import STAGES
from training.reporting import json_safe

log = logging.getLogger(__name__)

RTF_TARGET = 0.5  # one two-person session at default settings on ONNX Runtime CPU (the brief; mic_demo must keep up)
RTF_AIM, LOOKAHEAD_AIM_MS = 0.1, 100.0  # DESIGN 11: the whole pipeline on this CPU, with <= 100 ms lookahead
# Peers' own inference on this 2-core CPU, 10 s of output, one person, one modality (../shared/research/peer-speed.md).
PEERS = (("LDA body, 150-step DDPM (as shipped)", 80.0), ("LDA, position bias cached", 6.9),
         ("DiffSHEG face + gesture, DDIM 25", 2.4), ("DiffSpeaker face (vocaset), DDIM 50", 0.72),
         ("FaceFormer face (vocaset), autoregressive", 0.35), ("CAMDM locomotion, 4-step", 0.12))  # fmt: skip


def find_row(rows: list[dict], setting: dict, **kw) -> dict | None:
    keys = ("steps", "block", "lookahead", "context")
    return next((r for r in rows if all(r[k] == setting[k] for k in keys)
                 and all(r.get(k) == v for k, v in kw.items())), None)  # fmt: skip


def _target(name: str, target: str, measured: float | None, ok: bool | None, margin: str) -> dict:
    return {"name": name, "target": target, "measured": measured, "pass": ok, "margin": margin}


def targets(r: dict) -> list[dict]:
    d = r["settings"]["default"]
    out = []
    row = find_row(r["compute"], d, backend="ort-cpu")
    rtf = row["rtf"] if row else None
    out.append(_target("real-time factor, one two-person session, default settings, ort-cpu", f"<= {RTF_TARGET}",
                       rtf, None if rtf is None else rtf <= RTF_TARGET,
                       "not measured (no ort-cpu compute run)" if rtf is None else
                       f"{rtf / RTF_TARGET:.2f}x the budget ({RTF_TARGET - rtf:+.3f} headroom)"))  # fmt: skip
    la = 1000.0 * d["lookahead"] / 30.0
    out.append(
        _target(
            "DESIGN 11 aim: real-time factor with <= 100 ms lookahead, ort-cpu",
            f"<= {RTF_AIM}",
            rtf,
            None if rtf is None else rtf <= RTF_AIM and la <= LOOKAHEAD_AIM_MS,
            "not measured" if rtf is None else f"{rtf / RTF_AIM:.2f}x the aim; lookahead {la:.0f} ms",
        )
    )
    for transport in ("in-process", "grpc"):
        row = find_row(r["streaming"], d, transport=transport, backend=r["primary_backend"])
        if row is None:
            out.append(_target(f"p95 chunk->frame latency, {transport}", "<= L + B + 50 ms", None, None,
                               "not measured"))  # fmt: skip
            continue
        p95, bound = row["latency_ms"]["p95"], row["latency_bound_ms"]
        out.append(_target(f"p95 chunk->frame latency, {transport}, {row['label']}", f"<= {bound:.0f} ms", p95,
                           p95 <= bound, f"{bound - p95:+.0f} ms"))  # fmt: skip
    ref = next((x for x in r.get("reference", []) if x["backend"] == r["primary_backend"]), {})
    for where in ("equal_window", "whole_clip"):
        for s, label in (("ddim50", "50-step DDIM (DiffSpeaker)"), ("ddpm150", "150-step DDPM (LDA)")):
            v = (ref.get(where) or {}).get(f"speedup_{s}")
            out.append(_target(f"speed-up over {label}, {where.replace('_', ' ')}", "> 1x (report)", v,
                               None if v is None else v > 1, "not measured" if v is None else f"x{v:.1f}"))  # fmt: skip
    mem = r.get("memory")
    if mem:
        out.append(_target(f"server RSS flat over a {mem['minutes']:g}-minute session", "growth <= max(10 MiB, 5 %)",
                           mem["growth_mb"], mem["flat"], f"{mem['growth_mb']:+.1f} MiB"))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------- Markdown
def _f(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def markdown(r: dict) -> str:
    m, b = r["machine"], r["bundle"]
    title = f"# InterAct runtime benchmark: {r['date']} on {r['host']}" + (" (--quick)" if r["quick"] else "")
    lines = [title, ""]
    if not b["trained"]:
        lines += [f"**Untrained bundle ({b['name']})**: speed numbers are valid for its network sizes only; quality "
                  "numbers are computed but meaningless.", ""]  # fmt: skip
    lines += [f"- command: `{r['command']}`",
              f"- bundle: `{b['path']}` ({b['name']}), defaults {b['defaults']}",
              f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, GPU: {', '.join(m['gpu']) or 'none'}; "
              f"Python {m['python']}; load average at start {m['load_average']}, at end {r['load_average_end']}",
              "- libraries: " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
              f"- backends: {', '.join(r['backends'])}; threads per graph {r['threads']}; skipped: "
              + ("; ".join(f"{k} ({v[:90]})" for k, v in r["backends_skipped"].items()) or "none"),
              f"- audio: {r['audio']['kind']} (`{r['audio']['a']}` as A, `{r['audio']['b']}` as B), "
              f"{r['audio']['seconds']:g} s per run; 40 ms chunks",
              f"- elapsed {r['elapsed_seconds']:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["phases"].items()),
              "", "## Targets", ""]  # fmt: skip
    verdict = {True: "pass", False: "**MISS**", None: "–"}
    lines += _table(["target", "bound", "measured", "pass", "margin"],
                    [[t["name"], t["target"], _f(t["measured"], 3), verdict[t["pass"]], t["margin"]]
                     for t in r["targets"]])  # fmt: skip
    lines += ["", "## 1. Per-stage compute per block (ms, mean / p95)", ""]
    lines += _table(["backend", "setting", "graph", *STAGES, "RTF"],
                    [[c["backend"], c["label"], c["graph"],
                      *[f"{_f(c['stages_ms'][s]['mean'], 2)} / {_f(c['stages_ms'][s]['p95'], 2)}" for s in STAGES],
                      _f(c["rtf"], 3)] for c in r["compute"]])  # fmt: skip
    lines += ["", "## 2. Real-time streaming (ms; latency = chunk->frame p50 / p95 / p99 / max)", ""]
    lines += _table(["backend", "transport", "setting", "lookahead", "B+L", "latency", "bound", "block p95",
                     "mic->frame p95", "first frame", "jitter p99", "RTF", "frames"],
                    [[s["backend"], s["transport"], s["label"], _f(s["lookahead_ms"], 0), _f(s["algorithmic_ms"], 0),
                      " / ".join(_f(s["latency_ms"][k], 0) for k in ("p50", "p95", "p99", "max")),
                      _f(s["latency_bound_ms"], 0), _f(s["block_latency_ms"]["p95"], 0),
                      _f(s["mic_to_frame_ms"]["p95"], 0), _f(s["first_frame_ms"], 0), _f(s["jitter_ms"]["p99"], 0),
                      _f(s["rtf"], 3), f"{s['frames_received']}/{s['frames_expected']}"]
                     for s in r["streaming"]])  # fmt: skip
    lines += ["", "RTF: in-process = engine compute / audio; grpc = server process CPU / audio."]
    lines += _scaling(r.get("scaling"), r.get("memory"))
    lines += _reference(r.get("reference", []))
    lines += _quality(r.get("quality"), r.get("suggested_default"), b["trained"])
    lines += ["", "## Peers on this CPU (context; ../shared/research/peer-speed.md, one person, one modality)", ""]
    lines += _table(["peer", "RTF"], [[n, _f(v, 2)] for n, v in PEERS])
    lines += ["", "Definitions: benchmarks/README.md."]
    return "\n".join(lines) + "\n"


def _scaling(s: dict | None, mem: dict | None) -> list[str]:
    out = ["", "## 3. Scaling (one server process)", ""]
    if s is None:
        out.append("Not run.")
    else:
        out += [f"Setting {s['setting']}; idle server RSS {s['idle_rss_mb']:.0f} MiB. **Sessions sustained in real "
                f"time: {s['sustained_sessions']}** (stopped: {s['stopped_because']}).", ""]  # fmt: skip
        out += _table(["sessions", "worst block p95 ms", "latency p95 ms", "latency p99 ms", "jitter p99 ms",
                       "CPU cores/session", "RSS/session MiB", "complete", "sustained"],
                      [[str(lv["sessions"]), _f(lv["worst_block_latency_p95_ms"], 0), _f(lv["latency_p95_ms"], 0),
                        _f(lv["latency_p99_ms"], 0), _f(lv["jitter_p99_ms"], 0), _f(lv["cpu_per_session"], 3),
                        _f(lv["rss_per_session_mb"], 1), str(lv["frames_complete"]), str(lv["sustained"])]
                       for lv in s["levels"]])  # fmt: skip
    out += ["", "### Memory over a long session", ""]
    if mem is None:
        out.append("Not run.")
    else:
        out += [f"{mem['minutes']:g} min of audio at {mem['speed']:.1f}x real time; server RSS (MiB) at each "
                f"{mem['every_seconds']:g} s of audio: " + ", ".join(f"{t:g} s: {v:.0f}" for t, v in mem["rss_mb"]),
                f"Growth {mem['growth_mb']:+.1f} MiB: {'flat' if mem['flat'] else '**growing**'}."]  # fmt: skip
    return out


def _reference(refs: list[dict]) -> list[str]:
    out = ["", "## 4. Reference samplers (sampling only, same graphs)", ""]
    if not refs:
        return out + ["Not run."]
    for ref in refs:
        out += _reference_one(ref)
    return out


def _reference_one(ref: dict) -> list[str]:
    w, c = ref["equal_window"], ref["whole_clip"]
    out = [f"{ref['backend']} at {ref['label']}. Equal window ({w['frames']} frames, one block's three models):", ""]
    out += _table(["sampler", "ms per block", "speed-up"],
                  [["ours (K steps)", _f(w["ours_ms"], 2), "1"],
                   ["DDIM 50", _f(w["ddim50_ms"], 1), f"x{_f(w['speedup_ddim50'], 1)}"],
                   ["DDPM 150", _f(w["ddpm150_ms"], 1), f"x{_f(w['speedup_ddpm150'], 1)}"]])  # fmt: skip
    out += ["", f"Whole clip ({c['frames']} frames = {c['audio_seconds']:g} s, one pass):", ""]
    out += _table(["sampler", "seconds", "RTF", "speed-up"],
                  [["ours (streaming windows)", _f(c["ours_seconds"], 2), _f(c["ours_rtf"], 3), "1"],
                   ["DDIM 50", _f(c["ddim50_seconds"], 2), _f(c["ddim50_rtf"], 3), f"x{_f(c['speedup_ddim50'], 1)}"],
                   ["DDPM 150", _f(c["ddpm150_seconds"], 2), _f(c["ddpm150_rtf"], 3),
                    f"x{_f(c['speedup_ddpm150'], 1)}"]])  # fmt: skip
    return out + [""]


def _quality(q: dict | None, pick: dict | None, trained: bool) -> list[str]:
    out = ["", "## 5. Quality vs speed", ""]
    if not q:
        return out + ["Not run."]
    if not q["available"]:
        return out + [f"Skipped: {q['note']}"]
    out += [f"Corpus `{q['corpus']}` ({q['note']}), {len(q['clips'])} held-out clips, {q['audio_seconds']:.0f} s. "
            "Latency = B+L + p95 block compute.", ""]  # fmt: skip
    out += _table(["setting", "latency ms", "lip error", "FID_g (cm²)"],
                  [[p["label"], _f(p["latency_ms"], 0), _f(p["lip_error"], 4), _f(p["fid_g"], 1)]
                   for p in q["points"]])  # fmt: skip
    note = " (untrained bundle: meaningless)" if not trained else ""
    out += ["", f"Suggested default (rule in benchmarks/README.md): {pick['label'] if pick else 'none'}{note}"]
    return out


# ---------------------------------------------------------------------------------------------------- plot
def plot(r: dict, path: Path) -> bool:
    """Latency (x) vs lip error and FID_g (y) per K / L, and the per-stage compute; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    q = r.get("quality") or {}
    for ax, key, name in ((axes[0], "lip_error", "lip error (weight units)"), (axes[1], "fid_g", "FID_g (cm²)")):
        points = [p for p in q.get("points", []) if p[key] is not None and np.isfinite(p[key])]
        if not points:
            ax.text(0.5, 0.5, "quality not measured:\n" + q.get("note", "section not run"), ha="center",
                    va="center", wrap=True, transform=ax.transAxes)  # fmt: skip
        for k in sorted({p["steps"] for p in points}):
            ps = sorted((p for p in points if p["steps"] == k), key=lambda p: p["latency_ms"])
            ax.plot([p["latency_ms"] for p in ps], [p[key] for p in ps], "o-", label=f"K={k}")
            for p in ps:
                ax.annotate(f"L{p['lookahead']}", (p["latency_ms"], p[key]), fontsize=7)
        ax.set_xlabel("latency: (B+L)/fps + p95 block compute (ms)")
        ax.set_ylabel(name)
        ax.set_title(name + (" (untrained: meaningless)" if not r["bundle"]["trained"] else ""))
        if points:
            ax.legend()
    rows = [c for c in r["compute"] if c["backend"] == r["primary_backend"]]
    bottom = np.zeros(len(rows))
    for stage in STAGES[:-1]:
        v = np.array([c["stages_ms"][stage]["mean"] for c in rows])
        axes[2].bar(range(len(rows)), v, bottom=bottom, label=stage)
        bottom += v
    axes[2].set_xticks(range(len(rows)), [c["label"] for c in rows], rotation=90, fontsize=7)
    axes[2].set_ylabel("ms per block (mean)")
    axes[2].set_title(f"per-stage compute, {r['primary_backend']}")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"InterAct runtime benchmark {r['date']} {r['host']} ({r['bundle']['name']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(r: dict, out: Path, stem: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    r["files"] = {k: str(v) for k, v in files.items()}
    if not plot(r, files["png"]):
        del r["files"]["png"], files["png"]
    safe = json_safe(r)
    files["json"].write_text(json.dumps(safe, indent=1, allow_nan=False) + "\n")
    files["md"].write_text(markdown(safe))
    return files
