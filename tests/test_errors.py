from __future__ import annotations

import grpc
import grpc.aio
import pytest

from aiocri import errors
from aiocri.api import VersionResponse


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, "container \"x\": not found", errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, "empty id", errors.InvalidArgument),
        (grpc.StatusCode.UNAVAILABLE, "connection refused", errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.DeadlineExceeded),
        (grpc.StatusCode.UNIMPLEMENTED, "unknown method", errors.UnsupportedByRuntime),
        (grpc.StatusCode.RESOURCE_EXHAUSTED,
         "Received message larger than max (20000000 vs. 16777216)", errors.MessageTooLarge),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", errors.RuntimeCallError),
        (grpc.StatusCode.INTERNAL, "boom", errors.RuntimeCallError),
    ],
)
def test_mapping_keeps_code_details_and_says_what_to_do(
    code: grpc.StatusCode, details: str, cls: type[errors.CRIError]
) -> None:
    err = errors.from_rpc_error(_rpc_error(code, details), method="ListContainers",
                                endpoint="unix:///x.sock")
    assert type(err) is cls
    assert isinstance(err, errors.CRIError)
    assert err.code is code and err.details == details
    text = str(err)
    assert "ListContainers" in text and "unix:///x.sock" in text and details in text
    assert err.hint and text.endswith(err.hint)


def test_message_too_large_says_what_to_raise() -> None:
    err = errors.from_rpc_error(
        _rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Sent message larger than max (1 vs. 0)")
    )
    assert "max_message_size" in str(err)


def test_restart_required_names_versions_and_runtimes() -> None:
    err = errors.RestartRequired(
        pinned="v1alpha2", served=["v1"], endpoint="unix:///r.sock",
        before=VersionResponse(runtime_name="containerd", runtime_version="1.6.20"),
        after=VersionResponse(runtime_name="containerd", runtime_version="2.0.0"),
    )
    text = str(err)
    assert "v1alpha2" in text and "serves v1" in text
    assert "containerd 1.6.20 -> containerd 2.0.0" in text
    assert "restart the client" in text
    assert err.served == ("v1",)


def test_no_supported_version_lists_attempts() -> None:
    err = errors.NoSupportedVersion("none", attempts={"v1": "UNIMPLEMENTED", "v1alpha2": "UNIMPLEMENTED"})
    assert "v1: UNIMPLEMENTED; v1alpha2: UNIMPLEMENTED" in str(err)
    assert err.attempts["v1"] == "UNIMPLEMENTED"
