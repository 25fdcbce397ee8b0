"""The `cairn` command: a thin shell over the library.

Each command calls one library function, prints with rich (or JSON with
``--json``), and turns a CairnError into a one-line message and exit code 1.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import sys
from typing import Any, Callable, cast

import click

from ..errors import CairnError


class Context:
    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.must_exist = False  # a command that only reads: it must not create a store
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from ..client import Client

            client = Client(self.uri)
            if self.must_exist:
                _require_store(client.uri)
            self._client = client
        return self._client


def _require_store(uri: str) -> None:
    """A read of a local store that is not there: say so, and create nothing (a mistyped
    --store used to make an empty store and list nothing in it)."""
    from ..errors import NotFound
    from ..store import local_directory

    path = local_directory(uri)
    if path is not None and not path.is_dir():
        raise NotFound(f"no Cairn store at {path}: check --store (or CAIRN_TRACKING_URI); a "
                       "store is made by the first run logged to it")


# Commands that only read: on a store directory that does not exist they fail, not create it.
READ_ONLY = {
    "experiments ls", "runs ls", "runs show", "runs compare", "artifacts ls", "artifacts get",
    "artifacts verify", "doctor", "models ls", "models show", "models versions", "models diff",
    "models requests", "models history", "models verify", "models get", "models download",
    "audit log",
    "audit verify", "keys ls", "data ls", "data show", "data get", "data diff", "data verify",
    "lineage", "remote ls",
    "comments ls", "comments show", "views ls", "views show", "dashboards ls", "dashboards show",
    "reports ls", "reports show", "reports export",
    "webhooks ls", "webhooks deliveries", "events ls", "kpi", "monitor status", "monitor rules show",
    "pipeline status", "check",
    "backup",
    "encryption status",
    "retention show", "retention ls", "retention plan",
    "trash ls",
    # They change a store, but only one that exists: a mistyped --store must not make an
    # empty one (and report success on it).
    "gc", "trash empty", "export", "admin erase-user", "tier", "encryption rotate",
    "encryption encrypt-existing",
    # Changes to something that must already be in the store.
    "experiments rename", "experiments delete", "experiments restore",
    "runs tag", "runs untag", "runs rename", "runs delete", "runs restore",
    "models promote", "models approve", "models reject", "models alias", "models rename",
    "models delete", "models restore", "data alias", "data delete", "data restore",
    "comments delete", "comments restore", "views delete", "dashboards delete",
    "reports delete", "webhooks delete",
}


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def require_server_packages(command: str) -> None:
    """A clear error, not an ImportError's traceback, where the ``server`` extra is missing."""
    from importlib.util import find_spec

    from ..errors import MissingDependency

    missing = [m for m in ("fastapi", "uvicorn") if find_spec(m) is None]
    if missing:
        raise MissingDependency(f"{command} needs the web server's packages ({', '.join(missing)} "
                                "missing): pip install 'cairn[server]'")


