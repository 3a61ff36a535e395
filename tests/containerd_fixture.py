"""The session-scoped ``containerd`` fixture: one private containerd per version.

tests/conftest.py pulls it in with ``from tests.containerd_fixture import containerd``.
It is parametrized over the two containerd versions the suite proves, so every test
that takes it runs on both: Debian bookworm's containerd 1.6.20 (the system package,
on ``PATH``) and Debian trixie's 1.7.24 (unpacked by ``.ci/system-deps`` into
``CONTAINERD_17_CACHE``, never installed). One runs at a time: pytest groups the tests
by version and stops the first containerd before it starts the second.

Where a version cannot run (not root, binaries missing, 1.7 not fetched) its tests
skip with the reason, except in CI (``CI=true``), where they fail: CI must run them.
Tests that must assert different answers per version use ``series(containerd)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiocri.testing.containerd import (
    CONTAINERD_17_CACHE,
    Containerd,
    containerd_17,
    containerd_available,
)

__all__ = ["SERIES", "containerd", "require_series", "series"]

#: The containerd release series the suite runs on, oldest first.
SERIES = ("1.6", "1.7")


def series(ctd: Containerd) -> str:
    """``"1.6"`` or ``"1.7"``: the release series of a running containerd."""
    return ".".join(ctd.version.split(".")[:2])


def _bin_dir(want: str) -> tuple[Path | None, str | None]:
    """(bin_dir for Containerd.start, None) or (None, why it cannot run)."""
    reason = containerd_available()
    if reason is not None or want == "1.6":
        return None, reason
    bin_dir = containerd_17()
    if bin_dir is None:
        return None, (f"no containerd 1.7 in {CONTAINERD_17_CACHE}"
                      " (run `sh .ci/system-deps` as root to fetch it)")
    return bin_dir, None


def require_series(want: str) -> Path | None:
    """The ``bin_dir`` that starts containerd ``want`` ("1.6": None, the one on
    ``PATH``), for a test that starts a private one (say, to restart it or to change
    its binary). Skips with the reason where it cannot run; fails under ``CI=true``."""
    bin_dir, reason = _bin_dir(want)
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the containerd {want} tests, but: {reason}",
                        pytrace=False)
        pytest.skip(f"containerd {want} cannot run here: {reason}")
    return bin_dir


@pytest.fixture(scope="session", params=SERIES, ids=[f"containerd-{s}" for s in SERIES])
def containerd(request: pytest.FixtureRequest) -> Iterator[Containerd]:
    """A running private containerd (1.6 or 1.7) with the busybox image imported.

    At the end of its tests every pod is removed through the CRI, containerd is
    stopped and its folder removed; shims left behind, if any, are killed.
    """
    want: str = request.param
    ctd = Containerd.start(bin_dir=require_series(want))
    try:
        if series(ctd) != want:
            pytest.fail(f"asked for containerd {want}, started {ctd.version}", pytrace=False)
        yield ctd
    finally:
        ctd.stop()
        if ctd.stop_notes:  # repaired, but a sign that something leaks
            warnings.warn(f"containerd {want} cleanup: {ctd.stop_notes}", stacklevel=1)
