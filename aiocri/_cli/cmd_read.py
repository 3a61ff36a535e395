"""Read-only subcommands: version, info, pods, ps, images, inspect*, stats*, imagefsinfo.

Each prints what crictl prints for the same command: the same JSON (see
:mod:`aiocri._cli.render`), the same table columns.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import anyio

import aiocri
from aiocri import api
from aiocri._cli.args import Argument, Context, Option
from aiocri._cli.common import (
    INSPECT,
    LabelOpt,
    NoTruncOpt,
    OutputOpt,
    QuietOpt,
    TemplateOpt,
    command,
    debug_flag,
    output_template,
    parse_labels,
    print_table,
    settings_of,
)
from aiocri._cli.render import (
    OutputFormat,
    age,
    dump,
    human_size,
    info_dict,
    message_dict,
    rfc3339,
    truncate_id,
)
from aiocri._cli.runner import (
    CLIError,
    current_endpoint,
    report,
    resolve_container,
    resolve_pod,
    run,
)
from aiocri.client import CRIClient
from aiocri.errors import NotFound

if TYPE_CHECKING:
    from aiocri._cli.gotemplate import Template

CONTAINER_STATES = {
    "created": api.CONTAINER_CREATED,
    "running": api.CONTAINER_RUNNING,
    "exited": api.CONTAINER_EXITED,
    "unknown": api.CONTAINER_UNKNOWN,
}
_CONTAINER_STATE_TEXT: dict[int, str] = {
    api.CONTAINER_CREATED: "Created",
    api.CONTAINER_RUNNING: "Running",
    api.CONTAINER_EXITED: "Exited",
    api.CONTAINER_UNKNOWN: "Unknown",
}
POD_STATES = {"ready": api.SANDBOX_READY, "notready": api.SANDBOX_NOTREADY}
_POD_STATE_TEXT: dict[int, str] = {api.SANDBOX_READY: "Ready", api.SANDBOX_NOTREADY: "NotReady"}
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"


def container_state_text(state: int) -> str:
    return _CONTAINER_STATE_TEXT.get(state, "Unknown")


def pod_state_text(state: int) -> str:
    return _POD_STATE_TEXT.get(state, "NotReady")


def _regex(pattern: str | None, flag: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CLIError(f"invalid regular expression {pattern!r} for {flag}: {exc}",
                       code=2) from None


def _matches(regex: re.Pattern[str] | None, text: str) -> bool:
    return regex is None or regex.search(text) is not None


def _truncate(items: list[Any], latest: bool, last: int) -> list[Any]:
    n = len(items)
    if latest:
        n = 1
    if last > 0:
        n = last
    return items[: min(n, len(items))]


def print_status_data(entries: list[dict[str, Any]], fmt: OutputFormat,
                      template: Template | None = None) -> None:
    """crictl's outputStatusData: one object, or a list of them; keys sorted (Go maps)."""
    if not entries:
        return
    data: Any = entries[0] if len(entries) == 1 else entries
    if fmt is not OutputFormat.json:
        dump(data, fmt, template=template)
    else:
        sys.stdout.write(_sorted_json(data) + "\n")
        sys.stdout.flush()


def _sorted_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def _check_filters(state: str | None, states: Any, name: str | None,
                   namespace: str | None) -> None:
    """Bad filters are usage errors, found before any call: a ``--state`` not one of
    ``states`` (any case), a ``--name``/``--namespace`` that is not a regex."""
    if state is not None and state.lower() not in states:
        names = list(states)
        raise CLIError(f"--state must be {', '.join(names[:-1])} or {names[-1]}, not "
                       f"{state!r}", code=2)
    _regex(name, "--name")
    _regex(namespace, "--namespace")


def _failures_reported(action: str, failures: Sequence[Exception]) -> int | None:
    """Each failure on its own line after what was found (as ``kubectl get`` does); 1 if any."""
    for failure in failures:
        report(action, failure, debug=debug_flag(), endpoint=current_endpoint())
    return 1 if failures else None


