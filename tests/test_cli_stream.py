"""The streaming commands (exec, attach, port-forward, logs) as real processes against
the fake runtime, TTY sessions on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from aiocri.testing import WEBSOCKET_V4, FakeRuntime
from tests.cli_process import aiocri, cli_env

pytest.importorskip("yaml")
pytestmark = pytest.mark.anyio
async def test_exec_streams_and_exit_codes(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    assert await aiocri(rt.endpoint, "exec", "-i", cid[:8], "--", "cat",
                        stdin=b"piped\n" * 1000) == (0, b"piped\n" * 1000, b"")
    code, out, _ = await aiocri(rt.endpoint, "exec", cid, "--", "sh", "-c", "echo hi; exit 5")
    assert (code, out) == (5, b"hi\n")
    code, _, err = await aiocri(rt.endpoint, "exec", cid, "--", "missing-tool")
    assert code == 127 and b"executable file not found" in err and err.count(b"\n") == 1
    assert await aiocri(rt.endpoint, "exec", "-r", "websocket", cid, "--", "echo", "ws") == (
        0, b"ws\n", b"")
    assert await aiocri(rt.endpoint, "exec", "-s", cid, "--", "echo", "sync") == (
        0, b"sync\n", b"")
    code, _, err = await aiocri(rt.endpoint, "exec", "-r", "http3", cid, "--", "true")
    assert code == 2 and b"spdy or websocket" in err
    assert rt.calls["Exec"] == 4 and rt.calls["ExecSync"] == 1  # nothing sent for bad flags


async def until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until true; the bound is only there to end a broken test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.02)


def raw_mode(terminal: int) -> bool:
    lflag: int = termios.tcgetattr(terminal)[3]
    return lflag & termios.ICANON == 0


async def session_up(rt: FakeRuntime, run: OnPty) -> None:
    """The exec session is upgraded and the command has put its terminal in raw mode."""
    await until(lambda: rt.streaming.upgrades["spdy"] and raw_mode(run.terminal),
                "the terminal session")


@dataclass
class OnPty:
    """``aiocri ARGS`` on a pseudo-terminal: its process, the controlling side (what
    a user types and sees) and the terminal the command runs on."""

    proc: subprocess.Popen[bytes]
    controller: int
    terminal: int

    async def exited(self) -> int | None:
        await until(lambda: self.proc.poll() is not None, "the command's exit")
        return self.proc.returncode


@contextlib.contextmanager
def on_pty(endpoint: str, *args: str, rows: int, cols: int) -> Iterator[OnPty]:
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiocri.cli", "-r", endpoint, *args],
        stdin=terminal, stdout=terminal, stderr=terminal, env=cli_env(), start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    try:
        yield OnPty(proc, controller, terminal)
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)
        os.close(terminal)


async def read_until(fd: int, needle: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never came; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], 0)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
        else:
            await asyncio.sleep(0.02)
    return seen


async def shows_size(run: OnPty, size: bytes, timeout: float = 60) -> None:
    """Ask ``stty size`` until the session answers ``size`` (the resize travels apart)."""
    deadline = time.monotonic() + timeout
    while True:
        os.write(run.controller, b"stty size\r")
        if size in await read_until(run.controller, b"\r\n"):
            return
        assert time.monotonic() < deadline, f"the session never showed {size!r}"
        await asyncio.sleep(0.05)


async def test_tty_session_resizes_and_restores_the_terminal(fake: tuple[FakeRuntime, str]
                                                             ) -> None:
    rt, cid = fake
    with on_pty(rt.endpoint, "exec", "-it", cid, "--", "sh", rows=30, cols=100) as run:
        before = termios.tcgetattr(run.terminal)
        await session_up(rt, run)
        os.write(run.controller, b"stty size\r")
        await read_until(run.controller, b"30 100")
        assert raw_mode(run.terminal)  # while the session runs
        fcntl.ioctl(run.terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        os.killpg(run.proc.pid, signal.SIGWINCH)
        await shows_size(run, b"50 120")
        os.write(run.controller, b"exit 3\r")
        assert await run.exited() == 3
        assert termios.tcgetattr(run.terminal) == before  # restored


async def test_sigterm_restores_the_terminal(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    with on_pty(rt.endpoint, "exec", "-it", cid, "--", "sh", rows=24, cols=80) as run:
        before = termios.tcgetattr(run.terminal)
        await session_up(rt, run)
        os.write(run.controller, b"echo ready\r")
        await read_until(run.controller, b"ready")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.exited() == 128 + signal.SIGTERM
        assert termios.tcgetattr(run.terminal) == before


async def test_attach_prints_what_the_container_writes(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "attach", cid,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        assert proc.stdout is not None and proc.stderr is not None
        await until(lambda: rt.state.containers[cid].listeners, "the attach")
        rt.write_output(cid, "to stdout\n")
        rt.write_output(cid, "to stderr\n", stream="stderr")
        # the command printed both before the container ends its session
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"to stdout\n"
        assert await asyncio.wait_for(proc.stderr.readline(), 60) == b"to stderr\n"
        rt.state.exit_container(cid, 0)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (proc.returncode, out, err) == (0, b"", b"")


async def test_port_forward_until_interrupted(fake: tuple[FakeRuntime, str]) -> None:
    rt, _ = fake
    pod = next(iter(rt.state.pods))

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.read(100)).upper())
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    remote = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "port-forward", pod[:6],
        f":{remote}", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"Forwarding from 127.0.0.1:") and line.endswith(
            f"-> {remote}\n".encode())
        local = int(line.split(b":")[1].split()[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"through the pod")
        assert await asyncio.wait_for(reader.read(), 60) == b"THROUGH THE POD"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
    code, _, err = await aiocri(rt.endpoint, "port-forward", pod, "99999")
    assert code == 2 and b"1..65535" in err


async def test_logs(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    for i in range(5):
        rt.write_output(cid, f"out {i}\n")
    rt.write_output(cid, "err line\n", stream="stderr")
    assert await aiocri(rt.endpoint, "logs", cid) == (
        0, b"".join(f"out {i}\n".encode() for i in range(5)), b"err line\n")
    code, out, err = await aiocri(rt.endpoint, "logs", "--tail", "2", cid)
    assert (code, out, err) == (0, b"out 4\n", b"err line\n")
    code, out, _ = await aiocri(rt.endpoint, "logs", "-t", "-s", "stdout", "--tail", "2", cid)
    stamp, text = out.split(b" ", 1)
    assert code == 0 and text == b"out 4\n" and stamp.endswith(b"Z")
    assert (await aiocri(rt.endpoint, "logs", "--limit-bytes", "8", cid))[1] == b"out 0\nou"
    assert (await aiocri(rt.endpoint, "logs", "-r", "-s", "stdout", cid))[1].splitlines()[0] == (
        b"out 4")
    assert (await aiocri(rt.endpoint, "logs", "--since", "2099-01-01T00:00:00Z", cid))[1] == b""
    assert (await aiocri(rt.endpoint, "logs", "--since", "1h", "--tail", "1", cid))[2] == (
        b"err line\n")
    code, _, err = await aiocri(rt.endpoint, "logs", "-p", cid)
    assert code == 1 and b"no previous attempt" in err
    code, _, err = await aiocri(rt.endpoint, "logs", "--since", "yesterday", cid)
    assert code == 2 and b"duration" in err
    code, out, err = await aiocri(rt.endpoint, "logs", "--since", "99999999999h", cid)
    assert (code, out, err) == (0, b"".join(f"out {i}\n".encode() for i in range(5)),
                                b"err line\n")  # before dates begin: every line

    statuses = rt.calls["ContainerStatus"]
    follow = asyncio.ensure_future(aiocri(rt.endpoint, "logs", "-f", "--tail", "0", cid))
    # One ContainerStatus finds the file; the next is asked only once the follower has
    # read to the end and found nothing new: from then on what is written is "new".
    await until(lambda: rt.calls["ContainerStatus"] >= statuses + 2 or follow.done(),
                "the follower reaching the end of the file")
    rt.write_output(cid, "live\n")
    rt.state.exit_container(cid, 0)  # following ends, after the rest of the file
    assert await follow == (0, b"live\n", b"")


async def test_exec_stdin_edge_cases(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    with open(os.devnull, "rb") as devnull:  # /dev/null cannot be polled: still ends
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "exec", "-i", cid, "--",
            "cat", stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=cli_env())
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out) == (0, b""), err
    # WebSocket v5 (the fake's first choice) passes the end of stdin on
    assert await aiocri(rt.endpoint, "exec", "-i", "-r", "websocket", cid, "--", "cat",
                        stdin=b"some input\n") == (0, b"some input\n", b"")
    # WebSocket v4 (containerd's) cannot: a clear error, not a hang
    rt.streaming.websocket_protocols = WEBSOCKET_V4
    code, out, err = await aiocri(rt.endpoint, "exec", "-i", "-r", "websocket", cid, "--", "cat",
                                  stdin=b"some input\n")
    assert code == 1 and out == b"some input\n" and b"cannot be closed alone" in err
    assert err.count(b"\n") == 1
