"""A griffe extension: the Sphinx markup of aiocri's docstrings, read for Markdown.

aiocri's docstrings follow Sphinx's conventions, which mkdocstrings (Markdown) does not
read: they would be left out or shown as typed. This extension

- gives an attribute with no docstring the ``#:`` comment above it as its docstring
  (``#: The kubelet's deadline for runtime calls.`` over ``DEFAULT_TIMEOUT = 120.0``),
  so that the reference shows it rather than leaving it out;
- shows a role (``:class:`ClientClosed```, ``:mod:`~aiocri._lean```) as the code
  span it names (``ClientClosed``, ``_lean``);
- ends a paragraph that introduces a literal block with ``:``, not ``::``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"``{target.rsplit('.', 1)[-1] if short else target}``"


class SphinxMarkup(griffe.Extension):
    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None or attr.lineno is None:
            return
        filepath = attr.filepath
        if isinstance(filepath, list) or filepath not in attr.lines_collection:
            return
        lines = attr.lines_collection[filepath]
        comment: list[str] = []
        index = attr.lineno - 2  # the line above the assignment (lineno counts from 1)
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring("\n".join(comment), lineno=index + 2,
                                              parent=attr)

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)


def markdown(text: str) -> str:
    """``text`` with its roles as code spans and its ``::`` as ``:``."""
    return _LITERAL.sub(r"\1:", _ROLE.sub(_role, text))
