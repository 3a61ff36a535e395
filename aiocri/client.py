"""CRIClient: the runtime and image services over one or two channel managers.

Its lifetime is like ``httpx.AsyncClient``'s: ``async with aiocri.connect(...) as
client:``, or ``client = await aiocri.connect(...)`` and later ``await
client.aclose()`` from any task. The user's code never runs inside a task group
of the library: what it raises leaves unchanged.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio

from aiocri._events import ConnectionEvent, ConnectionState, ConnectionStats, EventBroadcast
from aiocri._policy import RedialPolicy
from aiocri._timeouts import OPEN_TIMEOUT, check_id, check_positive_int, check_timeout
from aiocri.api import CONTAINER_RUNNING, VersionResponse
from aiocri.channel import DEFAULT_MAX_MESSAGE_SIZE, ChannelManager
from aiocri.endpoint import Endpoint, discover, parse_endpoint
from aiocri.errors import ClientClosed, CRIError, LogError, NotFound, RestartRequired
from aiocri.instrument import GuardedSessionObserver, Instrumentation, combine, guarded
from aiocri.services import ImageService, RuntimeService
from aiocri.versions import CRIVersion, resolve_versions

if TYPE_CHECKING:
    # Imported when first used: a program that never streams or reads logs (the
    # command's ps, a node agent) does not pay for websockets and the rest.
    from aiocri.logs import LogEntry, Stream
    from aiocri.streaming._open import Opening, R
    from aiocri.streaming._portforward import PortConnection, PortForwarder
    from aiocri.streaming._session import StreamSession
    from aiocri.streaming._transports import TransportName

__all__ = ["DEFAULT_IMAGE_PULL_TIMEOUT", "DEFAULT_TIMEOUT", "CRIClient", "connect"]

#: The kubelet's deadline for runtime calls.
DEFAULT_TIMEOUT = 120.0
#: Image pulls take longer; the kubelet gives them no deadline at all, we give 10 minutes.
DEFAULT_IMAGE_PULL_TIMEOUT = 600.0


class CRIClient:
    """A CRI client. Make one with :func:`connect`.

    ``runtime`` and ``image`` hold one typed async method per CRI RPC. The client
    owns a supervisor task per endpoint; :meth:`aclose` ends them.
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
        self._opened = False
        self._closed = False
        #: streaming sessions and forwarders opened through this client: closed with it
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        # Long-lived streams get no default deadline; the Stream* lists do.
        self.runtime = RuntimeService(
            runtime, timeout=timeout, timeouts={"GetContainerEvents": None}
        )
        self.image = ImageService(
            image, timeout=timeout, timeouts={"PullImage": image_pull_timeout}
        )

    # -- lifetime ------------------------------------------------------------------

    async def open(self) -> CRIClient:
        """Dial and negotiate both endpoints (:func:`connect` does this for you)."""
        if self._closed:
            raise ClientClosed("the client was closed before it was opened")
        if self._opened:
            raise RuntimeError("the client is already open")
        self._opened = True
        try:
            await self._runtime_manager.open()
            if self.separate_image_endpoint:
                await self._image_manager.open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close the client: calls waiting or in flight raise :class:`ClientClosed`,
        background tasks end, channels close. Safe from any task, and more than once."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            for resource in list(self._streams):
                with contextlib.suppress(Exception):
                    await resource.aclose()
            if self.separate_image_endpoint:
                await self._image_manager.aclose()
            await self._runtime_manager.aclose()

    #: Same as :meth:`aclose`.
    close = aclose

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> CRIClient:
        if not self._opened:
            await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # -- what was negotiated -----------------------------------------------------

    @property
    def runtime_version(self) -> VersionResponse:
        """The runtime's VersionResponse from the last version check."""
        response = self._runtime_manager.version_response
        if response is None:
            raise ClientClosed("the client is not connected")
        return response

    @property
    def version(self) -> CRIVersion:
        """The CRI version pinned on the runtime endpoint."""
        return self._pinned(self._runtime_manager)

    @property
    def image_version(self) -> CRIVersion:
        """The CRI version pinned on the image endpoint (may differ)."""
        return self._pinned(self._image_manager)

    @staticmethod
    def _pinned(manager: ChannelManager) -> CRIVersion:
        pinned = manager.pinned
        if pinned is None:
            raise ClientClosed("the client is not connected", endpoint=str(manager.endpoint))
        return pinned

    @property
    def endpoint(self) -> str:
        """The runtime endpoint, as a URL (``unix:///run/containerd/containerd.sock``)."""
        return str(self._runtime_manager.endpoint)

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
    def generation(self) -> int:
        """The runtime connection's generation: grows by one on every successful
        connect, redial or renegotiation (compare two readings to see a reconnect)."""
        return self._runtime_manager.generation

    @property
    def image_generation(self) -> int:
        return self._image_manager.generation

    @property
    def stats(self) -> ConnectionStats:
        return self._runtime_manager.stats

    @property
    def image_stats(self) -> ConnectionStats:
        return self._image_manager.stats

    def events(self) -> AsyncIterator[ConnectionEvent]:
        """Connection events of both endpoints (``event.endpoint`` tells which),
        from the moment this is called. Ends once either endpoint is terminal."""
        return self._runtime_manager.events()

    @property
    def terminal_error(self) -> CRIError | None:
        """The error every call now raises, once the client is terminal (else None)."""
        for manager in (self._runtime_manager, self._image_manager):
            if manager.terminal_error is not None:
                return manager.terminal_error
        return None

    async def restart_required(self) -> RestartRequired:
        """Wait until either endpoint needs a client restart; return the error.

        Raises the client's terminal error instead (ClientClosed, ConnectFailed,
        InternalError) if it ends another way first.
        """
        error = self.terminal_error
        while error is None:
            async with anyio.create_task_group() as tg:
                for manager in {self._runtime_manager, self._image_manager}:

                    async def wait(m: ChannelManager = manager) -> None:
                        await m.wait_terminal()
                        tg.cancel_scope.cancel()

                    tg.start_soon(wait)
            error = self.terminal_error
        if isinstance(error, RestartRequired):
            return error
        raise error

    # -- streaming (exec, attach, port-forward) ---------------------------------------

    def exec_stream(
        self, container_id: str, cmd: Sequence[str], *, stdin: bool = False,
        stdout: bool = True, stderr: bool | None = None, tty: bool = False,
        transport: TransportName = "auto", timeout: float | None = OPEN_TIMEOUT,
    ) -> Opening[StreamSession]:
        """Run ``cmd`` in a container with streams attached (``kubectl exec``).

        ``stderr`` defaults to ``not tty`` (a terminal merges the two). Use as
        ``async with client.exec_stream(...) as session`` or ``await`` it and
        ``aclose()`` the session. ``timeout`` bounds the start only, not the session.
        """
        from aiocri.streaming._open import exec_session

        return self._owned(exec_session(
            self.runtime, container_id, cmd, stdin=stdin, stdout=stdout, stderr=stderr,
            tty=tty, transport=transport, timeout=timeout), "exec")

    def attach_stream(
        self, container_id: str, *, stdin: bool = False, stdout: bool = True,
        stderr: bool | None = None, tty: bool = False, transport: TransportName = "auto",
        timeout: float | None = OPEN_TIMEOUT,
    ) -> Opening[StreamSession]:
        """Attach to a running container's main process (``kubectl attach``)."""
        from aiocri.streaming._open import attach_session

        return self._owned(attach_session(
            self.runtime, container_id, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty,
            transport=transport, timeout=timeout), "attach")

    def port_forward(
        self, pod_id: str, port: int, *, transport: TransportName = "auto",
        timeout: float | None = OPEN_TIMEOUT,
    ) -> Opening[PortConnection]:
        """One TCP connection to ``port`` inside a pod: ``read()``, ``write()``,
        ``close_write()``; ``async with`` closes it."""
        from aiocri.streaming._open import port_connection

        return self._owned(port_connection(
            self.runtime, pod_id, port, transport=transport, timeout=timeout), "portforward")

    def forward_port(
        self, pod_id: str, remote_port: int, *, local_port: int = 0,
        host: str = "127.0.0.1", transport: TransportName = "auto",
        timeout: float | None = OPEN_TIMEOUT,
    ) -> Opening[PortForwarder]:
        """Listen on ``host:local_port`` (0: any free port, see ``.port``) and forward
        each accepted connection to ``remote_port`` in the pod (``kubectl port-forward``)."""
        from aiocri.streaming._open import forward_port

        return self._owned(forward_port(
            self.runtime, pod_id, remote_port, local_port=local_port, host=host,
            transport=transport, timeout=timeout), "portforward")

    def _owned(self, opening: Opening[R], kind: str) -> Opening[R]:
        """Sessions close with the client, and none opens once it is closed."""
        instrumentation = self._runtime_manager.instrumentation
        if instrumentation is not None:
            observer = guarded(instrumentation.session, kind, self.endpoint, default=None)
            if observer is not None:
                opening.observed_by(GuardedSessionObserver(observer))
        return opening.owned_by(self._streams, lambda: self._closed)

    @property
    def instrumentation(self) -> Instrumentation | None:
        """What was given to :func:`connect` as ``instrumentation`` (combined), or None."""
        return self._runtime_manager.instrumentation

    # -- logs -------------------------------------------------------------------------

    def container_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None,
        since: datetime | None = None, streams: Iterable[Stream] = ("stdout", "stderr"),
        limit_bytes: int | None = None, previous: bool = False,
    ) -> AsyncGenerator[LogEntry, None]:
        """A container's log lines (see :func:`aiocri.logs.read_log`), from the file its
        status names; ``previous``: the attempt before this one (``crictl logs -p``).
        Following ends once the container is no longer running. Reads the file
        directly, so it works on the runtime's own machine only. Wrong arguments raise
        at once, before any call to the runtime."""
        from aiocri.logs import log_filter

        check_id("container_id", container_id)
        if not isinstance(streams, str):  # log_filter refuses a str; an iterator is read once
            streams = tuple(streams)
        log_filter(tail=tail, since=since, streams=streams, limit_bytes=limit_bytes)
        return self._container_logs(container_id, follow=follow, tail=tail, since=since,
                                    streams=streams, limit_bytes=limit_bytes,
                                    previous=previous)

    async def _container_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: datetime | None,
        streams: Iterable[Stream], limit_bytes: int | None, previous: bool,
    ) -> AsyncGenerator[LogEntry, None]:
        status = (await self.runtime.container_status(container_id=container_id)).status
        path = status.log_path
        if not path:
            raise LogError(f"the runtime reports no log file for container {container_id}",
                           hint="the pod sandbox may have been created without log_directory")
        if previous:
            path = _previous_log(path, container_id, status.metadata.attempt)

        async def still_running() -> bool:
            try:
                now = await self.runtime.container_status(container_id=container_id,
                                                          timeout=2.0)
            except NotFound:
                return False
            except CRIError:
                if self._closed or self.terminal_error is not None:
                    raise
                return True  # the runtime is restarting: the file itself is fine
            return now.status.state == CONTAINER_RUNNING

        from aiocri.logs import read_log

        async with contextlib.aclosing(read_log(
                path, follow=follow and not previous, tail=tail, since=since, streams=streams,
                limit_bytes=limit_bytes, still_running=still_running)) as entries:
            async for entry in entries:
                if self._closed:
                    raise ClientClosed("the client was closed while reading logs")
                yield entry

