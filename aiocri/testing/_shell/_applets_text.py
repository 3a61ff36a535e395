"""The applets that write and filter text: echo, printf, cat, head, tail, wc, tr."""

from __future__ import annotations

import re
import string

from aiocri.testing._shell._call import Call, Usage, count, each_operand, getopt, read_named
from aiocri.testing._shell._registry import register
from aiocri.testing._shell._streams import Input

_ESCAPES = {"a": 7, "b": 8, "e": 27, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def _unescape(text: str, *, echo: bool) -> tuple[bytes, bool]:
    """Backslash escapes as echo -e and %b (``echo``) or a printf format see them.

    The flag tells whether ``\\c`` cut the output short there.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1:i + 2]
        i += 1
        if ch != "\\" or not nxt:
            out += ch.encode()
            continue
        if nxt == "c":
            return bytes(out), True
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 1
            continue
        if echo and nxt == "0" and text[i + 1:i + 2] in tuple("01234567"):
            i += 1  # echo's \0NNN: the 0 only announces the octal digits
        digits = re.match(r"x[0-9a-fA-F]{1,2}|[0-7]{1,3}", text[i:])
        if digits is None:
            out += b"\\"
            continue
        value = digits.group()
        out.append(int(value[1:], 16) if value[0] == "x" else int(value, 8) & 0xFF)
        i += len(value)
    return bytes(out), False


@register("echo")
async def _echo(c: Call) -> int:
    args, newline, escapes = c.args, True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args[0][1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
        args = args[1:]
    text = " ".join(args)
    data, cut = _unescape(text, echo=True) if escapes else (text.encode(), False)
    await c.stdout(data if cut or not newline else data + b"\n")
    return 0


# flags, width, precision, C's length modifiers (busybox drops them), conversion
_SPEC = re.compile(r"%([-+ #0]*[0-9]*(?:\.[0-9]*)?)([hlLjzt]*)([a-zA-Z%]?)")


def _int_arg(text: str) -> int | None:
    """A printf number (decimal, 0x hex, 0 octal, 'c for a character code)."""
    stripped = text.strip()
    if stripped[:1] in ("'", '"'):
        return ord(stripped[1]) if len(stripped) > 1 else 0
    match = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", stripped)
    if match is None:
        return None
    sign, digits = match.groups()
    base = 16 if digits[:2].lower() == "0x" else (8 if digits.startswith("0") else 10)
    value = int(digits, base) if digits != "0" else 0
    return -value if sign == "-" else value


class _Printf:
    """printf's state: the arguments left, the exit code, whether \\c stopped it.

    Output goes out piece by piece, so that it interleaves with the error messages
    as busybox's does.
    """

    def __init__(self, c: Call) -> None:
        self.c, self.args, self.status, self.stopped = c, list(c.args[1:]), 0, False
        self.used = False  # whether this pass took an argument

    def _next(self) -> str | None:
        if not self.args:
            return None
        self.used = True
        return self.args.pop(0)

    async def _number(self, conv: str) -> int | float:
        arg = self._next()
        value: int | float | None
        if conv in "feEgG":
            try:
                value = float(arg or 0)
            except ValueError:
                value = None
        else:
            value = _int_arg(arg or "")  # a missing one is "", which is no number
        if value is None:
            await self.c.err(f"invalid number '{arg or ''}'")
            self.status = 1
            return 0
        return value

    async def _convert(self, flags: str, conv: str) -> bytes:
        if conv == "s":
            return (f"%{flags}s" % (self._next() or "")).encode()
        if conv == "c":
            char = (self._next() or "")[:1]
            return (f"%{flags}c" % char).encode() if char else b"\0"
        if conv == "b":
            data, self.stopped = _unescape(self._next() or "", echo=True)
            return data
        value = await self._number(conv)
        if conv in "ouxX" and isinstance(value, int) and value < 0:
            value += 1 << 64  # C prints the two's complement of a negative number
        conv = {"i": "d", "u": "d"}.get(conv, conv)
        return (f"%{flags}{conv}" % value).encode()

    async def _literal(self, text: str) -> None:
        data, self.stopped = _unescape(text, echo=False)
        await self.c.stdout(data)

    async def run(self, fmt: str) -> None:
        """One pass over the format."""
        pos = 0
        for match in _SPEC.finditer(fmt):
            await self._literal(fmt[pos:match.start()])
            if self.stopped:
                return
            pos = match.end()
            flags, modifiers, conv = match.groups()
            if match.group() == "%%":
                await self.c.stdout(b"%")
            elif not conv or conv not in "sbcdiouxXfeEgG":
                rest = fmt[match.start():].replace(modifiers, "", 1)
                await self.c.err(f"{rest}: invalid format")
                self.status, self.stopped = 1, True
                return
            else:
                await self.c.stdout(await self._convert(flags, conv))
                if self.stopped:
                    return
        await self._literal(fmt[pos:])


@register("printf")
async def _printf(c: Call) -> int:
    if not c.args:
        raise Usage("usage: printf FORMAT [ARGUMENT...]", 2)
    state = _Printf(c)
    while True:
        state.used = False
        await state.run(c.args[0])
        if state.stopped or not state.args or not state.used:
            return state.status


@register("cat")
async def _cat(c: Call) -> int:
    _, names = getopt(c.args, "u")
    status = 0
    for name in names or ["-"]:
        if name in ("-", "/dev/stdin"):
            async for chunk in c.stdin:  # passed on as it comes: exec sessions stream
                await c.stdout(chunk)
            continue
        try:
            data = c.fs.read(c.path(name))
        except IsADirectoryError:
            await c.err("read error: Is a directory")
            status = 1
        except OSError as exc:
            await c.err(f"can't open '{name}': {exc.strerror}")
            status = 1
        else:
            await c.stdout(data)
    return status


def _shorthand(args: list[str]) -> list[str]:
    """head -5 and tail -5 mean -n 5."""
    return ["-n", args[0][1:], *args[1:]] if args and re.fullmatch(r"-\d+", args[0]) else args


def _head_cut(data: bytes | bytearray, n: int, lines: bool) -> int | None:
    """Where the first ``n`` lines (or bytes) end, if ``data`` holds them all."""
    if not lines:
        return n if len(data) >= n else None
    end = 0
    for _ in range(n):
        found = data.find(b"\n", end)
        if found < 0:
            return None
        end = found + 1
    return end


async def _head_of_stdin(stdin: Input, n: int, lines: bool) -> bytes:
    """Read only until there is enough, and leave the rest for whoever reads next."""
    buf = bytearray()
    cut = _head_cut(buf, n, lines)
    while cut is None:
        chunk = await anext(stdin, None)
        if chunk is None:
            return bytes(buf)
        buf += chunk
        cut = _head_cut(buf, n, lines)
    stdin.unread(bytes(buf[cut:]))
    return bytes(buf[:cut])


@register("head")
async def _head(c: Call) -> int:
    opts, names = getopt(_shorthand(c.args), "n:c:qv")
    lines = "c" not in opts
    n = count((opts.get("n") or opts.get("c") or ["10"])[-1])
    status = 0
    names = names or ["-"]
    for i, name in enumerate(names):
        if len(names) > 1:
            await c.out(f"{chr(10) if i else ''}==> {name} <==\n")
        if name == "-":
            await c.stdout(await _head_of_stdin(c.stdin, n, lines))
            continue
        data = await read_named(c, name)
        if data is None:
            status = 1
            continue
        cut = _head_cut(data, n, lines)
        await c.stdout(data[:cut])
    return status


@register("tail")
async def _tail(c: Call) -> int:
    opts, names = getopt(_shorthand(c.args), "n:c:qv")
    raw = (opts.get("n") or opts.get("c") or ["10"])[-1]
    start = raw.startswith("+")
    n = count(raw.lstrip("+"), "+" if start else "")

    async def use(data: bytes) -> None:
        if "c" in opts:
            await c.stdout(data[max(n - 1, 0):] if start else data[len(data) - n:])
            return
        items = data.splitlines(keepends=True)
        chosen = items[max(n - 1, 0):] if start else items[len(items) - n:]
        await c.stdout(b"".join(chosen))

    return await each_operand(c, names, use)


@register("wc")
async def _wc(c: Call) -> int:
    opts, names = getopt(c.args, "lwcmL")
    columns = [k for k in "lwcL" if k in opts or (k == "c" and "m" in opts)] or ["l", "w", "c"]
    targets: list[str | None] = list(names) if names else [None]
    padded = len(columns) > 1 or len(targets) > 1
    totals = dict.fromkeys(columns, 0)
    status = 0

    async def report(counts: dict[str, int], name: str | None) -> None:
        cells = [f"{counts[k]:9d}" if padded else str(counts[k]) for k in columns]
        await c.out(" ".join(cells) + (f" {name}" if name is not None else "") + "\n")

    for name in targets:
        data = await read_named(c, name or "-")
        if data is None:
            status = 1
            continue
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data),
                  "L": max((len(line) for line in data.split(b"\n")), default=0)}
        for k in columns:
            totals[k] = max(totals[k], counts[k]) if k == "L" else totals[k] + counts[k]
        await report(counts, name)
    if len(targets) > 1:
        await report(totals, "total")
    return status


