"""The CRI versions aiocri speaks, as data.

One schema serves both: runtime.v1 began as a copy of runtime.v1alpha2, every
v1alpha2 field keeps its number, name and wire type in v1, so aiocri sends v1
messages on the v1alpha2 method paths (tests/test_wire_compat.py proves it
field by field). A version is therefore just a package name plus the set of
RPCs it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiocri._rpc import RPC, RPCS

__all__ = ["NEGOTIATION_ORDER", "V1", "V1ALPHA2", "VERSIONS", "CRIVersion", "resolve_versions"]


@dataclass(frozen=True)
class CRIVersion:
    """One CRI API version: its protobuf package and the RPCs it has."""

    name: str
    package: str
    rpcs: frozenset[str]
    #: "/runtime.v1.RuntimeService/Version" and so on, for the RPCs it has.
    paths: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        paths = {
            rpc.name: f"/{self.package}.{rpc.service}/{rpc.name}"
            for rpc in RPCS.values()
            if rpc.name in self.rpcs
        }
        object.__setattr__(self, "paths", paths)

    def has(self, rpc: RPC) -> bool:
        return rpc.name in self.rpcs

    def path(self, rpc: RPC) -> str:
        """The gRPC method path of ``rpc`` under this version (KeyError if absent)."""
        return self.paths[rpc.name]

    def __str__(self) -> str:
        return self.name


#: runtime.v1: every RPC of the schema; the kubelet's first choice.
V1 = CRIVersion("v1", "runtime.v1", frozenset(RPCS))

#: runtime.v1alpha2 as it was when frozen (cri-api 0.25): no Stream* lists, no
#: events, checkpoints, metrics or runtime config.
V1ALPHA2 = CRIVersion(
    "v1alpha2",
    "runtime.v1alpha2",
    frozenset(
        {
            # RuntimeService
            "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox",
            "PodSandboxStatus", "ListPodSandbox", "CreateContainer", "StartContainer",
            "StopContainer", "RemoveContainer", "ListContainers", "ContainerStatus",
            "UpdateContainerResources", "ReopenContainerLog", "ExecSync", "Exec", "Attach",
            "PortForward", "ContainerStats", "ListContainerStats", "PodSandboxStats",
            "ListPodSandboxStats", "UpdateRuntimeConfig", "Status",
            # ImageService
            "ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo",
        }
    ),
)

#: The versions aiocri knows, by name ("v1", "v1alpha2").
VERSIONS: Mapping[str, CRIVersion] = {v.name: v for v in (V1, V1ALPHA2)}

#: The kubelet's preference: v1 first, then the older one.
NEGOTIATION_ORDER: tuple[CRIVersion, ...] = (V1, V1ALPHA2)


def resolve_versions(names: Iterable[str | CRIVersion] | None) -> tuple[CRIVersion, ...]:
    """Turn a user's list of versions (names or objects) into the order to try."""
    if names is None:
        return NEGOTIATION_ORDER
    out: list[CRIVersion] = []
    for item in names:
        if isinstance(item, CRIVersion):
            version = item
        elif item in VERSIONS:
            version = VERSIONS[item]
        else:
            known = ", ".join(VERSIONS)
            raise ValueError(f"unknown CRI version {item!r}; aiocri knows {known}")
        if version not in out:
            out.append(version)
    if not out:
        raise ValueError("versions must name at least one CRI version")
    return tuple(out)
