"""Leak soak: does anything of a client accumulate over restarts and reconnects?

    python -m benchmarks.soak [--restarts 1000] [--cycles 200]

Phase 1: one connected client; the fake runtime runs as a separate process and is
SIGKILLed and started again ``--restarts`` times (its socket file left behind, as
after a real crash); after each restart the client makes a call, which must
succeed. Phase 2: ``--cycles`` connect / call / close cycles. File descriptors,
asyncio tasks and RSS of this process are sampled after a warm-up and at the end;
the targets are growth of at most 5 fds and 5 tasks, and 20 MiB of RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import time
from typing import Any

import aiocri
from aiocri.testing import FakeRuntimeProcess
from benchmarks._common import short_tmpdir, table, vmrss_kib

WARMUP = 20
POLICY = aiocri.RedialPolicy(connect_timeout=10.0)


def _sample() -> dict[str, float]:
    gc.collect()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "rss_mib": vmrss_kib() / 1024,
    }


async def _restarts(rt: FakeRuntimeProcess, n: int) -> dict[str, Any]:
    samples: dict[str, dict[str, float]] = {}
    recover: list[float] = []
    async with aiocri.connect(rt.endpoint, redial=POLICY) as client:
        await client.runtime.version()
        for i in range(n):
            if i == min(WARMUP, n):
                samples["warm"] = _sample()
            await rt.kill()
            await rt.start()
            up = time.monotonic()
            await client.runtime.version(timeout=10)
            recover.append(time.monotonic() - up)
        samples["end"] = _sample()
        generations = client.generation
        redials = client.stats.redials
    samples.setdefault("warm", samples["end"])
    recover.sort()
    return {"samples": samples, "generations": generations, "redials": redials,
            "recover_p50_ms": 1000 * recover[len(recover) // 2],
            "recover_p95_ms": 1000 * recover[int(len(recover) * 0.95) - 1 if recover else 0]}


async def _cycles(rt: FakeRuntimeProcess, n: int) -> dict[str, Any]:
    samples: dict[str, dict[str, float]] = {}
    for i in range(n):
        if i == min(WARMUP, n):
            samples["warm"] = _sample()
        client = await aiocri.connect(rt.endpoint, redial=POLICY)
        try:
            await client.runtime.list_containers()
        finally:
            await client.aclose()
    samples["end"] = _sample()
    samples.setdefault("warm", samples["end"])
    return {"samples": samples}


async def run(restarts: int, cycles: int) -> dict[str, Any]:
    folder = short_tmpdir("aiocri-soak-")
    try:
        async with FakeRuntimeProcess(os.path.join(folder, "rt.sock"), pods=5,
                                      containers_per_pod=4) as rt:
            started = time.monotonic()
            first = await _restarts(rt, restarts)
            second = await _cycles(rt, cycles)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"restarts": restarts, "cycles": cycles, "seconds": time.monotonic() - started,
            "restart_phase": first, "cycle_phase": second}


def render(result: dict[str, Any]) -> str:
    rows = []
    verdicts = []
    for name, phase, n in (("SIGKILL restarts", result["restart_phase"], result["restarts"]),
                           ("connect/close cycles", result["cycle_phase"], result["cycles"])):
        warm, end = phase["samples"]["warm"], phase["samples"]["end"]
        growth = {k: end[k] - warm[k] for k in warm}
        ok = growth["fds"] <= 5 and growth["tasks"] <= 5 and growth["rss_mib"] <= 20
        verdicts.append(ok)
        rows.append([f"{name} ({n})", f"{warm['fds']:.0f} -> {end['fds']:.0f}",
                     f"{warm['tasks']:.0f} -> {end['tasks']:.0f}",
                     f"{warm['rss_mib']:.1f} -> {end['rss_mib']:.1f}",
                     f"{growth['fds']:+.0f} / {growth['tasks']:+.0f} / {growth['rss_mib']:+.1f}",
                     "ok" if ok else "OVER"])
    rp = result["restart_phase"]
    notes = [
        f"after a warm-up of {WARMUP}; targets: growth <= 5 fds, <= 5 tasks, <= 20 MiB RSS",
        f"restart phase: {rp['redials']} redials for {result['restarts']} restarts, generation "
        f"{rp['generations']}; first call after the runtime was back: p50 "
        f"{rp['recover_p50_ms']:.1f} ms, p95 {rp['recover_p95_ms']:.1f} ms",
        f"{result['seconds']:.0f} s in all",
    ]
    return table("leak soak (fake runtime as a process, real SIGKILL)",
                 ["phase", "fds", "tasks", "RSS MiB", "growth fds / tasks / MiB", "verdict"],
                 rows, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--restarts", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.restarts, args.cycles))
    print(render(result))
    return 0 if "OVER" not in render(result) else 1


if __name__ == "__main__":
    sys.exit(main())
