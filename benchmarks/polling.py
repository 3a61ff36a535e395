"""Polling: aiocri.poller.Poller's CPU, latency and memory at a 1 s period.

For each population (fake runtime: 1,000 and 10,000 containers, 5 per pod;
containerd: the pods the run created) and each mode (``relist``, ``events``), a
fresh worker process connects, enters ``Poller(client, period=1.0, mode=...)``,
waits for the first relist, lets 2 periods pass, then measures over N periods:

- client CPU (rusage of the worker: poller, client, grpc threads and the consumer
  loop) as % of one core;
- the latency of each reported change: the consumer's wall-clock time when the event
  comes out of the iterator minus the runtime's own timestamp of that change
  (``created_at`` for CONTAINER_CREATED, ``started_at`` for CONTAINER_STARTED,
  ``finished_at`` for CONTAINER_EXITED; both clocks are this machine's);
- memory: VmRSS before connecting, after the first relist, and its growth while
  measuring.

Changes come from the fake runtime's own churn (``--churn-per-second``: a container
exits, its next attempt is created and started, the dead one removed) or, with
containerd, from the orchestrator (every second: StopContainer one container with
timeout 0, create and start its next attempt, remove the one stopped a second
before).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from typing import Any

import anyio

from benchmarks._common import (
    FakeRuntime,
    Meter,
    fmt,
    fmt_ms,
    median,
    percentile,
    raw_channel,
    run_worker,
    table,
    vmrss_kib,
    worker_output,
)

PERIOD = 1.0
FAKE_SIZES = (1_000, 10_000)
PER_POD = 5
# Change rates not commensurate with the 1 s period, so that changes fall at every
# phase of the relist cycle (a rate of 5/s would always hit the same 5 phases).
CHURN = 4.7  # fake runtime: container restarts per second
CONTAINERD_CHURN = 0.7
FULL = {"warm": 2, "periods": 10}
QUICK = {"warm": 1, "periods": 3}
CPU_TARGET = 5.0  # % of one core, 10,000 containers at 1 s
RELIST_SLACK = 0.020
EVENT_TARGET = 0.020


# ===================================================================== worker side


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import aiocri
    from aiocri.poller import EventKind, Poller

    rss_start = vmrss_kib()
    wall_connect = time.time_ns()
    period = spec["period"]
    out: dict[str, Any] = {"mode": spec["mode"], "rss_start_kib": rss_start}
    latencies: list[tuple[str, float]] = []
    kinds: dict[str, int] = {}

    async with aiocri.connect(spec["endpoint"]) as client:
        out["pinned"] = client.version.name
        try:
            async with Poller(client, period=period, mode=spec["mode"]) as poller:
                t0 = time.monotonic()
                await poller.wait_synced()
                out["first_relist_s"] = time.monotonic() - t0
                out["rss_synced_kib"] = vmrss_kib()
                out["synced_containers"] = len(poller.snapshot.containers)

                async def consume() -> None:
                    async for event in poller:
                        now = time.time_ns()
                        kinds[event.kind.name] = kinds.get(event.kind.name, 0) + 1
                        status = event.status
                        ts = 0
                        if status is not None:
                            if event.kind is EventKind.CONTAINER_CREATED:
                                ts = status.created_at
                            elif event.kind is EventKind.CONTAINER_STARTED:
                                ts = status.started_at
                            elif event.kind is EventKind.CONTAINER_EXITED:
                                ts = status.finished_at
                        if ts > wall_connect:  # not the initial inventory
                            latencies.append((event.kind.name, (now - ts) / 1e9))

                task = asyncio.create_task(consume())
                try:
                    await asyncio.sleep(spec["warm"] * period)
                    kinds.clear()
                    latencies.clear()
                    meter = Meter(spec.get("server_pid"))
                    rss_a = vmrss_kib()
                    relists0 = poller.stats.relists
                    fetches0 = poller.stats.status_fetches
                    meter.start()
                    await asyncio.sleep(spec["periods"] * period)
                    meter.stop()
                    rss_b = vmrss_kib()
                    stats = poller.stats
                    out.update({
                        "cpu_pct": meter.cpu / meter.wall * 100,
                        "cpu_ms_per_period": meter.cpu / (meter.wall / period) * 1000,
                        "server_cores": meter.server_cpu / meter.wall,
                        "other_cores": meter.other_cores,
                        "wall": meter.wall,
                        "rss_growth_kib": rss_b - rss_a,
                        "rss_end_kib": rss_b,
                        "relists": stats.relists - relists0,
                        "status_fetches": stats.status_fetches - fetches0,
                        "last_relist_s": stats.last_relist_duration,
                        "watch_mode": stats.mode,
                        "container_list": stats.container_list,
                        "runtime_events": stats.runtime_events,
                        "errors": dict(stats.errors),
                        "events": dict(kinds),
                        "latencies": [lat for _, lat in latencies],
                        "latency_kinds": [k for k, _ in latencies],
                    })
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        except aiocri.CRIError as error:  # the client's and poller's errors leave unwrapped
            out["error"] = f"{type(error).__name__}: {error}"
    return out


def worker_main(spec: dict[str, Any]) -> None:
    worker_output(asyncio.run(_worker(spec)))


# ===================================================================== orchestrator


async def _containerd_churn(endpoint: str, pod_configs: dict[str, Any], rate: float,
                            stop: anyio.Event) -> int:
    """Every 1/rate s: stop one running container (timeout 0), create and start its
    next attempt, remove the container stopped the tick before."""
    from aiocri import api
    from aiocri.testing.containerd import container_config

    def m(channel: Any, name: str, req: Any, resp: Any) -> Any:
        return channel.unary_unary(f"/runtime.v1.RuntimeService/{name}",
                                   request_serializer=req.SerializeToString,
                                   response_deserializer=resp.FromString)

    steps = 0
    async with raw_channel(endpoint) as ch:
        list_c = m(ch, "ListContainers", api.ListContainersRequest, api.ListContainersResponse)
        stop_c = m(ch, "StopContainer", api.StopContainerRequest, api.StopContainerResponse)
        rm_c = m(ch, "RemoveContainer", api.RemoveContainerRequest, api.RemoveContainerResponse)
        create_c = m(ch, "CreateContainer", api.CreateContainerRequest, api.CreateContainerResponse)
        start_c = m(ch, "StartContainer", api.StartContainerRequest, api.StartContainerResponse)
        running = [c for c in (await list_c(api.ListContainersRequest(), timeout=30)).containers
                   if c.state == api.CONTAINER_RUNNING]
        queue = [(c.id, c.pod_sandbox_id, c.metadata.name, c.metadata.attempt) for c in running]
        pending: str | None = None
        due = time.monotonic()
        try:
            while not stop.is_set() and queue:
                cid, pod, name, attempt = queue.pop(0)
                await stop_c(api.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
                if pending:
                    await rm_c(api.RemoveContainerRequest(container_id=pending), timeout=30)
                new = (await create_c(api.CreateContainerRequest(
                    pod_sandbox_id=pod, config=container_config(name, attempt=attempt + 1),
                    sandbox_config=pod_configs[pod]),
                    timeout=30)).container_id
                await start_c(api.StartContainerRequest(container_id=new), timeout=30)
                queue.append((new, pod, name, attempt + 1))
                pending = cid
                steps += 1
                due += 1 / rate
                with anyio.move_on_after(max(0.0, due - time.monotonic())):
                    await stop.wait()
        finally:
            if pending:
                with anyio.CancelScope(shield=True):
                    await rm_c(api.RemoveContainerRequest(container_id=pending), timeout=30)
    return steps


async def run(kind: str, *, quick: bool, containerd: Any = None, log: Any = print) -> dict[str, Any]:
    params = dict(QUICK if quick else FULL)
    base = {"period": PERIOD, **params}
    rows: list[dict[str, Any]] = []
    if kind == "fake":
        for n in FAKE_SIZES:
            async with FakeRuntime(pods=n // PER_POD, containers_per_pod=PER_POD,
                                   churn_per_second=CHURN) as rt:
                for mode in ("relist", "events"):
                    log(f"  polling: fake, {n} containers, {mode}")
                    res = await run_worker("benchmarks.polling", {
                        **base, "endpoint": rt.endpoint, "mode": mode,
                        "server_pid": rt.server_pid})
                    rows.append({"runtime": "fake", "containers": n, "churn": CHURN, **res})
    else:
        from benchmarks._common import sample_ids

        _, _, n = await sample_ids(containerd.endpoint)
        for mode in ("relist", "events"):
            log(f"  polling: containerd, {n} containers, {mode}")
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                steps: list[int] = []

                async def churn(stop: anyio.Event = stop, steps: list[int] = steps) -> None:
                    steps.append(await _containerd_churn(
                        containerd.endpoint, containerd.pod_configs, CONTAINERD_CHURN, stop))

                tg.start_soon(churn)
                try:
                    res = await run_worker("benchmarks.polling", {
                        **base, "endpoint": containerd.endpoint, "mode": mode,
                        "server_pid": containerd.server_pid})
                finally:
                    stop.set()
            rows.append({"runtime": "containerd", "containers": n, "churn": CONTAINERD_CHURN,
                         "churn_steps": steps[0] if steps else 0, **res})
    for row in rows:
        lats = row.get("latencies") or []
        row["latency"] = {"n": len(lats), "median": median(lats), "p95": percentile(lats, 95),
                          "p99": percentile(lats, 99), "max": max(lats) if lats else math.nan}
    return {"params": {**base}, "rows": rows, "targets": _targets(rows)}


def _targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    big = [r for r in rows if r["containers"] >= 10_000 and r["mode"] == "relist" and "cpu_pct" in r]
    if big:
        out["cpu_10k"] = {"target": f"<= {CPU_TARGET:g}% of one core (10,000 containers, relist)",
                          "value": big[0]["cpu_pct"], "met": big[0]["cpu_pct"] <= CPU_TARGET}
    relist = [r for r in rows if r["mode"] == "relist" and r.get("latency", {}).get("n")]
    if relist:
        worst = max(r["latency"]["max"] for r in relist)
        out["relist_latency"] = {"target": f"max <= period + {RELIST_SLACK * 1000:.0f} ms",
                                 "value": worst, "met": worst <= PERIOD + RELIST_SLACK}
    events = [r for r in rows if r["mode"] == "events" and r.get("latency", {}).get("n")]
    if events:
        worst = max(r["latency"]["median"] for r in events)
        out["event_latency"] = {"target": f"median <= {EVENT_TARGET * 1000:.0f} ms",
                                "value": worst, "met": worst <= EVENT_TARGET}
    return out


def report(result: dict[str, Any]) -> str:
    body = []
    for r in result["rows"]:
        if "error" in r:
            body.append([r["runtime"], r["containers"], r["mode"], "n/a", "n/a", "n/a", "n/a",
                         "n/a", "n/a", "n/a", r["error"][:120]])
            continue
        lat = r["latency"]
        body.append([
            r["runtime"], r["containers"], r["mode"],
            fmt(r["cpu_pct"], ".2f", "%"),
            fmt(r["cpu_ms_per_period"], ".1f", " ms"),
            f"{fmt_ms(lat['median'])} / {fmt_ms(lat['p95'])} / {fmt_ms(lat['max'])}",
            lat["n"],
            f"{(r['rss_synced_kib'] - r['rss_start_kib']) / 1024:.1f} MiB",
            f"{r['rss_growth_kib'] / 1024:+.1f} MiB",
            fmt_ms(r.get("first_relist_s")),
            f"{r.get('watch_mode')}, {r.get('relists')} relists ({r.get('container_list') or '-'}), "
            f"{r.get('status_fetches')} status calls, other load {r.get('other_cores', 0):.2f}",
        ])
    p = result["params"]
    out = [table(
        f"Polling at a {p['period']:g} s period: client CPU, change latency, memory",
        ["runtime", "containers", "mode", "CPU (1 core)", "CPU/period",
         "latency med / p95 / max", "changes", "RSS for snapshot", "RSS growth",
         "first relist", "notes"],
        body,
        notes=[
            f"CPU over {p['periods']} periods after {p['warm']} warm-up periods: the worker "
            "process (poller + client + grpc threads + the consumer loop).",
            f"Churn: fake runtime {CHURN:g} container restarts/s (exit, next attempt created and "
            f"started, old one removed); containerd {CONTAINERD_CHURN:g}/s driven by the "
            "benchmark (stop, create+start next attempt, remove the previous). Rates are not "
            "divisors of the period, so changes fall at every phase of the relist cycle.",
            "Latency = consumer's wall clock at the event minus the runtime's created_at / "
            "started_at / finished_at of that change.",
            "'RSS for snapshot' = VmRSS after the first relist minus before connecting.",
        ],
    )]
    t = result["targets"]
    lines = []
    if "cpu_10k" in t:
        v = t["cpu_10k"]
        lines.append(f"CPU {v['target']}: {'MET' if v['met'] else 'MISSED'} ({v['value']:.2f}%)")
    if "relist_latency" in t:
        v = t["relist_latency"]
        lines.append(f"relist latency {v['target']}: {'MET' if v['met'] else 'MISSED'} "
                     f"(worst max {fmt_ms(v['value'])})")
    if "event_latency" in t:
        v = t["event_latency"]
        lines.append(f"event-mode latency {v['target']}: {'MET' if v['met'] else 'MISSED'} "
                     f"(worst median {fmt_ms(v['value'])})")
    else:
        lines.append("event-mode latency: not measurable here (no runtime events)")
    out.append("Polling targets:\n" + "\n".join(f"- {line}" for line in lines) + "\n")
    return "\n".join(out)


def plot(ax: Any, result: dict[str, Any]) -> None:
    rows = [r for r in result["rows"] if "error" not in r]
    labels = [f"{r['runtime']} {r['containers']}\n{r['mode']}" for r in rows]
    xs = list(range(len(rows)))
    ax.bar([x - 0.2 for x in xs], [r["cpu_pct"] for r in rows], 0.4, color="tab:purple",
           label="client CPU, % of one core")
    ax.axhline(CPU_TARGET, color="tab:purple", linestyle="--", linewidth=0.8)
    ax.set_ylabel("% of one core")
    ax2 = ax.twinx()
    med = [r["latency"]["median"] * 1000 if r["latency"]["n"] else 0 for r in rows]
    mx = [r["latency"]["max"] * 1000 if r["latency"]["n"] else 0 for r in rows]
    ax2.bar([x + 0.2 for x in xs], med, 0.4, color="tab:olive", label="latency median (ms)")
    ax2.scatter([x + 0.2 for x in xs], mx, color="black", marker="_", s=120, label="latency max")
    ax2.set_ylabel("change latency (ms)")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_title(f"Polling at {result['params']['period']:g} s")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.polling")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    print(report(anyio.run(lambda: run("fake", quick=args.quick))))


if __name__ == "__main__":
    main()
