"""Background tasks a client owns: started from any task, all ended by ``aclose()``.

grpc.aio runs on asyncio only, so these are plain asyncio tasks; none of them is
ever a parent of the user's code, and an unexpected exception in one is handed
to ``on_crash`` (the owner turns it into its terminal error) instead of being lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio

from aiocri._log import library_logger

__all__ = ["TaskSet"]

log = library_logger("aiocri")
T = TypeVar("T")


class TaskSet:
    def __init__(self, name: str, on_crash: Callable[[BaseException], None]) -> None:
        self._name = name
        self._on_crash = on_crash
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], what: str, *,
              cancel: bool = True) -> asyncio.Task[T]:
        """Start ``coro``; ``cancel=False``: :meth:`aclose` waits for it instead
        (channel closes, which must complete)."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._name} is closed")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._name}: {what}")
        self._tasks.add(task)
        if not cancel:
            self._keep.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._keep.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s crashed", task.get_name(), exc_info=exc)
            self._on_crash(exc)

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended (shielded: always completes)."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            while self._tasks:
                pending = set(self._tasks)
                for task in pending - self._keep:
                    task.cancel()
                # asyncio.wait never cancels what it waits for; a task that swallowed
                # its cancellation is cancelled again on the next round.
                await asyncio.wait(pending, timeout=0.5)
