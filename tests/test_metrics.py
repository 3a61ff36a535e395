"""aiocri.metrics: Prometheus collectors fed by a real client over the fake runtime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import aiocri
from aiocri import ConnectionState, RedialPolicy
from aiocri.channel import ChannelManager
from aiocri.instrument import CallRecord, CallType, Instrumentation, PollerObserver
from aiocri.metrics import KUBELET_BUCKETS, PrometheusMetrics, serve_metrics
from aiocri.poller import EventKind, Poller
from aiocri.testing import FakeRuntime, wait_for, wait_for_state
from tests.cli_process import aiocri as aiocri_process
from tests.cli_process import cli_env, scrape

pytestmark = pytest.mark.anyio

FAST = RedialPolicy(connect_timeout=2.0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value (0 when absent: a counter not yet made counts nothing)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def until(condition: Callable[[], object], what: str) -> None:
    await wait_for(lambda: bool(condition()), timeout=30, what=what)


def test_kubelet_buckets() -> None:
    # ExponentialBuckets(0.005, 2.5, 14), as the kubelet's runtime operations use
    assert len(KUBELET_BUCKETS) == 14
    assert KUBELET_BUCKETS[0] == 0.005
    assert KUBELET_BUCKETS[1] == pytest.approx(0.0125)
    assert KUBELET_BUCKETS[-1] == pytest.approx(0.005 * 2.5**13)


async def test_calls_errors_durations_by_rpc_and_endpoint(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    made = runtime.populate(pods=1, containers_per_pod=2)
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        for _ in range(3):
            await client.runtime.list_containers()
        await client.runtime.container_status(container_id=made.container_ids[0])
        for _ in range(2):
            with pytest.raises(aiocri.NotFound):
                await client.runtime.container_status(container_id="missing")
        ops = "aiocri_runtime_operations_total"
        assert value(registry, ops, operation_type="list_containers", endpoint=ep) == 3
        assert value(registry, ops, operation_type="container_status", endpoint=ep) == 3
        errors = "aiocri_runtime_operations_errors_total"
        assert value(registry, errors, operation_type="container_status", endpoint=ep,
                     code="NOT_FOUND") == 2
        assert value(registry, errors, operation_type="list_containers", endpoint=ep,
                     code="NOT_FOUND") == 0
        hist = "aiocri_runtime_operations_duration_seconds"
        assert value(registry, hist + "_count", operation_type="list_containers",
                     endpoint=ep) == 3
        assert value(registry, hist + "_bucket", operation_type="list_containers",
                     endpoint=ep, le="+Inf") == 3
        assert 0 < value(registry, hist + "_sum", operation_type="list_containers",
                         endpoint=ep) < 30
        # a wrong argument fails before any round trip: no call counted
        with pytest.raises(TypeError):
            await client.runtime.container_status(container_id=5)  # type: ignore[arg-type]
        assert value(registry, ops, operation_type="container_status", endpoint=ep) == 3


async def test_in_flight_counts_calls_waiting_on_the_runtime(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    runtime.inject_latency("ListContainers", 30)
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        labels = {"operation_type": "list_containers", "endpoint": client.endpoint}
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(client.runtime.list_containers)
            await until(lambda: value(registry, "aiocri_runtime_operations_in_flight",
                                      **labels) == 3, "three calls in flight")
            tg.cancel_scope.cancel()
        assert value(registry, "aiocri_runtime_operations_in_flight", **labels) == 0
        assert value(registry, "aiocri_runtime_operations_errors_total", code="CANCELLED",
                     **labels) == 3


async def test_labelled_children_are_made_once(runtime: FakeRuntime) -> None:
    """The call path reuses its children: no ``labels()`` lookup per call."""
    metrics = PrometheusMetrics(CollectorRegistry())
    async with aiocri.connect(runtime.endpoint, instrumentation=metrics) as client:
        await client.runtime.list_containers()
        looked_up = 0
        families = (metrics.operations, metrics.duration, metrics.in_flight, metrics.errors)
        originals = [f.labels for f in families]

        def counting(original: Callable[..., Any]) -> Callable[..., Any]:
            def labels(*args: Any, **kwargs: Any) -> Any:
                nonlocal looked_up
                looked_up += 1
                return original(*args, **kwargs)
            return labels

        for family, original in zip(families, originals, strict=True):
            family.labels = counting(original)  # type: ignore[method-assign]
        for _ in range(50):
            await client.runtime.list_containers()
        assert looked_up == 0


async def test_without_instrumentation_the_call_path_is_untouched(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        manager = client._runtime_manager
        assert client.instrumentation is None
        assert manager.unary.__func__ is ChannelManager.unary  # type: ignore[attr-defined]
        assert manager.stream.__func__ is ChannelManager.stream  # type: ignore[attr-defined]


async def test_wrong_instrumentation_fails_at_once() -> None:
    with pytest.raises(TypeError, match="instrumentation"):
        aiocri.connect("unix:///nowhere.sock", instrumentation="prometheus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="instrumentation"):
        aiocri.connect("unix:///nowhere.sock", instrumentation=[object()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="registry"):
        PrometheusMetrics(registry={})  # type: ignore[arg-type]


async def test_connection_state_redials_and_restart_required(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    runtime.swap_versions(("v1alpha2",))
    async with aiocri.connect(runtime.endpoint, redial=FAST,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        assert value(registry, "aiocri_connection_state", endpoint=ep, state="ready") == 1
        assert value(registry, "aiocri_connection_generation", endpoint=ep) == 1
        assert value(registry, "aiocri_connection_info", endpoint=ep, version="v1alpha2",
                     runtime_name="aiocri-fake", runtime_version="1.0.0") == 1
        await runtime.restart(down_for=0.1, versions=("v1alpha2",))
        await wait_for_state(client, ConnectionState.READY, timeout=30)
        await until(lambda: client.generation == 2, "the redial")
        assert value(registry, "aiocri_connection_redials_total", endpoint=ep) == 1
        assert value(registry, "aiocri_connection_redial_attempts_total", endpoint=ep) >= 1
        assert value(registry, "aiocri_connection_losses_total", endpoint=ep) >= 1
        assert value(registry, "aiocri_connection_reconnect_duration_seconds_count",
                     endpoint=ep) == 1
        assert value(registry, "aiocri_connection_generation", endpoint=ep) == 2
        assert value(registry, "aiocri_restart_required", endpoint=ep) == 0
        # an upgrade that dropped the pinned version: the gauge an alert fires on
        await runtime.upgrade(("v1",))
        await client.restart_required()
        assert value(registry, "aiocri_restart_required", endpoint=ep) == 1
        assert value(registry, "aiocri_connection_state", endpoint=ep,
                     state="restart_required") == 1
        assert value(registry, "aiocri_connection_state", endpoint=ep, state="ready") == 0
        assert value(registry, "aiocri_connection_info", endpoint=ep, version="v1alpha2",
                     runtime_name="aiocri-fake", runtime_version="1.0.0") == 0


async def test_a_collected_client_leaves_the_metrics(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()

    async def use() -> str:
        async with aiocri.connect(runtime.endpoint,
                                  instrumentation=PrometheusMetrics(registry)) as client:
            return client.endpoint

    ep = await use()
    gc.collect()
    assert registry.get_sample_value("aiocri_connection_generation", {"endpoint": ep}) is None
    assert registry.get_sample_value("aiocri_restart_required", {"endpoint": ep}) is None


async def test_restart_required_outlives_the_client_until_a_new_one_is_ready() -> None:
    """A program that closes its client on RestartRequired and reconnects still shows
    the verdict to the next scrape, until the new client is ready."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    async with FakeRuntime(versions=("v1alpha2",)) as rt:
        async with aiocri.connect(rt.endpoint, redial=FAST, instrumentation=metrics) as client:
            ep = client.endpoint
            await rt.upgrade(("v1",))
            await client.restart_required()
        del client
        gc.collect()
        assert value(registry, "aiocri_restart_required", endpoint=ep) == 1
        async with aiocri.connect(rt.endpoint, instrumentation=metrics):
            assert value(registry, "aiocri_restart_required", endpoint=ep) == 0


