"""Container logs in the CRI log format, read from the file the runtime writes.

Each line of a CRI log file is ``<RFC 3339 time> <stdout|stderr> <P|F> <text>``:
``F`` ends a line, ``P`` is a piece whose continuation follows. These functions
join the pieces, filter and follow the file across rotation (the kubelet renames
the file and asks the runtime to reopen it with ReopenContainerLog). Like crictl,
they read the file directly, so they work on the runtime's own machine.

    async for entry in aiocri.logs.read_log(path, follow=True, tail=10):
        sys.stdout.buffer.write(entry.data)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Literal

from aiocri.errors import LogError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["LogEntry", "format_time", "parse_line", "parse_time", "read_log"]

Stream = Literal["stdout", "stderr"]
_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([PF])(?: (.*))?$", re.DOTALL)
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of output (pieces joined), as the container wrote it.

    ``data`` is bytes, exactly what the container wrote: the runtime does not
    promise any encoding (decode it yourself, e.g. ``entry.data.decode("utf-8",
    "replace")``). A complete line ends with its newline, ``b"\\n"``, so that writing
    the entries one after the other gives back the output byte for byte
    (``sys.stdout.buffer.write(entry.data)``, as ``aiocri logs`` does); strip it for
    the text alone (``entry.data.rstrip(b"\\n")``). It has no newline when the line
    was never finished (the file ends in a ``P`` piece: the container exited or is
    still writing it) or when ``limit_bytes`` cut it. A line the runtime split into
    pieces (containerd cuts every 16 KiB) comes joined, as one entry.
    """

    #: nanoseconds since the epoch, from the first piece of the line
    time_ns: int
    #: the timestamp as the runtime wrote it (RFC 3339, nanoseconds)
    timestamp: str
    #: ``"stdout"`` or ``"stderr"``
    stream: Stream
    #: the line's bytes, with its trailing newline (``b"\\n"``) unless the line was
    #: never finished or was cut by ``limit_bytes``
    data: bytes

    @property
    def time(self) -> datetime:
        """``time_ns`` as an aware UTC datetime (microseconds: datetime holds no more)."""
        return datetime.fromtimestamp(self.time_ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class _Piece:
    time_ns: int
    timestamp: str
    stream: Stream
    full: bool
    text: bytes


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def format_time(time_ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped (Go's RFC3339Nano, as runtimes write)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def parse_line(raw: bytes) -> _Piece:
    """One line of a CRI log file (without its newline); ValueError if malformed."""
    match = _LINE.match(raw)
    if match is None:
        raise ValueError(f"not a CRI log line: {raw[:60]!r}")
    stamp, stream, tag, text = match.groups()
    timestamp = stamp.decode("ascii", "replace")
    return _Piece(parse_time(timestamp), timestamp, "stdout" if stream == b"stdout" else "stderr",
                  tag == b"F", text or b"")


class _Joiner:
    """Joins P pieces into lines, per stream (stdout and stderr interleave)."""

    def __init__(self) -> None:
        self._open: dict[Stream, list[_Piece]] = {}

    def add(self, piece: _Piece) -> LogEntry | None:
        pieces = self._open.setdefault(piece.stream, [])
        pieces.append(piece)
        if not piece.full:
            return None
        del self._open[piece.stream]
        return _entry(pieces, b"\n")

    def flush(self) -> list[LogEntry]:
        """Lines never finished (the file ends in a piece)."""
        done = [_entry(p, b"") for p in self._open.values() if p]
        self._open.clear()
        return sorted(done, key=lambda e: e.time_ns)


def _entry(pieces: list[_Piece], end: bytes) -> LogEntry:
    first = pieces[0]
    return LogEntry(first.time_ns, first.timestamp, first.stream,
                    b"".join(p.text for p in pieces) + end)


_CHUNK = 1 << 20


class _Follower:
    """Reads a path in chunks, following it across renames and truncation."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._partial = b""

    def open(self) -> None:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115  (kept open while following)
        except FileNotFoundError:
            raise LogError(f"no log file at {self.path}",
                           hint="the container may not have started yet, or its log was "
                           "rotated away") from None
        except PermissionError:
            raise LogError(f"cannot read the log file {self.path}: permission denied",
                           hint="read it as a user who may (the runtime's logs are root's)"
                           ) from None
        except OSError as exc:
            raise LogError(f"cannot open the log file {self.path}: {exc.strerror or exc}"
                           ) from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def seek_tail(self, lines: int) -> None:
        """Start at the last ``lines`` records of the file (the kubelet's way: it counts
        the file's lines, a partial line's pieces each count)."""
        assert self._file is not None
        end = self._file.seek(0, os.SEEK_END)
        position, found = end, 0
        while position > 0:
            size = min(64 * 1024, position)
            position -= size
            self._file.seek(position)
            block = self._file.read(size)
            # the file's own last newline ends the last record: it does not count
            newlines = block.count(b"\n") - (1 if position + size == end and
                                              block.endswith(b"\n") else 0)
            if found + newlines >= lines:
                cut = len(block)
                for _ in range(lines - found + (1 if position + size == end and
                                                block.endswith(b"\n") else 0)):
                    cut = block.rfind(b"\n", 0, cut)
                self._file.seek(min(position + cut + 1, end))  # a last line with no end
                return
            found += newlines
        self._file.seek(0)

    def lines(self) -> tuple[list[bytes], bool]:
        """Whole lines from the next chunk, and whether more is there already."""
        assert self._file is not None
        chunk = self._file.read(_CHUNK)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return lines, len(chunk) == _CHUNK

    def leftover(self) -> bytes:
        """The unfinished last line (a file truncated mid-line)."""
        rest, self._partial = self._partial, b""
        return rest

    def rotated(self) -> bool:
        """True when the path now names another file, or ours was truncated."""
        assert self._file is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, not yet reopened: keep reading the old file
        mine = os.fstat(self._file.fileno())
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return True
        # truncated in place (copytruncate); like tail -F, missed when the file
        # grew past our offset again between two looks
        if now.st_size < self._file.tell():
            self._file.seek(0)
            self._partial = b""
        return False

    def reopen(self) -> bool:
        """Switch to the file now at the path; False (keep the old one) if it is gone."""
        previous = self._file
        try:
            self._file = None
            self.open()
        except LogError:
            self._file = previous
            return False
        if previous is not None:
            previous.close()
        self._partial = b""
        return True


class _Filter:
    """Stream, time and byte budget: what of each entry reaches the caller."""

    def __init__(self, streams: frozenset[str], since_ns: int | None, budget: int | None):
        self.streams = streams
        self.since_ns = since_ns
        self.budget = budget

    def __call__(self, entries: Iterable[LogEntry]) -> list[LogEntry]:
        out = []
        for entry in entries:
            if entry.stream not in self.streams or (
                    self.since_ns is not None and entry.time_ns < self.since_ns):
                continue
            if self.budget is not None:
                if len(entry.data) >= self.budget:
                    out.append(LogEntry(entry.time_ns, entry.timestamp, entry.stream,
                                        entry.data[: self.budget]))
                    self.budget = 0
                    break
                self.budget -= len(entry.data)
            out.append(entry)
        return out

    @property
    def spent(self) -> bool:
        return self.budget == 0


def read_log(
    path: str | os.PathLike[str],
    *,
    follow: bool = False,
    tail: int | None = None,
    since: datetime | None = None,
    streams: Iterable[Stream] = ("stdout", "stderr"),
    limit_bytes: int | None = None,
    poll_interval: float = 0.1,
    still_running: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[LogEntry, None]:
    """Lines of a CRI log file, oldest first (iterate with ``async for``).

    ``tail``: only the last N lines of the file now (counted as the kubelet counts);
    ``since``: only lines from that time on; ``streams``: which of stdout/stderr;
    ``limit_bytes``: stop after that many bytes of text (the last line cut).
    ``follow``: keep reading as the file grows, across rotation, until
    ``still_running()`` (asked when idle) is False or the iteration is cancelled.
    Malformed lines are skipped. The file is read in chunks, the event loop served
    between them. Wrong arguments raise at once; file errors (:class:`LogError`) on
    the first iteration.
    """
    keep = log_filter(tail=tail, since=since, streams=streams, limit_bytes=limit_bytes)
    if not poll_interval > 0:
        raise ValueError("poll_interval must be positive")
    return _read_log(os.fspath(path), keep, tail, follow, poll_interval, still_running)


def log_filter(*, tail: int | None, since: datetime | None, streams: Iterable[Stream],
               limit_bytes: int | None) -> _Filter:
    """Check the selection arguments (TypeError/ValueError at once) and build the filter."""
    if tail is not None and (not isinstance(tail, int) or isinstance(tail, bool) or tail < 0):
        raise ValueError(f"tail must be a non-negative integer or None, not {tail!r}")
    if limit_bytes is not None and (not isinstance(limit_bytes, int)
                                    or isinstance(limit_bytes, bool) or limit_bytes <= 0):
        raise ValueError(f"limit_bytes must be a positive integer or None, not {limit_bytes!r}")
    if isinstance(streams, str):
        raise TypeError(f"streams must be a list of stream names, e.g. [{streams!r}]")
    wanted = frozenset(streams)
    if not wanted or not wanted <= {"stdout", "stderr"}:
        raise ValueError(f"streams must be stdout and/or stderr, not {sorted(wanted)}")
    return _Filter(wanted, _since_ns(since), limit_bytes)


async def _read_log(path: str, keep: _Filter, tail: int | None, follow: bool,
                    poll_interval: float,
                    still_running: Callable[[], Awaitable[bool]] | None
                    ) -> AsyncGenerator[LogEntry, None]:
    reader = _Follower(path)
    reader.open()
    joiner = _Joiner()
    try:
        async for entry in _read(reader, joiner, keep, tail, follow, poll_interval,
                                 still_running):
            yield entry
    except OSError as exc:  # the file went bad under us (EIO, ESTALE, EACCES...)
        raise LogError(f"reading {reader.path} failed: {exc.strerror or exc}") from None
    finally:
        reader.close()


async def _read(reader: _Follower, joiner: _Joiner, keep: _Filter, tail: int | None,
                follow: bool, poll_interval: float,
                still_running: Callable[[], Awaitable[bool]] | None
                ) -> AsyncIterator[LogEntry]:
    """What the file holds now, then (``follow``) what it gains."""
    if tail is not None:
        reader.seek_tail(tail)
    more = True
    while more:  # what the file holds now
        lines, more = reader.lines()
        for entry in keep(_entries(lines, joiner)):
            yield entry
        if keep.spent:
            return
        await asyncio.sleep(0)
    if not follow:
        for entry in keep(_leftover(reader, joiner)):
            yield entry
        return
    async for entry in _follow(reader, joiner, keep, poll_interval, still_running):
        yield entry


async def _follow(reader: _Follower, joiner: _Joiner, keep: _Filter, poll_interval: float,
                  still_running: Callable[[], Awaitable[bool]] | None
                  ) -> AsyncIterator[LogEntry]:
    idle = 0.0
    while not keep.spent:
        lines, more = reader.lines()
        fresh = _entries(lines, joiner)
        if not fresh and not more:
            if reader.rotated():
                # the rest of the old file, then the new one; a line split across the
                # two files stays one line (the joiner carries over)
                fresh = _entries([*_drain(reader), *_rest(reader)], joiner)
                reader.reopen()
            elif still_running is not None and idle >= 1.0:
                idle = 0.0
                if not await still_running():
                    fresh = _entries(_drain(reader), joiner) + _leftover(reader, joiner)
                    for entry in keep(fresh):
                        yield entry
                    return
        for entry in keep(fresh):
            yield entry
        if fresh or more:
            idle = 0.0
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(poll_interval)
            idle += poll_interval


def _drain(reader: _Follower) -> list[bytes]:
    lines, more = reader.lines()
    while more:
        extra, more = reader.lines()
        lines += extra
    return lines


def _rest(reader: _Follower) -> list[bytes]:
    rest = reader.leftover()
    return [rest] if rest else []


def _since_ns(since: datetime | None) -> int | None:
    if since is None:
        return None
    if not isinstance(since, datetime):
        raise TypeError(f"since must be a datetime, not {type(since).__name__}")
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware (e.g. datetime.now(UTC) - timedelta(...))")
    return (since - _EPOCH) // timedelta(microseconds=1) * 1000


def _entries(lines: list[bytes], joiner: _Joiner) -> list[LogEntry]:
    out = []
    for raw in lines:
        try:
            piece = parse_line(raw)
        except ValueError:
            continue
        entry = joiner.add(piece)
        if entry is not None:
            out.append(entry)
    return out


def _leftover(reader: _Follower, joiner: _Joiner) -> list[LogEntry]:
    """What the file ends with: a record cut before its newline stays a piece (its
    text may be cut too), then the lines never finished."""
    rest = reader.leftover()
    with contextlib.suppress(ValueError):
        if rest:
            piece = parse_line(rest)
            joiner.add(_Piece(piece.time_ns, piece.timestamp, piece.stream, False, piece.text))
    return joiner.flush()
