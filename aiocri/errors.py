"""The exceptions aiocri raises: one tree rooted in :class:`CRIError`.

Each error keeps what the runtime said (gRPC code and details) plus where it
happened (endpoint, RPC), and its message ends with what to do about it.
Transport errors from grpc never escape: :func:`from_rpc_error` maps them.

The whole tree (all exported by ``aiocri`` too, as ``aiocri.NotFound``...):

    CRIError
    ├── EndpointError (also a ValueError)   the endpoint is malformed or not a socket
    ├── ConnectFailed                       no connection before the connect timeout
    │   └── NotACRIRuntime                  something answers, but not the CRI
    ├── NoSupportedVersion                  no CRI version both sides speak
    ├── ClientClosed                        the client was closed
    ├── InternalError                       aiocri's own bug; the client is closed
    ├── RestartRequired                     the runtime dropped the pinned version
    ├── RuntimeCallError                    a call failed with a gRPC status
    │   ├── NotFound                        NOT_FOUND
    │   ├── InvalidArgument                 INVALID_ARGUMENT, or refused before sending
    │   ├── Unavailable                     UNAVAILABLE
    │   ├── DeadlineExceeded                DEADLINE_EXCEEDED
    │   ├── MessageTooLarge                 RESOURCE_EXHAUSTED: a reply over the size limit
    │   └── Unsupported                     the RPC cannot be served
    │       ├── UnsupportedByVersion        not in the pinned CRI version (nothing sent)
    │       └── UnsupportedByRuntime        UNIMPLEMENTED
    ├── StreamingError                      exec, attach, port-forward sessions
    │   ├── UpgradeRefused                  the streaming server answered HTTP 4xx/5xx
    │   └── ExecFailed                      the command could not run
    └── LogError                            a container's log file cannot be read

Other gRPC codes (PERMISSION_DENIED, INTERNAL, UNKNOWN, FAILED_PRECONDITION...) raise
:class:`RuntimeCallError` itself: test ``error.code`` to tell them apart.

Every error carries these attributes:

- ``hint``: what to do about it, one sentence. Each class has its own (the message
  ends with it: ``str(error)`` is "what happened (where): the runtime's words; hint");
  some errors give a more precise one when they know more (a refused request says
  which field to fill).
- ``code``: the :class:`grpc.StatusCode` when a call answered, else None (errors
  raised before any call, or by a stream or a log file).
- ``details``: the runtime's own words ("" when there are none).
- ``method``: the RPC's name (``ContainerStatus``) when a call failed, else None.
- ``endpoint``: the runtime's endpoint (``unix:///run/containerd/containerd.sock``)
  when known, else None.
- ``message``: what happened, without the place, the details or the hint.

Catch the class that matches what the code can act on: ``NotFound`` to treat a
removed object as gone, ``Unavailable`` and ``DeadlineExceeded`` to retry later,
``RestartRequired`` and ``ClientClosed`` to make a new client, ``CRIError`` for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from aiocri.api import VersionResponse

__all__ = [
    "CRIError",
    "ClientClosed",
    "ConnectFailed",
    "DeadlineExceeded",
    "EndpointError",
    "ExecFailed",
    "InternalError",
    "InvalidArgument",
    "LogError",
    "MessageTooLarge",
    "NoSupportedVersion",
    "NotACRIRuntime",
    "NotFound",
    "RestartRequired",
    "RuntimeCallError",
    "StreamingError",
    "Unavailable",
    "Unsupported",
    "UnsupportedByRuntime",
    "UnsupportedByVersion",
    "UpgradeRefused",
    "from_rpc_error",
]


class CRIError(Exception):
    """Root of every aiocri error.

    ``code`` is the gRPC status code when the error came from a call (None for
    errors raised before any call), ``details`` the runtime's own words, ``method``
    the RPC's name and ``endpoint`` the runtime's endpoint (None when unknown);
    ``hint`` says what to do about it, and ends the message.
    """

    hint = "see the runtime's logs for the cause"
    """What the caller can do about this error, in one sentence; each subclass has its
    own, and an error may carry a more precise one (``hint=`` at construction)."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: str = "",
        endpoint: str | None = None,
        method: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.details = details
        self.endpoint = endpoint
        self.method = method
        if hint is not None:
            self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.method:
            where.append(self.method)
        if self.endpoint:
            where.append(f"on {self.endpoint}")
        text = self.message
        if where:
            text = f"{text} ({' '.join(where)})"
        if self.details and self.details not in text:
            text = f"{text}: {self.details}"
        return f"{text}; {self.hint}" if self.hint else text


