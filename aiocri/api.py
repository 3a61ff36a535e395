"""The CRI runtime.v1 messages and enums, for building requests and reading replies.

``from aiocri.api import ContainerStatusRequest``. The same classes serve a
client pinned to v1alpha2 (the wire format is shared; see aiocri.versions).
"""

from aiocri._proto.runtime.v1.api_pb2 import *  # noqa: F403
