"""The fake runtime's containers: their lifecycle, output and the RPCs that drive them."""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._exec import ExecResult, cannot_start, exec_failed
from aiocri.testing._images import ImageOps
from aiocri.testing._logfile import CRILogFile
from aiocri.testing._model import (
    Container,
    Image,
    StatusError,
    copy_message,
    labels_match,
    precondition,
    reason_for,
    resolve,
    unknown,
    user_refusal,
)
from aiocri.testing._shared import Response, ServicerBase, chunks, copy_request
from aiocri.testing._workload import end, image_users, launch
from aiocri.versions import CRIVersion

__all__ = ["ContainerOps", "ContainerRPCs"]


def stop_signal(container: Container) -> int:
    """The signal StopContainer sends first: the config's, else SIGTERM."""
    chosen = container.config.stop_signal
    if chosen == pb.SIGNAL_RUNTIME_DEFAULT:
        return int(signal.SIGTERM)
    return int(signal.Signals[pb.Signal.Name(chosen).removeprefix("SIGNAL_")])


def _container_state_filter(f: pb.ContainerFilter) -> pb.ContainerState.ValueType | None:
    return f.state.state if f.HasField("state") else None


class ContainerOps(ImageOps):
    """Containers: create, start, stop, exit, print, remove."""

    def filter_containers(
        self,
        *,
        id: str = "",
        state: pb.ContainerState.ValueType | None = None,
        pod_sandbox_id: str = "",
        label_selector: Mapping[str, str] | None = None,
    ) -> list[Container]:
        found: Iterable[Container]
        if id:
            hit = resolve(self.containers, id)
            found = [hit] if hit is not None else []
        else:
            found = self.containers.values()
        if pod_sandbox_id:
            pod = resolve(self.pods, pod_sandbox_id)
            if pod is None:
                return []
            found = pod.containers.values() if not id else [c for c in found if c.pod is pod]
        return [
            c
            for c in found
            if (state is None or c.state == state)
            and (not label_selector or labels_match(c.config.labels, label_selector))
        ]

    def containers_bytes(self) -> bytes:
        """The serialized ListContainersResponse for all containers, cached per generation."""
        cached = self._containers_all
        if cached is None or cached[0] != self.generation:
            cached = self._containers_all = (
                self.generation,
                b"".join([c.list_item() for c in self.containers.values()]),
            )
        return cached[1]

    def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        # sandbox_config is accepted like the CRI's and ignored: the pod's own config rules.
        # The checks come in containerd's order, with its codes and words.
        pod = self.get_pod(pod_sandbox_id, 'failed to find sandbox id "{}"')
        if not config.HasField("metadata"):
            raise unknown("container config must include metadata")
        if not pod.ready:
            raise StatusError(
                grpc.StatusCode.NOT_FOUND, f"failed to get sandbox container task: no running "
                f"task found: task {pod.id} not found: not found")
        image = self._image_for(config.image.image)
        refused = user_refusal(config.linux.security_context, "failed to get container spec opts")
        if refused:
            raise unknown(refused)
        username = config.linux.security_context.run_as_username
        if username and username not in image_users():
            raise unknown(f"failed to create containerd container: mount callback failed on "
                          f"/var/lib/containerd/tmpmounts/containerd-mount{self._next_pid}: "
                          f"no users found")
        pmeta = pod.config.metadata
        name = (
            f"{config.metadata.name}_{pmeta.name}_{pmeta.namespace}_{pmeta.uid}"
            f"_{config.metadata.attempt}"
        )
        container_id = self.new_id()
        self._reserve(name, container_id, "container")
        log_dir = pod.config.log_directory
        log_path = f"{log_dir.rstrip('/')}/{config.log_path}" if log_dir and config.log_path else ""
        container = Container(
            id=container_id,
            pod=pod,
            config=copy_message(config),
            image=image,
            created_at=time.time_ns(),
            log_path=log_path,
        )
        self.containers[container_id] = container
        pod.containers[container_id] = container
        self._changed()
        self._emit(container_id, pod, pb.CONTAINER_CREATED_EVENT)
        return container_id

    def _image_for(self, ref: str) -> Image:
        if not ref:  # an empty reference is an id prefix: the only image, or ambiguous
            if len(self.images) == 1:
                return next(iter(self.images.values()))
            raise unknown('failed to resolve image "": ambiguous digest string')
        image = self.find_image(ref)
        if image is None:
            raise StatusError(grpc.StatusCode.NOT_FOUND, f'failed to resolve image "{ref}": '
                              f"not found")
        return image

    def start_container(self, container_id: str) -> None:
        container = self.get_container(container_id)
        if container.state != pb.CONTAINER_CREATED:
            state = pb.ContainerState.Name(container.state)
            raise unknown(f'failed to set starting state for container "{container.id}": '
                          f"container is in {state} state")
        if not container.pod.ready:
            raise unknown(f'sandbox container "{container.pod.id}" is not running')
        if container.log_path:  # containerd makes the file (and its folder) at start
            try:
                CRILogFile.create(container.log_path)
            except OSError as exc:
                raise StatusError(
                    grpc.StatusCode.UNKNOWN, f"failed to create container loggers: {exc}"
                ) from None
        container.state = pb.CONTAINER_RUNNING
        container.started_at = time.time_ns()
        container.pid = self._next_pid
        self._next_pid += 1
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_STARTED_EVENT)
        container.process = launch(self, container)  # may exit at once: after the event

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        """StopContainer: a created or exited container is left as is (containerd).

        With ``timeout > 0`` the process gets its stop signal (SIGTERM unless the
        config names another) and ends with 128+n, reason "Error"; a process that
        ignores it is killed when the timeout runs out (137; the container runs
        until then). With ``timeout <= 0`` it is killed at once (137), as containerd
        does. ``stop_exit_code``, when set, is the exit code of every stop.
        """
        if self._missing_stop_is_fine("container", container_id):
            return
        container = self.get_container(container_id)
        if not container.running:
            return
        process = container.process
        if timeout <= 0 or process is None or not process.ignores_stop_signal:
            self._stop(container, kill=timeout <= 0)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to wait on: the timeout has passed at once
            self._stop(container, kill=True)
            return
        deadline = loop.time() + timeout
        timer = process.kill_timer
        if timer is None or deadline < timer.when():  # a shorter grace period wins
            if timer is not None:
                timer.cancel()
            process.kill_timer = loop.call_at(deadline, self._kill_if_running, container)

    def _kill_if_running(self, container: Container) -> None:
        if container.running and self.containers.get(container.id) is container:
            self._stop(container, kill=True)

    def _stop(self, container: Container, *, kill: bool = False) -> None:
        code = self.stop_exit_code
        if code is None:
            code = 128 + (signal.SIGKILL if kill else stop_signal(container))
        self._finish(container, code, reason_for(code), "")

    def exit_container(
        self,
        container_id: str,
        exit_code: int = 1,
        reason: str | None = None,
        message: str = "",
    ) -> None:
        """Make a running container's process end by itself (crash, completion, OOM...)."""
        container = self.get_container(container_id)
        if not container.running:
            state = pb.ContainerState.Name(container.state)
            raise precondition(f'container "{container.id}" is in {state} state')
        self._finish(container, exit_code, reason or reason_for(exit_code), message)

    def write_output(self, container_id: str, data: bytes | str, stream: str = "stdout") -> None:
        """Make a running container print: the text goes to its log file (in the CRI
        format, when its pod's log directory exists) and to attached sessions."""
        container = self.get_container(container_id)
        if not container.running:
            raise precondition(f'container "{container.id}" is not running')
        if stream not in ("stdout", "stderr"):
            raise ValueError("stream must be stdout or stderr")
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if container.log is None and container.log_path:
            container.log = CRILogFile.open(container.log_path)
        if container.log is not None:
            container.log.write(stream, raw)
        for listener in list(container.listeners):
            listener(stream, raw)

    def reopen_log(self, container_id: str) -> None:
        """ReopenContainerLog: close the log file and open its path again."""
        container = self.get_container(container_id)
        if not container.running:  # containerd's check and words
            raise unknown("container is not running")
        if container.log is not None:
            container.log.close()
        container.log = CRILogFile.open(container.log_path) if container.log_path else None

    def _finish(self, container: Container, exit_code: int, reason: str, message: str) -> None:
        if container.process is not None:
            end(container.process)
        if container.log is not None:
            container.log.close()
            container.log = None
        ended, container.on_exit = container.on_exit, []
        for callback in ended:
            callback()
        container.state = pb.CONTAINER_EXITED
        container.finished_at = time.time_ns()
        container.exit_code = exit_code
        container.reason = reason
        container.message = message
        container.pid = 0
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_STOPPED_EVENT)

    def remove_container(self, container_id: str) -> bool:
        """Removes a container, stopping it first; an unknown id is fine (containerd)."""
        if not container_id:
            raise self._lookup_failed('an error occurred when try to find container "{}"', "")
        container = resolve(self.containers, container_id)
        if container is None:
            return False
        if container.running:
            self._finish(container, 137, "Error", "")  # forced: SIGKILL
        del self.containers[container.id]
        del container.pod.containers[container.id]
        self._release(container.id)
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_DELETED_EVENT)
        return True

    def update_container_resources(
        self, container_id: str, linux: pb.LinuxContainerResources | None
    ) -> None:
        # containerd updates an exited container's spec too (no state check)
        container = self.get_container(container_id, "failed to find container")
        if linux is not None:
            container.resources = copy_message(linux)
        self._changed(container)

    def shutdown(self) -> None:
        """End every container's command, kill timer and log file (the node goes down
        for good): what a runtime's owner calls when it is done with the state. The
        containers keep their state; nothing runs or writes any more."""
        for container in self.containers.values():
            if container.process is not None:
                end(container.process)
            if container.log is not None:
                container.log.close()
                container.log = None

    def running_containers(self) -> Iterator[Container]:
        return (c for c in self.containers.values() if c.running)

    # -- verbose info ----------------------------------------------------------------

    def container_info(self, container: Container) -> dict[str, str]:
        info = {
            "sandboxID": container.pod.id,
            "pid": container.pid,
            "removing": False,
            "snapshotKey": container.id,
            "snapshotter": "overlayfs",
            "runtimeType": "io.containerd.runc.v2",
            "config": {
                "metadata": {"name": container.name, "attempt": container.config.metadata.attempt},
                "image": {"image": container.config.image.image},
                "command": list(container.config.command),
                "args": list(container.config.args),
                "labels": dict(container.config.labels),
            },
        }
        return {"info": json.dumps(info)}


