"""The API reference builds strictly from the docstrings (as `make docs` in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_reference_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "api" / "services" / "index.html").read_text()
    assert "container_status" in page and "Call RuntimeService.ContainerStatus" in page
    assert "exec_stream" in (tmp_path / "api" / "client" / "index.html").read_text()
