"""The part of Go's ``text/template`` that ``-o go-template --template`` users write.

crictl runs the template on the JSON it would print with ``-o json`` (decoded into Go
maps and lists) with ``missingkey=error``, and adds the functions ``json``, ``title``,
``lower`` and ``upper``; this module does the same on the command's JSON data.

Supported:

- text, and actions ``{{ ... }}`` with Go's trim markers (``{{- `` and `` -}}``) and
  comments (``{{/* ... */}}``);
- pipelines: ``.`` and fields by their JSON names (``.status.metadata.name``), ``$``,
  variables (``{{$x := ...}}``, ``{{$x = ...}}``), literals (``"text"``, raw
  ```text```, numbers, ``true``, ``false``, ``nil``), function calls, ``|`` and
  parentheses;
- ``{{if}}``/``{{else if}}``/``{{else}}``/``{{end}}``, ``{{range}}`` over lists, maps
  (in key order) and numbers, with ``$i, $v :=`` and ``{{else}}``, and ``{{with}}``;
- the functions ``and or not eq ne lt le gt ge len index print printf println`` (Go's)
  and ``json title lower upper`` (crictl's).

Anything else (``define``, ``template``, ``block``, ``break``, ``continue``, methods,
character constants) is a :class:`TemplateError` that says so. Values print as Go
prints them: ``<no value>`` for nothing, ``[a b]`` for a list, ``map[k:v]`` for a map.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Template", "TemplateError"]


class TemplateError(ValueError):
    """A template that cannot be parsed, or that failed on the data."""


# -- lexing ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?))
  | (?P<declare>:=)
  | (?P<op>[|(),=])
  | (?P<variable>\$\w*)
  | (?P<field>(?:\.\w+)+|\.)
  | (?P<name>[A-Za-z_]\w*)
""", re.VERBOSE)
_CHAIN = re.compile(r"(?:\.\w+)+")


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def _split(text: str) -> Iterator[tuple[str, str, int]]:
    """("text", text, pos) and ("action", inside, pos) pieces, trim markers applied."""
    pos, trim_next = 0, False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip()
        inside_start = start + 2
        if start >= 0 and _trim_marker(text, start + 2, start + 3):  # "{{- "
            chunk = chunk.rstrip()
            inside_start += 1
        if chunk:
            yield "text", chunk, pos
        if start < 0:
            return
        end = _action_end(text, inside_start)
        trim_next = _trim_marker(text, end - 1, end - 2)  # " -}}"
        yield "action", text[inside_start:end - 1 if trim_next else end], inside_start
        pos = end + 2


def _trim_marker(text: str, dash: int, space: int) -> bool:
    return 0 <= space < len(text) and text[dash] == "-" and text[space] in " \t\r\n"


def _action_end(text: str, pos: int) -> int:
    """Where the action's ``}}`` is (strings and comments may hold braces)."""
    i = pos
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    if text.startswith("/*", i):
        close = text.find("*/", i + 2)
        if close < 0:
            raise TemplateError(f"unclosed comment at character {i}: add '*/}}}}'")
        i = close + 2
    while i < len(text):
        if text.startswith("}}", i):
            return i
        quote = text[i]
        if quote in "\"`'":
            i += 1
            while i < len(text) and text[i] != quote:
                i += 2 if quote != "`" and text[i] == "\\" else 1
        i += 1
    raise TemplateError(f"unclosed action starting at character {pos - 2}: add '}}}}'")


def _tokens(inside: str, offset: int) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(inside):
        match = _TOKEN.match(inside, pos)
        if match is None:
            raise TemplateError(f"unexpected {inside[pos]!r} at character {offset + pos}")
        kind = match.lastgroup or ""
        if kind == "variable" and _CHAIN.match(inside, match.end()):  # $x.field
            chain = _CHAIN.match(inside, match.end())
            assert chain is not None
            tokens.append(_Token("variable", match.group(), offset + pos))
            tokens.append(_Token("field", chain.group(), offset + match.end()))
            pos = chain.end()
            continue
        if kind != "space":
            tokens.append(_Token(kind, match.group(), offset + pos))
        pos = match.end()
    return tokens


# -- parsing ---------------------------------------------------------------------------------

@dataclass
class _Command:
    """A function call with arguments, or one operand."""

    args: list[Any]  # operands: _Token, _Pipeline, or (_Token, fields) for chains
    pos: int


@dataclass
class _Pipeline:
    commands: list[_Command]
    declare: list[str] = field(default_factory=list)
    assign: bool = False  # ``$x = ...`` rather than ``$x := ...``


