"""Exec, attach and port-forward sessions against the fake runtime's streaming server,
through both transports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiocri
from aiocri.streaming import TransportName, _status
from aiocri.streaming._pipe import Pipe
from aiocri.testing import WEBSOCKET_PROTOCOLS, WEBSOCKET_V4, FakeRuntime
from aiocri.testing._exec import ExecResult

pytestmark = pytest.mark.anyio

TRANSPORTS: list[TransportName] = ["spdy", "websocket"]


@pytest.fixture
async def client(runtime: FakeRuntime) -> AsyncIterator[aiocri.CRIClient]:
    async with aiocri.connect(runtime.endpoint) as c:
        yield c


@pytest.fixture
def cid(runtime: FakeRuntime) -> str:
    return runtime.populate(1, 1).container_ids[0]


async def until(done: Callable[[], object], what: str = "the condition",
                seconds: float = 30.0) -> None:
    """Poll ``done()`` until it holds; fail loudly after ``seconds`` (a bound no machine,
    however busy, should reach)."""
    try:
        with anyio.fail_after(seconds):
            while not done():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {seconds} s: {what}") from None


# -- the exit status (pure) ----------------------------------------------------------


def test_exit_codes_from_status() -> None:
    assert _status.exit_code_of(b'{"metadata":{},"status":"Success"}') == 0
    failure = {"status": "Failure", "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": "42"}]}}
    assert _status.exit_code_of(json.dumps(failure).encode()) == 42
    with pytest.raises(aiocri.ExecFailed) as missing:
        _status.exit_code_of(json.dumps({
            "status": "Failure", "reason": "InternalError",
            "message": 'exec: "nope": executable file not found in $PATH'}).encode())
    assert missing.value.exit_code == 127 and "nope" in str(missing.value)
    with pytest.raises(aiocri.ExecFailed) as denied:
        _status.exit_code_of(b'{"status":"Failure","message":"exec: permission denied"}')
    assert denied.value.exit_code == 126
    with pytest.raises(aiocri.ExecFailed) as plain:
        _status.exit_code_of(b"some v1 error text")
    assert plain.value.exit_code is None


@pytest.mark.parametrize("details", [["x"], "oops", {"causes": 5}, {"causes": ["x", None]},
                                     {"causes": [{"reason": "ExitCode", "message": [1]}]}])
def test_a_status_of_an_unexpected_shape_is_exec_failed(details: object) -> None:
    raw = json.dumps({"status": "Failure", "reason": "NonZeroExitCode", "message": "odd",
                      "details": details}).encode()
    with pytest.raises(aiocri.ExecFailed, match="odd"):
        _status.exit_code_of(raw)


# -- the pipe (pure, no I/O) ---------------------------------------------------------


async def test_pipe_pauses_its_feeder_and_resumes_it() -> None:
    drained = []
    pipe = Pipe(limit=10, on_drained=lambda: drained.append(True))
    assert pipe.feed(b"12345")
    assert not pipe.feed(b"67890")  # full: the feeder pauses
    assert await pipe.read(3) == b"123"
    assert drained == [True] and pipe.writable
    pipe.fail(ConnectionError("gone"))
    assert await pipe.read() == b"45"
    assert await pipe.read() == b"67890"
    with pytest.raises(ConnectionError):
        await pipe.read()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=50), max_size=30),
       st.lists(st.integers(-1, 40).filter(bool), min_size=1, max_size=10))
def test_pipe_delivers_every_byte_in_order(chunks: list[bytes], sizes: list[int]) -> None:
    async def scenario() -> bytes:
        pipe = Pipe(limit=64)
        got = bytearray()

        async def feeder() -> None:
            for chunk in chunks:
                if not pipe.feed(chunk):
                    await pipe.wait_writable()
            pipe.feed_eof()

        task = asyncio.ensure_future(feeder())
        index = 0
        while chunk := await pipe.read(sizes[index % len(sizes)]):
            got += chunk
            index += 1
        await task
        return bytes(got)

    assert asyncio.run(scenario()) == b"".join(chunks)


async def test_pipe_read_refuses_a_size_that_is_not_an_int_and_loses_nothing() -> None:
    pipe = Pipe()
    pipe.feed(b"hello\n")
    pipe.feed_eof()
    for bad in (None, 1.5, True):
        with pytest.raises(TypeError, match="n must be an int"):
            await pipe.read(bad)  # type: ignore[arg-type]
    assert await pipe.read(0) == b""  # not the end: nothing asked, nothing taken
    assert await pipe.readall() == b"hello\n"


async def test_a_full_pipe_counts_as_forgotten_only_if_never_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aiocri.streaming import _pipe

    clock = [100.0]
    monkeypatch.setattr(_pipe.time, "monotonic", lambda: clock[0])
    never, slow = Pipe(limit=4), Pipe(limit=4)
    for pipe in (never, slow):
        pipe.feed(b"abcd")
        pipe.feed(b"efgh")
    assert await slow.read() == b"abcd"  # a reader that is merely slow: still full
    clock[0] += 60
    assert never.stuck_for() == 60 and slow.stuck_for() == 0


# -- exec ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["spdy", "auto"])
async def test_exec_stdin_ends_on_close(client: aiocri.CRIClient, cid: str, transport: str
                                        ) -> None:
    async with client.exec_stream(cid, ["cat"], stdin=True, transport=transport) as session:
        assert session.transport == "spdy"
        output = await session.communicate(b"hello\nworld")
    assert output == aiocri.streaming.ExecOutput(b"hello\nworld", b"", 0)


async def test_websocket_v4_cannot_end_stdin_alone(runtime: FakeRuntime,
                                                   client: aiocri.CRIClient, cid: str) -> None:
    runtime.streaming.websocket_protocols = WEBSOCKET_V4  # as containerd: no v5
    async with client.exec_stream(cid, ["cat"], stdin=True, transport="websocket") as session:
        assert session.transport == "websocket/v4.channel.k8s.io"
        assert session.stdin is not None and not session.stdin.can_close
        await session.stdin.write(b"ping")
        assert session.stdout is not None and await session.stdout.read() == b"ping"
        with pytest.raises(aiocri.StreamingError, match="cannot be closed alone"):
            await session.stdin.close()
        await session.stdin.write(b"still open")  # the failed close changed nothing
        assert await session.stdout.read() == b"still open"


async def test_websocket_on_the_fake_is_v5_and_ends_stdin(client: aiocri.CRIClient,
                                                          cid: str) -> None:
    async with client.exec_stream(cid, ["cat"], stdin=True, transport="websocket") as session:
        assert session.transport == "websocket/v5.channel.k8s.io"
        assert session.stdin is not None and session.stdin.can_close
        assert await session.communicate(b"data") == aiocri.streaming.ExecOutput(
            b"data", b"", 0)


async def test_the_fake_serves_websocket_v4_only_when_told(sock_dir: object) -> None:
    assert WEBSOCKET_PROTOCOLS[0] == "v5.channel.k8s.io"
    assert "v5.channel.k8s.io" not in WEBSOCKET_V4
    async with FakeRuntime(f"{sock_dir}/v4.sock", websocket_protocols=WEBSOCKET_V4) as rt, \
            aiocri.connect(rt.endpoint) as client:
        container = rt.populate(1, 1).container_ids[0]
        async with client.exec_stream(container, ["cat"], stdin=True,
                                      transport="websocket") as session:
            assert session.transport == "websocket/v4.channel.k8s.io"
            assert session.stdin is not None and not session.stdin.can_close
    for wrong in ((), "v4.channel.k8s.io", [""], [4]):
        with pytest.raises(TypeError, match="websocket_protocols"):
            FakeRuntime(f"{sock_dir}/bad.sock", websocket_protocols=wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_exec_exit_codes_and_streams(client: aiocri.CRIClient, cid: str,
                                           transport: TransportName) -> None:
    async with client.exec_stream(cid, ["sh", "-c", "echo out; echo err; exit 7"],
                                  transport=transport) as session:
        output = await session.communicate()
    assert output.exit_code == 7 and output.stdout == b"out\nerr\n"
    async with client.exec_stream(cid, ["true"], transport=transport) as session:
        assert await session.wait() == 0
        assert await session.wait() == 0  # cached


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_exec_of_a_missing_binary(client: aiocri.CRIClient, cid: str, transport: str
                                        ) -> None:
    async with client.exec_stream(cid, ["no-such-tool"], transport=transport) as session:
        with pytest.raises(aiocri.ExecFailed) as failed:
            await session.wait()
    assert failed.value.exit_code == 127
    assert "executable file not found" in str(failed.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tty_resize_reaches_the_command(client: aiocri.CRIClient, cid: str,
                                              transport: TransportName) -> None:
    async with client.exec_stream(cid, ["stty", "size"], stdin=True, tty=True,
                                  transport=transport) as session:
        await session.resize(132, 43)
        assert session.stdout is not None
        assert await session.stdout.readall() == b"43 132\r\n"
        assert await session.stderr.readall() == b""  # a terminal merges them
        assert await session.wait() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_item_15_a_stream_not_opened_raises_a_clear_error(
        client: aiocri.CRIClient, cid: str, transport: TransportName) -> None:
    async with client.exec_stream(cid, ["echo", "hi"], stderr=False,
                                  transport=transport) as session:
        for name in ("stdin", "stderr"):
            with pytest.raises(ValueError, match=f"opened without {name}: pass {name}=True"):
                getattr(session, name)
        with pytest.raises(ValueError, match="opened without stdin"):
            await session.communicate(b"data")
        assert (await session.communicate()).stdout == b"hi\n"
    async with client.attach_stream(cid, stdout=False, stderr=True,
                                    transport=transport) as session:
        with pytest.raises(ValueError, match="opened without stdout: pass stdout=True"):
            session.stdout  # noqa: B018


async def test_interactive_shell_over_a_tty(client: aiocri.CRIClient, cid: str) -> None:
    async with client.exec_stream(cid, ["sh"], stdin=True, tty=True) as session:
        assert session.stdin is not None and session.stdout is not None
        await session.stdin.write(b"echo one\n")
        assert await session.stdout.read() == b"one\r\n"
        await session.stdin.write(b"exit 4\n")
        assert await session.wait() == 4


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(min_size=1, max_size=70_000), max_size=6),
       transport=st.sampled_from(TRANSPORTS))
def test_cat_returns_exactly_what_was_sent(sock_dir: object, chunks: list[bytes],
                                           transport: TransportName) -> None:
    async def scenario() -> bytes:
        path = f"{sock_dir}/cat.sock"
        async with FakeRuntime(path) as rt, aiocri.connect(rt.endpoint) as c:
            rt.streaming.websocket_protocols = ("v5.channel.k8s.io",)
            container = rt.populate(1, 1).container_ids[0]
            async with c.exec_stream(container, ["cat"], stdin=True,
                                     transport=transport) as s:
                for chunk in chunks:
                    assert s.stdin is not None
                    await s.stdin.write(chunk)
                return (await s.communicate()).stdout

    assert asyncio.run(scenario()) == b"".join(chunks)


async def test_session_ends_when_the_container_stops(runtime: FakeRuntime,
                                                     client: aiocri.CRIClient, cid: str) -> None:
    async with client.exec_stream(cid, ["sleep", "60"]) as session:
        await until(lambda: runtime.state.containers[cid].on_exit, "the exec session runs")
        runtime.state.stop_container(cid)
        assert await asyncio.wait_for(session.wait(), 5) == 137


async def test_exec_in_a_stopped_container_is_refused_at_once(
        runtime: FakeRuntime, client: aiocri.CRIClient, cid: str) -> None:
    runtime.state.stop_container(cid)
    with pytest.raises(aiocri.CRIError, match="not running|is in"):
        await client.exec_stream(cid, ["true"])


async def test_wrong_arguments_fail_before_any_call(runtime: FakeRuntime,
                                                    client: aiocri.CRIClient, cid: str) -> None:
    before = runtime.calls["Exec"]
    with pytest.raises(TypeError, match="list of str"):
        client.exec_stream(cid, "ls -l")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of str"):  # read once, it would be sent empty
        client.exec_stream(cid, iter(["ls", "-l"]))  # type: ignore[arg-type]
    with pytest.raises(aiocri.InvalidArgument, match="container_id is empty; nothing was sent"):
        client.exec_stream("  ", ["ls"])
    with pytest.raises(ValueError, match="no separate stderr"):
        client.exec_stream(cid, ["ls"], tty=True, stderr=True)
    with pytest.raises(ValueError, match="transport"):
        client.exec_stream(cid, ["ls"], transport="http2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one of stdin"):
        client.attach_stream(cid, stdout=False, stderr=False)
    with pytest.raises(ValueError, match="port"):
        client.port_forward("pod", 70000)
    async with client.exec_stream(cid, ["true"]) as session:
        with pytest.raises(ValueError, match="tty=True"):
            await session.resize(80, 24)
    async with client.exec_stream(cid, ["true"], tty=True) as session:
        with pytest.raises(ValueError, match="1..65535"):
            await session.resize(0, 24)
    async with client.exec_stream(cid, ["cat"], stdin=True) as session:
        assert session.stdin is not None and session.stdout is not None
        for bad in (5, "text", [1, 2]):  # bytes(5) would be five NULs
            with pytest.raises(TypeError, match="bytes-like"):
                await session.stdin.write(bad)  # type: ignore[arg-type]
        await session.stdin.write(bytearray(b"ok"))
        await session.stdin.close()
        assert await session.stdout.readall() == b"ok"
    assert runtime.calls["Exec"] == before + 3


async def test_a_spent_url_is_refused_with_a_typed_error(runtime: FakeRuntime,
                                                         client: aiocri.CRIClient, cid: str
                                                         ) -> None:
    from aiocri.streaming._transports import open_spdy, open_websocket

    url = (await client.runtime.exec(aiocri.api.ExecRequest(
        container_id=cid, cmd=["true"], stdout=True))).url
    session = await open_spdy(url, ["stdout"])
    await session.aclose()
    with pytest.raises(aiocri.UpgradeRefused) as spdy_refused:
        await open_spdy(url, ["stdout"])
    assert spdy_refused.value.status == 404
    with pytest.raises(aiocri.UpgradeRefused) as ws_refused:
        await open_websocket(url, ["stdout"])
    assert ws_refused.value.status == 404


async def test_auto_falls_back_to_websocket(runtime: FakeRuntime, client: aiocri.CRIClient,
                                            cid: str) -> None:
    runtime.streaming.transports = {"websocket"}
    before = runtime.calls["Exec"]
    async with client.exec_stream(cid, ["echo", "hi"]) as session:
        assert session.transport.startswith("websocket")
        assert (await session.communicate()).stdout == b"hi\n"
    assert runtime.calls["Exec"] == before + 2  # the refused URL was spent
    with pytest.raises(aiocri.UpgradeRefused, match="HTTP 400"):
        await client.exec_stream(cid, ["true"], transport="spdy")


async def test_streaming_server_gone(runtime: FakeRuntime, client: aiocri.CRIClient,
                                     cid: str) -> None:
    url = (await client.runtime.exec(aiocri.api.ExecRequest(
        container_id=cid, cmd=["true"], stdout=True))).url
    session = await client.exec_stream(cid, ["sleep", "60"])
    await runtime.streaming.stop()  # the runtime died: its sessions and URLs with it
    with pytest.raises(aiocri.StreamingError):
        await asyncio.wait_for(session.wait(), 5)
    await session.aclose()
    from aiocri.streaming._transports import open_spdy

    with pytest.raises(aiocri.StreamingError, match="cannot reach"):
        await open_spdy(url, ["stdout"])


async def test_caller_cancelling_leaves_nothing_behind(runtime: FakeRuntime,
                                                       client: aiocri.CRIClient, cid: str
                                                       ) -> None:
    reading = asyncio.Event()

    async def user() -> None:
        async with client.exec_stream(cid, ["cat"], stdin=True) as session:
            assert session.stdout is not None
            reading.set()  # no await until read() waits
            await session.stdout.read()  # never comes

    task = asyncio.ensure_future(user())
    await until(lambda: reading.is_set() and runtime.state.containers[cid].on_exit,
                "the caller waits on a running session")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the server notices the closed connection and ends the session
    await until(lambda: not runtime.streaming._tasks, "the server's session ended")
    assert not runtime.streaming._tasks
    assert not runtime.state.containers[cid].on_exit


async def test_a_session_that_starts_too_slowly_times_out(runtime: FakeRuntime,
                                                          client: aiocri.CRIClient, cid: str
                                                          ) -> None:
    runtime.inject_latency("Exec", 2.0)
    with pytest.raises(aiocri.StreamingError, match="did not start within 0.2 s"):
        await client.exec_stream(cid, ["true"], timeout=0.2)


# -- attach --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_attach_follows_output(runtime: FakeRuntime, client: aiocri.CRIClient, cid: str,
                                     transport: TransportName) -> None:
    async with client.attach_stream(cid, transport=transport) as session:
        await until(lambda: runtime.state.containers[cid].listeners, "the attach listens")
        runtime.write_output(cid, "line 1\n")
        runtime.write_output(cid, "oops\n", stream="stderr")
        assert session.stdout is not None and session.stderr is not None
        assert await session.stdout.read() == b"line 1\n"
        assert await session.stderr.read() == b"oops\n"
        runtime.state.exit_container(cid, 0)
        assert await asyncio.wait_for(session.wait(), 5) == 0


async def test_attach_stdin_reaches_the_containers_shell(client: aiocri.CRIClient,
                                                         runtime: FakeRuntime) -> None:
    """What attach writes, the container's own command reads: `sh` runs it (the CRI
    conformance suite's check), `cat` prints it back; input to a container made
    without stdin goes nowhere."""
    pod = runtime.state.add_pod("attach")
    shell = runtime.state.add_container(pod, "sh", command=["sh"], stdin=True)
    async with client.attach_stream(shell, stdin=True) as session:
        assert session.stdin is not None and session.stdout is not None
        await session.stdin.write(b"echo -n hello\n")
        assert await session.stdout.read() == b"hello"
        await session.stdin.write(b"echo oops >&2; exit 4\n")
        assert session.stderr is not None and await session.stderr.read() == b"oops\n"
    await until(lambda: not runtime.state.containers[shell].running, "the shell to exit")
    assert runtime.state.containers[shell].exit_code == 4
    cat = runtime.state.add_container(pod, "cat", command=["cat"], stdin=True, tty=True)
    async with client.attach_stream(cat, stdin=True, tty=True) as session:
        assert session.stdin is not None and session.stdout is not None
        await session.stdin.write(b"typed\n")
        assert await session.stdout.read() == b"typed\r\n"


# -- port forwarding -----------------------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def pod_service(serve: Handler) -> AsyncIterator[int]:
    """A TCP service "in the pod" (pods share the host's network here): its port."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def echo_server() -> contextlib.AbstractAsyncContextManager[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    return pod_service(serve)


def reset(writer: asyncio.StreamWriter) -> None:
    """End a TCP connection with RST, as a crashed peer does."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_port_forward_one_connection(runtime: FakeRuntime, client: aiocri.CRIClient,
                                           transport: TransportName) -> None:
    pod = runtime.populate(1, 0).pod_ids[0]
    async with echo_server() as port, client.port_forward(pod, port,
                                                          transport=transport) as conn:
        await conn.write(b"hello")
        assert await conn.read() == b"HELLO"
        if conn.can_close_write:
            await conn.close_write()
            assert await conn.read() == b""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_port_forward_to_a_closed_port(runtime: FakeRuntime, client: aiocri.CRIClient,
                                             transport: TransportName) -> None:
    pod = runtime.populate(1, 0).pod_ids[0]
    async with echo_server() as port:
        pass  # now nothing listens there
    async with client.port_forward(pod, port, transport=transport) as conn:
        with pytest.raises(aiocri.StreamingError, match="connection refused"):
            await asyncio.wait_for(conn.read(), 5)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_forward_port_listener(runtime: FakeRuntime, client: aiocri.CRIClient,
                                     transport: TransportName) -> None:
    pod = runtime.populate(1, 0).pod_ids[0]
    async with echo_server() as port, client.forward_port(pod, port,
                                                          transport=transport) as forwarder:

        async def one(text: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
            writer.write(text)
            if transport == "spdy":  # WebSocket cannot carry the end of one direction
                writer.write_eof()
                data = await reader.read()
            else:
                data = await reader.readexactly(len(text))
            writer.close()
            return data

        texts = [f"connection {i}".encode() for i in range(8)]
        assert await asyncio.gather(*(one(t) for t in texts)) == [t.upper() for t in texts]
        assert forwarder.connections == 8 and forwarder.failures == 0
    assert runtime.streaming.upgrades[transport] == 8  # a session per connection


@pytest.mark.parametrize(("transport", "ending"), [("spdy", "reset"), ("websocket", "reset"),
                                                   ("websocket", "close")])
async def test_forwarded_connections_end_when_the_local_side_does(
        runtime: FakeRuntime, client: aiocri.CRIClient, transport: TransportName, ending: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A local client that resets, or closes over WebSocket (which cannot pass the end
    on), ends its forwarded connection: no task, session or pod-side socket is left."""
    from aiocri.streaming import _portforward

    monkeypatch.setattr(_portforward, "_IDLE_AFTER_EOF", 0.2)
    pod = runtime.populate(1, 0).pod_ids[0]
    open_in_pod: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_in_pod.append(writer)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data.upper())
                await writer.drain()
        open_in_pod.remove(writer)
        writer.close()

    async with pod_service(serve) as port, client.forward_port(
            pod, port, transport=transport) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"HI"
        if ending == "reset":
            reset(writer)
        else:
            writer.close()
        await until(lambda: not forwarder._tasks and not open_in_pod,
                    "the forwarder's connections and the pod's ended")
        assert not forwarder._tasks and not open_in_pod
        assert forwarder.failures == (1 if ending == "reset" else 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_slow_local_reader_gets_the_whole_reply(
        runtime: FakeRuntime, client: aiocri.CRIClient, transport: TransportName,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over WebSocket a connection whose local side ended lives while the pod sends: time
    spent waiting for a slow local reader is not the pod's silence."""
    from aiocri.streaming import _portforward

    monkeypatch.setattr(_portforward, "_IDLE_AFTER_EOF", 0.2)
    pod = runtime.populate(1, 0).pod_ids[0]
    size = 16 << 20

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # one request, then a big reply
        writer.write(b"x" * size)
        await writer.drain()
        writer.close()

    async with pod_service(serve) as port, client.forward_port(
            pod, port, transport=transport) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
        writer.write(b"GET\n")
        writer.write_eof()
        await asyncio.sleep(1.0)  # busy for a while
        got = len(await asyncio.wait_for(reader.read(), 10))
        writer.close()
    assert got == size and forwarder.failures == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closing_a_forwarder_ends_connections_stuck_on_full_pipes(
        runtime: FakeRuntime, client: aiocri.CRIClient, transport: TransportName) -> None:
    pod = runtime.populate(1, 0).pod_ids[0]

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()

    before = set(asyncio.all_tasks())

    def left() -> list[str]:
        def module(task: asyncio.Task[object]) -> str:
            frame = getattr(task.get_coro(), "cr_frame", None)  # a coroutine has no __module__
            return frame.f_globals.get("__name__", "") if frame is not None else ""

        return [t.get_coro().__qualname__ for t in asyncio.all_tasks() - before  # type: ignore[union-attr]
                if not t.done() and "aiocri.streaming" in module(t)]

    async with pod_service(chatty) as port, client.forward_port(
            pod, port, transport=transport) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
        await reader.readexactly(10)
        assert left()  # the forwarder's tasks, seen by left()
        await asyncio.sleep(0.3)  # nobody reads: every buffer fills
        writer.transport.abort()
        await asyncio.sleep(0.1)
    await until(lambda: not left(), "the forwarder's tasks ended")
    assert left() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_forwarded_connection_ends_with_the_pod_side(
        runtime: FakeRuntime, client: aiocri.CRIClient, transport: TransportName) -> None:
    """The pod's side resets while the local side keeps writing into a window that will
    never open again: the connection ends (as kubectl's does), it does not linger."""
    pod = runtime.populate(1, 0).pod_ids[0]

    async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)  # never reads
        reset(writer)

    async with pod_service(resets) as port, client.forward_port(
            pod, port, transport=transport) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)

        async def flood() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    writer.write(b"y" * 65536)
                    await writer.drain()

        flooding = asyncio.ensure_future(flood())
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), 5)
        await until(lambda: not forwarder._tasks, "the connection ended")
        assert not forwarder._tasks
        flooding.cancel()
        writer.close()


