"""What can be observed of a connection: its state, its events, its counters."""

from __future__ import annotations

import enum
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

import anyio

from aiocri.errors import CRIError

__all__ = [
    "TRANSITIONS",
    "ConnectionEvent",
    "ConnectionEventKind",
    "ConnectionState",
    "ConnectionStats",
    "EventBroadcast",
    "Subscription",
]


class ConnectionState(enum.Enum):
    """Where a client's connection stands (``client.state``, and each
    :class:`ConnectionEvent`).

    CONNECTING (the first dial and version negotiation), READY (calls are sent),
    RECONNECTING (the connection was lost; the client redials and calls wait, or fail
    at once with ``fail_fast``), then READY again once the pinned version is checked;
    RESTART_REQUIRED (the runtime came back without the pinned version: terminal, see
    :class:`~aiocri.errors.RestartRequired`) and CLOSED (``aclose()``: terminal).
    ``terminal`` tells the last two.
    """

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    RESTART_REQUIRED = "restart_required"
    CLOSED = "closed"

    @property
    def terminal(self) -> bool:
        """Whether no call can succeed any more (RESTART_REQUIRED, CLOSED)."""
        return self in (ConnectionState.RESTART_REQUIRED, ConnectionState.CLOSED)


_C = ConnectionState
#: The documented state diagram: every change a connection may make.
TRANSITIONS: frozenset[tuple[ConnectionState, ConnectionState]] = frozenset({
    (_C.CONNECTING, _C.READY),
    (_C.READY, _C.RECONNECTING),
    (_C.RECONNECTING, _C.READY),
    (_C.RECONNECTING, _C.RESTART_REQUIRED),
    (_C.CONNECTING, _C.CLOSED),
    (_C.READY, _C.CLOSED),
    (_C.RECONNECTING, _C.CLOSED),
    (_C.RESTART_REQUIRED, _C.CLOSED),
})

ConnectionEventKind = Literal["state", "redial_attempt", "newer_version_available", "renegotiated"]


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """Something that happened to a connection, for subscribers and logs."""

    kind: ConnectionEventKind
    state: ConnectionState
    endpoint: str
    pinned: str | None
    attempt: int = 0
    error: CRIError | None = None
    #: CRI versions the runtime answered on (filled after a version check).
    served: tuple[str, ...] = ()
    #: The connection generation the event is about (see ``CRIClient.generation``).
    generation: int = 0
    #: For "state" events: the state left.
    previous: ConnectionState | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class ConnectionStats:
    """Counters a user can read (``client.stats``)."""

    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    redials: int = 0
    redial_attempts: int = 0
    #: Losses declared (each ends one generation).
    losses: int = 0
    state: ConnectionState = ConnectionState.CONNECTING
    state_since: float = field(default_factory=time.monotonic)

    @property
    def time_in_state(self) -> float:
        return time.monotonic() - self.state_since


class Subscription:
    """One subscriber's bounded queue (oldest events dropped); an async iterator.

    Subscribed when made, so nothing published after ``events()`` returned is
    missed; it ends when the broadcast closes, or at :meth:`aclose`.
    """

    def __init__(self, broadcast: EventBroadcast, size: int) -> None:
        self._broadcast = broadcast
        self._queue: deque[ConnectionEvent] = deque(maxlen=size)
        self._wake = anyio.Event()
        self._ended = False

    def _put(self, event: ConnectionEvent) -> None:
        self._queue.append(event)
        self._wake.set()

    def _end(self) -> None:
        self._ended = True
        self._wake.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ConnectionEvent:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        self._ended = True
        self._broadcast._subscribers.discard(self)


class EventBroadcast:
    """Fan-out of events to subscribers, bounded per subscriber.

    Subscribers are held strongly (a task waiting on one must not be collected);
    one that is never read costs at most its bounded queue, until it is closed
    or the broadcast ends.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._subscribers: set[Subscription] = set()
        self._closed = False

    def publish(self, event: ConnectionEvent) -> None:
        for sub in list(self._subscribers):
            sub._put(event)

    def close(self) -> None:
        self._closed = True
        subscribers, self._subscribers = self._subscribers, set()
        for sub in subscribers:
            sub._end()

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._size)
        if self._closed:
            sub._end()
        else:
            self._subscribers.add(sub)
        return sub
