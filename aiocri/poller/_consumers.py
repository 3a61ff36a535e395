"""The poller's consumers: each its own queue, truly bounded, coalescing per object.

A consumer's queue holds at most ``max_pending`` events. While the consumer keeps
up, every event passes in order. Once ``max_pending`` are waiting, the queue keeps
only the latest event per object, in the turn the object first took; past
``max_pending`` objects, further objects are only noted as "owed", in arrival
order, and their latest event is looked up in the engine when their turn comes.
Removals go after everything due, so pods stay before their containers coming and
after them going. An object that came and went while the consumer was not
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
                 on_close: Callable[[Consumer], None] | None = None, name: str = "",
                 on_merge: Callable[[], None] | None = None,
                 on_drop: Callable[[], None] | None = None,
                 on_deliver: Callable[[LifecycleEvent], None] | None = None) -> None:
        # on_deliver: told of each change delivered as it was offered (not of states
        # looked up late: a replay, or an object whose turn came after a full queue)
        #: A name for metrics and logs ("poller" for the poller's own iterator).
        self.name = name
        self._on_close = on_close
        self._on_merge = on_merge
        self._on_drop = on_drop
        self._on_deliver = on_deliver
        self._latest = latest  # the engine's latest event per live object
        self._removed_at = removed_at
        self.max_pending = max_pending
        self._queue: deque[LifecycleEvent] = deque()
        # Coalescing mode: the latest event per object, in turn order; None stands for
        # "its latest state, looked up when its turn comes".
        self._coalescing: OrderedDict[Key, LifecycleEvent | None] | None = None
        #: Objects due beyond max_pending, in arrival order (same values). A new
        #: subscriber owes every object: it is told the current state first.
        self._owed: dict[Key, LifecycleEvent | None] = {}
        if replay and latest:
            self._coalescing = OrderedDict()
            self._owed = dict.fromkeys(latest)
            self._promote()
        #: The last event delivered per object that this consumer was told exists.
        self._seen: dict[Key, LifecycleEvent] = {}
        self.coalesced = 0
        #: Events past max_pending whose object waits for its turn: what it is told
        #: then is its latest state, looked up, not this event.
        self.dropped = 0
        self._wake = anyio.Event()
        self._waiting = False
        self._ended = False
        self._error: CRIError | None = None

    # -- the poller's side ------------------------------------------------------------

    def _merged(self) -> None:
        self.coalesced += 1
        if self._on_merge is not None:
            self._on_merge()

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

    def _coalesce(self, coalescing: OrderedDict[Key, LifecycleEvent | None],
                  event: LifecycleEvent) -> None:
        key = key_of(event)
        if not is_removal(event):
            # A newer state takes the object's turn where it is (so a pod told
            # before its containers stays before them), or waits for one.
            if key in coalescing or key in self._owed:
                self._merged()
                (coalescing if key in coalescing else self._owed)[key] = None
            elif not self._owed and len(coalescing) < self.max_pending:
                coalescing[key] = event
            else:
                self._owed[key] = None  # its latest state, looked up in its turn
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop()
            return
        # A removal: the object's earlier turn goes; the removal, if the consumer was
        # ever told of the object, comes after everything due (containers before
        # their pod, as the engine emits them). It is kept: the engine forgets it.
        if coalescing.pop(key, 0) != 0 or self._owed.pop(key, 0) != 0:
            self._merged()
            self._promote()  # the freed turn goes to the oldest owed object
        if key not in self._seen:
            self._merged()  # came and went unseen: nothing to tell
        elif not self._owed and len(coalescing) < self.max_pending:
            coalescing[key] = event
        else:
            self._owed[key] = event

    def _promote(self) -> None:
        """Give owed objects their turn, oldest first, as room frees up."""
        coalescing, owed = self._coalescing, self._owed
        assert coalescing is not None
        while owed and len(coalescing) < self.max_pending:
            key = next(iter(owed))
            coalescing[key] = owed.pop(key)

    def end(self, error: CRIError | None) -> None:
        """The poller stopped: deliver what is due, then end (or raise ``error``)."""
        self._ended = True
        self._error = error
        self._wake.set()

    # -- the consumer's side ------------------------------------------------------------

    def take(self) -> LifecycleEvent | None:
        """The next event due, or None."""
        looked_up = False
        while True:
            if self._queue:
                event: LifecycleEvent | None = self._queue.popleft()
            elif self._coalescing or self._owed:
                self._promote()  # room may have been freed by a removal, too
                assert self._coalescing is not None
                key, event = self._coalescing.popitem(last=False)
                self._promote()
                if not self._coalescing:  # emptied: back to plain order (and drop the
                    self._coalescing, self._owed = None, {}  # tables' grown capacity)
                if event is None:
                    event = self._looked_up(key)
                    if event is None:
                        continue
                    looked_up = True  # a state told late (a replay, a full queue)
            else:
                self._coalescing = None  # emptied: back to plain order
                return None
            assert event is not None
            if is_removal(event):
                self._seen.pop(key_of(event), None)
            else:
                self._seen[key_of(event)] = event
            if self._on_deliver is not None and not looked_up:
                self._on_deliver(event)
            return event

    def _looked_up(self, key: Key) -> LifecycleEvent | None:
        """The latest state of an owed object, unless the consumer has it already."""
        latest = self._latest.get(key)
        seen = self._seen.get(key)
        if latest is not None:
            return None if latest is seen else latest
        if seen is None:
            return None  # came and went unseen
        # Gone with no removal event kept (it went while the poller was replaced): say so.
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
