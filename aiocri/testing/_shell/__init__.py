"""A small stand-in for busybox ``sh`` and its applets, for the fake runtime's exec.

It emulates, as far as a test fake needs, what ``kubectl exec`` reaches in a
``busybox:1.36`` container: the ``sh -c`` language of busybox's ash and a few
applets (echo, printf, cat, ls, sleep, env, id, whoami, hostname, head, tail, wc,
tr, true, false, pwd, mkdir, touch, rm, rmdir, test/[, grep, sh/ash, busybox), with
busybox's messages and exit codes, on a per-container in-memory file system.
Its wording was checked against the busybox of the machine it was written on
(1.35), whose ash numbers the lines of a ``-c`` script from 0.

The shell language covered: quoting ('', "", backslash), ``$VAR``, ``${VAR}``,
``${VAR:-w}`` and the other default/assign/alternative/error forms, ``${#VAR}``,
``$?``, ``$#``, ``$0``-``$9``, ``$@``, ``$*``, ``~``, field splitting of unquoted
expansions (at blanks: IFS is not consulted), pathname globbing (``*``, ``?``,
``[...]``) against the fake file system, comments, ``;``, newlines, ``&&``, ``||``,
``!``, ``|`` (stages run concurrently, joined by bounded queues, each a subshell as
in ash), the redirections ``<``, ``>``, ``>>``,
``N>``, ``N>&M`` (also ``/dev/null``, ``/dev/stdout``, ``/dev/stderr``),
assignments (bare and as a command prefix), and the builtins ``cd``, ``exit``,
``export``, ``unset``, ``set`` (``-e``, ``+e``, ``--``), ``exec`` and ``:``.

What it does not do: loops, ``if``/``case``, functions, subshells, command groups,
command substitution, arithmetic, here-documents, background jobs, the pattern
forms of ``${...}`` and most builtins (trap, read, eval, ...). Those end the script
with ``sh: CONSTRUCT not supported by the fake runtime's shell`` and exit code 2,
rather than doing something silently wrong. There are no permission checks, no
symbolic links and no processes: ``$$``, ``kill`` and ``ps`` have no meaning here.
``bash`` and ``dash`` are accepted as names of this same shell, as the fake always
did, although a real busybox image has neither.

The package's modules: ``_files`` (the file system and a busybox image's tree),
``_context`` (what a container gives its commands), ``_streams`` (stdin, pipes,
writers), ``_syntax`` (lexer, parser, syntax tree), ``_interp`` (:class:`Shell`:
expansion, redirections, pipelines), ``_builtins`` (the shell's own builtins),
``_registry`` and ``_call`` (the table of applets; one run of one, and the helpers
they share), ``_applets_*`` (the applets: text, files, test, grep, system, shell) and
``_entry`` (running a command or a script).
"""

from aiocri.testing._shell import (  # noqa: F401  (the applets register themselves)
    _applets_files,
    _applets_grep,
    _applets_shell,
    _applets_system,
    _applets_test,
    _applets_text,
)
from aiocri.testing._shell._context import DEFAULT_PATH, ShellContext
from aiocri.testing._shell._entry import (
    ShellResult,
    is_known,
    run_argv,
    run_captured,
    run_script,
)
from aiocri.testing._shell._files import FileInfo, FileSystem
from aiocri.testing._shell._interp import Shell
from aiocri.testing._shell._streams import Writer

__all__ = [
    "DEFAULT_PATH",
    "FileInfo",
    "FileSystem",
    "Shell",
    "ShellContext",
    "ShellResult",
    "Writer",
    "is_known",
    "run_argv",
    "run_captured",
    "run_script",
]