async def test_two_clients_share_one_instrumentation_without_duplicate_series(
        runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    async with (aiocri.connect(runtime.endpoint, instrumentation=metrics) as one,
                aiocri.connect(runtime.endpoint, instrumentation=metrics) as two):
        await one.runtime.version()
        await two.runtime.version()
        text = generate_latest(registry).decode()  # raises on duplicate samples
        assert value(registry, "aiocri_connection_state", endpoint=one.endpoint,
                     state="ready") == 2
        assert value(registry, "aiocri_runtime_operations_total", operation_type="version",
                     endpoint=one.endpoint) == 2
        assert "aiocri_connection_info{" in text


async def test_poller_metrics(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        async with Poller(client, period=0.05, mode="relist", max_pending=2) as poller:
            named = poller.subscribe(name="reconciler")
            await poller.wait_synced()
            await until(lambda: value(registry, "aiocri_pleg_relist_interval_seconds_count",
                                      endpoint=ep) >= 2, "relists")
            assert value(registry, "aiocri_pleg_relist_duration_seconds_count", endpoint=ep) >= 3
            assert value(registry, "aiocri_pleg_mode", endpoint=ep, mode="relist") == 1
            assert value(registry, "aiocri_pleg_mode", endpoint=ep, mode="events") == 0
            assert abs(value(registry, "aiocri_pleg_last_seen_seconds", endpoint=ep)
                       - time.time()) < 30
            # a container started now: its start reaches the consumer with a lag
            pod = made.pod_ids[0]
            cid = runtime.state.add_container(pod, "late")
            async for event in poller:
                if event.id == cid and event.kind is EventKind.CONTAINER_STARTED:
                    break
            lag_count = value(registry, "aiocri_pleg_event_lag_seconds_count", endpoint=ep)
            assert lag_count >= 1
            assert 0 <= value(registry, "aiocri_pleg_event_lag_seconds_sum", endpoint=ep) < 30
            # nobody reads "reconciler": its queue fills past max_pending, and the later
            # changes of the containers waiting in it are merged
            emitted = poller.stats.events_emitted
            more = [runtime.state.add_container(pod, f"more-{n}") for n in range(4)]
            await until(lambda: poller.stats.events_emitted >= emitted + 4, "their starts seen")
            for other in more:
                runtime.state.stop_container(other)
            await until(lambda: value(registry, "aiocri_pleg_coalesced_events_total",
                                      endpoint=ep) >= 1, "events coalesced")
            assert value(registry, "aiocri_pleg_dropped_to_latest_events_total",
                         endpoint=ep) >= 1
            pending = value(registry, "aiocri_pleg_pending_events", endpoint=ep,
                            consumer="reconciler")
            assert pending == named.pending > 0
            # no object id ever becomes a label value
            text = generate_latest(registry).decode()
            for object_id in [*runtime.state.containers, *runtime.state.pods]:
                assert object_id not in text


async def test_poller_events_mode_counts_stream_opens(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    async with aiocri.connect(runtime.endpoint, redial=FAST,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        async with Poller(client, period=0.05, mode="events") as poller:
            await poller.wait_synced()
            await until(lambda: value(registry, "aiocri_pleg_mode", endpoint=ep,
                                      mode="events") == 1, "events mode")
            assert value(registry, "aiocri_pleg_events_connection_success_total",
                         endpoint=ep) == 1
            assert value(registry, "aiocri_pleg_events_stream_reopens_total", endpoint=ep) == 0
            await runtime.restart(down_for=0.1)
            await until(lambda: value(registry, "aiocri_pleg_events_connection_success_total",
                                      endpoint=ep) >= 2, "the stream reopened")
            opens = value(registry, "aiocri_pleg_events_connection_success_total", endpoint=ep)
            assert value(registry, "aiocri_pleg_events_stream_reopens_total",
                         endpoint=ep) == opens - 1
            assert value(registry, "aiocri_pleg_events_connection_error_total",
                         endpoint=ep) >= 1
            # the stream's whole life is no latency: counted, never timed
            assert value(registry, "aiocri_runtime_operations_duration_seconds_count",
                         operation_type="get_container_events", endpoint=ep) == 0


async def test_streaming_sessions(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    made = runtime.populate(pods=1, containers_per_pod=1)
    cid = made.container_ids[0]
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        async with client.exec_stream(cid, ["cat"], stdin=True, transport="spdy") as session:
            assert value(registry, "aiocri_streaming_sessions_open", kind="exec",
                         endpoint=ep) == 1
            await session.stdin.write(b"hello\n")
            await session.stdin.close()
            assert await session.stdout.read() == b"hello\n"
            assert await session.wait() == 0
        labels = {"kind": "exec", "transport": "spdy", "endpoint": ep}
        assert value(registry, "aiocri_streaming_sessions_total", **labels) == 1
        assert value(registry, "aiocri_streaming_sessions_open", kind="exec", endpoint=ep) == 0
        assert value(registry, "aiocri_streaming_bytes_total", direction="sent", **labels) == 6
        assert value(registry, "aiocri_streaming_bytes_total", direction="received",
                     **labels) == 6
        assert value(registry, "aiocri_streaming_session_duration_seconds_count", **labels) == 1


async def test_serve_metrics_over_http(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    async with (aiocri.connect(runtime.endpoint,
                               instrumentation=PrometheusMetrics(registry)) as client,
                serve_metrics(0, registry=registry) as server):
        await client.runtime.version()
        url = f"http://127.0.0.1:{server.port}/metrics"
        body = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert b'aiocri_runtime_operations_total{endpoint="' in body
        assert b"aiocri_connection_state" in body
    # closed: nothing listens any more
    with pytest.raises(urllib.error.URLError, match="refused"):
        await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=5).read())


async def test_serve_metrics_refuses_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="port"):
        serve_metrics(70000)
    with pytest.raises(TypeError, match="port"):
        serve_metrics("9101")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="host"):
        serve_metrics(0, host="")
    async with serve_metrics(0, registry=CollectorRegistry()) as first:
        with pytest.raises(OSError, match="choose another"):
            await serve_metrics(first.port, registry=CollectorRegistry())


@pytest.mark.parametrize("command", ["events", "watch"])
async def test_the_command_serves_metrics_while_it_watches(runtime: FakeRuntime,
                                                           command: str) -> None:
    """``aiocri events|watch --metrics-port N``: the same metrics, from the command."""
    runtime.populate(pods=1, containers_per_pod=1)
    args = [sys.executable, "-m", "aiocri.cli", "-r", runtime.endpoint, command,
            "--metrics-port", "0"]
    if command == "events":
        args += ["--poll-period", "0.1"]
    else:
        args += ["--period", "0.1"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        assert proc.stderr is not None
        with anyio.fail_after(30):
            line = (await proc.stderr.readline()).decode()
        match = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        port = int(match.group(1))
        text = ""

        async def relisted() -> bool:
            nonlocal text
            text = await scrape(port)
            found = re.search(r'^aiocri_pleg_relists_total\{[^}]*\} (\S+)$', text, re.M)
            return found is not None and float(found.group(1)) >= 2

        await wait_for(relisted, timeout=30, what="the command's poller relisting")
        assert f'aiocri_connection_state{{endpoint="{runtime.endpoint}",state="ready"}} 1.0' \
            in text
        assert re.search(r'operation_type="(list|stream)_containers"', text)
    finally:
        proc.terminate()
        await proc.wait()


async def test_the_command_refuses_a_port_in_use(runtime: FakeRuntime) -> None:
    async with serve_metrics(0, registry=CollectorRegistry()) as taken:
        code, _, err = await aiocri_process(runtime.endpoint, "events", "--metrics-port",
                                            str(taken.port))
    assert code == 2
    assert b"choose another port" in err
    assert b"Traceback" not in err


async def test_totals_never_go_down_when_a_client_goes_away(runtime: FakeRuntime) -> None:
    """Counters read from a client's stats are kept once the client is collected:
    Prometheus would read a drop as a reset and count the redials twice."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    async with aiocri.connect(runtime.endpoint, redial=FAST, instrumentation=metrics) as kept:
        ep = kept.endpoint

        async def one_with_a_redial() -> None:
            async with aiocri.connect(runtime.endpoint, redial=FAST,
                                      instrumentation=metrics) as client:
                await runtime.restart(down_for=0.1)
                await until(lambda: client.generation == 2 and kept.generation == 2,
                            "both redialled")

        await one_with_a_redial()
        before = value(registry, "aiocri_connection_redials_total", endpoint=ep)
        assert before == 2
        gc.collect()
        assert value(registry, "aiocri_connection_redials_total", endpoint=ep) == before
        # a closed client leaves the state gauge; the live one stays
        assert value(registry, "aiocri_connection_state", endpoint=ep, state="ready") == 1
        assert registry.get_sample_value("aiocri_connection_state",
                                         {"endpoint": ep, "state": "closed"}) is None


async def test_a_reconnect_is_timed_per_client(runtime: FakeRuntime) -> None:
    """Two clients of one endpoint: each reconnect is timed once, from its own loss."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    async with (aiocri.connect(runtime.endpoint, redial=FAST, instrumentation=metrics) as a,
                aiocri.connect(runtime.endpoint, redial=FAST, instrumentation=metrics) as b):
        await runtime.restart(down_for=0.1)
        await until(lambda: a.generation == 2 and b.generation == 2, "both redialled")
        assert value(registry, "aiocri_connection_reconnect_duration_seconds_count",
                     endpoint=a.endpoint) == 2


async def test_a_closed_poller_leaves_the_gauges_and_keeps_its_totals(
        runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        async with Poller(client, period=0.05, mode="relist") as poller:
            await poller.wait_synced()
            assert value(registry, "aiocri_pleg_mode", endpoint=ep, mode="relist") == 1
        relists = value(registry, "aiocri_pleg_relists_total", endpoint=ep)
        assert relists >= 1
        assert registry.get_sample_value("aiocri_pleg_mode",
                                         {"endpoint": ep, "mode": "relist"}) is None
        del poller
        gc.collect()
        assert value(registry, "aiocri_pleg_relists_total", endpoint=ep) == relists


async def test_a_late_subscribers_replay_is_no_lag(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        ep = client.endpoint
        async with Poller(client, period=0.05, mode="relist") as poller:
            await poller.wait_synced()
            cid = runtime.state.add_container(made.pod_ids[0], "late")
            async for event in poller:
                if event.id == cid and event.kind is EventKind.CONTAINER_STARTED:
                    break
            lagged = value(registry, "aiocri_pleg_event_lag_seconds_count", endpoint=ep)
            assert lagged >= 1
            async with poller.subscribe() as late:
                async for event in late:
                    if event.id == cid:  # its start, replayed
                        break
            assert value(registry, "aiocri_pleg_event_lag_seconds_count",
                         endpoint=ep) == lagged


async def test_subscribers_share_one_label_by_default(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    async with (aiocri.connect(runtime.endpoint,
                               instrumentation=PrometheusMetrics(registry)) as client,
                Poller(client, period=30, mode="relist") as poller):
        await poller.wait_synced()
        for _ in range(5):
            poller.subscribe()
        consumers = {s.labels["consumer"] for m in registry.collect() for s in m.samples
                     if s.name == "aiocri_pleg_pending_events"}
        assert consumers == {"poller", "subscriber"}


async def test_last_seen_is_now_while_the_event_stream_is_open(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    async with (aiocri.connect(runtime.endpoint,
                               instrumentation=PrometheusMetrics(registry)) as client,
                Poller(client, mode="events", resync_period=math.inf) as poller):
        await poller.wait_synced()
        await until(lambda: poller.stream_open, "the stream open")
        first = value(registry, "aiocri_pleg_last_seen_seconds", endpoint=client.endpoint)
        await until(lambda: time.time() > first + 0.2, "time passing")
        assert value(registry, "aiocri_pleg_last_seen_seconds",
                     endpoint=client.endpoint) > first


async def test_a_call_the_pinned_version_lacks_is_not_counted() -> None:
    registry = CollectorRegistry()
    async with (FakeRuntime(versions=("v1alpha2",)) as rt,
                aiocri.connect(rt.endpoint, instrumentation=PrometheusMetrics(registry)) as client):
        with pytest.raises(aiocri.UnsupportedByVersion):
            await client.runtime.checkpoint_container(container_id="x")
        with pytest.raises(aiocri.UnsupportedByVersion):
            async for _ in client.runtime.stream_containers():
                pass
        text = generate_latest(registry).decode()
        assert "stream_containers" not in text and "checkpoint_container" not in text
        assert 'code="UnsupportedByVersion"' not in text


async def test_port_forward_sessions_are_labelled_by_transport(runtime: FakeRuntime) -> None:
    registry = CollectorRegistry()
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=PrometheusMetrics(registry)) as client:
        for transport in ("spdy", "websocket"):
            with contextlib.suppress(aiocri.StreamingError):
                async with client.port_forward(made.pod_ids[0], 80, transport=transport):
                    pass
    transports = {s.labels["transport"] for m in registry.collect() for s in m.samples
                  if s.name == "aiocri_streaming_sessions_total"}
    assert transports == {"spdy", "websocket"}


class _Broken(Instrumentation):
    """A buggy exporter: every hook raises."""

    def connection_event(self, manager: object, event: object) -> None:  # type: ignore[override]
        raise KeyError("bug in my exporter")

    def call_type(self, endpoint: str, method: str, name: str) -> None:
        raise KeyError("bug in my exporter")


async def test_a_failing_hook_never_takes_the_client_down(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST, instrumentation=_Broken()) as client:
        await client.runtime.version()
        await runtime.restart(down_for=0.1)
        await wait_for_state(client, ConnectionState.READY, timeout=30)
        await until(lambda: client.generation == 2, "the redial")
        await client.runtime.version()
        assert client.terminal_error is None


class _Recording(Instrumentation):
    """A working instrumentation that notes what it was told."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def call_type(self, endpoint: str, method: str, name: str) -> CallType:
        seen = self.seen

        class Record(CallRecord):
            def end(self, error: BaseException | None) -> None:
                seen.append(f"end {name}")

        class Kind(CallType):
            def begin(self) -> CallRecord:
                seen.append(f"begin {name}")
                return Record()

        return Kind()

    def poller(self, poller: object, endpoint: str) -> PollerObserver:  # type: ignore[override]
        seen = self.seen

        class Observer(PollerObserver):
            @contextlib.contextmanager
            def relist(self) -> Iterator[None]:
                seen.append("relist in")
                yield
                seen.append("relist out")

        return Observer()


class _BrokenEverywhere(Instrumentation):
    """Every hook fails, also inside what the hooks return."""

    def attach(self, manager: object) -> None:  # type: ignore[override]
        raise RuntimeError("attach")

    def call_type(self, endpoint: str, method: str, name: str) -> CallType:
        class Record(CallRecord):
            def end(self, error: BaseException | None) -> None:
                raise RuntimeError("end")

        class Kind(CallType):
            def begin(self) -> CallRecord:
                return Record()

        return Kind()

    def poller(self, poller: object, endpoint: str) -> PollerObserver:  # type: ignore[override]
        class Observer(PollerObserver):
            @contextlib.contextmanager
            def relist(self) -> Iterator[None]:
                raise RuntimeError("relist enter")
                yield  # pragma: no cover

        return Observer()


async def test_a_broken_instrumentation_silences_none_of_the_others(
        runtime: FakeRuntime) -> None:
    good = _Recording()
    async with aiocri.connect(runtime.endpoint,
                              instrumentation=[_BrokenEverywhere(), good]) as client:
        await client.runtime.version()
        assert good.seen == ["begin Version", "end Version"]
        async with Poller(client, mode="relist", period=30) as poller:
            await poller.wait_synced()
            assert not poller.closed
        assert good.seen.count("relist in") == good.seen.count("relist out") >= 1
        assert client.terminal_error is None
