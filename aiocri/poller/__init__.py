"""The status poller: typed lifecycle events of a runtime's pods and containers.

    async with aiocri.connect(endpoint) as client, Poller(client, period=1.0) as poller:
        await poller.wait_synced()
        print(len(poller.snapshot.containers))
        async for event in poller:
            if event.kind is EventKind.CONTAINER_EXITED:
                print(event.id, event.exit_code)

It is an engine and a loop: :mod:`aiocri.poller._engine` turns observations (a
relist, a runtime event, a status) into events and knows nothing of I/O;
:mod:`aiocri.poller._loop` does the I/O over the public client;
:mod:`aiocri.poller._consumers` holds each consumer's bounded queue.

How it watches (``mode``):

- ``"relist"``, the kubelet's generic PLEG: every ``period`` one pod list and one
  container list (the Stream* lists where the pinned version has them and the
  runtime serves them, else the unary lists), a diff by id and (state, created_at),
  one status call for each object whose change is reported (at most
  ``status_concurrency`` at once), then the events.
- ``"events"``: follow ``GetContainerEvents`` (runtime.v1, containerd >= 1.7); relist
  when the stream is (re)opened, once more ``period`` later, then every
  ``resync_period`` while it stays open, and every ``period`` while it is down. A
  broken stream is reopened at once after a reconnect (``client.generation``), else
  with a bounded backoff (50 ms to 2 s). Strict: if the pinned version or the runtime
  lacks the RPC, the poller fails with :class:`UnsupportedByVersion` /
  :class:`UnsupportedByRuntime`.
- ``"auto"`` (default): ``"events"`` where it works, else ``"relist"``, decided per
  connection generation: a runtime that answered UNIMPLEMENTED is asked again after
  a reconnect (it may have been upgraded). The same holds for each Stream* list.

Events: the first relist reports everything that exists, one event per object for
the state it is in; a container's events go forward only (CREATED, STARTED, EXITED,
REMOVED, each at most once per id; only the steps seen are reported, none is
invented); a pod gives POD_READY, POD_NOT_READY, POD_REMOVED. A pod is told before
any event of its containers, whatever fails: a container whose pod could not be told
yet (its status call failed, or it was made between the two lists) waits for the next
relist. A pod that stops is told after its containers' exits, and removed after
them. Across a runtime restart the poller waits for the redial and reports only real
changes. Event-stream and relist information merge safely: states only move forward,
removed ids stay removed.

Consumers: ``async for event in poller`` reads the poller's own iterator (one task
at a time: a second task reading it concurrently gets a RuntimeError saying so).
Every other consumer takes ``poller.subscribe()``: its own iterator, told the
current state first, then every change. Each queue holds at most ``max_pending``
events: past that it keeps each object's latest event only, in the object's turn
(``coalesced`` counts what it merged), and objects beyond ``max_pending`` are owed
their latest event, looked up in their turn; removals come after everything due and
carry the exit code seen; an object that came and went unseen is not reported. A
consumer always ends with every object's latest state, pods told before their
containers and removed after them; a slow one misses intermediate steps, never the
last one; none slows the poller. Consumers end when
the poller closes, after what is due, with the error that stopped it if any:
:class:`RestartRequired`, :class:`ClientClosed`, :class:`MessageTooLarge`, a
non-transient answer of the runtime (PERMISSION_DENIED...), or :class:`InternalError`.
Transient failures (UNAVAILABLE, deadlines, INTERNAL...) are counted in
``stats.errors`` and retried with backoff.

Cost: relists parse lean list entries (:mod:`aiocri._lean`) and diff each chunk as
it arrives; the snapshot makes an entry a full message when it is read. Figures in
``benchmarks/README.md``.
"""

from aiocri.poller._consumers import Consumer
from aiocri.poller._engine import Engine
from aiocri.poller._loop import Mode, Poller
from aiocri.poller._model import EventKind, LifecycleEvent, PollerStats, Snapshot

__all__ = ["Consumer", "Engine", "EventKind", "LifecycleEvent", "Mode", "Poller", "PollerStats",
           "Snapshot"]
