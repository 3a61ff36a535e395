"""Entry point of the ``aiocri`` command (the console script, and ``python -m aiocri``).

grpc reads GRPC_VERBOSITY once, when it is imported. The command quiets grpc's C-core
notices (INFO lines such as a GOAWAY on a runtime restart) unless the user set
GRPC_VERBOSITY; the library itself never touches it. So this must run before anything
imports grpc: the package's ``__init__`` (imported first, to reach this module) imports
nothing that does (its names load on first use), and this module imports aiocri's
command only after setting the variable. ``tests/test_command.py`` holds it to that.
"""

import os


def main() -> None:
    """Run the ``aiocri`` command with GRPC_VERBOSITY=ERROR unless the user chose."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from aiocri.cli import main as run

    run()
