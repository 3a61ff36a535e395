"""The gRPC side of the fake runtime: the handler table, fault injection, kill.

The table is derived from ``aiocri._rpc.RPCS``: for every served CRI version
each RPC that version has is registered under ``<package>.<Service>``, all
with the same v1 message classes. RPCs a version lacks stay unregistered, so
grpc itself answers UNIMPLEMENTED, as a real runtime does.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import random
import socket
import stat
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from aiocri._rpc import RPC, RPCS
from aiocri.testing._servicer import FakeServicer, Response
from aiocri.testing._state import StatusError
from aiocri.versions import VERSIONS, CRIVersion

__all__ = [
    "Faults",
    "Hooks",
    "build_handlers",
    "cut_connections",
    "leave_stale_socket",
    "missing_rpcs",
    "refuse_live_socket",
    "remove_socket_file",
    "socket_is_live",
]

_ANY = "*"
#: What grpc itself answers for a method no handler serves.
_NO_METHOD = "Method not found!"


@dataclass(slots=True)
class _ErrorRule:
    code: grpc.StatusCode
    rate: float
    details: str
    remaining: int | None  # None: for ever


class Faults:
    """Injected latency and errors, per RPC name or ``"*"`` for all."""

    def __init__(self, seed: int | None = None) -> None:
        self.latency: dict[str, float] = {}
        self.errors: dict[str, _ErrorRule] = {}
        self._rng = random.Random(seed)

    @property
    def active(self) -> bool:
        return bool(self.latency or self.errors)

    @staticmethod
    def _check(rpc: str) -> None:
        if rpc != _ANY and rpc not in RPCS:
            raise ValueError(f"unknown RPC {rpc!r}; use an RPC name like 'ListContainers', or '*'")

    def set_latency(self, rpc: str, seconds: float) -> None:
        self._check(rpc)
        if seconds > 0:
            self.latency[rpc] = seconds
        else:
            self.latency.pop(rpc, None)

    def set_error(
        self, rpc: str, code: grpc.StatusCode, rate: float, details: str, count: int | None
    ) -> None:
        self._check(rpc)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if rate == 0.0 or count == 0:
            self.errors.pop(rpc, None)
        else:
            self.errors[rpc] = _ErrorRule(code, rate, details, count)

    def clear(self, rpc: str | None = None) -> None:
        if rpc is None:
            self.latency.clear()
            self.errors.clear()
        else:
            self.latency.pop(rpc, None)
            self.errors.pop(rpc, None)

    async def apply(self, rpc: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        delay = self.latency.get(rpc, self.latency.get(_ANY, 0.0))
        if delay > 0:
            await asyncio.sleep(delay)  # handlers run in grpc's own tasks: plain asyncio
        key = rpc if rpc in self.errors else _ANY
        rule = self.errors.get(key)
        if rule is None or (rule.rate < 1.0 and self._rng.random() >= rule.rate):
            return
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self.errors[key]
        await context.abort(rule.code, rule.details)


class Hooks:
    """What every handler touches: fault injection and call counters."""

    def __init__(self, seed: int | None = None) -> None:
        self.faults = Faults(seed)
        #: Calls served, by RPC name ("ListContainers") and by method path.
        self.calls: Counter[str] = Counter()
        self.calls_by_path: Counter[str] = Counter()
        #: CRI versions answered now; the others answer UNIMPLEMENTED, as a runtime
        #: that lacks them (see FakeRuntime.swap_versions).
        self.served: frozenset[str] = frozenset()
        #: (RPC name, W3C traceparent) of the last calls that carried one.
        self.traceparents: deque[tuple[str, str]] = deque(maxlen=1000)


def _note_trace(hooks: Hooks, name: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent":
            hooks.traceparents.append((name, str(value)))


def _serialize(response: Response) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


Behaviour = Callable[..., Any]


def _method_handler(
    rpc: RPC, impl: Behaviour, version: CRIVersion, hooks: Hooks
) -> grpc.RpcMethodHandler[Any, Any]:
    name, path, vname = rpc.name, version.paths[rpc.name], version.name
    faults, calls, by_path = hooks.faults, hooks.calls, hooks.calls_by_path
    deserialize: Callable[[bytes], Message] = rpc.request_type.FromString

    if rpc.server_streaming:

        async def stream(
            request: Message, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Response]:
            if vname not in hooks.served:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_METHOD)
            calls[name] += 1
            by_path[path] += 1
            _note_trace(hooks, name, context)
            if faults.active:
                await faults.apply(name, context)
            try:
                async for item in impl(request, version):
                    yield item
            except StatusError as err:
                await context.abort(err.code, err.details)

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=deserialize, response_serializer=_serialize
        )

    if inspect.iscoroutinefunction(impl):

        async def unary_async(
            request: Message, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Response:
            if vname not in hooks.served:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_METHOD)
            calls[name] += 1
            by_path[path] += 1
            _note_trace(hooks, name, context)
            if faults.active:
                await faults.apply(name, context)
            try:
                result: Response = await impl(request, version)
            except StatusError as err:
                await context.abort(err.code, err.details)
            return result

        behaviour: Behaviour = unary_async
    else:

        async def unary(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Response:
            if vname not in hooks.served:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_METHOD)
            calls[name] += 1
            by_path[path] += 1
            _note_trace(hooks, name, context)
            if faults.active:
                await faults.apply(name, context)
            try:
                result: Response = impl(request, version)
            except StatusError as err:
                await context.abort(err.code, err.details)
            return result

        behaviour = unary

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=deserialize, response_serializer=_serialize
    )


def missing_rpcs(servicer: object) -> list[str]:
    """RPCs the servicer has no method for (must stay empty)."""
    return [rpc.name for rpc in RPCS.values() if not callable(getattr(servicer, rpc.attr, None))]


def build_handlers(
    servicer: FakeServicer, versions: Sequence[CRIVersion], hooks: Hooks
) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """One generic handler per (version, service), each with that version's RPCs.

    Every known version is registered; ``hooks.served`` says which ones answer.
    """
    missing = missing_rpcs(servicer)
    if missing:
        raise TypeError(f"the fake runtime lacks {', '.join(missing)}")
    handlers: list[grpc.GenericRpcHandler[Any, Any]] = []
    hooks.served = frozenset(v.name for v in versions)
    for version in VERSIONS.values():
        tables: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = defaultdict(dict)
        for rpc in RPCS.values():
            if rpc.name in version.rpcs:
                impl = getattr(servicer, rpc.attr)
                tables[rpc.service][rpc.name] = _method_handler(rpc, impl, version, hooks)
        for service, table in tables.items():
            handlers.append(
                grpc.method_handlers_generic_handler(f"{version.package}.{service}", table)
            )
    return handlers


# -- kill ---------------------------------------------------------------------------


def _server_side_inodes(path: str) -> set[int]:
    """Inodes of the accepted (server-side) connections of the unix socket at ``path``.

    Accepted sockets carry the listener's path in /proc/net/unix; clients'
    sockets carry none, so a client in this same process is never matched.
    """
    inodes: set[int] = set()
    with open("/proc/net/unix") as table:
        next(table, None)
        for line in table:
            parts = line.split()
            # Num RefCount Protocol Flags Type St Inode Path
            if len(parts) >= 8 and parts[7] == path and not int(parts[3], 16) & 0x10000:
                inodes.add(int(parts[6]))  # 0x10000 = __SO_ACCEPTCON, the listener
    return inodes


def cut_connections(path: str) -> int:
    """Shut down every accepted connection of ``path`` in this process, as a crash would.

    Peers see the connection drop with no GOAWAY (grpc clients report
    UNAVAILABLE "Socket closed"). Linux only; returns how many were cut.
    """
    try:
        inodes = _server_side_inodes(path)
    except OSError:
        return 0
    if not inodes:
        return 0
    cut = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            # shutdown acts on the shared socket, so a dup is enough and grpc keeps its fd
            sock = socket.socket(fileno=os.dup(int(name)))
            try:
                sock.shutdown(socket.SHUT_RDWR)
                cut += 1
            except OSError:
                pass
            finally:
                sock.close()
    return cut


def leave_stale_socket(path: str) -> None:
    """Put a dead socket file at ``path``: connects are refused, as after SIGKILL."""
    if os.path.lexists(path):
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)  # closed without listen/unlink: the file stays, nobody answers
    finally:
        sock.close()


def remove_socket_file(path: str) -> None:
    """Unlink ``path`` if it is a socket (never anything else)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def socket_is_live(path: str) -> bool:
    """Whether ``path`` is a socket file that a server accepts connections on.

    False for a stale file (connects refused), no file, another file type, or
    a socket this process may not connect to.
    """
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)  # a unix connect is accepted or refused at once
        probe.connect(path)
    except BlockingIOError:
        return True  # its backlog is full: it listens
    except OSError:
        return False
    finally:
        probe.close()
    return True


def refuse_live_socket(path: str) -> None:
    """Raise OSError (EADDRINUSE) when a server accepts connections on ``path``.

    Binding would unlink the file and take that server's clients (grpc
    replaces a socket file whatever it is), so only a stale file may go.
    """
    if not socket_is_live(path):
        return
    raise OSError(
        errno.EADDRINUSE,
        f"{path} is in use by a live server (it accepts connections); stop that server "
        "first, or serve the fake runtime on another socket path",
    )
