"""The client's promise at the edges (issue 11): lifetime, generations, verdicts.

Each test names the item of the issue it guards; each failed on 98789d2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import grpc
import grpc.aio
import pytest

import aiocri
import aiocri._dialer
from aiocri import ConnectionState, RedialPolicy
from aiocri.api import ContainerStatusRequest, StopContainerRequest
from aiocri.poller import Poller
from aiocri.testing import FakeRuntime, wait_for, wait_for_state

pytestmark = pytest.mark.anyio

FAST = RedialPolicy(connect_timeout=2.0)


async def _wait_for_state(client: aiocri.CRIClient, state: ConnectionState) -> None:
    """Until the connection is in ``state``; a generous bound, for a busy machine."""
    await wait_for_state(client, state, timeout=30)


async def until(condition: Callable[[], object], what: str) -> None:
    """Until ``condition()`` holds; fails loudly after a generous 30 s."""
    await wait_for(lambda: bool(condition()), timeout=30, what=what)


# -- 1. exceptions pass through unchanged ---------------------------------------------


async def test_1_user_exception_leaves_the_block_unwrapped(runtime: FakeRuntime) -> None:
    with pytest.raises(KeyError):
        async with aiocri.connect(runtime.endpoint):
            raise KeyError("mine")


async def test_1_call_error_can_be_caught_around_the_block(runtime: FakeRuntime) -> None:
    with pytest.raises(aiocri.NotFound):
        async with aiocri.connect(runtime.endpoint) as client:
            await client.runtime.container_status(ContainerStatusRequest(container_id="nope"))


async def test_1_poller_body_exception_unwrapped(runtime: FakeRuntime) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    with pytest.raises(KeyError):
        async with aiocri.connect(runtime.endpoint) as client, Poller(client, period=0.05):
            raise KeyError("mine")


# -- 2. any task may close --------------------------------------------------------------


async def test_2_opened_in_one_task_closed_in_another(runtime: FakeRuntime) -> None:
    stack = contextlib.AsyncExitStack()
    opened: list[aiocri.CRIClient] = []
    outcome: list[object] = []
    runtime.inject_latency("ListContainers", 5.0)

    async def opener() -> None:
        opened.append(await stack.enter_async_context(aiocri.connect(runtime.endpoint)))

    async def caller() -> None:
        try:
            await opened[0].runtime.list_containers()
        except aiocri.CRIError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(opener)
    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await until(lambda: runtime.calls["ListContainers"], "the call in flight")

        async def closer() -> None:
            await stack.aclose()

        tg.start_soon(closer)
    assert len(outcome) == 1 and isinstance(outcome[0], aiocri.ClientClosed), outcome
    with pytest.raises(aiocri.ClientClosed):
        await opened[0].runtime.version()


async def test_2_await_connect_and_aclose(runtime: FakeRuntime) -> None:
    client = await aiocri.connect(runtime.endpoint)
    try:
        assert client.generation == 1
        await client.runtime.version()
    finally:
        await client.aclose()
    await client.aclose()  # twice is fine
    assert client.state is ConnectionState.CLOSED


def _our_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("aiocri")}


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _channels() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, grpc.aio.Channel))


async def test_nothing_outlives_the_client(runtime: FakeRuntime) -> None:
    """After aclose: no task, channel or fd of the client remains, even after
    redials, probes, renegotiation checks and streams."""
    runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as warm:
        await warm.runtime.version()
    fds, channels, tasks = _fds(), _channels(), _our_tasks()
    for _ in range(3):
        client = await aiocri.connect(runtime.endpoint, redial=FAST)
        stream = client.runtime.get_container_events()
        reader = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
        await runtime.restart(down_for=0.05)
        await _wait_for_state(client, ConnectionState.READY)
        # twice: a read-only call is sent once more after the probe found the runtime
        runtime.inject_errors("ListContainers", grpc.StatusCode.UNAVAILABLE, count=2)
        with pytest.raises(aiocri.Unavailable):
            await client.runtime.list_containers(timeout=2)  # went through the probe
        assert _our_tasks() - tasks  # the supervisor runs
        await client.aclose()
        with contextlib.suppress(aiocri.CRIError):
            await reader
        del stream, reader, client
    assert not (_our_tasks() - tasks)
    assert _channels() <= channels
    assert _fds() <= fds + 1, (fds, _fds())


async def test_an_error_raised_before_sending_holds_no_channel(runtime: FakeRuntime) -> None:
    """A call refused before it is sent (deadline gone, RPC not in the pinned version)
    raises an error the user may keep: its traceback must not keep the client's channel."""
    async with aiocri.connect(runtime.endpoint, redial=FAST) as warm:
        await warm.runtime.version()
    channels = _channels()
    client = await aiocri.connect(runtime.endpoint, redial=FAST, versions=["v1alpha2"])
    with pytest.raises(aiocri.DeadlineExceeded) as expired:
        await client.runtime.list_containers(timeout=0.0)
    with pytest.raises(aiocri.UnsupportedByVersion) as unsupported:
        await anext(client.runtime.invoke("StreamContainers"))
    await client.aclose()
    del client
    assert _channels() <= channels, "a kept error holds the client's channel"
    assert expired.value.__traceback__ and unsupported.value.__traceback__  # still kept


