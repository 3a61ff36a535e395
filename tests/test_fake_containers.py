"""The fake runtime's containers run their command, as a real runtime's do.

What the command prints reaches the CRI log file (made at start, in a folder that
exists); when it ends the container exits with its code; StopContainer ends it
as containerd does (SIGKILL without a grace period, the stop signal with one, a
process that ignores it killed when the timeout runs out).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

import pytest

from aiocri import api
from aiocri.logs import parse_line
from aiocri.testing import FakeRuntime, FakeState, wait_for

pytestmark = pytest.mark.anyio


async def exited(rt: FakeRuntime, cid: str) -> api.ContainerStatus:
    await wait_for(lambda: not rt.state.containers[cid].running, timeout=30)
    return rt.state.containers[cid].to_status()


def log_lines(path: str) -> list[tuple[str, str, str]]:
    out = []
    for raw in Path(path).read_bytes().splitlines():
        line = parse_line(raw)
        out.append((line.stream, "F" if line.full else "P", line.text.decode()))
    return out


async def test_a_script_prints_to_its_log_and_exits_with_its_code(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        pod = rt.state.add_pod("web")
        cid = rt.state.add_container(
            pod, "job", command=["sh", "-c", "echo start; printf part; echo oops >&2; exit 3"])
        status = await exited(rt, cid)
        assert (status.exit_code, status.reason) == (3, "Error")
        assert status.finished_at >= status.started_at > 0
        # "part" has no newline: it waits for one, and goes out as P when the stream ends
        assert log_lines(status.log_path) == [
            ("stdout", "F", "start"), ("stderr", "F", "oops"), ("stdout", "P", "part")]
        done = rt.state.add_container(pod, "done", command=["true"])
        status = await exited(rt, done)
        assert (status.exit_code, status.reason) == (0, "Completed")
        assert os.path.getsize(status.log_path) == 0  # made at start, nothing printed


async def test_populated_containers_have_log_files_in_folders_that_exist(tmp_path: Path
                                                                         ) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        made = rt.populate(pods=3, containers_per_pod=2)
        for cid in made.container_ids:
            path = rt.state.containers[cid].log_path
            assert path.startswith(rt.state.log_root) and os.path.isfile(path)
            assert rt.state.containers[cid].running  # sleep infinity: no task, still running
        root = rt.state.log_root
    state = rt.state
    del rt, state
    gc.collect()
    assert not os.path.exists(root)  # the state's own folder goes with it


@pytest.mark.parametrize(("timeout", "code"), [(0, 137), (10, 143)])
async def test_stop_kills_or_signals(tmp_path: Path, timeout: int, code: int) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        cid = rt.state.add_container(rt.state.add_pod("p"), "c", command=["sleep", "1000"])
        await client.runtime.stop_container(
            api.StopContainerRequest(container_id=cid, timeout=timeout))
        status = rt.state.containers[cid].to_status()
        assert (status.state, status.exit_code, status.reason) == (
            api.CONTAINER_EXITED, code, "Error")


async def test_a_process_ignoring_sigterm_is_killed_at_the_timeout(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        pod = rt.state.add_pod("p")
        cid = rt.state.add_container(
            pod, "stubborn", command=["sh", "-c", "trap '' TERM; echo up; sleep 1000"])
        began = time.monotonic()
        await client.runtime.stop_container(api.StopContainerRequest(container_id=cid, timeout=1))
        assert time.monotonic() - began >= 0.9  # the answer came after the timeout
        status = rt.state.containers[cid].to_status()
        assert (status.exit_code, status.reason) == (137, "Error")
        assert log_lines(status.log_path) == [("stdout", "F", "up")]


async def test_stop_pod_kills_its_containers(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        pod = rt.state.add_pod("p")
        cid = rt.state.add_container(pod, "c", command=["sleep", "1000"])
        idle = rt.state.add_container(pod, "idle", start=False)
        await client.runtime.stop_pod_sandbox(pod_sandbox_id=pod)
        assert rt.state.containers[cid].to_status().exit_code == 137
        assert rt.state.containers[idle].state == api.CONTAINER_CREATED


async def test_files_persist_between_execs_and_the_main_process(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        cid = rt.state.add_container(
            rt.state.add_pod("p"), "c",
            command=["sh", "-c", "echo from-main > /tmp/m; sleep 1000"])
        def written() -> bool:
            process = rt.state.containers[cid].process
            return process is not None and process.files.exists("/tmp/m")

        await wait_for(written, timeout=30)
        first = await client.runtime.exec_sync(api.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "echo hi > /tmp/f && cat /tmp/m"], timeout=5))
        assert (first.stdout, first.exit_code) == (b"from-main\n", 0)
        second = await client.runtime.exec_sync(api.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "cat /tmp/f | wc -c; ls /"], timeout=5))
        assert second.stdout.splitlines()[0].strip() == b"3"
        assert {b"bin", b"etc", b"tmp"} <= set(second.stdout.splitlines()[1:])


def test_synchronous_scripting_launches_nothing() -> None:
    state = FakeState(seed=3)
    cid = state.add_container(state.add_pod("p"), "c", command=["sh", "-c", "exit 3"])
    assert state.containers[cid].running  # no loop to run the command on: runs until stopped
    state.stop_container(cid, timeout=5)
    assert state.containers[cid].exit_code == 143


async def test_a_runtime_that_made_its_state_ends_its_containers(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path / "rt.sock")
    async with rt:
        cid = rt.state.add_container(
            rt.state.add_pod("p"), "loop", command=["sh", "-c", "while true; do sleep 0.01; done"])
        process = rt.state.containers[cid].process
        assert process is not None and process.task is not None
    await wait_for(lambda: process.task.done(), timeout=10)  # not running after the test
    state = FakeState(seed=1)
    async with FakeRuntime(tmp_path / "given.sock", state=state):
        kept = state.add_container(state.add_pod("p"), "loop",
                                   command=["sh", "-c", "while true; do sleep 0.01; done"])
    task = state.containers[kept].process.task  # type: ignore[union-attr]
    assert task is not None and not task.done()  # a given state is its owner's to end
    state.shutdown()
    await wait_for(task.done, timeout=10)


async def test_a_fault_of_the_shell_ends_the_command_with_2(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        pod = rt.state.add_pod("p")
        broken = rt.state.add_container(pod, "c", command=["sh", "-c", "echo [z-a]"])
        status = await exited(rt, broken)
        assert status.exit_code == 2
        assert any("fake runtime's shell" in text for _, _, text in log_lines(status.log_path))
        cid = rt.state.add_container(pod, "ok")
        reply = await client.runtime.exec_sync(api.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "echo [z-a]"], timeout=5))
        assert reply.exit_code == 2 and b"fake runtime's shell" in reply.stderr


async def test_a_shorter_second_stop_wins(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        cid = rt.state.add_container(rt.state.add_pod("p"), "stubborn",
                                     command=["sh", "-c", "trap '' INT TERM; sleep 1000"])
        first = asyncio.ensure_future(client.runtime.stop_container(
            api.StopContainerRequest(container_id=cid, timeout=600)))
        await wait_for(lambda: rt.state.containers[cid].process.kill_timer is not None,  # type: ignore[union-attr]
                       timeout=10)
        await client.runtime.stop_container(api.StopContainerRequest(container_id=cid, timeout=1),
                                            timeout=30)
        await asyncio.wait_for(first, 30)
        assert rt.state.containers[cid].to_status().exit_code == 137
        assert rt.state.containers[cid].on_exit == []


async def test_crlf_lines_are_logged_without_the_cr(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        cid = rt.state.add_container(rt.state.add_pod("p"), "c",
                                     command=["printf", "a\\r\\nb\\n"])
        status = await exited(rt, cid)
        assert Path(status.log_path).read_bytes().count(b"\r") == 0
        assert [text for _, _, text in log_lines(status.log_path)] == ["a", "b"]


async def test_a_shell_on_a_terminal_without_stdin_keeps_running(tmp_path: Path) -> None:
    """`docker run -t busybox` waits on its terminal; without one, sh reads EOF and ends."""
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        pod = rt.state.add_pod("p")
        on_tty = rt.state.add_container(pod, "tty", command=["sh"], tty=True)
        plain = rt.state.add_container(pod, "plain", command=["sh"])
        assert (await exited(rt, plain)).exit_code == 0
        assert rt.state.containers[on_tty].running


async def test_stdin_is_bounded_like_a_pipe() -> None:
    from aiocri.testing._workload import StdinPipe

    pipe = StdinPipe(chunks=4)
    for n in range(4):
        await pipe.write(b"%d" % n)
    blocked = asyncio.ensure_future(pipe.write(b"more"))
    await asyncio.sleep(0)
    assert not blocked.done()  # the writer waits until the command reads
    reader = pipe.__aiter__()
    assert await reader.__anext__() == b"0"
    await asyncio.wait_for(blocked, 5)
    pipe.close()  # the end reaches the reader after what was written
    assert [chunk async for chunk in reader] == [b"1", b"2", b"3", b"more"]
