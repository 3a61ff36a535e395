"""The per-container in-memory file system, the tree of a busybox image, its /etc tables."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import Literal

from aiocri.testing._shell._registry import APPLETS


@dataclass(eq=False)
class _File:
    data: bytearray = field(default_factory=bytearray)
    mode: int = 0o644
    device: str = ""  # "null", "stdin", "stdout", "stderr": read and written specially
    mtime: float = field(default_factory=time.time)


@dataclass(eq=False)
class _Dir:
    entries: dict[str, _File | _Dir] = field(default_factory=dict)
    mode: int = 0o755
    mtime: float = field(default_factory=time.time)


@dataclass(frozen=True)
class FileInfo:
    """What ``ls -l`` and ``test`` want to know about a path."""

    kind: Literal["file", "dir", "device"]
    mode: int
    size: int
    mtime: float
    nlink: int


def oserror(kind: type[OSError], code: int, path: str) -> OSError:
    return kind(code, os.strerror(code), path)


class FileSystem:
    """An in-memory tree of directories and files, one per container.

    Paths given to its methods are absolute (see :meth:`normalize`); failures raise
    the usual :class:`OSError` subclasses with ``strerror`` set, as the OS would.
    """

    def __init__(self) -> None:
        self._root = _Dir()

    @classmethod
    def busybox(cls, hostname: str | None = None) -> FileSystem:
        """The top level of a busybox:1.36 image, with the fake's applets in /bin."""
        fs = cls()
        for path in ("/bin", "/dev/pts", "/dev/shm", "/etc", "/home", "/lib", "/lib64",
                     "/proc", "/root", "/sys", "/tmp", "/usr/sbin", "/var/spool/mail",
                     "/var/www"):
            fs.mkdir(path, parents=True)
        fs._dir("/tmp").mode = 0o1777
        fs._dir("/root").mode = 0o700
        for name in ("busybox", *APPLETS):
            fs.write(f"/bin/{name}", b"")
            fs._file(f"/bin/{name}").mode = 0o755
        devices = fs._dir("/dev").entries
        for name in ("null", "stdin", "stdout", "stderr"):
            devices[name] = _File(mode=0o666, device=name)
        for name, text in _ETC.items():
            fs.write(f"/etc/{name}", text.encode())
        if hostname is not None:
            fs.set_hostname(hostname)
        return fs

    def set_hostname(self, hostname: str) -> None:
        """Write /etc/hostname and /etc/hosts the way the runtime does for a pod."""
        self.write("/etc/hostname", f"{hostname}\n".encode())
        self.write("/etc/hosts", _ETC["hosts"].encode() + f"127.0.1.1\t{hostname}\n".encode())

    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        """``path`` made absolute against ``cwd``, with ``.`` and ``..`` resolved."""
        parts: list[str] = []
        for part in (path if path.startswith("/") else f"{cwd}/{path}").split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        return "/" + "/".join(parts)

    def _node(self, path: str) -> _File | _Dir:
        node: _File | _Dir = self._root
        for part in self.normalize(path).split("/")[1:]:
            if not part:
                continue
            if not isinstance(node, _Dir):
                raise oserror(NotADirectoryError, errno.ENOTDIR, path)
            if part not in node.entries:
                raise oserror(FileNotFoundError, errno.ENOENT, path)
            node = node.entries[part]
        return node

    def _dir(self, path: str) -> _Dir:
        node = self._node(path)
        if not isinstance(node, _Dir):
            raise oserror(NotADirectoryError, errno.ENOTDIR, path)
        return node

    def _file(self, path: str) -> _File:
        node = self._node(path)
        if isinstance(node, _Dir):
            raise oserror(IsADirectoryError, errno.EISDIR, path)
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        path = self.normalize(path)
        head, name = path.rsplit("/", 1)
        return self._dir(head or "/"), name

    def exists(self, path: str) -> bool:
        try:
            self._node(path)
        except OSError:
            return False
        return True

    def is_dir(self, path: str) -> bool:
        return self.exists(path) and isinstance(self._node(path), _Dir)

    def is_file(self, path: str) -> bool:
        return self.exists(path) and isinstance(self._node(path), _File)

    def stat(self, path: str) -> FileInfo:
        node = self._node(path)
        if isinstance(node, _Dir):
            subdirs = sum(isinstance(n, _Dir) for n in node.entries.values())
            return FileInfo("dir", node.mode, 4096, node.mtime, 2 + subdirs)
        kind: Literal["file", "device"] = "device" if node.device else "file"
        return FileInfo(kind, node.mode, len(node.data), node.mtime, 1)

    def read(self, path: str) -> bytes:
        return bytes(self._file(path).data)

    def write(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Create or replace (or extend) a file; its directory must exist."""
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if isinstance(node, _Dir) or not name:
            raise oserror(IsADirectoryError, errno.EISDIR, path)
        if node is None:
            node = parent.entries[name] = _File()
        if node.device:  # /dev/null and friends keep nothing
            return
        if not append:
            node.data.clear()
        node.data += data
        node.mtime = time.time()

    def touch(self, path: str, *, create: bool = True) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is not None:
            node.mtime = time.time()
        elif create:
            parent.entries[name] = _File()

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        path = self.normalize(path)
        if parents:
            built = ""
            for part in path.split("/")[1:]:
                built += f"/{part}"
                if not self.is_dir(built):
                    self.mkdir(built)
            return
        parent, name = self._parent(path)
        if name in parent.entries or not name:
            raise oserror(FileExistsError, errno.EEXIST, path)
        parent.entries[name] = _Dir()

    def listdir(self, path: str) -> list[str]:
        return sorted(self._dir(path).entries)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory when ``recursive`` (or when it is empty)."""
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None or not name:
            raise oserror(FileNotFoundError, errno.ENOENT, path)
        if isinstance(node, _Dir) and node.entries and not recursive:
            raise oserror(OSError, errno.ENOTEMPTY, path)
        del parent.entries[name]


_ETC = {
    "group": "".join(f"{name}:x:{gid}:{members}\n" for name, gid, members in (
        ("root", 0, ""), ("daemon", 1, ""), ("bin", 2, ""), ("sys", 3, ""), ("adm", 4, ""),
        ("tty", 5, ""), ("disk", 6, ""), ("lp", 7, ""), ("mail", 8, ""), ("kmem", 9, ""),
        ("wheel", 10, "root"), ("cdrom", 11, ""), ("dialout", 18, ""), ("floppy", 19, ""),
        ("video", 28, ""), ("audio", 29, ""), ("tape", 32, ""), ("www-data", 33, ""),
        ("operator", 37, ""), ("utmp", 43, ""), ("plugdev", 46, ""), ("staff", 50, ""),
        ("lock", 54, ""), ("netdev", 82, ""), ("users", 100, ""), ("nogroup", 65534, ""))),
    "passwd": (
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "bin:x:2:2:bin:/bin:/bin/false\n"
        "sys:x:3:3:sys:/dev:/bin/false\n"
        "sync:x:4:100:sync:/bin:/bin/sync\n"
        "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
        "www-data:x:33:33:www-data:/var/www:/bin/false\n"
        "operator:x:37:37:Operator:/var:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    ),
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "resolv.conf": "search cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
}


def passwd(fs: FileSystem) -> dict[int, tuple[str, int, str]]:
    """uid: (name, gid, home) from the container's /etc/passwd."""
    users: dict[int, tuple[str, int, str]] = {}
    for fields in records(fs, "/etc/passwd", 6):
        if fields[2].isdigit() and fields[3].isdigit():
            users.setdefault(int(fields[2]), (fields[0], int(fields[3]), fields[5]))
    return users


def records(fs: FileSystem, path: str, width: int) -> list[list[str]]:
    """The lines of a colon-separated table (/etc/passwd) with ``width`` fields or more."""
    try:
        text = fs.read(path).decode(errors="replace")
    except OSError:
        return []
    return [f for line in text.splitlines() if len(f := line.split(":")) >= width]
