"""Calls through an instrumentation: the manager's unary() and stream() wrapped.

Only a manager made with an instrumentation uses these; without one, its call
path is the plain one (see :mod:`aiocri.instrument`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from aiocri._rpc import RPC
from aiocri.instrument import CallRecord, CallType, Instrumentation, guarded

if TYPE_CHECKING:
    from aiocri._lifecycle import Lifecycle
    from aiocri.channel import ChannelManager

__all__ = ["ObservedCalls", "observe"]


def observe(manager: ChannelManager, life: Lifecycle,
            instrumentation: Instrumentation | None) -> None:
    """Make ``manager`` report to ``instrumentation`` (None: nothing to do): its calls
    through :class:`ObservedCalls`, its connection events, and itself (``attach``)."""
    if instrumentation is None:
        return
    observed = ObservedCalls(manager, instrumentation)
    manager.unary = observed.unary  # type: ignore[method-assign]
    manager.stream = observed.stream  # type: ignore[method-assign]
    life.observe = partial(guarded, instrumentation.connection_event, manager, default=None)
    guarded(instrumentation.attach, manager, default=None)


class ObservedCalls:
    """One manager's calls, each told to its RPC's :class:`CallType`."""

    def __init__(self, manager: ChannelManager, instrumentation: Instrumentation) -> None:
        self._manager = manager
        self._instrumentation = instrumentation
        self._endpoint = str(manager.endpoint)
        # the plain methods (of the class: the instance's own are these wrappers)
        self._unary = type(manager).unary
        self._stream = type(manager).stream
        #: by (pinned package, RPC name): made on first use, None when not observed
        self._types: dict[tuple[str, str], CallType | None] = {}

    def _call_type(self, rpc: RPC) -> CallType | None:
        pinned = self._manager.pinned
        package = "" if pinned is None else pinned.package
        key = (package, rpc.name)
        try:
            return self._types[key]
        except KeyError:
            if pinned is not None and rpc.name not in pinned.rpcs:
                made = None  # never sent: UnsupportedByVersion, raised before any round trip
            else:
                method = f"{package}.{rpc.service}/{rpc.name}" if package else rpc.name
                made = guarded(self._instrumentation.call_type, self._endpoint, method,
                               rpc.name, default=None)
            self._types[key] = made
            return made

    async def unary(self, rpc: RPC, request: Message | None, timeout: float | None,
                    decode: Callable[[bytes], Any] | None = None,
                    record: CallRecord | None = None) -> Any:
        call_type = self._call_type(rpc)
        record = None if call_type is None else guarded(call_type.begin, default=None)
        if record is None:
            return await self._unary(self._manager, rpc, request, timeout, decode)
        try:
            response = await self._unary(self._manager, rpc, request, timeout,
                                                  decode, record)
        except BaseException as exc:
            guarded(record.end, exc, default=None)
            raise
        guarded(record.end, None, default=None)
        return response

    async def stream(self, rpc: RPC, request: Message | None, timeout: float | None,
                     decode: Callable[[bytes], Any] | None = None,
                     record: CallRecord | None = None) -> AsyncGenerator[Any, None]:
        call_type = self._call_type(rpc)
        record = None if call_type is None else guarded(call_type.begin, default=None)
        messages = self._stream(self._manager, rpc, request, timeout, decode, record)
        try:
            async for message in messages:
                yield message
        except GeneratorExit:  # the reader stopped reading: not a failure
            if record is not None:
                guarded(record.end, None, default=None)
            raise
        except BaseException as exc:
            if record is not None:
                guarded(record.end, exc, default=None)
            raise
        finally:
            await messages.aclose()
        if record is not None:
            guarded(record.end, None, default=None)