# -- version, info -------------------------------------------------------------------------


@command("version", INSPECT)
def version_cmd(ctx: Context, output: OutputOpt = OutputFormat.table,
                template: TemplateOpt = None) -> None:
    """Display runtime version information (and the CRI version aiocri pinned)."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        r = client.runtime_version  # the connect's own version check answered it
        if output is not OutputFormat.table:
            dump({**message_dict(r), "pinnedCriVersion": client.version.name,
                  "clientName": "aiocri", "clientVersion": aiocri.__version__}, output,
                 template=tmpl)
            return
        print("Version: ", r.version)
        print("RuntimeName: ", r.runtime_name)
        print("RuntimeVersion: ", r.runtime_version)
        print("RuntimeApiVersion: ", r.runtime_api_version)
        print("PinnedCRIVersion: ", client.version.name)
        print("ClientName:  aiocri")
        print("ClientVersion: ", aiocri.__version__)

    run(settings, "getting the runtime version", body)


@command("info", INSPECT)
def info_cmd(
    ctx: Context,
    output: OutputOpt = OutputFormat.json,
    quiet: Annotated[bool, Option("-q", "--quiet", help="Skip the verbose info")] = False,
    template: TemplateOpt = None,
) -> None:
    """Display information of the container runtime (Status, verbose)."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        from google.protobuf import json_format  # (not for the table commands)

        r = await client.runtime.status(api.StatusRequest(verbose=not quiet))
        data: dict[str, Any] = {"status": message_dict(r.status)}
        if r.runtime_handlers:  # crictl marshals these with Go's encoding/json
            data["runtimeHandlers"] = [
                json_format.MessageToDict(h, preserving_proto_field_name=True)
                for h in r.runtime_handlers
            ]
        if r.HasField("features"):
            data["features"] = json_format.MessageToDict(
                r.features, preserving_proto_field_name=True)
        data.update(info_dict(r.info))
        print_status_data([data], OutputFormat.json if output is OutputFormat.table
                          else output, tmpl)

    run(settings, "getting the runtime status", body)


# -- pods ------------------------------------------------------------------------------------


async def list_pods(
    client: CRIClient,
    *,
    id: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    state: str | None = None,
    labels: dict[str, str] | None = None,
    latest: bool = False,
    last: int = 0,
) -> list[api.PodSandbox]:
    """crictl's ListPodSandboxes: runtime filters, then regexes, newest first."""
    f = api.PodSandboxFilter()
    if id:
        f.id = id
    if state:
        wanted = POD_STATES.get(state.lower())
        if wanted is None:
            raise CLIError("--state should be ready or notready")
        f.state.state = wanted
    if labels:
        f.label_selector.update(labels)
    name_re, ns_re = _regex(name, "--name"), _regex(namespace, "--namespace")
    r = await client.runtime.list_pod_sandbox(api.ListPodSandboxRequest(filter=f))
    if id and not r.items:  # a runtime that matches only whole ids: match prefixes here
        f.ClearField("id")
        r = await client.runtime.list_pod_sandbox(api.ListPodSandboxRequest(filter=f))
    pods = [
        p for p in r.items
        if (not id or p.id.startswith(id))
        and _matches(name_re, p.metadata.name) and _matches(ns_re, p.metadata.namespace)
    ]
    pods.sort(key=lambda p: p.created_at, reverse=True)
    return _truncate(pods, latest, last)


