"""The channel manager's scenario matrix, against the embedded fake runtime.

Each scenario is its own test: start-up negotiation, restarts with the same
or other versions, restart-required, renegotiation, long outages, calls in
flight, kills, a socket replaced by a file, close during reconnect, and an
image endpoint restarting on its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import grpc
import pytest

import aiocri
from aiocri import ConnectionState, RedialPolicy
from aiocri.api import ContainerStatusRequest, ListContainersRequest, VersionRequest
from aiocri.testing import FakeRuntime, wait_for, wait_for_state

pytestmark = pytest.mark.anyio

FAST = RedialPolicy(connect_timeout=2.0)


async def _wait_for_state(client: aiocri.CRIClient, state: ConnectionState, *,
                          image: bool = False) -> None:
    """Until the connection is in ``state``; a generous bound, for a busy machine."""
    await wait_for_state(client, state, image=image, timeout=30)


async def until(condition: Callable[[], object], what: str) -> None:
    """Until ``condition()`` holds; fails loudly after a generous 30 s."""
    await wait_for(lambda: bool(condition()), timeout=30, what=what)


async def _collect_events(events: AsyncIterator[aiocri.ConnectionEvent],
                          out: list[aiocri.ConnectionEvent]) -> None:
    """Gather ``client.events()``: subscribed when called, in the test's own step, so
    nothing published after that is missed (no wait for the collector to start)."""
    async for event in events:
        out.append(event)


# -- start-up ----------------------------------------------------------------------


async def test_startup_on_both_versions_pins_v1(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        assert client.version is aiocri.V1
        assert client.runtime_version.runtime_api_version == "v1"
        assert client.state is ConnectionState.READY
        response = await client.runtime.version(VersionRequest())
        assert response.runtime_name == client.runtime_version.runtime_name


async def test_startup_on_v1alpha2_only_pins_v1alpha2(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint) as client,
    ):
        assert client.version is aiocri.V1ALPHA2
        assert client.runtime_version.runtime_api_version == "v1alpha2"
        await client.runtime.list_containers()  # served on the v1alpha2 path
        calls_before = sum(rt.calls.values())
        with pytest.raises(aiocri.UnsupportedByVersion, match="GetContainerEvents.*v1alpha2"):
            async for _ in client.runtime.get_container_events():
                pass
        assert sum(rt.calls.values()) == calls_before  # refused without a round trip


async def test_startup_with_no_common_version_fails(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt:
        with pytest.raises(aiocri.NoSupportedVersion) as info:
            async with aiocri.connect(rt.endpoint, versions=["v1"]):
                pass
        assert set(info.value.attempts) == {"v1"}
        assert "UNIMPLEMENTED" in info.value.attempts["v1"]


async def test_startup_against_grpc_server_without_cri(sock_dir: Path) -> None:
    path = sock_dir / "other.sock"
    server = grpc.aio.server()
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    try:
        with pytest.raises(aiocri.NoSupportedVersion) as info:
            async with aiocri.connect(str(path)):
                pass
        assert set(info.value.attempts) == {"v1", "v1alpha2"}
        assert "may not be a CRI runtime at all" in str(info.value)
    finally:
        await server.stop(None)


async def test_startup_on_dead_socket_retries_then_fails_clearly(sock_dir: Path) -> None:
    path = sock_dir / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # a socket file nobody listens on: a killed runtime's leftover
        started = time.monotonic()
        with pytest.raises(aiocri.ConnectFailed, match=r"nothing listens on .*dead.sock "
                                                       r"\(a stale socket file\?\); tried for "
                                                       r"0.5 s"):
            async with aiocri.connect(str(path), redial=RedialPolicy(connect_timeout=0.5)):
                pass
        # stop_before_delay gives up before a sleep would overrun the timeout.
        assert 0.2 < time.monotonic() - started < 3.0


async def test_startup_against_something_that_is_not_grpc(sock_dir: Path) -> None:
    path = sock_dir / "http.sock"

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    listener = await anyio.create_unix_listener(str(path))
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with pytest.raises(aiocri.ConnectFailed) as info:
            async with aiocri.connect(str(path), redial=RedialPolicy(connect_timeout=0.5)):
                pass
        assert "CRI" in str(info.value)
        tg.cancel_scope.cancel()


async def test_startup_cancelled_by_caller_is_not_retried(sock_dir: Path) -> None:
    # tenacity must not retry CancelledError: the caller's timeout wins.
    path = sock_dir / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        started = time.monotonic()
        with anyio.move_on_after(0.3) as scope:
            async with aiocri.connect(str(path), redial=RedialPolicy(connect_timeout=30)):
                pass
        assert scope.cancelled_caught
        assert time.monotonic() - started < 10  # not the 30 s of retries


# -- restarts -------------------------------------------------------------------------


async def test_restart_with_same_versions_loses_no_call(runtime: FakeRuntime) -> None:
    cid = runtime.populate(pods=2, containers_per_pod=2).container_ids[0]
    outcomes: list[str] = []
    stop = anyio.Event()

    async def caller() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await client.runtime.container_status(
                    ContainerStatusRequest(container_id=cid), timeout=3.0
                )
                outcomes.append("ok")
            except aiocri.CRIError as exc:
                outcomes.append(type(exc).__name__)
            assert time.monotonic() - started < 3.0 + 0.5  # within its deadline
            await anyio.sleep(0.001)

    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(caller)
            await until(lambda: runtime.calls["ContainerStatus"] >= 8, "the callers call")
            await runtime.restart(down_for=0.5)
            await _wait_for_state(client, ConnectionState.READY)
            before = len(outcomes)
            await until(lambda: len(outcomes) > before, "calls resumed after the restart")
            stop.set()
        assert len(outcomes) > before  # calls resumed
        assert client.stats.redials == 1
        assert client.version is aiocri.V1
        # Read-only calls broken by the restart are sent again: none fails.
        assert set(outcomes) == {"ok"}, outcomes


async def test_restart_into_other_version_requires_restart(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint, redial=FAST) as client,
    ):
        events: list[aiocri.ConnectionEvent] = []
        waited: list[aiocri.RestartRequired] = []
        pending: list[BaseException] = []

        async def waiter() -> None:
            waited.append(await client.restart_required())

        async def pending_call() -> None:
            await _wait_for_state(client, ConnectionState.RECONNECTING)
            try:
                await client.runtime.list_containers(ListContainersRequest(), timeout=10)
            except aiocri.CRIError as exc:
                pending.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            tg.start_soon(waiter)
            tg.start_soon(pending_call)
            await rt.upgrade(versions=("v1",), down_for=0.3)
            await _wait_for_state(client, ConnectionState.RESTART_REQUIRED)
        # Waiter, subscriber, pending caller and later callers all learn it.
        assert waited and waited[0].pinned == "v1alpha2"
        assert waited[0].served == ("v1",)
        assert isinstance(pending[0], aiocri.RestartRequired)
        assert events[-1].state is ConnectionState.RESTART_REQUIRED
        assert isinstance(events[-1].error, aiocri.RestartRequired)
        with pytest.raises(aiocri.RestartRequired, match="pinned CRI version v1alpha2"):
            await client.runtime.version()
        assert client.version is aiocri.V1ALPHA2  # never switched silently


async def test_restart_into_both_versions_stays_pinned_and_says_newer(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint, redial=FAST) as client,
    ):
        events: list[aiocri.ConnectionEvent] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            await rt.upgrade(versions=("v1alpha2", "v1"), down_for=0.2)
            await until(lambda: any(e.kind == "newer_version_available" for e in events),
                        "a newer_version_available event")
            tg.cancel_scope.cancel()
        assert client.state is ConnectionState.READY
        assert client.version is aiocri.V1ALPHA2
        newer = next(e for e in events if e.kind == "newer_version_available")
        assert "v1" in newer.served
        assert (await client.runtime.version()).runtime_api_version == "v1alpha2"


async def test_renegotiate_policy_switches_in_place(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint, redial=FAST, on_version_loss="renegotiate") as client,
    ):
        events: list[aiocri.ConnectionEvent] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            await rt.upgrade(versions=("v1",), down_for=0.2)
            await until(lambda: any(e.kind == "renegotiated" for e in events),
                        "a renegotiated event")
            tg.cancel_scope.cancel()
        assert client.state is ConnectionState.READY
        assert client.version is aiocri.V1
        # the version found while checking is pinned with its answer: no second probe
        assert rt.calls_by_path["/runtime.v1.RuntimeService/Version"] == 1
        assert (await client.runtime.version()).runtime_api_version == "v1"


async def test_renegotiate_survives_a_failing_probe(sock_dir: Path) -> None:
    """An UNAVAILABLE while probing the other versions is a failed redial attempt,
    retried; it never escapes as a raw grpc error or leaks the new channel."""
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint, redial=FAST, on_version_loss="renegotiate") as client,
    ):
        await rt.stop()
        await _wait_for_state(client, ConnectionState.RECONNECTING)
        rt.inject_errors("Version", count=1)  # the first answer after the upgrade
        await rt.start(versions=("v1",))
        await until(lambda: client.version is aiocri.V1, "the client pinned v1")
        assert client.state is ConnectionState.READY
        assert (await client.runtime.version()).runtime_api_version == "v1"


async def test_startup_waits_for_a_runtime_that_is_not_ready(runtime: FakeRuntime) -> None:
    """containerd answers UNKNOWN "server is not initialized yet" while it restores
    its pods: that is a runtime starting, not a version it lacks."""
    runtime.inject_errors("Version", code=grpc.StatusCode.UNKNOWN,
                          details="server is not initialized yet")

    async def ready_later() -> None:
        await anyio.sleep(0.3)
        runtime.clear_injections()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ready_later)
        started = time.monotonic()
        async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
            assert client.version is aiocri.V1
        assert time.monotonic() - started >= 0.3


async def test_runtime_answering_unavailable_is_believed(runtime: FakeRuntime) -> None:
    """UNAVAILABLE from the runtime itself over a healthy connection: a read-only call
    is sent once more (gRPC's "try again"), then fails with it; no redial, no loop."""
    runtime.inject_errors("ListContainers", code=grpc.StatusCode.UNAVAILABLE)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        for _ in range(3):
            with pytest.raises(aiocri.Unavailable, match="injected"):
                await client.runtime.list_containers(timeout=2.0)
        assert runtime.calls["ListContainers"] == 6  # each sent twice, never more
        assert client.stats.redials == 0
        assert client.state is ConnectionState.READY
        # many calls failing at once share one probe of the connection
        probes = runtime.calls["Version"]
        failed: list[BaseException] = []

        async def one() -> None:
            try:
                await client.runtime.list_containers(timeout=2.0)
            except aiocri.Unavailable as exc:
                failed.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
        assert len(failed) == 50
        assert runtime.calls["Version"] - probes <= 2
        assert client.stats.redials == 0
        runtime.clear_injections()
        await client.runtime.list_containers()


async def test_calls_in_flight_when_the_runtime_restarts(runtime: FakeRuntime) -> None:
    """A restart breaks calls in flight. A read-only call is sent again on the next
    generation; a state-changing one fails with Unavailable. Neither leaks a bare
    CancelledError to the caller."""
    made = runtime.populate(pods=1, containers_per_pod=1)
    runtime.inject_latency("ListContainers", 0.5)
    runtime.inject_latency("StopContainer", 0.5)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        outcome: dict[str, object] = {}

        async def call(name: str, fn: object) -> None:
            try:
                outcome[name] = await fn()  # type: ignore[operator]
            except aiocri.CRIError as exc:
                outcome[name] = exc
            except asyncio.CancelledError:
                outcome[name] = "bare CancelledError"
                raise

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "list", client.runtime.list_containers)
            tg.start_soon(call, "stop", lambda: client.runtime.stop_container(
                aiocri.api.StopContainerRequest(container_id=made.container_ids[0])))
            await until(lambda: runtime.calls["ListContainers"] and runtime.calls["StopContainer"],
                        "both calls in flight on the runtime")
            runtime.clear_injections()
            await runtime.restart(down_for=0.1)
        assert client.stats.redials == 1
        assert client.generation == 2
        assert isinstance(outcome["list"], aiocri.api.ListContainersResponse), outcome["list"]
        assert isinstance(outcome["stop"], aiocri.Unavailable), outcome["stop"]
        assert "may or may not have reached" in str(outcome["stop"])


