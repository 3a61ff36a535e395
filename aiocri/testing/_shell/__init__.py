"""A small stand-in for busybox ``sh`` and its applets, for the fake runtime's exec.

It emulates, as far as a test fake needs, what ``kubectl exec`` reaches in a
``busybox:1.36`` container: the ``sh -c`` language of busybox's ash and a few
applets (echo, printf, cat, ls, sleep, env, id, whoami, hostname, head, tail, wc,
tr, true, false, pwd, mkdir, touch, rm, rmdir, test/[, grep, yes, seq, basename,
dirname, uname, cut, sh/ash, busybox), with busybox's messages and exit codes, on a
per-container in-memory file system. Its wording was checked against the busybox of
the machine it was written on (1.35), whose ash numbers the lines of a ``-c`` script
from 0.

The shell language covered: quoting ('', "", backslash), ``$VAR``, ``${VAR}``,
``${VAR:-w}`` and the other default/assign/alternative/error forms, ``${#VAR}``,
``$?``, ``$#``, ``$0``-``$9``, ``$@``, ``$*``, ``~``, command substitution
(``$(...)`` and backticks: the output of a subshell, trailing newlines cut),
arithmetic expansion (``$((...))``: ash's 64-bit integer operators, see ``_arith``),
field splitting of unquoted expansions (at blanks: IFS is not consulted, except by
``read``), pathname globbing (``*``, ``?``, ``[...]``) against the fake file
system, comments, ``;``, newlines, ``&&``, ``||``, ``!``, ``|`` (stages run
concurrently, joined by bounded queues, each a subshell as in ash), the compound
commands ``if``/``elif``/``else``, ``while``, ``until``, ``for NAME [in WORDS]``,
``{ ...; }`` and ``( ... )`` (a subshell: a copy of the variables, directory and
traps, whose ``exit`` ends only it), the redirections ``<``, ``>``, ``>>``, ``N>``,
``N>&M`` (also ``/dev/null``, ``/dev/stdout``, ``/dev/stderr``; after a compound
command too), assignments (bare and as a command prefix), and the builtins ``cd``,
``exit``, ``export``, ``unset``, ``set`` (``-e``, ``+e``, ``--``), ``exec``, ``:``,
``break``/``continue [N]``, ``shift [N]``, ``read [-r] [NAME...]``, ``trap`` and
``wait`` (which has nothing to wait for). Incomplete constructs get ash's syntax
errors (``sh: syntax error: unexpected end of file (expecting "then")``, exit 2).
Every loop iteration yields to the event loop, so an endless loop shares the fake
runtime's loop and is cancelled promptly.

``trap`` records rather than runs: ``trap '' TERM`` (or ``15``, ``SIGTERM``) puts the
signal in :attr:`Shell.ignored_signals`, ``trap - TERM`` takes it out, and other
actions are kept in :attr:`Shell.traps`; of those only EXIT's runs, when the shell
ends (:meth:`Shell.finish`), since no signal ever reaches this shell.

What it does not do: ``case``, functions, ``select``, ``[[``, here-documents,
background jobs (``&``), the pattern forms of ``${...}``, ``$$``/``$!``/``$-`` and
the builtins eval, ``.``/source, local, return, getopts, command, type, alias,
readonly, ulimit, umask and the like; nor ``read``'s options other than ``-r``.
Those end the script with ``sh: CONSTRUCT not supported by the fake runtime's
shell`` and exit code 2, rather than doing something silently wrong. There are no
permission checks, no symbolic links and no processes: ``kill`` and ``ps`` have no
meaning here. ``bash`` and ``dash`` are accepted as names of this same shell, as the
fake always did, although a real busybox image has neither.

The package's modules: ``_files`` (the file system and a busybox image's tree),
``_context`` (what a container gives its commands), ``_streams`` (stdin, pipes,
writers), ``_lexer`` (tokens and word parts), ``_syntax`` (the syntax tree and its
parser), ``_expand`` (expansion of words), ``_arith`` (arithmetic), ``_interp``
(:class:`Shell`: simple commands, pipelines, subshells, redirections),
``_compound`` (if, loops, groups), ``_control`` (exit, break and continue as
exceptions), ``_builtins`` and ``_builtins_io`` (the shell's own builtins; read and
trap), ``_registry`` and ``_call`` (the table of applets; one run of one, and the
helpers they share), ``_applets_*`` (the applets: text, files, test, grep, system,
shell, more) and ``_entry`` (running a command or a script).
"""

from aiocri.testing._shell import (  # noqa: F401  (the applets register themselves)
    _applets_files,
    _applets_grep,
    _applets_more,
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
