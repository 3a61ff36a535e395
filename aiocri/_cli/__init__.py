"""The ``aiocri`` command's implementation (typer + rich), imported only by aiocri.cli.

- ``settings``: where the endpoints, timeout and debug come from (flag > env > file > default);
- ``render``: CRI messages as crictl prints them (JSON, YAML, tables, ages, sizes);
- ``gotemplate``: the part of Go's text/template that ``-o go-template --template`` runs;
- ``runner``: runs one command's coroutine on a connected client and turns errors into
  one line on stderr and an exit code;
- ``app``: the typer application and its subcommands.
"""
