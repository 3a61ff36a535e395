"""The shell that runs a script: commands, pipelines, subshells and redirections."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Iterator, Sequence

from aiocri.testing._shell._builtins import (
    BUILTINS,
    MISSING_BUILTINS,
    SHELL_APPLETS,
    Exit,
    LoopControl,
)
from aiocri.testing._shell._call import Call, exists_as_path, find, invoke
from aiocri.testing._shell._compound import run_compound
from aiocri.testing._shell._context import DEFAULT_PATH, ShellContext
from aiocri.testing._shell._expand import Expander, ExpansionError, RedirectError
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
    Command,
    ParseError,
    Parser,
    Pipeline,
    Redir,
    Simple,
)


class Shell(Expander):
    """One busybox-like ``sh``: its variables, working directory and last status.

    ``run`` may be called again for more input (an interactive session keeps one);
    after ``exit`` has run, ``exited`` is true.

    ``ignored_signals`` holds the numbers of the signals the script has set to be
    ignored (``trap '' TERM``, ``trap "" 15``, ``trap '' SIGTERM``; ``trap - TERM``
    takes one out again): a runtime can read it to decide what a signal does to the
    shell. ``traps`` maps every trapped signal (0 for EXIT) to its action; actions
    other than ``''`` are recorded but never run.
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
        self.ignored_signals: set[int] = set()
        self.traps: dict[int, str] = {}
        self.loop_depth = 0  # how many loops enclose the running command
        self.testing = 0  # > 0 in an if/while/until condition: no set -e there
        self._substituted = 0  # the status of the last command substitution
        self._fds: Fds = {}

    async def run(self, script: str, *, stdin: AsyncIterator[bytes] | None, stdout: Writer,
                  stderr: Writer) -> int:
        self._fds = {0: stdin if isinstance(stdin, Input) else Input(stdin),
                     1: stdout, 2: stderr}
        parser = Parser(script)
        try:
            while (line := parser.line()) is not None:
                for item in line:
                    await self.and_or(item)
        except ParseError as exc:
            await writer(self._fds, 2)(self._msg(exc.line, exc.text))
            self.status = 2
        except Exit as exc:
            self.status, self.exited = exc.code, True
        except LoopControl:  # break in $(...) inside a loop: the substitution ends
            pass
        return self.status

    async def finish(self) -> int:
        """The shell ends: run its EXIT trap, if any; the shell's exit status."""
        action = self.traps.pop(0, "")
        if action:
            status, self.exited = self.status, False
            await self.run(action, stdin=reader(self._fds), stdout=writer(self._fds, 1),
                           stderr=writer(self._fds, 2))
            self.status = self.status if self.exited else status
        return self.status

    def _msg(self, line: int, text: str) -> bytes:
        where = f"line {line}: " if self.named else ""
        return f"{self.arg0}: {where}{text}\n".encode()

    def _builtin_msg(self, name: str, line: int, text: str) -> bytes:
        return f"{self.arg0}: {name}: line {line}: {text}\n".encode()

    def subshell(self) -> Shell:
        """A copy whose variables, directory, traps and exit stay its own."""
        sub = copy.copy(self)
        sub.vars, sub.exported, sub.params = dict(self.vars), set(self.exported), list(self.params)
        sub.ignored_signals, sub.traps = set(self.ignored_signals), dict(self.traps)
        sub._fds = dict(self._fds)
        return sub

    async def in_subshell(self, command: Command) -> int:
        """Run ``command`` as a subshell would, to its status (exit ends only it)."""
        try:
            return await self.command(command)
        except Exit as exc:
            return exc.code
        except LoopControl:  # break inside ( ... ): the subshell ends
            return 0

    async def substitute(self, script: str) -> str:
        out = bytearray()

        async def collect(data: bytes) -> None:
            out.extend(data)

        sub = self.subshell()
        self._substituted = await sub.run(script, stdin=reader(self._fds), stdout=collect,
                                          stderr=writer(self._fds, 2))
        await asyncio.sleep(0)
        return out.decode(errors="replace").rstrip("\n")

    async def and_or(self, node: AndOr) -> None:
        status = await self._pipeline(node.first)
        last = node.first
        for op, pipeline in node.rest:
            self.status = status  # what $? is in the next pipeline
            if (op == "&&") == (status == 0):
                status, last = await self._pipeline(pipeline), pipeline
        self.status = status
        # set -e: only a failure of the list's last pipeline ends the shell
        last_counts = last is (node.rest[-1][1] if node.rest else node.first)
        if self.errexit and status and last_counts and not last.negate and not self.testing:
            raise Exit(status)

    async def _pipeline(self, node: Pipeline) -> int:
        if len(node.commands) == 1:
            status = await self.command(node.commands[0])
        else:
            status = await self._stages(node.commands)
        return int(status == 0) if node.negate else status

    async def _stages(self, commands: Sequence[Command]) -> int:
        pipes = [Pipe() for _ in commands[1:]]

        async def stage(i: int) -> int:
            sub = self.subshell()  # each stage is a subshell: its cd and exit stay in it
            if i:
                sub._fds[0] = Input(pipes[i - 1].chunks())
            if i < len(pipes):
                sub._fds[1] = pipes[i].write
            try:
                return await sub.in_subshell(commands[i])
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

    async def command(self, cmd: Command) -> int:
        if isinstance(cmd, Simple):
            return await self._simple(cmd)
        return await run_compound(self, cmd)

    async def expansion_failed(self, line: int, exc: ExpansionError) -> Exit:
        await writer(self._fds, 2)(self._msg(line, str(exc)))
        return Exit(2)

    async def redirected(self, redirs: Sequence[Redir], line: int) -> Fds | None:
        """The fds with ``redirs`` set up; None (said on stderr) when one can't be."""
        try:
            return await self.redirect(redirs)
        except ExpansionError as exc:
            raise await self.expansion_failed(line, exc) from None
        except RedirectError as exc:
            await writer(self._fds, 2)(self._msg(line, str(exc)))
            return None

    async def _simple(self, cmd: Simple) -> int:
        self._substituted = 0
        try:
            argv = [f for word in cmd.words for f in await self.fields(word)]
            assigns = {name: await self.string(value) for name, value in cmd.assigns}
        except ExpansionError as exc:
            raise await self.expansion_failed(cmd.line, exc) from None
        fds = await self.redirected(cmd.redirs, cmd.line)
        if fds is None:
            return 1
        if not argv:
            self.vars.update(assigns)
            return self._substituted
        builtin = BUILTINS.get(argv[0])
        if builtin is not None:
            with self._prefixed(assigns):
                return await builtin(self, argv, fds, cmd.line)
        if argv[0] in MISSING_BUILTINS:  # going on without it could go wrong silently
            await writer(fds, 2)(self._msg(cmd.line, f"{argv[0]} {UNSUPPORTED}"))
            raise Exit(2)
        env = {k: v for k, v in self.vars.items() if k in self.exported} | assigns
        return await self._exec(argv, env, fds, cmd.line)

    @contextlib.contextmanager
    def _prefixed(self, assigns: dict[str, str]) -> Iterator[None]:
        """``IFS=: read a b``: the assignments hold while the builtin runs."""
        saved = {name: self.vars.get(name) for name in assigns}
        self.vars.update(assigns)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    self.vars.pop(name, None)
                else:
                    self.vars[name] = value

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

    # -- redirections

    async def redirect(self, redirs: Sequence[Redir]) -> Fds:
        fds = dict(self._fds)
        for r in redirs:
            target = await self.string(r.target)
            fd = r.fd if r.fd is not None else (0 if r.op.startswith("<") else 1)
            if r.op in (">&", "<&"):
                if target == "-":
                    fds[fd] = discard
                elif target.isdigit() and int(target) in fds:
                    fds[fd] = fds[int(target)]
                else:
                    raise RedirectError(f"{target}: Bad file descriptor")
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
            raise RedirectError(f"can't open {target}: no such file") from None
        except OSError as exc:
            raise RedirectError(f"can't open {target}: {exc.strerror}") from None

    def _open_output(self, target: str, *, append: bool) -> Writer:
        fs = self.ctx.files
        path = fs.normalize(target, self.cwd)
        try:
            fs.write(path, b"", append=append)
        except FileNotFoundError:
            raise RedirectError(f"can't create {target}: nonexistent directory") from None
        except OSError as exc:
            raise RedirectError(f"can't create {target}: {exc.strerror}") from None

        async def write(data: bytes) -> None:
            with contextlib.suppress(OSError):  # removed meanwhile: the data goes nowhere
                fs.write(path, data, append=True)

        return write
