"""The shell's syntax tree, and the parser that builds it from the lexer's tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiocri.testing._shell._lexer import (
    UNSUPPORTED,
    Arith,
    CmdSub,
    Lexer,
    Lit,
    Param,
    ParseError,
    Part,
    Tok,
    Word,
)

__all__ = ["UNSUPPORTED", "AndOr", "Arith", "CmdSub", "Command", "Compound", "For", "Group",
           "If", "Lit", "Loop", "Param", "ParseError", "Parser", "Part", "Pipeline", "Redir",
           "Simple", "Word"]


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
class If:
    clauses: tuple[tuple[tuple[AndOr, ...], tuple[AndOr, ...]], ...]  # (condition, body)
    otherwise: tuple[AndOr, ...] | None


@dataclass(frozen=True)
class Loop:
    until: bool
    condition: tuple[AndOr, ...]
    body: tuple[AndOr, ...]


@dataclass(frozen=True)
class For:
    name: str
    words: tuple[Word, ...] | None  # None: over "$@"
    body: tuple[AndOr, ...]


@dataclass(frozen=True)
class Group:
    body: tuple[AndOr, ...]
    subshell: bool  # ( ... ) rather than { ...; }


@dataclass(frozen=True)
class Compound:
    """A compound command and the redirections that follow it."""

    line: int
    node: If | Loop | For | Group
    redirs: tuple[Redir, ...]


Command: TypeAlias = Simple | Compound


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command, ...]
    negate: bool


@dataclass(frozen=True)
class AndOr:
    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...]


_REDIRECTIONS = frozenset({">", ">>", "<", ">&", "<&", ">|"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
# Words that open a compound command we do not run, and the words that close one.
_OPENERS = {"case": "case statements", "function": "functions", "select": "select loops",
            "[[": "[[ ... ]]"}
_CLOSERS = frozenset({"then", "else", "elif", "fi", "do", "done", "esac", "}"})
_RESERVED = _CLOSERS | {"if", "while", "until", "for", "{", "!", "in", "case"}


class Parser:
    """Recursive descent: lines of and-or lists of pipelines of commands."""

    def __init__(self, src: str) -> None:
        self._lexer = Lexer(src)
        self._ahead: Tok | None = None

    def _peek(self) -> Tok:
        if self._ahead is None:
            self._ahead = self._lexer.next()
        return self._ahead

    def _take(self) -> Tok:
        tok = self._peek()
        self._ahead = None
        return tok

    def _skip_newlines(self) -> None:
        while self._peek().kind == "nl":
            self._take()

    def _at(self, *words: str) -> bool:
        """Whether the next token is one of these reserved words (or operators)."""
        tok = self._peek()
        return tok.kind in ("word", "op") and tok.text in words

    @staticmethod
    def _unexpected(tok: Tok, expecting: str = "") -> ParseError:
        what = {"eof": "end of file", "nl": "newline"}.get(tok.kind, f'"{tok.text}"')
        if tok.kind == "word" and tok.text not in _RESERVED:
            what = "word"
        tail = f' (expecting "{expecting}")' if expecting else ""
        return ParseError(f"syntax error: unexpected {what}{tail}", tok.line)

    @staticmethod
    def _unsupported(construct: str, tok: Tok) -> ParseError:
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
            raise self._separator_error(tok)

    def _separator_error(self, tok: Tok) -> ParseError:
        if tok.text == "&" and tok.kind == "op":
            return self._unsupported("background jobs (&)", tok)
        return self._unexpected(tok)

    def _list(self, *enders: str) -> tuple[AndOr, ...]:
        """A compound command's list, up to (not taking) one of ``enders``."""
        items: list[AndOr] = []
        while True:
            self._skip_newlines()
            tok = self._peek()
            if tok.kind == "eof":
                raise self._unexpected(tok, enders[0])
            if self._at(*enders):
                if not items:
                    raise self._unexpected(tok)
                return tuple(items)
            if tok.kind == "word" and tok.text in _CLOSERS:
                raise self._unexpected(tok, enders[0])
            items.append(self._and_or())
            tok = self._peek()
            if tok.kind in ("nl", "op") and tok.text in ("\n", ";"):
                self._take()
            elif not self._at(*enders) and tok.kind != "eof":
                raise self._separator_error(tok)

    def _expect(self, word: str) -> None:
        tok = self._take()
        if tok.kind not in ("word", "op") or tok.text != word:
            raise self._unexpected(tok, word)

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

    def _command(self) -> Command:
        tok = self._peek()
        openers: dict[str, Callable[[str], If | Loop | For | Group]] = {
            "if": self._if, "while": self._loop, "until": self._loop, "for": self._for,
            "{": self._group}
        opener = openers.get(tok.text) if tok.kind == "word" else None
        if tok.kind == "op" and tok.text == "(":
            opener = self._group
        if opener is None:
            return self._simple()
        self._take()
        node = opener(tok.text)
        redirs: list[Redir] = []
        while self._peek().kind == "op" and self._peek().text in _REDIRECTIONS:
            redirs.append(self._redirection())
        return Compound(tok.line, node, tuple(redirs))

    def _if(self, _: str) -> If:
        clauses = []
        ender = "elif"
        while ender == "elif":
            condition = self._list("then")
            self._expect("then")
            clauses.append((condition, self._list("fi", "elif", "else")))
            ender = self._take().text
        otherwise = None
        if ender == "else":
            otherwise = self._list("fi")
            self._expect("fi")
        return If(tuple(clauses), otherwise)

    def _loop(self, opener: str) -> Loop:
        condition = self._list("do")
        self._expect("do")
        return Loop(opener == "until", condition, self._body())

    def _body(self) -> tuple[AndOr, ...]:
        body = self._list("done")
        self._expect("done")
        return body

    def _for(self, _: str) -> For:
        tok = self._take()
        if tok.kind != "word" or not _NAME.fullmatch(tok.text):
            raise ParseError("syntax error: bad for loop variable", tok.line)
        self._skip_newlines()
        words: list[Word] | None = None
        if self._at("in"):
            self._take()
            words = []
            while self._peek().kind == "word":
                words.append(self._take().parts)
            if not (self._at(";") or self._peek().kind == "nl"):
                raise self._unexpected(self._peek())
            self._take()
        elif self._at(";"):
            self._take()
        self._skip_newlines()
        self._expect("do")
        return For(tok.text, None if words is None else tuple(words), self._body())

    def _group(self, opener: str) -> Group:
        closer = ")" if opener == "(" else "}"
        body = self._list(closer)
        self._expect(closer)
        return Group(body, opener == "(")

    def _redirection(self) -> Redir:
        tok = self._take()
        target = self._take()
        if target.kind != "word":
            raise self._unexpected(target)
        return Redir(tok.fd, tok.text, target.parts)

    def _simple(self) -> Simple:
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
                redirs.append(self._redirection())
            elif tok.kind == "op" and tok.text in ("<<", "<>"):
                raise self._unsupported(f"the redirection {tok.text}", tok)
            elif tok.kind == "op" and tok.text == "(" and words:
                raise self._unsupported("functions", tok)
            else:
                break
        if not (assigns or words or redirs):
            raise self._unexpected(self._peek())
        return Simple(line, tuple(assigns), tuple(words), tuple(redirs))

    def _word(self, tok: Tok, assigns: list[tuple[str, Word]], words: list[Word]) -> None:
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

    def _check_command_word(self, tok: Tok) -> None:
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
