"""test and [: string, number and file tests."""

from __future__ import annotations

import re
from collections.abc import Callable

from aiocri.testing._shell._call import Call
from aiocri.testing._shell._registry import register

_UNARY = frozenset({"-e", "-f", "-d", "-s", "-r", "-w", "-x", "-c", "-b", "-p", "-S", "-h",
                    "-L", "-t", "-n", "-z"})
_BINARY = frozenset({"=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge"})


class _TestError(Exception):
    pass


class _Test:
    """test's expression, by recursive descent: -o over -a over ! over primaries."""

    def __init__(self, c: Call, args: list[str]) -> None:
        self.c, self.args, self.i = c, args, 0

    def _peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.args[j] if j < len(self.args) else None

    def evaluate(self) -> bool:
        if not self.args:
            return False
        value = self._or()
        if self.i < len(self.args):
            raise _TestError(f"{self.args[self.i]}: unknown operand")
        return value

    def _or(self) -> bool:
        return self._chain("-o", self._and, any)

    def _and(self) -> bool:
        return self._chain("-a", self._not, all)

    def _chain(self, op: str, operand: Callable[[], bool],
               combine: Callable[[list[bool]], bool]) -> bool:
        values = [operand()]  # every operand is parsed, as no shortcut may skip words
        while self._peek() == op:
            self.i += 1
            values.append(operand())
        return combine(values)

    def _not(self) -> bool:
        if self._peek() == "!" and self._peek(1) is not None:
            self.i += 1
            return not self._not()
        return self._primary()

    def _primary(self) -> bool:
        first = self.args[self.i] if self.i < len(self.args) else ""
        self.i += 1
        if first == "(" and self._peek() is not None and self._peek(1) is not None:
            value = self._or()
            if self._peek() != ")":
                raise _TestError("missing )")
            self.i += 1
            return value
        op, right = self._peek(), self._peek(1)
        if op in _BINARY and right is not None:
            self.i += 2
            return self._binary(first, op, right)
        if first in _UNARY and op is not None:
            self.i += 1
            return self._unary(first, op)
        return first != ""

    @staticmethod
    def _number(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
            raise _TestError(f"{text}: bad number")
        return int(text)

    def _binary(self, left: str, op: str, right: str) -> bool:
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op in ("<", ">"):
            return left < right if op == "<" else left > right
        a, b = self._number(left), self._number(right)
        return {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b,
                "-gt": a > b, "-ge": a >= b}[op]

    def _unary(self, op: str, arg: str) -> bool:
        if op in ("-n", "-z"):
            return (arg != "") == (op == "-n")
        path = self.c.path(arg)
        if not self.c.fs.exists(path):
            return False
        info = self.c.fs.stat(path)
        # files have no owners here: the owner's bits decide, and root may read and write
        checks = {
            "-e": True, "-f": info.kind == "file", "-d": info.kind == "dir",
            "-c": info.kind == "device", "-s": info.size > 0,
            "-r": self.c.ctx.uid == 0 or bool(info.mode & 0o400),
            "-w": self.c.ctx.uid == 0 or bool(info.mode & 0o200),
            "-x": bool(info.mode & 0o111),
        }
        return checks.get(op, False)


@register("test", "[")
async def _test(c: Call) -> int:
    args = c.args
    if c.argv[0].rsplit("/", 1)[-1] == "[":
        if not args or args[-1] != "]":
            await c.err("missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if _Test(c, args).evaluate() else 1
    except _TestError as exc:
        await c.err(str(exc))
        return 2
