"""The library's loggers: ``aiocri.*``, with a NullHandler on ``aiocri``.

A library logs and the application decides where it goes: without a handler of its
own, Python's last-resort handler would print aiocri's warnings on stderr. Installed
by the first module that logs, not by ``import aiocri``, which stays free of logging.
"""

from __future__ import annotations

import logging

logging.getLogger("aiocri").addHandler(logging.NullHandler())


def library_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` for a name under ``aiocri``."""
    return logging.getLogger(name)
