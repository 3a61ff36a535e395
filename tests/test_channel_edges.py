"""Issue 19: the channel manager at its edges (items 1, 2, 4, 5, 6, 7 and 14).

Each test is named after its item and failed on the code before the fix; the pure
decisions behind them are tested as tables in test_probe.py and test_classify.py.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest

import aiocri
from aiocri import api
from aiocri._rpc import RPCS
from aiocri._timeouts import MAX_TIMEOUT, check_timeout
from aiocri.poller import Poller
from aiocri.testing import FakeRuntime, FakeRuntimeProcess

pytestmark = pytest.mark.anyio
S = grpc.StatusCode
FAST = aiocri.RedialPolicy(connect_timeout=3.0, initial=0.01, maximum=0.1)


async def eventually(check: Any, within: float = 10.0) -> None:
    with anyio.fail_after(within):
        while not check():
            await anyio.sleep(0.01)


# -- 1. renegotiation and lean decoding ------------------------------------------------


async def test_item_1_a_decoded_call_the_version_lacks_is_unsupported_by_version(
        runtime: FakeRuntime) -> None:
    async with runtime.connect(versions=["v1alpha2"], redial=FAST) as client:
        with pytest.raises(aiocri.UnsupportedByVersion, match="StreamContainers"):
            async for _ in client.runtime.invoke("StreamContainers", decode=bytes):
                pass
        with pytest.raises(aiocri.UnsupportedByVersion):
            await client.runtime.invoke("GetContainerEvents", decode=bytes).__anext__()
        # a lean call the version has still works
        raw = await client.runtime.invoke("ListContainers", decode=bytes)
        assert isinstance(raw, bytes)


async def test_item_1_the_poller_survives_renegotiations(runtime: FakeRuntime) -> None:
    """A runtime flipping between v1-only and v1alpha2-only under a renegotiating
    client: the poller keeps reporting, whatever version it is on."""
    runtime.swap_versions(["v1"])
    pod = runtime.state.add_pod("web")
    async with runtime.connect(on_version_loss="renegotiate", redial=FAST) as client, \
            Poller(client, period=0.05) as poller:
        seen: list[str] = []

        async def consume() -> None:
            async for event in poller:
                seen.append(f"{event.kind.name} {event.id}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for n, versions in enumerate(itertools.islice(
                    itertools.cycle([("v1alpha2",), ("v1",)]), 6)):
                generation = client.generation
                await runtime.upgrade(versions=versions)
                await eventually(lambda g=generation: client.generation > g  # type: ignore[misc]
                                 and client.state is aiocri.ConnectionState.READY)
                assert client.version.name == versions[0]
                cid = runtime.state.add_container(pod, f"c{n}")
                await eventually(lambda c=cid: f"CONTAINER_CREATED {c}" in seen  # type: ignore[misc]
                                 or f"CONTAINER_STARTED {c}" in seen)
            tg.cancel_scope.cancel()
        assert client.terminal_error is None


# -- 2. a slow Version -------------------------------------------------------------------


async def test_item_2_a_slow_version_does_not_make_a_healthy_client_reconnect(
        runtime: FakeRuntime) -> None:
    policy = aiocri.RedialPolicy(connect_timeout=3.0, attempt_timeout=0.3, initial=0.01)
    async with runtime.connect(redial=policy) as client:
        generation = client.generation
        runtime.inject_latency("Version", 0.6)  # over the probe's deadline
        runtime.inject_errors("ListContainers", S.UNAVAILABLE, count=2)  # sent, then once more
        with pytest.raises(aiocri.Unavailable):  # the runtime's own answer, believed
            await client.runtime.list_containers(timeout=5)
        assert client.state is aiocri.ConnectionState.READY
        assert client.generation == generation  # nothing was declared lost
        with anyio.fail_after(2):
            await client.runtime.list_containers(timeout=5)


async def test_item_2_a_redial_waits_longer_for_a_runtime_that_answers_slowly(
        runtime: FakeRuntime) -> None:
    """After a real restart, a Version slower than the attempt timeout still lets
    the client back in: each check that ran out of time makes the next longer."""
    policy = aiocri.RedialPolicy(connect_timeout=3.0, attempt_timeout=0.2, initial=0.01)
    async with runtime.connect(redial=policy) as client:
        generation = client.generation
        runtime.inject_latency("Version", 0.5)
        await runtime.restart(down_for=0.05)
        await eventually(lambda: client.generation > generation, within=15)
        assert client.state is aiocri.ConnectionState.READY
        await client.runtime.list_containers(timeout=5)


# -- 4. huge deadlines ---------------------------------------------------------------


@pytest.mark.parametrize("timeout", [1e10, math.inf, 1e300])
async def test_item_4_a_deadline_beyond_grpc_is_no_deadline(runtime: FakeRuntime,
                                                           timeout: float) -> None:
    async with runtime.connect(timeout=timeout, redial=FAST) as client:
        await client.runtime.version()  # the connect-wide default
        await client.runtime.list_containers(timeout=timeout)  # one call's own
        async for _ in client.runtime.invoke("StreamContainers", timeout=timeout):
            pass


async def test_an_expired_deadline_is_deadline_exceeded_unsent(runtime: FakeRuntime) -> None:
    async with runtime.connect(redial=FAST) as client:
        with pytest.raises(aiocri.DeadlineExceeded):
            await client.runtime.list_containers(timeout=0)


# -- 5. connect() checks its arguments -------------------------------------------------


BAD_CONNECT = [
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "5"}, TypeError, "timeout"),
    ({"timeout": math.nan}, ValueError, "timeout"),
    ({"timeout": True}, TypeError, "timeout"),
    ({"image_pull_timeout": -5}, ValueError, "image_pull_timeout"),
    ({"image_pull_timeout": "x"}, TypeError, "image_pull_timeout"),
    ({"redial": "x"}, TypeError, "redial"),
    ({"redial": {"initial": 1}}, TypeError, "redial"),
    ({"max_message_size": 0}, ValueError, "max_message_size"),
    ({"max_message_size": -1}, ValueError, "max_message_size"),
    ({"max_message_size": 1.5}, TypeError, "max_message_size"),
    ({"max_message_size": True}, TypeError, "max_message_size"),
    ({"fail_fast": "no"}, TypeError, "fail_fast"),
    ({"allow_tcp": 1}, TypeError, "allow_tcp"),
    ({"on_version_loss": "retry"}, ValueError, "on_version_loss"),
]


@pytest.mark.parametrize(("options", "error", "name"), BAD_CONNECT,
                         ids=[f"{next(iter(o))}={next(iter(o.values()))!r}"
                              for o, _, _ in BAD_CONNECT])
def test_item_5_connect_refuses_bad_arguments_at_the_call(
        options: dict[str, Any], error: type[Exception], name: str, tmp_path: Path) -> None:
    # no runtime, no event loop: the call itself must refuse, before any dial
    with pytest.raises(error, match=name):
        aiocri.connect(str(tmp_path / "nothing.sock"), **options)


@pytest.mark.parametrize(("timeout", "error"), [
    (-1, ValueError), ("5", TypeError), (math.nan, ValueError), (True, TypeError)])
async def test_item_5_a_call_refuses_a_bad_timeout_before_any_round_trip(
        runtime: FakeRuntime, timeout: Any, error: type[Exception]) -> None:
    async with runtime.connect(redial=FAST) as client:
        before = runtime.calls["ListContainers"]
        with pytest.raises(error, match="timeout"):
            await client.runtime.list_containers(timeout=timeout)
        assert runtime.calls["ListContainers"] == before


class _Seconds(float):
    """A float subclass: not the inline path's exact float, so checked in full."""


