"""Streaming sessions on the runtime's streaming server: exec, attach, port-forward.

The runtime answers Exec, Attach and PortForward with a one-time URL; these
sessions upgrade it to SPDY/3.1 (``transport="spdy"``, the default through
``"auto"``, which can end stdin alone on every runtime) or to a WebSocket
(``"websocket"``: remotecommand v5, else v4, where stdin cannot be ended alone).
Open them from a client::

    async with client.exec_stream(cid, ["cat"], stdin=True) as session:
        await session.stdin.write(b"hello")
        await session.stdin.close()
        print(await session.stdout.readall(), await session.wait())
"""

from aiocri.streaming._open import Opening
from aiocri.streaming._pipe import Pipe
from aiocri.streaming._portforward import PortConnection, PortForwarder, PortForwardSession
from aiocri.streaming._session import ExecOutput, Stdin, StreamSession
from aiocri.streaming._transports import TransportName

__all__ = [
    "ExecOutput",
    "Opening",
    "Pipe",
    "PortConnection",
    "PortForwardSession",
    "PortForwarder",
    "Stdin",
    "StreamSession",
    "TransportName",
]