def _previous_log(path: str, container_id: str, attempt: int) -> str:
    """The log of the attempt before, where the kubelet's ``<attempt>.log`` naming holds."""
    folder, _, name = path.rpartition("/")
    if attempt == 0:
        raise LogError(f"container {container_id} has no previous attempt",
                       hint="drop previous=True (-p)")
    if name != f"{attempt}.log":
        raise LogError(f"cannot tell the previous attempt's log from {path} (not the "
                       "kubelet's <attempt>.log naming)", hint="read that file by its path")
    return f"{folder}/{attempt - 1}.log"


class _Connect:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, client: CRIClient) -> None:
        self._client = client

    def __await__(self) -> Generator[Any, None, CRIClient]:
        return self._client.open().__await__()

    async def __aenter__(self) -> CRIClient:
        return await self._client.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._client.aclose()


def connect(
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
    instrumentation: Instrumentation | Iterable[Instrumentation] | None = None,
) -> _Connect:
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
    ``instrumentation``: metrics and traces, e.g.
    ``aiocri.metrics.PrometheusMetrics()`` or ``aiocri.tracing.OpenTelemetry()``, or a
    list of them (see :mod:`aiocri.instrument`); pollers over the client use it too.

        async with aiocri.connect("unix:///run/containerd/containerd.sock") as client:
            print(client.version, client.runtime_version.runtime_name)

        client = await aiocri.connect(...)   # or open and close it yourself,
        await client.aclose()                # from any task

    Wrong arguments raise at once, naming the argument (TypeError, ValueError, or
    EndpointError for a bad endpoint). A timeout beyond what grpc can hold
    (about 31 years, ``math.inf`` included) means no deadline.
    """
    order = resolve_versions(versions)
    timeout = check_timeout("timeout", timeout, zero=False)
    image_pull_timeout = check_timeout("image_pull_timeout", image_pull_timeout, zero=False)
    max_message_size = check_positive_int("max_message_size", max_message_size)
    if redial is not None and not isinstance(redial, RedialPolicy):
        raise TypeError(f"redial must be a RedialPolicy or None, not {redial!r}")
    for name, flag in (("fail_fast", fail_fast), ("allow_tcp", allow_tcp)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, not {flag!r}")
    if on_version_loss not in ("fail", "renegotiate"):
        raise ValueError(f"on_version_loss must be 'fail' or 'renegotiate', "
                         f"not {on_version_loss!r}")
    runtime_ep = (
        discover() if runtime_endpoint is None
        else parse_endpoint(runtime_endpoint, allow_tcp=allow_tcp)
    )
    image_ep = (
        runtime_ep if image_endpoint is None
        else parse_endpoint(image_endpoint, allow_tcp=allow_tcp)
    )
    instruments = combine(instrumentation)
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
            instrumentation=instruments,
        )

    runtime = manager(runtime_ep, "Version")
    # The kubelet checks a separate image endpoint with ImageFsInfo.
    image = runtime if image_ep == runtime_ep else manager(image_ep, "ImageFsInfo")
    return _Connect(CRIClient(runtime, image, timeout=timeout,
                              image_pull_timeout=image_pull_timeout))