@dataclass
class _Block:
    keyword: str  # "if", "range", "with"
    pipeline: _Pipeline
    body: list[Any]
    otherwise: list[Any]
    names: list[str] = field(default_factory=list)  # range's $i, $v


_UNSUPPORTED = ("define", "template", "block", "break", "continue")


class _Parser:
    def __init__(self, text: str) -> None:
        self.pieces = list(_split(text))
        self.at = 0

    def parse(self) -> list[Any]:
        nodes, stop = self.nodes()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0]}}}}} at character {stop[1]}")
        return nodes

    def nodes(self) -> tuple[list[Any], tuple[str, int, list[_Token]] | None]:
        """Nodes up to an {{end}} or {{else ...}} (returned) or the end (None)."""
        nodes: list[Any] = []
        while self.at < len(self.pieces):
            kind, text, pos = self.pieces[self.at]
            self.at += 1
            if kind == "text":
                nodes.append(text)
                continue
            if text.strip().startswith("/*"):
                if not text.strip().endswith("*/"):
                    raise TemplateError(f"unclosed comment at character {pos}")
                continue
            tokens = _tokens(text, pos)
            if not tokens:
                raise TemplateError(f"empty action at character {pos}")
            head = tokens[0]
            if head.kind == "name" and head.text in ("end", "else"):
                return nodes, (head.text, head.pos, tokens[1:])
            if head.kind == "name" and head.text in ("if", "range", "with"):
                nodes.append(self.block(head, tokens[1:]))
            elif head.kind == "name" and head.text in _UNSUPPORTED:
                raise TemplateError(f"{{{{{head.text}}}}} is not supported by aiocri's "
                                    "go-template (see aiocri inspect -h)")
            else:
                nodes.append(_PipelineParser(tokens).pipeline(declarations=True))
        return nodes, None

    def block(self, head: _Token, tokens: list[_Token]) -> _Block:
        if not tokens:
            raise TemplateError(f"missing value for {{{{{head.text}}}}} at character "
                                f"{head.pos}")
        pipeline = _PipelineParser(tokens).pipeline(declarations=head.text != "if")
        names: list[str] = []
        if head.text == "range":
            names, pipeline.declare = pipeline.declare, []
        body, stop = self.nodes()
        otherwise: list[Any] = []
        if stop is not None and stop[0] == "else":
            rest = stop[2]
            if rest and rest[0].kind == "name" and rest[0].text == "if" and head.text == "if":
                otherwise = [self.block(rest[0], rest[1:])]  # else if: shares the {{end}}
                return _Block(head.text, pipeline, body, otherwise)
            if rest:
                raise TemplateError(f"unexpected {rest[0].text!r} after {{{{else}}}} at "
                                    f"character {rest[0].pos}")
            otherwise, stop = self.nodes()
        if stop is None or stop[0] != "end":
            raise TemplateError(f"missing {{{{end}}}} for the {{{{{head.text}}}}} at "
                                f"character {head.pos}")
        return _Block(head.text, pipeline, body, otherwise, names)


class _PipelineParser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def pipeline(self, *, declarations: bool, closing: str = "") -> _Pipeline:
        result = _Pipeline([])
        if declarations:
            self.declaration(result)
        while True:
            result.commands.append(self.command(closing))
            token = self.peek()
            if token is None or token.text == closing:
                return result
            self.at += 1  # the "|"

    def declaration(self, result: _Pipeline) -> None:
        names: list[str] = []
        at = self.at
        while (token := self.peek()) is not None and token.kind == "variable":
            names.append(token.text)
            self.at += 1
            token = self.peek()
            if token is not None and token.text == ",":
                self.at += 1
                continue
            break
        token = self.peek()
        if names and token is not None and token.kind in ("declare", "op") and token.text in (
                ":=", "="):
            self.at += 1
            result.declare, result.assign = names, token.text == "="
            return
        self.at = at

    def command(self, closing: str) -> _Command:
        args: list[Any] = []
        start = self.peek()
        while (token := self.peek()) is not None and token.text not in ("|", closing):
            self.at += 1
            args.append(self.operand(token))
        if not args:
            where = start.pos if start is not None else "the end"
            raise TemplateError(f"missing value in a pipeline at character {where}")
        first = args[0]
        if len(args) > 1 and not (isinstance(first, _Token) and first.kind == "name"
                                  and first.text in _FUNCTIONS):
            raise TemplateError(f"can't give an argument to a non-function (at character "
                                f"{getattr(first, 'pos', '?')})")
        return _Command(args, getattr(first, "pos", 0))

    def operand(self, token: _Token) -> Any:
        if token.text == "(":
            inner = self.pipeline(declarations=False, closing=")")
            end = self.peek()
            if end is None or end.text != ")":
                raise TemplateError(f"unclosed '(' at character {token.pos}")
            self.at += 1
            return self.fields_after(inner)  # (...).field
        if token.kind in ("op", "declare"):
            raise TemplateError(f"unexpected {token.text!r} at character {token.pos}")
        if token.kind == "char":
            raise TemplateError(f"character constants ({token.text}) are not supported; "
                                "use a string")
        if token.kind == "variable":
            return self.fields_after(token)  # $x.field
        if token.kind == "name" and token.text not in _FUNCTIONS and token.text not in (
                "true", "false", "nil"):
            raise TemplateError(f'function "{token.text}" not defined (at character '
                                f"{token.pos}); aiocri knows {', '.join(sorted(_FUNCTIONS))}")
        return token

    def fields_after(self, base: Any) -> Any:
        following = self.peek()
        if following is None or following.kind != "field":
            return base
        self.at += 1
        return (base, following.text)


