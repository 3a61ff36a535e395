"""The fake runtime behaves like containerd, scenario by scenario (issue 20 §4).

Every scenario runs on containerd 1.6, on containerd 1.7 and on the fake, through a
plain grpc.aio channel (no aiocri code involved) and through aiocri, and turns what
the client sees into an "observation": a flat dict of normalised values (ids, paths,
ports and hostnames become role names, times become "set" or "zero").
The fake's observation must equal containerd's, key by key, except for the entries of
``KNOWN_DIFFERENCES`` (what a fake cannot or should not honour). Where containerd 1.6
and 1.7 differ, ``SERIES_DIFFERENCES`` records both answers (checked on containerd
every run); the fake follows 1.7, and is started with ``COMPAT_16`` to be compared
with 1.6.

Containers are waited for (status polled with a deadline), never slept for; a runtime
that never gets there is observed as it is at the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiocri
from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing import FakeRuntime, Image
from aiocri.testing.containerd import BUSYBOX_IMAGE, Containerd, container_config
from tests.cli_process import run_module
from tests.containerd_fixture import series
from tests.differential import (
    HEX64,
    PATIENCE,
    ContainerdSide,
    Driver,
    Failure,
    FakeSide,
    RawDriver,
    Registry,
    Roles,
    Scenario,
    Side,
    compare,
    create,
    fields_of,
    image_roles,
    imported_image,
    lifecycle,
    observe,
    outcome_of,
    pod,
    remove_cgroup_parent,
    status,
    wait_exited,
    when,
)

pytestmark = pytest.mark.anyio

#: Differences that are legitimate: {"scenario: key": (why, the series it applies to)}.
KNOWN_DIFFERENCES: dict[str, tuple[str, frozenset[str]]] = {
    "exec_sync: exec ls / listing": (
        "the image's files: the test image has bin, dev, etc, proc, root, sys, tmp, var; "
        "the fake lists busybox:1.36's", frozenset({"1.6", "1.7"})),
    "exec_sync: exec env PATH": (
        "the image config's PATH (the test image says PATH=/bin)", frozenset({"1.6", "1.7"})),
    "exec_sync: exec id": (
        "the image's /etc/group: the test image's has root alone, the fake's is "
        "busybox:1.36's (root is in wheel too)", frozenset({"1.6", "1.7"})),
    "basics: serves (newer RPCs)": (
        "the fake serves the whole v1 surface on purpose (aiocri's fallbacks are tested "
        "with injected UNIMPLEMENTED); containerd 1.6/1.7 lack these", frozenset({"1.6", "1.7"})),
    "basics: status deprecation condition": (
        "containerd 1.7 warns about its own config file", frozenset({"1.7"})),
    **{f"refusals: id -u, id -g, touch /mnt/f: {mount}": (
        "mounts are not emulated: the fake has no host file system to bind",
        frozenset({"1.6", "1.7"}))
       for mount in ("readonly mount", "readonly mount, propagation host to container",
                     "rro mount, private", "rro mount, propagation host to container",
                     "rro mount, readonly false")},
}

_PINNED = {"id": "<id of localhost/aiocri/busybox:1> (sha256:<64 hex>)", "pinned": True,
           "repo_digests": [], "repo_tags": ["localhost/aiocri/busybox:1"], "size": "> 0"}
_UNPINNED = {k: v for k, v in _PINNED.items() if k != "pinned"}
_MOUNT = {"container_path": "/mnt", "host_path": "<host dir>"}
_RRO = {"recursive_read_only": True}
_HOST_TO_CONTAINER = {"propagation": "PROPAGATION_HOST_TO_CONTAINER", "readonly": True}


def _not_found(kind: str, what: str) -> str:
    return f'NOT_FOUND: an error occurred when try to find {kind} "{what}": not found'


#: Where containerd 1.6 and 1.7 answer differently: {"scenario: key": {series: answer}},
#: checked on containerd at every run. The fake answers as 1.7, and as 1.6 with COMPAT_16.
SERIES_DIFFERENCES: dict[str, dict[str, Any]] = {
    # the CRI's idempotence rule, which 1.7 follows and 1.6 does not
    "codes: StopContainer unknown": {"1.6": _not_found("container", "<hex64>"), "1.7": "OK"},
    "codes: StopContainer removed": {"1.6": _not_found("container", "<removed>"), "1.7": "OK"},
    "codes: StopPodSandbox pod unknown": {"1.6": _not_found("sandbox", "<hex64>"), "1.7": "OK"},
    "codes: StopPodSandbox pod removed": {"1.6": _not_found("sandbox", "<gone pod>"),
                                          "1.7": "OK"},
    "idempotence: stop removed": {"1.6": _not_found("container", "<twice>"), "1.7": "OK"},
    "idempotence: stop removed pod": {"1.6": _not_found("sandbox", "<victim pod>"), "1.7": "OK"},
    # stats of a stopped pod
    "codes: PodSandboxStats pod stopped": {
        "1.6": "UNKNOWN: failed to decode pod sandbox metrics <stopped pod>: failed to get "
               'pod sandbox stats since sandbox container "<stopped pod>" is not in ready '
               "state",
        "1.7": "UNAVAILABLE: failed to decode pod sandbox metrics <stopped pod>: failed to get "
               'pod sandbox stats since sandbox container "<stopped pod>" is not in ready '
               "state: unavailable"},
    "filters: pod stats none": {
        "1.6": "UNKNOWN: failed to decode sandbox container metrics for sandbox \"<fb pod>\": "
               'failed to get pod sandbox stats since sandbox container "<fb pod>" is not in '
               "ready state",
        "1.7": [["<fa pod>", ["<c1>", "<c2>", "<c3>"]]]},
    # 1.7 came with GetContainerEvents, pinned images and (unchecked) recursive read-only
    "basics: serves GetContainerEvents": {"1.6": "UNIMPLEMENTED", "1.7": "served"},
    "basics: status deprecation condition": {
        "1.6": [], "1.7": [["ContainerdHasNoDeprecationWarnings", False,
                            "ContainerdHasDeprecationWarnings"]]},
    "images: list localhost/aiocri/busybox:1": {"1.6": _UNPINNED, "1.7": _PINNED},
    "images: status localhost/aiocri/busybox:1": {"1.6": _UNPINNED, "1.7": _PINNED},
    # what `aiocri rmi --prune` leaves: the pinned sandbox image on 1.7, nothing on 1.6
    "images: prune kept": {"1.6": [], "1.7": [BUSYBOX_IMAGE]},
    "refusals: status mounts: rro mount, private": {
        "1.6": [{**_MOUNT, "readonly": True}], "1.7": [{**_MOUNT, "readonly": True, **_RRO}]},
    "refusals: status mounts: rro mount, readonly false": {
        "1.6": [_MOUNT], "1.7": [{**_MOUNT, **_RRO}]},
    "refusals: status mounts: rro mount, propagation host to container": {
        "1.6": [{**_MOUNT, **_HOST_TO_CONTAINER}],
        "1.7": [{**_MOUNT, **_HOST_TO_CONTAINER, **_RRO}]},
    # a typo that 1.7 fixed
    "refusals: pod run_as_group without run_as_user": {
        "1.6": "UNKNOWN: failed to generate sanbdox container spec options: failed to generate "
               'user string: user group "1000" is specified without user',
        "1.7": "UNKNOWN: failed to generate sandbox container spec options: failed to generate "
               'user string: user group "1000" is specified without user'},
}

#: FakeState settings that make the fake answer as containerd 1.6 (its default is 1.7).
COMPAT_16: dict[str, Any] = {"compat": "1.6"}

#: What the scenarios must have seen on containerd, or they did not test what they mean to.
SANITY: dict[str, Any] = {
    "basics: version runtime.v1alpha2": ["0.1.0", "v1alpha2", True],
    "codes: ContainerStatus unknown": 'NOT_FOUND: an error occurred when try to find '
                                      'container "<hex64>": not found',
    "filters: containers state running": ["<c1>"],
    "lifecycle: exit3": {"state": "CONTAINER_EXITED", "exit_code": 3, "reason": "Error",
                         "message": "", "times": ["set", "set", "set"]},
    "lifecycle: sigterm": {"state": "CONTAINER_EXITED", "exit_code": 143, "reason": "Error",
                           "message": "", "times": ["set", "set", "set"]},
    "lifecycle: stop trapper took": "the grace period",
    "exec_sync: exec sh: missing": [127, "", "sh: nosuch: not found\n"],
    "logs: talker log": {"stdout": [["F", "out1"], ["F", "partial"],
                                    ["P", "no-newline-at-exit"]], "stderr": [["F", "err1"]]},
    "exec_sync: exec echo hello": [0, "hello\n", ""],
    "streaming: attach stdin_once": ["hello", "", 0],
    "images: pull pullable": "<id of <registry>/aiocri/pulled:1>",
}

UNKNOWN = "f" * 64
USER_IMAGES = {  # reference -> the image config's User
    "localhost/aiocri/user-uid:1": "1000",
    "localhost/aiocri/user-uidgid:1": "1000:1000",
    "localhost/aiocri/user-name:1": "nobody",
    "localhost/aiocri/user-namegroup:1": "nobody:nogroup",
}
PULLABLE = "aiocri/pulled"  # the only repository the local registry serves
REGISTRY_USER = "65534"  # the User of the image it serves
CLIENTS = ["raw", "aiocri"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _cgroup_parent() -> Iterator[None]:
    """The pods' cgroup parent goes once its pods have gone (containerd leaves it)."""
    yield
    remove_cgroup_parent()


