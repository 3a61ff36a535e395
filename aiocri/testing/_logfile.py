"""The fake runtime's container log files, in the CRI log format."""

from __future__ import annotations

import os
import time
from typing import BinaryIO

from aiocri.logs import format_time

__all__ = ["CRILogFile"]


class CRILogFile:
    """One container's log file: each output line becomes ``<time> <stream> F <text>``,
    a last piece without its newline ``P`` (its continuation follows)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    @classmethod
    def open(cls, path: str) -> CRILogFile | None:
        """The file at ``path``, or None when its folder does not exist (the kubelet
        makes the pod's log folder; the fake does not write elsewhere)."""
        if not os.path.isdir(os.path.dirname(path) or "."):
            return None
        return cls(open(path, "ab", buffering=0))

    @staticmethod
    def create(path: str) -> None:
        """Make the empty file and its folders, as the runtime does when a container
        starts; writing opens it later (a container that never prints holds no fd)."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "ab"):
            pass

    def write(self, stream: str, data: bytes) -> None:
        stamp = format_time(time.time_ns()).encode()
        head = stamp + b" " + stream.encode()
        lines = data.split(b"\n")
        out = [head + b" F " + line + b"\n" for line in lines[:-1]]
        if lines[-1]:
            out.append(head + b" P " + lines[-1] + b"\n")
        self._file.write(b"".join(out))

    def close(self) -> None:
        self._file.close()
