"""Machinery of the differential suite (tests/test_fake_vs_containerd.py).

- two drivers that send the same CRI requests: ``RawDriver`` (a plain grpc.aio channel,
  no aiocri code) and ``AiocriDriver`` (``aiocri.connect``); both raise :class:`Failure`
  (the status code's name and the runtime's words);
- two sides that run a scenario: ``ContainerdSide`` (a private containerd of
  tests/containerd_fixture.py) and ``FakeSide`` (aiocri's FakeRuntime), with the few
  things the CRI cannot do (tagging an image, importing one);
- ``Roles``: ids, paths and ports differ between runtimes, so answers are compared
  through the names of what they are ("running", "<logdir>", "<registry>");
- images with a user of their own (variants of the busybox image) and a tiny local
  registry, so that PullImage can be compared on containerd too;
- scenario steps shared by the scenarios (``pod``, ``create``, ``status``,
  ``wait_exited``, ``lifecycle``), ``observe()`` (one scenario on one side, JSON-shaped)
  and ``Patience`` (what a scenario may spend waiting for a runtime that never gets there);
- ``compare()``: a readable field-by-field diff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

import aiocri
from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri._rpc import RPCS
from aiocri.testing import FakeRuntime, Image
from aiocri.testing.containerd import (
    Containerd,
    build_busybox_image,
    container_config,
    pod_config,
)

__all__ = [
    "CGROUP_PARENT", "DEADLINE", "PATIENCE", "AiocriDriver", "ContainerdSide", "Driver",
    "Failure", "FakeSide", "Patience", "RawDriver", "Registry", "Roles", "Scenario", "Side",
    "compare", "create", "driver", "fields_of", "image_roles", "imported_image", "lifecycle",
    "observe", "outcome_of", "pod", "remove_cgroup_parent", "status", "wait_exited",
    "wait_until", "when",
]  # fmt: skip

IMAGE_RPCS = frozenset({"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"})
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


class Failure(Exception):
    """A call the runtime (or aiocri, before sending) refused."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details

    def said(self, roles: Roles) -> str:
        """``"CODE: words"``, the words normalised through ``roles``."""
        return f"{self.code}: {roles.norm(self.details)}"


# --------------------------------------------------------------------------- drivers


class Driver:
    """Sends CRI requests by RPC name; answers the response or raises Failure."""

    kind = ""

    async def call(self, method: str, request: Message, timeout: float = 30) -> Any:
        raise NotImplementedError

    async def answer(self, method: str, request: Message, roles: Roles,
                     then: Callable[[Any], Any] = lambda _: "OK", timeout: float = 30) -> Any:
        """``then(response)``, or ``"CODE: words"`` (normalised through ``roles``) when
        the call failed."""
        try:
            reply = await self.call(method, request, timeout)
        except Failure as failed:
            return failed.said(roles)
        return then(reply)

    async def outcome(self, method: str, request: Message, roles: Roles,
                      timeout: float = 30) -> str:
        """``"OK"`` or ``"CODE: words"`` (normalised through ``roles``)."""
        return str(await self.answer(method, request, roles, timeout=timeout))