@pytest.fixture(scope="module", autouse=True)
def _images_as_found(containerd: Containerd) -> Iterator[None]:
    """The session's containerd keeps the images it had, and only those: the images
    scenario removes the busybox image, the others import images of their own."""
    before = {i.id for i in containerd.list_images()}
    had_busybox = any(BUSYBOX_IMAGE in i.repo_tags for i in containerd.list_images())
    yield
    for image in containerd.list_images():
        if image.id not in before:  # its names and the CRI's own reference, its id
            containerd.ctr("images", "rm", *image.repo_tags, image.id)
    deadline = time.monotonic() + 10  # the CRI learns of it through an event
    while {i.id for i in containerd.list_images()} - before and time.monotonic() < deadline:
        time.sleep(0.02)
    if had_busybox and not any(BUSYBOX_IMAGE in i.repo_tags for i in containerd.list_images()):
        containerd.import_busybox()


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    async with Registry([PULLABLE], user=REGISTRY_USER) as reg:
        yield reg


@pytest.fixture
async def fake(sock_dir: Path, containerd: Containerd, registry: Registry
               ) -> AsyncIterator[FakeRuntime]:
    async with fake_runtime(str(sock_dir / "fake.sock"), registry, series(containerd)) as rt:
        yield rt


@contextlib.asynccontextmanager
async def fake_runtime(socket_path: str, registry: Registry, version: str
                       ) -> AsyncIterator[FakeRuntime]:
    """The fake, set up as the containerd side is: its images (the busybox image as the
    pinned sandbox image, the images with a user), its registry, no CNI; with
    ``COMPAT_16`` to be compared with 1.6."""
    images = [imported_image(ref, user, sandbox=BUSYBOX_IMAGE)
              for ref, user in {BUSYBOX_IMAGE: "", **USER_IMAGES}.items()]
    pulled = Image.from_ref(f"{registry.host}/{PULLABLE}:1", user=REGISTRY_USER)
    async with FakeRuntime(socket_path, images=images, registry=[pulled]) as rt:
        rt.state.network_ready = False  # as a containerd without CNI (host network only)
        if version == "1.6":
            for name, value in COMPAT_16.items():
                setattr(rt.state, name, value)
        yield rt


@pytest.fixture
def sides(containerd: Containerd, fake: FakeRuntime, registry: Registry, tmp_path: Path
          ) -> tuple[Side, Side]:
    real: Side = ContainerdSide(containerd, series(containerd))
    ours: Side = FakeSide(fake, tmp_path / "pod-logs", sandbox=BUSYBOX_IMAGE)
    real.registry = ours.registry = registry
    return real, ours


async def differ(scenario: Scenario, sides: tuple[Side, Side], client: str,
                 version: str) -> None:
    """Run ``scenario`` on both sides; fail with a readable diff where they differ."""
    real_side, fake_side = sides
    name = scenario.__name__.removeprefix("scenario_")
    seen: dict[str, dict[str, Any]] = {}

    async def run(side: Side) -> None:
        try:
            seen[side.name] = await observe(scenario, side, client)
        except Exception as exc:
            if side is real_side:
                raise
            # a step that containerd takes and the fake refuses is a difference too
            where = [f"{f.name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)
                     if f.filename == __file__]
            seen[side.name] = {"<the scenario failed>": f"{exc!r} at {', '.join(where)}"}

    async with anyio.create_task_group() as tg:  # two runtimes apart: at the same time
        tg.start_soon(run, real_side)
        tg.start_soon(run, fake_side)
    real = {f"{name}: {k}": v for k, v in seen[real_side.name].items()}
    ours = {f"{name}: {k}": v for k, v in seen[fake_side.name].items()}
    # containerd itself first: the 1.6/1.7 table holds, the scenario saw what it means to
    expected = {**{k: v[version] for k, v in SERIES_DIFFERENCES.items()}, **SANITY}
    wrong = [f"{key}:\n    recorded: {want!r}\n    answered: {real.get(key, '<missing>')!r}"
             for key, want in expected.items()
             if key.startswith(f"{name}: ") and (key in real or client == "raw")
             and real.get(key, "<missing>") != want]
    if wrong:
        pytest.fail(f"containerd {version} no longer answers as recorded:\n" + "\n".join(wrong),
                    pytrace=False)
    diff = compare(real, ours, real_name=real_side.name, known=KNOWN_DIFFERENCES,
                   series=version)
    if diff:
        pytest.fail(f"{len(diff)} of {len(real)} observations differ between "
                    f"{real_side.name} and the fake ({name}, {client} client):\n"
                    + "\n".join(diff), pytrace=False)


# --------------------------------------------------------------------------- codes


