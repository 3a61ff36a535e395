"""Start-up of the ``aiocri`` command: whole processes, beside Python's own floors.

    python -m benchmarks.startup [--runs 7] [--containers 10] [--baseline DIR]

Each command runs as a user runs it (the installed ``aiocri`` script) against the
fake runtime with ``--containers`` containers, served from this process; the floors
are ``python -c pass`` and ``python -c "import grpc, google.protobuf.message"`` (what
any Python CRI client must load). Runs alternate round-robin over every command, so
a slow moment of the machine touches all of them alike. Printed: median wall and CPU
(user + system of the child) per command, the ratio to each floor, and the RPCs the
runtime served per run (a ``ps`` should be Version once and ListContainers).
``--baseline DIR``: the same commands also from another checkout of aiocri (``git
worktree add DIR COMMIT``), run as ``python -m aiocri`` with DIR first on the path, in
the same rounds, with the ratio of each command to its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import time
from collections import Counter
from typing import Any

import anyio

from aiocri.testing import FakeRuntime
from benchmarks._common import fmt_x, loadavg, median, table

FLOORS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import grpc+protobuf": [sys.executable, "-c", "import grpc, google.protobuf.message"],
}


def _command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "aiocri")
    if os.access(script, os.X_OK):
        return [script]
    found = shutil.which("aiocri")
    return [found] if found else [sys.executable, "-m", "aiocri"]


def _commands(endpoint: str, container_id: str) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, the floor it is held to)."""
    aiocri = _command()
    r = ["-r", endpoint]
    return {
        "aiocri --version": ([*aiocri, "--version"], "python -c pass"),
        "aiocri --help": ([*aiocri, "--help"], "python -c pass"),
        "aiocri ps --help": ([*aiocri, "ps", "--help"], "python -c pass"),
        "aiocri version": ([*aiocri, *r, "version"], "import grpc+protobuf"),
        "aiocri ps -a": ([*aiocri, *r, "ps", "-a"], "import grpc+protobuf"),
        "aiocri pods": ([*aiocri, *r, "pods"], "import grpc+protobuf"),
        "aiocri inspect ID": ([*aiocri, *r, "inspect", container_id], "import grpc+protobuf"),
    }


#: The targets of issue 22: command -> at most this many times its floor.
TARGETS = {"aiocri --version": 1.5, "aiocri --help": 1.5, "aiocri ps --help": 1.5, "aiocri version": 1.7,
           "aiocri ps -a": 1.7, "aiocri pods": 1.7, "aiocri inspect ID": 1.7}


#: As a user's machine runs the command: bytecode is written (pip compiles an installed
#: package; the warm-up run writes it for an editable one), the config file is empty.
_ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "CRI_CONFIG_FILE": os.devnull}


async def _once(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None
                ) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the child, exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=env or _ENV, cwd=cwd)
    _, err = await proc.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-400:]}")
    return wall, cpu, proc.returncode or 0


async def run(runs: int = 7, containers: int = 10, baseline: str | None = None
              ) -> dict[str, Any]:
    async with FakeRuntime() as rt:
        made = rt.populate(pods=max(1, containers // 5), containers_per_pod=min(5, containers))
        commands = _commands(rt.endpoint, made.container_ids[0])
        everything: dict[str, list[str]] = {**FLOORS, **{k: v[0] for k, v in commands.items()}}
        envs: dict[str, dict[str, str]] = {}
        if baseline is not None:
            old_env = {**_ENV, "PYTHONPATH": baseline}  # and run from there: -m puts the
            # current folder first on the path
            for name, (argv, _) in commands.items():
                if name == "aiocri --version":  # new in issue 22
                    continue
                everything[f"{name} [baseline]"] = [sys.executable, "-m", "aiocri", *argv[1:]]
                envs[f"{name} [baseline]"] = old_env
        walls: dict[str, list[float]] = {k: [] for k in everything}
        cpus: dict[str, list[float]] = {k: [] for k in everything}
        rpcs: dict[str, Counter[str]] = {}
        for name, argv in everything.items():  # one warm-up each (page cache, .pyc)
            await _once(argv, envs.get(name), baseline if name in envs else None)
        for n in range(runs):
            order = list(everything.items())
            if n % 2:
                order.reverse()
            for name, argv in order:
                calls = Counter(rt.calls)
                wall, cpu, _ = await _once(argv, envs.get(name),
                                           baseline if name in envs else None)
                walls[name].append(wall)
                cpus[name].append(cpu)
                rpcs[name] = Counter(rt.calls) - calls
    medians = {k: median(v) for k, v in walls.items()}
    result: dict[str, Any] = {"runs": runs, "containers": containers, "load": loadavg(),
                              "commands": {}}
    for name in everything:
        floor = commands[name][1] if name in commands else None
        base = medians.get(f"{name} [baseline]")
        result["commands"][name] = {
            "vs_baseline": None if base is None else medians[name] / base,
            "wall_s": medians[name], "cpu_s": median(cpus[name]),
            "vs_pass": medians[name] / medians["python -c pass"],
            "vs_grpc": medians[name] / medians["import grpc+protobuf"],
            "floor": floor,
            "target": TARGETS.get(name),
            "rpcs": dict(rpcs.get(name, {})),
        }
    return result


def render(result: dict[str, Any]) -> str:
    rows = []
    for name, r in result["commands"].items():
        target = r["target"]
        held = r["vs_pass"] if r["floor"] == "python -c pass" else r["vs_grpc"]
        verdict = "" if target is None else (
            f"{'met' if held <= target else 'MISSED'} (<= {target}x {r['floor']})")
        rpcs = ", ".join(f"{k} {v}" for k, v in sorted(r["rpcs"].items())) or "-"
        base = "" if r["vs_baseline"] is None else fmt_x(r["vs_baseline"])
        rows.append([name, f"{r['wall_s'] * 1000:.0f}", f"{r['cpu_s'] * 1000:.0f}",
                     fmt_x(r["vs_pass"]), fmt_x(r["vs_grpc"]), base, verdict, rpcs])
    return table(
        f"command start-up: median of {result['runs']} whole processes, alternating "
        f"(fake runtime, {result['containers']} containers; load {result['load']:.2f})",
        ["command", "wall ms", "cpu ms", "vs pass", "vs grpc", "vs baseline", "target",
         "RPCs served"],
        rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout of aiocri to run the same commands from")
    args = parser.parse_args(argv)
    baseline = None if args.baseline is None else os.path.abspath(args.baseline)
    result = anyio.run(run, args.runs, args.containers, baseline)
    print(render(result))


if __name__ == "__main__":
    main()