# -- values, as Go prints and tests them -------------------------------------------------------


def _text(value: Any) -> str:
    """``fmt.Sprint`` of a value decoded from JSON."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_inner(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else _text(value)


def _truth(value: Any) -> bool:
    return bool(value)


def _fields(value: Any, chain: str, pos: int) -> Any:
    for name in chain.split(".")[1:]:
        if isinstance(value, dict):
            if name not in value:
                raise TemplateError(f'at <{chain}> (character {pos}): map has no entry for '
                                    f'key "{name}"')
            value = value[name]
        elif value is None:
            raise TemplateError(f"at <{chain}> (character {pos}): nil pointer evaluating "
                                f".{name}")
        else:
            raise TemplateError(f"at <{chain}> (character {pos}): can't evaluate field "
                                f"{name} in a {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {list: "list", dict: "map", str: "string", bool: "bool"}.get(type(value), "number")


# -- functions -----------------------------------------------------------------------------------


def _and(first: Any, *rest: Any) -> Any:
    for arg in (first, *rest):
        if not _truth(arg):
            return arg
    return (first, *rest)[-1]


def _or(first: Any, *rest: Any) -> Any:
    for arg in (first, *rest):
        if _truth(arg):
            return arg
    return (first, *rest)[-1]


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(_number(a), _number(b))
        except TypeError:
            raise TemplateError(f"incompatible types for comparison: {_text(a)!r} and "
                                f"{_text(b)!r}") from None
    return compare


def _number(value: Any) -> Any:
    """JSON's 64-bit integers are strings (``"1024"``): compare them as numbers."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("eq needs at least two arguments")
    return any(_number(first) == _number(other) for other in others)