class RawDriver(Driver):
    """A minimal CRI client written straight on grpc.aio."""

    kind = "raw"

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    async def call(self, method: str, request: Message, timeout: float = 30,
                   package: str = "runtime.v1") -> Any:
        service = "ImageService" if method in IMAGE_RPCS else "RuntimeService"
        response = getattr(pb, f"{method}Response")
        fn = self.channel.unary_unary(
            f"/{package}.{service}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        try:
            return await fn(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise Failure(exc.code().name, exc.details() or "") from None

    async def served(self, method: str) -> str:
        """``"served"`` or the code an empty request of ``method`` gets, but for
        UNIMPLEMENTED: whether the runtime serves the RPC at all."""
        rpc = RPCS[method]
        path = f"/runtime.v1.{rpc.service}/{method}"
        out, back = rpc.request_type.SerializeToString, rpc.response_type.FromString
        try:
            if rpc.server_streaming:
                stream = self.channel.unary_stream(path, out, back)
                async for _ in stream(rpc.request_type(), timeout=1):
                    break
            else:
                await self.channel.unary_unary(path, out, back)(rpc.request_type(), timeout=1)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "UNIMPLEMENTED"
        return "served"


class AiocriDriver(Driver):
    """The same requests through aiocri's typed client."""

    kind = "aiocri"

    def __init__(self, client: aiocri.CRIClient) -> None:
        self.client = client

    async def call(self, method: str, request: Message, timeout: float = 30) -> Any:
        service = self.client.image if method in IMAGE_RPCS else self.client.runtime
        attr = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", method).lower()
        try:
            return await getattr(service, attr)(request, timeout=timeout)
        except aiocri.CRIError as exc:
            code = exc.code.name if exc.code is not None else type(exc).__name__
            raise Failure(code, exc.details or exc.message) from None


@contextlib.asynccontextmanager
async def driver(kind: str, endpoint: str) -> AsyncIterator[Driver]:
    if kind == "raw":
        async with grpc.aio.insecure_channel(endpoint) as channel:
            yield RawDriver(channel)
    else:
        async with aiocri.connect(endpoint) as client:
            yield AiocriDriver(client)


# --------------------------------------------------------------------------- roles


@dataclass
class Roles:
    """What stands for what: ids, paths and ports become names."""

    names: dict[str, str] = field(default_factory=dict)

    def add(self, value: str, name: str) -> str:
        if value:
            self.names[value] = name
        return value

    def of(self, value: str) -> str:
        return self.names.get(value, self.norm(value))

    def norm(self, text: str) -> str:
        for value in sorted(self.names, key=len, reverse=True):
            text = text.replace(value, self.names[value])
        text = HEX64.sub("<hex64>", text)
        # containerd 1.6 says "Prefix can't be empty", 1.7 "prefix": a wording, no more
        text = text.replace("Prefix can't be empty", "prefix can't be empty")
        text = re.sub(r"/\S*/tmpmounts/containerd-mount\d+", "<containerd tmpmount>", text)
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)

    def norm_all(self, values: Iterable[str]) -> list[str]:
        return sorted(self.of(v) for v in values)


def fields_of(message: Message, roles: Roles, *, prefix: str = "",
              times: Iterable[str] = ("created_at", "started_at", "finished_at", "timestamp"),
              drop: Iterable[str] = ()) -> dict[str, Any]:
    """A message, field by field (the CRI's names; unset fields absent, as proto3 has
    it), every string normalised through ``roles``, times as "set" or "zero", keys
    prefixed with ``prefix``."""
    fields = MessageToDict(message, preserving_proto_field_name=True)
    for key in drop:
        fields.pop(key, None)
    for key in times:
        if key in message.DESCRIPTOR.fields_by_name and key not in drop:
            fields[key] = "set" if key in fields else "zero"  # MessageToDict drops a 0
    return {prefix + key: _normalised(value, roles) for key, value in sorted(fields.items())}


def _normalised(value: Any, roles: Roles) -> Any:
    if isinstance(value, str):
        return roles.of(value)
    if isinstance(value, list):
        return [_normalised(v, roles) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v, roles) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- sides


class Side:
    """Where a scenario runs: a containerd or the fake."""

    name = ""
    endpoint = ""
    registry: Registry | None = None

    def pod_config(self, name: str, **kwargs: Any) -> pb.PodSandboxConfig:
        raise NotImplementedError

    async def tag_image(self, source: str, target: str) -> None:
        """Give the image ``source`` the second name ``target`` (ctr images tag)."""
        raise NotImplementedError

    async def ensure_images(self, images: Mapping[str, str]) -> None:
        """Make sure ``images`` (reference -> image user) are there, as imported."""
        raise NotImplementedError

    @property
    def node_hostname(self) -> str:
        return os.uname().nodename


class ContainerdSide(Side):
    def __init__(self, containerd: Containerd, version: str) -> None:
        self.containerd = containerd
        self.name = f"containerd {version}"
        self.endpoint = containerd.endpoint

    def pod_config(self, name: str, **kwargs: Any) -> pb.PodSandboxConfig:
        config = self.containerd.pod_config(name, **kwargs)
        os.makedirs(config.log_directory, exist_ok=True)  # the kubelet makes it
        return config

    async def _ctr(self, *args: str) -> None:
        await anyio.to_thread.run_sync(lambda: self.containerd.ctr(*args))

    async def tag_image(self, source: str, target: str) -> None:
        await self._ctr("images", "tag", "--force", source, target)
        await self._until_listed(target)

    async def ensure_images(self, images: Mapping[str, str]) -> None:
        listed = {t for i in self.containerd.list_images() for t in i.repo_tags}
        for ref, user in images.items():
            if ref in listed:
                continue
            if ref == self.containerd.image:
                await anyio.to_thread.run_sync(self.containerd.import_busybox, ref)
                continue
            archive = build_user_image(self.containerd.workdir / "variant.tar", ref, user)
            try:
                await self._ctr("images", "import", "--snapshotter", "native", str(archive))
            finally:
                archive.unlink(missing_ok=True)
            await self._until_listed(ref)

    async def _until_listed(self, ref: str) -> None:
        await wait_until(lambda: _listed(self.containerd, ref), 15, f"the CRI listing {ref}")


async def _listed(containerd: Containerd, ref: str) -> bool:
    images = await anyio.to_thread.run_sync(containerd.list_images)
    return any(ref in i.repo_tags for i in images)


class FakeSide(Side):
    def __init__(self, fake: FakeRuntime, log_root: Path, *, sandbox: str = "") -> None:
        self.fake = fake
        self.sandbox = sandbox  # the image pinned as containerd pins its sandbox_image
        self.name = "fake"
        self.endpoint = fake.endpoint
        self.log_root = log_root

    def pod_config(self, name: str, **kwargs: Any) -> pb.PodSandboxConfig:
        uid = kwargs.pop("uid", None) or f"uid-{name}"
        kwargs.setdefault("log_directory", self.log_root / f"default_{name}_{uid}")
        config = pod_config(name, uid=uid, **kwargs)
        os.makedirs(config.log_directory, exist_ok=True)
        return config

    async def tag_image(self, source: str, target: str) -> None:
        self.fake.state.tag_image(source, target)  # what `ctr images tag` does

    async def ensure_images(self, images: Mapping[str, str]) -> None:
        state = self.fake.state
        for ref, user in images.items():
            if state.find_image(ref) is None:  # what `ctr images import` does
                state.import_image(imported_image(ref, user, sandbox=self.sandbox))


def imported_image(ref: str, user: str = "", *, sandbox: str = "") -> Image:
    """The fake's image for ``ref`` as `ctr images import` leaves it in containerd: its
    one name, no repo digest (a pulled image has one), the config's ``user``; pinned
    if it is the ``sandbox`` image (containerd's sandbox_image)."""
    image = Image.from_ref(ref, user=user)
    image.repo_digests = []
    image.pinned = ref == sandbox
    return image


# --------------------------------------------------------------------------- waiting


async def wait_until(condition: Callable[[], Awaitable[bool]], deadline: float,
                     what: str) -> bool:
    """Poll ``condition`` until true or ``deadline`` seconds passed; False then
    (the caller records what it saw: a fake that never gets there is a difference)."""
    end = time.monotonic() + deadline
    delay = 0.01
    while True:
        if await condition():
            return True
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.1)


