"""Shared fixtures: asyncio under anyio, short socket paths."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