async def test_a_closed_client_opens_no_session(runtime: FakeRuntime, client: aiocri.CRIClient,
                                                cid: str) -> None:
    """Closed while a session was opening, or before: ClientClosed, and nothing stays open."""
    pod = runtime.populate(1, 0).pod_ids[0]
    answer = runtime.streaming._connection
    arrived, answering = asyncio.Event(), asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await answering.wait()  # a busy streaming server answers the upgrade late
        await answer(reader, writer)

    runtime.streaming._connection = slow  # type: ignore[method-assign]
    opening = asyncio.ensure_future(client.exec_stream(cid, ["sleep", "30"]).__aenter__())
    await until(arrived.is_set, "the upgrade reached the streaming server")
    await client.aclose()
    answering.set()
    with pytest.raises(aiocri.ClientClosed):
        await asyncio.wait_for(opening, 5)
    # the session the server made ends with its connection
    await until(lambda: not runtime.streaming._tasks, "the server's session ended")
    assert not runtime.streaming._tasks
    with pytest.raises(aiocri.ClientClosed):
        await client.forward_port(pod, 80)  # it would listen for a client that is gone


async def test_port_forward_to_a_missing_pod(client: aiocri.CRIClient) -> None:
    with pytest.raises(aiocri.NotFound):
        await client.port_forward("f" * 64, 80)


