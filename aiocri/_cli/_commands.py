"""The table of the ``aiocri`` command's commands and flags. Generated from the commands'
signatures by ``make cli`` (python -m aiocri._cli.spec); do not edit."""

from __future__ import annotations

TYPE_CHECKING = False  # without importing typing
if TYPE_CHECKING:
    from typing import Any

ROOT: list[dict[str, Any]] = [
    {'dest': 'runtime_endpoint', 'type': 'str', 'many': False, 'help': 'Runtime socket, unix:///path (env CONTAINER_RUNTIME_ENDPOINT)', 'metavar': 'ENDPOINT', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['-r', '--runtime-endpoint'], 'case_sensitive': True},
    {'dest': 'image_endpoint', 'type': 'str', 'many': False, 'help': 'Image service socket (default: the runtime endpoint; env IMAGE_SERVICE_ENDPOINT)', 'metavar': 'ENDPOINT', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['-i', '--image-endpoint'], 'case_sensitive': True},
    {'dest': 'timeout', 'type': 'str', 'many': False, 'help': "Deadline of the connection and of each call, as 2, 2s or 500ms, or inf for none (crictl's default: 2s)", 'metavar': 'DURATION', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['-t', '--timeout'], 'case_sensitive': True},
    {'dest': 'debug', 'type': 'bool', 'many': False, 'help': 'Log connection details; show gRPC codes and tracebacks on errors', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-D', '--debug'], 'case_sensitive': True},
    {'dest': 'config', 'type': 'str', 'many': False, 'help': 'crictl config file (env CRI_CONFIG_FILE; default /etc/crictl.yaml)', 'metavar': 'FILE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['-c', '--config'], 'case_sensitive': True},
]

HELP: str = "A CRI client for containerd and CRI-O, with crictl's commands and conventions.\n\nThe runtime endpoint comes from -r, else $CONTAINER_RUNTIME_ENDPOINT, else runtime-endpoint in the config file (--config, $CRI_CONFIG_FILE, or /etc/crictl.yaml), else the first usable of unix:///run/containerd/containerd.sock, unix:///run/crio/crio.sock, unix:///var/run/cri-dockerd.sock."

PANELS: list[str] = ['Inspect', 'Change', 'Stream', 'Follow', 'Configure', 'Try it']

COMMANDS: dict[str, dict[str, Any]] = {

    'version': {'module': 'aiocri._cli.cmd_read', 'function': 'version_cmd', 'panel': 'Inspect', 'help': 'Display runtime version information (and the CRI version aiocri pinned).', 'summary': 'Display runtime version information (and the CRI version aiocri pinned).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'info': {'module': 'aiocri._cli.cmd_read', 'function': 'info_cmd', 'panel': 'Inspect', 'help': 'Display information of the container runtime (Status, verbose).', 'summary': 'Display information of the container runtime (Status, verbose).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Skip the verbose info', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'pods': {'module': 'aiocri._cli.cmd_read', 'function': 'pods_cmd', 'panel': 'Inspect', 'help': 'List pod sandboxes.', 'summary': 'List pod sandboxes.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'id', 'type': 'str', 'many': False, 'help': 'Filter by pod id (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--id'], 'case_sensitive': True},
            {'dest': 'name', 'type': 'str', 'many': False, 'help': 'Filter by pod name regex', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--name'], 'case_sensitive': True},
            {'dest': 'namespace', 'type': 'str', 'many': False, 'help': 'Filter by pod namespace regex', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--namespace'], 'case_sensitive': True},
            {'dest': 'state', 'type': 'str', 'many': False, 'help': 'Filter by pod state: ready or notready', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['-s', '--state'], 'case_sensitive': True},
            {'dest': 'label', 'type': 'str', 'many': True, 'help': 'Filter by label (repeatable)', 'metavar': 'KEY=VALUE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--label'], 'case_sensitive': True},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Only display ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'no_trunc', 'type': 'bool', 'many': False, 'help': 'Show full ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--no-trunc'], 'case_sensitive': True},
            {'dest': 'latest', 'type': 'bool', 'many': False, 'help': 'Show the newest pod', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-l', '--latest'], 'case_sensitive': True},
            {'dest': 'last', 'type': 'int', 'many': False, 'help': 'Show the n newest pods', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['-n', '--last'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'ps': {'module': 'aiocri._cli.cmd_read', 'function': 'ps_cmd', 'panel': 'Inspect', 'help': 'List containers (running ones unless -a or --state).', 'summary': 'List containers (running ones unless -a or --state).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'all', 'type': 'bool', 'many': False, 'help': 'Show all containers', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
            {'dest': 'id', 'type': 'str', 'many': False, 'help': 'Filter by container id (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--id'], 'case_sensitive': True},
            {'dest': 'pod', 'type': 'str', 'many': False, 'help': 'Filter by pod id (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['-p', '--pod'], 'case_sensitive': True},
            {'dest': 'name', 'type': 'str', 'many': False, 'help': 'Filter by container name regex', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--name'], 'case_sensitive': True},
            {'dest': 'namespace', 'type': 'str', 'many': False, 'help': 'Filter by pod namespace regex', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--namespace'], 'case_sensitive': True},
            {'dest': 'state', 'type': 'str', 'many': False, 'help': 'Filter by state: created, running, exited, unknown', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['-s', '--state'], 'case_sensitive': True},
            {'dest': 'label', 'type': 'str', 'many': True, 'help': 'Filter by label (repeatable)', 'metavar': 'KEY=VALUE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--label'], 'case_sensitive': True},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Only display ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'no_trunc', 'type': 'bool', 'many': False, 'help': 'Show full ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--no-trunc'], 'case_sensitive': True},
            {'dest': 'latest', 'type': 'bool', 'many': False, 'help': 'Show the newest container (any state)', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-l', '--latest'], 'case_sensitive': True},
            {'dest': 'last', 'type': 'int', 'many': False, 'help': 'Show the n newest containers (any state)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['-n', '--last'], 'case_sensitive': True},
            {'dest': 'verbose', 'type': 'bool', 'many': False, 'help': "Every container's details instead of the table", 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-v', '--verbose'], 'case_sensitive': True},
            {'dest': 'image', 'type': 'str', 'many': False, 'help': 'Filter by image (a reference or id, as the runtime resolves it)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--image'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'images': {'module': 'aiocri._cli.cmd_read', 'function': 'images_cmd', 'panel': 'Inspect', 'help': 'List images.', 'summary': 'List images.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'repository', 'type': 'str', 'many': False, 'help': 'Sent as the ListImages filter (containerd 1.6/1.7 ignore it: every image)', 'metavar': '[REPOSITORY[:TAG]]', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Only display ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'no_trunc', 'type': 'bool', 'many': False, 'help': 'Show full ids', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--no-trunc'], 'case_sensitive': True},
            {'dest': 'digests', 'type': 'bool', 'many': False, 'help': 'Show digests', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--digests'], 'case_sensitive': True},
            {'dest': 'pinned', 'type': 'bool', 'many': False, 'help': 'Show whether pinned', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--pinned'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'inspect': {'module': 'aiocri._cli.cmd_read', 'function': 'inspect_cmd', 'panel': 'Inspect', 'help': 'Display the status of one or more containers.\n\nThose found are printed; then each id that was not, on stderr (exit status 1).', 'summary': 'Display the status of one or more containers.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Container ids or id prefixes', 'metavar': 'CONTAINER...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: json, yaml, go-template (with --template) or table', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Skip the verbose info', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'inspectp': {'module': 'aiocri._cli.cmd_read', 'function': 'inspectp_cmd', 'panel': 'Inspect', 'help': 'Display the status of one or more pod sandboxes.\n\nThose found are printed; then each id that was not, on stderr (exit status 1).', 'summary': 'Display the status of one or more pod sandboxes.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pods', 'type': 'str', 'many': True, 'help': 'Pod sandbox ids or id prefixes', 'metavar': 'POD...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: json, yaml, go-template (with --template) or table', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Skip the verbose info', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'inspecti': {'module': 'aiocri._cli.cmd_read', 'function': 'inspecti_cmd', 'panel': 'Inspect', 'help': 'Display the status of one or more images.\n\nThose found are printed; then each image that was not, on stderr (exit status 1).', 'summary': 'Display the status of one or more images.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'images', 'type': 'str', 'many': True, 'help': 'Image ids or references (default: all images)', 'metavar': '[IMAGE...]', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: json, yaml, go-template (with --template) or table', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'quiet', 'type': 'bool', 'many': False, 'help': 'Skip the verbose info', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--quiet'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'imagefsinfo': {'module': 'aiocri._cli.cmd_read', 'function': 'imagefsinfo_cmd', 'panel': 'Inspect', 'help': 'Display image filesystem usage.', 'summary': 'Display image filesystem usage.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: json, yaml, go-template (with --template) or table', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'stats': {'module': 'aiocri._cli.cmd_read', 'function': 'stats_cmd', 'panel': 'Inspect', 'help': 'List container resource usage (CPU % sampled over --seconds).', 'summary': 'List container resource usage (CPU % sampled over --seconds).', 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'container', 'type': 'str', 'many': False, 'help': 'Only this container (or prefix), as --id', 'metavar': '[ID]', 'required': False, 'default': None, 'show_default': False, 'kind': 'argument'},
            {'dest': 'all', 'type': 'bool', 'many': False, 'help': 'Include stopped containers', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
            {'dest': 'id', 'type': 'str', 'many': False, 'help': 'Only this container (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--id'], 'case_sensitive': True},
            {'dest': 'pod', 'type': 'str', 'many': False, 'help': 'Only containers of this pod (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['-p', '--pod'], 'case_sensitive': True},
            {'dest': 'label', 'type': 'str', 'many': True, 'help': 'Filter by label (repeatable)', 'metavar': 'KEY=VALUE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--label'], 'case_sensitive': True},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'seconds', 'type': 'float', 'many': False, 'help': 'Sample duration for CPU usage, in seconds', 'metavar': None, 'required': False, 'default': 1.0, 'show_default': True, 'kind': 'option', 'decls': ['-s', '--seconds'], 'case_sensitive': True},
            {'dest': 'watch', 'type': 'bool', 'many': False, 'help': 'Print again every --seconds until Ctrl-C', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-w', '--watch'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'statsp': {'module': 'aiocri._cli.cmd_read', 'function': 'statsp_cmd', 'panel': 'Inspect', 'help': 'List pod sandbox resource usage (CPU % sampled over --seconds).', 'summary': 'List pod sandbox resource usage (CPU % sampled over --seconds).', 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'pod', 'type': 'str', 'many': False, 'help': 'Only this pod (or prefix), as --id', 'metavar': '[ID]', 'required': False, 'default': None, 'show_default': False, 'kind': 'argument'},
            {'dest': 'id', 'type': 'str', 'many': False, 'help': 'Only this pod (or prefix)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--id'], 'case_sensitive': True},
            {'dest': 'label', 'type': 'str', 'many': True, 'help': 'Filter by label (repeatable)', 'metavar': 'KEY=VALUE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--label'], 'case_sensitive': True},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'table', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'seconds', 'type': 'float', 'many': False, 'help': 'Sample duration for CPU usage, in seconds', 'metavar': None, 'required': False, 'default': 1.0, 'show_default': True, 'kind': 'option', 'decls': ['-s', '--seconds'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'runp': {'module': 'aiocri._cli.cmd_write', 'function': 'runp_cmd', 'panel': 'Change', 'help': 'Run a new pod sandbox; print its id.', 'summary': 'Run a new pod sandbox; print its id.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pod_config', 'type': 'str', 'many': False, 'help': 'A PodSandboxConfig file', 'metavar': 'POD_CONFIG.json|yaml', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'runtime', 'type': 'str', 'many': False, 'help': "Runtime handler (default: the runtime's default)", 'metavar': None, 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['-r', '--runtime'], 'case_sensitive': True},
        ]},

    'stopp': {'module': 'aiocri._cli.cmd_write', 'function': 'stopp_cmd', 'panel': 'Change', 'help': 'Stop one or more pod sandboxes (and their containers).', 'summary': 'Stop one or more pod sandboxes (and their containers).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pods', 'type': 'str', 'many': True, 'help': 'Ids or unique id prefixes', 'metavar': 'ID...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
        ]},

    'rmp': {'module': 'aiocri._cli.cmd_write', 'function': 'rmp_cmd', 'panel': 'Change', 'help': 'Remove one or more pod sandboxes (and their containers).', 'summary': 'Remove one or more pod sandboxes (and their containers).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pods', 'type': 'str', 'many': True, 'help': 'Ids or unique id prefixes', 'metavar': 'ID...', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'force', 'type': 'bool', 'many': False, 'help': 'Stop a ready pod before removing it', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-f', '--force'], 'case_sensitive': True},
            {'dest': 'all', 'type': 'bool', 'many': False, 'help': 'Remove every pod sandbox', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
        ]},

    'create': {'module': 'aiocri._cli.cmd_write', 'function': 'create_cmd', 'panel': 'Change', 'help': 'Create a new container in a pod sandbox; print its id.', 'summary': 'Create a new container in a pod sandbox; print its id.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pod', 'type': 'str', 'many': False, 'help': 'Pod sandbox id or id prefix', 'metavar': 'POD_ID', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'container_config', 'type': 'str', 'many': False, 'help': 'A ContainerConfig file', 'metavar': 'CONTAINER_CONFIG.json|yaml', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'pod_config', 'type': 'str', 'many': False, 'help': "The pod's PodSandboxConfig file", 'metavar': 'POD_CONFIG.json|yaml', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'with_pull', 'type': 'bool', 'many': False, 'help': 'Pull the image before creating the container', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--with-pull'], 'case_sensitive': True},
        ]},

    'start': {'module': 'aiocri._cli.cmd_write', 'function': 'start_cmd', 'panel': 'Change', 'help': 'Start one or more created containers.', 'summary': 'Start one or more created containers.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Ids or unique id prefixes', 'metavar': 'ID...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
        ]},

    'stop': {'module': 'aiocri._cli.cmd_write', 'function': 'stop_cmd', 'panel': 'Change', 'help': 'Stop one or more running containers.', 'summary': 'Stop one or more running containers.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Ids or unique id prefixes', 'metavar': 'ID...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'timeout', 'type': 'int', 'many': False, 'help': 'Seconds to wait before killing the container', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['-t', '--timeout'], 'case_sensitive': True},
        ]},

    'rm': {'module': 'aiocri._cli.cmd_write', 'function': 'rm_cmd', 'panel': 'Change', 'help': 'Remove one or more containers.', 'summary': 'Remove one or more containers.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Ids or unique id prefixes', 'metavar': 'ID...', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'force', 'type': 'bool', 'many': False, 'help': 'Stop a running container before removing it', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-f', '--force'], 'case_sensitive': True},
            {'dest': 'all', 'type': 'bool', 'many': False, 'help': 'Remove every container', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
        ]},

    'pull': {'module': 'aiocri._cli.cmd_write', 'function': 'pull_cmd', 'panel': 'Change', 'help': 'Pull an image; print its reference.', 'summary': 'Pull an image; print its reference.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'image', 'type': 'str', 'many': False, 'help': 'Image reference', 'metavar': 'IMAGE', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'creds', 'type': 'str', 'many': False, 'help': 'Registry credentials', 'metavar': 'USER[:PASSWORD]', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--creds'], 'case_sensitive': True},
            {'dest': 'auth', 'type': 'str', 'many': False, 'help': 'Registry auth string (base64 user:password)', 'metavar': 'BASE64', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--auth'], 'case_sensitive': True},
            {'dest': 'pod_config', 'type': 'str', 'many': False, 'help': 'PodSandboxConfig to pull the image for', 'metavar': 'FILE', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--pod-config'], 'case_sensitive': True},
            {'dest': 'pull_timeout', 'type': 'float', 'many': False, 'help': 'Seconds the pull may take (0: no limit)', 'metavar': None, 'required': False, 'default': 0.0, 'show_default': True, 'kind': 'option', 'decls': ['--pull-timeout'], 'case_sensitive': True},
        ]},

    'rmi': {'module': 'aiocri._cli.cmd_write', 'function': 'rmi_cmd', 'panel': 'Change', 'help': 'Remove one or more images (every tag of each), all of them, or the unused ones.', 'summary': 'Remove one or more images (every tag of each), all of them, or the unused ones.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'images', 'type': 'str', 'many': True, 'help': 'Image ids or references', 'metavar': 'IMAGE...', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'all_', 'type': 'bool', 'many': False, 'help': 'Remove every image', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
            {'dest': 'prune', 'type': 'bool', 'many': False, 'help': 'Remove the images no container uses', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-q', '--prune'], 'case_sensitive': True},
        ]},

    'exec': {'module': 'aiocri._cli.cmd_stream', 'function': 'exec_cmd', 'panel': 'Stream', 'help': "Run a command in a running container; exit with the command's exit code.", 'summary': "Run a command in a running container; exit with the command's exit code.", 'context': 'ctx', 'interspersed': False, 'lasting': True,
        'params': [
            {'dest': 'container', 'type': 'str', 'many': False, 'help': 'Container id or id prefix', 'metavar': 'CONTAINER', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'cmd', 'type': 'str', 'many': True, 'help': 'The command and its arguments, after --', 'metavar': '-- CMD', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'interactive', 'type': 'bool', 'many': False, 'help': "Send this process's stdin to the command", 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-i', '--interactive'], 'case_sensitive': True},
            {'dest': 'tty', 'type': 'bool', 'many': False, 'help': 'Run the command on a terminal (raw mode here, sizes forwarded)', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-t', '--tty'], 'case_sensitive': True},
            {'dest': 'sync', 'type': 'bool', 'many': False, 'help': 'Run with ExecSync (no stdin, output once the command ends)', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-s', '--sync'], 'case_sensitive': True},
            {'dest': 'transport', 'type': 'str', 'many': False, 'help': 'Streaming transport (default: spdy, falling back to websocket)', 'metavar': 'spdy|websocket', 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['-r', '--transport'], 'case_sensitive': True},
            {'dest': 'timeout', 'type': 'int', 'many': False, 'help': 'With -s: seconds the command may run (0: no limit)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--timeout'], 'case_sensitive': True},
        ]},

    'attach': {'module': 'aiocri._cli.cmd_stream', 'function': 'attach_cmd', 'panel': 'Stream', 'help': "Attach to a running container's main process (Ctrl-C ends; with -it it goes to the container).", 'summary': "Attach to a running container's main process (Ctrl-C ends; with -it it goes to the container).", 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'container', 'type': 'str', 'many': False, 'help': 'Container id or id prefix', 'metavar': 'CONTAINER', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'interactive', 'type': 'bool', 'many': False, 'help': "Send this process's stdin to the container", 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-i', '--stdin'], 'case_sensitive': True},
            {'dest': 'tty', 'type': 'bool', 'many': False, 'help': 'The container runs on a terminal (its config says tty)', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-t', '--tty'], 'case_sensitive': True},
            {'dest': 'transport', 'type': 'str', 'many': False, 'help': 'Streaming transport (default: spdy, falling back to websocket)', 'metavar': 'spdy|websocket', 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['-r', '--transport'], 'case_sensitive': True},
        ]},

    'port-forward': {'module': 'aiocri._cli.cmd_stream', 'function': 'port_forward_cmd', 'panel': 'Stream', 'help': "Forward local ports to ports of a pod until interrupted (Ctrl-C).\n\nSays, as kubectl does, where it listens, each connection it handles, and on stderr why a connection failed (the runtime's words: nothing listens on the pod's port...).", 'summary': 'Forward local ports to ports of a pod until interrupted (Ctrl-C).', 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'pod', 'type': 'str', 'many': False, 'help': 'Pod sandbox id or id prefix', 'metavar': 'POD', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'ports', 'type': 'str', 'many': True, 'help': 'Ports to forward (LOCAL empty or 0: any free port)', 'metavar': '[LOCAL:]REMOTE...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'address', 'type': 'str', 'many': False, 'help': 'Local address to listen on', 'metavar': None, 'required': False, 'default': '127.0.0.1', 'show_default': True, 'kind': 'option', 'decls': ['--address'], 'case_sensitive': True},
            {'dest': 'transport', 'type': 'str', 'many': False, 'help': 'Streaming transport (default: spdy, falling back to websocket)', 'metavar': 'spdy|websocket', 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['-r', '--transport'], 'case_sensitive': True},
        ]},

    'logs': {'module': 'aiocri._cli.cmd_stream', 'function': 'logs_cmd', 'panel': 'Stream', 'help': "Print a container's logs from its log file (on the runtime's machine).", 'summary': "Print a container's logs from its log file (on the runtime's machine).", 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'container', 'type': 'str', 'many': False, 'help': 'Container id or id prefix', 'metavar': 'CONTAINER', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'follow', 'type': 'bool', 'many': False, 'help': 'Keep printing as the container writes, until it stops', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-f', '--follow'], 'case_sensitive': True},
            {'dest': 'tail', 'type': 'int', 'many': False, 'help': 'Only the last N lines (-1: all)', 'metavar': None, 'required': False, 'default': -1, 'show_default': True, 'kind': 'option', 'decls': ['--tail'], 'case_sensitive': True},
            {'dest': 'since', 'type': 'str', 'many': False, 'help': 'Only lines since a time (RFC 3339) or for a duration (10s, 5m)', 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--since'], 'case_sensitive': True},
            {'dest': 'timestamps', 'type': 'bool', 'many': False, 'help': "Print each line's timestamp", 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-t', '--timestamps'], 'case_sensitive': True},
            {'dest': 'stream', 'type': 'str', 'many': False, 'help': 'Only this stream', 'metavar': 'stdout|stderr', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['-s', '--stream'], 'case_sensitive': True},
            {'dest': 'limit_bytes', 'type': 'int', 'many': False, 'help': 'At most N bytes of text (-1: no limit)', 'metavar': None, 'required': False, 'default': -1, 'show_default': True, 'kind': 'option', 'decls': ['--limit-bytes'], 'case_sensitive': True},
            {'dest': 'previous', 'type': 'bool', 'many': False, 'help': 'The previous attempt of the container', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-p', '--previous'], 'case_sensitive': True},
            {'dest': 'reverse', 'type': 'bool', 'many': False, 'help': 'Newest line first (not with -f)', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-r', '--reverse'], 'case_sensitive': True},
        ]},

    'events': {'module': 'aiocri._cli.cmd_watch', 'function': 'events_cmd', 'panel': 'Follow', 'help': "Stream container events: each change of a pod or a container, once, in order.\n\nWhat exists when it starts is not printed; changes from then on are. It follows GetContainerEvents where the runtime has it, else (CRI v1alpha2, containerd 1.6) relists every --poll-period and says so on stderr, and moves between the two by itself when the runtime is upgraded or downgraded. After a runtime restart it relists: what changed while the runtime was down (a container that exited) is printed then, as the same events as the stream's.\n\nEach event is a ContainerEventResponse, whether the runtime's stream or a relist found the change: a container's CREATED, STARTED, STOPPED (exited) and DELETED events; a pod sandbox's STARTED (ready), STOPPED (not ready) and DELETED events, before its containers' events and after their exits and removals. Each carries the pod's status, the container's status as last seen (for a DELETED event, its last one) and, as created_at, when the change was seen. A relist reports the state it finds: a container created and started between two relists is STARTED only.", 'summary': 'Stream container events: each change of a pod or a container, once, in order.', 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: json, yaml, go-template (with --template) or table (a line an event)', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'count', 'type': 'int', 'many': False, 'help': 'Exit after this many events (0: until Ctrl-C)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['-n', '--count'], 'case_sensitive': True},
            {'dest': 'period', 'type': 'float', 'many': False, 'help': 'Relist period, seconds, where the runtime has no GetContainerEvents and while its stream is down', 'metavar': None, 'required': False, 'default': 1.0, 'show_default': True, 'kind': 'option', 'decls': ['--poll-period'], 'case_sensitive': True},
            {'dest': 'metrics_port', 'type': 'int', 'many': False, 'help': "Serve the client's and the poller's Prometheus metrics on this port (/metrics; 0: any free port) while it runs; needs aiocri[prometheus]", 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--metrics-port'], 'case_sensitive': True},
            {'dest': 'metrics_host', 'type': 'str', 'many': False, 'help': 'Address to serve metrics on', 'metavar': None, 'required': False, 'default': '127.0.0.1', 'show_default': True, 'kind': 'option', 'decls': ['--metrics-host'], 'case_sensitive': True},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'watch': {'module': 'aiocri._cli.cmd_watch', 'function': 'watch_cmd', 'panel': 'Follow', 'help': 'A live table of pods and containers, updated in place from the poller.\n\nWhen the runtime is upgraded and drops the CRI version the client pinned, the table says so and reconnects (a new client negotiates again).', 'summary': 'A live table of pods and containers, updated in place from the poller.', 'context': 'ctx', 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'period', 'type': 'float', 'many': False, 'help': 'Relist period, seconds', 'metavar': None, 'required': False, 'default': 1.0, 'show_default': True, 'kind': 'option', 'decls': ['--period'], 'case_sensitive': True},
            {'dest': 'mode', 'type': 'str', 'many': False, 'help': 'auto (events where the runtime has them), relist or events', 'metavar': None, 'required': False, 'default': 'auto', 'show_default': True, 'kind': 'option', 'decls': ['--mode'], 'case_sensitive': True},
            {'dest': 'all', 'type': 'bool', 'many': False, 'help': 'Show exited and created containers too', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['-a', '--all'], 'case_sensitive': True},
            {'dest': 'duration', 'type': 'float', 'many': False, 'help': 'Exit after this many seconds (0: until Ctrl-C)', 'metavar': None, 'required': False, 'default': 0.0, 'show_default': True, 'kind': 'option', 'decls': ['--duration'], 'case_sensitive': True},
            {'dest': 'rows', 'type': 'int', 'many': False, 'help': 'Containers shown at most (0: as many as the terminal fits)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--rows'], 'case_sensitive': True},
            {'dest': 'metrics_port', 'type': 'int', 'many': False, 'help': "Serve the client's and the poller's Prometheus metrics on this port (/metrics; 0: any free port) while it runs; needs aiocri[prometheus]", 'metavar': None, 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--metrics-port'], 'case_sensitive': True},
            {'dest': 'metrics_host', 'type': 'str', 'many': False, 'help': 'Address to serve metrics on', 'metavar': None, 'required': False, 'default': '127.0.0.1', 'show_default': True, 'kind': 'option', 'decls': ['--metrics-host'], 'case_sensitive': True},
        ]},

    'runtime-config': {'module': 'aiocri._cli.cmd_more', 'function': 'runtime_config_cmd', 'panel': 'Inspect', 'help': "Show the runtime's configuration (RuntimeConfig: the cgroup driver).", 'summary': "Show the runtime's configuration (RuntimeConfig: the cgroup driver).", 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'metricdescs': {'module': 'aiocri._cli.cmd_more', 'function': 'metricdescs_cmd', 'panel': 'Inspect', 'help': 'List the descriptors of the pod metrics the runtime reports.', 'summary': 'List the descriptors of the pod metrics the runtime reports.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'metricsp': {'module': 'aiocri._cli.cmd_more', 'function': 'metricsp_cmd', 'panel': 'Inspect', 'help': "Show the pod sandboxes' metrics (ListPodSandboxMetrics).", 'summary': "Show the pod sandboxes' metrics (ListPodSandboxMetrics).", 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pods', 'type': 'str', 'many': True, 'help': 'Only these pod ids (default: all)', 'metavar': '[POD...]', 'required': False, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'output', 'type': 'choice', 'many': False, 'help': 'Output format: table, json, yaml or go-template (with --template)', 'metavar': None, 'required': False, 'default': 'json', 'show_default': True, 'choices': ['table', 'json', 'yaml', 'go-template'], 'enum': 'aiocri._cli.render:OutputFormat', 'kind': 'option', 'decls': ['-o', '--output'], 'case_sensitive': False},
            {'dest': 'template', 'type': 'str', 'many': False, 'help': 'A Go template for -o go-template, run on what -o json prints: fields by their JSON names ({{.status.id}}), range, if, with, printf, index, len, json', 'metavar': 'TEMPLATE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--template'], 'case_sensitive': True},
        ]},

    'update-runtime-config': {'module': 'aiocri._cli.cmd_more', 'function': 'update_runtime_config_cmd', 'panel': 'Change', 'help': "Update the runtime's configuration (UpdateRuntimeConfig: the pod CIDR).", 'summary': "Update the runtime's configuration (UpdateRuntimeConfig: the pod CIDR).", 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'pod_cidr', 'type': 'str', 'many': False, 'help': "The pods' CIDR, e.g. 10.88.0.0/16", 'metavar': None, 'required': True, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--pod-cidr'], 'case_sensitive': True},
        ]},

    'checkpoint': {'module': 'aiocri._cli.cmd_more', 'function': 'checkpoint_cmd', 'panel': 'Change', 'help': 'Checkpoint one or more running containers (CheckpointContainer).', 'summary': 'Checkpoint one or more running containers (CheckpointContainer).', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Container ids', 'metavar': 'ID...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'export', 'type': 'str', 'many': False, 'help': 'Where the runtime writes the checkpoint archive', 'metavar': None, 'required': True, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--export', '-e'], 'case_sensitive': True},
        ]},

    'update': {'module': 'aiocri._cli.cmd_more', 'function': 'update_cmd', 'panel': 'Change', 'help': 'Update the resources of one or more running containers.', 'summary': 'Update the resources of one or more running containers.', 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'containers', 'type': 'str', 'many': True, 'help': 'Container ids', 'metavar': 'ID...', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'cpu_shares', 'type': 'int', 'many': False, 'help': 'CPU shares', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--cpu-share'], 'case_sensitive': True},
            {'dest': 'cpu_period', 'type': 'int', 'many': False, 'help': 'CFS period (us)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--cpu-period'], 'case_sensitive': True},
            {'dest': 'cpu_quota', 'type': 'int', 'many': False, 'help': 'CFS quota (us)', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--cpu-quota'], 'case_sensitive': True},
            {'dest': 'cpuset_cpus', 'type': 'str', 'many': False, 'help': 'CPUs, e.g. 0-3', 'metavar': None, 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['--cpuset-cpus'], 'case_sensitive': True},
            {'dest': 'cpuset_mems', 'type': 'str', 'many': False, 'help': 'Memory nodes', 'metavar': None, 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['--cpuset-mems'], 'case_sensitive': True},
            {'dest': 'memory', 'type': 'int', 'many': False, 'help': 'Memory limit in bytes', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--memory'], 'case_sensitive': True},
        ]},

    'run': {'module': 'aiocri._cli.cmd_more', 'function': 'run_cmd', 'panel': 'Change', 'help': "Run a new container inside a new pod sandbox; print the container's id.", 'summary': "Run a new container inside a new pod sandbox; print the container's id.", 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'container_config', 'type': 'str', 'many': False, 'help': 'A ContainerConfig file', 'metavar': 'CONTAINER_CONFIG.json|yaml', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'pod_config', 'type': 'str', 'many': False, 'help': 'A PodSandboxConfig file', 'metavar': 'POD_CONFIG.json|yaml', 'required': True, 'default': None, 'show_default': True, 'kind': 'argument'},
            {'dest': 'runtime', 'type': 'str', 'many': False, 'help': "Runtime handler (default: the runtime's default)", 'metavar': None, 'required': False, 'default': '', 'show_default': True, 'kind': 'option', 'decls': ['--runtime', '-r'], 'case_sensitive': True},
            {'dest': 'no_pull', 'type': 'bool', 'many': False, 'help': 'Do not pull the image first', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--no-pull'], 'case_sensitive': True},
        ]},

    'config': {'module': 'aiocri._cli.cmd_more', 'function': 'config_cmd', 'panel': 'Configure', 'help': "Get and set the settings in crictl's config file (crictl.yaml).", 'summary': "Get and set the settings in crictl's config file (crictl.yaml).", 'context': 'ctx', 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'get', 'type': 'str', 'many': False, 'help': 'Print one setting', 'metavar': 'KEY', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--get'], 'case_sensitive': True},
            {'dest': 'set_', 'type': 'str', 'many': True, 'help': 'Change a setting (repeatable)', 'metavar': 'KEY=VALUE', 'required': False, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--set'], 'case_sensitive': True},
            {'dest': 'list_', 'type': 'bool', 'many': False, 'help': 'Print every setting', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--list'], 'case_sensitive': True},
        ]},

    'completion': {'module': 'aiocri._cli.cmd_more', 'function': 'completion_cmd', 'panel': 'Configure', 'help': 'Print a shell completion script: source <(aiocri completion bash).', 'summary': 'Print a shell completion script: source <(aiocri completion bash).', 'context': None, 'interspersed': True, 'lasting': False,
        'params': [
            {'dest': 'shell', 'type': 'str', 'many': False, 'help': 'The shell to complete in', 'metavar': 'bash|zsh|fish', 'required': False, 'default': 'bash', 'show_default': True, 'kind': 'argument'},
        ]},

    'fake-runtime': {'module': 'aiocri._cli.cmd_tools', 'function': 'fake_runtime_cmd', 'panel': 'Try it', 'help': 'Serve the embedded fake CRI runtime in the foreground until Ctrl-C (for tests, demos).\n\nOnce it serves, it says how to point aiocri (or crictl) at it: -r unix://SOCKET, or CONTAINER_RUNTIME_ENDPOINT=unix://SOCKET in the environment.\n\nThe containers run their commands with a stand-in for busybox sh and its applets (sh -c with ; && || | and redirections, echo, printf, cat, ls, head, wc, env, id, hostname, sleep, ...); see python -m aiocri.testing --help for the whole list.', 'summary': 'Serve the embedded fake CRI runtime in the foreground until Ctrl-C (for tests, demos).', 'context': None, 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'socket', 'type': 'str', 'many': False, 'help': 'Unix socket path to serve on', 'metavar': None, 'required': True, 'default': None, 'show_default': True, 'kind': 'option', 'decls': ['--socket'], 'case_sensitive': True},
            {'dest': 'versions', 'type': 'str', 'many': False, 'help': 'CRI versions to serve, e.g. v1,v1alpha2', 'metavar': None, 'required': False, 'default': 'v1,v1alpha2', 'show_default': True, 'kind': 'option', 'decls': ['--versions'], 'case_sensitive': True},
            {'dest': 'pods', 'type': 'int', 'many': False, 'help': 'Running pods to create', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--pods'], 'case_sensitive': True},
            {'dest': 'containers_per_pod', 'type': 'int', 'many': False, 'help': 'Running containers per pod', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--containers-per-pod'], 'case_sensitive': True},
            {'dest': 'churn_per_second', 'type': 'float', 'many': False, 'help': 'Container crash-restarts per second', 'metavar': None, 'required': False, 'default': 0.0, 'show_default': True, 'kind': 'option', 'decls': ['--churn-per-second'], 'case_sensitive': True},
            {'dest': 'runtime_name', 'type': 'str', 'many': False, 'help': '', 'metavar': None, 'required': False, 'default': 'aiocri-fake', 'show_default': True, 'kind': 'option', 'decls': ['--runtime-name'], 'case_sensitive': True},
            {'dest': 'runtime_version', 'type': 'str', 'many': False, 'help': '', 'metavar': None, 'required': False, 'default': '1.0.0', 'show_default': True, 'kind': 'option', 'decls': ['--runtime-version'], 'case_sensitive': True},
            {'dest': 'seed', 'type': 'int', 'many': False, 'help': 'Id seed: same seed, same ids', 'metavar': None, 'required': False, 'default': 0, 'show_default': True, 'kind': 'option', 'decls': ['--seed'], 'case_sensitive': True},
            {'dest': 'images', 'type': 'str', 'many': True, 'help': 'A local image (repeat); default: a few busybox/nginx/pause', 'metavar': 'REFERENCE', 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--image'], 'case_sensitive': True},
            {'dest': 'pull', 'type': 'str', 'many': False, 'help': "PullImage of an unknown reference: 'any' makes the image, 'registry' answers NOT_FOUND", 'metavar': 'any|registry', 'required': False, 'default': 'any', 'show_default': True, 'kind': 'option', 'decls': ['--pull'], 'case_sensitive': True},
            {'dest': 'stop_missing', 'type': 'str', 'many': False, 'help': 'StopContainer/StopPodSandbox of an unknown id: OK (containerd 1.7, 2.x) or NOT_FOUND (containerd 1.6)', 'metavar': 'not-found|ok', 'required': False, 'default': 'ok', 'show_default': True, 'kind': 'option', 'decls': ['--stop-missing'], 'case_sensitive': True},
            {'dest': 'compat', 'type': 'str', 'many': False, 'help': 'Answer as containerd 1.7 or 1.6 where they differ', 'metavar': '1.7|1.6', 'required': False, 'default': '1.7', 'show_default': True, 'kind': 'option', 'decls': ['--compat'], 'case_sensitive': True},
        ]},

    'demo': {'module': 'aiocri._cli.cmd_tools', 'function': 'demo_cmd', 'panel': 'Try it', 'help': 'Show version pinning, redial and restart-required on the embedded fake runtime.', 'summary': 'Show version pinning, redial and restart-required on the embedded fake runtime.', 'context': None, 'interspersed': True, 'lasting': True,
        'params': [
            {'dest': 'quick', 'type': 'bool', 'many': False, 'help': 'A ~10 s run for CI instead of about a minute', 'metavar': None, 'required': False, 'default': False, 'show_default': True, 'kind': 'flag', 'decls': ['--quick'], 'case_sensitive': True},
            {'dest': 'pods', 'type': 'int', 'many': False, 'help': 'Pods to start with (default 30, quick 10)', 'metavar': None, 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--pods'], 'case_sensitive': True},
            {'dest': 'containers_per_pod', 'type': 'int', 'many': False, 'help': 'Containers per pod (default 10)', 'metavar': None, 'required': False, 'default': None, 'show_default': False, 'kind': 'option', 'decls': ['--containers-per-pod'], 'case_sensitive': True},
        ]},

}

ALIASES: dict[str, str] = {'img': 'images', 'image': 'images'}
