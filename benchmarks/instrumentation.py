"""What instrumentation costs on the unary call path (issue 21).

ContainerStatus with 1 and 16 concurrent callers on the default asyncio loop, against
the runtime in its own process, for six clients side by side:

- ``raw``: a grpc.aio ``channel.unary_unary(path, ser, deser)`` awaited directly, on a
  channel with aiocri's channel arguments and its 120 s deadline (as in throughput.py);
- ``main``: aiocri as of MAIN_COMMIT, the commit before the instrumentation work
  (``git archive`` of its ``aiocri/`` into a temporary folder, imported from there);
- ``off``: this tree's aiocri, no instrumentation;
- ``prometheus``: ``connect(..., instrumentation=PrometheusMetrics(CollectorRegistry()))``;
- ``otel-noop``: ``OpenTelemetry(tracer_provider=NoOpTracerProvider(),
  meter_provider=NoOpMeterProvider())``;
- ``otel-sdk`` (informational): the OpenTelemetry SDK's TracerProvider with a span
  processor that does nothing (no exporter) and its MeterProvider with an in-memory
  reader that is never read (every span is made and ended, every measurement aggregated).

Every cell runs in a fresh worker process (``--worker SPEC``): its rusage (user+sys, all
threads) over the measured window is the client's own CPU. Each worker imports aiocri
from a copy made when the run starts (``main``: ``git archive``; the others: a copy of
this tree's ``aiocri/``, or ``--today COMMIT``'s), so edits made meanwhile do not mix
into one run. The runtime's threads run on CPU 0 and every worker on CPU 1 (``--no-pin``:
anywhere): less scatter from the scheduler moving them. Per repeat and concurrency, one
block of cells in the order BLOCK (``off`` twice, so that every cell compared with
``off`` has one beside it), reversed every other block (AB / BA); the concurrencies
alternate too. A figure is the median over repeats; a ratio is the median of the
per-block ratios of adjacent cells, with its noise (the standard error of that median,
from the spread of the per-block ratios).

A second measurement takes grpc and the runtime out: each client's call path in front
of a stub that answers at once (1 caller; per worker, loops of ~0.1 s of calls timed
by the thread's CPU clock, the best loop; a few workers per client, alternating): what
each client's own Python costs per call, to a few ns. That cost over the live CPU per
call gives each ratio again, without the live cells' scatter.

    python -m benchmarks.instrumentation [--quick] [--repeats N] [--duration S]
                                         [--today COMMIT] [--no-pin]
    python -m benchmarks --only instrumentation [--quick]
    python -m benchmarks.instrumentation --profile [--cells off,prometheus] [--conc 16]
                                         [--stub]   # cProfile of the workers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import anyio

from benchmarks._common import (
    AIOCRI_CHANNEL_OPTIONS,
    V1,
    ContainerdRuntime,
    FakeRuntime,
    Meter,
    fmt,
    fmt_x,
    loadavg,
    median,
    ratio,
    run_worker,
    sample_ids,
    table,
    worker_output,
)

MAIN_COMMIT = "4566a06"
KINDS = ("raw", "main", "off", "prometheus", "otel-noop", "otel-sdk")
INSTRUMENTED = ("prometheus", "otel-noop", "otel-sdk")
#: One block: every cell compared with ``off`` sits next to an ``off`` cell.
BLOCK = ("main", "off", "raw", "otel-sdk", "prometheus", "off", "otel-noop")
CONCURRENCY = (1, 16)
RPC = "ContainerStatus"
DEADLINE = 120.0  # aiocri's default per-call deadline, given to raw too
DISTURBED = 0.25  # another user's CPU (cores) above which a block is measured again
RERUNS = 2  # rounds of re-measuring disturbed blocks
#: (numerator, denominator, target for CPU per call or None)
COMPARISONS = (
    ("off", "main", 1.02),
    ("off", "raw", None),
    ("prometheus", "off", 1.05),
    ("otel-noop", "off", 1.05),
    ("otel-sdk", "off", None),
)

FULL = {"duration": 2.0, "warmup": 0.5, "repeats": 16,
        "stub_seconds": 0.1, "stub_loops": 15, "stub_rounds": 5}
QUICK = {"duration": 0.3, "warmup": 0.1, "repeats": 1,
         "stub_seconds": 0.05, "stub_loops": 5, "stub_rounds": 1}
#: Where the runtime's threads and the client workers run (``pin``: one core each).
SERVER_CPUS, CLIENT_CPUS = [0], [1]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ===================================================================== worker side


class _Done:
    """An awaitable that completes at once with a canned response (no I/O)."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response

    def __await__(self) -> Any:
        return self.response
        yield  # a generator: ``await`` on it returns at once