async def scenario_codes(side: Side, d: Driver) -> dict[str, Any]:
    """Status codes and words for unknown, removed, wrong-state and empty ids, and for
    bad arguments."""
    seen: dict[str, Any] = {}
    roles = Roles()
    roles.add(side.node_hostname, "<node>")
    # several images: containerd resolves an empty reference to the only one there is
    await side.ensure_images({BUSYBOX_IMAGE: "", **USER_IMAGES})
    async with pod(side, d, roles, "codes") as (pod_id, config):
        running = await create(d, roles, pod_id, config, "running")
        created = await create(d, roles, pod_id, config, "created", start=False)
        exited = await create(d, roles, pod_id, config, "exited")
        await d.call("StopContainer", pb.StopContainerRequest(container_id=exited, timeout=0))
        removed = await create(d, roles, pod_id, config, "removed", start=False)
        await d.call("RemoveContainer", pb.RemoveContainerRequest(container_id=removed))
        async with pod(side, d, roles, "stopped") as (stopped, _):
            await d.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=stopped))
            async with pod(side, d, roles, "gone") as (gone, gone_config):
                pass
            targets = {"unknown": UNKNOWN, "removed": removed, "created": created,
                       "exited": exited, "empty": ""}
            resources = pb.LinuxContainerResources(cpu_shares=512)
            per_container: dict[str, Callable[[str], Any]] = {
                "ContainerStatus": lambda c: pb.ContainerStatusRequest(container_id=c),
                "ContainerStats": lambda c: pb.ContainerStatsRequest(container_id=c),
                "ExecSync": lambda c: pb.ExecSyncRequest(container_id=c, cmd=["true"], timeout=5),
                "Exec": lambda c: pb.ExecRequest(container_id=c, cmd=["true"], stdout=True),
                "Attach": lambda c: pb.AttachRequest(container_id=c, stdout=True),
                "UpdateContainerResources": lambda c: pb.UpdateContainerResourcesRequest(
                    container_id=c, linux=resources),
                "ReopenContainerLog": lambda c: pb.ReopenContainerLogRequest(container_id=c),
                "StartContainer": lambda c: pb.StartContainerRequest(container_id=c),
                "StopContainer": lambda c: pb.StopContainerRequest(container_id=c, timeout=0),
                "RemoveContainer": lambda c: pb.RemoveContainerRequest(container_id=c),
            }
            for method, build in per_container.items():
                for role, target in targets.items():
                    if method == "StartContainer" and role == "created":
                        target = running  # starting a created one is no error: a running one
                        role = "running"
                    if method == "RemoveContainer" and role in ("created", "exited"):
                        continue  # removed for real: see scenario_idempotence
                    seen[f"{method} {role}"] = await outcome_of(d, roles, method, build(target))
            pod_targets = {"unknown": UNKNOWN, "removed": gone, "stopped": stopped, "empty": ""}
            per_pod: dict[str, Callable[[str], Any]] = {
                "PodSandboxStatus": lambda p: pb.PodSandboxStatusRequest(pod_sandbox_id=p),
                "PodSandboxStats": lambda p: pb.PodSandboxStatsRequest(pod_sandbox_id=p),
                "PortForward": lambda p: pb.PortForwardRequest(pod_sandbox_id=p, port=[80]),
                "CreateContainer": lambda p: pb.CreateContainerRequest(
                    pod_sandbox_id=p, config=container_config("late"), sandbox_config=gone_config),
                "StopPodSandbox": lambda p: pb.StopPodSandboxRequest(pod_sandbox_id=p),
                "RemovePodSandbox": lambda p: pb.RemovePodSandboxRequest(pod_sandbox_id=p),
            }
            for method, build in per_pod.items():
                for role, target in pod_targets.items():
                    if method == "RemovePodSandbox" and role == "stopped":
                        continue
                    seen[f"{method} pod {role}"] = await outcome_of(d, roles, method, build(target))
        seen.update(await _bad_arguments(d, roles, pod_id, config, running))
        seen.update(await _urls(d, roles, pod_id, running))
    return seen


async def _bad_arguments(d: Driver, roles: Roles, pod_id: str, config: pb.PodSandboxConfig,
                         running: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    no_image = container_config("noimage")
    no_image.image.image = ""
    unknown_image = container_config("unknownimage", image="localhost/aiocri/nosuch:1")
    no_metadata = container_config("nometa")
    no_metadata.ClearField("metadata")
    bare_pod = pb.PodSandboxConfig()
    bare_pod.CopyFrom(config)
    bare_pod.ClearField("metadata")
    cases: dict[str, tuple[str, Any]] = {
        "RunPodSandbox no config": ("RunPodSandbox", pb.RunPodSandboxRequest()),
        "RunPodSandbox no metadata": ("RunPodSandbox", pb.RunPodSandboxRequest(config=bare_pod)),
        "CreateContainer no config": ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, sandbox_config=config)),
        "CreateContainer no metadata": ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=no_metadata, sandbox_config=config)),
        "CreateContainer empty image": ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=no_image, sandbox_config=config)),
        "CreateContainer unknown image": ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=unknown_image, sandbox_config=config)),
        "ExecSync empty cmd": ("ExecSync", pb.ExecSyncRequest(container_id=running)),
        "Exec empty cmd": ("Exec", pb.ExecRequest(container_id=running, stdout=True)),
        "Exec no stream": ("Exec", pb.ExecRequest(container_id=running, cmd=["true"])),
        "Exec tty and stderr": ("Exec", pb.ExecRequest(
            container_id=running, cmd=["true"], tty=True, stdout=True, stderr=True)),
        "Attach no stream": ("Attach", pb.AttachRequest(container_id=running)),
        "Attach tty and stderr": ("Attach", pb.AttachRequest(
            container_id=running, tty=True, stdout=True, stderr=True)),
        "PortForward no port": ("PortForward", pb.PortForwardRequest(pod_sandbox_id=pod_id)),
        "PullImage empty": ("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=""))),
        "PullImage no spec": ("PullImage", pb.PullImageRequest()),
        "ImageStatus no spec": ("ImageStatus", pb.ImageStatusRequest()),
    }
    for key, (method, request) in cases.items():
        seen[key] = await outcome_of(d, roles, method, request)

    async def listed(f: pb.ContainerFilter) -> Any:
        return await d.answer("ListContainers", pb.ListContainersRequest(filter=f), roles,
                              lambda r: ["OK", roles.norm_all(c.id for c in r.containers
                                                              if c.id in roles.names)])

    seen["filter state 42"] = await listed(pb.ContainerFilter(
        pod_sandbox_id=pod_id, state=pb.ContainerStateValue(state=42)))  # type: ignore[arg-type]
    seen["filter id not hex"] = await listed(pb.ContainerFilter(id="zz!"))
    seen["filter empty label key"] = await listed(pb.ContainerFilter(
        pod_sandbox_id=pod_id, label_selector={"": "x"}))
    seen["pod filter state 42"] = await d.answer("ListPodSandbox", pb.ListPodSandboxRequest(
        filter=pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=42))),  # type: ignore[arg-type]
        roles, lambda r: ["OK", roles.norm_all(p.id for p in r.items if p.id in roles.names)])
    return seen


async def _urls(d: Driver, roles: Roles, pod_id: str, running: str) -> dict[str, Any]:
    """The shape of the streaming URLs: http://127.0.0.1:<port>/KIND/<token>."""
    seen: dict[str, Any] = {}
    answers = {
        "Exec": await d.call("Exec", pb.ExecRequest(container_id=running, cmd=["true"],
                                                    stdout=True)),
        "Attach": await d.call("Attach", pb.AttachRequest(container_id=running, stdout=True)),
        "PortForward": await d.call("PortForward", pb.PortForwardRequest(
            pod_sandbox_id=pod_id, port=[80])),
    }
    for method, reply in answers.items():
        url = re.sub(r"/[A-Za-z0-9_-]{8}$", "/<8-char token>", reply.url)
        seen[f"url {method}"] = roles.norm(url)
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_codes(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_codes, sides, client, series(containerd))


# --------------------------------------------------------------------------- lifecycle

TRAP_TERM = ("sh", "-c", 'trap "" TERM; sleep 1000')


