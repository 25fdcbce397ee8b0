"""`cairn reports`: Markdown documents with live panels, and their export as one HTML file
(a thin shell over :mod:`cairn.collab`)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option


def _collab(obj: Any, admin: bool = False) -> Any:
    from ..collab import collab_for

    return collab_for(obj.client, admin=admin)


def report_json(r: Any) -> dict[str, Any]:
    from ..collab.reports import public_panel

    return {**dataclasses.asdict(r), "panels": [public_panel(p) for p in r.panels],
            "experiment_ids": list(r.experiment_ids), "models": list(r.models),
            "author": r.author, "url": r.url}


@click.group()
def reports() -> None:
    """Reports: Markdown with live panels, shared as one self-contained HTML file.

    A panel is a fenced block ```cairn-panel holding JSON: {"type": "metric", "run": ID,
    "key": "loss"}, {"type": "compare", "runs": [ID, ...], "columns": ["metrics.loss",
    "params.lr"]} or {"type": "stages", "model": NAME}.

    \b
    Examples:
      cairn reports put weekly report.md
      cairn reports ls
      cairn reports export weekly -o weekly.html
    """


@reports.command("ls")
@json_option
@click.pass_obj
@handle_errors
def reports_ls(obj, as_json: bool) -> None:
    """List reports.

    \b
    Example:
      cairn reports ls --json
    """
    found = _collab(obj).reports()
    if as_json:
        emit_json([report_json(r) for r in found])
        return
    from rich.table import Table

    table = Table("name", "author", "panels", "updated", "by")
    for r in found:
        table.add_row(r.name, r.author, str(len(r.panels)), ts(r.updated_at), r.updated_by)
    console().print(table)


def _what(p: dict[str, Any]) -> str:
    if p["type"] == "metric":
        return f"{p['key']} of run {p['run']}"
    if p["type"] == "compare":
        return f"{len(p['runs'])} runs: {', '.join(p['columns'])}"
    return f"model {p['model']}"


@reports.command("show")
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def reports_show(obj, name: str, as_json: bool) -> None:
    """Show a report's Markdown, its panels and the URL that opens it in the web UI.

    \b
    Example:
      cairn reports show weekly
    """
    r = _collab(obj).get_report(name)
    if as_json:
        emit_json(report_json(r))
        return
    click.echo(f"{r.name} (by {r.author}, updated by {r.updated_by} at {ts(r.updated_at)})")
    click.echo(r.body)
    for i, p in enumerate(r.panels, 1):
        click.echo(f"panel {i}: {p['type']} {p['title'] or ''} ({_what(p)})")
    click.echo(f"open: {r.url}")


@reports.command("put")
@click.argument("name")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--body", default=None, help="The Markdown itself (instead of FILE).")
@click.option("--admin", is_flag=True, help="On a local store: replace another user's report.")
@json_option
@click.pass_obj
@handle_errors
def reports_put(obj, name: str, file: str | None, body: str | None, admin: bool,
                as_json: bool) -> None:
    """Save (or replace) a report from FILE (Markdown; - reads stdin) or --body.

    Every run and model a panel names must exist; a bad panel is refused, naming it.

    \b
    Examples:
      cairn reports put weekly report.md
      cairn reports put weekly --body "# Weekly"
    """
    if (file is None) == (body is None):
        raise click.UsageError("give a FILE or --body (one of them)")
    if body is None:
        body = sys.stdin.read() if file == "-" else Path(str(file)).read_text(encoding="utf-8")
    r = _collab(obj, admin).save_report(name, body)
    if as_json:
        emit_json(report_json(r))
    else:
        click.echo(f"Saved report {r.name!r} ({len(r.panels)} panels): open {r.url}")


@reports.command("delete")
@click.argument("name")
@click.option("--admin", is_flag=True, help="On a local store: delete another user's report.")
@json_option
@click.pass_obj
@handle_errors
def reports_delete(obj, name: str, admin: bool, as_json: bool) -> None:
    """Delete a report.

    \b
    Example:
      cairn reports delete weekly
    """
    _collab(obj, admin).delete_report(name)
    if as_json:
        emit_json({"deleted": name})
    else:
        click.echo(f"Deleted report {name!r}")


@reports.command("export")
@click.argument("name")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write it (default: NAME.html; - for standard output).")
@json_option
@click.pass_obj
@handle_errors
def reports_export(obj, name: str, output: str | None, as_json: bool) -> None:
    """Export a report as one self-contained HTML file, its panels' data drawn now.

    The file holds the data, CSS and script; it opens from disk with no server and
    makes no network request: share it outside the team.

    \b
    Example:
      cairn reports export weekly -o weekly.html
    """
    page = _collab(obj).export_report(name)
    if output == "-":
        click.echo(page, nl=False)
        return
    path = Path(output or f"{name}.html")
    path.write_text(page, encoding="utf-8")
    size = len(page.encode("utf-8"))
    if as_json:
        emit_json({"name": name, "path": str(path), "bytes": size})
    else:
        click.echo(f"Exported report {name!r} to {path} ({size} bytes)")