async def test_wait_with_unread_output_fails_instead_of_hanging(
        runtime: FakeRuntime, client: aiocri.CRIClient, cid: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aiocri.streaming import _session

    monkeypatch.setattr(_session, "STALL_LIMIT", 0.3)
    big = b"y" * (6 << 20)  # more than a pipe holds
    runtime.set_exec_handler(lambda c, cmd: ExecResult(stdout=big))
    async with client.exec_stream(cid, ["yes"]) as session:
        with pytest.raises(aiocri.StreamingError, match="stdout is full and was never read"):
            await asyncio.wait_for(session.wait(), 10)
    async with client.exec_stream(cid, ["yes"]) as session:  # reading it, all is well
        output = await asyncio.wait_for(session.communicate(), 10)
    assert output.stdout == big and output.exit_code == 0


async def test_communicate_refuses_a_stdin_it_cannot_end(runtime: FakeRuntime,
                                                         client: aiocri.CRIClient, cid: str
                                                         ) -> None:
    runtime.streaming.websocket_protocols = WEBSOCKET_V4
    async with client.exec_stream(cid, ["cat"], stdin=True, transport="websocket") as session:
        with pytest.raises(aiocri.StreamingError, match="cannot do"):
            await asyncio.wait_for(session.communicate(b"x"), 5)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reading_after_close_is_a_streaming_error(client: aiocri.CRIClient, cid: str,
                                                        transport: TransportName) -> None:
    session = await client.exec_stream(cid, ["sleep", "60"], transport=transport)
    assert session.stdout is not None
    reading = asyncio.Event()

    async def read() -> bytes:
        assert session.stdout is not None
        reading.set()  # no await until read() waits
        return await session.stdout.read()

    reader = asyncio.ensure_future(read())
    await until(reading.is_set, "the reader waits")
    await session.aclose()  # from another task than the reader's
    with pytest.raises(aiocri.StreamingError, match="the session was closed"):
        await asyncio.wait_for(reader, 5)
    with pytest.raises(aiocri.StreamingError, match="the session was closed"):
        await session.stdout.readall()  # not a clean end that never happened


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_many_tasks_wait_for_one_exit_code(client: aiocri.CRIClient, cid: str,
                                                 transport: TransportName) -> None:
    async with client.exec_stream(cid, ["sh", "-c", "exit 3"], transport=transport) as session:
        codes = await asyncio.wait_for(asyncio.gather(*(session.wait() for _ in range(3))), 5)
    assert codes == [3, 3, 3]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_wait_and_close_at_once(client: aiocri.CRIClient, cid: str,
                                      transport: TransportName) -> None:
    """A wait() racing the close, or a close before the transport's reader ever ran:
    StreamingError for every waiter and reader, never CancelledError or a hang."""
    session = await client.exec_stream(cid, ["sleep", "60"], transport=transport)
    results = await asyncio.wait_for(
        asyncio.gather(session.aclose(), session.wait(), return_exceptions=True), 5)
    assert results[0] is None and isinstance(results[1], aiocri.StreamingError)
    with pytest.raises(aiocri.StreamingError):
        await asyncio.wait_for(session.wait(), 5)
    session = await client.exec_stream(cid, ["sleep", "60"], transport=transport)
    await session.aclose()  # at once: no other task ran in between
    assert session.stdout is not None
    with pytest.raises(aiocri.StreamingError, match="closed"):
        await asyncio.wait_for(session.stdout.read(), 5)


async def test_closing_with_unsent_stdin_drops_the_connection(client: aiocri.CRIClient,
                                                              cid: str) -> None:
    session = await client.exec_stream(cid, ["sleep", "20"], stdin=True, transport="spdy")
    assert session.stdin is not None
    transport = session._channels._connection._transport  # type: ignore[attr-defined]
    writer = asyncio.ensure_future(session.stdin.write(b"x" * (64 << 20)))  # never read
    await until(lambda: transport.get_write_buffer_size() > 0 or writer.done(),
                "stdin backs up in the socket's buffer")
    assert not writer.done()
    await session.aclose()
    with pytest.raises(aiocri.StreamingError) as broke:
        await asyncio.wait_for(writer, 30)
    assert str(broke.value).count("start a new session") == 1  # the hint once, not twice
    await until(lambda: transport.get_extra_info("socket").fileno() == -1,
                "the socket was closed")
    # close() would keep the socket until a peer that never reads took the rest
    assert transport.get_write_buffer_size() == 0
    assert transport.get_extra_info("socket").fileno() == -1


async def test_a_stream_reset_other_than_cancel_is_an_error() -> None:
    from aiocri.streaming import _spdy as spdy
    from aiocri.streaming._spdy_conn import SpdyConnection

    class Sink(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.sent = b""

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.sent += bytes(data)

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

        def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
            pass

    connection = SpdyConnection(client=True)
    sink = Sink()
    connection.start(sink)
    finished = await connection.open_stream({"streamtype": "stdout"})
    refused = await connection.open_stream({"streamtype": "stderr"})
    server = spdy.FrameEncoder()
    connection.data_received(server.encode(spdy.Data(finished.id, b"out"))
                             + server.encode(spdy.RstStream(finished.id, spdy.CANCEL))
                             + server.encode(spdy.RstStream(refused.id, spdy.REFUSED_STREAM))
                             + server.encode(spdy.Ping(2)) + server.encode(spdy.Ping(3))
                             + server.encode(spdy.GoAway(3)))
    assert await finished.read() == b"out" and await finished.read() == b""
    with pytest.raises(aiocri.StreamingError, match="SPDY status 3"):
        await refused.read()
    assert connection.going_away
    replies = [f for f in spdy.FrameParser().feed(sink.sent) if isinstance(f, spdy.Ping)]
    assert replies == [spdy.Ping(2)]  # the server's ping echoed, not one carrying our parity


async def test_a_protocol_the_server_refuses_is_403(runtime: FakeRuntime,
                                                    client: aiocri.CRIClient, cid: str) -> None:
    runtime.streaming.websocket_protocols = ("v9.channel.k8s.io",)
    with pytest.raises(aiocri.UpgradeRefused) as refused:
        await client.exec_stream(cid, ["true"], transport="websocket")
    assert refused.value.status == 403 and "HTTP 403" in str(refused.value)


async def test_closing_the_client_closes_its_sessions_and_forwarders(
        runtime: FakeRuntime, client: aiocri.CRIClient, cid: str) -> None:
    pod = runtime.populate(1, 0).pod_ids[0]
    session = await client.exec_stream(cid, ["sleep", "60"])
    async with echo_server() as port:
        forwarder = await client.forward_port(pod, port)
        local = forwarder.port
        await client.aclose()  # as another task would
        with pytest.raises(aiocri.StreamingError, match="the session was closed"):
            await asyncio.wait_for(session.wait(), 5)
        with pytest.raises(ConnectionRefusedError):  # the local port no longer listens
            await asyncio.open_connection("127.0.0.1", local)
