"""The fake runtime's busybox-like shell (aiocri.testing._shell).

Table tests per command and operator, a differential test against the real busybox
of this machine, property tests, and streaming through ``cat``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aiocri.testing._shell import (
    FileSystem,
    Shell,
    ShellContext,
    ShellResult,
    is_known,
    run_argv,
    run_captured,
    run_script,
)

BUSYBOX = shutil.which("busybox") or ("/bin/busybox" if os.path.exists("/bin/busybox") else None)


def real_busybox() -> str:
    if BUSYBOX is None:
        if os.environ.get("CI") == "true":
            pytest.fail("busybox is missing on CI (Debian's busybox-static gives /bin/busybox)")
        pytest.skip("no busybox on this machine (apt-get install busybox-static)")
    return BUSYBOX


def context(**kw: object) -> ShellContext:
    return ShellContext(env={"HOME": "/root"}, hostname="web-0", **kw)  # type: ignore[arg-type]


def sh(script: str, stdin: bytes = b"", ctx: ShellContext | None = None) -> ShellResult:
    return asyncio.run(run_captured(["sh", "-c", script], ctx or context(), stdin))


def argv(*words: str, stdin: bytes = b"", ctx: ShellContext | None = None) -> ShellResult:
    return asyncio.run(run_captured(list(words), ctx or context(), stdin))


# -- table tests ---------------------------------------------------------------------

NOT_SUPPORTED = "not supported by the fake runtime's shell\n"

CASES = [
    # echo and printf
    ("echo a  b", "a b\n", "", 0),
    ("echo -n a; echo b", "ab\n", "", 0),
    (r"echo -e 'a\tb\\c\n'", "a\tb\\c\n\n", "", 0),
    (r"echo 'a\nb'", "a\\nb\n", "", 0),
    (r"echo -e 'x\cy'; echo z", "xz\n", "", 0),
    ("echo -- -n", "-- -n\n", "", 0),
    (r"printf '%s-%d\n' a 1 b 2", "a-1\nb-2\n", "", 0),
    (r"printf '%x %i %% %5s|%-3d|\n' 255 7 ab 4", "ff 7 %    ab|4  |\n", "", 0),
    (r"printf '%d\n' abc", "0\n", "sh: invalid number 'abc'\n", 1),
    ("printf '%q'", "", "sh: %q: invalid format\n", 1),
    ("printf", "", "sh: usage: printf FORMAT [ARGUMENT...]\n", 2),
    # operators
    ("true && echo yes || echo no", "yes\n", "", 0),
    ("false && echo yes || echo no", "no\n", "", 0),
    ("false; echo $?", "1\n", "", 0),
    ("true | false", "", "", 1),
    ("! true; echo $?", "1\n", "", 0),
    ("echo a\necho b # comment", "a\nb\n", "", 0),
    ("echo a |\n wc -c", "2\n", "", 0),
    ("exit 300", "", "", 44),
    ("echo a; exit 3; echo b", "a\n", "", 3),
    ("false; exit", "", "", 1),
    ("exit abc", "", "sh: exit: line 0: Illegal number: abc\n", 2),
    ("exit 3 | true; echo $?", "0\n", "", 0),
    # words and expansion
    ("X=1; echo $X ${X} \"$X\" '$X'", "1 1 1 $X\n", "", 0),
    ("X='a  b'; printf '[%s]' $X \"$X\"", "[a][b][a  b]", "", 0),
    (r"echo a\ b \"c\" \$x", 'a b "c" $x\n', "", 0),
    ("X=1 true; echo \"[$X]\"", "[]\n", "", 0),
    ("echo ${U:-d} ${#HOME} ${U:+n}", "d 5\n", "", 0),
    ("echo ~ ~/x a~ \"~\"", "/root /root/x a~ ~\n", "", 0),
    ("echo $0 $#", "sh 0\n", "", 0),
    ("echo ${U:?}", "", "sh: U: parameter not set or null\n", 2),
    ("touch a.txt b.txt; echo *.txt '*' z*", "a.txt b.txt * z*\n", "", 0),
    # redirections
    ("echo a > f; echo b >> f; cat f; cat < f", "a\nb\na\nb\n", "", 0),
    ("echo e >&2", "", "e\n", 0),
    ("nope 2>&1", "sh: nope: not found\n", "", 127),
    ("nope 2>/dev/null; echo $?", "127\n", "", 0),
    ("ls /nope 2>&1 >/dev/null", "ls: /nope: No such file or directory\n", "", 1),
    ("echo a > /nope/x", "", "sh: can't create /nope/x: nonexistent directory\n", 1),
    ("cat < /nope", "", "sh: can't open /nope: no such file\n", 1),
    ("echo > /tmp", "", "sh: can't create /tmp: Is a directory\n", 1),
    ("exec 2>&1; nope", "sh: nope: not found\n", "", 127),
    # syntax errors and what the shell does not do
    ("echo a |", "", "sh: syntax error: unexpected end of file\n", 2),
    ("echo a && && b", "", 'sh: syntax error: unexpected "&&"\n', 2),
    ("echo a; echo \"b", "", "sh: syntax error: unterminated quoted string\n", 2),
    ("echo a\necho \"b", "a\n", "sh: syntax error: unterminated quoted string\n", 2),
    ("echo ${X", "", "sh: syntax error: missing '}'\n", 2),
    ("fi", "", 'sh: syntax error: unexpected "fi"\n', 2),
    ("for i in 1; do echo; done", "", f"sh: for loops {NOT_SUPPORTED}", 2),
    ("echo $(id)", "", f"sh: command substitution $(...) {NOT_SUPPORTED}", 2),
    ("(echo a)", "", f"sh: subshells ( ... ) {NOT_SUPPORTED}", 2),
    ("echo a &", "", f"sh: background jobs (&) {NOT_SUPPORTED}", 2),
    ("trap '' INT; echo after", "", f"sh: trap {NOT_SUPPORTED}", 2),
    # applets
    ("cat /nope; echo $?", "1\n", "cat: can't open '/nope': No such file or directory\n", 0),
    ("echo hi | cat - /etc/hostname", "hi\nweb-0\n", "", 0),
    ("ls /", "bin\ndev\netc\nhome\nlib\nlib64\nproc\nroot\nsys\ntmp\nusr\nvar\n", "", 0),
    ("ls /nope /etc/hostname", "/etc/hostname\n", "ls: /nope: No such file or directory\n", 1),
    ("cd /tmp; mkdir -p d/e; touch d/f; ls -a d; ls -1 . d", ".\n..\ne\nf\n.:\nd\n\nd:\ne\nf\n", "", 0),
    ("mkdir d; mkdir d", "", "mkdir: can't create directory 'd': File exists\n", 1),
    ("mkdir a/b", "", "mkdir: can't create directory 'a/b': No such file or directory\n", 1),
    ("mkdir d; rm d", "", "rm: 'd' is a directory\n", 1),
    ("rm -f nope; rm nope", "", "rm: can't remove 'nope': No such file or directory\n", 1),
    ("cd /tmp; mkdir -p d/e; rm -r d; ls", "", "", 0),
    ("sleep 0.01 0; echo $?", "0\n", "", 0),
    ("sleep x", "", "sleep: invalid number 'x'\n", 1),
    ("hostname; pwd; cd /tmp; pwd", "web-0\n/\n/tmp\n", "", 0),
    ("cd /nope", "", "sh: cd: line 0: can't cd to /nope: No such file or directory\n", 2),
    ("X=1 env | grep -c '^X=1$'", "1\n", "", 0),
    ("printf '1\\n2\\n3\\n' | head -n 2", "1\n2\n", "", 0),
    ("printf '1\\n2\\n3\\n' | head -1; printf abc | head -c 2", "1\nab", "", 0),
    ("printf '1\\n2\\n3' | tail -n 2", "2\n3", "", 0),
    ("head -n x /etc/hostname", "", "head: invalid number 'x'\n", 1),
    ("printf 'a b\\nc' | wc; printf 'a\\n' | wc -l", "        1         3         5\n1\n", "", 0),
    ("printf 'a\\n' > f; wc -l f f", "        1 f\n        1 f\n        2 total\n", "", 0),
    ("test 1 -eq 1 && [ -d / ] && [ ! -f / ] && [ -n x -a -z '' ] && echo ok", "ok\n", "", 0),
    ("[ 2 -lt 10 ]; echo $?; [ a != a ]; echo $?; test; echo $?", "0\n1\n1\n", "", 0),
    ("[ 1 -eq a ]", "", "sh: a: bad number\n", 2),
    ("[ 1 = 1", "", "sh: missing ]\n", 2),
    ("printf 'ab\\ncd\\n' | grep -c b; echo aab | grep 'a\\+b'", "1\naab\n", "", 0),
    ("printf 'ab\\ncd\\n' | grep -v b; echo x | grep -q y; echo $?", "cd\n1\n", "", 0),
    ("grep a /nope", "", "grep: /nope: No such file or directory\n", 2),
    ("id; id -u; id -un; whoami", "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n0\nroot\nroot\n",
     "", 0),
    ("busybox echo hi; busybox nope", "hi\n", "nope: applet not found\n", 127),
    ("sh -c 'echo $0 $1' n a; bash -c 'exit 4'", "n a\n", "", 4),
    ("echo 'echo from $0' > s; sh s; sh < s", "from s\nfrom sh\n", "", 0),
    ("set -e; false && true; echo yes; false; echo no", "yes\n", "", 1),
    ("set -- 'a b' c; printf '[%s]' \"$@\" $#", "[a b][c][2]", "", 0),
    ("/bin/cat /dev/null; /usr/bin/nope", "", "sh: /usr/bin/nope: not found\n", 127),
    ("/etc/passwd", "", "sh: /etc/passwd: Permission denied\n", 126),
    ("echo hello | tr a-z A-Z; echo hello | tr -d l; echo aab | tr -s a; echo ab | tr ab x",
     "HELLO\nheo\nab\nxx\n", "", 0),
]


@pytest.mark.parametrize(("script", "out", "err", "code"), CASES, ids=[c[0] for c in CASES])
def test_script(script: str, out: str, err: str, code: int) -> None:
    assert sh(script) == ShellResult(out.encode(), err.encode(), code)


def test_a_missing_program_run_directly_gets_runcs_words() -> None:
    result = argv("nope", "x")
    assert result == ShellResult(b"", b'exec: "nope": executable file not found in $PATH\n', 127)
    assert argv("/bin/nope").exit_code == 127
    assert argv("bash", "-c", "nope").stderr == b"bash: nope: not found\n"
    assert argv("/etc/passwd") == ShellResult(b"", b'exec: "/etc/passwd": permission denied\n', 126)


def test_argv_forms() -> None:
    assert argv("/bin/sh", "-c", "echo $1", "x", "y").stdout == b"y\n"
    assert argv("busybox", "wc", "-c", stdin=b"abc") == ShellResult(b"3\n", b"", 0)
    assert argv("cat", stdin=b"data") == ShellResult(b"data", b"", 0)
    assert argv("env", "-i", "A=1", "env").stdout == b"A=1\n"
    assert argv("printf", "%d", "x").stderr == b"printf: invalid number 'x'\n"
    assert all(is_known(n) for n in ("sh", "/bin/sh", "bash", "cat", "busybox", "[", "wc"))
    assert not any(is_known(n) for n in ("nope", "cd", "/usr/bin/python3"))


def test_a_removed_program_is_gone_from_path() -> None:
    ctx = context()
    assert sh("rm /bin/ls; ls", ctx=ctx) == ShellResult(b"", b"sh: ls: not found\n", 127)
    assert sh("echo still a builtin", ctx=ctx).stdout == b"still a builtin\n"


def test_id_for_other_users() -> None:
    assert sh("id", ctx=context(uid=4242, gid=4343)).stdout == b"uid=4242 gid=4343 groups=4343\n"
    nobody = context(uid=65534, gid=65534, supplemental_groups=(10,))
    assert sh("id; id -G", ctx=nobody).stdout == (
        b"uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup),10(wheel)\n65534 10\n")
    assert sh("whoami", ctx=context(uid=7)) == ShellResult(b"", b"whoami: unknown uid 7\n", 1)


def test_file_system() -> None:
    ctx = context(working_dir="/srv/app")  # created, as runc does
    assert ctx.files.is_dir("/srv/app") and ctx.env["PATH"].endswith("/bin")
    assert sh("pwd; echo x > rel; cat /srv/app/rel; echo y > /dev/null; cat /dev/null", ctx=ctx
              ).stdout == b"/srv/app\nx\n"
    assert ctx.files.read("/srv/app/rel") == b"x\n"
    assert ctx.files.read("/etc/hostname") == b"web-0\n"
    assert ctx.files.read("/dev/null") == b""
    assert ctx.files.stat("/tmp").mode == 0o1777
    assert "root:x:0:0:root:/root:/bin/sh" in ctx.files.read("/etc/passwd").decode()
    assert FileSystem.normalize("../a/./b/..", "/x/y") == "/x/a"
    with pytest.raises(FileNotFoundError):
        FileSystem.busybox().read("/etc/nope")
    with pytest.raises(OSError, match="not empty"):
        ctx.files.remove("/srv")
    assert sh("ls -l /etc/hostname", ctx=ctx).stdout.startswith(b"-rw-r--r--    1 root     root ")


def test_shell_keeps_its_state_between_runs() -> None:
    async def scenario() -> list[int | bool]:
        shell = Shell(context())
        out = bytearray()

        async def write(data: bytes) -> None:
            out.extend(data)

        codes: list[int | bool] = []
        for line in ("cd /tmp; X=1", "echo $X $PWD; false", "echo $?; exit 5"):
            codes.append(await shell.run(line, stdin=None, stdout=write, stderr=write))
        assert out == b"1 /tmp\n1\n"
        return [*codes, shell.exited]

    assert asyncio.run(scenario()) == [0, 1, 5, True]


# -- against the real busybox --------------------------------------------------------

DIFFERENTIAL = [
    "echo hello world; echo -n a; echo b",
    r"echo -e 'a\tb\\n' x; echo -ne 'x\ny\c' z",
    r"printf '%s-%d\n' a 1 b 2 c; printf '%5s|%-3d|%05.1f|%c|\n' ab 7 3.14159 xyz",
    r"printf '%d %d|\n' 1; printf '%x\n' -1; printf '%b|\n' 'a\0101b\cxx' y",
    "printf '%z'; printf '%5%|'",
    "true && echo yes || echo no; false && echo yes || echo no; false; echo $?",
    "nope; echo $?; nope 2>/dev/null || echo fallback",
    "exit 300", "exit abc", "echo a; exit 3; echo b", "false; exit",
    "X='a  b'; printf '[%s]\\n' $X \"$X\"; X=5; echo $Xy ${X}y",
    "echo a | wc -c; printf 'a b\\nc\\n' | wc; printf 'a b\\nc\\n' | wc -l",
    "printf '1\\n2\\n3\\n' | head -n 2 | cat; printf '1\\n2\\n3\\n' | tail -n 2",
    "echo a b > f; cat f; echo c >> f; cat f; wc -l f; cat < f; wc f",
    "echo x > f 2>&1; ls; mkdir d; touch d/e; ls -a d; ls . d",
    "ls /nope; cat /nope; cat nope 2>&1 | wc -c",
    "echo err >&2; echo err 1>&2 | wc -c; echo err 2>&1 >/dev/null",
    "echo a > /nope/x; cat < /nope; echo >&5",
    "echo a |", "| echo", "echo a && && b", "echo 'abc", "echo a; echo \"b", "echo ${X", ";",
    "echo a ;;", "echo )", "fi", "echo ${1a}",
    "true | false; echo $?; ! true; echo $?; exit 3 | true; echo $?",
    "mkdir d; mkdir d; mkdir -p a/b/c; ls; ls a; mkdir x/y",
    "touch t; ls -1; rm t; ls; rm t; rm -f t; echo $?; mkdir d; rm d",
    "[ 1 -eq a ]; [ 1 = 1; [ a -foo b ]; [ -z '' ] && [ -n x ] && echo ok",
    "cd /nope; echo $?; cd /; pwd",
    "echo a\\ b \"c\\\"d\" \\$x \"\\$X \\\\ \\`\" a#b #c",
    "echo ${X:-d} \"${X:-a b}\" ${X:+y} ${X=3} $X; echo ${X:?}",
    "echo ${Y?}", "X=1 true; echo \"[$X]\"; echo a=b; 1X=2",
    "echo a2>f x; cat f; >g echo y; cat g",
    "head -n x f; sleep x; busybox nope; grep a nope",
    "printf 'ab\\ncd\\n' | grep -c b; printf 'ab\\ncd\\n' | grep -v b; echo aab | grep 'a\\+b'",
    "touch a.txt b.txt .h; echo *; echo *.txt \"*\" \\* z* .* [ab].txt [!a].txt",
    "set -e; false && true; echo yes; false || false; echo no",
    "sh -c 'echo inner $0 $1' n1 a1; sh -ec 'false; echo no'; echo $?",
    "echo 'echo hi $0' > s; sh s; sh < s; sh nope",
    "true\n\nnope\necho after", "true\n\nexit abc", "true\n\necho |",
    "/etc/passwd; echo $?; /etc; echo hello | tr a-z A-Z | wc -c",
    "echo 'a b' | tr ' ' '\\n'; echo abc | tr '[:lower:]' '[:upper:]'; echo abc | tr -d a-b",
]


@functools.cache
def applets() -> str:
    """A PATH of busybox's own applets, so that no build runs the host's coreutils."""
    path = tempfile.mkdtemp(prefix="busybox-")
    atexit.register(shutil.rmtree, path, True)
    listed = subprocess.run([real_busybox(), "--list"], capture_output=True, check=True)
    for name in listed.stdout.decode().split():
        os.symlink(real_busybox(), os.path.join(path, name))
    return path


def busybox_sh(script: str, cwd: Path, *args: str) -> ShellResult:
    done = subprocess.run([real_busybox(), "sh", "-c", script, *args], cwd=cwd, env={
        "PATH": applets(), "HOME": "/root"}, capture_output=True, timeout=30, check=False)
    return ShellResult(done.stdout, done.stderr, done.returncode)


@pytest.mark.parametrize("script", DIFFERENTIAL)
def test_same_as_busybox(script: str, tmp_path: Path) -> None:
    real = busybox_sh(script, tmp_path)
    assert sh(script, ctx=context(working_dir="/tmp/x")) == real


def test_same_as_busybox_with_a_script_name(tmp_path: Path) -> None:
    for script in ("nope; [ 1 -eq a ]", "cd /x", "true\n\necho |", "echo > /nope/x; exit abc"):
        fake = argv("sh", "-c", script, "nm", "a")
        assert fake == busybox_sh(script, tmp_path, "nm", "a"), script


# -- properties -------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
               max_size=40)


@given(TEXT)
def test_echo_gives_quoted_text_back(text: str) -> None:
    assume(not (text.startswith("-") and set(text[1:]) <= set("neE") and len(text) > 1))
    assert sh(f"echo -n {shlex.quote(text)}") == ShellResult(text.encode(), b"", 0)


@settings(max_examples=25, deadline=None)
@given(TEXT)
def test_echo_quoting_matches_busybox(text: str) -> None:
    real_busybox()
    script = f"echo {shlex.quote(text)} x{shlex.quote(text)}x"
    with tempfile.TemporaryDirectory() as cwd:
        assert sh(script) == busybox_sh(script, Path(cwd))


COMMAND = st.one_of(st.sampled_from(["true", "false"]), st.integers(0, 300).map(lambda n: f"exit {n}"))


def model(commands: list[str], ops: list[str]) -> int:
    """What ``c0 op c1 op c2 ...; echo $?`` exits with: left to right, skipping."""
    def run(cmd: str) -> tuple[int, bool]:
        return (int(cmd.split()[1]) & 0xFF, True) if cmd.startswith("exit") else (
            int(cmd == "false"), False)

    status, ended = run(commands[0])
    for op, cmd in zip(ops, commands[1:], strict=True):
        if not ended and (op == "&&") == (status == 0):
            status, ended = run(cmd)
    return status


@settings(max_examples=60, deadline=None)
@given(st.lists(COMMAND, min_size=1, max_size=6), st.data())
def test_and_or_truth_table(commands: list[str], data: st.DataObject) -> None:
    ops = data.draw(st.lists(st.sampled_from(["&&", "||"]), min_size=len(commands) - 1,
                             max_size=len(commands) - 1))
    script = " ".join(c for pair in zip(commands, [*ops, ""], strict=True) for c in pair)
    assert sh(script).exit_code == model(commands, ops)
    if BUSYBOX is not None and len(commands) <= 3:
        assert subprocess.run([BUSYBOX, "sh", "-c", script], check=False).returncode == model(
            commands, ops)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=8))
def test_pipelines_are_byte_exact(chunks: list[bytes]) -> None:
    data = b"".join(chunks)

    async def scenario() -> tuple[ShellResult, bytes]:
        out = bytearray()

        async def feed() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        async def write(data: bytes) -> None:
            out.extend(data)

        code = await run_argv(["sh", "-c", "cat | cat"], context(), stdin=feed(), stdout=write,
                              stderr=write)
        counted = await run_captured(["sh", "-c", "cat | cat | wc -c"], context(), data)
        return counted, bytes(out) + bytes([code])

    counted, copied = asyncio.run(scenario())
    assert counted == ShellResult(f"{len(data)}\n".encode(), b"", 0)
    assert copied == data + b"\0"


# -- streaming --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("command", [["cat"], ["busybox", "cat", "-"], ["sh", "-c", "cat"],
                                     ["sh", "-c", "cat | cat"]])
async def test_cat_streams_stdin_as_it_comes(command: list[str]) -> None:
    first_out = asyncio.Event()
    out: list[bytes] = []

    async def stdin() -> AsyncIterator[bytes]:
        yield b"first"
        await first_out.wait()  # a buffering cat would wait here forever
        yield b"second"

    async def write(data: bytes) -> None:
        out.append(data)
        first_out.set()

    code = await asyncio.wait_for(
        run_argv(command, context(), stdin=stdin(), stdout=write, stderr=write), 10)
    assert (code, b"".join(out)) == (0, b"firstsecond")


@pytest.mark.anyio
async def test_head_ends_a_pipeline_on_endless_input() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"line\n" * 100
            await asyncio.sleep(0)

    out = bytearray()

    async def write(data: bytes) -> None:
        out.extend(data)

    code = await asyncio.wait_for(run_script("cat | head -n 2", context(), stdin=endless(),
                                             stdout=write, stderr=write), 10)
    assert (code, bytes(out)) == (0, b"line\nline\n")
