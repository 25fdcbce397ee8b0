"""``cairn trash``: what was deleted and can be restored, and emptying it for good."""

from __future__ import annotations

import sys
from typing import Any

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option

_RESTORE = {
    "run": "cairn runs restore {id}",
    "experiment": "cairn experiments restore {id}",
    "dataset_version": "cairn data restore {id}",
    "model_version": "cairn models restore {name} {version}",
}


def _restore_hint(item: Any) -> str:
    name, _, version = item.identifier.rpartition("/")
    return _RESTORE[item.kind].format(id=item.identifier, name=name, version=version)


@click.group()
def trash() -> None:
    """List what is in the trash, and empty it for good.

    Deleted runs, experiments, data set versions and model versions wait in the trash,
    restorable, until it is emptied: `cairn trash empty`, or `cairn gc` for what has been
    there longer than CAIRN_TRASH_DAYS (30).

    \b
    Examples:
      cairn trash ls
      cairn trash empty --older-than 7 --dry-run
    """


@trash.command("ls")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, as_json: bool) -> None:
    """List what is in the trash, oldest deletion first, with how to restore each.

    \b
    Example:
      cairn trash ls --json
    """
    items = obj.client.list_trash()
    if as_json:
        emit_json([{**i.to_json(), "restore": _restore_hint(i)} for i in items])
        return
    if not items:
        click.echo("the trash is empty")
        return
    from rich.table import Table

    table = Table("kind", "identifier", "name", "deleted", "by", "restore with")
    for i in items:
        table.add_row(i.kind, i.identifier, i.name if i.name != i.identifier else "",
                      ts(i.deleted_at) if i.deleted_at is not None else "unknown",
                      i.deleted_by or "", _restore_hint(i))
    console().print(table)


@trash.command("empty")
@click.option("--older-than", "older_than", type=click.FloatRange(0, 1e6), default=None,
              metavar="DAYS", help="Only what was deleted at least DAYS ago (default: "
                                   "everything in the trash).")
@click.option("--dry-run", is_flag=True, help="Only say what would be purged.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
@handle_errors
def empty(obj, older_than: float | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Purge for good what is in the trash (audited); nothing purged can be restored.

    Kept, and said why: a run that a live registered model version was registered from
    (and its experiment), and a data set version that is an input of one. The files of
    what is purged become garbage for `cairn gc`.

    \b
    Examples:
      cairn trash empty --older-than 30 --dry-run
      cairn trash empty --yes
    """
    from ..errors import InvalidArgument

    client = obj.client
    if not dry_run and not yes:
        plan = client.empty_trash(older_than, dry_run=True)
        if not plan.purged:
            _report(plan, as_json)
            return
        if not sys.stdin.isatty():
            raise InvalidArgument(f"this would purge {len(plan.purged)} item(s) for good; "
                                  "confirm with --yes (or look first with --dry-run)")
        click.confirm(f"Purge {len(plan.purged)} item(s) from the trash for good?", abort=True,
                      err=True)
    _report(client.empty_trash(older_than, dry_run=dry_run, progress=None), as_json)


def _report(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    verb = "would purge" if report.dry_run else "purged"
    click.echo(f"{verb} {len(report.purged)} item(s)"
               + (f" ({report.runs_in_experiments} run(s) with their experiments)"
                  if report.runs_in_experiments else ""))
    for i in report.purged:
        click.echo(f"  {i.kind} {i.identifier}")
    for i, why in report.kept:
        click.echo(f"kept {i.kind} {i.identifier}: {why}")
