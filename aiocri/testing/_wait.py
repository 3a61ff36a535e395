"""Waiting in tests without sleeping blindly: until a condition holds, or fail clearly."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import anyio

from aiocri._events import ConnectionState
from aiocri.client import CRIClient

__all__ = ["wait_for", "wait_for_state"]


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 5.0,
                   interval: float = 0.01, what: str = "") -> None:
    """Until ``condition()`` (sync or async) is true; TimeoutError after ``timeout`` s,
    naming ``what`` (or the condition)."""
    with anyio.move_on_after(timeout) as scope:
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(interval)
    if scope.cancelled_caught:
        name = what or getattr(condition, "__name__", "the condition")
        raise TimeoutError(f"{name} did not hold within {timeout} s")


async def wait_for_state(client: CRIClient, state: ConnectionState, *, timeout: float = 5.0,
                         image: bool = False) -> None:
    """Until the client's runtime (or image) connection is in ``state``."""
    await wait_for(lambda: (client.image_state if image else client.state) is state,
                   timeout=timeout, interval=0.005,
                   what=f"the {'image' if image else 'runtime'} connection reaching {state.name}")
