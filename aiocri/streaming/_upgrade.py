"""The HTTP/1.1 upgrade that turns a streaming URL into a SPDY connection."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

from aiocri.errors import StreamingError, UpgradeRefused

__all__ = ["netloc", "split_url", "upgrade_spdy"]

_HEAD_LIMIT = 64 * 1024


def netloc(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_url(url: str) -> tuple[str, int, str, bool]:
    """``(host, port, path with query, tls)`` of a streaming URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise StreamingError(f"the runtime answered an unusable streaming URL {url!r}")
    tls = parts.scheme in ("https", "wss")
    port = parts.port or (443 if tls else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.hostname, port, path, tls


class _Answer(asyncio.Protocol):
    """Collects the server's answer to the upgrade request, up to its head and body."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.changed = asyncio.Event()
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.changed.set()

    def eof_received(self) -> bool | None:
        self.lost = True
        self.changed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.changed.set()

    async def head(self) -> tuple[int, dict[str, str], bytes]:
        while (end := self.data.find(b"\r\n\r\n")) < 0:
            if self.lost:
                raise StreamingError("the streaming server closed the connection during the "
                                     "upgrade")
            if len(self.data) > _HEAD_LIMIT:
                raise StreamingError("the streaming server's answer head is too long")
            self.changed.clear()
            await self.changed.wait()
        status, headers = _parse_head(bytes(self.data[:end]))
        return status, headers, bytes(self.data[end + 4 :])

    async def body(self, headers: dict[str, str], start: int) -> str:
        try:
            size = min(int(headers.get("content-length", "4096")), _HEAD_LIMIT)
        except ValueError:
            size = 4096
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while len(self.data) - start < size and not self.lost:
                    self.changed.clear()
                    await self.changed.wait()
        return bytes(self.data[start : start + size]).decode("utf-8", "replace")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise StreamingError(f"not an HTTP answer: {status_line[:80]!r}") from None
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def upgrade_spdy(url: str, protocols: list[str]) -> tuple[asyncio.Transport, bytes, str]:
    """Upgrade ``url`` to SPDY/3.1 offering ``protocols``.

    Returns the transport, the bytes that came after the answer's head, and the
    protocol the server chose.
    """
    host, port, path, tls = split_url(url)
    host_header = netloc(host, port)
    loop = asyncio.get_running_loop()
    try:
        transport, answer = await loop.create_connection(
            _Answer, host, port, ssl=ssl.create_default_context() if tls else None
        )
    except OSError as exc:
        raise StreamingError(
            f"cannot reach the runtime's streaming server at {host}:{port}: "
            f"{exc.strerror or exc}",
            hint="the runtime may have restarted (its URLs die with it); start a new session",
        ) from None
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host_header}",
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        *(f"X-Stream-Protocol-Version: {p}" for p in protocols),
        "Content-Length: 0",
        "User-Agent: aiocri",
    ]
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        status, headers, rest = await answer.head()
        if status != 101:
            body = await answer.body(headers, len(answer.data) - len(rest))
            raise UpgradeRefused(
                f"the streaming server refused the SPDY upgrade: HTTP {status}"
                + (f": {body.strip()}" if body.strip() else ""),
                status=status,
                body=body,
            )
        chosen = headers.get("x-stream-protocol-version", "")
        if protocols and chosen not in protocols:
            raise StreamingError(
                f"the streaming server chose protocol {chosen!r}, not one of {protocols}"
            )
    except BaseException:
        transport.close()
        raise
    return transport, rest, chosen