def _instrumentation(kind: str) -> tuple[Any, Any]:
    """The ``instrumentation=`` argument for ``kind``, and a function that tells how
    many calls it recorded (None: it cannot tell)."""
    if kind == "prometheus":
        from prometheus_client import CollectorRegistry

        from aiocri.metrics import PrometheusMetrics

        registry = CollectorRegistry()

        def recorded() -> float | None:
            total = 0.0
            names = ["aiocri_runtime_operations_total"]
            for metric in registry.restricted_registry(names).collect():
                for sample in metric.samples:
                    if (sample.name == "aiocri_runtime_operations_total"
                            and sample.labels.get("operation_type") == "container_status"):
                        total += sample.value
            return total

        return PrometheusMetrics(registry), recorded
    if kind == "otel-noop":
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import NoOpTracerProvider

        from aiocri.tracing import OpenTelemetry

        return OpenTelemetry(tracer_provider=NoOpTracerProvider(),
                             meter_provider=NoOpMeterProvider()), lambda: None
    if kind == "otel-sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        from aiocri.tracing import OpenTelemetry

        class Nothing(SpanProcessor):
            """Exports nothing; counts the ended spans (one integer add)."""

            ended = 0

            def on_end(self, span: Any) -> None:
                Nothing.ended += 1

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(Nothing())
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return OpenTelemetry(tracer_provider=tracer_provider,
                             meter_provider=meter_provider), lambda: float(Nothing.ended)
    return None, lambda: None


async def _measure(fn: Any, request: Any, spec: dict[str, Any],
                   profiler: Any = None) -> dict[str, Any]:
    """``spec["conc"]`` tasks await ``fn(request)`` in a loop; count over ``duration``
    after ``warmup`` (``profiler``: enabled over the measured window only)."""
    state = {"stop": False}
    count = [0]

    async def caller() -> None:
        while not state["stop"]:
            await fn(request)
            count[0] += 1

    tasks = [asyncio.create_task(caller()) for _ in range(spec["conc"])]
    meter = Meter(spec.get("server_pid"))
    try:
        await asyncio.sleep(spec["warmup"])
        if profiler is not None:
            profiler.enable()
        c0 = count[0]
        t0 = time.time()
        meter.start()
        await asyncio.sleep(spec["duration"])
        c1 = count[0]
        meter.stop()
        t1 = time.time()
        if profiler is not None:
            profiler.disable()
    finally:
        state["stop"] = True
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    calls = c1 - c0
    return {
        "calls": calls,
        "calls_total": count[0],  # warm-up and the last calls included
        "window": [t0, t1],
        "wall": meter.wall,
        "calls_s": calls / meter.wall,
        "cpu_us": meter.cpu / calls * 1e6 if calls else math.nan,
        "client_cores": meter.cpu / meter.wall,
        "server_cores": meter.server_cpu / meter.wall,
        "server_us": meter.server_cpu / calls * 1e6 if calls else math.nan,
        "other_cores": meter.other_cores,
    }


async def _live_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """ContainerStatus in a loop (under cProfile, written to ``spec["cprofile"]``,
    when given)."""
    import grpc.aio

    from aiocri._proto.runtime.v1 import api_pb2 as pb

    profiler = None
    if spec.get("cprofile"):
        import cProfile

        profiler = cProfile.Profile()
    kind = spec["kind"]
    request = pb.ContainerStatusRequest(container_id=spec["ids"]["container"])
    if kind == "raw":
        channel = grpc.aio.insecure_channel(spec["endpoint"], options=AIOCRI_CHANNEL_OPTIONS)
        try:
            await channel.channel_ready()
            stub = channel.unary_unary(
                V1 + RPC, request_serializer=pb.ContainerStatusRequest.SerializeToString,
                response_deserializer=pb.ContainerStatusResponse.FromString)
            result = await _measure(functools.partial(stub, timeout=DEADLINE), request,
                                    spec, profiler)
        finally:
            await channel.close(None)
        if profiler is not None:
            profiler.dump_stats(spec["cprofile"])
        return {**result, "options": [list(o) for o in AIOCRI_CHANNEL_OPTIONS]}

    import aiocri

    instrumentation, recorded = _instrumentation(kind)
    kwargs = {} if instrumentation is None else {"instrumentation": instrumentation}
    async with aiocri.connect(spec["endpoint"], **kwargs) as client:
        before = recorded()
        result = await _measure(client.runtime.container_status, request, spec, profiler)
        after = recorded()
        manager = client._runtime_manager
        options = getattr(getattr(manager, "_dialer", manager), "_options", None)
    if profiler is not None:
        profiler.dump_stats(spec["cprofile"])
    return {**result,
            "recorded": None if before is None or after is None else
            (after - before) / result["calls_total"],
            "options": None if options is None else [list(o) for o in options]}