# -- 3. nothing foreign reaches the caller ---------------------------------------------


@pytest.mark.parametrize("end", ["close", "restart"])
async def test_3_probe_interrupted_by_close_or_redial(runtime: FakeRuntime, end: str) -> None:
    """Callers waiting on the shared probe while a close or a redial ends its
    channel get a CRIError (or their answer), never CancelledError or UsageError."""
    runtime.inject_errors("ListContainers", grpc.StatusCode.UNAVAILABLE)
    runtime.inject_latency("Version", 0.5)  # the probe is slow
    client = await aiocri.connect(runtime.endpoint, redial=FAST)
    probes = runtime.calls["Version"]
    outcomes: list[object] = []

    async def caller() -> None:
        try:
            outcomes.append(await client.runtime.list_containers(timeout=3))
        except aiocri.CRIError as exc:
            outcomes.append(exc)
        except BaseException as exc:
            outcomes.append(exc)
            raise

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(caller)
                await until(lambda: runtime.calls["ListContainers"] >= 5
                            and runtime.calls["Version"] > probes,
                            "the 5 calls failed and the probe is in flight")
                if end == "close":
                    await client.aclose()
                else:
                    runtime.clear_injections()
                    await runtime.restart(down_for=0.05)
    finally:
        await client.aclose()
    assert len(outcomes) == 5
    for outcome in outcomes:
        assert isinstance(outcome, aiocri.CRIError | aiocri.api.ListContainersResponse), outcome
    if end == "close":
        assert all(isinstance(o, aiocri.ClientClosed) for o in outcomes), outcomes


# -- 4. CANCELLED from the runtime does not storm ---------------------------------------


async def test_4_runtime_answering_cancelled_gets_no_redial_storm(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=1, containers_per_pod=2)
    runtime.inject_errors("ListContainers", grpc.StatusCode.CANCELLED)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        events = client.runtime.get_container_events()
        first = asyncio.ensure_future(anext(events))  # type: ignore[arg-type]
        await runtime.wait_for_event_streams(1)
        started = time.monotonic()
        answers: list[object] = []
        while time.monotonic() - started < 1.0:
            try:
                await client.runtime.list_containers(timeout=1.0)
            except aiocri.CRIError as exc:
                answers.append(exc)
        # the runtime's own answer, not Unavailable/DeadlineExceeded after redials
        assert answers and all(e.code is grpc.StatusCode.CANCELLED for e in answers), answers[:3]
        assert client.stats.redials <= 3, client.stats.redials
        # a state-changing call and the open event stream were not broken meanwhile
        await client.runtime.stop_container(
            StopContainerRequest(container_id=made.container_ids[0]))
        with anyio.fail_after(30):
            event = await first
        assert event.container_id == made.container_ids[0]
        await events.aclose()  # type: ignore[attr-defined]


# -- 5. a slow probe does not tear a healthy connection down ----------------------------


