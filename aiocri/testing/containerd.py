"""A private, throw-away containerd for tests and benchmarks.

``Containerd.start()`` writes a config file (version 2) into a fresh folder under
/tmp with its own ``root``, ``state`` and gRPC socket, starts ``containerd --config
FILE`` in its own process session, waits until the CRI answers ``Version``, then
imports a busybox image built here from Debian's ``busybox-static`` (nothing is
pulled: no registry is reachable). The same image serves as the sandbox image.

    with Containerd.start() as ctd:
        ctd.endpoint          # "unix:///tmp/aiocri-ctd-xxxx/c.sock"
        ctd.restart(signal.SIGKILL, down_for=0.5)   # pods survive: shims keep running
    # stop(): every pod removed through the CRI, containerd stopped, no shim left,
    # nothing mounted under the folder, folder removed.

Pods must use the host network (there is no CNI here): ``pod_config()`` builds such
a ``PodSandboxConfig`` and ``container_config()`` a ``ContainerConfig`` that runs on
the busybox image.

Needs Linux, root, ``containerd``, ``ctr``, ``containerd-shim-runc-v2``, ``runc`` and a
static busybox (``apt-get install containerd runc busybox-static``):
``containerd_available()`` says why not when it cannot run.

Another containerd than the one on ``PATH``: ``Containerd.start(bin_dir=FOLDER)``
starts ``FOLDER/containerd`` with ``FOLDER`` first on its ``PATH``, so that it starts
its own ``containerd-shim-runc-v2`` (``ctr()`` uses ``FOLDER/ctr`` too); ``runc`` still
comes from ``PATH``. ``.ci/system-deps`` unpacks Debian trixie's containerd 1.7 package
(never installed) into ``CONTAINERD_17_CACHE``; ``containerd_17()`` gives its binary
folder, or None when it is not there:

    bin_dir = containerd_17()
    if bin_dir is not None:
        with Containerd.start(bin_dir=bin_dir) as ctd:
            ctd.version          # "1.7.24~ds1", from the CRI Version answer

A node upgrade in place: ``ctd.switch_to(bin_dir)`` stops containerd (SIGTERM by
default), waits until no daemon runs on its config any more, and starts the binary of
``bin_dir`` (None: the one on ``PATH``) on the same root, state and socket; the pods
keep running. ``kill()``, ``use_binaries(bin_dir)`` and ``launch()`` do the same in
steps, for a test that acts while containerd is down.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import grpc

from aiocri._proto.runtime.v1 import api_pb2

__all__ = [
    "BUSYBOX_IMAGE",
    "BUSYBOX_TOOLS",
    "CONTAINERD_17_CACHE",
    "CRI_NAMESPACE",
    "DEFAULT_LOG_ROOT",
    "Containerd",
    "ContainerdError",
    "binary_version",
    "build_busybox_image",
    "container_config",
    "containerd_17",
    "containerd_available",
    "find_busybox",
    "pod_config",
]

#: The name the CRI shows for the image built here (ListImages repo_tags).
BUSYBOX_IMAGE = "localhost/aiocri/busybox:1"
#: The containerd namespace the CRI plugin works in.
CRI_NAMESPACE = "k8s.io"
#: Applets linked as bin/NAME -> busybox in the image.
BUSYBOX_TOOLS: tuple[str, ...] = (
    "sh", "ash", "sleep", "echo", "cat", "true", "false", "ls", "env", "printf", "test",
    "kill", "ps", "id", "hostname", "wc", "head", "tail", "mkdir", "rm", "touch", "date",
    "yes", "seq", "nproc", "uname", "grep", "sed", "tr", "pwd", "dd", "timeout", "ln", "chmod",
)  # fmt: skip

_BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2", "runc")
_CONTAINERD_BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2")
_BIN_DIR_FILE = "bin_dir"  # the bin_dir it was started with, for reap_stale()

#: Where ``.ci/system-deps`` unpacks Debian trixie's containerd 1.7 package (``dpkg -x``:
#: the binaries are under ``usr/bin``); ``$AIOCRI_CONTAINERD_17`` overrides it, for the
#: script and here alike.
CONTAINERD_17_CACHE = Path(
    os.environ.get("AIOCRI_CONTAINERD_17", "/var/cache/aiocri/containerd-1.7")
)
_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox")
_SOCKET_NAME = "c.sock"
_UNIX_PATH_MAX = 107
_RUNTIME = "/runtime.v1.RuntimeService/"
_IMAGES = "/runtime.v1.ImageService/"
# Local connections for the helper's own channels, so that their backoff never
# leaks into the channels of the code under test (grpc shares subchannels
# process-wide by default).
_CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
_MNT_DETACH = 2
_WORKDIR_PARENT = "/tmp"  # not $TMPDIR: the socket path must stay short
_WORKDIR_PREFIX = "aiocri-ctd-"
_OWNER_FILE = "owner"  # "PID STARTTIME" of the process that started it


class ContainerdError(RuntimeError):
    """containerd could not be started, reached, or cleaned up."""


# --------------------------------------------------------------------------- checks


def _elf_is_static(path: Path) -> bool:
    """True if ``path`` is an ELF executable without a program interpreter."""
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            return False
        bits64 = head[4] == 2
        endian = "<" if head[5] == 1 else ">"
        if bits64:
            (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
        else:
            (phoff,) = struct.unpack_from(endian + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x2A)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: dynamically linked
            return False
    return True


def find_busybox() -> Path | None:
    """The path of a statically linked busybox (Debian: ``busybox-static``), or None."""
    candidates = [Path(p) for p in _BUSYBOX_CANDIDATES]
    which = shutil.which("busybox")
    if which:
        candidates.append(Path(which))
    for path in candidates:
        try:
            if path.is_file() and os.access(path, os.X_OK) and _elf_is_static(path):
                return path.resolve()
        except OSError:
            continue
    return None


def binary_version(binary: str | os.PathLike[str]) -> str | None:
    """The version a containerd binary reports (``containerd --version``'s third
    field, e.g. ``"1.7.24~ds1"``), or None if it does not run."""
    try:
        done = subprocess.run(
            [os.fspath(binary), "--version"], capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    fields = done.stdout.split()
    return fields[2] if done.returncode == 0 and len(fields) >= 3 else None


def containerd_17() -> Path | None:
    """The folder of the containerd 1.7 binaries that ``.ci/system-deps`` unpacked into
    ``CONTAINERD_17_CACHE`` (pass it as ``Containerd.start(bin_dir=...)``), or None if
    they are not there or the binary does not answer as 1.7."""
    bin_dir = CONTAINERD_17_CACHE / "usr" / "bin"
    if any(not os.access(bin_dir / name, os.X_OK) for name in _CONTAINERD_BINARIES):
        return None
    version = binary_version(bin_dir / "containerd")
    return bin_dir if version is not None and version.startswith("1.7.") else None


def _which(name: str, bin_dir: Path | None) -> str | None:
    if bin_dir is not None and name in _CONTAINERD_BINARIES:
        path = bin_dir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name)


def containerd_available(bin_dir: str | os.PathLike[str] | None = None) -> str | None:
    """None if a private containerd can run here, else the reason why not.

    ``bin_dir``: the folder holding ``containerd``, ``ctr`` and
    ``containerd-shim-runc-v2`` (default: ``PATH``)."""
    if not sys.platform.startswith("linux"):
        return f"containerd needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "containerd needs root (run the tests as root)"
    folder = Path(bin_dir) if bin_dir is not None else None
    missing = [b for b in _BINARIES if _which(b, folder) is None]
    if missing:
        where = f" in {folder}" if folder is not None else ""
        return f"missing {', '.join(missing)}{where} (apt-get install containerd runc)"
    if find_busybox() is None:
        return "no statically linked busybox (apt-get install busybox-static)"
    return None


# --------------------------------------------------------------------------- image


def _goarch() -> str:
    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "i386": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)


def _tar_add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None,
             link: str | None = None, mode: int = 0o755) -> None:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    if link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    elif data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)


def _layer(busybox: bytes) -> bytes:
    """The uncompressed layer tar: bin/busybox, its applet links, a few folders."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("bin", "dev", "etc", "proc", "root", "sys", "var"):
            _tar_add(tar, folder + "/", mode=0o700 if folder == "root" else 0o755)
        _tar_add(tar, "tmp/", mode=0o1777)
        _tar_add(tar, "bin/busybox", data=busybox)
        for tool in BUSYBOX_TOOLS:
            _tar_add(tar, f"bin/{tool}", link="busybox", mode=0o777)
        _tar_add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644)
        _tar_add(tar, "etc/group", data=b"root:x:0:\n", mode=0o644)
    return buf.getvalue()


