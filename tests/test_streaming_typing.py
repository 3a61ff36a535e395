"""Item 15: the README's streaming examples type-check under ``mypy --strict`` as written
(no asserts that a stream is there)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def streaming_example() -> str:
    """The first Python block of the README's streaming section."""
    section = README.read_text().split("## Streaming: exec, attach, port-forward", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "no Python example in the README's streaming section"
    return found.group(1)


def test_item_15_readme_streaming_example_passes_mypy_strict(tmp_path: Path) -> None:
    example = streaming_example()
    assert "session.stdin.write" in example and "session.stdout.readall" in example
    # the example uses a client, a container id and a pod id: give them their types
    source = tmp_path / "readme_streaming.py"
    source.write_text(
        "import aiocri\n\n\n"
        "async def example(client: aiocri.CRIClient, cid: str, pod_id: str) -> None:\n"
        + textwrap.indent(example, "    ")
        + "    reveal_type(session.stdin)\n    reveal_type(session.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True, text=True, check=False, cwd=README.parent,  # this checkout's aiocri
    )
    out = result.stdout
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert errors == [], out
    assert 'Revealed type is "aiocri.streaming._session.Stdin"' in out, out
    assert 'Revealed type is "aiocri.streaming._pipe.Pipe"' in out, out