async def _stub_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """The client's call path in front of a stub that answers at once: ns per call."""
    import aiocri
    from aiocri._proto.runtime.v1 import api_pb2 as pb

    kind = spec["kind"]
    done = _Done(pb.ContainerStatusResponse())

    def stub(request: Any, timeout: float | None = None, **kwargs: Any) -> _Done:
        return done

    request = pb.ContainerStatusRequest(container_id=spec["ids"]["container"])

    async def loop(fn: Any, n: int) -> float:
        t = time.thread_time()  # this thread's CPU: time another process takes is not ours
        for _ in range(n):
            await fn(request)
        return (time.thread_time() - t) / n * 1e9

    instrumentation, recorded = _instrumentation(kind)
    kwargs = {} if instrumentation is None else {"instrumentation": instrumentation}
    async with aiocri.connect(spec["endpoint"], **kwargs) as client:
        if kind == "raw":
            fn: Any = functools.partial(stub, timeout=DEADLINE)
        else:
            live = client._runtime_manager._live  # the current generation's callables
            assert live is not None
            live.unary[RPC] = stub  # behind the client's own path
            fn = client.runtime.container_status
        before = recorded()
        n = max(1000, int(spec["stub_seconds"] * 1e9 / await loop(fn, 2000)))
        profiler = None
        if spec.get("cprofile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        loops = [await loop(fn, n) for _ in range(spec["stub_loops"])]
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(spec["cprofile"])
        after = recorded()
    return {"ns": min(loops), "ns_median": median(loops), "n": n, "loops": len(loops),
            "calls": n * len(loops),
            "recorded": None if before is None or after is None else
            (after - before) / (2000 + n * len(loops))}


def worker_main(spec: dict[str, Any]) -> None:
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    import aiocri

    where = os.path.dirname(os.path.dirname(os.path.abspath(aiocri.__file__)))
    if os.path.realpath(where) != os.path.realpath(spec["tree"]):
        raise RuntimeError(f"aiocri imported from {where}, not from {spec['tree']}")
    result = asyncio.run(_stub_cell(spec) if spec.get("stub") else _live_cell(spec))
    worker_output({"kind": spec["kind"], "conc": spec.get("conc"), **result})


# ===================================================================== orchestrator


def _archive(ref: str, folder: str) -> None:
    os.makedirs(folder)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref, "aiocri"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)


def _describe(ref: str | None) -> str:
    """What "today" is: a commit, or the working tree (HEAD and whether aiocri/ differs)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                              text=True).stdout.strip()

    if ref is not None:
        return git("rev-parse", "--short", ref)
    dirty = git("status", "--porcelain", "--", "aiocri")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


@contextlib.contextmanager
def _trees(log: Any, today_ref: str | None = None,
           main_ref: str = MAIN_COMMIT) -> Iterator[dict[str, str]]:
    """Folders to import aiocri from: ``main`` (``main_ref``) and ``today`` (a copy of
    this tree's ``aiocri/`` taken now, or of commit ``today_ref``); removed afterwards."""
    top = tempfile.mkdtemp(prefix="aiocri-bench-instr-", dir="/tmp")
    try:
        main_tree = os.path.join(top, "main")
        _archive(main_ref, main_tree)
        today = os.path.join(top, "today")
        if today_ref is not None:
            _archive(today_ref, today)
        else:
            shutil.copytree(os.path.join(REPO, "aiocri"), os.path.join(today, "aiocri"),
                            ignore=shutil.ignore_patterns("__pycache__"))
        log(f"  instrumentation: aiocri of {main_ref} in {main_tree}, "
            f"{_describe(today_ref)} in {today}")
        yield {"main": main_tree, "today": today, "today_is": _describe(today_ref)}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _available(today: str) -> tuple[list[str], dict[str, str]]:
    """The kinds this run can measure, and why the others are left out."""
    missing: dict[str, str] = {}
    needs = {"prometheus": ("aiocri/metrics.py", "prometheus_client"),
             "otel-noop": ("aiocri/tracing.py", "opentelemetry.trace"),
             "otel-sdk": ("aiocri/tracing.py", "opentelemetry.sdk.trace")}
    import importlib.util

    for kind, (module, package) in needs.items():
        if not os.path.exists(os.path.join(today, module)):
            missing[kind] = f"{module} does not exist yet"
        elif importlib.util.find_spec(package.split(".")[0]) is None or (
                importlib.util.find_spec(package) is None):
            missing[kind] = f"{package} is not installed"
    return [k for k in KINDS if k not in missing], missing


def _block(kinds: list[str]) -> list[str]:
    if not any(k in kinds for k in INSTRUMENTED):
        return [k for k in ("main", "off", "raw") if k in kinds]
    return [k for k in BLOCK if k in kinds]


async def _measure_block(order: list[str], base: dict[str, Any], trees: dict[str, str],
                         block: int, conc: int, log: Any) -> list[dict[str, Any]]:
    out = []
    for pos, kind in enumerate(order):
        tree = trees["main"] if kind == "main" else trees["today"]
        spec = {**base, "kind": kind, "conc": conc, "tree": tree}
        res = await run_worker("benchmarks.instrumentation", spec, pythonpath=[tree, REPO])
        out.append({**res, "block": block, "pos": pos})
    log(f"  instrumentation: block {block} x{conc} "
        + " ".join(f"{c['kind']} {c['cpu_us']:.1f}" for c in out)
        + f" µs/call (load {loadavg():.2f})")
    return out


@contextlib.contextmanager
def _pinned(pid: int | None, cpus: list[int]) -> Iterator[bool]:
    """Every thread of process ``pid`` on ``cpus`` (threads it makes later inherit
    it); put back as it was afterwards. Yields False where it cannot be done."""
    if pid is None or (os.cpu_count() or 1) < 2:
        yield False
        return
    before: dict[int, set[int]] = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                before[int(tid)] = os.sched_getaffinity(int(tid))
                os.sched_setaffinity(int(tid), cpus)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        for tid, mask in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)


