"""Streaming against the real containerd of ``make test``: exec, TTY, attach,
port-forward and logs, through both transports where containerd speaks them."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest

import aiocri
from aiocri.api import (
    ContainerStatusRequest,
    CreateContainerRequest,
    PodSandboxConfig,
    RemovePodSandboxRequest,
    ReopenContainerLogRequest,
    RunPodSandboxRequest,
    StartContainerRequest,
    StopPodSandboxRequest,
)
from aiocri.logs import read_log
from aiocri.streaming import TransportName
from aiocri.testing.containerd import Containerd, container_config

pytestmark = pytest.mark.anyio
TRANSPORTS: list[TransportName] = ["spdy", "websocket"]


@asynccontextmanager
async def pod(containerd: Containerd) -> AsyncIterator[tuple[aiocri.CRIClient, str,
                                                             PodSandboxConfig]]:
    async with aiocri.connect(containerd.endpoint) as client:
        config = containerd.pod_config(f"stream-{uuid.uuid4().hex[:8]}")
        os.makedirs(config.log_directory, exist_ok=True)
        pod_id = (await client.runtime.run_pod_sandbox(
            RunPodSandboxRequest(config=config), timeout=60)).pod_sandbox_id
        try:
            yield client, pod_id, config
        finally:
            with anyio.CancelScope(shield=True):
                await client.runtime.stop_pod_sandbox(
                    StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
                await client.runtime.remove_pod_sandbox(
                    RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)


async def start(client: aiocri.CRIClient, pod_id: str, config: PodSandboxConfig, name: str,
                command: Sequence[str] = ("sleep", "3600"), **extra: bool) -> str:
    container = container_config(name, command=command)
    for key, value in extra.items():
        setattr(container, key, value)
    cid = (await client.runtime.create_container(CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container, sandbox_config=config), timeout=60)
    ).container_id
    await client.runtime.start_container(StartContainerRequest(container_id=cid), timeout=60)
    return cid


@pytest.fixture
async def sleeper(containerd: Containerd) -> AsyncIterator[tuple[aiocri.CRIClient, str]]:
    async with pod(containerd) as (client, pod_id, config):
        yield client, await start(client, pod_id, config, "sleeper")


@pytest.mark.parametrize("transport", ["spdy", "auto"])
async def test_exec_with_piped_stdin_ends_on_eof(
        sleeper: tuple[aiocri.CRIClient, str], transport: TransportName) -> None:
    client, cid = sleeper
    data = os.urandom(300_000)
    async with client.exec_stream(cid, ["cat"], stdin=True, transport=transport) as session:
        output = await asyncio.wait_for(session.communicate(data), 30)
    assert output.stdout == data and output.exit_code == 0


async def test_websocket_carries_stdin_but_cannot_end_it(
        sleeper: tuple[aiocri.CRIClient, str]) -> None:
    client, cid = sleeper
    async with client.exec_stream(cid, ["cat"], stdin=True, transport="websocket") as session:
        assert session.transport == "websocket/v4.channel.k8s.io"  # containerd has no v5
        assert session.stdin is not None and session.stdout is not None
        await session.stdin.write(b"over websocket\n")
        assert await asyncio.wait_for(session.stdout.read(), 10) == b"over websocket\n"
        with pytest.raises(aiocri.StreamingError, match="cannot be closed alone"):
            await session.stdin.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_exit_codes_and_streams(sleeper: tuple[aiocri.CRIClient, str],
                                      transport: TransportName) -> None:
    client, cid = sleeper
    async with client.exec_stream(cid, ["sh", "-c", "echo out; echo err >&2; exit 7"],
                                  transport=transport) as session:
        output = await asyncio.wait_for(session.communicate(), 30)
    assert output == aiocri.streaming.ExecOutput(b"out\n", b"err\n", 7)
    async with client.exec_stream(cid, ["no-such-binary"], transport=transport) as session:
        with pytest.raises(aiocri.ExecFailed, match="executable file not found") as failed:
            await asyncio.wait_for(session.wait(), 30)
    assert failed.value.exit_code == 127


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tty_with_resize(sleeper: tuple[aiocri.CRIClient, str],
                               transport: TransportName) -> None:
    client, cid = sleeper
    async with client.exec_stream(cid, ["sh", "-c", "sleep 0.5; stty size"], stdin=True,
                                  tty=True, transport=transport) as session:
        await session.resize(101, 37)
        assert session.stdout is not None
        text = await asyncio.wait_for(session.stdout.readall(), 30)
        assert await session.wait() == 0
    assert text.strip() == b"37 101"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_attach_to_a_running_container(containerd: Containerd,
                                             transport: TransportName) -> None:
    ticker = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
    async with pod(containerd) as (client, pod_id, config):
        cid = await start(client, pod_id, config, "ticker", ticker)
        async with client.attach_stream(cid, transport=transport) as session:
            assert session.stdout is not None
            seen = b""
            with anyio.fail_after(20):
                while seen.count(b"tick") < 3:
                    seen += await session.stdout.read()
        assert b"tick" in seen


async def test_attach_stdin_reaches_the_main_process(containerd: Containerd) -> None:
    async with pod(containerd) as (client, pod_id, config):
        cid = await start(client, pod_id, config, "reader", ["sh", "-c", "read x; echo got $x"],
                          stdin=True, stdin_once=True)
        async with client.attach_stream(cid, stdin=True) as session:
            output = await asyncio.wait_for(session.communicate(b"hello\n"), 30)
        assert output.stdout == b"got hello\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_port_forward_to_httpd_in_the_pod(containerd: Containerd,
                                                transport: TransportName) -> None:
    port = free_port()
    serve = ["sh", "-c", f"mkdir -p /tmp/www && echo served by busybox > /tmp/www/index.html "
             f"&& exec busybox httpd -f -p 127.0.0.1:{port} -h /tmp/www"]
    async with pod(containerd) as (client, pod_id, config):
        await start(client, pod_id, config, "httpd", serve)
        with anyio.fail_after(30):
            while True:  # wait until httpd listens (host network: our port too)
                try:
                    _, probe = await asyncio.open_connection("127.0.0.1", port)
                    probe.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        async with client.port_forward(pod_id, port, transport=transport) as conn:
            await conn.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            reply = b""
            with anyio.fail_after(20):
                while b"served by busybox" not in reply:
                    chunk = await conn.read()
                    if not chunk:
                        break
                    reply += chunk
        assert reply.startswith(b"HTTP/1.") and b"served by busybox" in reply
        async with client.forward_port(pod_id, port, transport=transport) as forwarder:
            reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            body = await asyncio.wait_for(reader.read(), 20)
            writer.close()
        assert b"served by busybox" in body
        closed = free_port()
        async with client.port_forward(pod_id, closed, transport=transport) as conn:
            with pytest.raises(aiocri.StreamingError, match="connection refused"):
                await asyncio.wait_for(conn.read(), 20)


async def test_logs_equal_what_the_runtime_wrote_and_follow_reopen(
        containerd: Containerd) -> None:
    writer = ["sh", "-c", "echo first; echo oops >&2; printf 'no newline'; sleep 0.5; "
              "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done"]
    async with pod(containerd) as (client, pod_id, config):
        cid = await start(client, pod_id, config, "talker", writer)
        status = (await client.runtime.container_status(
            ContainerStatusRequest(container_id=cid))).status
        got: list[bytes] = []

        async def follow() -> None:
            async for entry in client.container_logs(cid, follow=True):
                got.append(entry.data)

        task = asyncio.ensure_future(follow())
        with anyio.fail_after(20):
            while sum(1 for g in got if g.startswith(b"line")) < 5:
                await asyncio.sleep(0.05)
        os.rename(status.log_path, status.log_path + ".1")  # rotate like the kubelet
        await client.runtime.reopen_container_log(ReopenContainerLogRequest(container_id=cid))
        with anyio.fail_after(20):
            while not os.path.exists(status.log_path) or os.path.getsize(status.log_path) < 50:
                await asyncio.sleep(0.05)
            before = len(got)
            while len(got) < before + 5:
                await asyncio.sleep(0.05)
        task.cancel()
        # what was followed equals what the files hold, in order, nothing lost
        files = [e.data async for e in read_log(status.log_path + ".1")]
        files += [e.data async for e in read_log(status.log_path)]
        # the runtime copies stdout and stderr apart: their lines interleave in any order
        assert b"oops\n" in got[:3]
        stdout_lines = [g for g in got if g != b"oops\n"]
        assert stdout_lines[:2] in ([b"first\n", b"no newlineline 0\n"],
                                    [b"first\n", b"no newline"])
        numbers = [int(g.split()[-1]) for g in got if g.startswith((b"line", b"no newline"))
                   and g.endswith(b"\n")]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert got == files[: len(got)]
        tail = [e.data async for e in client.container_logs(cid, tail=2, streams=["stderr"])]
        assert tail == []  # the last two lines are stdout ones


async def test_the_command_against_containerd(containerd: Containerd) -> None:
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, CRI_CONFIG_FILE=os.devnull,
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("CONTAINER_RUNTIME_ENDPOINT", None)

    async def aiocri_cli(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiocri.cli", "-r", containerd.endpoint, *args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        assert proc.returncode is not None
        return proc.returncode, out, err

    async with pod(containerd) as (client, pod_id, config):
        cid = await start(client, pod_id, config, "cli",
                          ["sh", "-c", "echo from the log; sleep 3600"])
        assert await aiocri_cli("exec", "-i", cid[:12], "--", "cat", stdin=b"eof ends it\n") == (
            0, b"eof ends it\n", b"")
        code, out, _ = await aiocri_cli("exec", cid, "--", "sh", "-c", "echo x; exit 9")
        assert (code, out) == (9, b"x\n")
        code, _, err = await aiocri_cli("exec", cid, "--", "nope")
        assert code == 127 and b"executable file not found" in err
        assert await aiocri_cli("logs", cid) == (0, b"from the log\n", b"")
