"""Shared fixtures: asyncio under anyio, short socket paths."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aiocri.testing import FakeRuntime
from tests.containerd_fixture import containerd  # noqa: F401  (session fixture)


@pytest.fixture
def anyio_backend() -> str:
    # grpc.aio runs on asyncio only (not trio).
    return "asyncio"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short folder for unix sockets (paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def runtime(sock_dir: Path) -> AsyncIterator[FakeRuntime]:
    """The embedded fake runtime (v1 and v1alpha2), serving on a short socket path."""
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt:
        yield rt


@pytest.fixture
async def fake(sock_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, str]]:
    """A fake runtime with one running container whose log folder exists."""
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt:
        pod = rt.state.add_pod("web", log_directory=str(tmp_path))
        cid = rt.state.add_container(pod, "app")
        os.makedirs(os.path.dirname(rt.state.containers[cid].log_path), exist_ok=True)
        yield rt, cid


@pytest.fixture(autouse=True)
def _release_channels_of_closed_loops(request: pytest.FixtureRequest) -> None:
    """Before a test on a real containerd: collect what earlier tests left behind.

    grpc.aio dispatches a call's completion to the event loop the call was made on; a
    channel of an earlier test that is garbage but not yet collected can see its call
    complete while this test's loop runs, and grpc then schedules onto the closed loop
    ("Event loop is closed", raised into this test after its checks passed: seen twice
    in test_containerd_restart_under_load). Collecting first ends those channels while
    no loop runs. Only where a real runtime is used: elsewhere it costs time for nothing.
    """
    if "containerd" in request.fixturenames:
        gc.collect()
