"""One connection generation: a channel, the version pinned on it, its callables.

Made once per successful dial (start-up, redial or renegotiation) and never
changed after: a call, probe or announcement holds the generation it started on,
so nothing it does can touch a newer one. What a generation does have is a fate:
its "lost" signal (set once), the probe in flight on it, and a count of users
that keeps a replaced channel open until the last call on it has ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import grpc
import grpc.aio
from google.protobuf.message import Message

from aiocri._probe import ProbeOutcome, ProbeRecord, may_reuse, probe_outcome
from aiocri._rpc import RPC, RPCS
from aiocri._verdict import Link
from aiocri.versions import CRIVersion

__all__ = ["Connection", "abandon", "close_channel", "multicallable"]

Check = Callable[[grpc.aio.Channel, CRIVersion], Awaitable[Any]]
Spawn = Callable[..., "asyncio.Task[Any]"]


def multicallable(channel: grpc.aio.Channel, version: CRIVersion, rpc: RPC,
                  decode: Callable[[bytes], Any] | None) -> Any:
    """``rpc`` on ``version``'s method path, its responses parsed by ``decode``
    (None: the raw bytes)."""
    make = channel.unary_stream if rpc.server_streaming else channel.unary_unary
    return make(version.path(rpc), request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=decode)


async def abandon(call: grpc.aio.Call) -> None:
    """Leave a call the caller no longer waits for.

    grpc.aio turns an anyio cancellation into a bare CancelledError that anyio
    does not recognise; cancelling the RPC and passing one checkpoint lets
    anyio's own cancellation take over.
    """
    call.cancel()
    await anyio.lowlevel.checkpoint()


async def close_channel(channel: grpc.aio.Channel) -> None:
    with anyio.CancelScope(shield=True):
        await channel.close(None)


class Connection:
    """Generation ``generation`` of one endpoint's connection."""

    __slots__ = (
        "_check", "_on_lost", "_probe", "_probe_record", "_queued", "_raw", "_spawn", "answer",
        "channel", "closed", "generation", "lost", "lost_reason", "retired", "streams",
        "unary", "users", "version",
    )

    def __init__(
        self,
        generation: int,
        channel: grpc.aio.Channel,
        version: CRIVersion,
        answer: Message,
        *,
        check: Check,
        spawn: Spawn,
        on_lost: Callable[[Connection, str], None],
    ) -> None:
        self.generation = generation
        self.channel = channel
        self.version = version
        #: What the runtime answered to the version check that made this generation.
        self.answer = answer
        self.unary: dict[str, Any] = {}
        self.streams: dict[str, Any] = {}
        for rpc in RPCS.values():
            if version.has(rpc):
                table = self.streams if rpc.server_streaming else self.unary
                table[rpc.name] = multicallable(channel, version, rpc,
                                                rpc.response_type.FromString)
        self.lost = anyio.Event()
        self.lost_reason = ""
        #: Calls, streams and probes running on this channel now.
        self.users = 0
        #: Replaced by a newer generation (or the client closed): close when unused.
        self.retired = False
        self.closed = False
        self._raw: dict[str, Any] = {}
        self._check = check
        self._spawn = spawn
        self._on_lost = on_lost
        self._probe: asyncio.Task[ProbeOutcome] | None = None
        self._probe_record: ProbeRecord | None = None
        self._queued: asyncio.Task[ProbeOutcome] | None = None

    def __repr__(self) -> str:
        return f"<Connection generation={self.generation} {self.version.name}>"

    def raw(self, rpc: RPC) -> Any:
        """``rpc`` answering raw bytes (for callers that parse them their own way, such
        as the poller's lean lists); None where the pinned version lacks it. One per
        RPC, whatever parses the bytes: the table stays as small as the schema."""
        fn = self._raw.get(rpc.name)
        if fn is None and self.version.has(rpc):
            fn = self._raw[rpc.name] = multicallable(self.channel, self.version, rpc, None)
        return fn

    def release(self) -> None:
        """A user (call, stream, probe) is done with this channel."""
        self.users -= 1
        if self.retired and self.users == 0:
            self._close_soon()

    def retire(self) -> None:
        """Replaced, or no longer wanted: close the channel once nothing uses it."""
        if not self.retired:
            self.retired = True
            if self.users == 0:
                self._close_soon()

    def _close_soon(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._spawn(close_channel(self.channel), f"close {self!r}", cancel=False)
            except RuntimeError:  # the owner is closing: it closes every channel itself
                self.closed = False

    async def aclose(self) -> None:
        """Close the channel now (calls still on it are cancelled by grpc)."""
        self.retired = True
        if not self.closed:
            self.closed = True
            await close_channel(self.channel)

    def link(self) -> Link:
        if self.lost.is_set() or self.retired:
            return Link.GONE
        try:
            state = self.channel.get_state()
        except Exception:  # a closed channel
            return Link.GONE
        return Link.READY if state is grpc.ChannelConnectivity.READY else Link.NOT_READY

    async def watch(self) -> None:
        """Declare this generation lost when its channel leaves READY, at any moment.

        Any change counts, even if the channel is READY again when we look: a
        reconnect grpc made on its own must be re-checked before it is trusted.
        """
        state = self.channel.get_state(try_to_connect=True)
        if state is grpc.ChannelConnectivity.READY:
            try:
                await self.channel.wait_for_state_change(state)
            except BaseException:
                await anyio.lowlevel.checkpoint()
                raise
            state = self.channel.get_state()
        self.declare_lost(f"the channel went {state.name}")

    def declare_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
            self._on_lost(self, reason)

    async def probe(self, deadline: float | None, code: grpc.StatusCode,
                    failed_at: float) -> ProbeOutcome:
        """Is the runtime there on this connection, for a call that failed with
        ``code`` at ``failed_at``? One probe serves every caller it may answer
        (:func:`aiocri._probe.may_reuse`); a caller it may not answer while it is
        still in flight shares the one probe queued to follow it. So at most one
        probe is in flight and one waits, however many calls fail at once.

        Waits no longer than ``deadline`` (UNDECIDED then); the probe itself goes
        on in its own task, and declares this generation lost if it finds so.
        """
        task = self._probe
        if task is None or not may_reuse(self._probe_record, code, failed_at,
                                         time.monotonic()):
            if task is not None and not task.done():
                if self._queued is None:
                    self._queued = self._spawn(self._follow(task), f"probe {self!r}")
                task = self._queued
            else:
                record = self._probe_record = ProbeRecord(sent_at=time.monotonic())
                task = self._probe = self._spawn(self._run_probe(record), f"probe {self!r}")
        if not task.done():
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait((task,), timeout=wait)
            if not task.done():
                return ProbeOutcome.UNDECIDED
        return ProbeOutcome.UNDECIDED if task.cancelled() else task.result()

    async def _follow(self, current: asyncio.Task[ProbeOutcome]) -> ProbeOutcome:
        """The queued probe: sent once ``current`` has ended, then the one in flight."""
        await asyncio.wait((current,))
        self._queued = None
        self._probe = asyncio.current_task()
        record = self._probe_record = ProbeRecord(sent_at=time.monotonic())
        return await self._run_probe(record)

    async def _run_probe(self, record: ProbeRecord) -> ProbeOutcome:
        self.users += 1
        try:
            try:
                await self._check(self.channel, self.version)
                outcome = ProbeOutcome.ANSWERED
            except grpc.aio.AioRpcError as exc:
                outcome = probe_outcome(exc.code())
            except grpc.aio.UsageError:  # closed under us (client closing)
                outcome = ProbeOutcome.UNDECIDED
        finally:
            self.release()
        if self._probe_record is record:
            self._probe_record = ProbeRecord(record.sent_at, time.monotonic())
        if outcome is ProbeOutcome.UNREACHABLE:
            self.declare_lost("the runtime did not answer the probe on this connection")
        elif outcome is ProbeOutcome.VERSION_GONE:
            self.declare_lost(f"the runtime answered UNIMPLEMENTED for CRI {self.version.name}")
        return outcome
