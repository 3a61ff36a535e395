"""A user's script, type-checked with ``mypy --strict`` by tests/test_typing.py.

The wrong calls at the end are meant: the test expects exactly those errors.
"""

from __future__ import annotations

from typing import reveal_type

import aiocri
from aiocri.api import CONTAINER_RUNNING, ContainerFilter, ContainerStateValue, ImageSpec


async def use(client: aiocri.CRIClient, cid: str) -> None:
    status = await client.runtime.container_status(container_id=cid, verbose=True)
    reveal_type(status)
    reveal_type(status.status.state)
    reveal_type(status.info)
    listed = await client.runtime.list_containers(
        filter=ContainerFilter(state=ContainerStateValue(state=CONTAINER_RUNNING)))
    reveal_type(listed.containers)
    await client.runtime.exec_sync(container_id=cid, cmd=["true"])
    await client.image.pull_image(image=ImageSpec(image="busybox:1.36"))
    async for event in client.runtime.get_container_events():
        reveal_type(event)
    # meant to fail:
    await client.runtime.container_status(container_id=7)
    await client.runtime.container_status(container="x")
