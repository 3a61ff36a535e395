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


def _demo_process() -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "aiocri.cli", "demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_demo_cleans_its_socket_on_signals(sig: str) -> None:
    import re
    import signal
    import time

    proc = _demo_process()
    assert proc.stdout is not None
    socket_path = None
    deadline = time.monotonic() + 60
    while socket_path is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"fake runtime up on unix://(\S+?):", line)
        if found:
            socket_path = found.group(1)
    assert socket_path is not None and os.path.exists(socket_path)
    number = getattr(signal, sig)
    proc.send_signal(number)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + number, err[-2000:]
    assert "interrupted" in out
    assert not os.path.exists(socket_path)
    assert not os.path.exists(os.path.dirname(socket_path))


def test_counts_are_consistent() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "aiocri.cli", "demo", "--quick"],
                          capture_output=True, text=True, env=env, timeout=90, check=False)
    out = done.stdout
    phases = [int(n) for n in __import__("re").findall(r"\] step (\d)/9 ", out)]
    assert phases == list(range(1, 10))  # the phase counter counts the summary's 9 steps
    shown = out.count("  event: ")
    summary = out[out.index("aiocri demo: summary"):]
    reported = sum(int(n) for n in __import__("re").findall(r"(\d+)/\d+ reported", summary))
    assert shown == reported  # every counted change shown, nothing shown uncounted
