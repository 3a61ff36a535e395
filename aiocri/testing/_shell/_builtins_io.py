"""The builtins read and trap.

``read [-r] [NAME...]`` reads one line of stdin (continued after a backslash at its
end unless ``-r``), splits it at the characters of ``IFS`` and gives the last name
the rest; with no name it sets ``REPLY`` to the whole line. It is 1 at the end of
input (having still assigned what it read of a last, unended line). Its other
options are not supported.

``trap`` records what a signal should do: ``trap '' SIG...`` adds the signals to
the shell's ``ignored_signals``, ``trap - SIG...`` resets them, and any other action
is kept in ``traps`` (and takes the signal out of ``ignored_signals``). Only the
EXIT (0) action is ever run, when the shell ends (:meth:`Shell.finish`); no signal
reaches this shell, so the others are recorded and never run. Without operands it
lists the traps as busybox does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiocri.testing._shell._control import Exit
from aiocri.testing._shell._streams import Fds, Input, reader, writer
from aiocri.testing._shell._syntax import UNSUPPORTED

if TYPE_CHECKING:
    from aiocri.testing._shell._interp import Shell

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_IFS = " \t\n"
# Linux's numbering, as busybox's trap takes and shows the names
SIGNALS = {
    "EXIT": 0, "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "PWR": 30, "SYS": 31,
}
_NAMES = {number: name for name, number in SIGNALS.items()}
_LAST_SIGNAL = 64


def signal_number(spec: str) -> int | None:
    """The number of a signal given as ``15``, ``TERM``, ``SIGTERM`` or ``term``."""
    if spec.isdigit():
        return int(spec) if int(spec) <= _LAST_SIGNAL else None
    name = spec.upper()
    return SIGNALS.get(name[3:] if name.startswith("SIG") else name)


async def _line(stdin: Input, raw: bool) -> tuple[str, bool]:
    """The next line without its newline, and whether a newline ended it."""
    text = ""
    while True:
        buf = bytearray()
        ended = False
        async for chunk in stdin:
            cut = chunk.find(b"\n")
            if cut >= 0:
                buf += chunk[:cut]
                stdin.unread(chunk[cut + 1:])
                ended = True
                break
            buf += chunk
        piece = buf.decode(errors="replace")
        backslashes = len(piece) - len(piece.rstrip("\\"))
        if raw or not ended or backslashes % 2 == 0:
            return text + piece, ended
        text += piece[:-1]  # a backslash-newline: the line goes on


def _chars(line: str, raw: bool) -> list[tuple[str, bool]]:
    """The line's characters, each with whether a backslash protected it."""
    out: list[tuple[str, bool]] = []
    escaped = False
    for ch in line:
        if escaped or raw or ch != "\\":
            out.append((ch, escaped))
            escaped = False
        else:
            escaped = True
    return out


def split(chars: list[tuple[str, bool]], ifs: str, count: int) -> list[str]:
    """``count`` fields at the unprotected IFS characters; the last takes the rest."""
    def blank(k: int) -> bool:
        return not chars[k][1] and chars[k][0] in ifs and chars[k][0] in _DEFAULT_IFS

    def delimiter(k: int) -> bool:
        return not chars[k][1] and chars[k][0] in ifs

    def skip_blanks(k: int) -> int:
        while k < end and blank(k):
            k += 1
        return k

    end = len(chars)
    while end and blank(end - 1):
        end -= 1
    i, fields = skip_blanks(0), list[str]()
    while len(fields) < count - 1 and i < end:
        j = i
        while j < end and not delimiter(j):
            j += 1
        fields.append("".join(c for c, _ in chars[i:j]))
        j = skip_blanks(j)
        if j < end and delimiter(j) and not blank(j):
            j += 1
        i = skip_blanks(j)
    if i < end:
        fields.append("".join(c for c, _ in chars[i:end]))
    return fields + [""] * (count - len(fields))


async def builtin_read(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    names, raw = argv[1:], False
    while names and names[0].startswith("-") and len(names[0]) > 1:
        if names[0] != "-r":
            await writer(fds, 2)(shell._msg(line, f"read {names[0]} {UNSUPPORTED}"))
            raise Exit(2)
        names, raw = names[1:], True
    for name in names:
        if not _NAME.fullmatch(name):
            await writer(fds, 2)(f"{shell.arg0}: read: '{name}': bad variable name\n".encode())
            return 1
    text, ended = await _line(reader(fds), raw)
    chars = _chars(text, raw)
    if names:
        fields = split(chars, shell.vars.get("IFS", _DEFAULT_IFS), len(names))
        shell.vars.update(zip(names, fields, strict=True))
    else:  # REPLY takes the line as it is
        shell.vars["REPLY"] = "".join(c for c, _ in chars)
    return 0 if ended else 1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


async def builtin_trap(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    args = argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        listed = sorted(shell.traps.items())
        text = "".join(f"trap -- {_quote(action)} {_NAMES.get(number, str(number))}\n"
                       for number, action in listed)
        await writer(fds, 1)(text.encode())
        return 0
    action, specs = (args[0], args[1:]) if len(args) > 1 else ("-", args)
    status = 0
    for spec in specs:
        number = signal_number(spec)
        if number is None:
            text = f"{spec}: invalid signal specification"
            await writer(fds, 2)(shell._builtin_msg("trap", line, text))
            status = 1
        elif action == "-":
            shell.traps.pop(number, None)
            shell.ignored_signals.discard(number)
        else:
            shell.traps[number] = action
            if action:
                shell.ignored_signals.discard(number)
            else:
                shell.ignored_signals.add(number)
    return status