async def scenario_lifecycle(side: Side, d: Driver) -> dict[str, Any]:
    """Every state transition with its exit code, reason, message and times."""
    seen: dict[str, Any] = {}
    roles = Roles()
    await image_roles(d, roles)
    async with pod(side, d, roles, "life") as (pod_id, config):
        cids = {
            "created": await create(d, roles, pod_id, config, "created", start=False),
            "running": await create(d, roles, pod_id, config, "running", labels={"a": "1"},
                                    annotations={"b": "2"}),
            "exit0": await create(d, roles, pod_id, config, "exit0", ("sh", "-c", "exit 0")),
            "exit3": await create(d, roles, pod_id, config, "exit3", ("sh", "-c", "exit 3")),
            "killed": await create(d, roles, pod_id, config, "killed"),
            "trapper": await create(d, roles, pod_id, config, "trapper", TRAP_TERM),
            "sigterm": await create(d, roles, pod_id, config, "sigterm"),
        }
        for role in ("created", "running"):
            seen[f"{role} before stops"] = lifecycle(await status(d, cids[role]), roles)

        async def stop(role: str, timeout: int) -> None:
            begin = time.monotonic()
            seen[f"stop {role} timeout={timeout}"] = await outcome_of(
                d, roles, "StopContainer",
                pb.StopContainerRequest(container_id=cids[role], timeout=timeout))
            took = time.monotonic() - begin
            # waited for the grace period, or was it over at once?
            seen[f"stop {role} took"] = "the grace period" if took >= timeout > 0 else "less"

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop, "killed", 0)
            tg.start_soon(stop, "trapper", 1)
            tg.start_soon(stop, "sigterm", 5)
            tg.start_soon(wait_exited, d, cids["exit0"], cids["exit3"])
        for role, cid in cids.items():
            seen[role] = lifecycle(await status(d, cid), roles)
        listed = await d.call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(pod_sandbox_id=pod_id)))
        seen["listed states"] = sorted((roles.of(c.id), pb.ContainerState.Name(c.state))
                                       for c in listed.containers)
        # (state, exit code, reason, message and times: in lifecycle() above)
        seen.update(fields_of(await status(d, cids["running"]), roles, prefix="running status ",
                              drop=("state", "exit_code", "reason", "message")))
        seen.update(fields_of(next(c for c in listed.containers if c.id == cids["running"]),
                              roles, prefix="listed ", drop=("state",)))
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_lifecycle(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_lifecycle, sides, client, series(containerd))


# --------------------------------------------------------------------------- logs

LOG_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([PF]) (.*)$")
#: Go's RFC3339Nano in UTC: fraction without trailing zeros, or none.
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")
TALKER = ("sh", "-c", "echo out1; echo err1 >&2; printf part; sleep 0.2; echo ial; "
          "printf no-newline-at-exit")
LONG_LINE = ("sh", "-c", "yes xxxxxxxxxx | head -n 2000 | tr -d '\\n'; echo")
TICKER = ("sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done")


def log_entries(path: str) -> list[tuple[str, str, str]] | str:
    """(stream, P|F, text) per line, text shortened for long lines; or why not."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return f"no file ({type(exc).__name__})"
    entries: list[tuple[str, str, str]] = []
    for line in raw.splitlines():
        m = LOG_LINE.match(line)
        if m is None:
            return f"not CRI log format: {line[:80]!r}"
        stamp, stream, tag, text = (g.decode(errors="replace") for g in m.groups())
        if not RFC3339NANO.match(stamp):
            return f"time not RFC3339Nano UTC: {stamp}"
        entries.append((stream, tag, text if len(text) < 40 else f"{text[0]}*{len(text)}"))
    return entries


def by_stream(entries: list[tuple[str, str, str]] | str) -> dict[str, Any] | str:
    # the runtime copies stdout and stderr apart: only the order within one counts
    if isinstance(entries, str):
        return entries
    return {s: [e[1:] for e in entries if e[0] == s] for s in ("stdout", "stderr")}


def numbers(entries: list[tuple[str, str, str]] | str) -> list[int]:
    if isinstance(entries, str):
        return []
    return [int(e[2].split()[-1]) for e in entries if e[2].startswith("line ")]


async def scenario_logs(side: Side, d: Driver) -> dict[str, Any]:
    """CRI log files: format, streams, partial lines, long lines, paths, reopen."""
    seen: dict[str, Any] = {}
    roles = Roles()
    async with pod(side, d, roles, "logs") as (pod_id, config):
        talker = await create(d, roles, pod_id, config, "talker", TALKER)
        long = await create(d, roles, pod_id, config, "long", LONG_LINE)
        ticker = await create(d, roles, pod_id, config, "ticker", TICKER)
        try:
            sub = await create(d, roles, pod_id, config, "sub", ("echo", "in a sub folder"),
                               log_path="sub/0.log")
            seen["log in a missing folder"] = "started"
        except Failure as failed:
            seen["log in a missing folder"] = failed.said(roles)
            sub = ""
        await wait_exited(d, talker, long, *([sub] if sub else []))
        for role, cid in (("talker", talker), ("long", long), ("sub", sub)):
            if not cid:
                continue
            st = await status(d, cid)
            seen[f"{role} log_path"] = roles.norm(st.log_path)
            seen[f"{role} log"] = by_stream(log_entries(st.log_path))
        seen["log_path is log_directory/log_path"] = (
            (await status(d, talker)).log_path == os.path.join(config.log_directory,
                                                               "talker_0.log"))
        # rotation: the kubelet renames the file, then asks for a reopen
        path = (await status(d, ticker)).log_path
        await PATIENCE.get().wait(_lines_in(path, 3), "three ticks")
        seen["ticker before rotation"] = len(numbers(log_entries(path))) >= 3
        rotated = path + ".1"
        with contextlib.suppress(OSError):
            os.rename(path, rotated)
        seen["reopen running"] = await outcome_of(d, roles, "ReopenContainerLog",
                                                  pb.ReopenContainerLogRequest(container_id=ticker))
        await PATIENCE.get().wait(_lines_in(path, 3), "three ticks in the new file")
        old, new = numbers(log_entries(rotated)), numbers(log_entries(path))
        seen["reopen: new file has lines"] = len(new) >= 3
        seen["reopen: nothing lost"] = bool(old and new) and new[0] == old[-1] + 1
        seen["reopen: old file ends at the reopen"] = bool(old and new) and old[-1] < new[0]
        seen["reopen exited"] = await outcome_of(d, roles, "ReopenContainerLog",
                                                 pb.ReopenContainerLogRequest(container_id=talker))
        # reopen without a rename: the same file goes on
        before = len(numbers(log_entries(path)))
        seen["reopen without rename"] = await outcome_of(
            d, roles, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=ticker))
        await PATIENCE.get().wait(_lines_in(path, before + 3), "ticks after the second reopen")
        seen["reopen without rename: file goes on"] = len(numbers(log_entries(path))) >= before + 3
    return seen


def _lines_in(path: str, count: int) -> Callable[[], Any]:
    async def enough() -> bool:
        return len(numbers(log_entries(path))) >= count
    return enough


@pytest.mark.parametrize("client", CLIENTS)
async def test_logs(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_logs, sides, client, series(containerd))


# --------------------------------------------------------------------------- exec_sync

EXEC_COMMANDS: dict[str, list[str]] = {
    "cat; exit 3": ["sh", "-c", "cat; exit 3"],  # ExecSync has no stdin: cat reads EOF
    "ls /": ["ls", "/"],
    "echo hello": ["echo", "hello"],
    "echo -n": ["echo", "-n", "no newline"],
    "out, err, exit 4": ["sh", "-c", "echo a; echo b >&2; exit 4"],
    "printf": ["printf", "%s-%d\\n", "x", "5"],
    "id": ["id"],
    "id -u, id -g": ["sh", "-c", "id -u; id -g"],
    "hostname": ["hostname"],
    "pwd": ["pwd"],
    "head": ["sh", "-c", "printf 'a\\nb\\nc\\n' | head -n 2"],
    "wc": ["sh", "-c", "printf 'a b\\nc\\n' | wc"],
    "head of a file": ["head", "-c", "5", "/etc/passwd"],
    "true": ["true"],
    "false": ["false"],
    "missing binary": ["nosuch"],
    "missing binary, absolute": ["/bin/nosuch"],
    "sh: missing": ["sh", "-c", "nosuch"],
    "sh: and, or": ["sh", "-c", "echo a && false || echo c"],
    "sh: redirect": ["sh", "-c", "echo hi > /tmp/f; cat /tmp/f"],
    "sh: pipe": ["sh", "-c", "echo hello | tr a-z A-Z | wc -c"],
    "sh: exit 300": ["sh", "-c", "exit 300"],
    "sh: syntax error": ["sh", "-c", "if"],
    "busybox applet": ["busybox", "echo", "via busybox"],
    "env var": ["sh", "-c", "echo $FOO"],
    "not executable": ["/etc/passwd"],
}


async def scenario_exec_sync(side: Side, d: Driver) -> dict[str, Any]:
    """ExecSync: stdout, stderr and exit code of common commands; errors; timeout."""
    seen: dict[str, Any] = {}
    roles = Roles()
    roles.add(side.node_hostname, "<node>")
    async with pod(side, d, roles, "exec") as (pod_id, config):
        cid = await create(d, roles, pod_id, config, "sh", env={"FOO": "bar"})

        async def run(cmd: list[str], timeout: int = 10) -> Any:
            return await d.answer("ExecSync", pb.ExecSyncRequest(
                container_id=cid, cmd=cmd, timeout=timeout), roles, lambda r: (
                    r.exit_code, roles.norm(r.stdout.decode(errors="replace")),
                    roles.norm(r.stderr.decode(errors="replace"))))

        for key, cmd in EXEC_COMMANDS.items():
            seen[f"exec {key}"] = await run(cmd)
        listing = seen["exec ls /"]
        if isinstance(listing, tuple):  # the listing itself depends on the image
            seen["exec ls / listing"] = listing[1].split()
            seen["exec ls /"] = (listing[0], "bin" in listing[1].split(), listing[2])
        env = await run(["env"])
        if isinstance(env, tuple):
            lines = env[1].splitlines()
            seen["exec env PATH"] = [v for v in lines if v.startswith("PATH=")]
            seen["exec env"] = (env[0], sorted(v for v in lines if not v.startswith("PATH=")),
                                env[2])
        else:
            seen["exec env"] = env
        begin = time.monotonic()
        seen["exec timeout"] = await run(["sleep", "10"], timeout=1)
        seen["exec timeout took"] = "1-3 s" if 1 <= time.monotonic() - begin < 3 else "other"
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_exec_sync(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_exec_sync, sides, client, series(containerd))


# --------------------------------------------------------------------------- streaming


async def session_output(opening: Any, data: bytes | None = None) -> Any:
    """What an exec or attach session gave: (stdout, stderr, exit code), or the error."""
    try:
        async with opening as session:
            with PATIENCE.get().slice() as seconds:
                out = await asyncio.wait_for(session.communicate(data), seconds)
    except TimeoutError:
        return "no end within the deadline"
    except aiocri.ExecFailed as failed:
        return ("ExecFailed", failed.exit_code, HEX64.sub("<hex64>", str(failed.message)))
    except aiocri.CRIError as failed:
        return (type(failed).__name__, HEX64.sub("<hex64>", str(failed.message)))
    return (out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace"),
            out.exit_code)


async def scenario_streaming(side: Side, d: Driver) -> dict[str, Any]:
    """exec and attach through the runtime's streaming server (aiocri only)."""
    seen: dict[str, Any] = {}
    roles = Roles()
    client: aiocri.CRIClient = d.client  # type: ignore[attr-defined]

    def interactive(once: bool) -> Callable[[pb.ContainerConfig], None]:
        def tweak(config: pb.ContainerConfig) -> None:
            config.stdin, config.stdin_once = True, once
        return tweak

    async with pod(side, d, roles, "stream") as (pod_id, config):
        sleeper = await create(d, roles, pod_id, config, "sleeper")
        once = await create(d, roles, pod_id, config, "once", ("sh",), tweak=interactive(True))
        kept = await create(d, roles, pod_id, config, "kept", ("sh",), tweak=interactive(False))
        execs: dict[str, tuple[list[str], bytes | None, bool]] = {
            "cat; exit 3 with stdin": (["sh", "-c", "cat; exit 3"], b"hello", False),
            "out, err, exit 7": (["sh", "-c", "echo out; echo err >&2; exit 7"], None, False),
            "read a line": (["sh", "-c", "read x; echo got $x"], b"hi\n", False),
            "missing binary": (["nosuch"], None, False),
            "not executable": (["/etc/passwd"], None, False),
            "tty echo": (["echo", "hello"], None, True),
        }
        for key, (cmd, data, tty) in execs.items():
            seen[f"exec {key}"] = await session_output(client.exec_stream(
                sleeper, cmd, stdin=data is not None, tty=tty), data)
        # attach to a shell reading its stdin: what is written there, the shell runs
        seen["attach stdin_once"] = await session_output(
            client.attach_stream(once, stdin=True), b"echo -n hello\n")
        await wait_exited(d, once)
        seen["after attach stdin_once"] = lifecycle(await status(d, once), roles)
        try:
            async with client.attach_stream(kept, stdin=True) as session:
                assert session.stdin is not None and session.stdout is not None
                await session.stdin.write(b"echo -n hello\n")
                got = b""
                with PATIENCE.get().slice() as seconds, anyio.move_on_after(seconds):
                    while b"hello" not in got:
                        chunk = await session.stdout.read()
                        if not chunk:
                            break
                        got += chunk
                seen["attach kept stdin"] = got.decode(errors="replace")
        except aiocri.CRIError as failed:
            seen["attach kept stdin"] = f"{type(failed).__name__}: {failed.message}"
        seen["after attach kept stdin"] = lifecycle(await status(d, kept), roles)
    return seen


