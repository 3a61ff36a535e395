"""One caller's CPU per call, this tree beside another commit, the clients taking turns.

Three client processes, each connected to the same fake runtime and all on one CPU (the
runtime's threads on the other): ``other`` (a commit's ``aiocri/``, ``git archive``),
``this`` (a copy of this tree's ``aiocri/``) and ``control`` (a second copy of this
tree). They call ContainerStatus one at a time, in turns of ``--calls`` calls: while
one runs, the others wait on their pipes. Each round runs the three in a rotated order.
A turn's rusage (every thread of the process) over its calls is its CPU per call.

Why turns: at one caller the CPU per call of one worker process scatters by +-5 % from
one run to the next on this VM (instrumentation.py alternates whole processes), which
hides a difference of a few percent. Turns of a fraction of a second put every client
under the same minute of the machine. ``control`` against ``this`` is an A/A pair: the
noise floor the ``this``/``other`` ratio is read against.

    python -m benchmarks.ab_turns [--other COMMIT] [--sessions 3] [--rounds 48] [--calls 1000]
                                  [--runtime fake|containerd]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from benchmarks._common import ContainerdRuntime, FakeRuntime, loadavg, sample_ids, table
from benchmarks.instrumentation import REPO, _archive, _describe, _pinned

#: The commit issue 19 was filed against.
OTHER_COMMIT = "c10c631"
CLIENTS = ("other", "this", "control")
WARMUP_CALLS = 500


async def _child(endpoint: str, container_id: str, calls: int) -> None:
    """One client: after a warm-up, a turn of ``calls`` calls per "go" on stdin."""
    import aiocri
    from aiocri._proto.runtime.v1 import api_pb2 as pb

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    request = pb.ContainerStatusRequest(container_id=container_id)
    async with aiocri.connect(endpoint) as client:
        for _ in range(WARMUP_CALLS):
            await client.runtime.container_status(request)
        print("ready", flush=True)
        while (await reader.readline()).strip() == b"go":
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(calls):
                await client.runtime.container_status(request)
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
            print(f"{cpu / calls * 1e6} {(t1 - t0) / calls * 1e6}", flush=True)


def _spawn(tree: str, endpoint: str, container_id: str, calls: int,
           cpu: int | None) -> subprocess.Popen[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    # one hash seed for all: a process's dict layouts are part of its own bias
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, REPO]), PYTHONHASHSEED="0")
    return subprocess.Popen(
        [*pin, sys.executable, "-m", "benchmarks.ab_turns", "--child", tree, endpoint,
         container_id, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env, cwd=tree)  # -m puts the working folder first on sys.path


def _turn(proc: subprocess.Popen[str]) -> tuple[float, float]:
    stdin: IO[str] = proc.stdin  # type: ignore[assignment]
    stdout: IO[str] = proc.stdout  # type: ignore[assignment]
    stdin.write("go\n")
    stdin.flush()
    line = stdout.readline()
    if not line:
        raise RuntimeError(f"a client ended early (exit {proc.wait()})")
    cpu, wall = map(float, line.split())
    return cpu, wall


def _end(procs: dict[str, subprocess.Popen[str]]) -> None:
    """Each client closes its stdin's loop and its client; killed if it does not."""
    for proc in procs.values():
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run(*, other: str, sessions: int, rounds: int, calls: int,
              runtime_kind: str = "fake", pin: bool = True, log: Any = print) -> dict[str, Any]:
    """``sessions`` times: three fresh clients, ``rounds`` rounds of turns."""
    top = tempfile.mkdtemp(prefix="aiocri-bench-turns-", dir="/tmp")
    procs: dict[str, subprocess.Popen[str]] = {}
    found: list[dict[str, list[tuple[float, float]]]] = []
    try:
        trees = {name: os.path.join(top, name) for name in CLIENTS}
        _archive(other, trees["other"])
        for name in ("this", "control"):
            shutil.copytree(os.path.join(REPO, "aiocri"), os.path.join(trees[name], "aiocri"),
                            ignore=shutil.ignore_patterns("__pycache__"))
        runtime_: Any = (FakeRuntime(pods=20, containers_per_pod=5) if runtime_kind == "fake"
                         else ContainerdRuntime(pods=2, containers_per_pod=2))
        async with runtime_ as runtime:
            container_id, _, _ = await sample_ids(runtime.endpoint)
            cpus = sorted(os.sched_getaffinity(0))
            with _pinned(runtime.server_pid, cpus[:1] if pin else cpus) as pinned:
                client_cpu = cpus[1] if pinned and len(cpus) > 1 else None
                for session in range(sessions):
                    try:
                        for name in CLIENTS:
                            procs[name] = _spawn(trees[name], runtime.endpoint, container_id,
                                                 calls, client_cpu)
                        for name, proc in procs.items():
                            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                                raise RuntimeError(f"the {name} client did not start")
                        log(f"  turns: session {session + 1}/{sessions}, {rounds} rounds of "
                            f"{calls} calls on {runtime_kind}, other = {other}, "
                            f"this = {_describe(None)} (load {loadavg():.2f})")
                        turns: dict[str, list[tuple[float, float]]] = {n: [] for n in CLIENTS}
                        for i in range(rounds):
                            order = CLIENTS[i % 3:] + CLIENTS[:i % 3]
                            for name in order if i % 6 < 3 else tuple(reversed(order)):
                                turns[name].append(_turn(procs[name]))
                        found.append(turns)
                    finally:
                        _end(procs)  # before the runtime goes
    finally:
        _end(procs)
        shutil.rmtree(top, ignore_errors=True)
    return {"other": other, "this": _describe(None), "sessions": sessions, "rounds": rounds,
            "calls": calls, "runtime": runtime_kind, "turns": found}


