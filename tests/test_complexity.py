"""No function of the connection layer, the poller, streaming or logs above cyclomatic
complexity 15."""

from __future__ import annotations

from pathlib import Path

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).parent.parent / "aiocri"
FILES = sorted([*ROOT.glob("poller/*.py"), *ROOT.glob("streaming/*.py"), ROOT / "logs.py",
                ROOT / "_cli" / "terminal.py", ROOT / "channel.py", ROOT / "_connection.py",
                ROOT / "_verdict.py", ROOT / "client.py", ROOT / "_dialer.py", ROOT / "_probe.py",
                ROOT / "_classify.py", ROOT / "_lifecycle.py", ROOT / "_timeouts.py"])


@pytest.mark.parametrize("path", [p for p in FILES if p.exists()], ids=lambda p: p.name)
def test_no_function_above_15(path: Path) -> None:
    blocks = cc_visit(path.read_text())
    worst = [(b.fullname, b.complexity) for b in blocks if b.complexity > 15]
    assert not worst, worst