async def test_streaming(containerd: Containerd, sides: tuple[Side, Side]) -> None:
    await differ(scenario_streaming, sides, "aiocri", series(containerd))


# --------------------------------------------------------------------------- images

IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
REPO_DIGEST = re.compile(r"^([^@]+)@sha256:[0-9a-f]{64}$")


def image_fields(image: pb.Image, roles: Roles) -> dict[str, Any]:
    """An Image, field by field: ids and digests as roles, their format checked."""
    fields = fields_of(image, roles)
    fields["id"] = roles.of(image.id) + (" (sha256:<64 hex>)" if IMAGE_ID.match(image.id)
                                         else f" (bad format {image.id!r})")
    fields["repo_digests"] = [
        roles.of(r) + (" (repo@sha256:<64 hex>)" if (m := REPO_DIGEST.match(r))
                       and any(t.rsplit(":", 1)[0] == m[1] for t in image.repo_tags)
                       else " (bad format, or not the tag's repository)")
        for r in image.repo_digests]
    fields["size"] = "> 0" if image.size > 0 else image.size
    return fields


async def scenario_images(side: Side, d: Driver) -> dict[str, Any]:
    """ListImages/ImageStatus fields, references, tags, removal, pinning, pulls."""
    seen: dict[str, Any] = {}
    roles = Roles()
    assert side.registry is not None
    roles.add(side.registry.host, "<registry>")
    ours = [BUSYBOX_IMAGE, *USER_IMAGES]
    await side.ensure_images({BUSYBOX_IMAGE: "", **USER_IMAGES})
    await image_roles(d, roles)

    async def image_status(ref: str) -> Any:
        return await d.answer(
            "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)), roles,
            lambda r: roles.of(r.image.id) if r.HasField("image") else "no image")

    async def tags_of(*refs: str) -> list[list[str]]:
        listed = (await d.call("ListImages", pb.ListImagesRequest())).images
        return sorted(sorted(roles.norm(t) for t in i.repo_tags) for i in listed
                      if set(i.repo_tags) & set(refs))

    listed = {t: i for i in (await d.call("ListImages", pb.ListImagesRequest())).images
              for t in i.repo_tags}
    for ref in ours:
        seen[f"list {ref}"] = image_fields(listed[ref], roles) if ref in listed else "absent"
        reply = await d.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)))
        seen[f"status {ref}"] = image_fields(reply.image, roles)
        seen[f"status {ref} equals the list item"] = ref in listed and reply.image == listed[ref]
    busybox = listed[BUSYBOX_IMAGE]
    seen["list filter by tag"] = sorted(roles.of(i.id) for i in (await d.call(
        "ListImages", pb.ListImagesRequest(filter=pb.ImageFilter(
            image=pb.ImageSpec(image=BUSYBOX_IMAGE))))).images)
    references = {
        "id": busybox.id,
        "id without sha256:": busybox.id.removeprefix("sha256:"),
        "short id (12 hex)": busybox.id.removeprefix("sha256:")[:12],
        "name without tag": BUSYBOX_IMAGE.rsplit(":", 1)[0],
        "unknown": "localhost/aiocri/nosuch:1",
        "docker hub short name": "busybox",
    }
    for what, ref in references.items():
        seen[f"status by {what}"] = await image_status(ref)
    if d.kind == "raw":  # aiocri refuses it; containerd resolves it to an image of its choice
        seen["status by empty reference"] = await image_status("")
    seen["remove unknown"] = await outcome_of(d, roles, "RemoveImage", pb.RemoveImageRequest(
        image=pb.ImageSpec(image="localhost/aiocri/nosuch:1")))

    # two names, one image; removing by one name removes the image with every name
    second = "localhost/aiocri/second:2"
    await side.tag_image("localhost/aiocri/user-uid:1", second)
    await image_roles(d, roles)
    seen["tagged: images with either tag"] = await tags_of("localhost/aiocri/user-uid:1", second)
    seen["remove by second tag"] = await outcome_of(d, roles, "RemoveImage", pb.RemoveImageRequest(
        image=pb.ImageSpec(image=second)))
    seen["after remove: first tag"] = await image_status("localhost/aiocri/user-uid:1")
    seen["after remove: second tag"] = await image_status(second)
    seen["after remove: listed"] = await tags_of("localhost/aiocri/user-uid:1", second)
    # by digest reference
    named = "localhost/aiocri/user-name:1"
    digests = (await d.call("ImageStatus", pb.ImageStatusRequest(
        image=pb.ImageSpec(image=named)))).image.repo_digests
    if digests:  # an imported image has none on containerd: see the pulled image below
        seen["remove by repo digest"] = await outcome_of(
            d, roles, "RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=digests[0])))
        seen["after remove by digest: tag"] = await image_status(named)

    # the sandbox image (here the busybox image itself): pinned, but removable
    try:
        seen["remove the sandbox image"] = await outcome_of(d, roles, "RemoveImage",
            pb.RemoveImageRequest(image=pb.ImageSpec(image=BUSYBOX_IMAGE)))
        seen["after removing the sandbox image"] = await image_status(BUSYBOX_IMAGE)
    finally:
        await side.ensure_images({BUSYBOX_IMAGE: "", **USER_IMAGES})

    # `aiocri rmi --prune`, as a user runs it (the same command whichever client observes):
    # the images no container uses go, never a pinned one (the sandbox image, which 1.7 pins)
    try:
        code, _, err = await run_module("aiocri.cli", "-r", side.endpoint, "rmi", "--prune")
        seen["prune exit"] = [code, err.decode()]
        left = {t for i in (await d.call("ListImages", pb.ListImagesRequest())).images
                for t in i.repo_tags}
        seen["prune kept"] = sorted(ref for ref in ours if ref in left)
    finally:
        await side.ensure_images({BUSYBOX_IMAGE: "", **USER_IMAGES})

    # pulls from the local registry
    pulled = f"{side.registry.host}/{PULLABLE}:1"
    for what, ref in (("pullable", pulled),
                      ("unknown tag", f"{side.registry.host}/{PULLABLE}:404"),
                      ("unknown repository", f"{side.registry.host}/aiocri/nosuch:1")):
        try:
            reply = await d.call("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)),
                                 timeout=60)
            await image_roles(d, roles)
            seen[f"pull {what}"] = roles.of(reply.image_ref)
        except Failure as failed:
            seen[f"pull {what}"] = failed.said(roles)
    reply = await d.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=pulled)))
    seen["status of the pulled image"] = (image_fields(reply.image, roles)
                                          if reply.HasField("image") else "no image")
    if reply.image.repo_digests:
        digest = reply.image.repo_digests[0]
        seen["status of the pulled image by repo digest"] = await image_status(digest)
        seen["remove the pulled image by repo digest"] = await outcome_of(
            d, roles, "RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=digest)))
        seen["after removing by repo digest: tag"] = await image_status(pulled)
    with contextlib.suppress(Failure):
        await d.call("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=pulled)))

    fs = await d.call("ImageFsInfo", pb.ImageFsInfoRequest())
    # (used bytes: containerd samples them every few seconds, 0 at first)
    seen["image fs"] = [(bool(f.fs_id.mountpoint), f.HasField("used_bytes"),
                         f.HasField("inodes_used")) for f in fs.image_filesystems]
    seen["container fs count"] = len(fs.container_filesystems)
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_images(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_images, sides, client, series(containerd))


# --------------------------------------------------------------------------- filters


async def scenario_filters(side: Side, d: Driver) -> dict[str, Any]:
    """ListContainers / ListPodSandbox / List*Stats filters and label selectors."""
    seen: dict[str, Any] = {}
    roles = Roles()

    async def containers(**fields: Any) -> Any:  # only the scenario's own, by role
        return await d.answer("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(**fields)), roles, lambda r: roles.norm_all(
                c.id for c in r.containers if c.id in roles.names))

    async def pods(**fields: Any) -> Any:
        return await d.answer("ListPodSandbox", pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(**fields)), roles, lambda r: roles.norm_all(
                p.id for p in r.items if p.id in roles.names))

    async with pod(side, d, roles, "fa", labels={"app": "a", "tier": "web"}) as (fa, ca), \
            pod(side, d, roles, "fb", labels={"app": "b", "tier": "web"}) as (fb, cb):
        c1 = await create(d, roles, fa, ca, "c1", labels={"app": "a", "tier": "web", "n": "1"})
        await create(d, roles, fa, ca, "c2", start=False, labels={"app": "a", "tier": "db"})
        c3 = await create(d, roles, fa, ca, "c3", labels={"app": "a", "tier": "web", "n": ""})
        await d.call("StopContainer", pb.StopContainerRequest(container_id=c3, timeout=0))
        await create(d, roles, fb, cb, "c4", labels={"app": "b"})
        await d.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=fb))
        state = pb.ContainerStateValue
        cases: dict[str, dict[str, Any]] = {
            "none": {},
            "pod": {"pod_sandbox_id": fa},
            "pod id prefix": {"pod_sandbox_id": fa[:12]},
            "id": {"id": c1},
            "id prefix 12": {"id": c1[:12]},
            "id prefix 3": {"id": c1[:3]},
            "unknown id": {"id": UNKNOWN},
            "unknown pod": {"pod_sandbox_id": UNKNOWN},
            "state running": {"state": state(state=pb.CONTAINER_RUNNING)},
            "state created": {"state": state(state=pb.CONTAINER_CREATED)},
            "state exited": {"state": state(state=pb.CONTAINER_EXITED)},
            "label app=a": {"label_selector": {"app": "a"}},
            "labels app=a tier=web": {"label_selector": {"app": "a", "tier": "web"}},
            "labels app=a tier=nope": {"label_selector": {"app": "a", "tier": "nope"}},
            "label with empty value": {"label_selector": {"n": ""}},
            "label unknown key": {"label_selector": {"nokey": "x"}},
            "pod + state + labels": {"pod_sandbox_id": fa, "state": state(
                state=pb.CONTAINER_RUNNING), "label_selector": {"tier": "web"}},
            "id of another pod": {"id": c1, "pod_sandbox_id": fb},
        }
        for key, fields in cases.items():
            seen[f"containers {key}"] = await containers(**fields)
        pstate = pb.PodSandboxStateValue
        pod_cases: dict[str, dict[str, Any]] = {
            "none": {},
            "id": {"id": fa},
            "id prefix 12": {"id": fa[:12]},
            "unknown id": {"id": UNKNOWN},
            "state ready": {"state": pstate(state=pb.SANDBOX_READY)},
            "state notready": {"state": pstate(state=pb.SANDBOX_NOTREADY)},
            "label tier=web": {"label_selector": {"tier": "web"}},
            "labels app=a tier=web": {"label_selector": {"app": "a", "tier": "web"}},
            "label app=nope": {"label_selector": {"app": "nope"}},
        }
        for key, fields in pod_cases.items():
            seen[f"pods {key}"] = await pods(**fields)
        for key, f in {"none": None, "pod": pb.ContainerStatsFilter(pod_sandbox_id=fa),
                       "id": pb.ContainerStatsFilter(id=c1),
                       "label": pb.ContainerStatsFilter(label_selector={"app": "a"})}.items():
            request = pb.ListContainerStatsRequest(filter=f) if f else pb.ListContainerStatsRequest()
            seen[f"container stats {key}"] = await d.answer(
                "ListContainerStats", request, roles, lambda r: roles.norm_all(
                    s.attributes.id for s in r.stats if s.attributes.id in roles.names))
        for key, pf in {"none": None, "id": pb.PodSandboxStatsFilter(id=fa),
                        "label": pb.PodSandboxStatsFilter(label_selector={"app": "a"})}.items():
            pod_request = (pb.ListPodSandboxStatsRequest(filter=pf) if pf
                           else pb.ListPodSandboxStatsRequest())
            seen[f"pod stats {key}"] = await d.answer(
                "ListPodSandboxStats", pod_request, roles, lambda r: [
                    (roles.of(s.attributes.id),
                     roles.norm_all(c.attributes.id for c in s.linux.containers))
                    for s in r.stats if s.attributes.id in roles.names])
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_filters(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_filters, sides, client, series(containerd))


