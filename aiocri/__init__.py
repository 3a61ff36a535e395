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

import logging

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

# A library logs, the application decides where it goes (no lastResort output).
logging.getLogger("aiocri").addHandler(logging.NullHandler())

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
