"""The shell's input cut into tokens: words (with their parts) and operators."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

# busybox 1.35's ash counts the lines of a -c script from 0 in its messages.
_FIRST_LINE = 0
UNSUPPORTED = "not supported by the fake runtime's shell"


class ParseError(Exception):
    def __init__(self, text: str, line: int) -> None:
        super().__init__(text)
        self.text, self.line = text, line


@dataclass(frozen=True)
class Lit:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Param:
    name: str
    quoted: bool
    op: str = ""  # "", "#" (length), "~" (tilde), or one of - :- + :+ = := ? :?
    arg: tuple[Part, ...] = ()


@dataclass(frozen=True)
class CmdSub:
    """``$(...)`` or backticks: the script inside, run when the word is expanded."""

    script: str
    quoted: bool
    line: int


@dataclass(frozen=True)
class Arith:
    """``$((...))``: the expression's parts (expanded as in double quotes)."""

    parts: tuple[Part, ...]
    line: int


Part: TypeAlias = Lit | Param | CmdSub | Arith
Word: TypeAlias = tuple[Part, ...]


@dataclass(frozen=True)
class Tok:
    kind: Literal["word", "op", "nl", "eof"]
    text: str  # the operator, or a word's source text
    line: int
    parts: Word = ()
    fd: int | None = None  # the number before a redirection operator


_STOPS = " \t\n;&|<>()"
_OPERATORS = ("&&", "||", ";;", ">>", ">&", "<&", "<<", "<>", ">|",
              ";", "&", "|", "(", ")", "<", ">")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL = re.compile(r"[0-9]+|[?#@*]")


