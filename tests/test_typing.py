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


def test_keyword_calls_are_typed() -> None:
    script = Path(__file__).parent / "typecheck" / "user_script.py"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True, text=True, check=False,
    )
    out = result.stdout
    api = "aiocri._proto.runtime.v1.api_pb2"
    for revealed in (
        f'"{api}.ContainerStatusResponse"',
        f'"{api}._ContainerState.ValueType"',
        '"google.protobuf.internal.containers.ScalarMap[str, str]"',
        f'"google.protobuf.internal.containers.RepeatedCompositeFieldContainer[{api}.Container]"',
        f'"{api}.ContainerEventResponse"',
    ):
        assert f"Revealed type is {revealed}" in out, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert 'Argument "container_id" to "container_status"' in errors[0]
    assert 'Unexpected keyword argument "container"' in errors[1]


def test_protobuf_types_come_with_the_package() -> None:
    # Without the protobuf stubs every message field is Any for mypy: users get them
    # with aiocri itself, not only with the dev extra.
    from importlib.metadata import requires

    core = [r for r in requires("aiocri") or [] if "extra ==" not in r]
    assert any(r.startswith("types-protobuf") for r in core), core
