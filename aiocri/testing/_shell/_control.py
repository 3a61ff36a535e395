"""How the shell leaves what it runs: exit, and break or continue."""

from __future__ import annotations


class Exit(Exception):
    """The shell ends, with ``code`` as its status (exit, set -e, a fatal error)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class LoopControl(Exception):
    """break (``again`` false) or continue (true), out of ``levels`` loops."""

    def __init__(self, levels: int, *, again: bool) -> None:
        super().__init__(levels)
        self.levels, self.again = levels, again
