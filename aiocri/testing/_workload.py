"""A container's main process in the fake runtime: its command, run by the small shell.

StartContainer launches the container's command (``command`` + ``args``, else the
image's default) as an asyncio task on the serving loop: what it prints goes to the
log file and to attached sessions, what attach writes to its stdin it reads, and
when the command ends the container exits with its code, as a real one does.
``sleep infinity`` and the programs the fake does not have (an nginx or redis
image's server) run until stopped and cost no task, so ``populate()`` of 10,000
containers stays cheap. Without a running event loop (a state scripted from
synchronous code) nothing is launched: the container runs until it is stopped.

A script that begins ``trap '' TERM`` (also ``""``, ``15``, ``SIGTERM``, with other
signals beside it) is taken to ignore the stop signal, so that StopContainer must wait
out its timeout and kill it (exit 137), as with a real process that ignores SIGTERM;
traps set later in a script are not seen from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._model import Container
from aiocri.testing._shell import FileSystem, Shell, ShellContext, Writer, is_known, run_argv

if TYPE_CHECKING:
    from aiocri.testing._containers import ContainerOps

__all__ = [
    "Process",
    "StdinPipe",
    "end",
    "guarded",
    "image_command",
    "image_users",
    "interactive",
    "launch",
    "shell_context",
]

_SHELLS = frozenset({"sh", "ash", "bash", "dash"})
_IGNORES_TERM = re.compile(
    r"""^\s*trap[ \t]+(--[ \t]+)?(''|"")([ \t]+\w+)*?[ \t]+(SIG)?(TERM|15)\b""", re.IGNORECASE)


class StdinPipe:
    """A running container's stdin: attach sessions write, its command reads. Bounded,
    as a pipe is: a writer waits while the command does not read."""

    def __init__(self, chunks: int = 16) -> None:
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue(chunks)
        self.closed = False

    async def write(self, data: bytes) -> None:
        if not self.closed and data:
            await self._chunks.put(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):  # full: the reader sees `closed`
                self._chunks.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not (self.closed and self._chunks.empty()):
            chunk = await self._chunks.get()
            if chunk is None:
                break
            yield chunk
        with contextlib.suppress(asyncio.QueueFull):
            self._chunks.put_nowait(None)  # every later reader sees the end too


@dataclass(eq=False)
class Process:
    """What a container runs: its files, its stdin, and the task running its command."""

    stdin: StdinPipe | None = None
    task: asyncio.Task[None] | None = None
    ignores_stop_signal: bool = False
    #: kills it when a StopContainer's timeout runs out
    kill_timer: asyncio.TimerHandle | None = None
    _files: FileSystem | None = None

    @property
    def files(self) -> FileSystem:
        """The container's files, made at first use (10,000 idle containers make none)."""
        if self._files is None:
            self._files = FileSystem.busybox()
        return self._files


@functools.cache
def image_users() -> frozenset[str]:
    """The user names the fake's images know (busybox's /etc/passwd)."""
    text = FileSystem.busybox().read("/etc/passwd").decode()
    return frozenset(line.split(":", 1)[0] for line in text.splitlines() if line)


def image_command(container: Container) -> list[str]:
    """The command a container runs: its config's, else its image's default."""
    argv = [*container.config.command, *container.config.args]
    if argv:
        return argv
    # busybox's default is `sh`; other images (pause, nginx, ...) run a server
    return ["sh"] if "busybox" in container.image.name else ["/pause"]


def _runs_quietly_forever(argv: list[str]) -> bool:
    base = argv[0].rsplit("/", 1)[-1]
    if base == "sleep" and len(argv) == 2:
        with contextlib.suppress(ValueError):
            return argv[1] == "infinity" or float(argv[1]) >= 1e6 or math.isinf(float(argv[1]))
    return not is_known(argv[0])


