"""The poller's consumers: each its own queue, truly bounded, coalescing per object.

A consumer's queue holds at most ``max_pending`` events. While the consumer keeps
up, every event passes in order. Once ``max_pending`` are waiting, the queue keeps
only the latest event per object; past ``max_pending`` objects, further objects are
only noted as "owed", and their latest event is looked up in the engine when the
consumer reaches them. An object that came and went while the consumer was not
looking (it was never told of it) is dropped altogether. So the consumer always
ends up with each object's latest state, never an older one; it may miss
intermediate steps (CREATED and STARTED merged into EXITED), which ``coalesced``
counts. Nothing a consumer does slows the poller.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from types import TracebackType

import anyio

from aiocri.errors import CRIError
from aiocri.poller._model import EventKind, Key, LifecycleEvent, is_removal, key_of

__all__ = ["Consumer"]


class Consumer:
    """One consumer's events; an async iterator. Make them with ``Poller.subscribe()``."""

    def __init__(self, latest: Mapping[Key, LifecycleEvent], removed_at: Mapping[str, float],
                 max_pending: int, *, replay: bool,
                 on_close: Callable[[Consumer], None] | None = None) -> None:
        self._on_close = on_close
        self._latest = latest  # the engine's latest event per live object
        self._removed_at = removed_at
        self.max_pending = max_pending
        self._queue: deque[LifecycleEvent] = deque()
        #: Objects whose latest state is due but not queued (ordered set). A new
        #: subscriber owes every object: it is told the current state first.
        self._owed: dict[Key, None] = dict.fromkeys(latest) if replay else {}
        self._replaying = bool(self._owed)
        # While replaying, later events of the same objects merge into the replay.
        self._coalescing: OrderedDict[Key, LifecycleEvent] | None = (
            OrderedDict() if self._replaying else None)
        #: The last event delivered per object that this consumer was told exists.
        self._seen: dict[Key, LifecycleEvent] = {}
        self.coalesced = 0
        self._wake = anyio.Event()
        self._waiting = False
        self._ended = False
        self._error: CRIError | None = None

    # -- the poller's side ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events due: queued, plus objects owed their latest event."""
        return len(self._queue) + len(self._coalescing or ()) + len(self._owed)

    @property
    def queued(self) -> int:
        """Entries held in the queue now (at most ``max_pending``)."""
        return len(self._queue) + len(self._coalescing or ())

    def offer(self, event: LifecycleEvent) -> None:
        coalescing = self._coalescing
        if coalescing is None:
            if len(self._queue) < self.max_pending:
                self._queue.append(event)
                self._wake.set()
                return
            coalescing = self._coalescing = OrderedDict()
            old, self._queue = self._queue, deque()
            for queued in old:
                self._coalesce(coalescing, queued)
        self._coalesce(coalescing, event)
        self._wake.set()

    def _coalesce(self, coalescing: OrderedDict[Key, LifecycleEvent],
                  event: LifecycleEvent) -> None:
        key = key_of(event)
        unseen_removal = is_removal(event) and key not in self._seen
        if key in coalescing:
            self.coalesced += 1
            del coalescing[key]
            if unseen_removal:
                self.coalesced += 1  # came and went unseen: nothing to tell
                return
            coalescing[key] = event
        elif key in self._owed:
            self.coalesced += 1  # its latest state is looked up when it is reached
            if unseen_removal:
                del self._owed[key]
        elif unseen_removal:
            self.coalesced += 1
        elif len(coalescing) < self.max_pending:
            coalescing[key] = event
        else:
            self._owed[key] = None

    def end(self, error: CRIError | None) -> None:
        """The poller stopped: deliver what is due, then end (or raise ``error``)."""
        self._ended = True
        self._error = error
        self._wake.set()

    # -- the consumer's side ------------------------------------------------------------

    def take(self) -> LifecycleEvent | None:
        """The next event due, or None."""
        while True:
            if self._replaying and not self._owed:
                self._replaying = False
            if self._owed and (self._replaying or not (self._queue or self._coalescing)):
                key = next(iter(self._owed))
                del self._owed[key]
                owed = self._owed_event(key)
                if owed is None:
                    continue
                event = owed
            elif self._queue:
                event = self._queue.popleft()
            elif self._coalescing:
                event = self._coalescing.popitem(last=False)[1]
            else:
                self._coalescing = None  # emptied: back to plain order
                return None
            key = key_of(event)
            if is_removal(event):
                self._seen.pop(key, None)
            else:
                self._seen[key] = event
            return event

    def _owed_event(self, key: Key) -> LifecycleEvent | None:
        latest = self._latest.get(key)
        seen = self._seen.get(key)
        if latest is not None:
            return None if latest is seen else latest
        if seen is None:
            return None  # came and went unseen
        kind = EventKind.POD_REMOVED if seen.kind.is_pod else EventKind.CONTAINER_REMOVED
        at = self._removed_at.get(key, seen.at)
        return LifecycleEvent(kind, seen.id, seen.pod_id, None, seen.state, None, at)

    def __aiter__(self) -> Consumer:
        return self

    async def aclose(self) -> None:
        """Stop receiving events (what is due is dropped)."""
        self._ended = True
        self._error = None
        self._queue.clear()
        self._coalescing = None
        self._owed.clear()
        self._wake.set()
        if self._on_close is not None:
            self._on_close(self)

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def __anext__(self) -> LifecycleEvent:
        while True:
            event = self.take()
            if event is not None:
                return event
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._waiting:
                raise RuntimeError(
                    "two tasks are reading the same poller iterator; give each task its "
                    "own with poller.subscribe() (each gets every event)")
            self._wake = anyio.Event()
            self._waiting = True
            try:
                await self._wake.wait()
            finally:
                self._waiting = False