Scenario = Callable[["Side", Driver], Awaitable[dict[str, Any]]]
#: Seconds containerd needs for what is waited for here is about 0.1; the fake gets the same.
DEADLINE = 3.0
#: Every pod's cgroup parent, as the kubelet gives one (containerd has no pod stats
#: without); the folders it leaves under /sys/fs/cgroup go with remove_cgroup_parent().
CGROUP_PARENT = f"/aiocri-diff-{os.getpid()}"


def remove_cgroup_parent() -> None:
    for folder in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT[1:]}"):
        with contextlib.suppress(OSError):
            folder.rmdir()


async def observe(scenario: Scenario, side: Side, client: str) -> dict[str, Any]:
    """The scenario's observations on one side, as JSON would carry them (lists, not
    tuples), within a patience budget for waiting."""
    token = PATIENCE.set(Patience(PATIENCE_SECONDS))
    try:
        async with driver(client, side.endpoint) as d:
            seen = await scenario(side, d)
    finally:
        PATIENCE.reset(token)
    return dict(json.loads(json.dumps(seen)))


class Patience:
    """What a scenario may spend waiting, in all: containerd gets there in about 0.1 s
    each time; a runtime that never does costs DEADLINE once, then little."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    @contextlib.contextmanager
    def slice(self) -> Iterator[float]:
        """Seconds to wait this time (at least 0.3); what was spent is counted."""
        begin = time.monotonic()
        try:
            yield max(min(DEADLINE, self.left), 0.3)
        finally:
            self.left -= time.monotonic() - begin

    async def wait(self, condition: Callable[[], Any], what: str) -> bool:
        with self.slice() as seconds:
            return await wait_until(condition, seconds, what)


PATIENCE_SECONDS = DEADLINE
PATIENCE: ContextVar[Patience] = ContextVar("PATIENCE")



# --------------------------------------------------------------------------- scenario steps


@contextlib.asynccontextmanager
async def pod(side: Side, d: Driver, roles: Roles, role: str, **kwargs: Any
              ) -> AsyncIterator[tuple[str, pb.PodSandboxConfig]]:
    config = side.pod_config(f"{role}-{uuid.uuid4().hex[:6]}", **kwargs)
    # a cgroup parent as the kubelet gives (containerd has no pod stats without one)
    config.linux.cgroup_parent = CGROUP_PARENT
    roles.add(config.log_directory, "<logdir>")
    roles.add(config.metadata.name, f"<{role} pod name>")
    roles.add(config.metadata.uid, f"<{role} pod uid>")
    reply = await d.call("RunPodSandbox", pb.RunPodSandboxRequest(config=config), timeout=60)
    pod_id = roles.add(reply.pod_sandbox_id, f"<{role} pod>")
    try:
        yield pod_id, config
    finally:
        with anyio.CancelScope(shield=True):
            for method, request in (("StopPodSandbox", pb.StopPodSandboxRequest),
                                    ("RemovePodSandbox", pb.RemovePodSandboxRequest)):
                with contextlib.suppress(Failure):
                    await d.call(method, request(pod_sandbox_id=pod_id), timeout=60)


async def create(d: Driver, roles: Roles, pod_id: str, pod_config: pb.PodSandboxConfig,
                 role: str, command: Sequence[str] = ("sleep", "1000"), *, start: bool = True,
                 tweak: Callable[[pb.ContainerConfig], None] | None = None,
                 **kwargs: Any) -> str:
    config = container_config(role, command=command, **kwargs)
    if tweak is not None:
        tweak(config)
    reply = await d.call("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config), timeout=60)
    cid = roles.add(reply.container_id, f"<{role}>")
    if start:
        await d.call("StartContainer", pb.StartContainerRequest(container_id=cid), timeout=60)
    return cid


async def status(d: Driver, cid: str) -> pb.ContainerStatus:
    reply: pb.ContainerStatusResponse = await d.call(
        "ContainerStatus", pb.ContainerStatusRequest(container_id=cid))
    return reply.status


async def wait_exited(d: Driver, *cids: str) -> None:
    """Until every container has exited, or the scenario's patience ran out."""
    async def exited() -> bool:
        states = [(await status(d, c)).state for c in cids]
        return all(s == pb.CONTAINER_EXITED for s in states)
    await PATIENCE.get().wait(exited, "containers exiting")


