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
    ("case a in a) echo;; esac", "", f"sh: case statements {NOT_SUPPORTED}", 2),
    ("f() { echo; }", "", f"sh: functions {NOT_SUPPORTED}", 2),
    ("echo a &", "", f"sh: background jobs (&) {NOT_SUPPORTED}", 2),
    ("eval echo", "", f"sh: eval {NOT_SUPPORTED}", 2),
    ("read -t 1 x", "", f"sh: read -t {NOT_SUPPORTED}", 2),
    ("cat <<EOF", "", f"sh: the redirection << {NOT_SUPPORTED}", 2),
    # compound commands
    ("if", "", 'sh: syntax error: unexpected end of file (expecting "then")\n', 2),
    ("if true; then echo a; elif true; then echo b; else echo c; fi", "a\n", "", 0),
    ("if false; then echo a; elif false; then echo b; else echo c; fi", "c\n", "", 0),
    ("if false; then :; fi; echo $?", "0\n", "", 0),
    ("while true; done", "", 'sh: syntax error: unexpected "done" (expecting "do")\n', 2),
    ("for 1 in a; do :; done", "", "sh: syntax error: bad for loop variable\n", 2),
    ("for i in a b", "", "sh: syntax error: unexpected end of file\n", 2),
    ("{ }", "", 'sh: syntax error: unexpected "}"\n', 2),
    ("{ echo; } x", "", "sh: syntax error: unexpected word\n", 2),
    ("( echo", "", 'sh: syntax error: unexpected end of file (expecting ")")\n', 2),
    ("i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo tick $i; done",
     "tick 1\ntick 2\ntick 3\n", "", 0),
    ("i=0; until [ $i = 2 ]; do i=$((i+1)); done; echo $i", "2\n", "", 0),
    ("for i in a 'b c'; do echo \"[$i]\"; done", "[a]\n[b c]\n", "", 0),
    ("set -- x y; for a; do echo $a; done", "x\ny\n", "", 0),
    ("for i in 1 2 3; do for j in a b; do [ $j = b ] && continue 2; echo $i$j; done; done",
     "1a\n2a\n3a\n", "", 0),
    ("for i in 1 2; do for j in a b; do break 2; done; done; echo $i$j", "1a\n", "", 0),
    ("break; continue; echo outside", "outside\n", "", 0),
    ("break 0", "", "sh: break: line 0: Illegal number: 0\n", 2),
    ("x=1; (x=2; cd /tmp; exit 3); echo $? $x $PWD", "3 1 /\n", "", 0),
    ("{ echo a; echo b; } | wc -l; { x=2; }; echo $x", "2\n2\n", "", 0),
    ("for i in a b; do echo $i; done > f; cat f", "a\nb\n", "", 0),
    ("while read l; do echo \"got $l\"; done < /etc/hostname", "got web-0\n", "", 0),
    ("set -e; if false; then :; fi; while false; do :; done; echo ok; false; echo no",
     "ok\n", "", 1),
    # arithmetic and command substitution
    ("echo $((1/0)); echo after", "", "sh: divide by zero\n", 2),
    ("echo $((1+))", "", "sh: arithmetic syntax error\n", 2),
    ("echo $((", "", "sh: syntax error: missing '))'\n", 2),
    ("echo $((-7/2)) $((-7%2)) $((7%-2)) $((2**10)) $((010)) $((0x10))",
     "-3 -1 1 1024 8 16\n", "", 0),
    ("x=3; echo $((x+1)) $(($x*2)) $((y)) $((x++)) $x $((x+=2))", "4 6 0 3 4 6\n", "", 0),
    ("echo $((9223372036854775807+1))", "-9223372036854775808\n", "", 0),
    ("echo $(echo a; echo; echo)x \"$(echo 'q  r')\" `echo b`", "ax q  r b\n", "", 0),
    ("x=$(false); echo $?; echo $(exit 3); echo $?", "1\n\n0\n", "", 0),
    ("echo $(echo", "", 'sh: syntax error: unexpected end of file (expecting ")")\n', 2),
    ("echo `echo", "", "sh: syntax error: EOF in backquote substitution\n", 2),
    # read, trap, shift, wait
    ("printf 'a b  c\\n' | { read x y; echo \"[$x][$y]\"; }", "[a][b  c]\n", "", 0),
    ("printf 'abc' | { read x; echo $? $x; read y; echo $?; }", "1 abc\n1\n", "", 0),
    ("printf 'a:b\\n' | { IFS=: read -r x y; echo $y $x; }", "b a\n", "", 0),
    ("read 1x", "", "sh: read: '1x': bad variable name\n", 1),
    ("trap '' TERM; trap", "trap -- '' TERM\n", "", 0),
    ("trap '' FOO", "", "sh: trap: line 0: FOO: invalid signal specification\n", 1),
    ("trap 'echo bye' EXIT; echo hi", "hi\nbye\n", "", 0),
    ("set -- a b c; shift; echo $@; shift 5; echo $? $#", "b c\n1 2\n", "", 0),
    ("wait; echo $?", "0\n", "", 0),
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
    ("yes | head -n 2; yes a b | head -n 1", "y\ny\na b\n", "", 0),
    ("seq 3; seq 4 -2 1; seq -s, 2 3; seq -w 9 10", "1\n2\n3\n4\n2\n2,3\n09\n10\n", "", 0),
    ("basename /a/b.txt .txt; basename /; dirname /a/b; dirname a", "b\n/\n/a\n.\n", "", 0),
    ("uname; uname -n", "Linux\nweb-0\n", "", 0),
    ("echo a:b:c | cut -d: -f1,3; echo abcdef | cut -c2-4", "a:c\nbcd\n", "", 0),
    ("cut", "", "cut: expected a list of bytes, characters, or fields\n", 1),
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