# -- before any call ----------------------------------------------------------


class EndpointError(CRIError, ValueError):
    """The endpoint is malformed, missing, not a socket or not accessible."""

    hint = "pass a unix socket as unix:///path/to/runtime.sock or an absolute path"


class ConnectFailed(CRIError):
    """No connection could be made before the connect timeout."""

    hint = (
        "check that the runtime runs and listens on this socket, or allow more time with "
        "connect(..., redial=RedialPolicy(connect_timeout=...))"
    )


class NotACRIRuntime(ConnectFailed):
    """Something answers on the socket, but it does not speak the CRI."""

    hint = "point the client at the runtime's CRI socket (for containerd, its main gRPC socket)"


class NoSupportedVersion(CRIError):
    """No CRI version that both the client and the runtime speak.

    ``attempts`` maps each version tried to what the runtime answered.
    """

    hint = "upgrade the runtime to one that serves runtime.v1, or allow more versions"

    def __init__(self, message: str, *, attempts: dict[str, str], endpoint: str | None = None,
                 all_versions: bool = False):
        self.attempts = dict(attempts)
        tried = "; ".join(f"{v}: {answer}" for v, answer in attempts.items())
        hint = None
        if all_versions and all("UNIMPLEMENTED" in a for a in attempts.values()):
            # no CRI version at all: more likely another gRPC server than an old runtime
            message = ("this gRPC server serves no CRI version: it may not be a CRI runtime "
                       "at all (or one older than runtime.v1alpha2)")
            hint = ("point the client at the runtime's CRI socket (for containerd, its main "
                    "socket, with the CRI plugin enabled)")
        super().__init__(f"{message} (tried {tried})", endpoint=endpoint, hint=hint)


class ClientClosed(CRIError):
    """The client was closed; no call can be made through it any more."""

    hint = "open a new client with aiocri.connect()"


class InternalError(CRIError):
    """aiocri's own background work failed: a bug. The client is closed; the
    original exception is the ``__cause__``."""

    hint = "open a new client with aiocri.connect(), and report this with its traceback"


class RestartRequired(CRIError):
    """The runtime came back without the CRI version this client pinned.

    The kubelet's answer to this is to restart; so is ours. The client is now
    terminal: every pending and later call raises this.
    """

    hint = "restart the client (a new aiocri.connect() negotiates again)"

    def __init__(
        self,
        *,
        pinned: str,
        served: Sequence[str],
        endpoint: str | None = None,
        before: VersionResponse | None = None,
        after: VersionResponse | None = None,
    ) -> None:
        self.pinned = pinned
        self.served = tuple(served)
        self.before = before
        self.after = after
        now = ", ".join(self.served) or "no version aiocri knows"
        was = _describe(before)
        is_now = _describe(after)
        change = f" ({was} -> {is_now})" if was or is_now else ""
        super().__init__(
            f"runtime no longer serves the pinned CRI version {pinned}; it serves {now}{change}",
            endpoint=endpoint,
        )


def _describe(version: VersionResponse | None) -> str:
    if version is None:
        return ""
    return f"{version.runtime_name} {version.runtime_version}".strip()


# -- from a call --------------------------------------------------------------


class RuntimeCallError(CRIError):
    """A call failed; the runtime (or the transport) gave a status code.

    Raised as is for the codes without a class of their own (PERMISSION_DENIED,
    FAILED_PRECONDITION, INTERNAL, UNKNOWN, ALREADY_EXISTS...): ``code`` says which.
    """


class NotFound(RuntimeCallError):
    """The runtime has no such object (NOT_FOUND): a container, pod or image id or
    reference that was removed, never existed, or is misspelled.

    Containers and pods come and go: list again before acting on an id, and treat
    NotFound from a remove or stop as "already gone" where that is what you wanted.
    """

    hint = "the object may have been removed; list again before retrying"