def when(t: int) -> str:
    return "set" if t > 0 else "zero"


def lifecycle(st: pb.ContainerStatus, roles: Roles) -> dict[str, Any]:
    """State, exit code, reason, message and the three times (set or zero: containerd
    may record a quick exit before the start, so their order is not compared)."""
    return {
        "state": pb.ContainerState.Name(st.state),
        "exit_code": st.exit_code,
        "reason": st.reason,
        "message": roles.norm(st.message),
        "times": (when(st.created_at), when(st.started_at), when(st.finished_at)),
    }


async def outcome_of(d: Driver, roles: Roles, method: str, request: Any,
                     timeout: float = 30) -> str:
    return await d.outcome(method, request, roles, timeout)


async def image_roles(d: Driver, roles: Roles) -> None:
    """Image ids and digests become ``<id of TAG>`` / ``<digest of TAG>``."""
    for image in (await d.call("ListImages", pb.ListImagesRequest())).images:
        tag = roles.norm(image.repo_tags[0]) if image.repo_tags else "untagged"
        roles.add(image.id, f"<id of {tag}>")
        roles.add(image.id.removeprefix("sha256:"), f"<hex id of {tag}>")
        for digest in image.repo_digests:
            roles.add(digest, f"<repo digest of {tag}>")


# --------------------------------------------------------------------------- images


