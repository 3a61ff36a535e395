"""The fake runtime's life at its edges (issue 19, items 9 to 12): it never takes over a
live socket, its own folder goes with stop(), a FakeRuntimeProcess child dies with its
owner, and the pytest fixtures refuse a sync test instead of handing over a dead runtime."""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import aiocri
from aiocri.testing import FakeRuntime, FakeRuntimeProcess, wait_for
from aiocri.testing._server import leave_stale_socket

# The folder holding the aiocri under test, so that child processes import the same copy.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(aiocri.__file__)))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return env


def is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for an init that does not reap counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def runtime_name(rt: FakeRuntime) -> str:
    async with rt.connect(timeout=10) as client:
        return (await client.runtime.version()).runtime_name


# -- 9: a live socket is never taken over ------------------------------------------------


@pytest.mark.anyio
async def test_item_9_refuses_a_live_socket_and_leaves_its_server_alone(sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    async with FakeRuntime(path, runtime_name="first") as first:
        second = FakeRuntime(path, runtime_name="second")
        try:
            with pytest.raises(OSError, match="in use by a live server") as info:
                await second.start()
            assert info.value.errno == errno.EADDRINUSE
        finally:
            await second.stop()  # must not remove the first one's socket file
        assert is_socket(path)
        assert await runtime_name(first) == "first"


@pytest.mark.anyio
async def test_item_9_the_process_refuses_a_live_socket(sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    async with FakeRuntime(path, runtime_name="first") as first:
        with pytest.raises(OSError, match="in use by a live server"):
            async with FakeRuntimeProcess(path, start_timeout=60):
                pass
        assert is_socket(path)
        assert await runtime_name(first) == "first"


@pytest.mark.anyio
async def test_item_9_the_command_refuses_a_live_socket_in_one_line(sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    argv = [sys.executable, "-m", "aiocri", "fake-runtime", "--socket", path]
    async with FakeRuntime(path, runtime_name="first") as first:
        command = await anyio.open_process(argv, env=child_env(), stdin=subprocess.DEVNULL)
        async with command:
            assert command.stdout is not None and command.stderr is not None
            out = b""
            with anyio.fail_after(60):
                async for chunk in command.stdout:  # to its exit, or its "serving" line
                    out += chunk
                    if b"serving" in out:
                        command.kill()
                        pytest.fail(f"the command took over the live socket: {out!r}")
                err = b"".join([chunk async for chunk in command.stderr]).decode()
                code = await command.wait()
        assert code != 0
        assert len(err.strip().splitlines()) == 1, err
        assert "in use by a live server" in err
        assert is_socket(path)
        assert await runtime_name(first) == "first"


@pytest.mark.anyio
async def test_a_stale_socket_file_is_replaced(sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    leave_stale_socket(path)  # what a SIGKILLed runtime leaves: connects are refused
    async with FakeRuntime(path, runtime_name="new") as rt:
        assert await runtime_name(rt) == "new"
    assert not is_socket(path)


@pytest.mark.anyio
async def test_a_killed_runtime_leaves_a_successor_s_socket_alone(sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    first = FakeRuntime(path)
    await first.start()
    await first.kill()  # its stale file stays; a successor may replace it
    async with FakeRuntime(path, runtime_name="successor") as successor:
        await first.stop()
        assert await runtime_name(successor) == "successor"


# -- 10: the runtime's own folder ----------------------------------------------------------


@pytest.mark.anyio
async def test_item_10_start_and_stop_leave_no_folder() -> None:
    rt = FakeRuntime()
    folder = os.path.dirname(rt.socket_path)
    try:
        await rt.start()
        await rt.stop()
        assert not os.path.exists(folder), f"{folder} left behind by stop()"
        await rt.start()  # the same path again
        assert is_socket(rt.socket_path)
        assert await runtime_name(rt) == "aiocri-fake"
        await rt.kill()
        await rt.stop()  # also after a kill
        assert not os.path.exists(folder)
    finally:
        await rt.stop()
        shutil.rmtree(folder, ignore_errors=True)


def recording_mkdtemp(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> Any:
        path = real(*args, **kwargs)
        made.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return made


def test_item_10_a_constructor_that_raises_leaves_no_folder(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = recording_mkdtemp(monkeypatch)
    with pytest.raises((AttributeError, TypeError)):  # the error is not the point: the folder is
        FakeRuntime(images=[42])  # type: ignore[list-item]
    left = [path for path in made if os.path.exists(path)]
    for path in left:
        shutil.rmtree(path)
    assert not left, f"folders left behind: {left}"


def test_item_10_a_never_stopped_runtime_s_folder_goes_with_it() -> None:
    rt = FakeRuntime()
    folder = os.path.dirname(rt.socket_path)
    assert os.path.isdir(folder)
    del rt  # collected (its reference cycles too) or, at the latest, at exit
    gc.collect()
    left = os.path.exists(folder)
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"{folder} left behind"


# -- running pytest on a test of a user's ----------------------------------------------------

RECORDING_CONFTEST = """
import json, os, tempfile

made = []
real = tempfile.mkdtemp

def mkdtemp(*args, **kwargs):
    path = real(*args, **kwargs)
    made.append(path)
    return path

tempfile.mkdtemp = mkdtemp

def pytest_sessionfinish(session):
    with open(os.environ["CRI_MADE"], "w") as out:
        json.dump(made, out)
"""


def run_pytest(folder: Path, test: str, conftest: str = "") -> tuple[str, list[str]]:
    """Run pytest on ``test`` in a fresh folder; its output and the folders mkdtemp made."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(RECORDING_CONFTEST + textwrap.dedent(conftest))
    (folder / "test_user.py").write_text(textwrap.dedent(test))
    made_log = folder / "made.json"
    env = child_env() | {"CRI_MADE": str(made_log)}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "test_user.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    made = json.loads(made_log.read_text()) if made_log.exists() else []
    return result.stdout + result.stderr, made


def test_item_10_a_marked_test_whose_runtime_cannot_be_made_leaves_no_folder(
        tmp_path: Path) -> None:
    output, made = run_pytest(tmp_path, """
        import pytest

        @pytest.mark.anyio
        @pytest.mark.cri_runtime(images=[42])
        async def test_it(cri_runtime):
            pass
    """)
    left = [path for path in made if os.path.exists(path)]
    for path in left:
        shutil.rmtree(path)
    assert "1 error" in output, output
    assert not left, f"folders left behind: {left}"


# -- 11: a FakeRuntimeProcess child dies with its owner --------------------------------------

OWNER = """
import sys

import anyio

from aiocri.testing import FakeRuntimeProcess


async def main() -> None:
    async with FakeRuntimeProcess(sys.argv[1], start_timeout=60) as proc:
        print(proc.pid, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


@pytest.mark.anyio
async def test_item_11_a_process_child_dies_with_an_owner_killed_without_clean_up(
        sock_dir: Path) -> None:
    path = str(sock_dir / "rt.sock")
    owner = await anyio.open_process([sys.executable, "-c", OWNER, path], env=child_env(),
                                     stdin=subprocess.DEVNULL, stderr=None)
    child = None
    async with owner:
        try:
            assert owner.stdout is not None
            with anyio.fail_after(90):
                line = await BufferedByteReceiveStream(owner.stdout).receive_until(b"\n", 100)
            child = int(line)
            assert alive(child)
            owner.send_signal(signal.SIGKILL)  # no clean-up of any kind, as os._exit
            await owner.wait()
            await wait_for(lambda: not alive(child), timeout=20,
                           what=f"the orphaned fake runtime {child} exiting")
            assert not is_socket(path)  # it stopped cleanly: its socket file went with it
        finally:
            if owner.returncode is None:
                owner.kill()
            if child is not None and alive(child):
                os.kill(child, signal.SIGKILL)


# -- 12: the fixtures in a sync test -----------------------------------------------------------


def test_item_12_a_sync_test_is_refused_at_set_up_and_an_async_one_served(
        tmp_path: Path) -> None:
    output, made = run_pytest(tmp_path, """
        import pytest

        def test_sync(cri_runtime):
            pass

        def test_sync_client(cri_client):
            pass

        @pytest.mark.anyio
        async def test_async(cri_runtime, cri_client):
            assert (await cri_client.runtime.version()).runtime_name == "aiocri-fake"
    """)
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
    assert "1 passed, 2 errors" in output, f"expected 1 passed, 2 errors:\n{output}"
    # (under CI=true pytest repeats each message in its summary: count the tests, not lines)
    for name in ("test_sync[asyncio]", "test_sync_client[asyncio]"):
        assert f"{name}: the cri_runtime fixtures need an async test (async def, marked " \
               "@pytest.mark.anyio)" in output, output
    runtimes = [path for path in made if os.path.basename(path).startswith("cri-")]
    assert len(runtimes) == 1, output  # none made for the refused tests
