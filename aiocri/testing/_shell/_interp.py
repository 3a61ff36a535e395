"""The shell that runs a script: expansion, redirections, pipelines and commands."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import re
from collections.abc import AsyncIterator, Iterable, Sequence

from aiocri.testing._shell._builtins import BUILTINS, MISSING_BUILTINS, SHELL_APPLETS, Exit
from aiocri.testing._shell._call import Call, exists_as_path, find, invoke
from aiocri.testing._shell._context import DEFAULT_PATH, ShellContext
from aiocri.testing._shell._streams import (
    BrokenPipe,
    Fds,
    Input,
    Pipe,
    Writer,
    discard,
    reader,
    writer,
)
from aiocri.testing._shell._syntax import (
    UNSUPPORTED,
    AndOr,
    Lit,
    Param,
    ParseError,
    Parser,
    Part,
    Pipeline,
    Redir,
    Simple,
    Word,
)


class _RedirectError(Exception):
    """A redirection that cannot be set up: the command does not run."""


class _ExpansionError(Exception):
    """${NAME?}: the parameter is unset, and the shell ends."""


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


class Shell:
    """One busybox-like ``sh``: its variables, working directory and last status.

    ``run`` may be called again for more input (an interactive session keeps one);
    after ``exit`` has run, ``exited`` is true.
    """

    def __init__(self, ctx: ShellContext, *, name: str = "sh", dollar0: str | None = None,
                 params: Sequence[str] = ()) -> None:
        self.ctx = ctx
        self.arg0 = dollar0 if dollar0 is not None else name  # prefix of the shell's errors
        self.applet = name.rsplit("/", 1)[-1]  # prefix of its builtin applets' errors
        self.named = dollar0 is not None  # ash adds "line N:" then
        self.params = list(params)
        self.cwd = ctx.working_dir
        self.status = 0
        self.exited = False
        self.errexit = False
        self.vars = dict(ctx.env)
        level = self.vars.get("SHLVL", "")
        self.vars["SHLVL"] = str(int(level) + 1 if level.isdigit() else 1)
        self.vars["PWD"] = self.cwd
        self.exported = set(self.vars)
        self._fds: Fds = {}

    async def run(self, script: str, *, stdin: AsyncIterator[bytes] | None, stdout: Writer,
                  stderr: Writer) -> int:
        self._fds = {0: stdin if isinstance(stdin, Input) else Input(stdin),
                     1: stdout, 2: stderr}
        parser = Parser(script)
        try:
            while (line := parser.line()) is not None:
                for item in line:
                    await self._and_or(item)
        except ParseError as exc:
            await writer(self._fds, 2)(self._msg(exc.line, exc.text))
            self.status = 2
        except Exit as exc:
            self.status, self.exited = exc.code, True
        return self.status

    def _msg(self, line: int, text: str) -> bytes:
        where = f"line {line}: " if self.named else ""
        return f"{self.arg0}: {where}{text}\n".encode()

    def _builtin_msg(self, name: str, line: int, text: str) -> bytes:
        return f"{self.arg0}: {name}: line {line}: {text}\n".encode()

    async def _and_or(self, node: AndOr) -> None:
        status = await self._pipeline(node.first)
        last = node.first
        for op, pipeline in node.rest:
            if (op == "&&") == (status == 0):
                status, last = await self._pipeline(pipeline), pipeline
        self.status = status
        # set -e: only a failure of the list's last pipeline ends the shell
        last_counts = last is (node.rest[-1][1] if node.rest else node.first)
        if self.errexit and status and last_counts and not last.negate:
            raise Exit(status)

    async def _pipeline(self, node: Pipeline) -> int:
        if len(node.commands) == 1:
            status = await self._simple(node.commands[0])
        else:
            status = await self._stages(node.commands)
        return int(status == 0) if node.negate else status

    async def _stages(self, commands: Sequence[Simple]) -> int:
        pipes = [Pipe() for _ in commands[1:]]

        async def stage(i: int) -> int:
            sub = copy.copy(self)  # each stage is a subshell: its cd and exit stay in it
            sub.vars, sub.exported = dict(self.vars), set(self.exported)
            sub._fds = dict(self._fds)
            if i:
                sub._fds[0] = Input(pipes[i - 1].chunks())
            if i < len(pipes):
                sub._fds[1] = pipes[i].write
            try:
                return await sub._simple(commands[i])
            except Exit as exc:
                return exc.code
            except BrokenPipe:
                return 128 + 13
            finally:
                if i < len(pipes):
                    pipes[i].close()
                if i:
                    pipes[i - 1].abandon()

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(stage(i)) for i in range(len(commands))]
        return tasks[-1].result()

    async def _simple(self, cmd: Simple) -> int:
        try:
            argv = [f for word in cmd.words for f in self._fields(word)]
            assigns = {name: self._string(value) for name, value in cmd.assigns}
        except _ExpansionError as exc:
            await writer(self._fds, 2)(self._msg(cmd.line, str(exc)))
            raise Exit(2) from None
        try:
            fds = self._redirect(cmd.redirs)
        except _RedirectError as exc:
            await writer(self._fds, 2)(self._msg(cmd.line, str(exc)))
            return 1
        if not argv:
            self.vars.update(assigns)
            return 0
        builtin = BUILTINS.get(argv[0])
        if builtin is not None:
            return await builtin(self, argv, fds, cmd.line)
        if argv[0] in MISSING_BUILTINS:  # going on without it could go wrong silently
            await writer(fds, 2)(self._msg(cmd.line, f"{argv[0]} {UNSUPPORTED}"))
            raise Exit(2)
        env = {k: v for k, v in self.vars.items() if k in self.exported} | assigns
        return await self._exec(argv, env, fds, cmd.line)

    async def _exec(self, argv: list[str], env: dict[str, str], fds: Fds, line: int) -> int:
        if argv[0] in SHELL_APPLETS:  # ash's own echo, printf, test...: no PATH search
            applet, prefix = argv[0], self.applet
        else:
            found = find(argv[0], self.ctx.files, env.get("PATH", DEFAULT_PATH), self.cwd)
            if found is None and exists_as_path(argv[0], self.ctx.files, self.cwd):
                await writer(fds, 2)(self._msg(line, f"{argv[0]}: Permission denied"))
                return 126
            if found is None:
                await writer(fds, 2)(self._msg(line, f"{argv[0]}: not found"))
                return 127
            applet = prefix = found
        call = Call(argv, self.ctx, env, self.cwd, reader(fds), writer(fds, 1),
                     writer(fds, 2), prefix)
        return await invoke(applet, call)

    # -- expansion

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

    def _fields(self, word: Word) -> list[str]:
        acc = _Fields()
        self._add(acc, word)
        acc.split()
        out: list[str] = []
        for f in acc.done:
            out += self._glob(f) if _has_glob(f) else [_plain(f)]
        return out

    def _string(self, word: Word) -> str:
        """A word expanded without field splitting or globbing."""
        acc = _Fields()
        for part in word:
            if isinstance(part, Lit):
                acc.add(part.text, False)
            else:
                self._add_param(acc, dataclasses.replace(part, quoted=True))
        acc.split()
        return " ".join(_plain(f) for f in acc.done)

    def _add(self, acc: _Fields, word: Iterable[Part]) -> None:
        for part in word:
            if isinstance(part, Lit):
                acc.add(part.text, not part.quoted)
            else:
                self._add_param(acc, part)

    def _add_param(self, acc: _Fields, p: Param) -> None:
        value = self._value(p.name)
        if p.op.lstrip(":") in ("-", "+", "=", "?"):
            value = self._operator(acc, p, value)
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

    def _operator(self, acc: _Fields, p: Param, value: str | None) -> str | None:
        """${NAME-word} and its kin: the value to use, or None when the word was used."""
        kind = p.op.lstrip(":")
        missing = value is None or (p.op.startswith(":") and not value)
        if kind == "+":  # the other way round: the word stands in for a value
            missing, value = not missing, ""
        if not missing:
            return value
        if kind == "?":
            default = "parameter not set" + (" or null" if p.op == ":?" else "")
            raise _ExpansionError(f"{p.name}: {self._string(p.arg) or default}")
        if kind == "=":
            value = self.vars[p.name] = self._string(p.arg)
            return value
        if p.quoted:  # "${X:-}" is still a field, if an empty one
            acc.add("", False)
        self._add(acc, p.arg)
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

    # -- redirections

    def _redirect(self, redirs: Sequence[Redir]) -> Fds:
        fds = dict(self._fds)
        for r in redirs:
            target = self._string(r.target)
            fd = r.fd if r.fd is not None else (0 if r.op.startswith("<") else 1)
            if r.op in (">&", "<&"):
                if target == "-":
                    fds[fd] = discard
                elif target.isdigit() and int(target) in fds:
                    fds[fd] = fds[int(target)]
                else:
                    raise _RedirectError(f"{target}: Bad file descriptor")
            elif target in ("/dev/stdin", "/dev/stdout", "/dev/stderr"):
                source = ("/dev/stdin", "/dev/stdout", "/dev/stderr").index(target)
                fds[fd] = fds.get(source, discard)
            elif r.op == "<":
                fds[fd] = self._open_input(target)
            else:
                fds[fd] = self._open_output(target, append=r.op == ">>")
        return fds

    def _open_input(self, target: str) -> Input:
        try:
            return Input(data=self.ctx.files.read(self.ctx.files.normalize(target, self.cwd)))
        except FileNotFoundError:
            raise _RedirectError(f"can't open {target}: no such file") from None
        except OSError as exc:
            raise _RedirectError(f"can't open {target}: {exc.strerror}") from None

    def _open_output(self, target: str, *, append: bool) -> Writer:
        fs = self.ctx.files
        path = fs.normalize(target, self.cwd)
        try:
            fs.write(path, b"", append=append)
        except FileNotFoundError:
            raise _RedirectError(f"can't create {target}: nonexistent directory") from None
        except OSError as exc:
            raise _RedirectError(f"can't create {target}: {exc.strerror}") from None

        async def write(data: bytes) -> None:
            with contextlib.suppress(OSError):  # removed meanwhile: the data goes nowhere
                fs.write(path, data, append=True)

        return write


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
