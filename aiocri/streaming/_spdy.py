"""SPDY/3.1 framing, without I/O: frames to bytes and bytes to frames.

Only what the CRI streaming servers speak: SYN_STREAM, SYN_REPLY, RST_STREAM,
SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE and DATA. Header blocks are
deflated with one zlib stream per direction, primed with the SPDY/3 dictionary.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "DICTIONARY",
    "FLAG_FIN",
    "FLAG_UNIDIRECTIONAL",
    "Data",
    "Frame",
    "FrameParser",
    "GoAway",
    "HeaderBlock",
    "Headers",
    "Ping",
    "ProtocolError",
    "RstStream",
    "Settings",
    "SynReply",
    "SynStream",
    "WindowUpdate",
    "encode",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1
_HEAD = struct.Struct("!II")
_FIN_BIT = FLAG_FIN << 24
_STREAM_MASK = 0x7FFFFFFF

_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _SETTINGS = 1, 2, 3, 4
_PING, _GOAWAY, _HEADERS, _WINDOW_UPDATE = 6, 7, 8, 9

# RST_STREAM status codes (SPDY/3 section 2.6.3).
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5


def _dictionary() -> bytes:
    # The SPDY/3 preset dictionary: length-prefixed words, then a run of raw text.
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
        "cache-control", "connection", "content-base", "content-encoding", "content-language",
        "content-length", "content-location", "content-md5", "content-range", "content-type",
        "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
        "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range",
        "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
        "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status",
    ]
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
              "origin"]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    head = b"".join(struct.pack("!I", len(w)) + w.encode() for w in words)
    return head + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent bytes that are not valid SPDY/3.1."""


#: Header names are lower case; several values of one name are joined by NUL.
HeaderBlock: TypeAlias = dict[str, str]


