"""aiocri: an asyncio client for the Kubernetes Container Runtime Interface.

    import aiocri
    from aiocri.api import ListContainersRequest

    async with aiocri.connect("unix:///run/containerd/containerd.sock") as client:
        print(client.version)                  # pinned CRI version: v1 or v1alpha2
        containers = await client.runtime.list_containers()

The client negotiates the CRI version like the kubelet (v1, then v1alpha2),
pins it, redials after a runtime restart, re-checks the pinned version, and
raises :class:`RestartRequired` when the upgraded runtime dropped it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (the command's --help)
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from aiocri._events import ConnectionEvent, ConnectionState, ConnectionStats
    from aiocri._policy import RedialPolicy
    from aiocri.client import CRIClient, connect
    from aiocri.convert import from_dict, to_dict, to_json
    from aiocri.endpoint import Endpoint, parse_endpoint
    from aiocri.errors import (
        ClientClosed,
        ConnectFailed,
        CRIError,
        DeadlineExceeded,
        EndpointError,
        ExecFailed,
        InternalError,
        InvalidArgument,
        LogError,
        MessageTooLarge,
        NoSupportedVersion,
        NotACRIRuntime,
        NotFound,
        RestartRequired,
        RuntimeCallError,
        StreamingError,
        Unavailable,
        Unsupported,
        UnsupportedByRuntime,
        UnsupportedByVersion,
        UpgradeRefused,
    )
    from aiocri.instrument import Instrumentation
    from aiocri.poller import EventKind, LifecycleEvent, Poller
    from aiocri.services import ImageService, RuntimeService
    from aiocri.versions import V1, V1ALPHA2, CRIVersion

__version__ = "0.1.0"

__all__ = [
    "V1",
    "V1ALPHA2",
    "CRIClient",
    "CRIError",
    "CRIVersion",
    "ClientClosed",
    "ConnectFailed",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionStats",
    "DeadlineExceeded",
    "Endpoint",
    "EndpointError",
    "EventKind",
    "ExecFailed",
    "ImageService",
    "Instrumentation",
    "InternalError",
    "InvalidArgument",
    "LifecycleEvent",
    "LogError",
    "MessageTooLarge",
    "NoSupportedVersion",
    "NotACRIRuntime",
    "NotFound",
    "Poller",
    "RedialPolicy",
    "RestartRequired",
    "RuntimeCallError",
    "RuntimeService",
    "StreamingError",
    "Unavailable",
    "Unsupported",
    "UnsupportedByRuntime",
    "UnsupportedByVersion",
    "UpgradeRefused",
    "connect",
    "from_dict",
    "parse_endpoint",
    "to_dict",
    "to_json",
]

#: Where each name of ``__all__`` lives. ``import aiocri`` imports none of them (and so
#: neither grpc nor protobuf): a name is imported on first use. This is what lets the
#: ``aiocri`` command (:mod:`aiocri._command`) set GRPC_VERBOSITY before grpc loads.
_LAZY = {
    "ConnectionEvent": "aiocri._events",
    "ConnectionState": "aiocri._events",
    "ConnectionStats": "aiocri._events",
    "RedialPolicy": "aiocri._policy",
    "CRIClient": "aiocri.client",
    "connect": "aiocri.client",
    "from_dict": "aiocri.convert",
    "to_dict": "aiocri.convert",
    "to_json": "aiocri.convert",
    "Endpoint": "aiocri.endpoint",
    "parse_endpoint": "aiocri.endpoint",
    "ClientClosed": "aiocri.errors",
    "ConnectFailed": "aiocri.errors",
    "CRIError": "aiocri.errors",
    "DeadlineExceeded": "aiocri.errors",
    "EndpointError": "aiocri.errors",
    "ExecFailed": "aiocri.errors",
    "InternalError": "aiocri.errors",
    "InvalidArgument": "aiocri.errors",
    "LogError": "aiocri.errors",
    "MessageTooLarge": "aiocri.errors",
    "NoSupportedVersion": "aiocri.errors",
    "NotACRIRuntime": "aiocri.errors",
    "NotFound": "aiocri.errors",
    "RestartRequired": "aiocri.errors",
    "RuntimeCallError": "aiocri.errors",
    "StreamingError": "aiocri.errors",
    "Unavailable": "aiocri.errors",
    "Unsupported": "aiocri.errors",
    "UnsupportedByRuntime": "aiocri.errors",
    "UnsupportedByVersion": "aiocri.errors",
    "UpgradeRefused": "aiocri.errors",
    "Instrumentation": "aiocri.instrument",
    "EventKind": "aiocri.poller",
    "LifecycleEvent": "aiocri.poller",
    "Poller": "aiocri.poller",
    "ImageService": "aiocri.services",
    "RuntimeService": "aiocri.services",
    "V1": "aiocri.versions",
    "V1ALPHA2": "aiocri.versions",
    "CRIVersion": "aiocri.versions",
}


if not TYPE_CHECKING:  # type checkers see the imports above

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            globals()[name] = value
            return value
        if not name.startswith("__"):  # a submodule not imported yet: aiocri.logs
            try:
                return importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
