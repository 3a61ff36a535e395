"""The ``aiocri`` command: crictl's commands on aiocri, plus ``watch``, ``fake-runtime``, ``demo``.

Its dependencies are the ``cli`` extra (typer, rich, PyYAML), imported only
once they are known to be there, so that ``aiocri`` without them says how to
get them instead of failing with a traceback. The implementation lives in
:mod:`aiocri._cli`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["CLI_DEPENDENCIES", "main", "missing_dependencies"]

#: Module name -> distribution name of what the command needs beyond aiocri itself.
CLI_DEPENDENCIES = {"typer": "typer", "rich": "rich", "yaml": "PyYAML"}


def missing_dependencies() -> list[str]:
    """The distributions of the ``cli`` extra that cannot be imported."""
    missing = []
    for module, dist in CLI_DEPENDENCIES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run ``aiocri`` with ``argv`` (default: sys.argv[1:])."""
    missing = missing_dependencies()
    if missing:
        sys.stderr.write(
            f"aiocri: the command needs {', '.join(missing)}, which is not installed; "
            "install it with: pip install 'aiocri[cli]'\n"
        )
        raise SystemExit(1)
    from aiocri._cli.app import build_command

    args = list(sys.argv[1:] if argv is None else argv)
    build_command()(args=args, prog_name="aiocri")


if __name__ == "__main__":
    main()
