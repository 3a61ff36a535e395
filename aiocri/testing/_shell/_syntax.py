"""The shell's input: the lexer, the parser, and the syntax tree they build."""

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
    arg: tuple[Lit | Param, ...] = ()


Part: TypeAlias = Lit | Param
Word: TypeAlias = tuple[Part, ...]


@dataclass(frozen=True)
class _Tok:
    kind: Literal["word", "op", "nl", "eof"]
    text: str  # the operator, or a word's source text
    line: int
    parts: Word = ()
    fd: int | None = None  # the number before a redirection operator


@dataclass(frozen=True)
class Redir:
    fd: int | None
    op: str
    target: Word


@dataclass(frozen=True)
class Simple:
    line: int
    assigns: tuple[tuple[str, Word], ...]
    words: tuple[Word, ...]
    redirs: tuple[Redir, ...]


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Simple, ...]
    negate: bool


@dataclass(frozen=True)
class AndOr:
    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...]


_STOPS = " \t\n;&|<>()"
_OPERATORS = ("&&", "||", ";;", ">>", ">&", "<&", "<<", "<>", ">|",
              ";", "&", "|", "(", ")", "<", ">")
_REDIRECTIONS = frozenset({">", ">>", "<", ">&", "<&", ">|"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL = re.compile(r"[0-9]+|[?#@*]")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
# Words that open a compound command we do not run, and the words that close one.
_OPENERS = {"if": "if statements", "for": "for loops", "while": "while loops",
            "until": "until loops", "case": "case statements", "function": "functions",
            "select": "select loops", "{": "command groups { ... }", "[[": "[[ ... ]]"}
_CLOSERS = frozenset({"then", "else", "elif", "fi", "do", "done", "esac", "}"})


class _Lexer:
    """Cuts a script into tokens, one at a time, so a later line's error waits."""

    def __init__(self, src: str) -> None:
        self.src, self.pos, self.line = src, 0, _FIRST_LINE

    def _fail(self, text: str) -> ParseError:
        return ParseError(text, self.line)

    def _unsupported(self, construct: str) -> ParseError:
        return ParseError(f"{construct} {UNSUPPORTED}", self.line)

    def next(self) -> _Tok:
        self._skip_blanks()
        line, src = self.line, self.src
        if self.pos >= len(src):
            return _Tok("eof", "", line)
        if src[self.pos] == "\n":
            self.pos += 1
            self.line += 1
            return _Tok("nl", "\n", line)
        for op in _OPERATORS:
            if src.startswith(op, self.pos):
                self.pos += len(op)
                return _Tok("op", op, line)
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

    def _word(self, line: int) -> _Tok:
        src, start = self.src, self.pos
        parts: list[Part] = []
        if src[start] == "~" and (start + 1 == len(src) or src[start + 1] in "/" + _STOPS):
            self.pos += 1
            parts.append(Param("HOME", quoted=True, op="~"))
        parts += self._scan(_STOPS, dq=False)
        raw = src[start:self.pos]
        if raw.isdigit() and src[self.pos:self.pos + 1] in ("<", ">"):
            return dataclasses.replace(self.next(), fd=int(raw), line=line)
        return _Tok("word", raw, line, tuple(parts))

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
                raise self._unsupported("command substitution `...`")
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
            raise self._unsupported("arithmetic expansion $((...))")
        if src.startswith("(", i):
            raise self._unsupported("command substitution $(...)")
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


class Parser:
    """Recursive descent: lines of and-or lists of pipelines of simple commands."""

    def __init__(self, src: str) -> None:
        self._lexer = _Lexer(src)
        self._ahead: _Tok | None = None

    def _peek(self) -> _Tok:
        if self._ahead is None:
            self._ahead = self._lexer.next()
        return self._ahead

    def _take(self) -> _Tok:
        tok = self._peek()
        self._ahead = None
        return tok

    def _skip_newlines(self) -> None:
        while self._peek().kind == "nl":
            self._take()

    @staticmethod
    def _unexpected(tok: _Tok) -> ParseError:
        what = {"eof": "end of file", "nl": "newline"}.get(tok.kind, f'"{tok.text}"')
        return ParseError(f"syntax error: unexpected {what}", tok.line)

    @staticmethod
    def _unsupported(construct: str, tok: _Tok) -> ParseError:
        return ParseError(f"{construct} {UNSUPPORTED}", tok.line)

    def line(self) -> list[AndOr] | None:
        """The next line's and-or lists (ash runs a line before reading the next)."""
        self._skip_newlines()
        if self._peek().kind == "eof":
            return None
        items: list[AndOr] = []
        while True:
            items.append(self._and_or())
            tok = self._peek()
            if tok.kind == "op" and tok.text == ";":
                self._take()
                tok = self._peek()
                if tok.kind not in ("nl", "eof"):
                    continue
            if tok.kind == "nl":
                self._take()
                return items
            if tok.kind == "eof":
                return items
            if tok.text == "&":
                raise self._unsupported("background jobs (&)", tok)
            raise self._unexpected(tok)

    def _and_or(self) -> AndOr:
        first = self._pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self._peek().kind == "op" and self._peek().text in ("&&", "||"):
            op = self._take().text
            self._skip_newlines()
            rest.append((op, self._pipeline()))
        return AndOr(first, tuple(rest))

    def _pipeline(self) -> Pipeline:
        negate = self._peek().kind == "word" and self._peek().text == "!"
        if negate:
            self._take()
        commands = [self._command()]
        while self._peek().kind == "op" and self._peek().text == "|":
            self._take()
            self._skip_newlines()
            commands.append(self._command())
        return Pipeline(tuple(commands), negate)

    def _command(self) -> Simple:
        line = self._peek().line
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            tok = self._peek()
            if tok.kind == "word":
                self._take()
                self._word(tok, assigns, words)
            elif tok.kind == "op" and tok.text in _REDIRECTIONS:
                self._take()
                target = self._take()
                if target.kind != "word":
                    raise self._unexpected(target)
                redirs.append(Redir(tok.fd, tok.text, target.parts))
            elif tok.kind == "op" and tok.text in ("<<", "<>"):
                raise self._unsupported(f"the redirection {tok.text}", tok)
            elif tok.kind == "op" and tok.text == "(":
                raise self._unsupported("functions" if words else "subshells ( ... )", tok)
            else:
                break
        if not (assigns or words or redirs):
            raise self._unexpected(self._peek())
        return Simple(line, tuple(assigns), tuple(words), tuple(redirs))

    def _word(self, tok: _Tok, assigns: list[tuple[str, Word]], words: list[Word]) -> None:
        """A word of a simple command: an assignment while no other word came yet."""
        if words:
            words.append(tok.parts)
            return
        self._check_command_word(tok)
        match = _ASSIGNMENT.match(tok.text)
        if match:
            assigns.append((match.group(1), _after_equals(tok.parts)))
        else:
            words.append(tok.parts)

    def _check_command_word(self, tok: _Tok) -> None:
        if tok.text in _OPENERS:
            raise self._unsupported(_OPENERS[tok.text], tok)
        if tok.text in _CLOSERS:
            raise ParseError(f'syntax error: unexpected "{tok.text}"', tok.line)


def _after_equals(parts: Word) -> Word:
    """An assignment word's value: its parts with ``NAME=`` cut off the front."""
    first = parts[0]
    assert isinstance(first, Lit)
    rest = first.text.split("=", 1)[1]
    return ((Lit(rest, False),) if rest else ()) + parts[1:]
