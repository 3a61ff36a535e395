"""A fake CRI runtime for tests and benchmarks: a real grpc.aio server on a unix socket.

In-process::

    async with FakeRuntime(sock, versions=("v1", "v1alpha2")) as rt:
        rt.populate(pods=10, containers_per_pod=3)
        ...  # point a client at rt.endpoint; rt.restart(), rt.kill(), rt.inject_errors(...)

In pytest, the plugin :mod:`aiocri.testing.pytest_plugin` (registered with the package)
gives the ``cri_runtime``, ``cri_client`` and ``cri_runtime_factory`` fixtures.

As a process (benchmarks, real SIGKILL): ``python -m aiocri.testing --socket PATH``
or :class:`FakeRuntimeProcess`.
"""

from aiocri.testing._exec import ExecHandler, ExecResult, default_exec_handler
from aiocri.testing._process import FakeRuntimeProcess
from aiocri.testing._state import (
    DEFAULT_IMAGES,
    Container,
    FakeState,
    Image,
    Pod,
    Populated,
    StatusError,
    normalize_ref,
)
from aiocri.testing._streaming import WEBSOCKET_PROTOCOLS, WEBSOCKET_V4
from aiocri.testing._wait import wait_for, wait_for_state
from aiocri.testing.fake_runtime import (
    DEFAULT_VERSIONS,
    FakeRuntime,
    churn,
    churn_once,
    main,
    serve,
)

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_VERSIONS",
    "WEBSOCKET_PROTOCOLS",
    "WEBSOCKET_V4",
    "Container",
    "ExecHandler",
    "ExecResult",
    "FakeRuntime",
    "FakeRuntimeProcess",
    "FakeState",
    "Image",
    "Pod",
    "Populated",
    "StatusError",
    "churn",
    "churn_once",
    "default_exec_handler",
    "main",
    "normalize_ref",
    "serve",
    "wait_for",
    "wait_for_state",
]