def handle_errors(fn: Callable) -> Callable:
    """Turn a CairnError (or an OS error such as a full disk) into ``Error: ...`` and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CairnError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper


_ID_PREFIX = re.compile(r"[0-9a-f]{1,31}")


def resolve_run(client: Any, ref: str) -> str:
    """A run id from a full id or a unique prefix of one (tables print shortened ids)."""
    if not _ID_PREFIX.fullmatch(ref):
        return ref  # a full id, or not an id prefix at all: let get_run say if it exists
    from ..errors import InvalidArgument, NotFound

    hits = [r.id for r in client.search_runs(None, f"attributes.run_id LIKE '{ref}%'",
                                             max_results=2, lifecycle=None)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise NotFound(f"no run id starts with {ref!r}")
    if client.search_runs(None, f"attributes.run_id = '{ref}'", max_results=1, lifecycle=None):
        return ref
    raise InvalidArgument(f"run id prefix {ref!r} is ambiguous; give more characters")


def hidden_alias(group: click.Group, name: str, old: str) -> None:
    """``old`` still runs command ``name`` for a release, left out of the help: the CLI's
    verbs are one set (ls show get put delete restore tag untag rename)."""
    alias = copy.copy(group.commands[name])
    alias.hidden = True
    group.add_command(alias, old)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def console():
    import shutil

    from rich.console import Console

    # Piped output (make, CI logs) would otherwise be squeezed into 80 columns.
    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((160, 24)).columns, 160)
    return Console(soft_wrap=False, width=width)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--uri", "--store", "uri", envvar="CAIRN_TRACKING_URI", default=None,
              help="Store to use: a directory (default ./.cairn) or memory://NAME.")
@click.version_option(package_name="cairn")
@click.pass_context
def cli(ctx: click.Context, uri: str | None) -> None:
    """Cairn: experiment tracking, model registry and data versioning.

    \b
    Examples:
      cairn runs ls --experiment demo --order-by "metrics.accuracy DESC"
      cairn runs compare RUN_ID RUN_ID
      cairn doctor
    """
    ctx.obj = Context(uri)


# Each top-level command and the module that defines it.  A module is imported when one of
# its commands is used (or when every command is listed, as --help does): importing all
# the command modules cost every `cairn` invocation about 0.1 s.  A module with a
# ``register(cli)`` adds its commands itself; from the others the command object of the
# same name is taken.  tests/test_cli.py checks this table against what the modules define.
LAZY: dict[str, str] = {
    "experiments": "experiments", "runs": "runs", "artifacts": "artifacts",
    "doctor": "admin", "reindex": "admin", "db": "admin", "admin": "admin", "export": "export",
    "models": "models", "audit": "audit", "keys": "keys",
    "server": "server", "sync": "server", "users": "server", "tokens": "server",
    "roles": "server",
    "data": "data", "remote": "data", "lineage": "data",
    "ui": "ui", "serve": "serve", "predictions": "predictions", "predict": "predict",
    "import": "importing",
    "comments": "collab", "views": "collab", "dashboards": "collab",
    "reports": "reports",
    "monitor": "monitor", "webhooks": "webhooks", "events": "webhooks", "kpi": "kpi",
    "reproduce": "reproduce", "pipeline": "pipeline", "check": "check",
    "tier": "tier",
    "gc": "gc",
    "backup": "backup", "restore": "backup",
    "encryption": "encryption",
    "retention": "retention",
    "trash": "trash",
}
_ATTRIBUTE = {"import": "import_"}  # a command whose object is not named as it is
_loaded: set[str] = set()


def _load(module_name: str) -> None:
    if module_name in _loaded:
        return
    _loaded.add(module_name)
    import importlib

    module = importlib.import_module(f"{__package__}.{module_name}")
    before = set(_present())
    register = getattr(module, "register", None)
    if register is not None:
        register(cli)
    else:
        for name, owner in LAZY.items():
            if owner == module_name:
                cli.add_command(getattr(module, _ATTRIBUTE.get(name, name)), name)
    if module_name == "monitor":  # its subcommands live in two modules of their own
        from . import monitor_alerts, monitor_live

        monitor_live.register(module.monitor)  # feedback, live
        monitor_alerts.register(module.monitor)  # rules, status, run
    for name, command in _present().items():
        if name not in before:
            _finish(name, command)


def _present() -> dict[str, click.Command]:
    """The commands added so far, importing nothing."""
    return dict(dict.items(cast("dict[str, click.Command]", cli.commands)))


class _LazyCommands(dict):
    """``cli.commands``: a command's module is imported when the command is looked up;
    listing them all imports every module."""

    def _one(self, name: Any) -> None:
        if isinstance(name, str) and not dict.__contains__(self, name) and name in LAZY:
            _load(LAZY[name])

    def _all(self) -> list[str]:
        """Every command's name, in LAZY's order (then any other): the same whatever order
        earlier lookups imported the modules in, so --help and docs/cli.md do not change."""
        for module_name in dict.fromkeys(LAZY.values()):
            _load(module_name)
        names = [n for n in LAZY if dict.__contains__(self, n)]
        return names + [n for n in dict.keys(self) if n not in LAZY]

    def __getitem__(self, name: Any) -> Any:
        self._one(name)
        return dict.__getitem__(self, name)

    def get(self, name: Any, default: Any = None) -> Any:
        self._one(name)
        return dict.get(self, name, default)

    def __contains__(self, name: Any) -> bool:
        self._one(name)
        return dict.__contains__(self, name)

    def __iter__(self) -> Any:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def keys(self) -> Any:
        return self._all()

    def values(self) -> Any:
        return [dict.__getitem__(self, n) for n in self._all()]

    def items(self) -> Any:
        return [(n, dict.__getitem__(self, n)) for n in self._all()]


def _commands(group: click.Group, path: str = "") -> Any:
    for name, cmd in group.commands.items():
        full = f"{path} {name}".strip()
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, full)
        else:
            yield full, cmd


def _remember_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).uri = value


def _reads_only(callback: Callable) -> Callable:
    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        click.get_current_context().ensure_object(Context).must_exist = True
        return callback(*args, **kwargs)

    return wrapper


def _finish(name: str, command: click.Command) -> None:
    """Every command takes ``--store`` (``--uri``) after its name too, as it does before
    (``cairn runs ls --store DIR`` is ``cairn --store DIR runs ls``); read-only commands
    refuse a store directory that does not exist."""
    found = _commands(command, name) if isinstance(command, click.Group) else [(name, command)]
    for path, cmd in found:
        if not any("--store" in p.opts or "--uri" in p.opts for p in cmd.params):
            cmd.params.append(click.Option(
                ["--store", "--uri", "store_uri"], default=None, expose_value=False,
                callback=_remember_store, metavar="URI",
                help="The store, as `cairn --store URI` (either place works)."))
        if path in READ_ONLY and cmd.callback is not None:
            cmd.callback = _reads_only(cmd.callback)


cli.commands = _LazyCommands(cli.commands)


def main() -> None:
    cli(prog_name="cairn")


if __name__ == "__main__":  # pragma: no cover
    main()
