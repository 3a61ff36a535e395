"""RuntimeService and ImageService: one typed async method per CRI RPC.

Each method is one line: a descriptor naming the request and response types.
At import time the descriptor checks itself against the protobuf service
descriptors (name, types, streaming), and tests check that every RPC has one,
so the table cannot drift from the schema. All calls go through the channel
manager's single invoke path (pinned version, deadline, errors, cancellation).

    status = await client.runtime.container_status(ContainerStatusRequest(container_id=cid))
    async for event in client.runtime.get_container_events():
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

import grpc
from google.protobuf.message import Message

from aiocri import api
from aiocri._rpc import RPC, RPCS, snake_case
from aiocri.errors import InvalidArgument

if TYPE_CHECKING:
    from aiocri._proto.signatures import ImageServiceMethods, RuntimeServiceMethods
    from aiocri.channel import ChannelManager
else:  # the typed signatures are for type checkers; the descriptors below implement them
    ImageServiceMethods = RuntimeServiceMethods = object

__all__ = ["ImageService", "RuntimeService"]

Req = TypeVar("Req", bound=Message, contravariant=True)
Resp = TypeVar("Resp", bound=Message, covariant=True)
ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)

#: Use the service's default deadline (see CRIClient: 2 min, image pulls longer).
DEFAULT: Any = object()


class UnaryMethod(Protocol[Req, Resp]):
    def __call__(self, request: Req | None = None, /, *, timeout: float | None = ...) -> (
        Awaitable[Resp]
    ): ...


class StreamMethod(Protocol[Req, Resp]):
    def __call__(self, request: Req | None = None, /, *, timeout: float | None = ...) -> (
        AsyncIterator[Resp]
    ): ...


class _Service:
    """Base of the two services: binds RPC descriptors to a channel manager."""

    _service_name: str
    _rpcs: dict[str, RPC]

    def __init__(self, manager: ChannelManager, *, timeout: float | None,
                 timeouts: dict[str, float | None] | None = None) -> None:
        self._manager = manager
        self._timeout = timeout
        self._timeouts = timeouts or {}

    def _deadline(self, rpc: RPC) -> float | None:
        return self._timeouts.get(rpc.name, self._timeout)

    def invoke(self, name: str, request: Message | None = None, *, timeout: float | None = DEFAULT,
               decode: Callable[[bytes], Any] | None = None) -> Any:
        """Call an RPC by its CRI name ("ListContainers"): a coroutine for a unary RPC,
        an async iterator for a streaming one.

        ``decode`` parses each response from its bytes instead of the RPC's own
        message class (the poller's lean list entries, :mod:`aiocri._lean`).
        """
        rpc = self._rpcs.get(name)
        if rpc is None:
            raise ValueError(f"{type(self).__name__} has no RPC named {name!r}")
        invoke = self._manager.stream if rpc.server_streaming else self._manager.unary
        return invoke(rpc, request, self._deadline(rpc) if timeout is DEFAULT else timeout,
                      decode)


#: The RPCs by the name of their method (``container_status``), filled on first use.
_BY_ATTR: dict[str, list[RPC]] = {}


class _RPCDescriptor(Generic[ReqT, RespT]):
    streaming = False

    def __init__(self, request_type: type[ReqT], response_type: type[RespT]) -> None:
        self._types = (request_type, response_type)
        self.rpc: RPC

    def __set_name__(self, owner: type[_Service], attr: str) -> None:
        if not _BY_ATTR:  # once: 45 descriptors each scanning 45 RPCs cost ~3 ms an import
            for r in RPCS.values():
                _BY_ATTR.setdefault(snake_case(r.name), []).append(r)
        matches = _BY_ATTR.get(attr, [])
        if len(matches) != 1:
            raise TypeError(f"{owner.__name__}.{attr} matches no CRI RPC")
        rpc = matches[0]
        expected = (rpc.request_type, rpc.response_type)
        if (rpc.service != owner._service_name or self._types != expected
                or rpc.server_streaming != self.streaming):
            raise TypeError(f"{owner.__name__}.{attr} disagrees with the schema of {rpc.name}")
        self.rpc = rpc
        self.attr = attr
        if "_rpcs" not in owner.__dict__:
            owner._rpcs = {}
        owner._rpcs[rpc.name] = rpc

    def _bind(self, service: _Service) -> Any:
        """The method for one service object, cached in its __dict__ (bound once)."""
        rpc, default = self.rpc, service._deadline(self.rpc)
        invoke = service._manager.stream if self.streaming else service._manager.unary
        check = _RequestCheck(self.attr, self._types[0])
        streaming = self.streaming

        def call(request: Message | None = None, /, *, timeout: float | None = DEFAULT,
                 **fields: Any) -> Any:
            request = check.build(request, fields, timeout is not DEFAULT)
            refused = check.refusal(request)
            if refused is not None:  # raised where the call is awaited, as the runtime's is
                return _raise_iter(refused) if streaming else _raise(refused)
            return invoke(rpc, request, default if timeout is DEFAULT else timeout)

        call.__name__ = self.attr
        verb = "Open" if self.streaming else "Send"
        call.__doc__ = f"{verb} {rpc.service}.{rpc.name} (deadline: timeout=, default {default} s)."
        service.__dict__[self.attr] = call
        return call


#: Top-level request fields that name one object: empty, they would let the runtime pick
#: one (containerd resolves an empty image reference to the only image it has).
_REQUIRED_IDS = ("container_id", "pod_sandbox_id")


class _RequestCheck:
    """Builds the request from keywords; wrong arguments fail at the call (TypeError),
    references that must not be sent fail where the call is awaited (InvalidArgument)."""

    def __init__(self, method: str, request_type: type[Message]) -> None:
        self.method = method
        self.request_type = request_type
        fields = request_type.DESCRIPTOR.fields_by_name
        self.ids = [name for name in _REQUIRED_IDS if name in fields]
        image = fields.get("image")
        self.image = image is not None and image.message_type is api.ImageSpec.DESCRIPTOR
        # CreateContainer: the image to run is config.image
        self.config_image = "config" in fields and (
            fields["config"].message_type is api.ContainerConfig.DESCRIPTOR)
        self.repeated = frozenset(  # lists, not maps (a str would become its characters)
            name for name, f in fields.items() if f.is_repeated
            and not (f.message_type is not None and f.message_type.GetOptions().map_entry))
        self.own_timeout = "timeout" in fields
        self.example = next(iter(fields), "")

    def build(self, request: Message | None, fields: dict[str, Any], deadline_given: bool
              ) -> Message | None:
        if fields:
            if request is not None:
                raise TypeError(f"{self.method}() takes a request or keyword fields, not both")
            if self.own_timeout and deadline_given:
                raise TypeError(
                    f"{self.method}(): timeout= is the call's deadline, and "
                    f"{self.request_type.__name__} has a timeout of its own: pass the "
                    f"request message, e.g. {self.request_type.__name__}(..., timeout=30)")
            for name in self.repeated.intersection(fields):
                if isinstance(fields[name], (str, bytes)):
                    raise TypeError(f"{self.method}(): {name} takes a list, not a "
                                    f"{type(fields[name]).__name__} (e.g. {name}=['ls', '-l'])")
            try:
                request = self.request_type(**fields)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{self.method}(): {exc}") from None
        elif request is not None and not isinstance(request, self.request_type):
            keyword = f" or keyword fields ({self.example}=...)" if self.example else ""
            raise TypeError(f"{self.method}() takes a {self.request_type.__name__}{keyword}, "
                            f"not {type(request).__name__}")
        return request

    def refusal(self, request: Message | None) -> InvalidArgument | None:
        """Why ``request`` must not be sent, or None."""
        if not (self.ids or self.image or self.config_image):
            return None
        for name in self.ids:
            value = getattr(request, name, "") if request is not None else ""
            if not value.strip():
                return self._refused(f"{name} is empty",
                                     f"pass the {name.replace('_', ' ')} to act on")
        spec: Any = None
        if self.image:
            spec = getattr(request, "image", None) if request is not None else None
        elif self.config_image:
            config = getattr(request, "config", None) if request is not None else None
            spec = config.image if config is not None else None
        if (self.image or self.config_image) and (spec is None or not spec.image.strip()):
            return self._refused(
                "the image reference is empty (runtimes resolve an empty reference to an "
                "image of their choice)", "pass the image reference, e.g. busybox:1.36")
        return None

    def _refused(self, what: str, hint: str) -> InvalidArgument:
        return InvalidArgument(f"{self.method}: {what}; nothing was sent",
                               code=grpc.StatusCode.INVALID_ARGUMENT, hint=hint)


async def _raise(error: BaseException) -> Any:
    raise error


async def _raise_iter(error: BaseException) -> AsyncIterator[Any]:
    raise error
    yield  # pragma: no cover  (makes this an async generator)


class _Unary(_RPCDescriptor[ReqT, RespT]):
    @overload
    def __get__(self, obj: None, owner: type[_Service]) -> _Unary[ReqT, RespT]: ...
    @overload
    def __get__(self, obj: _Service, owner: type[_Service]) -> UnaryMethod[ReqT, RespT]: ...
    def __get__(self, obj: _Service | None, owner: type[_Service]) -> Any:
        return self if obj is None else self._bind(obj)


class _Stream(_RPCDescriptor[ReqT, RespT]):
    streaming = True

    @overload
    def __get__(self, obj: None, owner: type[_Service]) -> _Stream[ReqT, RespT]: ...
    @overload
    def __get__(self, obj: _Service, owner: type[_Service]) -> StreamMethod[ReqT, RespT]: ...
    def __get__(self, obj: _Service | None, owner: type[_Service]) -> Any:
        return self if obj is None else self._bind(obj)


def unary(request_type: type[ReqT], response_type: type[RespT]) -> _Unary[ReqT, RespT]:
    return _Unary(request_type, response_type)


def stream(request_type: type[ReqT], response_type: type[RespT]) -> _Stream[ReqT, RespT]:
    return _Stream(request_type, response_type)


class RuntimeService(_Service, RuntimeServiceMethods):
    """Pods, containers, exec endpoints, stats, events and runtime status.

    Each method takes a request message, or its fields as keywords:
    ``container_status(ContainerStatusRequest(container_id=cid))`` or
    ``container_status(container_id=cid)``; it returns the whole response.
    """

    _service_name = "RuntimeService"

    if not TYPE_CHECKING:  # type checkers see RuntimeServiceMethods' signatures
        version = unary(api.VersionRequest, api.VersionResponse)
        run_pod_sandbox = unary(api.RunPodSandboxRequest, api.RunPodSandboxResponse)
        stop_pod_sandbox = unary(api.StopPodSandboxRequest, api.StopPodSandboxResponse)
        remove_pod_sandbox = unary(api.RemovePodSandboxRequest, api.RemovePodSandboxResponse)
        pod_sandbox_status = unary(api.PodSandboxStatusRequest, api.PodSandboxStatusResponse)
        list_pod_sandbox = unary(api.ListPodSandboxRequest, api.ListPodSandboxResponse)
        stream_pod_sandboxes = stream(api.StreamPodSandboxesRequest, api.StreamPodSandboxesResponse)
        create_container = unary(api.CreateContainerRequest, api.CreateContainerResponse)
        start_container = unary(api.StartContainerRequest, api.StartContainerResponse)
        stop_container = unary(api.StopContainerRequest, api.StopContainerResponse)
        remove_container = unary(api.RemoveContainerRequest, api.RemoveContainerResponse)
        list_containers = unary(api.ListContainersRequest, api.ListContainersResponse)
        stream_containers = stream(api.StreamContainersRequest, api.StreamContainersResponse)
        container_status = unary(api.ContainerStatusRequest, api.ContainerStatusResponse)
        update_container_resources = unary(
            api.UpdateContainerResourcesRequest, api.UpdateContainerResourcesResponse
        )
        reopen_container_log = unary(api.ReopenContainerLogRequest, api.ReopenContainerLogResponse)
        exec_sync = unary(api.ExecSyncRequest, api.ExecSyncResponse)
        exec = unary(api.ExecRequest, api.ExecResponse)
        attach = unary(api.AttachRequest, api.AttachResponse)
        port_forward = unary(api.PortForwardRequest, api.PortForwardResponse)
        container_stats = unary(api.ContainerStatsRequest, api.ContainerStatsResponse)
        list_container_stats = unary(api.ListContainerStatsRequest, api.ListContainerStatsResponse)
        stream_container_stats = stream(
            api.StreamContainerStatsRequest, api.StreamContainerStatsResponse
        )
        pod_sandbox_stats = unary(api.PodSandboxStatsRequest, api.PodSandboxStatsResponse)
        list_pod_sandbox_stats = unary(
            api.ListPodSandboxStatsRequest, api.ListPodSandboxStatsResponse
        )
        stream_pod_sandbox_stats = stream(
            api.StreamPodSandboxStatsRequest, api.StreamPodSandboxStatsResponse
        )
        update_runtime_config = unary(
            api.UpdateRuntimeConfigRequest, api.UpdateRuntimeConfigResponse
        )
        status = unary(api.StatusRequest, api.StatusResponse)
        checkpoint_container = unary(
            api.CheckpointContainerRequest, api.CheckpointContainerResponse
        )
        checkpoint_pod = unary(api.CheckpointPodRequest, api.CheckpointPodResponse)
        restore_pod = unary(api.RestorePodRequest, api.RestorePodResponse)
        get_container_events = stream(api.GetEventsRequest, api.ContainerEventResponse)
        list_metric_descriptors = unary(
            api.ListMetricDescriptorsRequest, api.ListMetricDescriptorsResponse
        )
        list_pod_sandbox_metrics = unary(
            api.ListPodSandboxMetricsRequest, api.ListPodSandboxMetricsResponse
        )
        stream_pod_sandbox_metrics = stream(
            api.StreamPodSandboxMetricsRequest, api.StreamPodSandboxMetricsResponse
        )
        runtime_config = unary(api.RuntimeConfigRequest, api.RuntimeConfigResponse)
        update_pod_sandbox_resources = unary(
            api.UpdatePodSandboxResourcesRequest, api.UpdatePodSandboxResourcesResponse
        )


class ImageService(_Service, ImageServiceMethods):
    """Images: list, status, pull, remove, filesystem usage (requests or keywords)."""

    _service_name = "ImageService"

    if not TYPE_CHECKING:  # type checkers see ImageServiceMethods' signatures
        list_images = unary(api.ListImagesRequest, api.ListImagesResponse)
        stream_images = stream(api.StreamImagesRequest, api.StreamImagesResponse)
        image_status = unary(api.ImageStatusRequest, api.ImageStatusResponse)
        pull_image = unary(api.PullImageRequest, api.PullImageResponse)
        remove_image = unary(api.RemoveImageRequest, api.RemoveImageResponse)
        image_fs_info = unary(api.ImageFsInfoRequest, api.ImageFsInfoResponse)
