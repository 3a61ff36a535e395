"""``aiocri demo``: the quick run passes every step; a broken expectation fails it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("rich")

from aiocri import demo
from aiocri.testing import FakeRuntime

ROOT = Path(__file__).resolve().parents[1]

STEPS = (
    "fake runtime",
    "connect",
    "poll (relist)",
    "changes (relist)",
    "runtime restart",
    "poll after restart",
    "upgrade to v1 only",
    "client restart",
    "changes (events)",
)


def test_quick_demo_exits_0_and_its_summary_shows_every_step() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "aiocri.cli", "demo", "--quick"],
                          capture_output=True, text=True, env=env, timeout=90, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = done.stdout
    summary = out[out.index("aiocri demo: summary"):]
    rows = [line for line in summary.splitlines() if line.startswith("│")]
    for name in STEPS:
        row = next((r for r in rows if f" {name} " in r), None)
        assert row is not None, f"{name!r} missing from the summary:\n{summary}"
        assert " ok " in row, row
    assert "FAILED" not in summary
    assert "every step met its expectation" in out
    # What the demo measured is in the summary.
    assert "after the socket returned" in summary
    assert "0 failed" in summary
    assert "pinned v1alpha2" in summary and "pinned v1 " in summary


def test_demo_fails_when_restart_required_is_not_signalled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A runtime whose "upgrade" keeps serving v1alpha2: the client must not signal
    # restart-required, so that step (and the ones after it) fail, and so does the demo.
    start = FakeRuntime.start

    async def start_ignoring_versions(self: FakeRuntime, *, versions: object = None) -> None:
        await start(self)

    monkeypatch.setattr(FakeRuntime, "start", start_ignoring_versions)
    monkeypatch.setattr(demo, "_QUICK", replace(demo._QUICK, wait=1.0, observe=0.0,
                                                pods=5, containers_per_pod=4))
    assert demo.main(quick=True) == 1
    out = capsys.readouterr().out
    assert "no restart-required signal" in out
    assert "FAILED: upgrade to v1 only" in out