async def test_5_undecided_probe_declares_nothing(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=1, containers_per_pod=1)
    runtime.inject_errors("ContainerStatus", grpc.StatusCode.UNAVAILABLE)
    runtime.inject_latency("Version", 0.3)
    runtime.inject_latency("StopContainer", 0.3)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        runtime.inject_latency("Version", 0.3)
        async with anyio.create_task_group() as tg:
            stopped: list[object] = []

            async def stop() -> None:
                stopped.append(await client.runtime.stop_container(
                    StopContainerRequest(container_id=made.container_ids[0]), timeout=5))

            tg.start_soon(stop)
            await until(lambda: runtime.calls["StopContainer"], "the stop in flight")
            started = time.monotonic()
            with pytest.raises(aiocri.Unavailable, match="injected"):
                await client.runtime.container_status(
                    ContainerStatusRequest(container_id=made.container_ids[0]), timeout=0.15)
            assert time.monotonic() - started < 0.15 + 2  # its deadline, not the stop's 5 s
        assert len(stopped) == 1
        assert client.stats.redials == 0
        assert client.state is ConnectionState.READY


# -- 6 and 7. a dropped version, with or without a visible reconnect ---------------------


async def test_6_renegotiated_client_survives_the_next_loss(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt,
        aiocri.connect(rt.endpoint, redial=FAST, on_version_loss="renegotiate") as client,
    ):
        made = rt.populate(pods=1, containers_per_pod=1)
        assert client.version is aiocri.V1ALPHA2
        await rt.restart(down_for=0.05)
        await _wait_for_state(client, ConnectionState.READY)
        await client.runtime.version(timeout=5)
        rt.swap_versions(["v1"])  # dropped behind the connection
        await client.runtime.list_containers(timeout=5)  # sent again after renegotiation
        assert client.version is aiocri.V1
        # The next loss must be seen. First one a call reports while the channel stays
        # READY (the call and the probe both UNAVAILABLE): on 98789d2 it went to an
        # event nobody waited on, and the client stayed RECONNECTING for good.
        generation = client.generation
        rt.inject_errors("ListContainers", grpc.StatusCode.UNAVAILABLE, count=1)
        rt.inject_errors("Version", grpc.StatusCode.UNAVAILABLE, count=1)
        with contextlib.suppress(aiocri.Unavailable):
            await client.runtime.list_containers(timeout=3)
        await _wait_for_state(client, ConnectionState.READY)
        assert client.generation > generation
        await rt.restart(down_for=0.05)  # then a real restart
        await client.runtime.list_containers(timeout=5)
        assert client.state is ConnectionState.READY
        events = client.runtime.get_container_events()
        first = asyncio.ensure_future(anext(events))  # type: ignore[arg-type]
        await rt.wait_for_event_streams(1)
        await client.runtime.stop_container(
            StopContainerRequest(container_id=made.container_ids[0]), timeout=5)
        with anyio.fail_after(30):
            await first
        await events.aclose()  # type: ignore[attr-defined]


async def test_7_version_dropped_behind_an_unseen_reconnect(sock_dir: Path) -> None:
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2", "v1")) as rt,
        aiocri.connect(rt.endpoint, redial=FAST, versions=["v1alpha2"]) as client,
    ):
        assert client.version is aiocri.V1ALPHA2
        rt.swap_versions(["v1"])
        with pytest.raises(aiocri.RestartRequired):
            await client.runtime.list_containers(timeout=5)
        assert client.state is ConnectionState.RESTART_REQUIRED


async def test_7_any_change_of_the_watched_channel_is_a_loss(runtime: FakeRuntime) -> None:
    """A READY -> IDLE -> READY cycle between two looks of the watcher still counts."""
    client = await aiocri.connect(runtime.endpoint, redial=FAST)
    try:
        manager = client._runtime_manager
        conn = manager._current
        assert conn is not None

        class Flapped:
            """A channel that changed and is READY again by the time anyone looks."""

            def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
                return grpc.ChannelConnectivity.READY

            async def wait_for_state_change(self, state: grpc.ChannelConnectivity) -> None:
                await anyio.sleep(0.01)

        stand_in = type(conn).__new__(type(conn))
        for slot in type(conn).__slots__:
            setattr(stand_in, slot, getattr(conn, slot))
        stand_in.channel = Flapped()  # type: ignore[assignment]
        stand_in.lost = anyio.Event()
        with anyio.fail_after(30):
            await stand_in.watch()
        assert stand_in.lost.is_set()
    finally:
        await client.aclose()


