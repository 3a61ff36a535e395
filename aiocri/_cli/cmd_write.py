"""Subcommands that change things: runp, create, start, stop, rm, stopp, rmp, pull, rmi.

Ids may be given in full or as unique prefixes (resolved with a List call, as
crictl users expect). Each prints what crictl prints on success.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import grpc

from aiocri import api
from aiocri._cli.args import Argument, Context, Option
from aiocri._cli.common import CHANGE, command, load_message, settings_of
from aiocri._cli.runner import CLIError, resolve_container, resolve_pod, run
from aiocri.client import CRIClient
from aiocri.errors import CRIError, NotFound

IdsArg = Annotated[list[str], Argument(metavar="ID...", help="Ids or unique id prefixes")]


# -- pods ------------------------------------------------------------------------------------


def load_pod_config(path: str) -> api.PodSandboxConfig:
    config = load_message(path, api.PodSandboxConfig, what="pod config")
    if not config.HasField("metadata"):
        raise CLIError(f"pod config {path} has no metadata; add metadata: name, namespace")
    if not config.metadata.uid:
        config.metadata.uid = str(uuid.uuid4())  # as crictl does
    if not config.metadata.name or not config.metadata.namespace:
        raise CLIError(f"pod config {path} needs metadata.name and metadata.namespace")
    return config


@command("runp", CHANGE)
def runp_cmd(
    ctx: Context,
    pod_config: Annotated[str, Argument(
        metavar="POD_CONFIG.json|yaml", help="A PodSandboxConfig file")],
    runtime: Annotated[str, Option(
        "-r", "--runtime", help="Runtime handler (default: the runtime's default)")] = "",
) -> None:
    """Run a new pod sandbox; print its id."""
    settings = settings_of(ctx)
    config = load_pod_config(pod_config)

    async def body(client: CRIClient) -> None:
        r = await client.runtime.run_pod_sandbox(
            api.RunPodSandboxRequest(config=config, runtime_handler=runtime))
        print(r.pod_sandbox_id)

    run(settings, "running the pod sandbox", body)


@command("stopp", CHANGE)
def stopp_cmd(ctx: Context, pods: IdsArg) -> None:
    """Stop one or more pod sandboxes (and their containers)."""
    settings = settings_of(ctx)

    async def body(client: CRIClient) -> None:
        for ident in pods:
            pid = await resolve_pod(client, ident)
            await client.runtime.stop_pod_sandbox(api.StopPodSandboxRequest(pod_sandbox_id=pid))
            print(f"Stopped sandbox {pid}")

    run(settings, "stopping pod sandboxes", body)


@command("rmp", CHANGE)
def rmp_cmd(
    ctx: Context,
    pods: Annotated[list[str] | None, Argument(
        metavar="ID...", help="Ids or unique id prefixes")] = None,
    force: Annotated[bool, Option(
        "-f", "--force", help="Stop a ready pod before removing it")] = False,
    all: Annotated[bool, Option("-a", "--all", help="Remove every pod sandbox")] = False,
) -> None:
    """Remove one or more pod sandboxes (and their containers)."""
    settings = settings_of(ctx)
    if not pods and not all:
        raise CLIError("give pod ids, or --all", code=2)

    async def body(client: CRIClient) -> None:
        if all:
            ids = [p.id for p in (await client.runtime.list_pod_sandbox()).items]
        else:
            ids = [await resolve_pod(client, ident) for ident in pods or []]
        for pid in ids:
            status = await client.runtime.pod_sandbox_status(
                api.PodSandboxStatusRequest(pod_sandbox_id=pid))
            if status.status.state == api.SANDBOX_READY:
                if not force:
                    raise CLIError(f"pod sandbox {pid} is ready; stop it first or use --force")
                await client.runtime.stop_pod_sandbox(
                    api.StopPodSandboxRequest(pod_sandbox_id=pid))
            await client.runtime.remove_pod_sandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pid))
            print(f"Removed sandbox {pid}")

    run(settings, "removing pod sandboxes", body)


# -- containers ----------------------------------------------------------------------------------


@command("create", CHANGE)
def create_cmd(
    ctx: Context,
    pod: Annotated[str, Argument(metavar="POD_ID", help="Pod sandbox id or id prefix")],
    container_config: Annotated[str, Argument(
        metavar="CONTAINER_CONFIG.json|yaml", help="A ContainerConfig file")],
    pod_config: Annotated[str, Argument(
        metavar="POD_CONFIG.json|yaml", help="The pod's PodSandboxConfig file")],
    with_pull: Annotated[bool, Option(
        "--with-pull", help="Pull the image before creating the container")] = False,
) -> None:
    """Create a new container in a pod sandbox; print its id."""
    settings = settings_of(ctx)
    config = load_message(container_config, api.ContainerConfig, what="container config")
    if not config.metadata.name:
        raise CLIError(f"container config {container_config} needs metadata.name")
    if not config.image.image:
        raise CLIError(f"container config {container_config} needs image.image")
    sandbox = load_pod_config(pod_config)

    async def body(client: CRIClient) -> None:
        pid = await resolve_pod(client, pod)
        if with_pull:
            await client.image.pull_image(
                api.PullImageRequest(image=config.image, sandbox_config=sandbox))
        try:
            r = await client.runtime.create_container(api.CreateContainerRequest(
                pod_sandbox_id=pid, config=config, sandbox_config=sandbox))
        except NotFound as exc:
            raise await unless_image_missing(client, exc, config.image,
                                             "give --with-pull") from None
        print(r.container_id)

    run(settings, "creating the container", body)


async def unless_image_missing(client: CRIClient, exc: NotFound, image: api.ImageSpec,
                               otherwise: str) -> NotFound:
    """``exc``, advising to pull ``image`` when it is CreateContainer's NOT_FOUND and the
    runtime has no such image (ImageStatus says so); ``otherwise``: the flag way to pull."""
    if exc.code is not grpc.StatusCode.NOT_FOUND or exc.method != "CreateContainer":
        return exc
    try:
        status = await client.image.image_status(api.ImageStatusRequest(image=image))
    except CRIError:
        return exc
    if status.HasField("image") and status.image.id:
        return exc  # the image is there: something else is missing (the pod)
    return NotFound(exc.message, code=exc.code, details=exc.details, endpoint=exc.endpoint,
                    method=exc.method,
                    hint=f"the runtime has no image {image.image}: pull it with "
                         f"'aiocri pull {image.image}' (or {otherwise})")


@command("start", CHANGE)
def start_cmd(ctx: Context, containers: IdsArg) -> None:
    """Start one or more created containers."""
    settings = settings_of(ctx)

    async def body(client: CRIClient) -> None:
        for ident in containers:
            cid = await resolve_container(client, ident)
            await client.runtime.start_container(api.StartContainerRequest(container_id=cid))
            print(cid)

    run(settings, "starting containers", body)


@command("stop", CHANGE)
def stop_cmd(
    ctx: Context,
    containers: IdsArg,
    timeout: Annotated[int, Option(
        "-t", "--timeout", help="Seconds to wait before killing the container")] = 0,
) -> None:
    """Stop one or more running containers."""
    settings = settings_of(ctx)

    async def body(client: CRIClient) -> None:
        for ident in containers:
            cid = await resolve_container(client, ident)
            await client.runtime.stop_container(
                api.StopContainerRequest(container_id=cid, timeout=max(timeout, 0)),
                timeout=settings.deadline(max(timeout, 0)),
            )
            print(cid)

    run(settings, "stopping containers", body)


@command("rm", CHANGE)
def rm_cmd(
    ctx: Context,
    containers: Annotated[list[str] | None, Argument(
        metavar="ID...", help="Ids or unique id prefixes")] = None,
    force: Annotated[bool, Option(
        "-f", "--force", help="Stop a running container before removing it")] = False,
    all: Annotated[bool, Option("-a", "--all", help="Remove every container")] = False,
) -> None:
    """Remove one or more containers."""
    settings = settings_of(ctx)
    if not containers and not all:
        raise CLIError("give container ids, or --all", code=2)

    async def body(client: CRIClient) -> None:
        if all:
            ids = [c.id for c in (await client.runtime.list_containers()).containers]
        else:
            ids = [await resolve_container(client, ident) for ident in containers or []]
        for cid in ids:
            status = await client.runtime.container_status(
                api.ContainerStatusRequest(container_id=cid))
            if status.status.state == api.CONTAINER_RUNNING:
                if not force:
                    raise CLIError(f"container {cid} is running; stop it first or use --force")
                await client.runtime.stop_container(api.StopContainerRequest(container_id=cid))
            await client.runtime.remove_container(api.RemoveContainerRequest(container_id=cid))
            print(cid)

    run(settings, "removing containers", body)


# -- images ------------------------------------------------------------------------------------


@command("pull", CHANGE)
def pull_cmd(
    ctx: Context,
    image: Annotated[str, Argument(metavar="IMAGE", help="Image reference")],
    creds: Annotated[str | None, Option(
        "--creds", metavar="USER[:PASSWORD]", help="Registry credentials")] = None,
    auth: Annotated[str | None, Option(
        "--auth", metavar="BASE64", help="Registry auth string (base64 user:password)")] = None,
    pod_config: Annotated[str | None, Option(
        "--pod-config", metavar="FILE", help="PodSandboxConfig to pull the image for")] = None,
    pull_timeout: Annotated[float, Option(
        "--pull-timeout", help="Seconds the pull may take (0: no limit)")] = 0.0,
) -> None:
    """Pull an image; print its reference."""
    settings = settings_of(ctx)
    request = api.PullImageRequest(image=api.ImageSpec(image=image))
    if creds and auth:
        raise CLIError("give --creds or --auth, not both", code=2)
    if creds:
        user, _, password = creds.partition(":")
        if not user:
            raise CLIError("--creds needs a user name: USER[:PASSWORD]", code=2)
        request.auth.username, request.auth.password = user, password
    elif auth:
        request.auth.auth = auth
    if pod_config:
        request.sandbox_config.CopyFrom(load_pod_config(pod_config))

    async def body(client: CRIClient) -> None:
        r = await client.image.pull_image(
            request, timeout=pull_timeout if pull_timeout > 0 else None)
        print(f"Image is up to date for {r.image_ref}")

    run(settings, "pulling the image", body)


@command("rmi", CHANGE)
def rmi_cmd(
    ctx: Context,
    images: Annotated[list[str] | None, Argument(
        metavar="IMAGE...", help="Image ids or references")] = None,
    all_: Annotated[bool, Option("-a", "--all", help="Remove every image")] = False,
    prune: Annotated[bool, Option(
        "-q", "--prune", help="Remove the images no container uses")] = False,
) -> None:
    """Remove one or more images (every tag of each), all of them, or the unused ones."""
    settings = settings_of(ctx)
    if not images and not (all_ or prune):
        raise CLIError("give image ids or references, or -a/--all, or --prune", code=2)

    async def targets(client: CRIClient) -> list[str]:
        if not (all_ or prune):
            return list(images or [])
        listed = (await client.image.list_images()).images
        used: set[str] = set()
        if prune:
            containers = (await client.runtime.list_containers()).containers
            used = {c.image_ref for c in containers} | {c.image.image for c in containers}
        # as crictl: prune never removes a pinned image (the sandbox image)
        return [i.id for i in listed
                if not ({i.id, *i.repo_tags, *i.repo_digests} & used)
                and not (prune and i.pinned)]

    async def body(client: CRIClient) -> None:
        for ref in await targets(client):
            status = await client.image.image_status(
                api.ImageStatusRequest(image=api.ImageSpec(image=ref)))
            if not status.HasField("image") or not status.image.id:
                raise CLIError(f"no such image {ref!r}; list images with 'aiocri images'")
            await client.image.remove_image(
                api.RemoveImageRequest(image=api.ImageSpec(image=status.image.id)))
            for name in status.image.repo_tags or [status.image.id]:
                print(f"Deleted: {name}")

    run(settings, "removing images", body)