def _blob(blobs: dict[str, bytes], data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return digest, len(data)


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def oci_blobs(ref: str, user: str = "") -> tuple[dict[str, bytes], str, bytes]:
    """The busybox image of aiocri.testing.containerd, its config's ``User`` set to
    ``user``: (blobs by digest, manifest digest, manifest)."""
    raw = io.BytesIO()
    path = Path(f"/tmp/aiocri-variant-{os.getpid()}-{time.monotonic_ns()}.tar")
    try:
        build_busybox_image(path, ref=ref)
        raw.write(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)
    raw.seek(0)
    with tarfile.open(fileobj=raw) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                 if m.isfile()}
    blobs = {"sha256:" + name.rsplit("/", 1)[1]: data for name, data in files.items()
             if name.startswith("blobs/sha256/")}
    index = json.loads(files["index.json"])
    manifest = json.loads(blobs[index["manifests"][0]["digest"]])
    config = json.loads(blobs[manifest["config"]["digest"]])
    if user:
        config["config"]["User"] = user
    new_blobs = {d: b for d, b in blobs.items() if d in {x["digest"] for x in manifest["layers"]}}
    digest, size = _blob(new_blobs, _dumps(config))
    manifest["config"].update(digest=digest, size=size)
    manifest_bytes = _dumps(manifest)
    manifest_digest, _ = _blob(new_blobs, manifest_bytes)
    return new_blobs, manifest_digest, manifest_bytes


def build_user_image(dest: Path, ref: str, user: str) -> Path:
    """An OCI layout tar of the busybox image whose config says ``User: user``."""
    blobs, manifest_digest, manifest = oci_blobs(ref, user)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest),
            "annotations": {"io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": ref},
        }],
    }
    with tarfile.open(dest, mode="w") as tar:
        for name, data in [("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"})),
                           ("index.json", _dumps(index)),
                           *((f"blobs/sha256/{d[7:]}", b) for d, b in sorted(blobs.items()))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


class Registry:
    """A registry on 127.0.0.1 (plain HTTP, as containerd uses for localhost) that
    serves the busybox image under the repositories in ``repos`` and nothing else."""

    def __init__(self, repos: Iterable[str], *, user: str = "65534") -> None:
        self.repos = set(repos)
        # a user of its own: an image apart from the imported ones
        self.blobs, self.manifest_digest, self.manifest = oci_blobs("registry", user)
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Registry:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:  # their handlers read EOF and end
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    def _answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        if path in ("/v2", "/v2/"):
            return 200, {"Content-Type": "application/json"}, b"{}"
        if m is None or m[1] not in self.repos:
            return 404, {"Content-Type": "application/json"}, _dumps(
                {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]})
        _, kind, ref = m.groups()
        if kind == "manifests" and ref in ("1", self.manifest_digest):
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                         "Docker-Content-Digest": self.manifest_digest}, self.manifest
        if kind == "blobs" and ref in self.blobs:
            return 200, {"Content-Type": "application/octet-stream",
                         "Docker-Content-Digest": ref}, self.blobs[ref]
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        return 404, {"Content-Type": "application/json"}, _dumps(
            {"errors": [{"code": code, "message": f"{kind[:-1]} unknown"}]})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                status, headers, body = self._answer(method, target.split("?", 1)[0])
                lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}",
                         f"Content-Length: {len(body)}",
                         *(f"{k}: {v}" for k, v in headers.items()), "", ""]
                writer.write("\r\n".join(lines).encode() + (b"" if method == "HEAD" else body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


# --------------------------------------------------------------------------- compare


def compare(real: Mapping[str, Any], ours: Mapping[str, Any], *, real_name: str,
            known: Mapping[str, tuple[str, frozenset[str]]], series: str) -> list[str]:
    """The keys whose values differ (those of ``known`` for ``series`` aside), each
    as a readable paragraph."""
    lines = []
    for key in sorted(set(real) | set(ours)):
        a, b = real.get(key, "<missing>"), ours.get(key, "<missing>")
        if a == b or (key in known and series in known[key][1]):
            continue
        lines.append(f"{key}:\n    {real_name:>15}: {a!r}\n    {'fake':>15}: {b!r}")
    return lines