# --------------------------------------------------------------------------- idempotence


async def scenario_idempotence(side: Side, d: Driver) -> dict[str, Any]:
    """Stops and removals repeated, or of what is running; a pod's stop and removal and
    what they do to its containers."""
    seen: dict[str, Any] = {}
    roles = Roles()

    async def code(method: str, request: Any) -> str:
        return await outcome_of(d, roles, method, request, timeout=60)

    async def state(cid: str) -> Any:
        return await d.answer("ContainerStatus", pb.ContainerStatusRequest(container_id=cid),
                              roles, lambda r: lifecycle(r.status, roles))

    stop = pb.StopContainerRequest
    remove = pb.RemoveContainerRequest
    async with pod(side, d, roles, "idem") as (pod_id, config):
        twice = await create(d, roles, pod_id, config, "twice")
        seen["stop 1"] = await code("StopContainer", stop(container_id=twice, timeout=0))
        seen["stop 2"] = await code("StopContainer", stop(container_id=twice, timeout=0))
        seen["after two stops"] = await state(twice)
        seen["start exited"] = await code("StartContainer", pb.StartContainerRequest(
            container_id=twice))
        seen["remove 1"] = await code("RemoveContainer", remove(container_id=twice))
        seen["remove 2"] = await code("RemoveContainer", remove(container_id=twice))
        seen["stop removed"] = await code("StopContainer", stop(container_id=twice, timeout=0))
        seen["after two removals"] = await state(twice)

        running = await create(d, roles, pod_id, config, "running")
        seen["remove running"] = await code("RemoveContainer", remove(container_id=running))
        seen["after removing running"] = await state(running)

        created = await create(d, roles, pod_id, config, "created", start=False)
        seen["stop created"] = await code("StopContainer", stop(container_id=created, timeout=0))
        seen["after stopping created"] = await state(created)
        seen["start after stopping created"] = await code(
            "StartContainer", pb.StartContainerRequest(container_id=created))
        seen["after starting it"] = await state(created)
        seen["remove created"] = await code("RemoveContainer", remove(
            container_id=await create(d, roles, pod_id, config, "created2", start=False)))

        await create(d, roles, pod_id, config, "dup")
        try:
            await create(d, roles, pod_id, config, "dup", start=False)
            seen["same name twice"] = "OK"
        except Failure as failed:
            seen["same name twice"] = failed.said(roles)

    # a pod's stop and removal
    async with pod(side, d, roles, "victim") as (victim, vconfig):
        cids = {
            "sleeper": await create(d, roles, victim, vconfig, "sleeper"),
            "trapper": await create(d, roles, victim, vconfig, "trapper", TRAP_TERM),
            "created": await create(d, roles, victim, vconfig, "created", start=False),
            "exit3": await create(d, roles, victim, vconfig, "exit3", ("sh", "-c", "exit 3")),
        }
        await wait_exited(d, cids["exit3"])
        begin = time.monotonic()
        seen["stop pod"] = await code("StopPodSandbox", pb.StopPodSandboxRequest(
            pod_sandbox_id=victim))
        seen["stop pod took"] = "under 1 s" if time.monotonic() - begin < 1 else "1 s or more"
        for role, cid in cids.items():
            seen[f"after pod stop: {role}"] = await state(cid)
        pst = (await d.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
            pod_sandbox_id=victim))).status
        seen["after pod stop: pod"] = (pb.PodSandboxState.Name(pst.state), pst.network.ip)
        seen["create in a stopped pod"] = await code("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=victim, config=container_config("late"), sandbox_config=vconfig))
        seen["start in a stopped pod"] = await code("StartContainer", pb.StartContainerRequest(
            container_id=cids["created"]))
        seen["stop pod again"] = await code("StopPodSandbox", pb.StopPodSandboxRequest(
            pod_sandbox_id=victim))
        seen["remove pod"] = await code("RemovePodSandbox", pb.RemovePodSandboxRequest(
            pod_sandbox_id=victim))
        for role, cid in cids.items():
            seen[f"after pod removal: {role}"] = await state(cid)
        listed = await d.call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(pod_sandbox_id=victim)))
        seen["after pod removal: listed"] = len(listed.containers)
        seen["remove pod again"] = await code("RemovePodSandbox", pb.RemovePodSandboxRequest(
            pod_sandbox_id=victim))
        seen["stop removed pod"] = await code("StopPodSandbox", pb.StopPodSandboxRequest(
            pod_sandbox_id=victim))
        seen["status of removed pod"] = await code("PodSandboxStatus", pb.PodSandboxStatusRequest(
            pod_sandbox_id=victim))

    # removing a pod that is still ready, with a container running
    async with pod(side, d, roles, "ready") as (ready, rconfig):
        sleeper = await create(d, roles, ready, rconfig, "ready-sleeper")
        seen["remove ready pod"] = await code("RemovePodSandbox", pb.RemovePodSandboxRequest(
            pod_sandbox_id=ready))
        seen["after removing ready pod: container"] = await state(sleeper)
        try:
            pst = (await d.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
                pod_sandbox_id=ready))).status
            seen["after removing ready pod: pod"] = pb.PodSandboxState.Name(pst.state)
        except Failure as failed:
            seen["after removing ready pod: pod"] = failed.code

    # the same pod name, uid and attempt twice
    async with pod(side, d, roles, "twin", uid="twin-uid") as (_, tconfig):
        try:
            reply = await d.call("RunPodSandbox", pb.RunPodSandboxRequest(config=tconfig))
            roles.add(reply.pod_sandbox_id, "<second twin>")
            seen["same pod twice"] = "OK"
            for method, request in (("StopPodSandbox", pb.StopPodSandboxRequest),
                                    ("RemovePodSandbox", pb.RemovePodSandboxRequest)):
                await d.call(method, request(pod_sandbox_id=reply.pod_sandbox_id))
        except Failure as failed:
            seen["same pod twice"] = failed.said(roles)
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_idempotence(containerd: Containerd, sides: tuple[Side, Side], client: str
                           ) -> None:
    await differ(scenario_idempotence, sides, client, series(containerd))


