"""One endpoint's connection state, its terminal error, and who hears of changes.

The state follows the diagram in :data:`aiocri._events.TRANSITIONS`; every
change is logged, counted in the stats, published as a ``state`` event and wakes
whoever waits for a change. A terminal state (RESTART_REQUIRED, CLOSED) keeps
the error every later call raises; RESTART_REQUIRED may still become CLOSED,
CLOSED is the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from aiocri._events import (
    ConnectionEvent,
    ConnectionEventKind,
    ConnectionState,
    ConnectionStats,
    EventBroadcast,
    Subscription,
)
from aiocri._log import library_logger
from aiocri.errors import CRIError
from aiocri.versions import CRIVersion

__all__ = ["Lifecycle"]

log = library_logger("aiocri.channel")


class Lifecycle:
    """State, generation and pinned version of one endpoint's connection, as announced."""

    def __init__(self, endpoint: str, stats: ConnectionStats, events: EventBroadcast,
                 on_terminal: Callable[[CRIError], None] | None,
                 observe: Callable[[ConnectionEvent], None] | None = None) -> None:
        self.endpoint = endpoint
        self.state = ConnectionState.CONNECTING
        self.generation = 0
        self.pinned: CRIVersion | None = None
        #: The error calls raise once the state is terminal (else None).
        self.error: CRIError | None = None
        #: Set on the first terminal state.
        self.ended = anyio.Event()
        self._changed = anyio.Event()
        self._stats = stats
        self._events = events
        self._on_terminal = on_terminal
        #: Told of every event too (an instrumentation's hook), when set.
        self.observe = observe

    async def wait_changed(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the next change of state."""
        changed = self._changed
        with anyio.move_on_after(seconds):
            await changed.wait()

    def set(self, state: ConnectionState, **extra: Any) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        self._stats.state = state
        self._stats.state_since = time.monotonic()
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        quiet = state in (ConnectionState.READY, ConnectionState.CLOSED)
        log.log(logging.INFO if quiet else logging.WARNING, "%s: %s -> %s", self.endpoint,
                previous.value, state.value)
        self.publish("state", previous=previous, **extra)

    def end(self, state: ConnectionState, error: CRIError, **extra: Any) -> bool:
        """Enter terminal ``state`` with ``error``; False if that is no change."""
        if self.state is ConnectionState.CLOSED or self.state is state:
            return False
        self.error = error
        self.set(state, error=error, **extra)
        self.ended.set()
        if state is ConnectionState.RESTART_REQUIRED:
            log.error("%s: %s", self.endpoint, error)
        self._events.close()
        if self._on_terminal is not None:
            self._on_terminal(error)
        return True

    def subscribe(self) -> Subscription:
        return self._events.subscribe()

    def publish(self, kind: ConnectionEventKind, **extra: Any) -> None:
        pinned = self.pinned
        event = ConnectionEvent(
            kind=kind, state=self.state, endpoint=self.endpoint,
            pinned=None if pinned is None else pinned.name, generation=self.generation,
            **extra)
        self._events.publish(event)
        if self.observe is not None:
            self.observe(event)
