"""Two pollers side by side: this tree's and another checkout's, alternating.

    git worktree add /tmp/old <commit>
    python -m benchmarks.ab_polling --other /tmp/old [--rounds 3]

One fake runtime process (2,000 pods x 5 containers, the polling benchmark's churn)
serves both; each run is a fresh worker process of the tree under test
(``benchmarks.polling --worker``, relist mode, 1 s period, 10 periods), in ABBA
order. Prints client CPU and the worst change latency of each run, then medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks._common import FakeRuntime
from benchmarks.polling import CHURN, FULL, PERIOD


async def _run_worker(tree: str, endpoint: str, server_pid: int | None) -> dict[str, object]:
    spec = {"period": PERIOD, **FULL, "endpoint": endpoint, "mode": "relist",
            "server_pid": server_pid}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.polling", "--worker", json.dumps(spec),
        cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout, _ = await proc.communicate()
    result: dict[str, object] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


THIS_TREE = str(Path(__file__).resolve().parent.parent)


async def run(other: str, rounds: int) -> None:
    trees = {"this": THIS_TREE, "other": other}
    cpu: dict[str, list[float]] = {"this": [], "other": []}
    worst: dict[str, list[float]] = {"this": [], "other": []}
    async with FakeRuntime(pods=2000, containers_per_pod=5, churn_per_second=CHURN) as rt:
        for i in range(rounds):
            for which in ("other", "this") if i % 2 else ("this", "other"):
                res = await _run_worker(trees[which], rt.endpoint, rt.server_pid)
                lats = res["latencies"]
                assert isinstance(lats, list)
                cpu[which].append(float(res["cpu_pct"]))  # type: ignore[arg-type]
                worst[which].append(max(lats) if lats else float("nan"))
                print(f"{which:5} cpu {cpu[which][-1]:.2f}%  latency max "
                      f"{worst[which][-1] * 1000:.0f} ms", flush=True)
    for which in ("this", "other"):
        runs = ", ".join(f"{c:.2f}" for c in cpu[which])
        print(f"{which:5} cpu median {statistics.median(cpu[which]):.2f}% ({runs}); "
              f"latency max worst {max(worst[which]) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_polling")
    parser.add_argument("--other", required=True, help="a checkout of another commit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.other, args.rounds))


if __name__ == "__main__":
    main()
