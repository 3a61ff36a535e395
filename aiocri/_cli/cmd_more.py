"""The rest of crictl's commands: run, update, checkpoint, runtime-config,
update-runtime-config, metricsp, metricdescs, config, completion."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import yaml

from aiocri import api
from aiocri._cli.args import Argument, Context, Option
from aiocri._cli.common import (
    CHANGE,
    INSPECT,
    TOOLS,
    OutputOpt,
    TemplateOpt,
    command,
    load_message,
    output_template,
    print_table,
    settings_of,
)
from aiocri._cli.render import OutputFormat, dump, message_dict
from aiocri._cli.runner import CLIError, resolve_container, run
from aiocri._cli.settings import CONFIG_ENV, DEFAULT_CONFIG_PATH, DEFAULT_TIMEOUT
from aiocri.client import CRIClient
from aiocri.errors import NotFound

__all__: list[str] = []


def _json_default(output: OutputFormat) -> OutputFormat:
    return OutputFormat.json if output is OutputFormat.table else output


@command("runtime-config", INSPECT)
def runtime_config_cmd(ctx: Context, output: OutputOpt = OutputFormat.json,
                       template: TemplateOpt = None) -> None:
    """Show the runtime's configuration (RuntimeConfig: the cgroup driver)."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        dump(message_dict(await client.runtime.runtime_config()), _json_default(output),
             template=tmpl)

    run(settings, "getting the runtime config", body)


@command("metricdescs", INSPECT)
def metricdescs_cmd(ctx: Context, output: OutputOpt = OutputFormat.json,
                    template: TemplateOpt = None) -> None:
    """List the descriptors of the pod metrics the runtime reports."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        dump(message_dict(await client.runtime.list_metric_descriptors()),
             _json_default(output), template=tmpl)

    run(settings, "listing metric descriptors", body)


@command("metricsp", INSPECT)
def metricsp_cmd(
    ctx: Context,
    pods: Annotated[list[str] | None, Argument(
        metavar="[POD...]", help="Only these pod ids (default: all)")] = None,
    output: OutputOpt = OutputFormat.json,
    template: TemplateOpt = None,
) -> None:
    """Show the pod sandboxes' metrics (ListPodSandboxMetrics)."""
    settings = settings_of(ctx)
    tmpl = output_template(output, template)

    async def body(client: CRIClient) -> None:
        response = await client.runtime.list_pod_sandbox_metrics()
        if pods:
            keep = [m for m in response.pod_metrics
                    if any(m.pod_sandbox_id.startswith(p) for p in pods)]
            del response.pod_metrics[:]
            response.pod_metrics.extend(keep)
        dump(message_dict(response), _json_default(output), template=tmpl)

    run(settings, "getting pod metrics", body)


@command("update-runtime-config", CHANGE)
def update_runtime_config_cmd(
    ctx: Context,
    pod_cidr: Annotated[str, Option("--pod-cidr", help="The pods' CIDR, e.g. 10.88.0.0/16")],
) -> None:
    """Update the runtime's configuration (UpdateRuntimeConfig: the pod CIDR)."""
    settings = settings_of(ctx)

    async def body(client: CRIClient) -> None:
        await client.runtime.update_runtime_config(runtime_config=api.RuntimeConfig(
            network_config=api.NetworkConfig(pod_cidr=pod_cidr)))
        print("Runtime config updated")

    run(settings, "updating the runtime config", body)


@command("checkpoint", CHANGE)
def checkpoint_cmd(
    ctx: Context,
    containers: Annotated[list[str], Argument(metavar="ID...", help="Container ids")],
    export: Annotated[str, Option(
        "--export", "-e", help="Where the runtime writes the checkpoint archive")],
) -> None:
    """Checkpoint one or more running containers (CheckpointContainer)."""

    async def act(client: CRIClient, cid: str) -> None:
        await client.runtime.checkpoint_container(container_id=cid, location=export)

    _each_container(ctx, containers, act, "checkpointing containers")


