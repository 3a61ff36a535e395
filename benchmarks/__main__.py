"""``python -m benchmarks``: every benchmark, side by side, in one run.

    python -m benchmarks [--runtime fake|containerd] [--quick]
                         [--only throughput,recovery,polling] [--out benchmarks/results]
    python -m benchmarks --only instrumentation    # not in the default run (~17 min)

Prints tables (absolute figures and ratios), writes ``OUT/RUNTIME.json``, ``OUT/RUNTIME.md``
(the same tables) and ``OUT/RUNTIME.png`` (one chart).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback
from typing import Any

import anyio

from benchmarks import instrumentation, polling, recovery, throughput
from benchmarks._common import ContainerdRuntime, FakeRuntime, loadavg, machine_info

ALL = ("throughput", "polling", "recovery")  # recovery last: it restarts the runtime
#: Run only when named in --only; in this order among ALL's.
OPTIONAL = ("instrumentation",)
ORDER = ("throughput", "polling", "instrumentation", "recovery")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "runtime": args.runtime,
        "quick": args.quick,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "machine": machine_info(),
    }
    begin = time.monotonic()

    async def section(name: str, fn: Any) -> None:
        _log(f"== {name} (load {loadavg():.2f})")
        t = time.monotonic()
        try:
            results[name] = await fn()
        except Exception as exc:  # one broken section must not lose the others
            _log(traceback.format_exc())
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results.setdefault("seconds", {})[name] = round(time.monotonic() - t, 1)

    if args.runtime == "fake":
        for name in only:
            if name == "throughput":
                async def tp() -> Any:
                    async with FakeRuntime(pods=20, containers_per_pod=5) as rt:
                        return await throughput.run(rt, quick=args.quick, repeats=args.repeats,
                                                    duration=args.duration, log=_log)
                await section(name, tp)
            elif name == "polling":
                await section(name, lambda: polling.run("fake", quick=args.quick, log=_log))
            elif name == "instrumentation":
                async def ins() -> Any:
                    async with FakeRuntime(pods=20, containers_per_pod=5) as rt:
                        return await instrumentation.run(rt, quick=args.quick, log=_log)
                await section(name, ins)
            elif name == "recovery":
                async def rec() -> Any:
                    async with FakeRuntime(pods=20, containers_per_pod=5) as rt:
                        return await recovery.run(rt, quick=args.quick, log=_log)
                await section(name, rec)
    else:
        _log("== starting a private containerd and 20 pods x 5 containers")
        async with ContainerdRuntime(pods=20, containers_per_pod=5,
                                     series=args.containerd) as ctd:
            results["containerd"] = {"create_seconds": round(ctd.create_seconds, 1),
                                     "pods": ctd.pods, "containers_per_pod": ctd.containers_per_pod,
                                     "series": args.containerd}
            for name in only:
                if name == "throughput":
                    await section(name, lambda: throughput.run(
                        ctd, quick=args.quick, repeats=args.repeats, duration=args.duration,
                        log=_log))
                elif name == "polling":
                    await section(name, lambda: polling.run(
                        "containerd", quick=args.quick, containerd=ctd, log=_log))
                elif name == "instrumentation":
                    await section(name, lambda: instrumentation.run(
                        ctd, quick=args.quick, log=_log))
                elif name == "recovery":
                    await section(name, lambda: recovery.run(ctd, quick=args.quick, log=_log))
    results["total_seconds"] = round(time.monotonic() - begin, 1)
    results["machine"]["loadavg_at_end"] = loadavg()
    return results


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    head = [
        f"## aiocri benchmarks: runtime {results['runtime']}"
        + (" (quick)" if results["quick"] else ""),
        "",
        f"`{results['command']}` on {results['started']}, {results['total_seconds']:.0f} s; "
        f"{m['cpus']} cores ({m['cpu_model']}), Python {m['python']}, grpcio {m['grpcio']}, "
        f"protobuf {m['protobuf']}, uvloop {m['uvloop']}; load average "
        f"{m['loadavg_at_start']:.2f} at start, {m['loadavg_at_end']:.2f} at end.",
        "",
    ]
    parts = ["\n".join(head)]
    for name, mod in (("throughput", throughput), ("recovery", recovery), ("polling", polling),
                      ("instrumentation", instrumentation)):
        res = results.get(name)
        if res is None:
            continue
        if "error" in res:
            parts.append(f"### {name}\n\nFAILED: {res['error']}\n")
            continue
        parts.append(mod.report(res))
    return "\n".join(parts)


def draw(results: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(17, 10))
    (a, b), (c, d) = axes
    drawn = False
    tp = results.get("throughput")
    if tp and "error" not in tp:
        throughput.plot(a, b, tp)
        drawn = True
    else:
        a.axis("off")
        b.axis("off")
    rec = results.get("recovery")
    if rec and "error" not in rec:
        recovery.plot(c, rec)
        drawn = True
    else:
        c.axis("off")
    pol = results.get("polling")
    if pol and "error" not in pol:
        polling.plot(d, pol)
        drawn = True
    else:
        d.axis("off")
    fig.suptitle(f"aiocri benchmarks, runtime {results['runtime']}"
                 + (" (quick)" if results["quick"] else "")
                 + f", {results['started']}")
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=110)
    plt.close(fig)


def _clean(obj: Any) -> Any:
    """JSON without NaN (null instead)."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _rerender(path: str) -> int:
    """Recompute the summaries of a saved run with this code, print and redraw it."""
    with open(path) as f:
        results = json.load(f)
    _restore_nan(results)
    tp = results.get("throughput")
    if tp and "error" not in tp:
        tp["summary"] = throughput.summarize(tp["cells"])
    rec = results.get("recovery")
    if rec and "error" not in rec:
        rec["summary"] = recovery.summarize(rec)
    pol = results.get("polling")
    if pol and "error" not in pol:
        pol["targets"] = polling._targets(pol["rows"])
    ins = results.get("instrumentation")
    if ins and "error" not in ins:
        ins["summary"] = instrumentation.summarize(ins["cells"], ins["stubs"])
    text = render(results)
    print(text)
    base = path.removesuffix(".json")
    with open(base + ".json", "w") as f:
        json.dump(_clean(results), f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(text)
    draw(results, base + ".png")
    return 0


def _restore_nan(obj: Any) -> None:
    """null -> NaN for the measured numbers the summaries take medians of."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if v is None and k in ("cpu_us", "server_us", "calls_s"):
                obj[k] = math.nan
            else:
                _restore_nan(v)
    elif isinstance(obj, list):
        for v in obj:
            _restore_nan(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", choices=("fake", "containerd"), default="fake")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (under ~2 minutes): short cells, one repeat")
    parser.add_argument("--only", default=",".join(ALL),
                        help="comma-separated subset of throughput,recovery,polling,"
                             "instrumentation (the last only when named)")
    parser.add_argument("--containerd", choices=("1.6", "1.7"), default="1.6",
                        help="with --runtime containerd: Debian's 1.6.20 or the 1.7 that "
                             ".ci/system-deps unpacked (recovery's upgrade rounds use both)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--repeats", type=int,
                        help="throughput worker processes per loop (default 2, quick 1)")
    parser.add_argument("--duration", type=float,
                        help="throughput seconds per cell (default 1, quick 0.3)")
    parser.add_argument("--render", metavar="JSON",
                        help="only re-render the tables and chart of a saved results file")
    args = parser.parse_args(argv)
    if args.render:
        return _rerender(args.render)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in ALL + OPTIONAL]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    only = [s for s in ORDER if s in only]
    if args.runtime == "containerd":
        from aiocri.testing.containerd import containerd_available

        reason = containerd_available()
        if not reason and args.containerd == "1.7":
            from aiocri.testing.containerd import containerd_17

            if containerd_17() is None:
                reason = "no containerd 1.7 (run `sh .ci/system-deps` as root)"
        if reason:
            print(f"cannot run containerd here: {reason}", file=sys.stderr)
            return 2

    results = anyio.run(_run, args, only)
    text = render(results)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, args.runtime)
    with open(base + ".json", "w") as f:
        json.dump(_clean(results), f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(text)
    draw(results, base + ".png")
    _log(f"wrote {base}.json, {base}.md, {base}.png")
    failed = [k for k in ORDER if isinstance(results.get(k), dict) and "error" in results[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
