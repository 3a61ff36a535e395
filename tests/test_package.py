"""What people see of the package: its metadata, licence and the README's examples."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_metadata_and_licence() -> None:
    meta = metadata("aiocri")
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "Version 2.0" in (ROOT / "LICENSE").read_text()[:200]
    urls = meta.get_all("Project-URL") or []
    assert any(u.startswith("Source,") for u in urls) and any(u.startswith("Issues,")
                                                               for u in urls)
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Framework :: AsyncIO" in classifiers
    assert meta["Author"] or meta["Author-email"]


def _python_blocks(after: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(after):]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


def test_readme_examples_are_clean(tmp_path: Path) -> None:
    # whole programs: no unused import, no undefined name
    for i, heading in enumerate(("## Use it in an async controller",
                                 "## Testing your controller")):
        (tmp_path / f"example_{i}.py").write_text(_python_blocks(heading))
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F", str(tmp_path)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_testing_example_is_the_one_the_suite_runs() -> None:
    example = _python_blocks("## Testing your controller")
    suite = (ROOT / "tests" / "test_testing_plugin.py").read_text()
    for function in ("async def count_exits", "async def test_controller_sees_a_crash"):
        start = example.index(function)
        body = example[start:].split("\n\n\n")[0]
        assert body in suite, function


def test_the_library_logs_nothing_on_its_own() -> None:
    """A program that configures no logging sees none of aiocri's warnings on stderr (a
    NullHandler on "aiocri", installed by the first module that logs, not by ``import
    aiocri``, which loads no logging)."""
    code = ("import sys, aiocri; assert 'logging' not in sys.modules\n"
            "from aiocri.channel import log\n"
            "log.warning('should stay quiet')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_core_loads_no_instrumentation_library() -> None:
    """Without ``instrumentation=``, a client, a poller and the fake runtime at work load
    neither prometheus_client nor opentelemetry (the extras stay optional and free)."""
    code = """
import sys, anyio, aiocri
from aiocri.testing import FakeRuntime

async def main():
    async with FakeRuntime() as rt:
        rt.populate(1, 1)
        async with aiocri.connect(rt.endpoint) as client:
            await client.runtime.list_containers()
            async with aiocri.Poller(client, period=0.05) as poller:
                await poller.wait_synced()

anyio.run(main)
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("prometheus_client", "opentelemetry"))
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
