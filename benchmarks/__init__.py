"""aiocri benchmarks: ``python -m benchmarks --help``.

Throughput (unary calls: aiocri vs a raw grpc.aio stub vs sync grpcio), recovery
(time back after a runtime restart: aiocri vs plain grpc.aio channels) and polling
(the status poller's CPU, latency and memory). The runtime under test always runs
in a process of its own: the fake runtime (``--runtime fake``) or a private
containerd (``--runtime containerd``). See benchmarks/README.md.
"""

import os as _os

# grpc C-core's info lines (GOAWAY received, ...) would drown the tables.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