# --------------------------------------------------------------------------- refusals


async def scenario_refusals(side: Side, d: Driver) -> dict[str, Any]:
    """Security contexts and mounts the runtime must refuse; runtime handlers."""
    seen: dict[str, Any] = {}
    roles = Roles()
    roles.add(side.node_hostname, "<node>")
    host_dir = Path(f"/tmp/aiocri-mount-{uuid.uuid4().hex[:8]}")
    host_dir.mkdir()
    roles.add(str(host_dir), "<host dir>")
    # a shared mount of its own, so that a propagation other than private may use it
    shared = await anyio.run_process(["sh", "-c", f"mount --bind {host_dir} {host_dir} && "
                                      f"mount --make-rshared {host_dir}"], check=False)
    assert shared.returncode == 0, shared.stderr

    def mount(readonly: bool, rro: bool, propagation: int = pb.PROPAGATION_PRIVATE
              ) -> Callable[[pb.ContainerConfig], None]:
        def tweak(config: pb.ContainerConfig) -> None:
            config.mounts.append(pb.Mount(
                container_path="/mnt", host_path=str(host_dir), readonly=readonly,
                recursive_read_only=rro, propagation=propagation))  # type: ignore[arg-type]
        return tweak

    def user(uid: int | None, gid: int | None, name: str = "",
             ) -> Callable[[pb.ContainerConfig], None]:
        def tweak(config: pb.ContainerConfig) -> None:
            sc = config.linux.security_context
            if uid is not None:
                sc.run_as_user.value = uid
            if gid is not None:
                sc.run_as_group.value = gid
            sc.run_as_username = name
        return tweak

    cases: dict[str, Callable[[pb.ContainerConfig], None]] = {
        "run_as_group without run_as_user": user(None, 1000),
        "run_as_user and run_as_group": user(1000, 1000),
        # a name neither image has (busybox:1.36 has nobody, the test image no users)
        "run_as_username unknown to the image": user(None, None, "no-such-user"),
        "rro mount, readonly false": mount(False, True),
        "rro mount, propagation host to container": mount(
            True, True, pb.PROPAGATION_HOST_TO_CONTAINER),
        "readonly mount, propagation host to container": mount(
            True, False, pb.PROPAGATION_HOST_TO_CONTAINER),
        "rro mount, private": mount(True, True),
        "readonly mount": mount(True, False),
    }
    try:
        async with pod(side, d, roles, "refuse") as (pod_id, config):
            for key, tweak in cases.items():
                try:
                    cid = await create(d, roles, pod_id, config, key.replace(" ", "-")[:40],
                                       start=False, tweak=tweak)
                except Failure as failed:
                    seen[f"create: {key}"] = failed.said(roles)
                    continue
                seen[f"create: {key}"] = "OK"
                seen[f"start: {key}"] = await outcome_of(
                    d, roles, "StartContainer", pb.StartContainerRequest(container_id=cid))
                seen[f"status mounts: {key}"] = [
                    fields_of(m, roles) for m in (await status(d, cid)).mounts]
                if seen[f"start: {key}"] == "OK":
                    reply = await d.call("ExecSync", pb.ExecSyncRequest(
                        container_id=cid, cmd=["sh", "-c", "id -u; id -g; touch /mnt/f"],
                        timeout=10))
                    seen[f"id -u, id -g, touch /mnt/f: {key}"] = (
                        reply.exit_code, reply.stdout.decode(), roles.norm(reply.stderr.decode()))
        for key in ("pod run_as_group without run_as_user", "pod hostname on the host network",
                    "pod with an unknown runtime handler"):
            bad = side.pod_config(f"p-{uuid.uuid4().hex[:6]}")
            roles.add(bad.metadata.name, "<pod name>")
            roles.add(bad.metadata.uid, "<pod uid>")
            handler = ""
            if "run_as_group" in key:
                bad.linux.security_context.run_as_group.value = 1000
            elif "hostname" in key:
                bad.hostname = "diffhost"
            else:
                handler = "nosuch"
            seen[key] = await _run_and_remove(d, roles, pb.RunPodSandboxRequest(
                config=bad, runtime_handler=handler))
    finally:
        await anyio.run_process(["umount", "-l", str(host_dir)], check=False)
        with contextlib.suppress(OSError):
            for f in host_dir.iterdir():
                f.unlink()
            host_dir.rmdir()
    return seen