def build_busybox_image(
    dest: str | os.PathLike[str],
    *,
    ref: str = BUSYBOX_IMAGE,
    busybox: str | os.PathLike[str] | None = None,
) -> Path:
    """Write an OCI image layout tar of a one-layer busybox image to ``dest``.

    The manifest carries ``ref`` as ``org.opencontainers.image.ref.name`` (and as
    containerd's ``io.containerd.image.name``), so ``ctr images import`` names the
    image ``ref`` as is. Deterministic: the same busybox gives the same digests.
    """
    source = Path(busybox) if busybox is not None else find_busybox()
    if source is None:
        raise ContainerdError("no statically linked busybox (apt-get install busybox-static)")
    layer = _layer(source.read_bytes())
    layer_gz = gzip.compress(layer, compresslevel=6, mtime=0)
    arch = _goarch()
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["sleep", "2147483647"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "aiocri.testing"}],
    }
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def dumps(obj: object) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(dumps(config), "application/vnd.oci.image.config.v1+json"),
        "layers": [blob(layer_gz, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }
    manifest_desc = blob(dumps(manifest), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["platform"] = {"architecture": arch, "os": "linux"}
    manifest_desc["annotations"] = {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": ref,
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_desc],
    }
    out = Path(dest)
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_add(tar, "oci-layout", data=dumps({"imageLayoutVersion": "1.0.0"}), mode=0o644)
        _tar_add(tar, "index.json", data=dumps(index), mode=0o644)
        _tar_add(tar, "blobs/", mode=0o755)
        _tar_add(tar, "blobs/sha256/", mode=0o755)
        for digest, data in sorted(blobs.items()):
            _tar_add(tar, f"blobs/sha256/{digest}", data=data, mode=0o644)
    return out


# --------------------------------------------------------------------------- configs


#: Where ``pod_config()`` puts pod logs when not told (``Containerd.pod_config``
#: puts them under its own folder, removed by ``stop()``).
DEFAULT_LOG_ROOT = Path(tempfile.gettempdir()) / "aiocri-pod-logs"


def pod_config(
    name: str,
    *,
    namespace: str = "default",
    uid: str | None = None,
    attempt: int = 0,
    log_directory: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    hostname: str = "",
) -> api_pb2.PodSandboxConfig:
    """A pod sandbox config that runs here: host network (no CNI), a log folder."""
    uid = uid if uid is not None else str(uuid.uuid4())
    if log_directory is None:
        log_directory = DEFAULT_LOG_ROOT / f"{namespace}_{name}_{uid}"
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(
            name=name, uid=uid, namespace=namespace, attempt=attempt
        ),
        hostname=hostname,
        log_directory=os.fspath(log_directory),
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        linux=api_pb2.LinuxPodSandboxConfig(
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(network=api_pb2.NamespaceMode.NODE)
            )
        ),
    )