def _len(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise TemplateError(f"len of {_text(value)!r}: not a string, list or map")


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(str(key))
        elif isinstance(value, list | str) and isinstance(_number(key), int):
            if not 0 <= _number(key) < len(value):
                raise TemplateError(f"index {key} out of range (length {len(value)})")
            value = value[_number(key)]
        else:
            raise TemplateError(f"can't index {_text(value)!r} with {_text(key)!r}")
    return value


def _print(*args: Any) -> str:
    out = ""
    for i, arg in enumerate(args):  # Go: a space between operands when neither is a string
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _text(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _printf(form: str, *args: Any) -> str:
    values = list(args)

    def one(match: re.Match[str]) -> str:
        flags, width, precision, verb = match.groups()
        if verb == "%":
            return "%"
        if not values:
            raise TemplateError(f"printf {form!r}: too few arguments")
        value = values.pop(0)
        spec = f"%{flags}{width}{'.' + precision if precision else ''}"
        try:
            if verb in "vs":
                return (spec + "s") % _text(value)
            if verb == "q":
                return (spec + "s") % json.dumps(_text(value), ensure_ascii=False)
            if verb == "t":
                return (spec + "s") % _text(bool(value))
            if verb in "xX" and isinstance(_number(value), str):  # Go: the bytes in hex
                digits = str(value).encode().hex()
                return (spec + "s") % (digits.upper() if verb == "X" else digits)
            if verb in "dxXo":
                return str((spec + verb) % _number(value))
            if verb in "feEgG":
                return (spec + verb) % float(_number(value))
        except (TypeError, ValueError):
            raise TemplateError(f"printf {form!r}: %{verb} cannot print "
                                f"{_text(value)!r}") from None
        raise TemplateError(f"printf {form!r}: %{verb} is not supported; use %v, %s, %q, "
                            "%d, %x, %f, %g or %t")

    out = _VERB.sub(one, form)
    if values:
        raise TemplateError(f"printf {form!r}: too many arguments")
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def _title(text: Any) -> str:
    return re.sub(r"(?<![\w'])\w", lambda m: m.group().upper(), _text(text))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": lambda v: not _truth(v),
    "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": _compare(lambda a, b: a < b), "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b), "ge": _compare(lambda a, b: a >= b),
    "len": _len, "index": _index,
    "print": _print, "printf": _printf, "println": lambda *a: " ".join(map(_text, a)) + "\n",
    "json": _json, "title": _title,
    "lower": lambda v: _text(v).lower(), "upper": lambda v: _text(v).upper(),
}


# -- executing ------------------------------------------------------------------------------------


class Template:
    """A parsed template; :meth:`execute` runs it on JSON-like data.

    Parameters:
        text: the template, as given to ``--template``.

    Raises :class:`TemplateError` when ``text`` is not a template this module can run.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._nodes = _Parser(text).parse()

    def execute(self, data: Any) -> str:
        """The output of the template on ``data``; :class:`TemplateError` when it fails."""
        out: list[str] = []
        self._run(self._nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, scopes: list[dict[str, Any]],
             out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _Pipeline):
                value = self._pipeline(node, dot, scopes)
                if not node.declare:
                    out.append(_text(value))
            else:
                self._block(node, dot, scopes, out)

    def _block(self, block: _Block, dot: Any, scopes: list[dict[str, Any]],
               out: list[str]) -> None:
        inner = [*scopes, {}]
        if block.keyword != "range":
            value = self._pipeline(block.pipeline, dot, inner)
            if _truth(value):
                self._run(block.body, value if block.keyword == "with" else dot, inner, out)
            else:
                self._run(block.otherwise, dot, [*scopes, {}], out)
            return
        names = block.names
        value = self._pipeline(block.pipeline, dot, inner)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {_text(value)!r}")
        for key, item in items:
            scope: dict[str, Any] = {}
            if len(names) == 1:
                scope[names[0]] = item
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, item
            self._run(block.body, item, [*scopes, scope], out)
        if not items:
            self._run(block.otherwise, dot, [*scopes, {}], out)

    def _pipeline(self, pipeline: _Pipeline, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value: Any = None
        for i, command in enumerate(pipeline.commands):
            value = self._command(command, dot, scopes, piped=i > 0, value=value)
        if pipeline.assign:
            for name in pipeline.declare:
                target = next((s for s in reversed(scopes) if name in s), None)
                if target is None:
                    raise TemplateError(f"undefined variable {name}")
                target[name] = value
        elif pipeline.declare:
            scopes[-1][pipeline.declare[-1]] = value
        return value

    def _command(self, command: _Command, dot: Any, scopes: list[dict[str, Any]], *,
                 piped: bool, value: Any) -> Any:
        first = command.args[0]
        if isinstance(first, _Token) and first.kind == "name" and first.text in _FUNCTIONS:
            args = [self._operand(a, dot, scopes) for a in command.args[1:]]
            if piped:
                args.append(value)
            try:
                return _FUNCTIONS[first.text](*args)
            except TypeError:
                raise TemplateError(f"wrong number of arguments for {first.text} (at "
                                    f"character {first.pos})") from None
        if piped:
            raise TemplateError(f"can't pipe a value into a non-function (at character "
                                f"{command.pos})")
        return self._operand(first, dot, scopes)

    def _operand(self, operand: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if isinstance(operand, _Pipeline):
            return self._pipeline(operand, dot, scopes)
        if isinstance(operand, tuple):
            base, chain = operand
            return _fields(self._operand(base, dot, scopes), chain, getattr(base, "pos", 0))
        token: _Token = operand
        if token.kind == "field":
            return dot if token.text == "." else _fields(dot, token.text, token.pos)
        if token.kind == "variable":
            for scope in reversed(scopes):
                if token.text in scope:
                    return scope[token.text]
            raise TemplateError(f"undefined variable {token.text} at character {token.pos}")
        if token.kind == "string":
            return json.loads(token.text)
        if token.kind == "raw":
            return token.text[1:-1]
        if token.kind == "number":
            text = token.text.replace("_", "")
            return int(text, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", text) \
                else float(text)
        if token.kind == "name":
            if token.text in _FUNCTIONS:  # a function given no arguments
                return self._command(_Command([token], token.pos), dot, scopes, piped=False,
                                     value=None)
            return {"true": True, "false": False, "nil": None}[token.text]
        raise TemplateError(f"unexpected {token.text!r} at character {token.pos}")