@command("update", CHANGE)
def update_cmd(
    ctx: Context,
    containers: Annotated[list[str], Argument(metavar="ID...", help="Container ids")],
    cpu_shares: Annotated[int, Option("--cpu-share", help="CPU shares")] = 0,
    cpu_period: Annotated[int, Option("--cpu-period", help="CFS period (us)")] = 0,
    cpu_quota: Annotated[int, Option("--cpu-quota", help="CFS quota (us)")] = 0,
    cpuset_cpus: Annotated[str, Option("--cpuset-cpus", help="CPUs, e.g. 0-3")] = "",
    cpuset_mems: Annotated[str, Option("--cpuset-mems", help="Memory nodes")] = "",
    memory: Annotated[int, Option("--memory", help="Memory limit in bytes")] = 0,
) -> None:
    """Update the resources of one or more running containers."""
    resources = api.LinuxContainerResources(
        cpu_shares=cpu_shares, cpu_period=cpu_period, cpu_quota=cpu_quota,
        cpuset_cpus=cpuset_cpus, cpuset_mems=cpuset_mems, memory_limit_in_bytes=memory)

    async def act(client: CRIClient, cid: str) -> None:
        await client.runtime.update_container_resources(container_id=cid, linux=resources)

    _each_container(ctx, containers, act, "updating containers")


def _each_container(ctx: Context, idents: list[str],
                    act: Callable[[CRIClient, str], Awaitable[None]], action: str) -> None:
    """Resolve each id (prefixes too), act on it, print the full id, as crictl does."""
    settings = settings_of(ctx)

    async def body(client: CRIClient) -> None:
        for ident in idents:
            cid = await resolve_container(client, ident)
            await act(client, cid)
            print(cid)

    run(settings, action, body)


@command("run", CHANGE)
def run_cmd(
    ctx: Context,
    container_config: Annotated[str, Argument(
        metavar="CONTAINER_CONFIG.json|yaml", help="A ContainerConfig file")],
    pod_config: Annotated[str, Argument(
        metavar="POD_CONFIG.json|yaml", help="A PodSandboxConfig file")],
    runtime: Annotated[str, Option(
        "--runtime", "-r", help="Runtime handler (default: the runtime's default)")] = "",
    no_pull: Annotated[bool, Option(
        "--no-pull", help="Do not pull the image first")] = False,
) -> None:
    """Run a new container inside a new pod sandbox; print the container's id."""
    from aiocri._cli.cmd_write import load_pod_config, unless_image_missing

    settings = settings_of(ctx)
    pod = load_pod_config(pod_config)
    container = load_message(container_config, api.ContainerConfig, what="container config")
    if not container.image.image.strip():
        raise CLIError(f"container config {container_config} needs image.image")

    async def body(client: CRIClient) -> None:
        if not no_pull:
            await client.image.pull_image(image=container.image, sandbox_config=pod)
        pod_id = (await client.runtime.run_pod_sandbox(
            config=pod, runtime_handler=runtime)).pod_sandbox_id
        try:
            created = await client.runtime.create_container(
                pod_sandbox_id=pod_id, config=container, sandbox_config=pod)
        except NotFound as exc:
            raise await unless_image_missing(client, exc, container.image,
                                             "leave out --no-pull") from None
        await client.runtime.start_container(container_id=created.container_id)
        print(created.container_id)

    run(settings, "running the container", body)


# -- config, completion ---------------------------------------------------------------------

_CONFIG_KEYS = ("runtime-endpoint", "image-endpoint", "timeout", "debug",
                "pull-image-on-create", "disable-pull-on-run")