_TR_CLASSES = {"lower": string.ascii_lowercase, "upper": string.ascii_uppercase,
               "digit": string.digits, "alpha": string.ascii_letters,
               "alnum": string.ascii_letters + string.digits, "space": " \t\n\r\f\v",
               "blank": " \t", "punct": string.punctuation, "xdigit": string.hexdigits}


def _tr_set(spec: str) -> bytes:
    """A tr set with its escapes, ranges (a-z) and classes ([:upper:]) spelled out."""
    text = _unescape(spec, echo=False)[0].decode("latin-1")
    out = bytearray()
    i = 0
    while i < len(text):
        name = re.match(r"\[:(\w+):\]", text[i:])
        if name and name.group(1) in _TR_CLASSES:
            out += _TR_CLASSES[name.group(1)].encode()
            i += name.end()
        elif text[i + 1:i + 2] == "-" and i + 2 < len(text):
            out += bytes(range(ord(text[i]), ord(text[i + 2]) + 1))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return bytes(out)


def _squeeze(data: bytes, chars: bytes, last: int) -> tuple[bytes, int]:
    """Runs of one byte of ``chars`` cut to one; ``last`` carries over between chunks."""
    out = bytearray()
    for byte in data:
        if byte != last or byte not in chars:
            out.append(byte)
        last = byte
    return bytes(out), last


@register("tr")
async def _tr(c: Call) -> int:
    opts, sets = getopt(c.args, "ds")
    if not sets or (len(sets) < 2 and "d" not in opts and "s" not in opts):
        raise Usage("usage: tr [-ds] STRING1 [STRING2]")
    first = _tr_set(sets[0])
    second = _tr_set(sets[1]) if len(sets) > 1 else b""
    table = None
    if "d" not in opts and second:  # a short second set repeats its last character
        table = bytes.maketrans(first, (second + second[-1:] * len(first))[:len(first)])
    delete = first if "d" in opts else b""
    squeeze = (second or first) if "s" in opts else b""
    last = -1
    async for chunk in c.stdin:  # chunk by chunk: tr streams like cat
        out = chunk.translate(table, delete)
        if squeeze:
            out, last = _squeeze(out, squeeze, last)
        await c.stdout(out)
    return 0
