"""Arithmetic expansion ``$((...))``: ash's integer expressions, in C's 64-bit semantics.

Numbers are decimal, octal (``010``) or hex (``0x10``); a name stands for its
variable, whose value is itself evaluated as an expression (unset or empty is 0).
The operators, by falling precedence: ``( )``, postfix and prefix ``++ --``, unary
``+ - ! ~``, ``**``, ``* / %``, ``+ -``, ``<< >>``, ``< <= > >=``, ``== !=``, ``&``,
``^``, ``|``, ``&&``, ``||``, ``?:``, the assignments ``= += -= *= /= %= <<= >>= &=
^= |=``, and ``,``. Division truncates toward zero and the remainder takes the
dividend's sign, as in C; results wrap around at 64 bits. Errors read as busybox's:
``arithmetic syntax error`` and ``divide by zero``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKEN = re.compile(r"\s*(?:([0-9][0-9A-Za-z_]*)|([A-Za-z_][A-Za-z0-9_]*)|"
                    r"(<<=|>>=|\*\*|<<|>>|<=|>=|==|!=|&&|\|\||\+\+|--|[-+*/%&^|]=|"
                    r"[-+*/%()<>=!~&|^?:,]))")
_BINARY: tuple[tuple[str, ...], ...] = (  # the levels from ``|`` down to ``*``
    ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"), ("+", "-"),
    ("*", "/", "%"))
_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="})
_MAX_DEPTH = 64


class ArithError(Exception):
    """An expression that cannot be evaluated; the text is busybox's message."""


def _wrap(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _divide(a: int, b: int, op: str) -> int:
    if b == 0:
        raise ArithError("divide by zero")
    quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    return _wrap(quotient if op == "/" else a - b * quotient)


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%"):
        return _divide(a, b, op)
    if op in ("<<", ">>"):
        return _wrap(a << (b & 63)) if op == "<<" else a >> (b & 63)
    if op == "**":
        if b < 0:
            raise ArithError("exponent less than 0")
        return _wrap(pow(a, b, 1 << 64))
    table: dict[str, Callable[[int, int], int]] = {
        "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
        "|": lambda x, y: x | y, "^": lambda x, y: x ^ y, "&": lambda x, y: x & y,
        "==": lambda x, y: int(x == y), "!=": lambda x, y: int(x != y),
        "<": lambda x, y: int(x < y), "<=": lambda x, y: int(x <= y),
        ">": lambda x, y: int(x > y), ">=": lambda x, y: int(x >= y)}
    return _wrap(table[op](a, b))


def _number(text: str) -> int:
    try:
        if text[:2] in ("0x", "0X"):
            return _wrap(int(text[2:], 16))
        if text.startswith("0") and len(text) > 1:
            return _wrap(int(text[1:], 8))
        if text.isdigit():
            return _wrap(int(text))
    except ValueError:
        pass
    raise ArithError("arithmetic syntax error")


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) pairs, kind one of "num", "name", "op"."""
    out: list[tuple[str, str]] = []
    pos = 0
    while expr[pos:].strip():
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ArithError("arithmetic syntax error")
        kind = "num" if match.group(1) else "name" if match.group(2) else "op"
        out.append((kind, match.group(match.lastindex or 0)))
        pos = match.end()
    return out


class _Evaluator:
    def __init__(self, expr: str, get: Callable[[str], str | None],
                 put: Callable[[str, str], None], depth: int) -> None:
        self.toks, self.i = tokens(expr), 0
        self.get, self.put, self.depth = get, put, depth
        self.live = True  # False in a branch not taken: computed (as ash does), not stored

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else ("end", "")

    def take(self, *ops: str) -> str | None:
        kind, text = self.peek()
        if kind == "op" and text in ops:
            self.i += 1
            return text
        return None

    def need(self, op: str) -> None:
        if self.take(op) is None:
            raise ArithError("arithmetic syntax error")

    def variable(self, name: str) -> int:
        value = (self.get(name) or "").strip()
        if not value:
            return 0
        if re.fullmatch(r"-?[0-9]+", value):
            return _wrap(int(value))
        if self.depth >= _MAX_DEPTH:
            raise ArithError("expression recursion loop detected")
        return evaluate(value, self.get, self.put, self.depth + 1)

    def store(self, name: str, value: int) -> int:
        if self.live:
            self.put(name, str(value))
        return value

    def comma(self) -> int:
        value = self.assignment()
        while self.take(","):
            value = self.assignment()
        return value

    def assignment(self) -> int:
        (kind, name), (_, op) = self.peek(), self.peek(1)
        if kind == "name" and self.peek(1)[0] == "op" and op in _ASSIGN:
            self.i += 2
            value = self.assignment()
            if op != "=":
                value = _apply(op[:-1], self.variable(name), value)
            return self.store(name, value)
        return self.conditional()

    def conditional(self) -> int:
        cond = self.logical("||")
        if not self.take("?"):
            return cond
        live = self.live
        self.live = live and bool(cond)
        yes = self.comma()
        self.need(":")
        self.live = live and not cond
        no = self.conditional()
        self.live = live
        return yes if cond else no

    def logical(self, op: str) -> int:
        value = self.logical("&&") if op == "||" else self.binary(0)
        while self.take(op):
            live = self.live
            self.live = live and bool(value) == (op == "&&")
            right = self.logical("&&") if op == "||" else self.binary(0)
            self.live = live
            value = int(bool(value or right) if op == "||" else bool(value and right))
        return value

    def binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self.power()
        value = self.binary(level + 1)
        while (op := self.take(*_BINARY[level])) is not None:
            right = self.binary(level + 1)
            value = _apply(op, value, right)
        return value

    def power(self) -> int:
        base = self.unary()
        if self.take("**"):
            exponent = self.power()
            return _apply("**", base, exponent)
        return base

    def unary(self) -> int:
        op = self.take("+", "-", "!", "~", "++", "--")
        if op in ("++", "--"):
            kind, name = self.peek()
            if kind != "name":
                raise ArithError("arithmetic syntax error")
            self.i += 1
            return self.store(name, _wrap(self.variable(name) + (1 if op == "++" else -1)))
        if op is None:
            return self.primary()
        value = self.unary()
        return {"+": value, "-": _wrap(-value), "!": int(not value), "~": ~value}[op]

    def primary(self) -> int:
        kind, text = self.peek()
        self.i += 1
        if kind == "num":
            return _number(text)
        if kind == "name":
            value = self.variable(text)
            step = self.take("++", "--")
            if step:
                self.store(text, _wrap(value + (1 if step == "++" else -1)))
            return value
        if kind == "op" and text == "(":
            value = self.comma()
            self.need(")")
            return value
        raise ArithError("arithmetic syntax error")


def evaluate(expr: str, get: Callable[[str], str | None], put: Callable[[str, str], None],
             depth: int = 0) -> int:
    """The value of ``expr``; ``get`` reads a variable (None: unset), ``put`` sets one."""
    ev = _Evaluator(expr, get, put, depth)
    if not ev.toks:
        return 0
    value = ev.comma()
    if ev.i != len(ev.toks):
        raise ArithError("arithmetic syntax error")
    return value