def container_config(
    name: str,
    image: str = BUSYBOX_IMAGE,
    command: Sequence[str] = ("sleep", "3600"),
    *,
    args: Sequence[str] = (),
    attempt: int = 0,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    log_path: str | None = None,
) -> api_pb2.ContainerConfig:
    """A container config for ``image``; its log goes to ``NAME_ATTEMPT.log`` in the
    pod's log folder.

    Note: ``sleep`` runs as PID 1 of its PID namespace and so ignores SIGTERM:
    ``StopContainer`` with ``timeout > 0`` waits the whole timeout before SIGKILL.
    Use ``timeout=0`` (SIGKILL at once) or a command that handles SIGTERM.
    """
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=api_pb2.ImageSpec(image=image),
        command=list(command),
        args=list(args),
        envs=[api_pb2.KeyValue(key=k, value=v.encode()) for k, v in (env or {}).items()],
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        log_path=log_path if log_path is not None else f"{name}_{attempt}.log",
    )


# --------------------------------------------------------------------------- /proc


def _proc_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None if it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): with the PID, its identity."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw:
        return None
    return raw[raw.rfind(b")") + 2 :].split()[19].decode()


def _unescape_mount(path: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit() and len(path[i + 1 : i + 4]) == 3:
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder).rstrip("/") + "/"
    found = []
    for line in _read("/proc/self/mounts").decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            target = _unescape_mount(fields[1])
            if target.startswith(prefix) or target == str(folder):
                found.append(target)
    return found


