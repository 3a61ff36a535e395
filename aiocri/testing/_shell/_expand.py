"""Word expansion: parameters, command substitution, arithmetic, splitting, globbing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from aiocri.testing._shell._arith import ArithError, evaluate
from aiocri.testing._shell._context import ShellContext
from aiocri.testing._shell._syntax import Arith, CmdSub, Lit, Param, Part, Word


class RedirectError(Exception):
    """A redirection that cannot be set up: the command does not run."""


class ExpansionError(Exception):
    """${NAME?} on an unset parameter, or bad arithmetic: the shell ends (status 2)."""


class _Fields:
    """Fields being built from a word's parts: text pieces with a may-glob flag."""

    def __init__(self) -> None:
        self.done: list[list[tuple[str, bool]]] = []
        self._current: list[tuple[str, bool]] = []
        self._real = False  # a quoted empty string still makes a field

    def add(self, text: str, live: bool) -> None:
        self._current.append((text, live))
        self._real = True

    def split(self) -> None:
        if self._real:
            self.done.append(self._current)
        self._current, self._real = [], False

    def add_split(self, value: str) -> None:
        """An unquoted expansion: cut into fields at blanks."""
        for i, piece in enumerate(re.split(r"[ \t\n]+", value)):
            if i:
                self.split()
            if piece:
                self.add(piece, True)


def _has_glob(field: list[tuple[str, bool]]) -> bool:
    return any(live and any(c in text for c in "*?[") for text, live in field)


def _plain(field: Iterable[tuple[str, bool]]) -> str:
    return "".join(text for text, _ in field)



class Expander:
    """The expansion half of :class:`~aiocri.testing._shell._interp.Shell`."""

    ctx: ShellContext
    arg0: str
    params: list[str]
    vars: dict[str, str]
    cwd: str
    status: int

    async def substitute(self, script: str) -> str:
        """Run ``script`` in a subshell; its output (the Shell does this)."""
        raise NotImplementedError

    def _value(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "#":
            return str(len(self.params))
        if name in ("@", "*"):
            return " ".join(self.params)
        if name.isdigit():
            n = int(name)
            return self.arg0 if n == 0 else (self.params[n - 1] if n <= len(self.params)
                                             else None)
        return self.vars.get(name)

    async def fields(self, word: Word) -> list[str]:
        acc = _Fields()
        await self._add(acc, word)
        acc.split()
        out: list[str] = []
        for f in acc.done:
            out += self._glob(f) if _has_glob(f) else [_plain(f)]
        return out

    async def string(self, word: Word) -> str:
        """A word expanded without field splitting or globbing."""
        acc = _Fields()
        await self._add(acc, word, quoted=True)
        acc.split()
        return " ".join(_plain(f) for f in acc.done)

    async def _add(self, acc: _Fields, word: Iterable[Part], *, quoted: bool = False) -> None:
        for part in word:
            if isinstance(part, Lit):
                acc.add(part.text, not (part.quoted or quoted))
            elif isinstance(part, Param):
                await self._add_param(acc, dataclasses.replace(part, quoted=True)
                                      if quoted else part)
            elif isinstance(part, CmdSub):
                text = await self.substitute(part.script)
                if part.quoted or quoted:
                    acc.add(text, False)
                else:
                    acc.add_split(text)
            else:
                acc.add(str(await self.arithmetic(part)), False)

    async def arithmetic(self, part: Arith) -> int:
        expr = await self.string(part.parts)
        try:
            return evaluate(expr, self.vars.get, self.vars.__setitem__)
        except ArithError as exc:
            raise ExpansionError(str(exc)) from None

    async def _add_param(self, acc: _Fields, p: Param) -> None:
        value = self._value(p.name)
        if p.op.lstrip(":") in ("-", "+", "=", "?"):
            value = await self._operator(acc, p, value)
            if value is None:  # the word after the operator stood in for it
                return
        elif p.op == "#":
            value = str(len(value or ""))
        elif p.op == "~" and value is None:
            value = "~"
        if p.name == "@" and p.quoted:  # "$@": one field a parameter
            for i, param in enumerate(self.params):
                if i:
                    acc.split()
                acc.add(param, False)
        elif p.quoted:
            acc.add(value or "", False)
        else:
            acc.add_split(value or "")

    async def _operator(self, acc: _Fields, p: Param, value: str | None) -> str | None:
        """${NAME-word} and its kin: the value to use, or None when the word was used."""
        kind = p.op.lstrip(":")
        missing = value is None or (p.op.startswith(":") and not value)
        if kind == "+":  # the other way round: the word stands in for a value
            missing, value = not missing, ""
        if not missing:
            return value
        if kind == "?":
            default = "parameter not set" + (" or null" if p.op == ":?" else "")
            raise ExpansionError(f"{p.name}: {await self.string(p.arg) or default}")
        if kind == "=":
            value = self.vars[p.name] = await self.string(p.arg)
            return value
        if p.quoted:  # "${X:-}" is still a field, if an empty one
            acc.add("", False)
        await self._add(acc, p.arg)
        return None

    def _glob(self, field: list[tuple[str, bool]]) -> list[str]:
        """Pathname expansion over the fake file system; no match keeps the word."""
        components: list[list[tuple[str, bool]]] = [[]]
        for text, live in field:
            for i, chunk in enumerate(text.split("/")):
                if i:
                    components.append([])
                if chunk:
                    components[-1].append((chunk, live))
        found = ["/" if _plain(field).startswith("/") else ""]
        for comp in filter(None, components):
            found = self._glob_step(found, comp)
        fs = self.ctx.files
        matches = sorted(p for p in found if fs.exists(fs.normalize(p, self.cwd)))
        return matches or [_plain(field)]

    def _glob_step(self, found: list[str], comp: list[tuple[str, bool]]) -> list[str]:
        """The paths one more component of a pattern leads to from ``found``."""
        if not _has_glob(comp):
            return [_join(base, _plain(comp)) for base in found]
        fs = self.ctx.files
        pattern = re.compile(_glob_regex(comp), re.DOTALL)
        dotted = _plain(comp).startswith(".")  # only then may names start with "."
        out: list[str] = []
        for base in found:
            where = fs.normalize(base or ".", self.cwd)
            if fs.is_dir(where):
                names = [".", "..", *fs.listdir(where)]
                out += [_join(base, n) for n in names
                        if pattern.fullmatch(n) and (dotted or not n.startswith("."))]
        return out


def _join(base: str, name: str) -> str:
    return name if not base else (base + name if base.endswith("/") else f"{base}/{name}")


def _glob_regex(comp: list[tuple[str, bool]]) -> str:
    out: list[str] = []
    for text, live in comp:
        i = 0
        while i < len(text):
            ch = text[i]
            close = text.find("]", i + 2) if live and ch == "[" else -1
            if live and ch == "*":
                out.append(".*")
            elif live and ch == "?":
                out.append(".")
            elif close > 0:
                body = text[i + 1:close]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("[" + "^" * negate + body.replace("\\", "\\\\") + "]")
                i = close
            else:
                out.append(re.escape(ch))
            i += 1
    return "".join(out)
