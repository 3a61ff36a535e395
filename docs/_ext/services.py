"""A griffe extension for the reference: each RPC method under its public service.

``RuntimeService.container_status`` is a descriptor (``unary(...)``) that griffe sees as
an undocumented attribute, hiding the typed signature that
``aiocri._proto.signatures.RuntimeServiceMethods`` gives type checkers. This puts the
signature in the descriptor's place, so that the reference shows
``aiocri.services.RuntimeService.container_status`` with its keywords and docstring,
never the private path, and links its request and response messages on the
``aiocri.api`` page.
"""

from __future__ import annotations

from typing import Any

import griffe

SERVICES = {
    "aiocri.services.RuntimeService": "aiocri._proto.signatures.RuntimeServiceMethods",
    "aiocri.services.ImageService": "aiocri._proto.signatures.ImageServiceMethods",
}


class SignaturesAsMethods(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        if pkg.path != "aiocri":
            return
        for service_path, signatures_path in SERVICES.items():
            service = loader.modules_collection.get_member(service_path)
            signatures = loader.modules_collection.get_member(signatures_path)
            for name, function in signatures.members.items():
                if not function.is_function:
                    continue
                if name not in service.members:
                    raise LookupError(f"{service_path} has no method {name}")
                if function.docstring is not None:
                    function.docstring.value += _messages(name)
                service.set_member(name, griffe.Alias(name, function, parent=service))


def _messages(method: str) -> str:
    """Where the method's request and response messages are described."""
    from aiocri._rpc import RPCS, snake_case

    rpc = next(r for r in RPCS.values() if snake_case(r.name) == method)
    request, response = rpc.request_type.__name__, rpc.response_type.__name__
    reply = "a stream of" if rpc.server_streaming else "returns"
    return (f"\n\nTakes a [`{request}`][aiocri.api.{request}] or its fields as keywords; "
            f"{reply} [`{response}`][aiocri.api.{response}].")
