"""CRIClient: the runtime and image services over one or two channel managers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import anyio

from aiocri.api import VersionResponse
from aiocri.channel import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ChannelManager,
    ConnectionEvent,
    ConnectionState,
    ConnectionStats,
    EventBroadcast,
    RedialPolicy,
)
from aiocri.endpoint import Endpoint, discover, parse_endpoint
from aiocri.errors import CRIError, RestartRequired
from aiocri.services import ImageService, RuntimeService
from aiocri.versions import CRIVersion, resolve_versions

__all__ = ["DEFAULT_IMAGE_PULL_TIMEOUT", "DEFAULT_TIMEOUT", "CRIClient", "connect"]

#: The kubelet's deadline for runtime calls.
DEFAULT_TIMEOUT = 120.0
#: Image pulls take longer; the kubelet gives them no deadline at all, we give 10 minutes.
DEFAULT_IMAGE_PULL_TIMEOUT = 600.0


class CRIClient:
    """A connected CRI client. Make one with :func:`connect`.

    ``runtime`` and ``image`` hold one typed async method per CRI RPC.
    """

    def __init__(
        self,
        runtime: ChannelManager,
        image: ChannelManager,
        *,
        timeout: float | None,
        image_pull_timeout: float | None,
    ) -> None:
        self._runtime_manager = runtime
        self._image_manager = image
        # Long-lived streams get no default deadline; the Stream* lists do.
        self.runtime = RuntimeService(
            runtime, timeout=timeout, timeouts={"GetContainerEvents": None}
        )
        self.image = ImageService(
            image, timeout=timeout, timeouts={"PullImage": image_pull_timeout}
        )

    # -- what was negotiated -----------------------------------------------------

    @property
    def runtime_version(self) -> VersionResponse:
        """The runtime's VersionResponse from the last version check."""
        response = self._runtime_manager.version_response
        assert response is not None
        return response

    @property
    def version(self) -> CRIVersion:
        """The CRI version pinned on the runtime endpoint."""
        pinned = self._runtime_manager.pinned
        assert pinned is not None
        return pinned

    @property
    def image_version(self) -> CRIVersion:
        """The CRI version pinned on the image endpoint (may differ)."""
        pinned = self._image_manager.pinned
        assert pinned is not None
        return pinned

    @property
    def separate_image_endpoint(self) -> bool:
        return self._image_manager is not self._runtime_manager

    # -- connection life ---------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """State of the runtime endpoint's connection."""
        return self._runtime_manager.state

    @property
    def image_state(self) -> ConnectionState:
        return self._image_manager.state

    @property
    def stats(self) -> ConnectionStats:
        return self._runtime_manager.stats

    @property
    def image_stats(self) -> ConnectionStats:
        return self._image_manager.stats

    def events(self) -> AsyncIterator[ConnectionEvent]:
        """Connection events of both endpoints (``event.endpoint`` tells which).

        Ends once either endpoint is terminal (restart required, or closed).
        """
        return self._runtime_manager.events()

    async def restart_required(self) -> RestartRequired:
        """Wait until either endpoint needs a client restart; return the error.

        Raises the closing error instead if the client is closed first.
        """
        managers = {self._runtime_manager, self._image_manager}
        result: list[CRIError] = []
        async with anyio.create_task_group() as tg:
            for manager in managers:

                async def wait(m: ChannelManager = manager) -> None:
                    error = await m.wait_terminal()
                    result.append(error)
                    tg.cancel_scope.cancel()

                tg.start_soon(wait)
        error = result[0]
        if isinstance(error, RestartRequired):
            return error
        raise error

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.separate_image_endpoint:
                await self._image_manager.close()
            await self._runtime_manager.close()

    async def __aenter__(self) -> CRIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def connect(
    runtime_endpoint: str | Endpoint | None = None,
    image_endpoint: str | Endpoint | None = None,
    *,
    versions: Iterable[str | CRIVersion] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    image_pull_timeout: float | None = DEFAULT_IMAGE_PULL_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    redial: RedialPolicy | None = None,
    on_version_loss: Literal["fail", "renegotiate"] = "fail",
    fail_fast: bool = False,
    allow_tcp: bool = False,
) -> AsyncIterator[CRIClient]:
    """Connect to a CRI runtime, negotiate and pin a version, and keep it connected.

    ``runtime_endpoint``: ``unix:///path``, an absolute path, or None to try
    the usual sockets (containerd, CRI-O, cri-dockerd) as crictl does.
    ``image_endpoint`` defaults to the runtime endpoint.
    ``versions``: the CRI versions to try, in order (default v1, then v1alpha2).
    ``timeout``: default deadline of each call (the kubelet's 2 minutes).
    ``on_version_loss``: "fail" (default, the kubelet's semantics: the client
    becomes RESTART_REQUIRED) or "renegotiate" (pin what the runtime now serves).
    ``fail_fast``: calls made while reconnecting fail at once instead of
    waiting for the redial up to their deadline.

        async with aiocri.connect("unix:///run/containerd/containerd.sock") as client:
            print(client.version, client.runtime_version.runtime_name)
    """
    order = resolve_versions(versions)
    runtime_ep = (
        discover() if runtime_endpoint is None
        else parse_endpoint(runtime_endpoint, allow_tcp=allow_tcp)
    )
    image_ep = (
        runtime_ep if image_endpoint is None
        else parse_endpoint(image_endpoint, allow_tcp=allow_tcp)
    )
    events = EventBroadcast()  # one stream of events for both endpoints

    def manager(endpoint: Endpoint, probe: Literal["Version", "ImageFsInfo"]) -> ChannelManager:
        return ChannelManager(
            endpoint,
            probe=probe,
            versions=order,
            max_message_size=max_message_size,
            policy=redial,
            on_version_loss=on_version_loss,
            fail_fast=fail_fast,
            events=events,
        )

    async with contextlib.AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(manager(runtime_ep, "Version"))
        image = runtime
        if image_ep != runtime_ep:
            # The kubelet checks a separate image endpoint with ImageFsInfo.
            image = await stack.enter_async_context(manager(image_ep, "ImageFsInfo"))
        client = CRIClient(runtime, image, timeout=timeout, image_pull_timeout=image_pull_timeout)
        async with client:
            yield client