class ContainerRPCs(ServicerBase):
    """RuntimeService: containers, ExecSync and the streaming URLs."""

    def _container_items(self, f: pb.ContainerFilter | None) -> list[bytes] | bytes:
        if f is None or not (f.id or f.pod_sandbox_id or f.HasField("state") or f.label_selector):
            return self.state.containers_bytes()
        found = self.state.filter_containers(
            id=f.id,
            state=_container_state_filter(f),
            pod_sandbox_id=f.pod_sandbox_id,
            label_selector=f.label_selector,
        )
        return [c.list_item() for c in found]

    def _all_container_items(self, f: pb.ContainerFilter | None) -> list[bytes]:
        items = self._container_items(f)
        if isinstance(items, bytes):  # the cached whole list; streams need the pieces
            return [c.list_item() for c in self.state.containers.values()]
        return items

    def create_container(
        self, request: pb.CreateContainerRequest, version: CRIVersion
    ) -> pb.CreateContainerResponse:
        sandbox = request.sandbox_config if request.HasField("sandbox_config") else None
        container_id = self.state.create_container(request.pod_sandbox_id, request.config, sandbox)
        return pb.CreateContainerResponse(container_id=container_id)

    def start_container(
        self, request: pb.StartContainerRequest, version: CRIVersion
    ) -> pb.StartContainerResponse:
        self.state.start_container(request.container_id)
        return pb.StartContainerResponse()

    async def stop_container(
        self, request: pb.StopContainerRequest, version: CRIVersion
    ) -> pb.StopContainerResponse:
        self.state.stop_container(request.container_id, request.timeout)
        container = resolve(self.state.containers, request.container_id)
        if container is not None and container.running:  # ignoring its stop signal
            stopped = asyncio.Event()
            container.on_exit.append(stopped.set)
            try:
                await stopped.wait()  # the answer comes once it has died, as containerd's
            finally:  # a caller that gave up leaves nothing behind
                if stopped.set in container.on_exit:
                    container.on_exit.remove(stopped.set)
        return pb.StopContainerResponse()

    def remove_container(
        self, request: pb.RemoveContainerRequest, version: CRIVersion
    ) -> pb.RemoveContainerResponse:
        self.state.remove_container(request.container_id)
        return pb.RemoveContainerResponse()

    def list_containers(self, request: pb.ListContainersRequest, version: CRIVersion) -> Response:
        f = request.filter if request.HasField("filter") else None
        return self._cached_list("containers", f, self.state.containers_bytes,
                                 self._container_items)

    async def stream_containers(
        self, request: pb.StreamContainersRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._all_container_items(request.filter if request.HasField("filter") else None)
        for chunk in chunks(items, self.stream_chunk):
            yield chunk

    def container_status(
        self, request: pb.ContainerStatusRequest, version: CRIVersion
    ) -> pb.ContainerStatusResponse:
        container = self.state.get_container(request.container_id)
        response = pb.ContainerStatusResponse(status=container.to_status())
        if self.state.compat == "1.6":  # its CRI has no recursive read-only mounts
            for mount in response.status.mounts:
                mount.ClearField("recursive_read_only")
        if request.verbose:
            response.info.update(self.state.container_info(container))
        return response

    def update_container_resources(
        self, request: pb.UpdateContainerResourcesRequest, version: CRIVersion
    ) -> pb.UpdateContainerResourcesResponse:
        linux = request.linux if request.HasField("linux") else None
        self.state.update_container_resources(request.container_id, linux)
        return pb.UpdateContainerResourcesResponse()

    def reopen_container_log(
        self, request: pb.ReopenContainerLogRequest, version: CRIVersion
    ) -> pb.ReopenContainerLogResponse:
        self.state.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    async def exec_sync(
        self, request: pb.ExecSyncRequest, version: CRIVersion
    ) -> pb.ExecSyncResponse:
        failed = "failed to exec in container: "
        container = self._running(request.container_id,
                                  failed + 'failed to find container "{}" in store', failed)
        if not request.cmd:
            raise unknown(f'{failed}failed to start exec "{secrets.token_hex(32)}": OCI runtime '
                          f"exec failed: exec failed: args must not be empty: unknown")
        handler = self.exec_handler

        async def run() -> ExecResult:
            result = handler(container, list(request.cmd))
            if inspect.isawaitable(result):
                return await result
            return result

        try:
            if request.timeout > 0:
                result = await asyncio.wait_for(run(), request.timeout)
            else:
                result = await run()
        except TimeoutError:
            raise StatusError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{failed}timeout {request.timeout}s exceeded: context deadline exceeded",
            ) from None
        if cannot_start(result):  # containerd answers an error, not an exit code
            raise unknown(exec_failed(result))
        return pb.ExecSyncResponse(
            stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code
        )

    def exec(self, request: pb.ExecRequest, version: CRIVersion) -> pb.ExecResponse:
        _check_streams(request, "or")  # an empty cmd passes here
        self._running(request.container_id, 'failed to find container "{}" in store')
        return pb.ExecResponse(url=self._url("exec", copy_request(request)))

    def attach(self, request: pb.AttachRequest, version: CRIVersion) -> pb.AttachResponse:
        _check_streams(request, "and")
        self._running(request.container_id, "failed to find container in store")
        return pb.AttachResponse(url=self._url("attach", copy_request(request)))


def _check_streams(request: pb.ExecRequest | pb.AttachRequest, joiner: str) -> None:
    """The streaming server's checks of an Exec or Attach request, in its words (which
    join the streams with "or" for exec and "and" for attach)."""
    if not (request.stdin or request.stdout or request.stderr):
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"one of stdin, stdout, {joiner} stderr must be set")
    if request.tty and request.stderr:
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "tty and stderr cannot both be true")
