"""Entry point of the ``aiocri`` command (the console script, and ``python -m aiocri``).

grpc reads GRPC_VERBOSITY once, when it is imported. The command quiets grpc's C-core
notices (INFO lines such as a GOAWAY on a runtime restart) unless the user set
GRPC_VERBOSITY; the library itself never touches it. So this must run before anything
imports grpc: the package's ``__init__`` (imported first, to reach this module) imports
nothing that does (its names load on first use), and this module imports aiocri's
command only after setting the variable. ``tests/test_command.py`` holds it to that.

Start-up runs without Python's cyclic garbage collector: importing grpc, protobuf and
aiocri allocates enough to trigger collections that find nothing to free (15 % of a
``ps`` here). A one-shot command finishes without it (reference counting frees all but
cycles, which the exit reclaims); a lasting one (``watch``, ``exec``, ``fake-runtime``)
turns it back on, after freezing what start-up made (:mod:`aiocri._cli.parse`).

The process ends without the interpreter's teardown: once the command is done and its
output flushed, the last exit handler calls ``os._exit``. Tearing down grpc, protobuf's
descriptors and some 400 modules took 40-70 ms per run here, more than a ``ps`` itself;
nothing the command holds needs it (the client is closed by then, the kernel closes
sockets and files). Other exit handlers (logging's) run first, and so does any code
that catches the command's SystemExit.
"""

import atexit
import gc
import os
import sys

_exit_code = [1]  # what a failure before the command's own verdict exits with


def main() -> None:
    """Run the ``aiocri`` command with GRPC_VERBOSITY=ERROR unless the user chose."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    gc.disable()
    atexit.register(_exit_at_once)  # registered first, so it runs last
    try:
        from aiocri.cli import main as run

        run()
        _exit_code[0] = 0
    except SystemExit as exc:
        code = exc.code
        _exit_code[0] = code if isinstance(code, int) else (0 if code is None else 1)
        raise
    except KeyboardInterrupt:
        _exit_code[0] = 130
        raise
    except BaseException:
        _exit_code[0] = 1
        raise


def _exit_at_once() -> None:
    code = _exit_code[0]
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a reader that went away, a closed stream: nothing to tell it
            code = code or 1
    os._exit(code)
