"""The ``aiocri`` command: crictl's commands on aiocri, plus ``watch``, ``fake-runtime``, ``demo``.

Its dependencies are the ``cli`` extra (rich, PyYAML), imported only where a command
needs them; they are looked for (not imported) first, so that ``aiocri`` without them
says how to get them instead of failing with a traceback. The implementation lives in
:mod:`aiocri._cli`: argv is parsed from a table of the commands (``aiocri._cli.parse``),
and a command's module is imported only to run it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["CLI_DEPENDENCIES", "main", "missing_dependencies", "reader_gone"]

#: Module name -> distribution name of what the command needs beyond aiocri itself.
CLI_DEPENDENCIES = {"rich": "rich", "yaml": "PyYAML"}


def missing_dependencies() -> list[str]:
    """The distributions of the ``cli`` extra that are not installed."""
    return [dist for module, dist in CLI_DEPENDENCIES.items()
            if importlib.util.find_spec(module) is None]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run ``aiocri`` with ``argv`` (default: sys.argv[1:])."""
    missing = missing_dependencies()
    if missing:
        sys.stderr.write(
            f"aiocri: the command needs {', '.join(missing)}, which is not installed; "
            "install it with: pip install 'aiocri[cli]'\n"
        )
        raise SystemExit(1)
    for name in ("stdout", "stderr"):  # started with the descriptor closed (`>&-`)
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (lives as long as sys)
    from aiocri._cli.parse import main as run

    try:
        run(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        reader_gone()


def reader_gone() -> NoReturn:
    """Exit 1, quietly: stdout's reader went away (`aiocri ps | head -1`), not an error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
    raise SystemExit(1) from None


if __name__ == "__main__":
    main()
