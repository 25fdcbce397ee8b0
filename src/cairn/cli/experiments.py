from __future__ import annotations

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option


@click.group()
def experiments() -> None:
    """List and create experiments."""


@experiments.command("ls")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, as_json: bool) -> None:
    """List experiments.

    \b
    Example:
      cairn experiments ls --json
    """
    exps = obj.client.list_experiments()
    if as_json:
        emit_json([{"id": e.id, "name": e.name, "created_at": e.created_at, "tags": dict(e.tags)}
                   for e in exps])
        return
    from rich.table import Table

    table = Table("id", "name", "created")
    for e in exps:
        table.add_row(e.id, e.name, ts(e.created_at))
    console().print(table)


@experiments.command("create")
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def create(obj, name: str, as_json: bool) -> None:
    """Create an experiment.

    \b
    Example:
      cairn experiments create fraud
    """
    e = obj.client.create_experiment(name)
    if as_json:
        emit_json({"id": e.id, "name": e.name})
    else:
        click.echo(f"Created experiment {e.name!r} with id {e.id}")
