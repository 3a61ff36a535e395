"""Hooks that metrics and tracing hang on: free when nobody listens.

A client made with ``connect(..., instrumentation=...)`` calls these hooks; with
none (the default) the call path is the plain one and costs nothing extra.
:class:`aiocri.metrics.PrometheusMetrics` and :class:`aiocri.tracing.OpenTelemetry`
are the two shipped with aiocri (extras ``aiocri[prometheus]``, ``aiocri[otel]``);
subclass :class:`Instrumentation` for your own. Every hook runs on the event
loop, synchronously, and must be quick. A hook that raises is a bug in the hook:
it is logged (once per hook, on the ``aiocri.instrument`` logger) and the client
carries on, as if that hook had done nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aiocri._log import library_logger

if TYPE_CHECKING:
    from aiocri._events import ConnectionEvent
    from aiocri.channel import ChannelManager
    from aiocri.errors import CRIError
    from aiocri.poller import Poller

__all__ = [
    "CallRecord",
    "CallType",
    "GuardedPollerObserver",
    "GuardedSessionObserver",
    "Instrumentation",
    "PollerObserver",
    "SessionObserver",
    "combine",
    "error_code",
    "guarded",
]

log = library_logger("aiocri.instrument")
_failed_hooks: set[str] = set()
_T = TypeVar("_T")


def guarded(hook: Callable[..., _T], *args: Any, default: _T) -> _T:
    """``hook(*args)``; a hook that raises is logged once and ``default`` returned:
    a broken exporter must never take the client down."""
    try:
        return hook(*args)
    except Exception:
        name = getattr(hook, "__qualname__", repr(hook))
        if name not in _failed_hooks:
            _failed_hooks.add(name)
            log.exception("instrumentation hook %s failed (logged once; ignored)", name)
        return default


def error_code(error: BaseException) -> str:
    """A label for what a call raised: its gRPC code's name when it has one
    ("NOT_FOUND"), CANCELLED for a cancelled call, else its class name
    ("ClientClosed"): a small, fixed set."""
    code = getattr(error, "code", None)
    if code is not None and hasattr(code, "name"):
        return str(code.name)
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return type(error).__name__


class CallRecord:
    """One RPC call in flight, from :meth:`CallType.begin` to :meth:`end`.

    ``metadata``: gRPC metadata to send with the call (a tracer's ``traceparent``).
    """

    __slots__ = ()

    metadata: Sequence[tuple[str, str]] | None = None

    def resent(self, generation: int) -> None:
        """The connection broke under the call; it is sent again on ``generation``."""

    def end(self, error: BaseException | None) -> None:
        """The call ended: ``error`` is what it raised (None: it succeeded), usually a
        :class:`~aiocri.errors.CRIError`, or ``asyncio.CancelledError`` when the
        calling task was cancelled."""


class CallType:
    """One RPC on one endpoint and version; made once, then one :meth:`begin` per call."""

    __slots__ = ()

    def begin(self) -> CallRecord:
        """A call of this RPC starts now: its record, told how it ends."""
        raise NotImplementedError


class PollerObserver:
    """What one :class:`~aiocri.poller.Poller` reports while it runs."""

    def relist(self) -> Any:
        """A context manager around one relist (its list and status calls run inside)."""
        raise NotImplementedError

    def relist_done(self, seconds: float, interval: float | None) -> None:
        """A relist took ``seconds``; ``interval``: seconds since the previous one began."""

    def stream_opened(self) -> None:
        """GetContainerEvents was opened (again)."""

    def stream_failed(self, error: CRIError) -> None:
        """GetContainerEvents failed or could not be opened."""

    def delivered(self, lag: float) -> None:
        """An event reached a consumer ``lag`` seconds after the runtime's own time
        for it (the container's start or finish, the event's creation)."""

    def discarded(self, count: int) -> None:
        """``count`` runtime events were dropped because they piled up (a relist follows)."""


class SessionObserver:
    """One streaming session (exec, attach, port-forward), from open to close."""

    def opened(self, transport: str) -> None:
        """The session is open over ``transport`` ("spdy" or "websocket")."""

    def closed(self, sent: int, received: int) -> None:
        """The session closed after sending and receiving these numbers of bytes."""


class Instrumentation:
    """The base of every instrumentation: each hook does nothing; override some."""

    def attach(self, manager: ChannelManager) -> None:
        """A connection to an endpoint was made; read its state and counters later
        (``manager.state``, ``.generation``, ``.pinned``, ``.stats``). Hold it weakly."""

    def call_type(self, endpoint: str, method: str, name: str) -> CallType | None:
        """The calls of one RPC: ``method`` fully qualified
        ("runtime.v1.RuntimeService/ContainerStatus"), ``name`` its short name."""
        return None

    def connection_event(self, manager: ChannelManager, event: ConnectionEvent) -> None:
        """Every :class:`~aiocri.ConnectionEvent` of ``manager``'s connection, as it
        happens (several clients may share an endpoint: tell them apart by ``manager``)."""

    def poller(self, poller: Poller, endpoint: str) -> PollerObserver | None:
        """A poller was made over an instrumented client."""
        return None

    def session(self, kind: str, endpoint: str) -> SessionObserver | None:
        """A streaming session ("exec", "attach", "portforward") is being opened."""
        return None


def combine(instrumentation: Instrumentation | Iterable[Instrumentation] | None,
            ) -> Instrumentation | None:
    """One instrumentation for several (None for none); checks the types."""
    if instrumentation is None:
        return None
    if isinstance(instrumentation, Instrumentation):
        return instrumentation
    if isinstance(instrumentation, (str, bytes)) or not isinstance(instrumentation, Iterable):
        raise TypeError("instrumentation must be an aiocri.instrument.Instrumentation or a "
                        f"list of them, not {instrumentation!r}")
    items = list(instrumentation)
    for item in items:
        if not isinstance(item, Instrumentation):
            raise TypeError("instrumentation must be an aiocri.instrument.Instrumentation or "
                            f"a list of them; got {item!r} in the list")
    if not items:
        return None
    return items[0] if len(items) == 1 else _Several(items)


class _Several(Instrumentation):
    def __init__(self, items: list[Instrumentation]) -> None:
        self.items = items

    # Each item is guarded on its own: one broken instrumentation silences none of
    # the others, nor leaves their records or contexts unended.

    def attach(self, manager: ChannelManager) -> None:
        for item in self.items:
            guarded(item.attach, manager, default=None)

    def call_type(self, endpoint: str, method: str, name: str) -> CallType | None:
        types = [t for item in self.items
                 if (t := guarded(item.call_type, endpoint, method, name, default=None))]
        if not types:
            return None
        return types[0] if len(types) == 1 else _SeveralCallTypes(types)

    def connection_event(self, manager: ChannelManager, event: ConnectionEvent) -> None:
        for item in self.items:
            guarded(item.connection_event, manager, event, default=None)

    def poller(self, poller: Poller, endpoint: str) -> PollerObserver | None:
        observers: list[PollerObserver] = [GuardedPollerObserver(o) for item in self.items
                     if (o := guarded(item.poller, poller, endpoint, default=None))]
        if not observers:
            return None
        return observers[0] if len(observers) == 1 else _SeveralPollerObservers(observers)

    def session(self, kind: str, endpoint: str) -> SessionObserver | None:
        observers: list[SessionObserver] = [GuardedSessionObserver(o) for item in self.items
                     if (o := guarded(item.session, kind, endpoint, default=None))]
        if not observers:
            return None
        return observers[0] if len(observers) == 1 else _SeveralSessionObservers(observers)


class _SeveralCallTypes(CallType):
    __slots__ = ("types",)

    def __init__(self, types: list[CallType]) -> None:
        self.types = types

    def begin(self) -> CallRecord:
        return _SeveralRecords([r for t in self.types
                                if (r := guarded(t.begin, default=None)) is not None])


class _SeveralRecords(CallRecord):
    __slots__ = ("metadata", "records")

    def __init__(self, records: list[CallRecord]) -> None:
        self.records = records
        metadata = [pair for r in records if r.metadata for pair in r.metadata]
        self.metadata = metadata or None

    def resent(self, generation: int) -> None:
        for r in self.records:
            guarded(r.resent, generation, default=None)

    def end(self, error: BaseException | None) -> None:
        for r in self.records:
            guarded(r.end, error, default=None)


class _SeveralPollerObservers(PollerObserver):
    def __init__(self, observers: list[PollerObserver]) -> None:
        self.observers = observers

    def relist(self) -> Any:
        import contextlib

        stack = contextlib.ExitStack()
        for o in self.observers:
            stack.enter_context(o.relist())
        return stack

    def relist_done(self, seconds: float, interval: float | None) -> None:
        for o in self.observers:
            o.relist_done(seconds, interval)

    def stream_opened(self) -> None:
        for o in self.observers:
            o.stream_opened()

    def stream_failed(self, error: CRIError) -> None:
        for o in self.observers:
            o.stream_failed(error)

    def delivered(self, lag: float) -> None:
        for o in self.observers:
            o.delivered(lag)

    def discarded(self, count: int) -> None:
        for o in self.observers:
            o.discarded(count)


class _SeveralSessionObservers(SessionObserver):
    def __init__(self, observers: list[SessionObserver]) -> None:
        self.observers = observers

    def opened(self, transport: str) -> None:
        for o in self.observers:
            o.opened(transport)

    def closed(self, sent: int, received: int) -> None:
        for o in self.observers:
            o.closed(sent, received)


class GuardedPollerObserver(PollerObserver):
    """A poller's observer whose failures are logged and ignored (see :func:`guarded`)."""

    def __init__(self, observer: PollerObserver) -> None:
        self.observer = observer

    def relist(self) -> Any:
        return _GuardedContext(guarded(self.observer.relist, default=None))

    def relist_done(self, seconds: float, interval: float | None) -> None:
        guarded(self.observer.relist_done, seconds, interval, default=None)

    def stream_opened(self) -> None:
        guarded(self.observer.stream_opened, default=None)

    def stream_failed(self, error: CRIError) -> None:
        guarded(self.observer.stream_failed, error, default=None)

    def delivered(self, lag: float) -> None:
        guarded(self.observer.delivered, lag, default=None)

    def discarded(self, count: int) -> None:
        guarded(self.observer.discarded, count, default=None)


class GuardedSessionObserver(SessionObserver):
    """A session's observer whose failures are logged and ignored."""

    def __init__(self, observer: SessionObserver) -> None:
        self.observer = observer

    def opened(self, transport: str) -> None:
        guarded(self.observer.opened, transport, default=None)

    def closed(self, sent: int, received: int) -> None:
        guarded(self.observer.closed, sent, received, default=None)


class _GuardedContext:
    """A hook's context manager whose enter and exit failures are logged and ignored;
    it never swallows the exception of the code it surrounds."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.entered = False

    def __enter__(self) -> None:
        if self.context is not None:
            self.entered = guarded(self._enter, default=False)

    def _enter(self) -> bool:
        self.context.__enter__()
        return True

    def __exit__(self, *exc_info: Any) -> None:
        if self.entered:
            guarded(self.context.__exit__, *exc_info, default=None)
