"""The ``aiocri`` command's implementation, imported only by aiocri.cli.

- ``args``: how a command's parameters take argv (``Option``, ``Argument``, ``command``);
- ``spec``: writes ``_commands.py``, the table of commands and flags, from the signatures;
- ``parse``: parses argv from that table (argparse), prints help, runs the command;
- ``settings``: where the endpoints, timeout and debug come from (flag > env > file > default);
- ``render``: CRI messages as crictl prints them (JSON, YAML, tables, ages, sizes);
- ``gotemplate``: the part of Go's text/template that ``-o go-template --template`` runs;
- ``runner``: runs one command's coroutine on a connected client and turns errors into
  one line on stderr and an exit code;
- ``cmd_*``: the commands.
"""
