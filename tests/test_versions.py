from __future__ import annotations

import pytest

from aiocri._rpc import RPCS
from aiocri.versions import NEGOTIATION_ORDER, V1, V1ALPHA2, resolve_versions


def test_negotiation_order_prefers_v1() -> None:
    assert [v.name for v in NEGOTIATION_ORDER] == ["v1", "v1alpha2"]


def test_method_paths() -> None:
    assert V1.path(RPCS["Version"]) == "/runtime.v1.RuntimeService/Version"
    assert V1ALPHA2.path(RPCS["ImageFsInfo"]) == "/runtime.v1alpha2.ImageService/ImageFsInfo"


def test_v1_has_everything_v1alpha2_lacks_the_newer_rpcs() -> None:
    assert V1.rpcs == frozenset(RPCS)
    assert V1ALPHA2.rpcs < V1.rpcs
    missing = V1.rpcs - V1ALPHA2.rpcs
    assert {"GetContainerEvents", "StreamContainers", "CheckpointContainer"} <= missing
    assert not V1ALPHA2.has(RPCS["GetContainerEvents"])
    with pytest.raises(KeyError):
        V1ALPHA2.path(RPCS["GetContainerEvents"])


def test_resolve_versions() -> None:
    assert resolve_versions(None) == NEGOTIATION_ORDER
    assert resolve_versions(["v1alpha2", "v1", "v1alpha2"]) == (V1ALPHA2, V1)
    with pytest.raises(ValueError, match="unknown CRI version 'v2'"):
        resolve_versions(["v2"])
    with pytest.raises(ValueError, match="at least one"):
        resolve_versions([])
