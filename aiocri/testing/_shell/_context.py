"""A container's side of a command: its context and the image's default PATH."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiocri.testing._shell._files import FileSystem, passwd

#: The PATH of the busybox image's config, used when the container sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ShellContext:
    """What a container gives the commands run in it.

    ``env`` gets ``PATH`` (the image's) and ``HOME`` (from /etc/passwd, as runc does)
    when it lacks them; the working directory is created when missing, as runc does.
    ``supplemental_groups`` are added to the groups ``id`` shows.
    """

    env: dict[str, str]
    hostname: str
    working_dir: str = "/"
    uid: int = 0
    gid: int = 0
    files: FileSystem = field(default_factory=FileSystem.busybox)
    supplemental_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        home = passwd(self.files).get(self.uid, ("", 0, "/"))[2]
        self.env = {"PATH": DEFAULT_PATH, **self.env}
        self.env.setdefault("HOME", home)
        self.working_dir = FileSystem.normalize(self.working_dir or "/")
        if not self.files.is_dir(self.working_dir):
            self.files.mkdir(self.working_dir, parents=True)
        if self.files.is_dir("/etc") and not self.files.exists("/etc/hostname"):
            self.files.set_hostname(self.hostname)