DIFFERENTIAL += [  # compound commands, arithmetic, substitution, read, trap, applets
    'for i in 1 2; do x=$(break; echo in); echo $i $x; done',
    'for i in 1 2; do echo a | break; echo $i; done',
    'if',
    'if true',
    'if true;',
    'if true; then',
    'if true; then echo',
    'if true; then fi',
    'while',
    'while true; do',
    'while true; do done',
    'until',
    'for',
    'for i',
    'for i in',
    'for i in a b',
    'for i in a b;',
    'for i in a b; do',
    'for 1 in a; do echo; done',
    '{',
    '{ }',
    '(',
    '()',
    'if true; fi',
    'for i in a; echo',
    'while true; done',
    '{ echo; } foo',
    'if true; then echo; fi; fi',
    'echo $((1/0)); echo after',
    'echo $((1%0))',
    'echo $((1+))',
    'echo $((a b))',
    'echo $(( 2 * (3 + 4) )) $((-(3)))',
    'x=abc; echo $((x+1))',
    'x=3; echo $((x+1)) $(($x*2))',
    'echo $((-7/2)) $((-7%2)) $((7%-2)) $(( 4 % -3 )) $((-4 % 3)) $((-4/3))',
    'echo $((010)) $((0x10)) $((1<2)) $((2==2)) $((3!=3))',
    'i=0; i=$((i+1)); echo $i',
    'echo $((i=5)); echo $i',
    'x="1+2"; echo $((x*2)); x=a; a=5; echo $((x)); x=" 3 "; echo $((x+1))',
    'x=3z; echo $((x+1))',
    'echo $((x++)) $x $((++x)) $((x+=2))',
    'echo $((1?2:3)) $((1&&0)) $((5&3)) $((1<<3)) $((~0)) $((!5))',
    'echo $((9223372036854775807+1)) $(( (-9223372036854775807-1)/-1 ))',
    'echo $(( )) $((2**3)); echo $((()))',
    'echo $((09))',
    'echo $((08)); echo $((0x))',
    'x=5; echo $(("x"+1))',
    'echo $((1 2))',
    'echo $((',
    'echo $(echo',
    'echo `echo',
    'break; echo x; continue; echo y',
    'break 0; echo after',
    'break x',
    'shift x; echo after',
    'set -- a; shift 2; echo $? $#; set -- a b c; shift; echo $@; shift 2; echo $#',
    'trap FOO TERM; echo $?; trap "" FOO; echo $?; trap "" 99; echo $?',
    'trap "" TERM; trap; trap - TERM; trap; echo $?',
    'trap "" 15 SIGINT; trap; trap "" 0 sigterm kill; trap',
    'echo $(echo a; echo; echo)x; x=$(false); echo $?; echo `echo a`',
    'read; echo $?',
    'echo a | read x; echo $?',
    'wait; echo $?',
    'printf "a b  c\\n" | { read x y; echo "[$x][$y]"; }',
    'printf "a\\\\\\\\b\\n" | { read x; echo "[$x]"; }; printf "a\\\\\\\\b\\n" | { read -r x; echo "[$x]"; }',
    'printf "  a b  \\n" | { read x; echo "[$x]"; }; printf "  a b  \\n" | { read; echo "[$REPLY]"; }',
    'printf "abc" | { read x; echo "$? [$x]"; }',
    'printf "a b c\\n" | { read x y; echo "[$x][$y]"; read z; echo $?; }',
    'read 1x',
    'printf \'a:b:c\\nd:e:f\\n\' | while IFS=: read -r x y; do echo "$y|$x"; done',
    'printf \'a\\\\\\nb c\\n\' | { read x y; echo "[$x][$y]"; }',
    'for i in 1 2 3; do for j in a b; do [ $j = b ] && continue 2; echo $i$j; done; done',
    'for i in 1 2 3; do for j in a b; do break 2; done; done; echo $i$j',
    'for i in 1; do break 5; done; echo ok',
    'set -- x y; for a; do echo $a; done',
    'for i in; do echo x; done; echo $?; false; for i in; do :; done; echo $?',
    'false; while false; do :; done; echo $?; if false; then :; fi; echo $?',
    '{ echo a; echo b; } | wc -l',
    'if false; then echo a; elif true; then echo b; else echo c; fi',
    'if false; then echo a; elif false; then echo b; else echo c; fi; if false; then echo d; fi',
    'i=0; until [ $i -ge 3 ]; do echo $i; i=$((i+1)); done',
    'echo a; (echo b; exit 4) ; echo $?',
    'for i in a b; do echo $i; done > f; cat f',
    'for i in 1 2; do (break; echo in); echo $i; done',
    'for i in a b; do echo $i; done | cat',
    'x=$(echo a b); echo "$x"; echo "$(echo "q  r")"',
    'echo "$((1+2))" a$((3))b',
    'echo `echo \\`echo in\\``',
    'i=0; while true; do i=$((i+1)); echo tick $i; [ $i -ge 3 ] && break; done',
    'set -e; if false; then echo a; fi; while false; do :; done; echo ok; false; echo no',
    'set -e; (false); echo no',
    'if true\nthen\n  echo multi\nfi\nfor i in 1 2\ndo\n  echo $i\ndone',
    'echo $(echo $(echo nested))',
    'x=$(echo \'a\nb\'); echo "$x"',
    'echo $(nope)',
    'echo $(exit 3); echo $?',
    '! if false; then :; else false; fi; echo $?',
    '{ echo a; false; }; echo $?; { true; } > /nope/x; echo $?',
    'if true; then echo a; fi > out; cat out; while false; do :; done < /nope; echo $?',
    'yes | head -n 3; yes a b | head -n 2',
    'seq 3; seq 2 4; seq 1 2 6; seq 3 1; seq 5 -2 1',
    'seq 1.5 3; seq -s, 3; seq -w 8 10; seq 1 0; seq 0.1 0.1 0.3; seq -s: 1 3',
    'seq 1 2000 | wc -l; seq 1 2000 | tail -n 1; seq -s, 1 1500 | wc -c',
    'basename /a/b/c.txt .txt; basename /a/b/; basename /; dirname /a/b/c; dirname a; dirname /a/; dirname /; basename a.txt a.txt; dirname a//b//',
    'uname; uname -s -r -m; uname -p -i -o; uname -m -s',
    'echo a:b:c | cut -d: -f2; echo abcdef | cut -c2-4; echo a:b:c | cut -d: -f1,3; echo a:b:c | cut -d: -f2-',
    "printf 'a\\tb\\n' | cut -f2; printf 'abc\\n' | cut -d: -f2; printf 'abc\\n' | cut -s -d: -f2; echo a:b:c | cut -d: -f3,1; echo abcdef | cut -b -3",
    'cut; echo $?; cut -d: -f1 /nope; echo $?',
    'yes | while read y; do echo $y; break; done',
    'i=0; yes | while read y; do i=$((i+1)); [ $i -gt 100 ] && break; done; echo $i',
    'seq 3 | while read n; do echo "n=$n"; done',
    'for f in $(seq 3); do echo $f; done',
    'true\nif true; then\n  nope\nfi\nwhile true; do\n  echo $((1/0))\ndone',
    'echo $(( $(echo 3) + 1 )) "$(( 2*3 ))"; x=4; echo $(( x * x ))',
    'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo $i',
    'echo "a `echo b` c" \'$(no)\' "\\$(no)"',
    'for i in 1 2 3\ndo echo $i; done | while read x; do echo "<$x>"; done',
    'if true; then for i in a; do if false; then :; else echo deep $i; fi; done; fi',
    'x=1; { x=2; }; echo $x; (exit 5) || echo failed $?',
    'echo a && { echo b; false; } || echo c',
    'for i in 1 2; do echo $i; done; echo status $?',
    'while false; do :; done; echo $?; until true; do :; done; echo $?',
    'set -- a b c; for x in "$@"; do echo "[$x]"; done; for x in "$*"; do echo "[$x]"; done',
    'for i in *; do echo $i; done',
    'touch a b; for i in *; do echo $i; done',
    'echo $((3>2)) $((3>=4)) $((3<<1)) $((-8>>1)) $((6^3)) $((6|1)) $((1||0)) $((0&&1/0))',
    'a=1; b=0; echo $((b?1/b:a)) $((a,b)) $((a+=b+=2)) $a $b',
    'echo $((1 ? 2 : 1/0)); echo $((x-=1)) $((x*=3)) $((x/=2)) $((x%=2))',
    'echo $((-2**2)) $((2**62*2)) $((-(1<<63)))',
    "trap 'echo bye' EXIT INT; trap",
    'echo $(echo a',
    'echo `echo a',
    '(echo a; (echo b; exit 2); echo $?)',
    'echo $(echo hi | tr a-z A-Z)x',
    'x=$(echo a; exit 3); echo $? $x',
    'if (exit 0); then echo yes; fi',
    '{ echo a\necho b\n}',
    'for',
    'if then',
    'while do',
    '{ ; }',
    'if true; then ; fi',
    'echo $((1+$(echo 2)))',
    'b=2; echo $((0&&1/b)) $((1||b/0))',
    "trap 'exit 7' EXIT; true",
    "trap 'echo bye $?' EXIT; exit 3",
    "trap 'echo bye' EXIT; (echo sub); echo main",
    "trap 'echo t' EXIT; trap - EXIT; echo x",
    'false || echo $?; false && echo x || echo $?',
    'trap "echo in" EXIT; echo $(echo sub)',
    'x=5; echo $((x++ + ++x)) $x',
    'echo $((1 < 2 == 1)) $((2 - 3 - 4)) $((2 * 3 % 4)) $((100 / 7 / 2))',
    'set -e; for i in 1 2; do false; echo no; done',
    'set -e; x=$(false); echo no',
    'set -e; false || true; if ! false; then echo ok; fi; until false; do break; done; echo end',
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
    for script in ("nope; [ 1 -eq a ]", "cd /x", "true\n\necho |", "echo > /nope/x; exit abc",
                   "true\nif true; then\n nope\nfi", "echo $((1/0))", "\nwhile true",
                   "for i in 1; do\n break x\ndone", "trap '' NOPE; echo $(nope)",
                   "echo $((1+))", "for 1 in a; do :; done", "x=$(\nnope\n)"):
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


# -- the new constructs: arithmetic, cancellation, traps -----------------------------------

INT64 = 1 << 64


def c_arith(op: str, a: int, b: int) -> int | None:
    """busybox's (C's) 64-bit result of ``a op b``; None for a division by zero."""
    if op in "/%" and b == 0:
        return None
    if op in "/%":
        quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        value = quotient if op == "/" else a - b * quotient
    else:
        value = {"+": a + b, "-": a - b, "*": a * b, "<": int(a < b), "==": int(a == b)}[op]
    value %= INT64
    return value - INT64 if value >= INT64 // 2 else value


LEAF = st.integers(-1000, 1000).map(lambda n: (f"({n})" if n < 0 else str(n), n))


def combine(children: st.SearchStrategy[tuple[str, int | None]]
            ) -> st.SearchStrategy[tuple[str, int | None]]:
    def build(a: tuple[str, int | None], op: str, b: tuple[str, int | None]
              ) -> tuple[str, int | None]:
        value = None if a[1] is None or b[1] is None else c_arith(op, a[1], b[1])
        return f"({a[0]} {op} {b[0]})", value

    return st.builds(build, children, st.sampled_from(["+", "-", "*", "/", "%", "<", "=="]),
                     children)


EXPRESSION = st.recursive(LEAF, combine, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(EXPRESSION)
def test_arithmetic_follows_c_integer_semantics(expr: tuple[str, int | None]) -> None:
    text, value = expr
    expected = (ShellResult(f"{value}\n".encode(), b"", 0) if value is not None
                else ShellResult(b"", b"sh: divide by zero\n", 2))
    assert sh(f"echo $(({text}))") == expected


@settings(max_examples=30, deadline=None)
@given(EXPRESSION, st.integers(-50, 50))
def test_arithmetic_matches_busybox(expr: tuple[str, int | None], x: int) -> None:
    real_busybox()
    script = f"x={x}; echo $(({expr[0]} + x)) $((x * 2 - $x)) $((x += 3)) $x"
    with tempfile.TemporaryDirectory() as cwd:
        assert sh(script) == busybox_sh(script, Path(cwd))


def test_python_and_c_agree_for_non_negative_operands() -> None:
    for a in range(0, 40, 7):
        for b in range(1, 9):
            assert c_arith("/", a, b) == a // b and c_arith("%", a, b) == a % b


@pytest.mark.anyio
@pytest.mark.parametrize("script", ["while true; do :; done", "until false; do echo x; done",
                                    "for i in 1 2; do while :; do continue; done; done",
                                    "yes", "yes | cat", "seq 1 100000000"])
async def test_endless_scripts_share_the_loop_and_are_cancellable(script: str) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def write(data: bytes) -> None:
        del data

    other = asyncio.create_task(ticker())
    task = asyncio.create_task(run_script(script, context(), stdin=None, stdout=write,
                                          stderr=write))
    await asyncio.sleep(0.1)
    assert not task.done() and ticks > 10  # the loop gave the event loop turns
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert asyncio.get_running_loop().time() - started < 1
    other.cancel()


def test_trap_marks_ignored_signals() -> None:
    async def scenario(script: str) -> Shell:
        shell = Shell(context())

        async def write(data: bytes) -> None:
            del data

        await shell.run(script, stdin=None, stdout=write, stderr=write)
        return shell

    assert asyncio.run(scenario("trap '' TERM")).ignored_signals == {15}
    assert asyncio.run(scenario('trap "" 15 SIGINT; trap - INT')).ignored_signals == {15}
    shell = asyncio.run(scenario("trap '' sigterm; trap 'echo x' TERM HUP"))
    assert shell.ignored_signals == set() and shell.traps == {15: "echo x", 1: "echo x"}
    assert asyncio.run(scenario("(trap '' TERM); trap '' QUIT | true")).ignored_signals == set()


def test_read_takes_stdin_a_line_at_a_time() -> None:
    script = "read a; read -r b; echo \"$b|$a\"; cat"
    assert argv("sh", "-c", script, stdin=b"1 \\\n2\n3\\4\nrest\n").stdout == b"3\\4|1 2\nrest\n"
    assert argv("sh", "-c", "yes | while read y; do echo $y; break; done").stdout == b"y\n"
