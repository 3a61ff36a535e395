"""The public methods are typed for users' editors: mypy sees request and response types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIPPET = """
import aiocri
from aiocri.api import ContainerStatusRequest

async def use(client: aiocri.CRIClient) -> None:
    status = await client.runtime.container_status(ContainerStatusRequest(container_id="x"))
    reveal_type(status)
    async for event in client.runtime.get_container_events():
        reveal_type(event)
    fs = await client.image.image_fs_info(timeout=1.0)
    reveal_type(fs)
    await client.runtime.container_status(ContainerStatusRequest(), timeout=None)
    await client.runtime.container_status(123)
"""


def test_typed_methods(tmp_path: Path) -> None:
    source = tmp_path / "use.py"
    source.write_text(SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True, text=True, check=False,
    )
    out = result.stdout
    assert 'Revealed type is "aiocri._proto.runtime.v1.api_pb2.ContainerStatusResponse"' in out
    assert 'Revealed type is "aiocri._proto.runtime.v1.api_pb2.ContainerEventResponse"' in out
    assert 'Revealed type is "aiocri._proto.runtime.v1.api_pb2.ImageFsInfoResponse"' in out
    # The one wrong call, and only it, is an error.
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert 'incompatible type "int"; expected "ContainerStatusRequest | None"' in errors[0]