@command("pods", INSPECT)
def pods_cmd(
    ctx: Context,
    id: Annotated[str | None, Option("--id", help="Filter by pod id (or prefix)")] = None,
    name: Annotated[str | None, Option("--name", help="Filter by pod name regex")] = None,
    namespace: Annotated[str | None, Option(
        "--namespace", help="Filter by pod namespace regex")] = None,
    state: Annotated[str | None, Option(
        "-s", "--state", help="Filter by pod state: ready or notready")] = None,
    label: LabelOpt = None,
    quiet: QuietOpt = False,
    output: OutputOpt = OutputFormat.table,
    no_trunc: NoTruncOpt = False,
    latest: Annotated[bool, Option("-l", "--latest", help="Show the newest pod")] = False,
    last: Annotated[int, Option("-n", "--last", help="Show the n newest pods")] = 0,
    template: TemplateOpt = None,
) -> None:
    """List pod sandboxes."""
    settings = settings_of(ctx)
    labels = parse_labels(label)
    _check_filters(state, POD_STATES, name, namespace)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        pods = await list_pods(client, id=id, name=name, namespace=namespace, state=state,
                               labels=labels, latest=latest, last=last)
        if output is not OutputFormat.table:
            dump(message_dict(api.ListPodSandboxResponse(items=pods)), output, template=tmpl)
        elif quiet:
            sys.stdout.write("".join(f"{p.id}\n" for p in pods))
        else:
            now = time.time()
            print_table(
                ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"],
                [[truncate_id(p.id, full=no_trunc), age(p.created_at, now),
                  pod_state_text(p.state), p.metadata.name, p.metadata.namespace,
                  str(p.metadata.attempt), p.runtime_handler or "(default)"] for p in pods],
            )

    run(settings, "listing pod sandboxes", body)


# -- ps ----------------------------------------------------------------------------------------


async def list_containers(
    client: CRIClient,
    *,
    all: bool = False,
    id: str | None = None,
    pod: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    state: str | None = None,
    labels: dict[str, str] | None = None,
    latest: bool = False,
    last: int = 0,
) -> list[api.Container]:
    """crictl's ListContainers: running only unless ``all``/``state``; newest first."""
    f = api.ContainerFilter()
    if id:
        f.id = id
    if pod:
        f.pod_sandbox_id = pod
    if state:
        wanted = CONTAINER_STATES.get(state.lower())
        if wanted is None:
            raise CLIError("--state should be one of created, running, exited or unknown")
        f.state.state = wanted
    elif not all:
        f.state.state = api.CONTAINER_RUNNING
    if latest or last > 0:
        f.ClearField("state")
    if labels:
        f.label_selector.update(labels)
    name_re, ns_re = _regex(name, "--name"), _regex(namespace, "--namespace")
    r = await client.runtime.list_containers(api.ListContainersRequest(filter=f))
    if id and not r.containers:  # a runtime that matches only whole ids
        f.ClearField("id")
        r = await client.runtime.list_containers(api.ListContainersRequest(filter=f))
    containers = [
        c for c in r.containers
        if (not id or c.id.startswith(id))
        and _matches(name_re, c.metadata.name)
        and _matches(ns_re, c.labels.get(POD_NAMESPACE_LABEL, "unknown"))
    ]
    containers.sort(key=lambda c: c.created_at, reverse=True)
    return _truncate(containers, latest, last)


def _image_column(image: str, full: bool) -> str:
    if not full and re.fullmatch(r"sha256:[0-9a-f]{64}", image):
        return truncate_id(image, "sha256:")
    return image