# -- 8. no side effects, no missed events, no nonsense policy ---------------------------


def test_8_import_leaves_grpc_verbosity_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    out = subprocess.run(
        [sys.executable, "-c", "import os, aiocri; print(os.environ.get('GRPC_VERBOSITY'))"],
        env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == "None"


async def test_8_events_are_subscribed_when_the_iterator_is_made(runtime: FakeRuntime) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client:
        events = client.events()
        await runtime.restart(down_for=0.05)
        await _wait_for_state(client, ConnectionState.READY)
        seen = []
        with anyio.move_on_after(1):
            async for event in events:
                seen.append(event.state)
                if event.state is ConnectionState.READY:
                    break
        assert ConnectionState.RECONNECTING in seen and ConnectionState.READY in seen, seen


@pytest.mark.parametrize(("field", "value"), [
    ("initial", -1), ("initial", 0), ("maximum", 0.001), ("multiplier", 0.5),
    ("jitter", -0.1), ("attempt_timeout", 0), ("connect_timeout", -5),
    ("give_up_after", 0), ("initial", float("nan")), ("maximum", "1"),
])
def test_8_redial_policy_refuses_nonsense(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RedialPolicy(**{field: value})  # type: ignore[arg-type]


# -- terminal errors of the background work ----------------------------------------------


async def test_a_supervisor_failure_becomes_the_terminal_error(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: object, pinned: object) -> None:
        raise RuntimeError("a bug in the redial")

    monkeypatch.setattr(aiocri._dialer.Dialer, "redial", broken)
    before = _our_tasks()
    client = await aiocri.connect(runtime.endpoint, redial=FAST)
    try:
        await runtime.restart(down_for=0.05)  # the supervisor redials, and fails
        with anyio.fail_after(30), pytest.raises(aiocri.InternalError) as caught:
            await client.restart_required()
        assert isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(aiocri.InternalError, match="a bug in the redial"):
            await client.runtime.version()
        assert client.state is ConnectionState.CLOSED
    finally:
        await client.aclose()
    assert not _our_tasks() - before


async def test_poller_closed_from_another_task(runtime: FakeRuntime) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint) as client:
        for rpc in ("ListPodSandbox", "StreamPodSandboxes"):
            runtime.inject_latency(rpc, 1.0)  # closed before its first relist ends
        poller = Poller(client, period=0.05).start()
        seen: list[object] = []

        async def consume() -> None:
            async for event in poller:
                seen.append(event)
            seen.append("ended")

        async def synced() -> None:
            try:
                await poller.wait_synced()
            except aiocri.CRIError as exc:
                seen.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(synced)
            await until(lambda: runtime.calls["ListPodSandbox"] + runtime.calls["StreamPodSandboxes"],
                        "the first relist in flight")

            async def close() -> None:
                await poller.aclose()

            tg.start_soon(close)
        assert "ended" in seen
        assert any(isinstance(x, aiocri.ClientClosed) for x in seen), seen
        assert not any(t.get_name() == "aiocri poller" for t in asyncio.all_tasks())


async def test_redials_after_quick_losses_are_spaced_by_the_policy(runtime: FakeRuntime) -> None:
    """A connection that breaks right after each redial gets the policy's growing
    backoff before the next one, not an immediate redial (a few per second at most)."""
    policy = RedialPolicy(initial=0.05, maximum=0.4, connect_timeout=2.0)
    client = await aiocri.connect(runtime.endpoint, redial=policy)
    try:
        manager = client._runtime_manager
        waits = []
        for _ in range(4):
            manager._dialer._connected_at = time.monotonic()  # as if it had just reconnected
            started = time.monotonic()
            await manager._dialer.pace()
            waits.append(time.monotonic() - started)
        assert waits[0] >= 0.05 * 0.9 and waits[1] >= 0.1 * 0.9 and waits[2] >= 0.2 * 0.9
        assert waits[3] >= 0.4 * 0.9  # capped at the policy's maximum
        assert sum(waits) < 10  # a sanity bound
        manager._dialer._connected_at = time.monotonic() - 10  # a healthy generation: no wait
        pacing = manager._dialer.pace()
        with pytest.raises(StopIteration):  # done at its first step: it never waited
            pacing.send(None)
    finally:
        await client.aclose()