def shell_context(container: Container, files: FileSystem) -> ShellContext:
    """The environment a command sees in ``container``: containerd's HOSTNAME, then the
    config's variables; the user by id, or by name from the image's /etc/passwd."""
    config, pod = container.config, container.pod.config
    security = config.linux.security_context
    host_network = pod.linux.security_context.namespace_options.network == pb.NODE
    hostname = pod.hostname or (socket.gethostname() if host_network else pod.metadata.name)
    env = {"HOSTNAME": hostname}
    env.update((kv.key, kv.value.decode(errors="replace")) for kv in config.envs)
    uid, gid = _user_ids(files, security.run_as_username)
    return ShellContext(
        env=env,
        hostname=hostname,
        working_dir=config.working_dir or "/",
        uid=security.run_as_user.value if security.HasField("run_as_user") else uid,
        gid=security.run_as_group.value if security.HasField("run_as_group") else gid,
        files=files,
        supplemental_groups=tuple(security.supplemental_groups),
    )


def _user_ids(files: FileSystem, name: str) -> tuple[int, int]:
    if not name:
        return 0, 0
    for line in files.read("/etc/passwd").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3])
    return 0, 0


def launch(state: ContainerOps, container: Container) -> Process:
    """Start ``container``'s command; its process record (also when nothing runs)."""
    process = Process(stdin=StdinPipe() if container.config.stdin else None)
    argv = image_command(container)
    script = argv[2] if len(argv) >= 3 and argv[1] == "-c" else ""
    if argv[0].rsplit("/", 1)[-1] in _SHELLS and _IGNORES_TERM.match(script):
        process.ignores_stop_signal = True  # the shell runs the trap itself (it records it)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return process
    if _runs_quietly_forever(argv) and process.stdin is None:
        return process
    process.task = loop.create_task(_run(state, container, process, argv))
    return process


def end(process: Process) -> None:
    """The container has stopped: its command, stdin and kill timer go."""
    if process.kill_timer is not None:
        process.kill_timer.cancel()
    if process.stdin is not None:
        process.stdin.close()
    task = process.task
    if task is not None and not task.done():
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        if task is not current:
            task.cancel()


async def _run(state: ContainerOps, container: Container, process: Process,
               argv: list[str]) -> None:
    async def out(data: bytes) -> None:
        if container.running and data:
            state.write_output(container.id, data, "stdout")

    async def err(data: bytes) -> None:
        if container.running and data:
            state.write_output(container.id, data, "stderr")

    ctx = shell_context(container, process.files)
    base = argv[0].rsplit("/", 1)[-1]
    stdin = process.stdin.__aiter__() if process.stdin is not None else None
    waits_on_terminal = base in _SHELLS and len(argv) == 1 and container.config.tty
    if (waits_on_terminal and stdin is None) or (
            _runs_quietly_forever(argv) and not (base in _SHELLS and stdin is not None)):
        await asyncio.Event().wait()  # a server, or a shell on a terminal: until stopped
        return
    code = await guarded(
        interactive(ctx, base, stdin, out, err) if base in _SHELLS and len(argv) == 1
        and stdin is not None else run_argv(argv, ctx, stdin=stdin, stdout=out, stderr=err),
        err)
    if container.running and container.process is process:
        state.exit_container(container.id, code)


async def guarded(command: Awaitable[int], err: Writer) -> int:
    """``command``'s exit code; a fault of the fake's shell (a Python exception) is said
    on stderr and ends it with 2, instead of leaving a container running for ever or
    breaking an exec session."""
    try:
        return await command
    except Exception as exc:  # the shell's own bug, never the user's: say it, go on
        await err(f"sh: the fake runtime's shell failed: {type(exc).__name__}: {exc}\n"
                  .encode())
        return 2


async def interactive(ctx: ShellContext, name: str, stdin: AsyncIterator[bytes],
                      out: Writer, err: Writer,
                      special: Callable[[str], Awaitable[bool]] | None = None) -> int:
    """``sh`` reading its commands from stdin, a line at a time as they arrive;
    ``special(line)`` may take a line first (True: handled)."""
    shell = Shell(ctx, name=name)
    pending = b""
    async for chunk in stdin:
        pending += chunk.replace(b"\r", b"\n")  # a terminal sends CR for Enter
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.decode(errors="replace")
            if special is not None and await special(text):
                continue
            await shell.run(text, stdin=None, stdout=out, stderr=err)
            if shell.exited:
                return shell.status
    if pending.strip():
        await shell.run(pending.decode(errors="replace"), stdin=None,
                        stdout=out, stderr=err)
    return shell.status