@command("ps", INSPECT)
def ps_cmd(
    ctx: Context,
    all: Annotated[bool, Option("-a", "--all", help="Show all containers")] = False,
    id: Annotated[str | None, Option(
        "--id", help="Filter by container id (or prefix)")] = None,
    pod: Annotated[str | None, Option(
        "-p", "--pod", help="Filter by pod id (or prefix)")] = None,
    name: Annotated[str | None, Option(
        "--name", help="Filter by container name regex")] = None,
    namespace: Annotated[str | None, Option(
        "--namespace", help="Filter by pod namespace regex")] = None,
    state: Annotated[str | None, Option(
        "-s", "--state", help="Filter by state: created, running, exited, unknown")] = None,
    label: LabelOpt = None,
    quiet: QuietOpt = False,
    output: OutputOpt = OutputFormat.table,
    no_trunc: NoTruncOpt = False,
    latest: Annotated[bool, Option(
        "-l", "--latest", help="Show the newest container (any state)")] = False,
    last: Annotated[int, Option(
        "-n", "--last", help="Show the n newest containers (any state)")] = 0,
    verbose: Annotated[bool, Option(
        "-v", "--verbose", help="Every container's details instead of the table")] = False,
    image: Annotated[str | None, Option(
        "--image", help="Filter by image (a reference or id, as the runtime resolves it)")
    ] = None,
    template: TemplateOpt = None,
) -> None:
    """List containers (running ones unless -a or --state)."""
    settings = settings_of(ctx)
    labels = parse_labels(label)
    _check_filters(state, CONTAINER_STATES, name, namespace)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        pod_id = pod
        if pod:
            pods = await list_pods(client, id=pod)
            if len(pods) == 1:
                pod_id = pods[0].id
        containers = await list_containers(
            client, all=all, id=id, pod=pod_id, name=name, namespace=namespace, state=state,
            labels=labels, latest=latest, last=last)
        if image:
            containers = await _using_image(client, containers, image)
        if output is not OutputFormat.table:
            dump(message_dict(api.ListContainersResponse(containers=containers)), output,
                 template=tmpl)
        elif quiet:
            sys.stdout.write("".join(f"{c.id}\n" for c in containers))
        elif verbose:
            _containers_verbose(containers)
        else:
            now = time.time()
            print_table(
                ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD",
                 "NAMESPACE"],
                [[truncate_id(c.id, full=no_trunc), _image_column(c.image.image, no_trunc),
                  age(c.created_at, now), container_state_text(c.state), c.metadata.name,
                  str(c.metadata.attempt), truncate_id(c.pod_sandbox_id, full=no_trunc),
                  c.labels.get(POD_NAME_LABEL, "unknown"),
                  c.labels.get(POD_NAMESPACE_LABEL, "unknown")] for c in containers],
            )

    run(settings, "listing containers", body)


async def _using_image(client: CRIClient, containers: list[api.Container], image: str
                       ) -> list[api.Container]:
    """The containers whose image is ``image``, both resolved to an image id by the runtime
    (ImageStatus), as crictl's ``ps --image`` does; none if the image is not there."""
    ids: dict[str, str] = {}

    async def image_id(ref: str) -> str:
        if ref not in ids:
            r = await client.image.image_status(api.ImageStatusRequest(
                image=api.ImageSpec(image=ref)))
            ids[ref] = r.image.id if r.HasField("image") else ""
        return ids[ref]

    wanted = await image_id(image)
    if not wanted:
        return []
    return [c for c in containers if await image_id(c.image.image) == wanted]


# -- images ------------------------------------------------------------------------------------


def _repo_tags(image: api.Image) -> list[tuple[str, str]]:
    """crictl's normalizeRepoTagPair: (repository, tag) rows, <none> when untagged."""
    repo = image.repo_digests[0].split("@")[0] if image.repo_digests else "<none>"
    if not image.repo_tags:
        return [(repo, "<none>")]
    pairs = []
    for tag in image.repo_tags:
        name, sep, value = tag.rpartition(":")
        if not sep or "/" in value:
            pairs.append((tag, "<none>"))
        else:
            pairs.append((repo if name == "<none>" else name, value))
    return pairs


