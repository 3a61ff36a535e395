"""Endpoints: parse, check and discover where a CRI runtime listens.

Accepted forms: ``unix:///abs/path``, a bare absolute path, and
``tcp://host:port`` only when the caller allows TCP (the CRI is meant for a
local socket; a TCP endpoint is usually a mistake). Every check happens before
any dial so that a typo fails at once with a clear :class:`EndpointError`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import anyio
import anyio.abc

from aiocri._classify import PeerAnswer
from aiocri.errors import EndpointError

__all__ = ["DEFAULT_ENDPOINTS", "Endpoint", "check_socket", "discover", "greet", "parse_endpoint"]

#: crictl's default sockets, in crictl's order.
DEFAULT_ENDPOINTS: tuple[str, ...] = (
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed endpoint. ``target`` is what grpc dials."""

    scheme: Literal["unix", "tcp"]
    address: str  # socket path for unix, host:port for tcp

    @property
    def target(self) -> str:
        return f"unix://{self.address}" if self.scheme == "unix" else self.address

    @property
    def path(self) -> str | None:
        return self.address if self.scheme == "unix" else None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


def parse_endpoint(value: str | Endpoint, *, allow_tcp: bool = False) -> Endpoint:
    """Parse ``value`` without touching the filesystem."""
    if isinstance(value, Endpoint):
        if value.scheme == "tcp" and not allow_tcp:
            raise _tcp_refused(str(value))
        return value
    if not isinstance(value, str) or not value.strip():
        raise EndpointError("empty runtime endpoint")
    text = value.strip()
    if text.startswith("/"):
        return Endpoint("unix", os.path.normpath(text))
    if "://" not in text:
        raise EndpointError(
            f"endpoint {text!r} is a relative path or has no scheme",
            hint="use an absolute socket path such as unix:///run/containerd/containerd.sock",
        )
    parts = urlsplit(text)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise EndpointError(
                f"endpoint {text!r} has no socket path",
                hint="write unix:// followed by the socket's absolute path, e.g. "
                     "unix:///run/containerd/containerd.sock",
            )
        if not path.startswith("/"):
            raise EndpointError(
                f"endpoint {text!r} has a relative socket path",
                hint="write unix:// followed by an absolute path (three slashes in all)",
            )
        return Endpoint("unix", os.path.normpath(path))
    if parts.scheme == "tcp":
        if not allow_tcp:
            raise _tcp_refused(text)
        if not parts.hostname or parts.port is None:
            raise EndpointError(f"tcp endpoint {text!r} needs host:port")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return Endpoint("tcp", f"{host}:{parts.port}")
    raise EndpointError(
        f"unknown endpoint scheme {parts.scheme!r} in {text!r}",
        hint="use unix:///path (or tcp://host:port with allow_tcp=True)",
    )


def _tcp_refused(text: str) -> EndpointError:
    return EndpointError(
        f"tcp endpoint {text!r} refused",
        hint="CRI runtimes listen on unix sockets; pass allow_tcp=True if you really mean TCP",
    )


def check_socket(endpoint: Endpoint) -> None:
    """Fail with a clear error unless ``endpoint`` is a unix socket we may use.

    TCP endpoints pass untouched: only a dial can tell.
    """
    path = endpoint.path
    if path is None:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise EndpointError(
            f"socket {path} does not exist",
            endpoint=str(endpoint),
            hint="start the runtime, or check the path (is it the runtime's CRI socket?)",
        ) from None
    except PermissionError:
        raise _denied(endpoint) from None
    except OSError as exc:
        raise EndpointError(
            f"cannot inspect {path}: {exc.strerror}", endpoint=str(endpoint)
        ) from None
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a socket"
        raise EndpointError(
            f"{path} is {kind}",
            endpoint=str(endpoint),
            hint="point at the runtime's unix socket file, not at another file",
        )
    if not _may(path, os.R_OK | os.W_OK):
        raise _denied(endpoint)


def _denied(endpoint: Endpoint) -> EndpointError:
    path = endpoint.path or ""
    blocked = _closed_folder(path)
    if blocked is not None:  # the folder, not the socket, keeps us out
        return EndpointError(
            f"permission denied: cannot enter {blocked} (on the way to {path})",
            endpoint=str(endpoint),
            hint=f"run as root, or as a user who may enter {blocked}",
        )
    return EndpointError(
        f"permission denied on {path}",
        endpoint=str(endpoint),
        hint="run as root or as a member of the socket's group",
    )


def _may(path: str, mode: int) -> bool:
    # as the kernel will judge the connect(): by the effective ids, when they differ
    # from the real ones (else the plain call: faccessat2 is refused by some sandboxes)
    differ = os.geteuid() != os.getuid() or os.getegid() != os.getgid()
    effective = differ and os.access in os.supports_effective_ids
    return os.access(path, mode, effective_ids=effective)


def _closed_folder(path: str) -> str | None:
    """The first folder above ``path`` this process may not enter, if any."""
    folder = "/"
    for part in [p for p in os.path.dirname(path).split("/") if p]:
        folder = os.path.join(folder, part)
        if not _may(folder, os.X_OK):
            return folder
    return None


#: An HTTP/2 client's connection preface followed by an empty SETTINGS frame.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 4  # HTTP/2 frame type


async def greet(endpoint: Endpoint, timeout: float) -> PeerAnswer:
    """Open a fresh connection, send an HTTP/2 preface and see what comes back.

    A fact for :func:`aiocri._classify.classify` when a connect gives up: a gRPC
    server answers with SETTINGS; a stopped process lets the kernel accept and
    then says nothing; anything else is not an HTTP/2 server.
    """
    try:
        with anyio.fail_after(timeout):
            if endpoint.path is not None:
                stream: anyio.abc.ByteStream = await anyio.connect_unix(endpoint.path)
            else:
                host, _, port = endpoint.address.rpartition(":")
                stream = await anyio.connect_tcp(host.strip("[]"), int(port))
    except FileNotFoundError:
        return PeerAnswer.MISSING
    except TimeoutError:  # a unix listener that never accepts; a TCP host that drops SYNs
        return PeerAnswer.SILENT if endpoint.path is not None else PeerAnswer.UNREACHABLE
    except OSError as exc:  # anyio puts the refusal of each address in __cause__
        refused = isinstance(exc, ConnectionRefusedError) or isinstance(
            exc.__cause__, ConnectionRefusedError)
        return PeerAnswer.REFUSED if refused else PeerAnswer.UNREACHABLE
    head = b""
    try:
        async with stream:
            with anyio.fail_after(timeout):
                await stream.send(_PREFACE)
                while len(head) < 9:
                    head += await stream.receive(9 - len(head))
    except TimeoutError:
        return PeerAnswer.SILENT if not head else PeerAnswer.FOREIGN
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        return PeerAnswer.FOREIGN  # hung up on an HTTP/2 greeting
    return PeerAnswer.HTTP2 if head[3] == _SETTINGS else PeerAnswer.FOREIGN

def discover(candidates: Sequence[str] = DEFAULT_ENDPOINTS) -> Endpoint:
    """The first of ``candidates`` that is a usable socket, as crictl does."""
    problems: list[str] = []
    for candidate in candidates:
        endpoint = parse_endpoint(candidate)
        try:
            check_socket(endpoint)
        except EndpointError as exc:
            problems.append(exc.message)
            continue
        return endpoint
    raise EndpointError(
        "no runtime endpoint given and none of the default sockets is usable ("
        + "; ".join(problems)
        + ")",
        hint="pass the runtime endpoint explicitly (CONTAINER_RUNTIME_ENDPOINT for the CLI)",
    )
