"""grep, with POSIX basic and extended regular expressions made Python's."""

from __future__ import annotations

import re
import string

from aiocri.testing._shell._call import Call, Usage, getopt, read_named
from aiocri.testing._shell._registry import register

_CLASSES = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
            "lower": "a-z", "space": r" \t\n\r\f\v", "blank": r" \t", "xdigit": "0-9A-Fa-f",
            "punct": re.escape(string.punctuation), "print": r" -~", "graph": r"!-~",
            "cntrl": r"\x00-\x1f\x7f"}


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """A POSIX bracket expression at ``pattern[i]`` as Python's, and where it ends."""
    j = i + 1
    out = "["
    if pattern[j:j + 1] in ("^", "!"):
        out, j = "[^", j + 1
    if pattern[j:j + 1] == "]":
        out, j = out + r"\]", j + 1
    while j < len(pattern) and pattern[j] != "]":
        name = re.match(r"\[:(\w+):\]", pattern[j:])
        if name and name.group(1) in _CLASSES:
            out, j = out + _CLASSES[name.group(1)], j + name.end()
            continue
        out += "\\" + pattern[j] if pattern[j] in "\\[" else pattern[j]
        j += 1
    if j >= len(pattern):
        return r"\[", i + 1
    return out + "]", j + 1


def _regex(pattern: str, *, extended: bool) -> str:
    """A basic (or extended) POSIX regular expression as a Python one."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            i += 2
            if nxt in "<>":
                out.append(r"\b")
            elif nxt in "wWsSb" or nxt.isdigit():
                out.append("\\" + nxt)
            elif nxt in "(){}|+?" and not extended:
                out.append(nxt)
            else:
                out.append(re.escape(nxt))
        elif ch == "[":
            text, i = _bracket(pattern, i)
            out.append(text)
        else:
            basic_literal = not extended and (ch in "(){}|+?" or (ch == "*" and not out))
            out.append("\\" + ch if basic_literal else ch)
            i += 1
    return "".join(out)


def _grep_regex(opts: dict[str, list[str]], patterns: list[str]) -> re.Pattern[bytes]:
    sources = [re.escape(p) if "F" in opts else _regex(p, extended="E" in opts)
               for p in patterns]
    if "x" in opts or "w" in opts:
        sources = [f"^(?:{s})$" if "x" in opts else rf"\b(?:{s})\b" for s in sources]
    try:
        return re.compile("|".join(sources).encode(), re.IGNORECASE if "i" in opts else 0)
    except re.error:
        raise Usage(f"bad regex '{patterns[0]}'", 2) from None


def _grep_args(args: list[str]) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """grep's options, its patterns and the files it reads."""
    opts, rest = getopt(args, "e:qvciFEnlhHoxws", code=2)
    patterns = opts.get("e") or rest[:1]
    if not patterns:
        raise Usage("usage: grep [-qvcilnhHoxwsFE] PATTERN [FILE]...", 2)
    return opts, patterns, (rest if "e" in opts else rest[1:]) or ["-"]


@register("grep")
async def _grep(c: Call) -> int:
    opts, patterns, names = _grep_args(c.args)
    regex = _grep_regex(opts, patterns)
    show_names = (len(names) > 1 or "H" in opts) and "h" not in opts
    matched, failed = False, False
    for name in names:
        data = await read_named(c, name, quiet="s" in opts)
        if data is None:
            failed = True
            continue
        label = "(standard input)" if name == "-" else name
        count = await _grep_lines(c, regex, data, opts, f"{label}:" if show_names else "")
        matched = matched or count > 0
        if matched and "q" in opts:
            return 0
        await _grep_summary(c, opts, label if show_names or "l" in opts else "", count)
    return 2 if failed else (0 if matched else 1)


async def _grep_summary(c: Call, opts: dict[str, list[str]], label: str, count: int) -> None:
    """What -c and -l print for a file."""
    if "c" in opts:
        await c.out(f"{label}:{count}\n" if label else f"{count}\n")
    elif "l" in opts and count:
        await c.out(f"{label}\n")


async def _grep_lines(c: Call, regex: re.Pattern[bytes], data: bytes,
                      opts: dict[str, list[str]], label: str) -> int:
    """Print the lines that match (as the options say); how many did."""
    lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        lines.pop()
    count = 0
    for number, line in enumerate(lines, 1):
        if bool(regex.search(line)) == ("v" in opts):
            continue
        count += 1
        if "q" in opts or "l" in opts:
            break
        if "c" in opts:
            continue
        head = (label + (f"{number}:" if "n" in opts else "")).encode()
        if "o" in opts and "v" not in opts:
            for m in regex.finditer(line):
                if m.group():
                    await c.stdout(head + m.group() + b"\n")
        else:
            await c.stdout(head + line + b"\n")
    return count