def _per_round(found: list[dict[str, list[tuple[float, float]]]], a: str, b: str,
               index: int) -> list[list[float]]:
    """b/a of each round (index 0: CPU, 1: wall), one list per session."""
    return [[y[index] / x[index] for x, y in zip(t[a], t[b], strict=True)] for t in found]


def report(result: dict[str, Any]) -> str:
    found = result["turns"]
    pooled = {n: [turn for t in found for turn in t[n]] for n in CLIENTS}
    per_client = table(
        f"one caller, ContainerStatus on {result['runtime']}: {result['sessions']} sessions "
        f"of fresh clients x {result['rounds']} rounds of {result['calls']} calls",
        ["client", "aiocri of", "CPU µs/call (median)", "wall µs/call (median)"],
        [[n, result["other"] if n == "other" else result["this"],
          f"{statistics.median(c for c, _ in pooled[n]):.1f}",
          f"{statistics.median(w for _, w in pooled[n]):.1f}"] for n in CLIENTS])
    rows = []
    for label, a, b in (("this/other", "other", "this"), ("control/other", "other", "control"),
                        ("control/this (A/A)", "this", "control")):
        for what, index in (("CPU", 0), ("wall", 1)):
            sessions = _per_round(found, a, b, index)
            every = [r for one in sessions for r in one]
            se = 1.2533 * statistics.stdev(every) / len(every) ** 0.5  # of the median
            medians = [statistics.median(one) for one in sessions]
            # rounds of one session share its processes' bias: the sessions' spread says more
            between = (statistics.stdev(medians) / len(medians) ** 0.5 if len(medians) > 1
                       else float("nan"))
            rows.append([f"{what} {label}", f"{statistics.median(every):.3f}x", f"+-{se:.3f}",
                         f"+-{between:.3f}", ", ".join(f"{m:.3f}" for m in medians)])
    ratios = table(
        "per round, the turns' ratio: median over every round, its standard error from the "
        "rounds and from the sessions' medians, and the median of each session (fresh "
        "processes: a process's own bias shows there)",
        ["pair", "median", "noise (rounds)", "noise (sessions)", "each session"],
        sorted(rows, key=lambda r: r[0][:3]))
    return per_client + "\n" + ratios


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        tree, endpoint, container_id, calls = argv[1:5]
        import aiocri

        where = os.path.dirname(os.path.dirname(os.path.abspath(aiocri.__file__)))
        if os.path.realpath(where) != os.path.realpath(tree):
            raise RuntimeError(f"aiocri imported from {where}, not from {tree}")
        asyncio.run(_child(endpoint, container_id, int(calls)))
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_turns",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", default=OTHER_COMMIT, help="the commit to compare with")
    parser.add_argument("--sessions", type=int, default=3, help="fresh clients each time")
    parser.add_argument("--rounds", type=int, default=48,
                        help="rounds of turns a session (a multiple of 6: every order as often)")
    parser.add_argument("--calls", type=int, default=1000, help="calls per turn")
    parser.add_argument("--runtime", choices=("fake", "containerd"), default="fake",
                        help="containerd: Debian's 1.6, started here (root)")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 6 or args.rounds % 6 or args.calls < 1 or args.sessions < 1:
        parser.error("--rounds must be a multiple of 6, --calls and --sessions at least 1")
    result = asyncio.run(run(other=args.other, sessions=args.sessions, rounds=args.rounds,
                             calls=args.calls,
                             runtime_kind=args.runtime, pin=not args.no_pin))
    print(report(result))


if __name__ == "__main__":
    main()
