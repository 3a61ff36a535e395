"""The fake runtime's container log files, in the CRI log format."""

from __future__ import annotations

import os
import time
from typing import BinaryIO

from aiocri.logs import format_time

__all__ = ["MAX_LINE", "CRILogFile"]

#: containerd's max_container_log_line_size (its default): a longer line is written as
#: ``P`` pieces of this many bytes, then the rest.
MAX_LINE = 16 * 1024


class CRILogFile:
    """One container's log file, written as containerd's CRI logger writes it.

    Each stream (stdout, stderr) is cut into lines on its own: a line is written
    ``<time> <stream> F <text>`` once its newline arrives (a piece printed without one
    waits for the rest), a line longer than :data:`MAX_LINE` bytes goes out as ``P``
    pieces of that size followed by the rest, and what is left without a newline when
    the stream ends (:meth:`close`: the container exited, or its log is reopened) is
    written as ``P``.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._pending: dict[str, bytes] = {}  # stream -> the line so far, no newline yet

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
        if not data:
            return
        text = self._pending.pop(stream, b"") + data
        head = format_time(time.time_ns()).encode() + b" " + stream.encode()
        out = []
        lines = text.split(b"\n")
        for line in lines[:-1]:
            line = line.removesuffix(b"\r")  # containerd's reader drops a CRLF whole
            out += self._pieces(head, line)
            out.append(head + b" F " + line[len(line) - self._rest(line) :] + b"\n")
        rest = lines[-1]
        if len(rest) > MAX_LINE:  # full pieces go out now, the rest waits for more
            out += self._pieces(head, rest)
            rest = rest[len(rest) - self._rest(rest) :]
        if rest:
            self._pending[stream] = rest
        if out:
            self._file.write(b"".join(out))

    @staticmethod
    def _rest(line: bytes) -> int:
        """How many bytes of ``line`` are left once its full P pieces are out (a line of
        exactly MAX_LINE bytes is not cut)."""
        if len(line) <= MAX_LINE:
            return len(line)
        return len(line) % MAX_LINE or MAX_LINE

    @classmethod
    def _pieces(cls, head: bytes, line: bytes) -> list[bytes]:
        cut = len(line) - cls._rest(line)
        return [head + b" P " + line[i : i + MAX_LINE] + b"\n" for i in range(0, cut, MAX_LINE)]

    def close(self) -> None:
        """The end of both streams: a last piece without its newline goes out as P."""
        if self._pending and not self._file.closed:
            head = format_time(time.time_ns()).encode() + b" "
            self._file.write(b"".join(
                head + stream.encode() + b" P " + rest + b"\n"
                for stream, rest in self._pending.items()
            ))
        self._pending.clear()
        self._file.close()
