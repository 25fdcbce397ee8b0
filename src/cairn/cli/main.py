"""The `cairn` command: a thin shell over the library.

Each command calls one library function, prints with rich (or JSON with
``--json``), and turns a CairnError into a one-line message and exit code 1.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from ..errors import CairnError


class Context:
    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from ..client import Client

            self._client = Client(self.uri)
        return self._client


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def handle_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CairnError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper


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


def _register() -> None:
    from . import admin, artifacts, experiments, runs

    cli.add_command(experiments.experiments)
    cli.add_command(runs.runs)
    cli.add_command(artifacts.artifacts)
    cli.add_command(admin.doctor)
    cli.add_command(admin.reindex)
    cli.add_command(admin.db)


_register()


def main() -> None:
    cli(prog_name="cairn")


if __name__ == "__main__":  # pragma: no cover
    main()