@command("images", INSPECT, aliases=("img", "image"))
def images_cmd(
    ctx: Context,
    repository: Annotated[str | None, Argument(
        metavar="[REPOSITORY[:TAG]]",
        help="Sent as the ListImages filter (containerd 1.6/1.7 ignore it: every image)")
    ] = None,
    quiet: QuietOpt = False,
    output: OutputOpt = OutputFormat.table,
    no_trunc: NoTruncOpt = False,
    digests: Annotated[bool, Option("--digests", help="Show digests")] = False,
    pinned: Annotated[bool, Option("--pinned", help="Show whether pinned")] = False,
    template: TemplateOpt = None,
) -> None:
    """List images."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        request = api.ListImagesRequest()
        if repository:
            request.filter.image.image = repository
        r = await client.image.list_images(request)
        if output is not OutputFormat.table:
            dump(message_dict(r), output, template=tmpl)
            return
        if quiet:
            sys.stdout.write("".join(f"{i.id}\n" for i in r.images))
            return
        headers = ["IMAGE", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "SIZE"]
        headers += ["PINNED"] if pinned else []
        rows = []
        for image in r.images:
            digest = image.repo_digests[0].split("@")[-1] if image.repo_digests else "<none>"
            for repo, tag in _repo_tags(image):
                row = [repo, tag]
                if digests:
                    row.append(truncate_id(digest, "sha256:", full=no_trunc))
                row += [truncate_id(image.id, "sha256:", full=no_trunc),
                        human_size(image.size, 3)]
                if pinned:
                    row.append(str(image.pinned).lower())
                rows.append(row)
        print_table(headers, rows)

    run(settings, "listing images", body)


# -- inspect, inspectp, inspecti ---------------------------------------------------------------

InspectOutputOpt = Annotated[OutputFormat, Option(
    "-o", "--output", help="Output format: json, yaml, go-template (with --template) or table",
    case_sensitive=False)]


def container_status_dict(status: api.ContainerStatus) -> dict[str, Any]:
    """crictl's marshalContainerStatus: times as RFC 3339, Go's zero time when unset."""
    data = message_dict(status)
    data["createdAt"] = rfc3339(status.created_at)
    started = status.started_at if status.state != api.CONTAINER_CREATED else None
    finished = None
    if status.state == api.CONTAINER_EXITED or (
        status.state == api.CONTAINER_UNKNOWN and status.finished_at > 0
    ):
        finished = status.finished_at
    data["startedAt"] = rfc3339(started)
    data["finishedAt"] = rfc3339(finished)
    return data


def _labels_lines(title: str, labels: Any) -> None:
    if labels:
        print(f"{title}:")
        for key in sorted(labels):
            print(f"\t{key} -> {labels[key]}")


@command("inspect", INSPECT)
def inspect_cmd(
    ctx: Context,
    containers: Annotated[list[str], Argument(
        metavar="CONTAINER...", help="Container ids or id prefixes")],
    output: InspectOutputOpt = OutputFormat.json,
    quiet: Annotated[bool, Option("-q", "--quiet", help="Skip the verbose info")] = False,
    template: TemplateOpt = None,
) -> None:
    """Display the status of one or more containers.

    Those found are printed; then each id that was not, on stderr (exit status 1).
    """
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> int | None:
        entries, failures = [], []
        for ident in containers:
            try:
                cid = await resolve_container(client, ident)
                r = await client.runtime.container_status(
                    api.ContainerStatusRequest(container_id=cid, verbose=not quiet))
            except (CLIError, NotFound) as exc:  # removed, or never there: go on
                failures.append(exc)
                continue
            if output is OutputFormat.table:
                _container_status_text(r, verbose=not quiet)
            else:
                entries.append({"status": container_status_dict(r.status),
                                **info_dict(r.info)})
        print_status_data(entries, output, tmpl)
        return _failures_reported("inspecting containers", failures)

    run(settings, "inspecting containers", body)


def _container_status_text(r: api.ContainerStatusResponse, *, verbose: bool) -> None:
    s = r.status
    now = time.time()
    print(f"ID: {s.id}")
    if s.metadata.name:
        print(f"Name: {s.metadata.name}")
    if s.metadata.attempt:
        print(f"Attempt: {s.metadata.attempt}")
    print(f"State: {api.ContainerState.Name(s.state)}")
    print(f"Created: {age(s.created_at, now)}")
    if s.state != api.CONTAINER_CREATED:
        print(f"Started: {age(s.started_at, now)}")
    if s.state == api.CONTAINER_EXITED:
        if s.finished_at > 0:
            print(f"Finished: {age(s.finished_at, now)}")
        print(f"Exit Code: {s.exit_code}")
    _labels_lines("Labels", s.labels)
    _labels_lines("Annotations", s.annotations)
    if verbose:
        _info_lines(r.info)


def _containers_verbose(containers: list[api.Container]) -> None:
    now = time.time()
    for c in containers:
        print(f"ID: {c.id}")
        print(f"Name: {c.metadata.name}")
        print(f"Attempt: {c.metadata.attempt}")
        print(f"State: {api.ContainerState.Name(c.state)}")
        print(f"Image: {c.image.image}")
        print(f"Created: {age(c.created_at, now)}")
        print(f"Pod: {c.pod_sandbox_id}")
        _labels_lines("Labels", c.labels)
        _labels_lines("Annotations", c.annotations)
        print()


def _info_lines(info: Any) -> None:
    """The verbose info, key by key, JSON values indented (not a Python dict)."""
    if not info:
        return
    print("Info:")
    for key in sorted(info):
        text = info[key]
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        lines = text.splitlines() or [""]
        if len(lines) == 1:
            print(f"  {key}: {lines[0]}")
        else:
            print(f"  {key}:")
            for line in lines:
                print(f"    {line}")


@command("inspectp", INSPECT)
def inspectp_cmd(
    ctx: Context,
    pods: Annotated[list[str], Argument(
        metavar="POD...", help="Pod sandbox ids or id prefixes")],
    output: InspectOutputOpt = OutputFormat.json,
    quiet: Annotated[bool, Option("-q", "--quiet", help="Skip the verbose info")] = False,
    template: TemplateOpt = None,
) -> None:
    """Display the status of one or more pod sandboxes.

    Those found are printed; then each id that was not, on stderr (exit status 1).
    """
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> int | None:
        entries, failures = [], []
        for ident in pods:
            try:
                pid = await resolve_pod(client, ident)
                r = await client.runtime.pod_sandbox_status(
                    api.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=not quiet))
            except (CLIError, NotFound) as exc:
                failures.append(exc)
                continue
            if output is OutputFormat.table:
                _pod_status_text(r, verbose=not quiet)
            else:
                status = message_dict(r.status)
                status["createdAt"] = rfc3339(r.status.created_at)
                entries.append({"status": status, **info_dict(r.info)})
        print_status_data(entries, output, tmpl)
        return _failures_reported("inspecting pod sandboxes", failures)

    run(settings, "inspecting pod sandboxes", body)


def _pod_status_text(r: api.PodSandboxStatusResponse, *, verbose: bool) -> None:
    s = r.status
    print(f"ID: {s.id}")
    if s.metadata.name:
        print(f"Name: {s.metadata.name}")
    if s.metadata.uid:
        print(f"UID: {s.metadata.uid}")
    if s.metadata.namespace:
        print(f"Namespace: {s.metadata.namespace}")
    if s.metadata.attempt:
        print(f"Attempt: {s.metadata.attempt}")
    print(f"Status: {pod_state_text(s.state)}")
    print(f"Created: {age(s.created_at)}")
    if s.network.ip:
        print(f"IP Addresses: {s.network.ip}")
    for extra in s.network.additional_ips:
        print(f"Additional IP: {extra.ip}")
    _labels_lines("Labels", s.labels)
    _labels_lines("Annotations", s.annotations)
    if verbose:
        _info_lines(r.info)


@command("inspecti", INSPECT)
def inspecti_cmd(
    ctx: Context,
    images: Annotated[list[str] | None, Argument(
        metavar="[IMAGE...]", help="Image ids or references (default: all images)")] = None,
    output: InspectOutputOpt = OutputFormat.json,
    quiet: Annotated[bool, Option("-q", "--quiet", help="Skip the verbose info")] = False,
    template: TemplateOpt = None,
) -> None:
    """Display the status of one or more images.

    Those found are printed; then each image that was not, on stderr (exit status 1).
    """
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> int | None:
        refs = list(images or [])
        if not refs:
            refs = [i.id for i in (await client.image.list_images()).images]
        entries, failures = [], []
        for ref in refs:
            r = await client.image.image_status(
                api.ImageStatusRequest(image=api.ImageSpec(image=ref), verbose=not quiet))
            if not r.HasField("image") or not r.image.id:
                failures.append(CLIError(
                    f"no such image {ref!r}; list images with 'aiocri images'"))
                continue
            if output is OutputFormat.table:
                print(f"ID: {r.image.id}")
                for tag in r.image.repo_tags:
                    print(f"Tag: {tag}")
                for digest in r.image.repo_digests:
                    print(f"Digest: {digest}")
                print(f"Size: {human_size(r.image.size, 3)}")
                if not quiet:
                    _info_lines(r.info)
            else:
                entries.append({"status": message_dict(r.image), **info_dict(r.info)})
        print_status_data(entries, output, tmpl)
        return _failures_reported("inspecting images", failures)

    run(settings, "inspecting images", body)


@command("imagefsinfo", INSPECT)
def imagefsinfo_cmd(ctx: Context, output: InspectOutputOpt = OutputFormat.json,
                    template: TemplateOpt = None) -> None:
    """Display image filesystem usage."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        r = await client.image.image_fs_info()
        if output is not OutputFormat.table:
            print_status_data([{"status": message_dict(r)}], output, tmpl)
            return
        for label, filesystems in (("Container", r.container_filesystems),
                                   ("Image", r.image_filesystems)):
            print(f"{label} Filesystem ")
            for i, fs in enumerate(filesystems):
                print(f"TimeStamp[{i}]: {fs.timestamp}")
                print(f"Disk[{i}]: {human_size(fs.used_bytes.value)}")
                print(f"Inodes[{i}]: {fs.inodes_used.value}")
                print(f"Mountpoint[{i}]: {fs.fs_id.mountpoint}")

    run(settings, "getting image filesystem info", body)


