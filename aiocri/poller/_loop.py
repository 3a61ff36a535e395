"""The poller's I/O loop over the public client: relists, the event stream, statuses.

It decides when to relist and whether to follow GetContainerEvents, fetches what
the engine asks for (statuses, with bounded concurrency) and hands every answer
to the engine. ``client.generation`` tells it of reconnects: after each, the
event stream and the Stream* lists are tried again (a runtime upgraded under the
poller may have gained them) and a broken stream is reopened at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Literal, cast

import anyio
import anyio.abc

from aiocri import api
from aiocri._lean import ITEMS, LISTS
from aiocri._log import library_logger
from aiocri._rpc import RPCS
from aiocri._timeouts import check_positive_int
from aiocri.client import CRIClient
from aiocri.errors import (
    ClientClosed,
    CRIError,
    InternalError,
    MessageTooLarge,
    RuntimeCallError,
    Unsupported,
    UnsupportedByVersion,
)
from aiocri.instrument import GuardedPollerObserver, guarded
from aiocri.poller._consumers import Consumer
from aiocri.poller._engine import Engine, StatusAnswer
from aiocri.poller._model import _RETRY, LifecycleEvent, PollerStats, Snapshot, runtime_time

__all__ = ["Mode", "Poller"]

log = library_logger("aiocri.poller")

#: How a :class:`Poller` watches: ``"relist"``, ``"events"`` or ``"auto"`` (see the
#: module's description).
Mode = Literal["auto", "relist", "events"]

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
#: A stream that stayed open this long was healthy: its next failure backs off from the start.
_STREAM_HEALTHY = 10.0
#: Status codes worth retrying: the connection, deadlines, the runtime's passing failures.
_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "NOT_FOUND", "INTERNAL", "UNKNOWN",
                        "CANCELLED", "ABORTED", "RESOURCE_EXHAUSTED"})


class Poller:
    """Watch a runtime's pods and containers; iterate to get :class:`LifecycleEvent`.

    Use as an async context manager, or :meth:`start` it and :meth:`aclose` it from
    any task; its work runs in a task of its own, never around your code. See the
    package docstring for the modes, the events and the consumers.

    ``period``: seconds between relists (relist mode, and whenever the event stream
    is down). ``resync_period``: seconds between relists while the stream works
    (``math.inf``: only when it opens, and a period later).
    ``max_pending``: events each consumer's queue holds at most (see
    :mod:`aiocri.poller._consumers`). ``initial_statuses``: fetch a status for every
    object of the first relist (by default only exited containers', for their exit
    codes). ``status_concurrency``: status calls in flight at once. A wrong argument
    raises TypeError or ValueError here, naming it.
    """

    def __init__(
        self,
        client: CRIClient,
        *,
        period: float = 1.0,
        mode: Mode = "auto",
        resync_period: float = 60.0,
        max_pending: int = 10_000,
        initial_statuses: bool = False,
        status_concurrency: int = 32,
    ) -> None:
        _check_client(client)
        self._client = client
        self.period = _seconds("period", period)
        self.mode: Mode = _mode(mode)
        self.resync_period = _seconds("resync_period", resync_period, forever=True)
        self.max_pending = check_positive_int("Poller max_pending", max_pending)
        self.status_concurrency = check_positive_int("Poller status_concurrency",
                                                     status_concurrency)
        if not isinstance(initial_statuses, bool):
            raise TypeError(f"Poller initial_statuses must be True or False, "
                            f"not {initial_statuses!r}")
        self.stats = PollerStats()
        self._engine = Engine(self._broadcast, initial_statuses=initial_statuses)
        self._consumers: set[Consumer] = set()
        self._error: CRIError | None = None
        self._closed = False
        self._list_requests = {rpc: RPCS[rpc].request_type() for rpc in LISTS}
        self._synced_at = math.inf  # monotonic time the first relist ended
        self._last_relist_start: float | None = None
        instrumentation = client.instrumentation
        observer = (None if instrumentation is None
                    else guarded(instrumentation.poller, self, client.endpoint, default=None))
        self._observer = None if observer is None else GuardedPollerObserver(observer)
        self._own = self._subscribe(replay=False, name="poller")
        self._task: asyncio.Task[None] | None = None
        self._synced = anyio.Event()
        self._wake = anyio.Event()
        self._next_relist = 0.0
        self._relist_cost = 0.0  # seconds a relist takes (moving average)
        self._resync = False
        self._settle = False
        self._relisting = False
        self._raw: list[api.ContainerEventResponse] = []
        self._reader: anyio.CancelScope | None = None
        self._stream_open = False
        self._streamed = 0  # messages read from the event stream
        # client.generation when an RPC was found unimplemented (None: not found so).
        self._no_events_at: int | None = None
        self._no_stream_at: dict[str, int] = {}

    # -- public face -----------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """Pods and containers known now (an immutable view; cheap to read)."""
        return self._engine.snapshot

    @property
    def coalesced(self) -> int:
        """Events of this poller's own iterator merged into newer ones of the same object."""
        return self._own.coalesced

    @property
    def pending(self) -> int:
        """Events due to this poller's own iterator."""
        return self._own.pending

    def subscribe(self, name: str | None = None) -> Consumer:
        """Another consumer: an async iterator of its own that gets every event, told
        the current state first (one event per known object), then every change.
        End it with ``await consumer.aclose()`` (the poller's end ends it too).
        ``name`` labels its metrics (default ``subscriber``; the metrics add up the
        consumers of one name, so keep names few)."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"subscribe name must be a str, not {name!r}")
        return self._subscribe(replay=True, name=name or "subscriber")

    def _subscribe(self, *, replay: bool, name: str) -> Consumer:
        consumer = Consumer(self._engine.last, self._engine.tombstones, self.max_pending,
                            replay=replay, on_close=self._consumers.discard, name=name,
                            on_merge=self._merged, on_drop=self._dropped,
                            on_deliver=None if self._observer is None else self._delivered)
        if self._closed:
            consumer.end(self._error)
        else:
            self._consumers.add(consumer)
        return consumer

    @property
    def closed(self) -> bool:
        """Whether the poller has stopped (closed, or ended by its client's end)."""
        return self._closed

    @property
    def stream_open(self) -> bool:
        """Whether GetContainerEvents is open now (events mode, stream up)."""
        return self._stream_open

    @property
    def consumers(self) -> list[Consumer]:
        """The consumers receiving events now (the poller's own iterator first)."""
        return sorted(self._consumers, key=lambda c: c is not self._own)

    def _merged(self) -> None:
        self.stats.coalesced += 1

    def _dropped(self) -> None:
        self.stats.dropped_to_latest += 1

    def _delivered(self, event: LifecycleEvent) -> None:
        """Time from the runtime's own time of a change to its delivery (changes seen
        after the first relist only: the first tells of the past)."""
        if event.at > self._synced_at and self._observer is not None:
            happened = runtime_time(event)
            if happened is not None:
                self._observer.delivered(max(0.0, time.time() - happened))

    def _broadcast(self, event: LifecycleEvent) -> None:
        self.stats.events_emitted += 1
        for consumer in self._consumers:
            consumer.offer(event)

    async def wait_synced(self) -> None:
        """Wait until the first relist is done (its events queued).

        Raises the error that stopped the poller, if it stopped first: a relist
        that fails with a non-transient answer (PERMISSION_DENIED, INVALID_ARGUMENT,
        ...) stops it. Transient failures are retried for as long as they last; bound
        the wait with ``anyio.fail_after`` if you need to.
        """
        await self._synced.wait()
        if not self._engine.synced:
            if self._error is not None:
                raise self._error
            raise ClientClosed("the poller was closed before its first relist",
                               hint="start a new Poller")

    def start(self) -> Poller:
        """Start watching (``async with`` does this)."""
        if self._task is not None or self._closed:
            raise RuntimeError("a Poller is started once")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="aiocri poller")
        return self

    async def aclose(self) -> None:
        """Stop: consumers get what is due, then end; safe from any task."""
        self._end(None)
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.CancelScope(shield=True):
            while not task.done():
                task.cancel()
                await asyncio.wait((task,), timeout=0.5)

    async def __aenter__(self) -> Poller:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Consumer:
        """The poller's own iterator (one reader at a time; see :meth:`subscribe`)."""
        return self._own

    async def __anext__(self) -> LifecycleEvent:
        return await self._own.__anext__()

    # -- the task ----------------------------------------------------------------------

    def _end(self, error: CRIError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        if error is not None:
            log.warning("poller stopped: %s", error)
        for consumer in self._consumers:
            consumer.end(error)
        self._synced.set()

    async def _run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._guarded, self._main, tg)
            tg.start_soon(self._guarded, self._watch_client, tg)

    async def _guarded(self, work: Callable[[anyio.abc.TaskGroup], Awaitable[None]],
                       tg: anyio.abc.TaskGroup, *, part: bool = False) -> None:
        """Run one part of the poller; an error ends the poller, never lost. ``part``:
        returning is normal (the event reader), else it ends the poller too."""
        try:
            await work(tg)
            if part:
                return
        except CRIError as exc:
            self._end(exc)
        except Exception as exc:  # a bug: it ends the poller as InternalError
            log.exception("poller: unexpected error")
            error = InternalError(f"the poller failed ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            self._end(error)
        tg.cancel_scope.cancel()

    async def _watch_client(self, tg: anyio.abc.TaskGroup) -> None:
        """Stop as soon as the client is terminal (RESTART_REQUIRED or CLOSED)."""
        try:
            error: CRIError = await self._client.restart_required()
        except CRIError as exc:
            error = exc
        self._end(error)

    def _wakeup(self) -> None:
        self._wake.set()

    async def _main(self, tg: anyio.abc.TaskGroup) -> None:
        backoff = _Backoff()
        while True:
            self._choose_mode(tg)
            if self._raw:
                await self._apply_runtime_events()
            now = time.monotonic()
            if self._resync or now >= self._next_relist:
                await self._relist_when_due(now, backoff)
                continue
            self._wake = anyio.Event()
            if self._raw or self._resync or self._wants_reader_change():
                continue
            with anyio.move_on_after(self._next_relist - now):
                await self._wake.wait()

    async def _relist_when_due(self, now: float, backoff: _Backoff) -> None:
        self._resync = False
        self._relisting = True
        observer = self._observer
        try:
            if observer is None:
                await self._relist(now)
            else:
                with observer.relist():
                    await self._relist(now)
        except CRIError as exc:
            if not _transient(exc):
                raise
            self._count_error(exc, "relist")
            self._next_relist = time.monotonic() + backoff.next()
            return
        finally:
            self._relisting = False
        backoff.reset()
        end = time.monotonic()
        if observer is not None:
            last, self._last_relist_start = self._last_relist_start, now
            observer.relist_done(end - now, None if last is None else now - last)
        # A change is reported when the relist after it ends: start the next one early
        # by what a relist takes, so that no change waits more than the period.
        self._relist_cost += 0.3 * (end - now - self._relist_cost)
        if self._settle:
            interval, self._settle = self.period, False
        else:
            # the stream covers changes only while it is open; else relist at the period
            interval = self.resync_period if self._stream_open else self.period
        early = min(self._relist_cost, interval / 4)
        self._next_relist = max(now + interval - early, end + interval / 4)

    def _count_error(self, exc: CRIError, what: str) -> None:
        name = type(exc).__name__
        self.stats.errors[name] += 1
        n = self.stats.errors[name]
        level = logging.WARNING if n & (n - 1) == 0 else logging.DEBUG
        log.log(level, "poller: %s failed (%s), retrying: %s", what, name, exc)

    # -- choosing how to watch -----------------------------------------------------------

    def _events_possible(self) -> bool:
        if self.mode == "relist":
            return False
        if "GetContainerEvents" not in self._client.version.rpcs:
            if self.mode == "events":
                raise UnsupportedByVersion(
                    f"GetContainerEvents is not part of CRI {self._client.version}, the "
                    "version the client pinned; use Poller(mode='auto') or 'relist'",
                    method="GetContainerEvents",
                )
            return False
        no_events = self._no_events_at
        return no_events is None or no_events != self._client.generation

    def _wants_reader_change(self) -> bool:
        return (self._reader is None) == self._events_possible()

    def _choose_mode(self, tg: anyio.abc.TaskGroup) -> None:
        possible = self._events_possible()
        if possible and self._reader is None:
            self._no_events_at = None
            scope = self._reader = anyio.CancelScope()
            tg.start_soon(partial(self._guarded, part=True), lambda _: self._follow_events(scope),
                          tg)
        elif not possible and self._reader is not None:
            self._reader.cancel()
            self._reader = None
        mode = "events" if self._reader is not None else "relist"
        if mode != self.stats.mode:
            log.info("poller: watching by %s", mode)
            if mode == "relist" and self.stats.mode == "events":
                self._next_relist = min(self._next_relist, time.monotonic() + self.period)
            self.stats.mode = mode

    # -- the event stream ----------------------------------------------------------------

    async def _follow_events(self, scope: anyio.CancelScope) -> None:
        """Read GetContainerEvents into ``_raw``; reopen it when it breaks, forever."""
        backoff = _Backoff()
        resync = True
        try:
            with scope:
                while True:
                    generation = self._client.generation
                    opened = time.monotonic()
                    received = self._streamed
                    if not await self._read_stream(resync):
                        return  # unsupported: relist mode until the next generation
                    lived = time.monotonic() - opened
                    if lived > _STREAM_HEALTHY:
                        backoff.reset()
                    # A stream that failed at once covered nothing: the period's relists
                    # do; one that worked may have missed a change as it broke.
                    resync = (lived > self.period or self._streamed > received
                              or self._client.generation != generation)
                    # a new connection: reopen at once (the backoff is for a runtime
                    # that keeps failing the stream, not for reconnects)
                    with anyio.move_on_after(backoff.next()):
                        while self._client.generation == generation:  # noqa: ASYNC110
                            await anyio.sleep(0.01)
        finally:
            self._stream_open = False
            if self._reader is scope:
                self._reader = None
                self._wakeup()

    async def _read_stream(self, resync: bool) -> bool:
        """One life of the stream; False when the runtime does not serve it."""
        self.stats.stream_opens += 1
        if resync:
            # Whatever happened while no stream was open: relist now (unless one is
            # under way), and once more a period later (the stream may not have been
            # open yet when that relist listed).
            self._resync = self._resync or not self._relisting
            self._settle = True
            self._wakeup()
        stream = self._client.runtime.get_container_events()
        self._stream_open = True
        observer = self._observer
        if observer is not None:
            observer.stream_opened()
        try:
            async for event in stream:
                self._streamed += 1
                self._raw.append(event)
                if len(self._raw) > max(self.max_pending, 1000):
                    log.warning("poller: runtime events pile up; dropped, relisting")
                    self.stats.discarded += len(self._raw)
                    if observer is not None:
                        observer.discarded(len(self._raw))
                    self._raw.clear()
                    self._resync = True
                self._wakeup()
            log.info("poller: the runtime ended GetContainerEvents; reopening")
        except Unsupported as exc:
            if observer is not None:
                observer.stream_failed(exc)
            if self.mode == "events":
                raise
            log.info("poller: no GetContainerEvents (%s); relisting every %g s",
                     type(exc).__name__, self.period)
            self._no_events_at = self._client.generation
            return False
        except CRIError as exc:
            if observer is not None:
                observer.stream_failed(exc)
            if not _transient(exc):
                raise
            self._count_error(exc, "GetContainerEvents")
        finally:
            self._stream_open = False
            # down: relist at the period from now on (wake the loop to reschedule)
            self._next_relist = min(self._next_relist, time.monotonic() + self.period)
            self._wakeup()
            await _aclose(stream)
        return True

    async def _apply_runtime_events(self) -> None:
        engine = self._engine
        while self._raw:
            batch, self._raw = self._raw, []
            for event in batch:
                self.stats.runtime_events += 1
                fetched: StatusAnswer = None
                if engine.status_needed(event):
                    fetched = await self._status(
                        self._client.runtime.container_status,
                        api.ContainerStatusRequest(container_id=event.container_id))
                if engine.apply_event(event, time.monotonic(), fetched):
                    self._resync = True

    # -- relisting -----------------------------------------------------------------------

    async def _relist(self, started: float) -> None:
        """One relist: list, diff, fetch statuses of what changed, emit."""
        relist = self._engine.relist()
        self.stats.pod_list = await self._list_objects(
            relist.pods.add, "pod sandboxes", "StreamPodSandboxes", "ListPodSandbox")
        self.stats.container_list = await self._list_objects(
            relist.containers.add, "containers", "StreamContainers", "ListContainers")
        pod_ids, container_ids = relist.plan()
        pod_status, container_status = await self._fetch_statuses(pod_ids, container_ids)
        now = time.monotonic()
        self._engine.apply_relist(relist, pod_status, container_status, now)
        self.stats.relists += 1
        self.stats.last_relist_at = now
        self.stats.last_relist_duration = now - started
        if not self._synced.is_set():
            self._synced_at = now
            self._synced.set()
            log.info("poller: synced: %d pods, %d containers (%s, %s)",
                     len(self._engine.pods), len(self._engine.containers),
                     self.stats.pod_list, self.stats.container_list)

    def _stream_usable(self, rpc: str) -> bool:
        if rpc not in self._client.version.rpcs:
            return False
        at = self._no_stream_at.get(rpc)
        return at is None or at != self._client.generation

    async def _list_objects(self, sink: Callable[[Iterable[Any]], None], what: str,
                            stream_rpc: str, list_rpc: str) -> str:
        """List pods or containers into ``sink`` (the Stream* list when usable, else the
        unary one); return the RPC used."""
        runtime, requests = self._client.runtime, self._list_requests
        if self._stream_usable(stream_rpc):
            stream = runtime.invoke(stream_rpc, requests[stream_rpc],
                                    decode=LISTS[stream_rpc].FromString)
            if await self._feed(stream_rpc, stream, sink):
                return stream_rpc
        try:
            response = await runtime.invoke(list_rpc, requests[list_rpc],
                                            decode=LISTS[list_rpc].FromString)
        except MessageTooLarge as exc:
            raise _too_large(exc, what) from None
        sink(getattr(response, ITEMS[list_rpc]))
        return list_rpc

    async def _feed(self, rpc: str, stream: AsyncIterator[Any],
                    sink: Callable[[Iterable[Any]], None]) -> bool:
        """Feed each chunk of a Stream* list to ``sink`` as it arrives; False when the
        runtime does not serve it (a stream refused at its start has fed nothing)."""
        items = ITEMS[rpc]
        try:
            async for chunk in stream:
                sink(getattr(chunk, items))
        except Unsupported as exc:
            log.info("poller: %s unusable (%s); using the unary list until the next redial",
                     rpc, type(exc).__name__)
            self._no_stream_at[rpc] = self._client.generation
            return False
        finally:
            await _aclose(stream)
        return True

    async def _fetch_statuses(
        self, pod_ids: list[str], container_ids: list[str]
    ) -> tuple[dict[str, StatusAnswer], dict[str, StatusAnswer]]:
        """Statuses of what changed: at most ``status_concurrency`` calls at once, by as
        many workers (a node drain of 10,000 containers starts no 10,000 tasks)."""
        runtime = self._client.runtime
        pods: dict[str, StatusAnswer] = {}
        containers: dict[str, StatusAnswer] = {}
        jobs: list[tuple[dict[str, StatusAnswer], str, Callable[..., Any], Any]] = [
            (pods, pid, runtime.pod_sandbox_status,
             api.PodSandboxStatusRequest(pod_sandbox_id=pid)) for pid in pod_ids]
        jobs += [(containers, cid, runtime.container_status,
                  api.ContainerStatusRequest(container_id=cid)) for cid in container_ids]
        todo = iter(jobs)
        failed: list[CRIError] = []

        async def worker() -> None:
            for into, oid, call, request in todo:
                try:
                    into[oid] = await self._status(call, request)
                except CRIError as exc:  # not transient: ends the relist, unwrapped
                    failed.append(exc)
                    tg.cancel_scope.cancel()
                    return

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.status_concurrency, len(jobs))):
                tg.start_soon(worker)
        if failed:
            raise failed[0]
        return pods, containers

    async def _status(self, call: Callable[..., Any], request: Any) -> StatusAnswer:
        """One status call: the status, None if the object is gone, _RETRY if it failed."""
        self.stats.status_fetches += 1
        try:
            response = await call(request)
        except CRIError as exc:
            if exc.code is not None and exc.code.name == "NOT_FOUND":
                return None
            if not _transient(exc):
                raise
            self._count_error(exc, "status")
            return _RETRY
        return response.status


