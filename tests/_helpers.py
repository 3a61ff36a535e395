"""Small helpers the test modules share."""

from __future__ import annotations

import anyio

import aiocri
from aiocri import ConnectionState


async def wait_state(client: aiocri.CRIClient, state: ConnectionState, within: float = 5.0,
                     image: bool = False) -> None:
    """Wait until the runtime (or image) endpoint's connection is in ``state``."""
    with anyio.fail_after(within):
        while (client.image_state if image else client.state) is not state:
            await anyio.sleep(0.005)