HOSTILE_TIMEOUTS: list[Any] = [
    None, 0.0, -0.0, 5e-324, 1e-300, 2.0, 30, 0, -1, -0.5, -math.inf, math.nan, math.inf,
    MAX_TIMEOUT, math.nextafter(MAX_TIMEOUT, math.inf), 1e10, 10**400, True, False, "5", b"5",
    [1.0], _Seconds(2.0), _Seconds(math.nan), _Seconds(-1.0)]


async def test_the_calls_inline_deadline_agrees_with_check_timeout(
        runtime: FakeRuntime) -> None:
    """The call path lets an ordinary float past the full check (issue 19's A/B: every
    call runs it); whatever the value, a call must end as check_timeout says it should."""
    async with runtime.connect(redial=FAST) as client:
        for timeout in HOSTILE_TIMEOUTS:
            before = runtime.calls["ListContainers"]
            try:
                seconds = check_timeout("timeout", timeout)
            except (TypeError, ValueError) as refused:
                with pytest.raises(type(refused), match="timeout"):
                    await client.runtime.list_containers(timeout=timeout)
                assert runtime.calls["ListContainers"] == before, timeout
                continue
            if seconds is not None and seconds < 1e-3:  # expires unsent, or on the way
                with pytest.raises(aiocri.DeadlineExceeded):
                    await client.runtime.list_containers(timeout=timeout)
                if seconds < 1e-12:
                    assert runtime.calls["ListContainers"] == before, timeout
                continue
            await client.runtime.list_containers(timeout=timeout)
            assert runtime.calls["ListContainers"] == before + 1, timeout


