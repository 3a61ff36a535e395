"""The RPC table, read from the protobuf service descriptors (never by hand)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from aiocri._proto.runtime.v1 import api_pb2

__all__ = ["RPC", "RPCS", "snake_case"]


@dataclass(frozen=True, slots=True)
class RPC:
    """One CRI RPC: its service, name, message classes and shape."""

    service: str
    name: str
    request_type: type[Message]
    response_type: type[Message]
    server_streaming: bool

    @property
    def attr(self) -> str:
        """Its Python method name: ContainerStatus -> container_status."""
        return snake_case(self.name)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _load() -> dict[str, RPC]:
    table: dict[str, RPC] = {}
    for service in api_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            if method.client_streaming:  # the CRI has none; refuse to guess
                raise RuntimeError(f"unexpected client-streaming RPC {method.full_name}")
            table[method.name] = RPC(
                service=service.name,
                name=method.name,
                request_type=GetMessageClass(method.input_type),
                response_type=GetMessageClass(method.output_type),
                server_streaming=method.server_streaming,
            )
    return table


#: Every RPC of RuntimeService and ImageService, by name (names are unique
#: across the two services).
RPCS: Mapping[str, RPC] = _load()