async def _run_and_remove(d: Driver, roles: Roles, request: pb.RunPodSandboxRequest) -> str:
    try:
        reply = await d.call("RunPodSandbox", request, timeout=60)
    except Failure as failed:
        return failed.said(roles)
    for method, req in (("StopPodSandbox", pb.StopPodSandboxRequest),
                        ("RemovePodSandbox", pb.RemovePodSandboxRequest)):
        await d.call(method, req(pod_sandbox_id=reply.pod_sandbox_id), timeout=60)
    return "OK"


@pytest.mark.parametrize("client", CLIENTS)
async def test_refusals(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_refusals, sides, client, series(containerd))


# --------------------------------------------------------------------------- basics

#: RPCs that only some runtimes serve (probed with an empty request).
PROBED_RPCS = ("RuntimeConfig", "ListMetricDescriptors",
               "ListPodSandboxMetrics", "CheckpointContainer", "UpdatePodSandboxResources",
               "StreamContainers", "StreamPodSandboxes", "StreamImages")


async def scenario_basics(side: Side, d: Driver) -> dict[str, Any]:
    """Version on both CRI packages, Status, the RPCs served, pod fields."""
    seen: dict[str, Any] = {}
    roles = Roles()
    if isinstance(d, RawDriver):
        for package in ("runtime.v1", "runtime.v1alpha2"):
            v = await d.call("Version", pb.VersionRequest(version="0.1.0"), package=package)
            seen[f"version {package}"] = (v.version, v.runtime_api_version, bool(v.runtime_name))
        seen["serves GetContainerEvents"] = await d.served("GetContainerEvents")
        seen["serves (newer RPCs)"] = {m: await d.served(m) for m in PROBED_RPCS}
    else:
        v = await d.call("Version", pb.VersionRequest(version="0.1.0"))
        seen["version"] = (v.version, v.runtime_api_version, bool(v.runtime_name))
    st = await d.call("Status", pb.StatusRequest())
    conditions = sorted((c.type, c.status, c.reason) for c in st.status.conditions)
    deprecation = "ContainerdHasNoDeprecationWarnings"  # 1.7: about its config file
    seen["status conditions"] = [c for c in conditions if c[0] != deprecation]
    seen["status deprecation condition"] = [c for c in conditions if c[0] == deprecation]
    seen["status runtime handlers"] = sorted((h.name, fields_of(h.features, roles))
                                             for h in st.runtime_handlers)
    seen["status features"] = fields_of(st.features, roles)
    async with pod(side, d, roles, "basic", labels={"l": "1"}, annotations={"a": "2"}
                   ) as (pod_id, _):
        reply = await d.call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
        seen.update(fields_of(reply.status, roles, prefix="pod status "))
        seen["pod status containers_statuses"] = len(reply.containers_statuses)
        seen["pod status timestamp"] = when(reply.timestamp)
        listed = await d.call("ListPodSandbox", pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(id=pod_id)))
        seen.update(fields_of(listed.items[0], roles, prefix="pod listed "))
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_basics(containerd: Containerd, sides: tuple[Side, Side], client: str) -> None:
    await differ(scenario_basics, sides, client, series(containerd))


def test_every_known_difference_is_documented() -> None:
    """The Testing page's table lists each known difference (by its scenario key or a
    prefix of it), and lists nothing the suite no longer knows."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "api" / "testing.md").read_text()
    section = page.split("## How the fake differs from containerd", 1)[1]
    documented = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert documented, "the page has no table of differences"
    for key in KNOWN_DIFFERENCES:
        assert any(key.startswith(d) for d in documented), f"{key!r} is not documented"
    for entry in documented:
        assert any(k.startswith(entry) for k in KNOWN_DIFFERENCES), f"{entry!r} is stale"