async def run(runtime: Any, *, quick: bool, repeats: int | None = None,
              duration: float | None = None, pin: bool = True, today: str | None = None,
              only: list[str] | None = None, log: Any = print,
              main: str = MAIN_COMMIT) -> dict[str, Any]:
    """Every cell against ``runtime`` (a started FakeRuntime or ContainerdRuntime).

    ``pin``: the runtime's threads on one core, each worker on the other (where there
    are two): less scatter from the scheduler moving them; figures stay comparable
    between cells, not with throughput.py's unpinned ones. ``today``: a commit to
    measure as "today's aiocri" (default: this tree's ``aiocri/`` as it is now).
    ``only``: these clients alone (a focused check). ``main``: the commit whose aiocri
    is the ``main`` client."""
    params = dict(QUICK if quick else FULL)
    if repeats is not None:
        params["repeats"] = repeats
    if duration is not None:
        params["duration"] = duration
    container_id, pod_id, _ = await sample_ids(runtime.endpoint)
    with contextlib.ExitStack() as stack:
        pinned = pin and stack.enter_context(_pinned(runtime.server_pid, SERVER_CPUS))
        params["pinned"] = bool(pinned)
        base = {"endpoint": runtime.endpoint, "ids": {"container": container_id, "pod": pod_id},
                "server_pid": runtime.server_pid, "duration": params["duration"],
                "warmup": params["warmup"], "cpus": CLIENT_CPUS if pinned else None}
        result = await _run(runtime, params, base, quick, today, only, log, main)
    return result


