"""The session-scoped ``containerd`` fixture: one private containerd for the run.

tests/conftest.py pulls it in with ``from tests.containerd_fixture import containerd``.
Where containerd cannot run (not root, binaries missing) its tests skip, except in CI
(``CI=true``), where they fail: CI must run them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import pytest

from aiocri.testing.containerd import Containerd, containerd_available

__all__ = ["containerd"]


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """A running private containerd with the busybox image imported.

    At the end of the session every pod is removed through the CRI, containerd is
    stopped and its folder removed; shims left behind, if any, are killed.
    """
    reason = containerd_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the containerd tests, but: {reason}", pytrace=False)
        pytest.skip(f"containerd cannot run here: {reason}")
    ctd = Containerd.start()
    try:
        yield ctd
    finally:
        ctd.stop()
        if ctd.stop_notes:  # repaired, but a sign that something leaks
            warnings.warn(f"containerd cleanup: {ctd.stop_notes}", stacklevel=1)
