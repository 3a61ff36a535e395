"""One connection generation: a channel, the version pinned on it, its callables.

Made once per successful dial (start-up, redial or renegotiation) and never
changed after: a call, probe or announcement holds the generation it started on,
so nothing it does can touch a newer one. What a generation does have is a fate:
its "lost" signal (set once), the probe in flight on it, and a count of users
that keeps a replaced channel open until the last call on it has ended.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import grpc
import grpc.aio
from google.protobuf.message import Message

from aiocri._rpc import RPC, RPCS
from aiocri._verdict import Link, ProbeOutcome, probe_outcome
from aiocri.versions import CRIVersion

__all__ = ["PROBE_REUSE", "Connection", "close_channel", "multicallable"]

#: How long one probe's verdict answers for other calls failing on the same generation.
PROBE_REUSE = 0.5

Check = Callable[[grpc.aio.Channel, CRIVersion], Awaitable[Any]]
Spawn = Callable[..., "asyncio.Task[Any]"]


def multicallable(channel: grpc.aio.Channel, version: CRIVersion, rpc: RPC,
                  decode: Callable[[bytes], Any]) -> Any:
    """``rpc`` on ``version``'s method path, its responses parsed by ``decode``."""
    make = channel.unary_stream if rpc.server_streaming else channel.unary_unary
    return make(version.path(rpc), request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=decode)


async def close_channel(channel: grpc.aio.Channel) -> None:
    with anyio.CancelScope(shield=True):
        await channel.close(None)


class Connection:
    """Generation ``generation`` of one endpoint's connection."""

    __slots__ = (
        "_check", "_decoded", "_on_lost", "_probe", "_probe_done", "_spawn", "answer",
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
        self._decoded: dict[tuple[str, Callable[[bytes], Any]], Any] = {}
        self._check = check
        self._spawn = spawn
        self._on_lost = on_lost
        self._probe: asyncio.Task[ProbeOutcome] | None = None
        self._probe_done = -math.inf

    def __repr__(self) -> str:
        return f"<Connection generation={self.generation} {self.version.name}>"

    def decoded(self, rpc: RPC, decode: Callable[[bytes], Any]) -> Any:
        """``rpc`` with responses parsed by ``decode`` (the poller's lean lists)."""
        key = (rpc.name, decode)
        fn = self._decoded.get(key)
        if fn is None:
            fn = self._decoded[key] = multicallable(self.channel, self.version, rpc, decode)
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

    def declare_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
            self._on_lost(self, reason)

    async def probe(self, deadline: float | None) -> ProbeOutcome:
        """Is the runtime there on this connection? One probe serves every caller.

        Waits no longer than ``deadline`` (UNDECIDED then); the probe itself goes
        on in its own task, and declares this generation lost if it finds so.
        """
        task = self._probe
        if task is None or (task.done() and time.monotonic() - self._probe_done > PROBE_REUSE):
            task = self._probe = self._spawn(self._run_probe(), f"probe {self!r}")
        if not task.done():
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait((task,), timeout=wait)
            if not task.done():
                return ProbeOutcome.UNDECIDED
        return ProbeOutcome.UNDECIDED if task.cancelled() else task.result()

    async def _run_probe(self) -> ProbeOutcome:
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
        self._probe_done = time.monotonic()
        if outcome is ProbeOutcome.UNREACHABLE:
            self.declare_lost("the runtime did not answer the probe on this connection")
        elif outcome is ProbeOutcome.VERSION_GONE:
            self.declare_lost(f"the runtime answered UNIMPLEMENTED for CRI {self.version.name}")
        return outcome