async def _run(runtime: Any, params: dict[str, Any], base: dict[str, Any], quick: bool,
               today: str | None, only: list[str] | None, log: Any,
               main: str = MAIN_COMMIT) -> dict[str, Any]:
    cells: list[dict[str, Any]] = []
    stubs: list[dict[str, Any]] = []
    with _trees(log, today, main) as trees:
        kinds, missing = _available(trees["today"])
        for kind, why in missing.items():
            log(f"  instrumentation: {kind} left out: {why}")
        if only:
            kinds = [k for k in kinds if k in only]
        block = _block(kinds)
        n = 0
        for r in range(params["repeats"]):
            # The order of the cells turns every repeat (AB / BA for each concurrency);
            # which concurrency goes first, every other repeat too.
            order = block if r % 2 == 0 else block[::-1]
            for conc in CONCURRENCY if r % 4 < 2 else CONCURRENCY[::-1]:
                cells += await _measure_block(order, base, trees, n, conc, log)
                n += 1
        reruns = 0
        if not quick:
            for _ in range(RERUNS):
                bad = sorted({c["block"] for c in cells if c["other_cores"] > DISTURBED},
                             key=lambda b: -max(c["other_cores"] for c in cells
                                                if c["block"] == b))
                bad = bad[:max(0, n // 2 - reruns)]  # at most half as many blocks again
                if not bad:
                    break
                reruns += len(bad)
                for b in bad:
                    old = [c for c in cells if c["block"] == b]
                    order = [c["kind"] for c in sorted(old, key=lambda c: c["pos"])]
                    log(f"  instrumentation: block {b} was disturbed, measuring it again")
                    fresh = await _measure_block(order, base, trees, b, old[0]["conc"], log)
                    if (max(c["other_cores"] for c in fresh)
                            < max(c["other_cores"] for c in old)):
                        cells = [c for c in cells if c["block"] != b] + fresh
        stub_kinds = [k for k in KINDS if k in kinds]
        for r in range(params["stub_rounds"]):
            for kind in stub_kinds if r % 2 == 0 else stub_kinds[::-1]:
                tree = trees["main"] if kind == "main" else trees["today"]
                res = await run_worker(
                    "benchmarks.instrumentation",
                    {**base, "kind": kind, "tree": tree, "stub": True,
                     "stub_seconds": params["stub_seconds"], "stub_loops": params["stub_loops"]},
                    pythonpath=[tree, REPO])
                stubs.append({**res, "round": r})
        expected = [list(o) for o in AIOCRI_CHANNEL_OPTIONS]
        options = {kind: all(c.pop("options", None) == expected for c in cells
                             if c["kind"] == kind) for kind in kinds}
        log("  instrumentation: no-I/O path " + " ".join(
            f"{s['kind']} {s['ns']:.0f}" for s in stubs) + " ns/call")
    return {
        "params": params,
        "main_commit": main,
        "today": trees["today_is"],
        "server": f"{runtime.kind}" + (" (uvloop)" if runtime.kind == "fake" else ""),
        "missing": missing,
        "block": block,
        "same_channel_options": options,
        "cells": cells,
        "stubs": stubs,
        "reruns": reruns,
        "summary": summarize(cells, stubs),
    }


def _nearest(items: list[dict[str, Any]], a: str, b: str, key: str) -> float:
    """``a``'s figure over ``b``'s in one block, from the cells next to each other
    (both neighbours, averaged, when two are as near)."""
    xs = [c for c in items if c["kind"] == a]
    ys = [c for c in items if c["kind"] == b]
    if not xs or not ys:
        return math.nan
    dist = min(abs(x["pos"] - y["pos"]) for x in xs for y in ys)
    near = [(x, y) for x in xs for y in ys if abs(x["pos"] - y["pos"]) == dist]
    num = {id(x): x[key] for x, _ in near}
    den = {id(y): y[key] for _, y in near}
    return ratio(sum(num.values()) / len(num), sum(den.values()) / len(den))


def _noise(values: list[float]) -> float:
    """Standard error of the median (normal approximation, spread from the MAD)."""
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 2:
        return math.nan
    m = median(values)
    mad = median([abs(v - m) for v in values]) * 1.4826
    return 1.2533 * mad / math.sqrt(len(values))


def summarize(cells: list[dict[str, Any]], stubs: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    blocks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        groups[(c["kind"], c["conc"])].append(c)
        blocks[c["block"]].append(c)
    rows: dict[str, Any] = {}
    for (kind, conc), items in groups.items():
        rec = [c["recorded"] for c in items if c.get("recorded") is not None]
        rows[f"{kind}/{conc}"] = {
            "kind": kind, "conc": conc,
            "calls_s": median([c["calls_s"] for c in items]),
            "cpu_us": median([c["cpu_us"] for c in items]),
            "cpu_noise": _noise([c["cpu_us"] for c in items]),
            "calls": sum(c["calls"] for c in items),
            "server_cores": median([c["server_cores"] for c in items]),
            "other_max": max(c["other_cores"] for c in items),
            "recorded_per_call": median(rec) if rec else None,
            "n": len(items),
        }
    ratios: dict[str, Any] = {}
    for a, b, target in COMPARISONS:
        for conc in CONCURRENCY:
            per = [items for items in blocks.values() if items[0]["conc"] == conc]
            cpu = [_nearest(items, a, b, "cpu_us") for items in per]
            calls = [_nearest(items, a, b, "calls_s") for items in per]
            cpu = [v for v in cpu if not math.isnan(v)]
            calls = [v for v in calls if not math.isnan(v)]
            if not cpu:
                continue
            ratios[f"{a}/{b}/{conc}"] = {
                "a": a, "b": b, "conc": conc, "target": target,
                "cpu": median(cpu), "cpu_noise": _noise(cpu),
                "cpu_min": min(cpu), "cpu_max": max(cpu),
                "calls": median(calls), "calls_noise": _noise(calls), "n": len(cpu),
                "met": None if target is None else median(cpu) <= target,
            }
    stub_rows: dict[str, Any] = {}
    for st in stubs:
        row = stub_rows.setdefault(st["kind"], {"ns": math.inf, "runs": [], "recorded": None})
        row["ns"] = min(row["ns"], st["ns"])
        row["runs"].append(st["ns"])
        if st.get("recorded") is not None:
            row["recorded"] = st["recorded"]
        row.setdefault("medians", []).append(st.get("ns_median", math.nan))
    # What the client's own path adds (no I/O): best against best; the range is that of
    # the rounds' differences. Then that cost as a share of b's CPU per call measured live.
    by_round = {(st["kind"], st.get("round", 0)): st["ns"] for st in stubs}
    for a, b, _target in COMPARISONS:
        deltas = [(by_round[(a, r)] - by_round[(b, r)]) / 1000
                  for (k, r) in by_round if k == a and (b, r) in by_round]
        if not deltas:
            continue
        delta = (stub_rows[a]["ns"] - stub_rows[b]["ns"]) / 1000
        for conc in CONCURRENCY:
            r = ratios.get(f"{a}/{b}/{conc}")
            base = rows.get(f"{b}/{conc}")
            if r is None or base is None:
                continue
            r["path_us"] = delta
            r["path_us_range"] = (min(deltas), max(deltas))
            r["path"] = (base["cpu_us"] + delta) / base["cpu_us"]
            r["path_noise"] = (max(deltas) - min(deltas)) / 2 / base["cpu_us"]
            if r["target"] is not None:
                r["path_met"] = r["path"] <= r["target"]
    return {"rows": rows, "ratios": ratios, "stubs": stub_rows}


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows, ratios, stubs = s["rows"], s["ratios"], s["stubs"]
    p = result["params"]
    labels = {
        "raw": "raw grpc.aio stub",
        "main": f"aiocri {result['main_commit']} (before)",
        "off": "aiocri, no instrumentation",  # today's
        "prometheus": "aiocri + PrometheusMetrics",
        "otel-noop": "aiocri + OpenTelemetry (no-op providers)",
        "otel-sdk": "aiocri + OpenTelemetry SDK (no exporter)",
    }
    body = []
    for kind in KINDS:
        cells = [kind]
        row1, row16 = rows.get(f"{kind}/1"), rows.get(f"{kind}/16")
        if row1 is None and row16 is None:
            continue
        cells = [labels[kind]]
        for row in (row1, row16):
            if row is None:
                cells += ["n/a"] * 3
                continue
            cells += [fmt(row["calls_s"]), f"{row['cpu_us']:.1f} ± {row['cpu_noise']:.1f}",
                      fmt(row["server_cores"], ".2f")]
        other = max(r["other_max"] for r in (row1, row16) if r is not None)
        cells.append(fmt(other, ".2f") + (" !" if other > DISTURBED else ""))
        rec = [r["recorded_per_call"] for r in (row1, row16)
               if r is not None and r["recorded_per_call"] is not None]
        cells.append(", ".join(f"{v:.2f}" for v in rec) if rec else "")
        body.append(cells)
    out = [table(
        f"Instrumentation: {RPC}, asyncio loop ({result['server']} server)",
        ["client", "x1 calls/s", "x1 CPU µs/call", "x1 server cores",
         "x16 calls/s", "x16 CPU µs/call", "x16 server cores", "other load",
         "recorded/call"],
        body,
        notes=[
            f"{p['repeats']} repeats x {len(CONCURRENCY)} concurrencies: one block per repeat "
            f"and concurrency, order {' '.join(result['block'])} (reversed every other "
            f"block), each cell a fresh worker process, {p['duration']:g} s measured after "
            f"{p['warmup']:g} s warm-up; figures are medians over repeats (± the standard "
            f"error of the median). CPU = the worker's user+sys / calls. "
            f"{result.get('reruns', 0)} disturbed block(s) re-measured.",
            f"'main' = aiocri/ of {result['main_commit']}; every other aiocri = "
            f"{result.get('today', 'this tree')}.",
            "'recorded/call': what the instrumentation recorded per call made (Prometheus: "
            "aiocri_runtime_operations_total; SDK: spans ended), 1.00 = every call.",
            "'other load' = cores used by processes other than client and server (max); "
            f"'!' marks > {DISTURBED}.",
            "channel arguments of every client the same as raw's (aiocri's): "
            + ("yes" if all((result.get("same_channel_options") or {"?": False}).values())
               else f"NO: {result.get('same_channel_options')}"),
            ("runtime threads pinned to CPU " + ",".join(map(str, SERVER_CPUS))
             + ", each worker to CPU " + ",".join(map(str, CLIENT_CPUS)))
            if p.get("pinned") else "not pinned to CPUs",
        ] + [f"{k} left out: {why}" for k, why in result.get("missing", {}).items()],
    )]
    body = []
    for a, b, target in COMPARISONS:
        cells = [f"{a} / {b}", "<= " + fmt_x(target) if target else "(informational)"]
        measured, path = [], []
        for conc in CONCURRENCY:
            r = ratios.get(f"{a}/{b}/{conc}")
            if r is None:
                cells += ["n/a", "n/a"]
                continue
            cells += [f"{r['cpu']:.3f}x ± {r['cpu_noise'] * 100:.1f}%", f"{r['calls']:.3f}x"]
            if r["met"] is not None:
                measured.append(r["met"])
            if r.get("path_met") is not None:
                path.append(r["path_met"])
        r1, r16 = ratios.get(f"{a}/{b}/1"), ratios.get(f"{a}/{b}/16")
        if r1 is not None and "path_us" in r1:
            lo, hi = r1["path_us_range"]
            cells.append(f"{r1['path_us']:+.2f} µs ({lo:+.2f}..{hi:+.2f})")
            cells.append(" / ".join(f"{r['path']:.3f}x" for r in (r1, r16)
                                    if r is not None and "path" in r))
        else:
            cells += ["n/a", "n/a"]
        if target is None:
            cells.append("")
        else:
            cells.append("measured " + ("n/a" if not measured else "MET" if all(measured)
                                        else "MISSED")
                         + ", from the path cost " + ("n/a" if not path else "MET" if all(path)
                                                      else "MISSED"))
        body.append(cells)
    out.append(table(
        "Instrumentation: CPU per call, ratios",
        ["ratio", "target (CPU/call)", "x1 CPU/call", "x1 calls/s", "x16 CPU/call",
         "x16 calls/s", "client path, no I/O", "path cost / CPU per call, x1 / x16",
         "verdict"],
        body,
        notes=["x1 / x16 CPU/call and calls/s: medians of the per-block ratios of adjacent "
               "cells (± the standard error of that median, in % of 1.0x).",
               "client path, no I/O: what the first client's own path costs per call more "
               "than the second's in front of a stub that answers at once (best against "
               "best; in brackets the range of the rounds' differences); next column: that "
               "cost added to the second client's CPU per call measured live, as a ratio: "
               "the same comparison without the live cells' scatter. It leaves out grpc's "
               "handling of metadata the instrumentation adds (otel-sdk's traceparent), "
               "and takes the best loop while the live cells run at the machine's average "
               "speed (see 'median loop'): read it as a lower bound within that factor."],
    ))
    if stubs:
        body = []
        off = stubs.get("off", {}).get("ns")
        for kind in KINDS:
            st = stubs.get(kind)
            if st is None:
                continue
            body.append([labels[kind], f"{st['ns']:.0f}",
                         "" if off is None or kind == "off" else f"{st['ns'] - off:+.0f}",
                         " / ".join(f"{v:.0f}" for v in st["runs"]),
                         " / ".join(f"{v:.0f}" for v in st.get("medians", []))])
        out.append(table(
            "Instrumentation: the client's own path, no I/O (a stub that answers at once)",
            ["client", "ns/call (best)", "vs off", "best per worker", "median loop per worker"],
            body,
            notes=[f"1 caller; per worker process, {p['stub_loops']} loops of about "
                   f"{p['stub_seconds']:g} s of calls (this thread's CPU time); best loop; "
                   f"{p['stub_rounds']} worker(s) per client, alternating. The stub "
                   "replaces the grpc callable behind the client's path (raw: awaited "
                   "directly): what is left is the client's own Python."],
        ))
    return "\n".join(out)


# ===================================================================== profiling


async def profile(cells: list[str], conc: int, seconds: float, out_dir: str,
                  stub: bool = False, today: str | None = None) -> str:
    """cProfile of the worker of each of ``cells`` (ContainerStatus x ``conc``; with
    ``stub``, 1 caller in front of the stub that answers at once)."""
    import pstats

    os.makedirs(out_dir, exist_ok=True)
    notes = []
    async with FakeRuntime(pods=20, containers_per_pod=5) as runtime:
        container_id, pod_id, _ = await sample_ids(runtime.endpoint)
        base = {"endpoint": runtime.endpoint, "ids": {"container": container_id, "pod": pod_id},
                "server_pid": runtime.server_pid, "duration": seconds, "warmup": 0.5,
                "conc": conc, "stub": stub, "stub_seconds": seconds / 10, "stub_loops": 10,
                "cpus": CLIENT_CPUS if (os.cpu_count() or 1) > 1 else None}
        with _trees(print, today) as trees:
            for kind in cells:
                tree = trees["main"] if kind == "main" else trees["today"]
                what = "stub" if stub else f"x{conc}"
                path = os.path.join(out_dir, f"cprofile-{kind}-{what}.pstats")
                res = await run_worker("benchmarks.instrumentation",
                                       {**base, "kind": kind, "tree": tree, "cprofile": path},
                                       pythonpath=[tree, REPO])
                st = pstats.Stats(path)
                calls = res["calls"]
                total = st.total_tt  # type: ignore[attr-defined]
                head = (f"{RPC} in front of a stub that answers at once, 1 caller" if stub
                        else f"{RPC} x{conc}, asyncio, {res['calls_s']:.0f} calls/s "
                        "under the profiler")
                buf = [f"## cProfile, {kind}: {head}, {calls} calls, profiled time "
                       f"{total / calls * 1e6:.1f} µs/call",
                       "", "| function | calls/call | tottime µs/call | cumtime µs/call |",
                       "|---|--:|--:|--:|"]
                stats = st.stats  # type: ignore[attr-defined]
                items = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
                for (file, line, func), (_cc, nc, tt, ct, _callers) in items[:20]:
                    where = f"{os.path.basename(file)}:{line}({func})" if line else func
                    buf.append(f"| `{where}` | {nc / calls:.2f} | {tt / calls * 1e6:.2f} | "
                               f"{ct / calls * 1e6:.2f} |")
                ours = [(k, v) for k, v in stats.items()
                        if any(m in k[0] for m in ("prometheus_client", "opentelemetry",
                                                   "aiocri/metrics.py", "aiocri/tracing.py",
                                                   "aiocri/instrument.py",
                                                   "aiocri/_observed.py"))]
                if ours:
                    own = sum(v[2] for _, v in ours)
                    buf += ["", f"instrumentation frames (aiocri/metrics.py, tracing.py, "
                            f"instrument.py, _observed.py, prometheus_client, opentelemetry): "
                            f"{own / calls * 1e6:.2f} µs/call of own time; by cumulative time:",
                            "", "| function | calls/call | tottime µs/call | cumtime µs/call |",
                            "|---|--:|--:|--:|"]
                    for (file, line, func), (_cc, nc, tt, ct, _callers) in sorted(
                            ours, key=lambda kv: kv[1][3], reverse=True)[:25]:
                        where = f"{file.split('site-packages/')[-1].split('/today/')[-1]}" \
                                f":{line}({func})"
                        buf.append(f"| `{where}` | {nc / calls:.2f} | {tt / calls * 1e6:.2f} | "
                                   f"{ct / calls * 1e6:.2f} |")
                notes.append("\n".join(buf))
    text = "\n\n".join(notes) + "\n"
    await anyio.Path(out_dir, "profile.md").write_text(text)
    return text


# ===================================================================== entry point


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instrumentation",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", choices=("fake", "containerd"), default="fake")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--today", metavar="COMMIT",
                        help="measure this commit's aiocri/ as today's (default: the "
                             "working tree's, copied when the run starts)")
    parser.add_argument("--main", metavar="COMMIT", default=MAIN_COMMIT,
                        help=f"the aiocri to compare 'off' with (default {MAIN_COMMIT}, "
                             "the commit before the instrumentation work)")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the runtime and the workers on every CPU")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the workers of --cells against the fake runtime")
    parser.add_argument("--cells",
                        help="comma-separated clients to measure (default: all; with "
                             "--profile: off,prometheus,otel-noop)")
    parser.add_argument("--conc", type=int, default=16, help="with --profile: callers")
    parser.add_argument("--stub", action="store_true",
                        help="with --profile: in front of a stub that answers at once")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    if args.profile:
        cells = [c.strip() for c in (args.cells or "off,prometheus,otel-noop").split(",")
                 if c.strip()]
        print(anyio.run(profile, cells, args.conc, args.duration or 5.0,
                        os.path.join(args.out, "instrumentation-profile"), args.stub,
                        args.today))
        return

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    async def standalone() -> dict[str, Any]:
        rt: Any = (FakeRuntime(pods=20, containers_per_pod=5) if args.runtime == "fake"
                   else ContainerdRuntime())
        async with rt:
            return await run(rt, quick=args.quick, repeats=args.repeats,
                             duration=args.duration, pin=not args.no_pin, today=args.today,
                             only=args.cells.split(",") if args.cells else None, log=log,
                             main=_describe(args.main) or args.main)  # a commit, not "HEAD~3"

    print(report(anyio.run(standalone)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