# -- stats, statsp -------------------------------------------------------------------------------

SecondsOpt = Annotated[float, Option(
    "-s", "--seconds", help="Sample duration for CPU usage, in seconds")]


def _cpu_percent(usage: int, ts: int, old_usage: int, old_ts: int) -> float:
    duration = ts - old_ts
    if usage == 0 or duration <= 0:
        return 0.0
    return (usage - old_usage) / duration * 100


async def _sample_twice(fetch: Callable[[], Any], seconds: float) -> tuple[Any, Any]:
    first = await fetch()
    await anyio.sleep(max(0.0, seconds))
    return first, await fetch()


@command("stats", INSPECT, lasting=True)
def stats_cmd(
    ctx: Context,
    container: Annotated[str | None, Argument(
        metavar="[ID]", help="Only this container (or prefix), as --id", show_default=False)
    ] = None,
    all: Annotated[bool, Option("-a", "--all", help="Include stopped containers")] = False,
    id: Annotated[str | None, Option("--id", help="Only this container (or prefix)")] = None,
    pod: Annotated[str | None, Option(
        "-p", "--pod", help="Only containers of this pod (or prefix)")] = None,
    label: LabelOpt = None,
    output: OutputOpt = OutputFormat.table,
    seconds: SecondsOpt = 1.0,
    watch: Annotated[bool, Option(
        "-w", "--watch", help="Print again every --seconds until Ctrl-C")] = False,
    template: TemplateOpt = None,
) -> None:
    """List container resource usage (CPU % sampled over --seconds)."""
    settings = settings_of(ctx)
    labels = parse_labels(label)
    tmpl = output_template(output, template)
    id = id or container  # crictl: --id wins over the argument

    async def body(client: CRIClient) -> None:
        while True:
            await once(client)
            if not watch:
                return
            print(flush=True)

    async def once(client: CRIClient) -> None:
        f = api.ContainerStatsFilter(label_selector=labels)
        if id:
            f.id = await resolve_container(client, id)
        if pod:
            f.pod_sandbox_id = await resolve_pod(client, pod)
        request = api.ListContainerStatsRequest(filter=f)
        if output is not OutputFormat.table:
            dump(message_dict(await client.runtime.list_container_stats(request)), output,
                 template=tmpl)
            return
        old, new = await _sample_twice(
            lambda: client.runtime.list_container_stats(request), seconds)
        before = {s.attributes.id: s for s in old.stats}
        rows = []
        for s in new.stats:
            cpu = s.cpu.usage_core_nano_seconds.value
            mem = s.memory.working_set_bytes.value
            if not all and cpu == 0 and mem == 0:
                continue
            prev = before.get(s.attributes.id)
            if prev is None:
                continue
            pct = _cpu_percent(cpu, s.cpu.timestamp, prev.cpu.usage_core_nano_seconds.value,
                               prev.cpu.timestamp)
            rows.append([
                truncate_id(s.attributes.id), s.attributes.metadata.name, f"{pct:.2f}",
                human_size(mem), human_size(s.writable_layer.used_bytes.value),
                str(s.writable_layer.inodes_used.value),
                human_size(s.swap.swap_usage_bytes.value),
            ])
        print_table(["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP"], rows)

    run(settings, "getting container stats", body, interrupt_ok=watch)