class InvalidArgument(RuntimeCallError):
    """The request is malformed (INVALID_ARGUMENT): a field is missing or has a value
    the runtime refuses.

    aiocri raises it itself, before sending anything, for a request that names no
    object (an empty ``container_id``, ``pod_sandbox_id`` or image reference), which
    runtimes would otherwise resolve to one of their choice; the hint then says which
    field to fill. Retrying the same request fails the same way: fix it.
    """

    hint = "fix the request; the runtime rejected it as malformed"


class Unavailable(RuntimeCallError):
    """The runtime could not be reached for this call (UNAVAILABLE): it is restarting
    or stopped, or the connection broke while the call was in flight.

    The client redials on its own; by default a call made meanwhile waits for the
    redial (within its deadline), and a read-only call that broke in flight is sent
    again. A call that changes state and broke in flight raises this, since it may or
    may not have run: check the object's state before sending it again. With
    ``connect(..., fail_fast=True)`` calls made while reconnecting raise this at once.
    """

    hint = "the runtime is not reachable; the call may be retried once it is back"


class DeadlineExceeded(RuntimeCallError):
    """The call did not finish before its deadline (DEADLINE_EXCEEDED).

    Each call's deadline is its ``timeout=`` (by default the client's, 2 minutes, and
    longer for image pulls). The runtime may still complete the work: check before
    repeating a call that changes state, and raise ``timeout=`` for slow operations.
    """

    hint = "the call took longer than its deadline; raise timeout= or check the runtime's load"


class MessageTooLarge(RuntimeCallError):
    """The runtime's reply is larger than the client accepts (RESOURCE_EXHAUSTED, as
    grpc reports "message larger than max"): typically a list of thousands of
    containers or images.

    Raise ``max_message_size`` in :func:`aiocri.connect` (16 MiB by default, as the
    kubelet's), filter the list, or use the Stream* list RPCs where the runtime serves
    them (they send the list in several messages).
    """

    hint = (
        "raise max_message_size in aiocri.connect() (default 16 MiB), "
        "or use the Stream* list RPCs where the runtime has them"
    )


class Unsupported(RuntimeCallError):
    """The RPC cannot be served: by the pinned version or by the runtime."""


class UnsupportedByVersion(Unsupported):
    """The pinned CRI version has no such RPC; raised before any round trip."""

    hint = "this RPC needs runtime.v1; connect to a runtime that serves it"


class UnsupportedByRuntime(Unsupported):
    """The runtime answered UNIMPLEMENTED for this RPC."""

    hint = "this runtime does not implement this RPC; upgrade the runtime or avoid the call"


_BY_CODE: dict[grpc.StatusCode, type[RuntimeCallError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: UnsupportedByRuntime,
}


def from_rpc_error(
    err: grpc.RpcError, *, method: str | None = None, endpoint: str | None = None
) -> RuntimeCallError:
    """Map a grpc error to the matching :class:`CRIError` subclass."""
    has_status = isinstance(err, grpc.aio.AioRpcError | grpc.Call)
    code = err.code() if has_status else None
    details = (err.details() if has_status else "") or ""
    cls: type[RuntimeCallError] = RuntimeCallError
    if code is not None:
        cls = _BY_CODE.get(code, RuntimeCallError)
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in details:
            cls = MessageTooLarge
    name = code.name if code is not None else "UNKNOWN"
    return cls(f"CRI call failed with {name}", code=code, details=details,
               method=method, endpoint=endpoint)


class StreamingError(CRIError):
    """A streaming session (exec, attach, port-forward) failed or could not start."""

    hint = "start a new session (the runtime's streaming URLs are valid for one use)"


class UpgradeRefused(StreamingError):
    """The runtime's streaming server answered the upgrade with an HTTP error."""

    hint = (
        "the streaming URL may have expired or been used already, or the server does not "
        "speak this transport; start a new session or choose another transport"
    )

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ExecFailed(StreamingError):
    """The runtime could not run the command (it never started, or the session broke).

    ``exit_code`` is what a shell reports for the same cause (127 for a missing
    binary, 126 for one that cannot be executed), or None when there is no such code.
    """

    hint = "check the command and the container's image"

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LogError(CRIError):
    """A container's log file cannot be read."""

    hint = "check the path (ContainerStatus.log_path) and that this is the runtime's machine"