async def test_close_fails_calls_in_flight_with_client_closed(runtime: FakeRuntime) -> None:
    runtime.inject_latency("ListContainers", 2.0)
    async with aiocri.connect(runtime.endpoint) as client:
        outcome: list[object] = []

        async def call() -> None:
            try:
                await client.runtime.list_containers()
            except aiocri.CRIError as exc:
                outcome.append(exc)
            except asyncio.CancelledError:
                outcome.append("bare CancelledError")
                raise

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await until(lambda: runtime.calls["ListContainers"], "the call in flight")
            await client.close()
        assert len(outcome) == 1 and isinstance(outcome[0], aiocri.ClientClosed), outcome


async def test_long_outage_calls_fail_within_deadline_then_recover(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        await runtime.stop()
        await _wait_for_state(client, ConnectionState.RECONNECTING)
        started = time.monotonic()
        with pytest.raises(aiocri.DeadlineExceeded):
            await client.runtime.version(timeout=0.3)
        assert time.monotonic() - started < 5  # the deadline, not the outage
        # many failed attempts: backoff at its maximum (0.02 s doubled 6 times is past 1 s)
        await until(lambda: client.stats.redial_attempts >= 8, "8 redial attempts")
        await runtime.start()
        back = time.monotonic()
        await client.runtime.version(timeout=5)
        # The socket watch dials as soon as the file is back, not at the next step.
        assert time.monotonic() - back < 0.5
        assert client.stats.redial_attempts > 3


async def test_restart_while_1000_calls_in_flight(runtime: FakeRuntime) -> None:
    cid = runtime.populate(pods=1, containers_per_pod=1).container_ids[0]
    runtime.inject_latency("ContainerStatus", 0.2)
    results: list[str] = []

    async def call() -> None:
        try:
            await client.runtime.container_status(ContainerStatusRequest(container_id=cid), timeout=10)
            results.append("ok")
        except aiocri.CRIError as exc:
            results.append(type(exc).__name__)

    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(1000):
                    tg.start_soon(call)
                await until(lambda: runtime.calls["ContainerStatus"] >= 100,
                            "100 calls reached the runtime")
                assert len(results) < 1000  # some still in flight
                await runtime.restart(down_for=0.2)
    assert len(results) == 1000  # none lost, none hung
    assert results.count("ok") == 1000, {r: results.count(r) for r in set(results)}


async def test_killed_runtime_leaving_its_socket(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        await runtime.kill()
        assert os.path.exists(runtime.socket_path)  # stale file left behind
        await _wait_for_state(client, ConnectionState.RECONNECTING)
        attempts = client.stats.redial_attempts
        await until(lambda: client.stats.redial_attempts > attempts,
                    "a redial attempt failed on the stale socket")
        await runtime.start()
        await _wait_for_state(client, ConnectionState.READY)
        assert (await client.runtime.version()).runtime_api_version == "v1"


async def test_idle_client_notices_death_without_any_call(runtime: FakeRuntime) -> None:
    # A channel with no RPC in flight idles after its server dies; the
    # watcher must notice and redial on its own.
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        events: list[aiocri.ConnectionEvent] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            await runtime.restart(down_for=0.2)
            await _wait_for_state(client, ConnectionState.READY)
            await until(lambda: any(e.kind == "state" and e.state is ConnectionState.READY
                                    for e in events), "the READY event collected")
            tg.cancel_scope.cancel()
        states = [e.state for e in events if e.kind == "state"]
        assert states == [ConnectionState.RECONNECTING, ConnectionState.READY]
        assert client.stats.redials == 1


async def test_socket_replaced_by_regular_file(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        events: list[aiocri.ConnectionEvent] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            await runtime.stop()
            Path(runtime.socket_path).write_text("not a socket")
            await until(lambda: any(e.kind == "redial_attempt" and "not a socket" in str(e.error)
                                    for e in events), "a redial attempt found the file")
            assert client.state is ConnectionState.RECONNECTING
            attempts = [e for e in events if e.kind == "redial_attempt"]
            assert attempts
            assert attempts[-1].error is not None
            assert "not a socket" in str(attempts[-1].error)
            with pytest.raises(aiocri.DeadlineExceeded):
                await client.runtime.version(timeout=0.2)
            os.unlink(runtime.socket_path)
            await runtime.start()
            await _wait_for_state(client, ConnectionState.READY)
            tg.cancel_scope.cancel()


async def test_close_during_reconnect(runtime: FakeRuntime) -> None:
    baseline = len(asyncio.all_tasks())
    failures: list[BaseException] = []
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        await runtime.stop()
        await _wait_for_state(client, ConnectionState.RECONNECTING)

        async def waiting_call() -> None:
            try:
                await client.runtime.version(timeout=30)
            except aiocri.CRIError as exc:
                failures.append(exc)

        calls = client.stats.calls
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting_call)
            # counted as it starts, then it waits for the connection (no await between)
            await until(lambda: client.stats.calls > calls, "the call waits")
            started = time.monotonic()
            await client.close()
        assert time.monotonic() - started < 10  # not the call's 30 s
        assert client.state is ConnectionState.CLOSED
    assert isinstance(failures[0], aiocri.ClientClosed)
    with pytest.raises(aiocri.ClientClosed):
        await client.runtime.version()
    await until(lambda: len(asyncio.all_tasks()) <= baseline, "no orphaned task")


async def test_image_endpoint_restarts_independently(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock")) as rt,
        FakeRuntime(str(sock_dir / "img.sock")) as img,
        aiocri.connect(rt.endpoint, image_endpoint=img.endpoint, redial=FAST) as client,
    ):
        assert client.separate_image_endpoint
        assert client.image_version is aiocri.V1
        events: list[aiocri.ConnectionEvent] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_events, client.events(), events)
            await img.restart(down_for=0.3)
            await _wait_for_state(client, ConnectionState.READY, image=True)
            await until(lambda: any(e.kind == "state" and e.state is ConnectionState.READY
                                    for e in events), "the image READY event collected")
            tg.cancel_scope.cancel()
        assert {e.endpoint for e in events} == {img.endpoint}
        assert client.state is ConnectionState.READY
        assert client.stats.redials == 0
        assert client.image_stats.redials == 1
        await client.image.image_fs_info()


# -- calls: deadlines, cancellation, size, fail-fast ---------------------------------------


async def test_deadline_is_a_typed_error(runtime: FakeRuntime) -> None:
    runtime.inject_latency("Version", 1.0)
    async with aiocri.connect(runtime.endpoint) as client:
        runtime.inject_latency("Status", 30.0)
        started = time.monotonic()
        with pytest.raises(aiocri.DeadlineExceeded, match="timeout="):
            await client.runtime.status(timeout=0.1)
        assert time.monotonic() - started < 10  # the deadline, not the latency


async def test_anyio_cancellation_cancels_the_rpc_and_stays_in_scope(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        runtime.inject_latency("Status", 30.0)
        started = time.monotonic()
        with anyio.move_on_after(0.1) as scope:
            await client.runtime.status()
        # Without the invoke path's fix a bare CancelledError escapes here.
        assert scope.cancelled_caught
        assert time.monotonic() - started < 10  # the cancellation, not the latency
        runtime.inject_latency("Status", 0.0)
        await client.runtime.status()


async def test_cancelling_a_stream_consumer(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        with anyio.move_on_after(0.2) as scope:
            async for _ in client.runtime.get_container_events():
                pass
        assert scope.cancelled_caught
        await client.runtime.version()


async def test_oversized_message_says_what_to_raise(runtime: FakeRuntime) -> None:
    runtime.populate(pods=10, containers_per_pod=10)
    async with aiocri.connect(runtime.endpoint, max_message_size=2048) as client:
        with pytest.raises(aiocri.MessageTooLarge, match="max_message_size"):
            await client.runtime.list_containers()
        assert client.state is ConnectionState.READY  # nothing else lost


async def test_fail_fast_while_reconnecting(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST, fail_fast=True) as client:
        await runtime.stop()
        await _wait_for_state(client, ConnectionState.RECONNECTING)
        started = time.monotonic()
        with pytest.raises(aiocri.Unavailable, match="reconnecting"):
            await client.runtime.version(timeout=60)
        assert time.monotonic() - started < 10  # at once, not at the deadline


async def test_counters(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        for _ in range(3):
            await client.runtime.version()
        with pytest.raises(aiocri.NotFound):
            await client.runtime.container_status(ContainerStatusRequest(container_id="nope"))
        stats = client.stats
        assert stats.calls >= 4
        assert stats.errors["NOT_FOUND"] == 1
        assert stats.state is ConnectionState.READY
        assert stats.time_in_state >= 0


async def test_runtime_answering_not_ready_is_retried_fast(runtime: FakeRuntime) -> None:
    # containerd answers UNKNOWN "server is not initialized yet" until it has
    # restored its pods (up to ~1 s): keep retrying at the first step meanwhile,
    # so READY follows its first real answer, not the grown backoff.
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        runtime.inject_errors("Version", code=grpc.StatusCode.UNKNOWN,
                              details="server is not initialized yet")
        await runtime.restart(down_for=0.3)
        await anyio.sleep(2.1)  # past the window, just after a grown-backoff attempt
        assert client.state is ConnectionState.RECONNECTING
        runtime.clear_injections("Version")
        cleared = time.monotonic()
        await _wait_for_state(client, ConnectionState.READY)
        # The grown backoff would be ~1 s here; generous bound.
        assert time.monotonic() - cleared < 0.4


async def test_calls_that_change_state_are_not_sent_twice(runtime: FakeRuntime) -> None:
    from aiocri.api import PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest

    runtime.inject_latency("RunPodSandbox", 1.0)
    request = RunPodSandboxRequest(
        config=PodSandboxConfig(metadata=PodSandboxMetadata(name="once", uid="u1", namespace="n"))
    )
    outcome: list[BaseException] = []

    async def run_pod() -> None:
        try:
            await client.runtime.run_pod_sandbox(request, timeout=10)
        except aiocri.CRIError as exc:
            outcome.append(exc)

    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_pod)
            await until(lambda: runtime.calls["RunPodSandbox"], "the call in flight on the runtime")
            await runtime.restart(down_for=0.2)
        assert isinstance(outcome[0], aiocri.Unavailable)
        await _wait_for_state(client, ConnectionState.READY)
        runtime.inject_latency("RunPodSandbox", 0.0)
        assert runtime.calls["RunPodSandbox"] == 1  # not re-sent after the redial
