"""``python -m aiocri``: the ``aiocri`` command (needs the ``cli`` extra).

Like the installed command, it sets GRPC_VERBOSITY=ERROR before grpc loads unless the
environment sets it (see :mod:`aiocri._command`).
"""

from aiocri._command import main

main()