class Lexer:
    """Cuts a script into tokens, one at a time, so a later line's error waits."""

    def __init__(self, src: str) -> None:
        self.src, self.pos, self.line = src, 0, _FIRST_LINE

    def _fail(self, text: str) -> ParseError:
        return ParseError(text, self.line)

    def _unsupported(self, construct: str) -> ParseError:
        return ParseError(f"{construct} {UNSUPPORTED}", self.line)

    def next(self) -> Tok:
        self._skip_blanks()
        line, src = self.line, self.src
        if self.pos >= len(src):
            return Tok("eof", "", line)
        if src[self.pos] == "\n":
            self.pos += 1
            self.line += 1
            return Tok("nl", "\n", line)
        for op in _OPERATORS:
            if src.startswith(op, self.pos):
                self.pos += len(op)
                return Tok("op", op, line)
        return self._word(line)

    def _skip_blanks(self) -> None:
        src = self.src
        while self.pos < len(src):
            if src[self.pos] in " \t":
                self.pos += 1
            elif src.startswith("\\\n", self.pos):
                self.pos += 2
                self.line += 1
            elif src[self.pos] == "#":  # a comment runs to the end of the line
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            else:
                return

    def _word(self, line: int) -> Tok:
        src, start = self.src, self.pos
        parts: list[Part] = []
        if src[start] == "~" and (start + 1 == len(src) or src[start + 1] in "/" + _STOPS):
            self.pos += 1
            parts.append(Param("HOME", quoted=True, op="~"))
        parts += self._scan(_STOPS, dq=False)
        raw = src[start:self.pos]
        if raw.isdigit() and src[self.pos:self.pos + 1] in ("<", ">"):
            return dataclasses.replace(self.next(), fd=int(raw), line=line)
        return Tok("word", raw, line, tuple(parts))

    def _scan(self, stops: str, *, dq: bool) -> list[Part]:
        """Word parts up to a stop character; ``dq`` inside double quotes."""
        src = self.src
        parts: list[Part] = []
        text: list[str] = []

        def flush() -> None:
            if text:
                parts.append(Lit("".join(text), dq))
                text.clear()

        while self.pos < len(src) and src[self.pos] not in stops:
            ch = src[self.pos]
            self.pos += 1
            if ch == "\\":
                escaped, quoted = self._escaped(dq)
                if quoted:
                    flush()
                    parts.append(Lit(escaped, True))
                else:
                    text.append(escaped)
            elif ch == "'" and not dq:
                flush()
                end = src.find("'", self.pos)
                if end < 0:
                    raise self._fail("syntax error: unterminated quoted string")
                self.line += src.count("\n", self.pos, end)
                parts.append(Lit(src[self.pos:end], True))
                self.pos = end + 1
            elif ch == '"' and not dq:
                flush()
                inner = self._scan('"', dq=True)
                if self.pos >= len(src):
                    raise self._fail("syntax error: unterminated quoted string")
                self.pos += 1
                parts += inner or [Lit("", True)]
            elif ch == "$":
                flush()
                parts.append(self._dollar(dq))
            elif ch == "`":
                flush()
                parts.append(self._backquoted(dq))
            else:
                self.line += ch == "\n"
                text.append(ch)
        flush()
        return parts

    def _escaped(self, dq: bool) -> tuple[str, bool]:
        """What a backslash (just read) stands for, and whether that is quoted."""
        src = self.src
        if self.pos >= len(src):
            return "\\", False
        ch = src[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
            return "", False
        if dq and ch not in '$`"\\':
            return "\\" + ch, False
        return ch, True

    def _dollar(self, dq: bool) -> Part:
        src, i = self.src, self.pos
        if src.startswith("{", i):
            return self._braced(dq)
        if src.startswith("((", i):
            return self._arith()
        if src.startswith("(", i):
            line, end = self.line, self._closing(i + 1)
            self.pos = end + 1
            return CmdSub(src[i + 1:end], dq, line)
        match = _NAME.match(src, i)
        if match is None and i < len(src) and src[i] in "?#@*0123456789":
            self.pos += 1
            return Param(src[i], dq)
        if match is None:
            if i < len(src) and src[i] in "$!-":
                raise self._unsupported(f"the special parameter ${src[i]}")
            return Lit("$", dq)
        self.pos = match.end()
        return Param(match.group(), dq)

    def _arith(self) -> Arith:
        src, line = self.src, self.line
        depth, i = 0, self.pos + 2
        while i < len(src) and not (depth == 0 and src.startswith("))", i)):
            depth += {"(": 1, ")": -1}.get(src[i], 0)
            i += 1
        if i >= len(src):
            raise self._fail("syntax error: missing '))'")
        inner = Lexer(src[self.pos + 2:i])
        self.line += src.count("\n", self.pos, i)
        self.pos = i + 2
        return Arith(tuple(inner._scan("", dq=True)), line)

    def _closing(self, i: int) -> int:
        """Where the ``)`` that closes a ``$(`` opened just before ``i`` is."""
        src, depth = self.src, 1
        while i < len(src):
            ch = src[i]
            if ch == "\\":
                i += 1
            elif ch in "'\"":
                end = src.find(ch, i + 1)
                while ch == '"' and end > 0 and src[end - 1] == "\\":
                    end = src.find(ch, end + 1)
                i = len(src) if end < 0 else end
            elif ch in "()":
                depth += 1 if ch == "(" else -1
                if depth == 0:
                    self.line += src.count("\n", self.pos, i)
                    return i
            i += 1
        raise self._fail('syntax error: unexpected end of file (expecting ")")')

    def _backquoted(self, dq: bool) -> CmdSub:
        """A backtick substitution (the opening one read): ``\\`` keeps only $ ` \\."""
        src, line, text = self.src, self.line, []
        while self.pos < len(src) and src[self.pos] != "`":
            ch = src[self.pos]
            if ch == "\\" and src[self.pos + 1:self.pos + 2] in ("$", "`", "\\") + (
                    ('"',) if dq else ()):
                self.pos += 1
                ch = src[self.pos]
            self.line += ch == "\n"
            text.append(ch)
            self.pos += 1
        if self.pos >= len(src):
            raise self._fail("syntax error: EOF in backquote substitution")
        self.pos += 1
        return CmdSub("".join(text), dq, line)

    def _braced(self, dq: bool) -> Part:
        src = self.src
        self.pos += 1  # past "{"
        length = src.startswith("#", self.pos) and not src.startswith("#}", self.pos)
        self.pos += length
        match = _NAME.match(src, self.pos) or _SPECIAL.match(src, self.pos)
        if match is None:
            raise self._fail("syntax error: bad substitution" if self.pos < len(src)
                             else "syntax error: missing '}'")
        self.pos = match.end()
        if src.startswith("}", self.pos):
            self.pos += 1
            return Param(match.group(), dq, "#" if length else "")
        op = re.compile(r":?[-+=?]").match(src, self.pos)
        if op is None or length:
            if self.pos >= len(src):
                raise self._fail("syntax error: missing '}'")
            if src[self.pos] in "%#/:^,":
                raise self._unsupported("the pattern forms of ${...}")
            raise self._fail("syntax error: bad substitution")
        self.pos = op.end()
        arg = self._scan("}", dq=dq)
        if self.pos >= len(src):
            raise self._fail("syntax error: missing '}'")
        self.pos += 1
        return Param(match.group(), dq, op.group(), tuple(arg))