def _check_client(client: object) -> None:
    if not isinstance(client, CRIClient):
        raise TypeError(f"Poller client must be an aiocri.CRIClient (from aiocri.connect()), "
                        f"not {client!r}")


def _seconds(name: str, value: object, *, forever: bool = False) -> float:
    """A positive number of seconds; ``forever``: math.inf too (never)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Poller {name} must be a number of seconds, not {value!r}")
    if not (0 < value < math.inf or (forever and value == math.inf)):
        raise ValueError(f"Poller {name} must be a positive {'' if forever else 'finite '}"
                         f"number of seconds, not {value!r}")
    return float(value)


def _mode(mode: object) -> Mode:
    if not isinstance(mode, str):
        raise TypeError(f"Poller mode must be 'auto', 'relist' or 'events', not {mode!r}")
    if mode not in ("auto", "relist", "events"):
        raise ValueError(f"Poller mode must be 'auto', 'relist' or 'events', not {mode!r}")
    return cast(Mode, mode)


def _transient(exc: CRIError) -> bool:
    """Worth retrying: connection trouble, deadlines, the runtime's passing failures.
    PERMISSION_DENIED, INVALID_ARGUMENT, UNIMPLEMENTED and the like are not."""
    if isinstance(exc, MessageTooLarge):
        return False
    if not isinstance(exc, RuntimeCallError):
        return False  # RestartRequired, ClientClosed, ...: the client is terminal
    return exc.code is not None and exc.code.name in _TRANSIENT


def _too_large(exc: MessageTooLarge, what: str) -> MessageTooLarge:
    exc.add_note(
        f"aiocri.Poller: the runtime's list of {what} exceeds the client's max_message_size "
        "and the runtime offers no Stream* list (StreamContainers/StreamPodSandboxes, CRI v1) "
        "to send it in parts; raise max_message_size in aiocri.connect()"
    )
    return exc


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


class _Backoff:
    """Bounded exponential backoff with a little jitter: 50 ms, 100 ms, ... 2 s."""

    def __init__(self, first: float = _BACKOFF_FIRST, maximum: float = _BACKOFF_MAX) -> None:
        self.first = first
        self.maximum = maximum
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.9, 1.1)

    def reset(self) -> None:
        self._next = self.first

