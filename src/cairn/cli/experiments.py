from __future__ import annotations

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option


@click.group()
def experiments() -> None:
    """List, create, rename, delete and restore experiments."""


@experiments.command("ls")
@click.option("--all", "-a", "all_", is_flag=True, help="Deleted experiments too.")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, all_: bool, as_json: bool) -> None:
    """List experiments (deleted ones with --all).

    \b
    Example:
      cairn experiments ls --json
    """
    exps = [e for e in obj.client.list_experiments() if all_ or e.lifecycle == "active"]
    if as_json:
        emit_json([{"id": e.id, "name": e.name, "created_at": e.created_at,
                    "lifecycle": e.lifecycle, "tags": dict(e.tags)} for e in exps])
        return
    from rich.table import Table

    table = Table("id", "name", "created", *(["lifecycle"] if all_ else []))
    for e in exps:
        table.add_row(e.id, e.name, ts(e.created_at), *([e.lifecycle] if all_ else []))
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


def _experiment(client, ref: str):
    """An experiment by name, else by id."""
    from ..errors import NotFound

    exp = client.get_experiment_by_name(ref)
    if exp is not None:
        return exp
    try:
        return client.get_experiment(ref)
    except NotFound:
        raise NotFound(f"no experiment named or with id {ref!r}") from None


def _done(e, what: str, as_json: bool) -> None:
    if as_json:
        emit_json({"id": e.id, "name": e.name, "lifecycle": e.lifecycle})
    else:
        click.echo(f"experiment {e.name!r} ({e.id}): {what}")


@experiments.command("rename")
@click.argument("experiment")
@click.argument("new_name")
@json_option
@click.pass_obj
@handle_errors
def rename(obj, experiment: str, new_name: str, as_json: bool) -> None:
    """Rename an experiment (EXPERIMENT: its name or id); its runs stay in it.

    \b
    Example:
      cairn experiments rename fraud fraud-2026
    """
    client = obj.client
    e = client.rename_experiment(_experiment(client, experiment).id, new_name)
    _done(e, "renamed", as_json)


@experiments.command("delete")
@click.argument("experiment")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, experiment: str, as_json: bool) -> None:
    """Move an experiment and its runs to the trash (hidden, kept, undone by `restore`).

    They stay restorable until the trash is emptied (`cairn trash empty`, or `cairn gc`
    after CAIRN_TRASH_DAYS). On a team server this needs the admin role on the experiment.

    \b
    Example:
      cairn experiments delete fraud
    """
    client = obj.client
    e = client.delete_experiment(_experiment(client, experiment).id)
    _done(e, "deleted with its runs (restore with `cairn experiments restore`)", as_json)


@experiments.command("restore")
@click.argument("experiment")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, experiment: str, as_json: bool) -> None:
    """Restore a deleted experiment and its runs.

    \b
    Example:
      cairn experiments restore fraud
    """
    client = obj.client
    e = client.restore_experiment(_experiment(client, experiment).id)
    _done(e, "restored with its runs", as_json)