async def test_the_inline_deadline_is_the_timeout_in_seconds(runtime: FakeRuntime) -> None:
    """A short float deadline on a call the runtime holds ends near that deadline."""
    runtime.inject_latency("ListContainers", 30.0)
    async with runtime.connect(redial=FAST) as client:
        began = anyio.current_time()
        with pytest.raises(aiocri.DeadlineExceeded):
            await client.runtime.list_containers(timeout=0.2)
        assert anyio.current_time() - began < 10  # a generous bound; 30 s if it were lost


# -- 6. a hung runtime is not "not a CRI runtime" ------------------------------------------


async def test_item_6_a_stopped_runtime_is_connect_failed_and_says_it_did_not_answer(
        sock_dir: Path) -> None:
    async with FakeRuntimeProcess(sock_dir / "rt.sock") as process:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:
            policy = aiocri.RedialPolicy(connect_timeout=1.0, attempt_timeout=0.3)
            with pytest.raises(aiocri.ConnectFailed) as caught:
                await aiocri.connect(process.endpoint, redial=policy)
            assert not isinstance(caught.value, aiocri.NotACRIRuntime), caught.value
            assert "answers nothing" in str(caught.value)
            assert "stopped" in (caught.value.hint or "")
        finally:
            os.kill(process.pid, signal.SIGCONT)


