"""``python -m aiocri``: the ``aiocri`` command (needs the ``cli`` extra).

Here the package, and so grpc, is imported before this runs: set GRPC_VERBOSITY=ERROR
in the environment to quiet grpc's notices, as the installed ``aiocri`` command does.
"""

from aiocri.cli import main

main()