def _umount(target: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: no longer a mount point; ENOENT: gone
            raise OSError(err, os.strerror(err), target)


# --------------------------------------------------------------------------- containerd


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string here


class Containerd:
    """One private containerd process and its folder. Use ``Containerd.start()``."""

    def __init__(
        self,
        workdir: Path,
        *,
        image: str = BUSYBOX_IMAGE,
        bin_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.image = image
        #: The folder its ``containerd``, shim and ``ctr`` come from (None: ``PATH``).
        self.bin_dir = Path(bin_dir).resolve() if bin_dir is not None else None
        #: containerd's version from its last CRI Version answer (``"1.6.20~ds1"``).
        self.version = ""
        self.root = workdir / "root"
        self.state = workdir / "state"
        self.socket = workdir / _SOCKET_NAME
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "containerd.log"
        self.pod_log_root = workdir / "pod-logs"
        self.process: subprocess.Popen[bytes] | None = None
        #: Seconds the last launch took until the CRI answered Version.
        self.last_launch_seconds = 0.0
        #: Seconds the image build and import took.
        self.import_seconds = 0.0
        self._stopped = False
        #: What stop() had to repair (empty when everything went away properly).
        self.stop_notes: list[str] = []
        if len(str(self.socket)) + len(".ttrpc") > _UNIX_PATH_MAX:
            raise ContainerdError(f"socket path too long for a unix socket: {self.socket}")

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        *,
        image: str = BUSYBOX_IMAGE,
        ready_timeout: float = 15.0,
        log_level: str = "info",
        import_image: bool = True,
        bin_dir: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Start a private containerd and import the busybox image (named ``image``).

        ``bin_dir``: start ``bin_dir/containerd`` (its shim and ``ctr`` from there too)
        rather than the one on ``PATH``; see ``containerd_17()``."""
        reason = containerd_available(bin_dir)
        if reason is not None:
            raise ContainerdError(f"containerd cannot run here: {reason}")
        cls.reap_stale()
        workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=_WORKDIR_PARENT))
        ctd = cls(workdir, image=image, bin_dir=bin_dir)
        try:
            if ctd.bin_dir is not None:
                (workdir / _BIN_DIR_FILE).write_text(f"{ctd.bin_dir}\n")
            me = os.getpid()
            (workdir / _OWNER_FILE).write_text(f"{me} {_start_time(me)}\n")
            ctd._write_config(log_level)
            ctd.launch(ready_timeout=ready_timeout)
            if import_image:
                ctd.import_busybox(image)
        except BaseException:
            ctd.stop(relaunch=False)
            raise
        return ctd

    @classmethod
    async def astart(
        cls,
        *,
        image: str = BUSYBOX_IMAGE,
        ready_timeout: float = 15.0,
        log_level: str = "info",
        import_image: bool = True,
        bin_dir: str | os.PathLike[str] | None = None,
    ) -> Self:
        """``start()`` in a worker thread."""
        return await anyio.to_thread.run_sync(
            lambda: cls.start(
                image=image,
                ready_timeout=ready_timeout,
                log_level=log_level,
                import_image=import_image,
                bin_dir=bin_dir,
            )
        )

    @classmethod
    def reap_stale(cls) -> list[Path]:
        """Clean up after private containerds whose owning process is gone (a test run
        killed hard): kill their containerd, pods, shims; remove their folders.
        ``start()`` calls it. Returns the folders it removed."""
        reaped: list[Path] = []
        for workdir in sorted(Path(_WORKDIR_PARENT).glob(_WORKDIR_PREFIX + "*")):
            owner = _read(str(workdir / _OWNER_FILE)).decode(errors="replace").split()
            if len(owner) != 2 or not owner[0].isdigit():
                continue  # being set up right now, or not ours
            if _start_time(int(owner[0])) == owner[1]:
                continue  # its owner is alive
            recorded = _read(str(workdir / _BIN_DIR_FILE)).decode(errors="replace").strip()
            stale = cls(workdir, bin_dir=recorded or None)
            for pid in stale.own_processes():
                argv = _read(f"/proc/{pid}/cmdline").split(b"\0")
                if os.path.basename(argv[0]) == b"containerd":
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + 5
                    while _alive(pid) and time.monotonic() < deadline:
                        time.sleep(0.01)
            with contextlib.suppress(ContainerdError):
                stale.stop()  # starts it again to remove its pods, then stops it
            reaped.append(workdir)
        return reaped

    async def astop(self) -> None:
        """``stop()`` in a worker thread."""
        await anyio.to_thread.run_sync(self.stop)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The CRI endpoint, ``unix:///tmp/aiocri-ctd-.../c.sock``."""
        return f"unix://{self.socket}"

    @property
    def address(self) -> str:
        """The socket path (what ``ctr -a`` takes)."""
        return str(self.socket)

    def _binary(self, name: str) -> str:
        """``name`` from ``bin_dir``, or as is (found on ``PATH``)."""
        return str(self.bin_dir / name) if self.bin_dir is not None else name

    def _env(self) -> dict[str, str] | None:
        """The environment of containerd and ctr: ``bin_dir`` first on ``PATH`` (so
        that containerd starts its own shim), else inherited as is."""
        if self.bin_dir is None:
            return None
        path = os.environ.get("PATH", os.defpath)
        return dict(os.environ, PATH=f"{self.bin_dir}{os.pathsep}{path}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self, log_level: str) -> None:
        for folder in (self.root, self.state, self.pod_log_root):
            folder.mkdir(parents=True, exist_ok=True)
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        text = f"""\
version = 2
root = {_toml(str(self.root))}
state = {_toml(str(self.state))}
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = {_toml(str(self.socket))}

[debug]
  level = {_toml(log_level)}

[plugins."io.containerd.internal.v1.opt"]
  path = {_toml(str(self.root / "opt"))}

{cri}]
  sandbox_image = {_toml(self.image)}
  # This VM refuses the negative oom_score_adj the CRI asks for: without this
  # every sandbox fails in runc ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  # Any free port: several private containerds can run at once.
  stream_server_port = "0"
  enable_selinux = false

{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"

{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri}.containerd.runtimes.runc.options]
  # runc's state under our folder, not /run/containerd/runc.
  Root = {_toml(str(self.state / "runc"))}
  SystemdCgroup = false

{cri}.cni]
  # No CNI (pods use the host network); keep it off /etc/cni and /opt/cni.
  bin_dir = {_toml(str(self.root / "cni" / "bin"))}
  conf_dir = {_toml(str(self.root / "cni" / "net.d"))}
"""
        self.config_path.write_text(text)

    def launch(self, *, ready_timeout: float = 15.0) -> None:
        """Start the containerd process (same config) and wait until the CRI answers."""
        if self.running:
            raise ContainerdError("containerd is already running")
        if self._stopped:
            raise ContainerdError("this containerd was stopped for good")
        # A SIGKILLed containerd leaves its socket file: remove it so that the
        # file's existence means "bound" again.
        for stale in (self.socket, Path(f"{self.socket}.ttrpc")):
            stale.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- aiocri: starting containerd at {time.time():.3f}\n".encode())
            log.flush()
            begin = time.monotonic()
            self.process = subprocess.Popen(
                [self._binary("containerd"), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                start_new_session=True,
            )
        self._wait_ready(begin + ready_timeout)
        self.last_launch_seconds = time.monotonic() - begin

    def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ContainerdError(
                    f"containerd exited with status {self.process.returncode}"
                    f" before answering; log tail:\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ContainerdError(
                    f"containerd did not answer CRI Version on {self.endpoint} in time"
                    f" (last error: {last!r}); log tail:\n{self.log_tail()}"
                )
            if self.socket.exists():
                try:
                    self.version = self.cri_version(timeout=min(remaining, 2.0)).runtime_version
                    return
                except grpc.RpcError as e:
                    last = e
            time.sleep(0.01)

    def kill(self, sig: int = signal.SIGTERM, *, timeout: float = 15.0) -> None:
        """Send ``sig`` to containerd and wait until it has exited (SIGKILL after
        ``timeout``). Pods and their shims keep running."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(
        self,
        sig: int = signal.SIGTERM,
        down_for: float = 0.0,
        *,
        ready_timeout: float = 15.0,
    ) -> None:
        """Kill containerd with ``sig``, wait for it to exit, stay down ``down_for``
        seconds, start it again with the same config and wait until it answers."""
        self.kill(sig)
        if down_for > 0:
            time.sleep(down_for)
        self.launch(ready_timeout=ready_timeout)

    async def arestart(
        self,
        sig: int = signal.SIGTERM,
        down_for: float = 0.0,
        *,
        ready_timeout: float = 15.0,
    ) -> None:
        """``restart()`` in a worker thread, so that the event loop keeps running."""
        await anyio.to_thread.run_sync(
            lambda: self.restart(sig, down_for, ready_timeout=ready_timeout)
        )

    def use_binaries(self, bin_dir: str | os.PathLike[str] | None) -> None:
        """Take ``containerd``, its shim and ``ctr`` from ``bin_dir`` (None: ``PATH``)
        from the next ``launch()`` on. Only while containerd is down; waits until no
        daemon of the old binary runs on this config any more."""
        if self.running:
            raise ContainerdError("stop containerd before changing its binaries")
        reason = containerd_available(bin_dir)
        if reason is not None:
            raise ContainerdError(f"containerd cannot run here: {reason}")
        self._wait_no_other_daemon()
        self.bin_dir = Path(bin_dir).resolve() if bin_dir is not None else None
        record = self.workdir / _BIN_DIR_FILE
        if self.bin_dir is None:
            record.unlink(missing_ok=True)
        else:
            record.write_text(f"{self.bin_dir}\n")

    def switch_to(
        self,
        bin_dir: str | os.PathLike[str] | None,
        sig: int = signal.SIGTERM,
        *,
        down_for: float = 0.0,
        ready_timeout: float = 15.0,
    ) -> None:
        """What a node upgrade (or downgrade) does: stop containerd with ``sig``, then
        start the one in ``bin_dir`` (None: on ``PATH``) with the same config, root,
        state and socket. Pods keep running in the shims the old binary started."""
        reason = containerd_available(bin_dir)
        if reason is not None:  # before stopping the running one
            raise ContainerdError(f"containerd cannot run here: {reason}")
        self.kill(sig)
        self.use_binaries(bin_dir)
        if down_for > 0:
            time.sleep(down_for)
        self.launch(ready_timeout=ready_timeout)

    async def aswitch_to(
        self,
        bin_dir: str | os.PathLike[str] | None,
        sig: int = signal.SIGTERM,
        *,
        down_for: float = 0.0,
        ready_timeout: float = 15.0,
    ) -> None:
        """``switch_to()`` in a worker thread."""
        await anyio.to_thread.run_sync(
            lambda: self.switch_to(bin_dir, sig, down_for=down_for, ready_timeout=ready_timeout)
        )

    def _wait_no_other_daemon(self, timeout: float = 10.0) -> None:
        """Wait until no containerd process runs on this config (two daemons on one
        root would fight over its database)."""
        config = os.fsencode(self.config_path)
        deadline = time.monotonic() + timeout
        while True:
            daemons = [
                pid for pid in _proc_pids()
                if config in _read(f"/proc/{pid}/cmdline").split(b"\0") and _alive(pid)
            ]  # fmt: skip
            if not daemons:
                return
            if time.monotonic() > deadline:
                raise ContainerdError(f"containerd {daemons} still running on {self.config_path}")
            time.sleep(0.01)

    async def akill(self, sig: int = signal.SIGTERM) -> None:
        """``kill()`` in a worker thread."""
        await anyio.to_thread.run_sync(lambda: self.kill(sig))

    async def alaunch(self, *, ready_timeout: float = 15.0) -> None:
        """``launch()`` in a worker thread."""
        await anyio.to_thread.run_sync(lambda: self.launch(ready_timeout=ready_timeout))

    def stop(self, *, relaunch: bool = True) -> None:
        """Remove every pod through the CRI, stop containerd, kill any shim or container
        process of its own that stayed behind, unmount anything under its folder and
        remove the folder. Safe to call twice.

        What went wrong on the way but was repaired (say, shims that had to be killed)
        is kept in ``stop_notes``; ContainerdError if something is still left behind.
        """
        if self._stopped:
            return
        notes = self.stop_notes
        # Start it again only if it went down with live tasks, so that their pods go
        # away the proper way (else its database goes with the folder anyway).
        if self.config_path.exists() and (self.running or (relaunch and self.task_ids())):
            if not self.running:
                try:
                    self.launch(ready_timeout=10.0)
                except Exception as e:  # best effort: the kill path below still runs
                    notes.append(f"could not start containerd to remove pods: {e}")
            if self.running:
                try:
                    self.remove_all_pods()
                except Exception as e:
                    notes.append(f"removing pods through the CRI failed: {e!r}")
        self._stopped = True
        self.kill(signal.SIGTERM)
        killed = self._kill_leftovers()
        if killed:
            notes.append(f"killed leftover processes {killed}")
        left: list[str] = []
        survivors = [pid for pid in killed if _alive(pid)]
        if survivors:
            left.append(f"processes {survivors} survived SIGKILL")
        for target in sorted(_mounts_under(self.workdir), key=len, reverse=True):
            notes.append(f"unmounted {target}")
            try:
                _umount(target)
            except OSError as e:
                left.append(f"umount {target}: {e}")
        errors: list[str] = []
        shutil.rmtree(self.workdir, onerror=lambda _f, p, e: errors.append(f"{p}: {e[1]}"))
        if errors:
            left.append(f"could not remove {self.workdir}: {errors[:5]}")
        if left:
            raise ContainerdError("; ".join(left + notes))

    # ----------------------------------------------------------------- leftovers

    def task_ids(self) -> set[str]:
        """IDs of the tasks (sandboxes, containers) its shims know, from its state folder."""
        ids: set[str] = set()
        tasks = self.state / "io.containerd.runtime.v2.task"
        if tasks.is_dir():
            for ns in tasks.iterdir():
                if ns.is_dir():
                    ids.update(p.name for p in ns.iterdir())
        return ids

    def task_dir(self, task_id: str, namespace: str = CRI_NAMESPACE) -> Path:
        """The bundle folder of a task (a sandbox or a container): ``rootfs/`` is the
        container's root file system as mounted, ``init.pid`` its first process."""
        return self.state / "io.containerd.runtime.v2.task" / namespace / task_id

    def task_pid(self, task_id: str, namespace: str = CRI_NAMESPACE) -> int | None:
        """The host PID of a task's first process (from its shim's ``init.pid``), or
        None if the task has no bundle (never started, or deleted)."""
        text = _read(str(self.task_dir(task_id, namespace) / "init.pid")).strip()
        return int(text) if text.isdigit() else None

    def runc_kill(self, task_id: str, sig: int = signal.SIGKILL, *,
                  namespace: str = CRI_NAMESPACE) -> None:
        """Signal a task's first process through runc (its state is under our
        folder), behind containerd's back: works while containerd is down."""
        root = self.state / "runc" / namespace
        done = subprocess.run(["runc", "--root", str(root), "kill", task_id, str(int(sig))],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise ContainerdError(f"runc kill {task_id} failed: {done.stderr.strip()}")

    @staticmethod
    def process_alive(pid: int) -> bool:
        """True while ``pid`` runs (a zombie counts as gone)."""
        return _alive(pid)

    def own_processes(self) -> list[int]:
        """PIDs of the processes that belong to this containerd apart from itself:
        shims and runc whose command line names its folder, processes in the cgroup of
        one of its tasks, and their descendants."""
        marker = str(self.workdir).encode()
        ids = self.task_ids()
        me = os.getpid()
        children: dict[int, list[int]] = {}
        own: set[int] = set()
        main = self.pid if self.running else None
        for pid in _proc_pids():
            if pid in (me, main):
                continue
            st = _stat(pid)
            if st is None:
                continue
            children.setdefault(st[1], []).append(pid)
            argv = _read(f"/proc/{pid}/cmdline").split(b"\0")
            exe = os.path.basename(argv[0]).decode(errors="replace") if argv else ""
            if (exe.startswith("containerd") or exe == "runc") and marker in b" ".join(argv):
                own.add(pid)
                continue
            if ids:
                for line in _read(f"/proc/{pid}/cgroup").decode(errors="replace").splitlines():
                    path = line.split(":", 2)[-1]
                    if path.rstrip("/").rsplit("/", 1)[-1] in ids:
                        own.add(pid)
                        break
        todo = list(own)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in own and child not in (me, main):
                    own.add(child)
                    todo.append(child)
        return sorted(pid for pid in own if _alive(pid))

    def _kill_leftovers(self, timeout: float = 5.0) -> list[int]:
        pids = self.own_processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        # What dead shims leave behind (no-ops when the tasks went away properly).
        self._remove_shim_sockets()
        self._remove_cgroups()
        return pids

    def _remove_shim_sockets(self) -> None:
        # A killed shim leaves its socket file outside our folder (containerd 1.6:
        # /run/containerd/s/HASH); the task's ``address`` file names it.
        tasks = self.state / "io.containerd.runtime.v2.task"
        for address_file in tasks.glob("*/*/address"):
            address = _read(str(address_file)).decode(errors="replace").strip()
            path = address.removeprefix("unix://")
            with contextlib.suppress(OSError):
                if address.startswith("unix://") and stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)

    def _remove_cgroups(self) -> None:
        ids = self.task_ids()
        if not ids:
            return
        for line in _read("/proc/self/mounts").decode(errors="replace").splitlines():
            fields = line.split()
            if len(fields) < 3 or fields[2] not in ("cgroup", "cgroup2"):
                continue
            mount = Path(_unescape_mount(fields[1]))
            for task_id in ids:
                for candidate in (mount / CRI_NAMESPACE / task_id, mount / task_id):
                    with contextlib.suppress(OSError):
                        candidate.rmdir()

    # ----------------------------------------------------------------- CRI and ctr

    def _call(self, path: str, request: Any, response_type: Any, *, timeout: float = 30.0) -> Any:
        with grpc.insecure_channel(self.endpoint, options=_CHANNEL_OPTIONS) as channel:
            method = channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )
            return method(request, timeout=timeout)

    def cri_version(self, *, timeout: float = 5.0) -> api_pb2.VersionResponse:
        """The CRI ``Version`` answer on ``runtime.v1`` (sync, its own channel)."""
        response: api_pb2.VersionResponse = self._call(
            _RUNTIME + "Version", api_pb2.VersionRequest(), api_pb2.VersionResponse,
            timeout=timeout,
        )  # fmt: skip
        return response

    def list_images(self) -> list[api_pb2.Image]:
        response: api_pb2.ListImagesResponse = self._call(
            _IMAGES + "ListImages", api_pb2.ListImagesRequest(), api_pb2.ListImagesResponse
        )
        return list(response.images)

    def list_pods(self) -> list[api_pb2.PodSandbox]:
        response: api_pb2.ListPodSandboxResponse = self._call(
            _RUNTIME + "ListPodSandbox",
            api_pb2.ListPodSandboxRequest(),
            api_pb2.ListPodSandboxResponse,
        )
        return list(response.items)

    def remove_all_pods(self) -> int:
        """StopPodSandbox + RemovePodSandbox for every pod (their containers go too).
        Returns how many pods there were."""
        pods = self.list_pods()
        for pod in pods:
            self._call(
                _RUNTIME + "StopPodSandbox",
                api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id),
                api_pb2.StopPodSandboxResponse,
            )
            self._call(
                _RUNTIME + "RemovePodSandbox",
                api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                api_pb2.RemovePodSandboxResponse,
            )
        return len(pods)

    async def aremove_all_pods(self) -> int:
        """``remove_all_pods()`` in a worker thread."""
        return await anyio.to_thread.run_sync(self.remove_all_pods)

    def ctr(self, *args: str, namespace: str = CRI_NAMESPACE,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``ctr -a SOCKET -n NAMESPACE ARGS...``; ContainerdError if it fails."""
        cmd = [self._binary("ctr"), "-a", str(self.socket), "-n", namespace, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              env=self._env())  # fmt: skip
        if done.returncode != 0:
            raise ContainerdError(
                f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done

    def import_busybox(self, ref: str = BUSYBOX_IMAGE, *, timeout: float = 15.0) -> None:
        """Build the busybox image as ``ref``, import it for the CRI, and wait until the
        CRI's ListImages shows it."""
        begin = time.monotonic()
        archive = build_busybox_image(self.workdir / "busybox-oci.tar", ref=ref)
        try:
            # Unpacked for the CRI's snapshotter ("native"), or containers cannot
            # be created from it. The full name comes from the index annotation.
            self.ctr("images", "import", "--snapshotter", "native", str(archive))
        finally:
            archive.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while not any(ref in image.repo_tags for image in self.list_images()):
            if time.monotonic() > deadline:
                raise ContainerdError(
                    f"imported {ref} but the CRI does not list it; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self.import_seconds = time.monotonic() - begin

    # ----------------------------------------------------------------- helpers

    def pod_config(self, name: str, **kwargs: Any) -> api_pb2.PodSandboxConfig:
        """``pod_config()`` with the pod's logs under this containerd's folder."""
        uid = kwargs.pop("uid", None) or str(uuid.uuid4())
        namespace = kwargs.get("namespace", "default")
        kwargs.setdefault("log_directory", self.pod_log_root / f"{namespace}_{name}_{uid}")
        return pod_config(name, uid=uid, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of containerd's log."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        version = f" {self.version}" if self.version else ""
        return f"<Containerd{version} {self.endpoint} pid={self.pid} {state}>"