def _pod_cpu_mem(s: api.PodSandboxStats) -> tuple[int, int, int]:
    side = s.linux if s.HasField("linux") else s.windows
    return (side.cpu.usage_core_nano_seconds.value, side.memory.working_set_bytes.value,
            side.cpu.timestamp)


@command("statsp", INSPECT, lasting=True)
def statsp_cmd(
    ctx: Context,
    pod: Annotated[str | None, Argument(
        metavar="[ID]", help="Only this pod (or prefix), as --id", show_default=False)
    ] = None,
    id: Annotated[str | None, Option("--id", help="Only this pod (or prefix)")] = None,
    label: LabelOpt = None,
    output: OutputOpt = OutputFormat.table,
    seconds: SecondsOpt = 1.0,
    template: TemplateOpt = None,
) -> None:
    """List pod sandbox resource usage (CPU % sampled over --seconds)."""
    settings = settings_of(ctx)
    labels = parse_labels(label)
    tmpl = output_template(output, template)
    id = id or pod  # crictl: --id wins over the argument

    async def body(client: CRIClient) -> None:
        f = api.PodSandboxStatsFilter(label_selector=labels)
        if id:
            f.id = await resolve_pod(client, id)
        request = api.ListPodSandboxStatsRequest(filter=f)
        if output is not OutputFormat.table:
            dump(message_dict(await client.runtime.list_pod_sandbox_stats(request)), output,
                 template=tmpl)
            return
        old, new = await _sample_twice(
            lambda: client.runtime.list_pod_sandbox_stats(request), seconds)
        before = {s.attributes.id: s for s in old.stats}
        rows = []
        for s in new.stats:
            cpu, mem, ts = _pod_cpu_mem(s)
            if cpu == 0 and mem == 0:
                continue
            prev = before.get(s.attributes.id)
            if prev is None:
                continue
            old_cpu, _, old_ts = _pod_cpu_mem(prev)
            rows.append([s.attributes.metadata.name, truncate_id(s.attributes.id),
                         f"{_cpu_percent(cpu, ts, old_cpu, old_ts):.2f}", human_size(mem)])
        print_table(["POD", "POD ID", "CPU %", "MEM"], rows)

    run(settings, "getting pod sandbox stats", body)
