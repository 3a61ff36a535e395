"""Entry point of the ``aiocri`` command.

It lives outside the ``aiocri`` package on purpose: grpc reads GRPC_VERBOSITY once,
when it is imported, and importing anything inside the package imports grpc. The
command quiets grpc's C-core notices (a GOAWAY line on every runtime restart)
unless the user set GRPC_VERBOSITY; the library itself never touches it.
"""

import os


def main() -> None:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from aiocri.cli import main as run

    run()
