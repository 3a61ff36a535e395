"""This tree's throughput and recovery beside another checkout's, alternating.

Each round runs ``python -m benchmarks --runtime fake --only SECTIONS`` once in each tree
(each with its own harness and its own aiocri, the same interpreter), in ABBA order, and
reads the figures the closing notes compare: aiocri/raw grpc.aio calls/s and CPU per call
pooled over every configuration, and recovery's worst p95 (from the socket's return and
after the runtime's own first answer) and the restart-required signal's p95.

    python -m benchmarks.ab_checkout --other DIR [--rounds 2] [--only throughput,recovery]

DIR is a checkout of another commit (``git worktree add DIR COMMIT``); run from this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks._common import loadavg, percentile, table

THIS_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (label, section, path into the section's summary, unit)
FIGURES = (
    ("calls/s aiocri/raw, pooled", "throughput", ("targets", "pooled", "calls"), "x"),
    ("CPU per call aiocri/raw, pooled", "throughput", ("targets", "pooled", "cpu"), "x"),
    ("recovery worst p95, socket back -> call", "recovery",
     ("targets", "aiocri_p95", "worst"), "ms"),
    ("recovery worst p95, after the runtime's answer", "recovery",
     ("targets", "aiocri_after_runtime_p95", "worst"), "ms"),
    ("restart-required p95", "recovery", ("restart_required", "p95"), "ms"),
)


def _run(tree: str, sections: str, out: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks", "--runtime", "fake", "--only", sections,
           "--out", out]
    env = dict(os.environ, PYTHONPATH=tree)
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "fake.json")) as f:
        result: dict[str, Any] = json.load(f)
    return result


def _figure(result: dict[str, Any], section: str, path: tuple[str, ...]) -> float | None:
    node: Any = result.get(section, {}).get("summary")
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, (int, float)) else None


def _pooled_recovery(got: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """Every outage of every run of a tree in one sample: a steadier p95 than the worst
    of six kinds' p95 over five outages each (that one is near a maximum of 30)."""
    rows = []
    for label, after_runtime in (("recovery, all outages pooled", False),
                                 ("recovery after the runtime's answer, pooled", True)):
        cells = []
        for which in ("other", "this"):
            vals = [(o["clients"]["aiocri"] - (o["runtime_answers"] if after_runtime else 0.0))
                    * 1000.0
                    for r in got[which] for o in r.get("recovery", {}).get("outages", [])
                    if o["clients"].get("aiocri") is not None
                    and (not after_runtime or o.get("runtime_answers") is not None)]
            cells.append(vals)
        if all(cells):
            p95 = [percentile(v, 95) for v in cells]
            med = [statistics.median(v) for v in cells]
            rows.append([f"{label}, median ms (n)",
                         *(f"{m:.1f} ({len(v)})" for m, v in zip(med, cells, strict=True)),
                         _change(*med)])
            rows.append([f"{label}, p95 ms", *(f"{p:.1f}" for p in p95), _change(*p95)])
    return rows


def _change(before: float, after: float) -> str:
    """after/before; in ms where before is near zero or below (a ratio means nothing)."""
    return f"{after / before:.3f}x" if before >= 1.0 else f"{after - before:+.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_checkout")
    parser.add_argument("--other", required=True, help="a checkout of another commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="throughput,recovery")
    args = parser.parse_args(argv)
    trees = {"this": THIS_TREE, "other": os.path.abspath(args.other)}
    got: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
    with tempfile.TemporaryDirectory(prefix="aiocri-ab-") as top:
        for i in range(args.rounds):
            for which in ("other", "this") if i % 2 else ("this", "other"):
                print(f"round {i + 1}: {which} (load {loadavg():.2f})", file=sys.stderr,
                      flush=True)
                got[which].append(_run(trees[which], args.only,
                                       os.path.join(top, f"{which}-{i}")))
    rows = []
    notes = []
    for label, section, path, unit in FIGURES:
        per = {w: [v for r in got[w] if (v := _figure(r, section, path)) is not None]
               for w in got}
        short = [w for w in per if len(per[w]) < args.rounds]
        if short:  # a section that failed in a run (its error is in that run's output)
            notes.append(f"{label}: missing from {len(got[short[0]]) - len(per[short[0]])} "
                         f"run(s) of {', '.join(short)}")
        if not per["this"] or not per["other"]:
            continue
        scale, fmt = (1000.0, "{:.1f}") if unit == "ms" else (1.0, "{:.3f}")
        cells = []
        for which in ("other", "this"):
            vals = [v * scale for v in per[which]]
            each = ", ".join(fmt.format(v) for v in vals)
            cells.append(f"{fmt.format(statistics.median(vals))} ({each})")
        ratio = statistics.median(per["this"]) / statistics.median(per["other"])
        rows.append([label + ("" if unit == "x" else " ms"), *cells, f"{ratio:.3f}x"])
    rows += _pooled_recovery(got)
    print(table(f"this tree beside {args.other}, {args.rounds} alternating rounds "
                "(median (each run))", ["figure", "other", "this", "this/other"], rows, notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