def _config_path(ctx: Context) -> str:
    config = getattr(ctx.obj, "config", None)
    return str(config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except (OSError, yaml.YAMLError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CLIError(f"{path} does not hold crictl's settings (a mapping)")
    return data


def _write_config(path: str, data: dict[str, Any]) -> None:
    """Replace the file in one step: an interrupted write leaves the old one whole."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".crictl-", suffix=".yaml")
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=True)
        if os.path.exists(path):
            os.chmod(temporary, os.stat(path).st_mode & 0o777)
        os.replace(temporary, path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None


def _typed(key: str, value: str) -> Any:
    if key in ("debug", "pull-image-on-create", "disable-pull-on-run"):
        if value.lower() not in ("true", "false"):
            raise CLIError(f"{key} takes true or false, not {value!r}", code=2)
        return value.lower() == "true"
    if key == "timeout":
        try:
            return int(value)
        except ValueError:
            raise CLIError(f"timeout takes whole seconds, not {value!r}", code=2) from None
    return value


#: What each setting is when the file does not set it (crictl's --list shows them too).
_CONFIG_DEFAULTS: dict[str, Any] = {
    "runtime-endpoint": "", "image-endpoint": "", "timeout": int(DEFAULT_TIMEOUT),
    "debug": False, "pull-image-on-create": False, "disable-pull-on-run": False,
}


def _config_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@command("config", TOOLS)
def config_cmd(
    ctx: Context,
    get: Annotated[str | None, Option("--get", metavar="KEY",
                                            help="Print one setting")] = None,
    set_: Annotated[list[str] | None, Option(
        "--set", metavar="KEY=VALUE", help="Change a setting (repeatable)")] = None,
    list_: Annotated[bool, Option("--list", help="Print every setting")] = False,
) -> None:
    """Get and set the settings in crictl's config file (crictl.yaml)."""
    path = _config_path(ctx)
    if get is not None and set_:
        raise CLIError("--get and --set go in separate commands", code=2)
    data = _read_config(path)
    if get is not None:
        if get not in _CONFIG_KEYS:
            raise CLIError(f"unknown setting {get!r}; the settings: {', '.join(_CONFIG_KEYS)}",
                           code=2)
        print(_config_text(data.get(get, "")))
        return
    if set_:
        for item in set_:
            key, sep, value = item.partition("=")
            if not sep or key not in _CONFIG_KEYS:
                raise CLIError(f"--set {item!r}: write KEY=VALUE with KEY one of "
                               f"{', '.join(_CONFIG_KEYS)}", code=2)
            data[key] = _typed(key, value)
        _write_config(path, data)
        return
    if list_ or not (get or set_):  # as crictl: every setting, set or not
        print_table(["KEY", "VALUE"], [
            [key, _config_text(data[key] if data.get(key) is not None
                               else _CONFIG_DEFAULTS[key])] for key in _CONFIG_KEYS])


@command("completion", TOOLS)
def completion_cmd(
    shell: Annotated[str, Argument(metavar="bash|zsh|fish",
                                         help="The shell to complete in")] = "bash",
) -> None:
    """Print a shell completion script: source <(aiocri completion bash)."""
    if shell not in ("bash", "zsh", "fish"):
        raise CLIError(f"no completion for {shell!r}; choose bash, zsh or fish", code=2)
    print(completion_script(shell, _command_options()))


def _command_options() -> dict[str, list[str]]:
    from aiocri._cli import _commands

    return {name: sorted([o for p in entry["params"] for o in p.get("decls", ())]
                         + ["-h", "--help"])
            for name, entry in sorted(_commands.COMMANDS.items())}


def completion_script(shell: str, commands: dict[str, list[str]]) -> str:
    """A static completion script: the commands, then each command's flags."""
    if shell == "fish":
        lines = [f"complete -c aiocri -f -n __fish_use_subcommand -a '{' '.join(commands)}'"]
        for name, opts in commands.items():
            for opt in opts:
                flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
                lines.append(f"complete -c aiocri -n '__fish_seen_subcommand_from {name}' "
                             f"{flag}")
        return "\n".join(lines)
    cases = "\n".join(f"    {name}) opts=\"{' '.join(opts)}\" ;;"
                      for name, opts in commands.items())
    script = f"""_aiocri() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{' '.join(commands)}" -- "$cur"))
    return
  fi
  case ${{COMP_WORDS[1]}} in
{cases}
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}}
complete -F _aiocri aiocri"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script