@pytest.fixture
def http1_socket(sock_dir: Path) -> Iterator[str]:
    """A unix socket served by something that answers HTTP/1.1, not HTTP/2."""
    path = str(sock_dir / "http1.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    server.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                peer, _ = server.accept()
            except OSError:
                continue
            with peer:
                peer.settimeout(1)
                try:
                    peer.recv(1024)
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()
        server.close()


async def test_item_6_an_http1_server_is_not_a_cri_runtime(http1_socket: str) -> None:
    policy = aiocri.RedialPolicy(connect_timeout=0.5, attempt_timeout=0.2)
    with pytest.raises(aiocri.NotACRIRuntime, match="not a gRPC server"):
        await aiocri.connect(http1_socket, redial=policy)


async def test_a_stale_socket_file_says_nothing_listens(sock_dir: Path) -> None:
    path = str(sock_dir / "stale.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()  # the file stays, nobody listens
    policy = aiocri.RedialPolicy(connect_timeout=0.3, attempt_timeout=0.2)
    with pytest.raises(aiocri.ConnectFailed, match="nothing listens") as caught:
        await aiocri.connect(path, redial=policy)
    assert not isinstance(caught.value, aiocri.NotACRIRuntime)


# -- 7. a stale probe must not hide a version loss ------------------------------------------


async def test_item_7_a_version_dropped_right_after_a_probe_is_restart_required(
        runtime: FakeRuntime) -> None:
    async with runtime.connect(versions=["v1"], redial=FAST) as client:
        runtime.inject_errors("ListMetricDescriptors", S.UNIMPLEMENTED)
        with pytest.raises(aiocri.UnsupportedByRuntime):  # probed: the runtime is there
            await client.runtime.list_metric_descriptors()
        runtime.swap_versions(["v1alpha2"])  # within PROBE_REUSE of that probe
        with pytest.raises(aiocri.RestartRequired):
            await client.runtime.container_status(container_id="x", timeout=5)


# -- 14. decoding does not grow a cache per function -------------------------------------------


async def test_item_14_calls_with_fresh_decode_functions_keep_no_entry_each(
        runtime: FakeRuntime) -> None:
    async with runtime.connect(redial=FAST) as client:
        for _ in range(500):
            await client.runtime.invoke("ListContainers",
                                        decode=lambda b: api.ListContainersResponse.FromString(b))
        conn = client._runtime_manager._live
        assert conn is not None
        tables = [getattr(conn, slot) for slot in type(conn).__slots__
                  if isinstance(getattr(conn, slot, None), dict)]
        assert sum(len(t) for t in tables) <= 2 * len(RPCS)


async def test_decode_parses_unary_and_streamed_answers(runtime: FakeRuntime) -> None:
    runtime.populate(pods=2, containers_per_pod=2)
    async with runtime.connect(redial=FAST) as client:
        whole = await client.runtime.list_containers()
        lean = await client.runtime.invoke("ListContainers",
                                           decode=api.ListContainersResponse.FromString)
        assert lean == whole
        streamed = [m async for m in client.runtime.invoke(
            "StreamContainers", decode=api.StreamContainersResponse.FromString)]
        assert sorted(c.id for m in streamed for c in m.containers) == \
            sorted(c.id for c in whole.containers)


def test_the_manager_stays_small() -> None:
    """The shape the issue asks for: the manager only wires the pure parts."""
    source = (Path(aiocri.__file__).parent / "channel.py").read_text().splitlines()
    start = next(i for i, line in enumerate(source) if line.startswith("class ChannelManager"))
    end = next((i for i, line in enumerate(source[start + 1:], start + 1)
                if line and not line[0].isspace()), len(source))
    assert end - start <= 400, end - start  # was about 800 before issue 19


@pytest.mark.parametrize(("options", "error"), [
    ({"images": [42]}, TypeError), ({"images": "busybox"}, TypeError),
    ({"registry": [None]}, TypeError), ({"stream_chunk": 0}, ValueError),
    ({"max_receive_message_length": 1.5}, TypeError), ({"seed": "1"}, TypeError)])
def test_item_5_the_fake_runtime_refuses_bad_arguments(options: dict[str, Any],
                                                      error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(options))):
        FakeRuntime(**options)


async def test_the_pinned_version_is_still_readable_after_close(runtime: FakeRuntime) -> None:
    client = await runtime.connect(redial=FAST)
    await client.aclose()
    assert client.version.name == "v1"  # what a status line shows after the end


async def test_unimplemented_failures_at_once_share_at_most_two_probes(
        runtime: FakeRuntime) -> None:
    """A fan-out of calls the runtime does not implement: one probe in flight, one
    queued behind it, never one per caller."""
    async with runtime.connect(redial=FAST) as client:
        runtime.inject_errors("ListMetricDescriptors", S.UNIMPLEMENTED)
        runtime.inject_latency("Version", 0.2)  # the first probe is still out when the rest fail
        before = runtime.calls["Version"]
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await client.runtime.list_metric_descriptors(timeout=10)
            except aiocri.CRIError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(call)
        assert len(failures) == 200
        assert all(isinstance(f, aiocri.UnsupportedByRuntime) for f in failures)
        assert runtime.calls["Version"] - before <= 2


async def test_a_read_only_call_is_sent_once_more_after_unavailable(
        runtime: FakeRuntime) -> None:
    """UNAVAILABLE is gRPC's "try again": a read-only call gets one more try on the same
    connection once the probe found the runtime there; a call that changes state not."""
    async with runtime.connect(redial=FAST) as client:
        generation = client.generation
        runtime.inject_errors("ListContainers", S.UNAVAILABLE, count=1)
        await client.runtime.list_containers(timeout=5)  # the second try answers
        assert runtime.calls["ListContainers"] == 2
        runtime.inject_errors("RemoveContainer", S.UNAVAILABLE, count=1)
        with pytest.raises(aiocri.Unavailable):
            await client.runtime.remove_container(container_id="x", timeout=5)
        assert runtime.calls["RemoveContainer"] == 1
        assert client.generation == generation and client.stats.redials == 0