@dataclass(frozen=True, slots=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: HeaderBlock
    fin: bool = False
    unidirectional: bool = False
    associated_id: int = 0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: HeaderBlock
    fin: bool = False


@dataclass(frozen=True, slots=True)
class Headers:
    stream_id: int
    headers: HeaderBlock
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    #: setting id -> value (the per-entry persistence flags are not kept)
    values: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_stream_id: int
    status: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame: TypeAlias = (
    Data | SynStream | SynReply | Headers | RstStream | Settings | Ping | GoAway | WindowUpdate
)


class _Deflater:
    """One direction's header compression context (shared by all header blocks)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)

    def pack(self, headers: HeaderBlock) -> bytes:
        parts = [struct.pack("!I", len(headers))]
        for name, value in headers.items():
            raw_name, raw_value = name.lower().encode(), value.encode()
            parts += [struct.pack("!I", len(raw_name)), raw_name,
                      struct.pack("!I", len(raw_value)), raw_value]
        block = b"".join(parts)
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class _Inflater:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def unpack(self, data: bytes) -> HeaderBlock:
        try:
            block = self._zlib.decompress(data)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not inflate: {exc}") from None
        try:
            (count,) = struct.unpack_from("!I", block, 0)
            offset, headers = 4, {}
            for _ in range(count):
                (size,) = struct.unpack_from("!I", block, offset)
                name = block[offset + 4 : offset + 4 + size]
                offset += 4 + size
                (size,) = struct.unpack_from("!I", block, offset)
                value = block[offset + 4 : offset + 4 + size]
                if len(value) != size:
                    raise struct.error("short value")
                offset += 4 + size
                headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        except struct.error:
            raise ProtocolError("header block is truncated") from None
        return headers


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("control frame too long")
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def _flags(fin: bool, unidirectional: bool = False) -> int:
    return (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)


class FrameEncoder:
    """Frames to bytes, for one side of one connection (owns the deflate context)."""

    def __init__(self) -> None:
        self._deflater = _Deflater()

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case Data(stream_id, data, fin):
                if len(data) > MAX_LENGTH:
                    raise ValueError("data frame too long")
                return struct.pack("!II", stream_id & _STREAM_MASK,
                                   (_flags(fin) << 24) | len(data)) + data
            case SynStream(stream_id, headers, fin, unidirectional, associated_id, priority):
                head = struct.pack("!IIBB", stream_id & _STREAM_MASK,
                                   associated_id & _STREAM_MASK, (priority & 7) << 5, 0)
                return _control(_SYN_STREAM, _flags(fin, unidirectional),
                                head + self._deflater.pack(headers))
            case SynReply(stream_id, headers, fin):
                return _control(_SYN_REPLY, _flags(fin), struct.pack("!I", stream_id)
                                + self._deflater.pack(headers))
            case Headers(stream_id, headers, fin):
                return _control(_HEADERS, _flags(fin), struct.pack("!I", stream_id)
                                + self._deflater.pack(headers))
            case RstStream(stream_id, status):
                return _control(_RST_STREAM, 0, struct.pack("!II", stream_id, status))
            case Settings(values):
                body = struct.pack("!I", len(values)) + b"".join(
                    struct.pack("!II", key & 0xFFFFFF, value) for key, value in values.items()
                )
                return _control(_SETTINGS, 0, body)
            case Ping(ping_id):
                return _control(_PING, 0, struct.pack("!I", ping_id))
            case GoAway(last_stream_id, status):
                return _control(_GOAWAY, 0, struct.pack("!II", last_stream_id, status))
            case WindowUpdate(stream_id, delta):
                return _control(_WINDOW_UPDATE, 0, struct.pack("!II", stream_id, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


def encode(frame: Frame, encoder: FrameEncoder | None = None) -> bytes:
    """Bytes of one frame (a fresh deflate context unless ``encoder`` is given)."""
    return (encoder or FrameEncoder()).encode(frame)


class FrameParser:
    """Bytes to frames, incrementally, for one side of one connection."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflater = _Inflater()
        #: set once the bytes stopped making sense; no frames are parsed after it
        self.error: ProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``; a partial frame waits for more bytes.

        On bad bytes, the frames before them are returned and :attr:`error` is set.
        """
        if self.error is not None:
            return []
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        frames: list[Frame] = []
        offset, size = 0, len(data)
        unpack = _HEAD.unpack_from
        while size - offset >= 8:
            first, second = unpack(data, offset)
            end = offset + 8 + (second & 0xFFFFFF)
            if end > size:
                break
            if first & 0x80000000:
                try:
                    frame = self._frame(first, second >> 24, data[offset + 8 : end])
                except ProtocolError as exc:
                    self.error = exc
                    return frames
                if frame is not None:
                    frames.append(frame)
            else:  # the hot path: data frames
                frames.append(Data(first, data[offset + 8 : end], bool(second & _FIN_BIT)))
            offset = end
        if offset < size:
            self._buffer += data[offset:]
        return frames

    def _frame(self, first: int, flags: int, payload: bytes) -> Frame | None:
        if not first & 0x80000000:
            return Data(first, payload, bool(flags & FLAG_FIN))
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, expected {VERSION}")
        fin = bool(flags & FLAG_FIN)
        try:
            return self._control(kind, flags, fin, payload)
        except struct.error:
            raise ProtocolError(f"control frame {kind} is truncated") from None

    def _control(self, kind: int, flags: int, fin: bool, payload: bytes) -> Frame | None:
        if kind == _SYN_STREAM:
            stream_id, associated, priority = struct.unpack_from("!IIB", payload)
            return SynStream(stream_id & _STREAM_MASK, self._inflater.unpack(payload[10:]), fin,
                             bool(flags & FLAG_UNIDIRECTIONAL), associated & _STREAM_MASK,
                             priority >> 5)
        if kind in (_SYN_REPLY, _HEADERS):
            (stream_id,) = struct.unpack_from("!I", payload)
            kind_type = SynReply if kind == _SYN_REPLY else Headers
            return kind_type(stream_id & _STREAM_MASK, self._inflater.unpack(payload[4:]), fin)
        if kind == _RST_STREAM:
            stream_id, status = struct.unpack_from("!II", payload)
            return RstStream(stream_id & _STREAM_MASK, status)
        if kind == _SETTINGS:
            (count,) = struct.unpack_from("!I", payload)
            values = {}
            for index in range(count):
                key, value = struct.unpack_from("!II", payload, 4 + 8 * index)
                values[key & 0xFFFFFF] = value
            return Settings(values)
        if kind == _PING:
            return Ping(struct.unpack_from("!I", payload)[0])
        if kind == _GOAWAY:
            last, status = struct.unpack_from("!II", payload) if len(payload) >= 8 else (
                struct.unpack_from("!I", payload)[0], 0)
            return GoAway(last & _STREAM_MASK, status)
        if kind == _WINDOW_UPDATE:
            stream_id, delta = struct.unpack_from("!II", payload)
            return WindowUpdate(stream_id & _STREAM_MASK, delta & _STREAM_MASK)
        return None  # SPDY: ignore control frames of unknown types
