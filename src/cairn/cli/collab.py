"""`cairn comments` and `cairn views`: discussion and saved runs-table views (a thin shell
over :mod:`cairn.collab`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option, resolve_run

# TYPE:ID as the commands spell a target; the short forms are what people type.
KINDS = {"run": "run", "experiment": "experiment", "exp": "experiment",
         "model": "model_version", "model_version": "model_version",
         "dataset": "dataset_version", "data": "dataset_version",
         "dataset_version": "dataset_version"}
TARGET_HELP = ("run:RUN_ID, experiment:NAME (or id), model:NAME@VERSION or "
               "dataset:NAME@VERSION")


def _collab(obj: Any, admin: bool = False) -> Any:
    from ..collab import collab_for

    return collab_for(obj.client, admin=admin)


def _experiment(client: Any, ref: str) -> str:
    """An experiment id from its name or id."""
    found = client.get_experiment_by_name(ref)
    return found.id if found is not None else client.get_experiment(ref).id


def _target(client: Any, text: str) -> tuple[str, str]:
    kind, sep, ident = text.partition(":")
    if not sep or kind not in KINDS or not ident:
        raise click.BadParameter(f"{text!r}: a target is {TARGET_HELP}", param_hint="TARGET")
    kind = KINDS[kind]
    if kind == "run":
        ident = resolve_run(client, ident)
    elif kind == "experiment":
        ident = _experiment(client, ident)
    return kind, ident


def _body(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


def comment_json(c: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(c), "deleted": c.deleted}


def _print_thread(comments: list[Any]) -> None:
    children: dict[str | None, list[Any]] = {}
    for c in comments:
        children.setdefault(c.parent_id, []).append(c)
    known = {c.id for c in comments}
    out = console()

    def show(c: Any, depth: int) -> None:
        pad = "  " * depth
        edited = f" (edited {c.edits}x)" if c.edits else ""
        head = f"{pad}[bold]{c.author}[/bold] {ts(c.created_at)}{edited}  [dim]{c.id}[/dim]"
        out.print(head)
        text = "[deleted]" if c.deleted else c.body
        for line in text.splitlines() or [""]:
            out.print(f"{pad}  {line}", markup=False, highlight=False)
        for child in children.get(c.id, []):
            show(child, depth + 1)

    for c in comments:
        if c.parent_id is None or c.parent_id not in known:
            show(c, 0)


@click.group()
def comments() -> None:
    """Comments on runs, experiments, model versions and data set versions.

    Bodies are Markdown; @name mentions a user (listed by `cairn comments ls --mentions`).

    \b
    Examples:
      cairn comments put run:3f2a "Loss plateaus after step 300, @bob?"
      cairn comments put model:fraud@1.2.0 "Ship it" --reply-to COMMENT_ID
      cairn comments ls experiment:fraud
      cairn comments ls --mentions
    """


@comments.command("ls")
@click.argument("target", required=False)
@click.option("--mentions", is_flag=True, help="Comments that mention you (or --user).")
@click.option("--user", default=None, help="With --mentions: whose mentions.")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, target: str | None, mentions: bool, user: str | None, as_json: bool) -> None:
    """List the comments on TARGET as threads, or those that mention you.

    TARGET is run:RUN_ID, experiment:NAME, model:NAME@VERSION or dataset:NAME@VERSION.

    \b
    Examples:
      cairn comments ls run:3f2a
      cairn comments ls --mentions --json
    """
    if mentions == (target is not None):
        raise click.UsageError("give a TARGET, or --mentions (not both)")
    collab = _collab(obj)
    if mentions:
        found = collab.mentions(user)
    else:
        found = collab.comments(*_target(obj.client, target or ""))
    if as_json:
        emit_json([comment_json(c) for c in found])
    elif mentions:
        for c in found:
            console().print(f"[bold]{c.author}[/bold] on {c.target} {ts(c.created_at)}  "
                            f"[dim]{c.id}[/dim]")
            click.echo("  " + "\n  ".join(c.body.splitlines()))
    elif not found:
        click.echo("No comments yet.")
    else:
        _print_thread(found)


@comments.command("show")
@click.argument("comment_id")
@json_option
@click.pass_obj
@handle_errors
def show(obj, comment_id: str, as_json: bool) -> None:
    """Show one comment with its edit history.

    \b
    Example:
      cairn comments show 0f9c2e7d4b3a4c1e9d8f7a6b5c4d3e2f
    """
    collab = _collab(obj)
    c = collab.get_comment(comment_id)
    history = collab.comment_history(comment_id)
    if as_json:
        emit_json({**comment_json(c), "history": [dataclasses.asdict(e) for e in history]})
        return
    click.echo(f"{c.author} on {c.target} at {ts(c.created_at)}"
               + (f", replying to {c.parent_id}" if c.parent_id else ""))
    click.echo("[deleted]" if c.deleted else c.body)
    if c.mentions:
        click.echo("mentions: " + ", ".join(c.mentions))
    for e in history:
        click.echo(f"--- before edit {e.seq} by {e.editor} at {ts(e.edited_at)}:")
        click.echo(e.body)


@comments.command("put")
@click.argument("where")
@click.argument("body")
@click.option("--reply-to", default=None, metavar="COMMENT_ID", help="Reply to this comment.")
@click.option("--admin", is_flag=True,
              help="On a local store: edit another user's comment (a server decides by role).")
@json_option
@click.pass_obj
@handle_errors
def put(obj, where: str, body: str, reply_to: str | None, admin: bool, as_json: bool) -> None:
    """Comment on WHERE (a target), or edit comment WHERE (an id).  BODY - reads stdin.

    A target is run:RUN_ID, experiment:NAME, model:NAME@VERSION or dataset:NAME@VERSION;
    an edit keeps the previous body in the comment's history.

    \b
    Examples:
      cairn comments put run:3f2a "Loss plateaus after step 300, @bob?"
      cairn comments put dataset:transactions@3 - < review.md
      cairn comments put 0f9c2e7d4b3a4c1e9d8f7a6b5c4d3e2f "fixed a typo"
    """
    collab = _collab(obj, admin)
    text = _body(body)
    if ":" in where:
        c = collab.add_comment(*_target(obj.client, where), text, reply_to)
        verb = "Commented"
    else:
        if reply_to is not None:
            raise click.UsageError("--reply-to goes with a TARGET, not with a comment id")
        c = collab.edit_comment(where, text)
        verb = "Edited"
    if as_json:
        emit_json(comment_json(c))
    else:
        click.echo(f"{verb} {c.target}: comment {c.id}"
                   + (f" (mentions {', '.join(c.mentions)})" if c.mentions else ""))


@comments.command("delete")
@click.argument("comment_id")
@click.option("--admin", is_flag=True, help="On a local store: delete another user's comment.")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, comment_id: str, admin: bool, as_json: bool) -> None:
    """Delete a comment (its replies stay; `cairn comments restore` brings it back).

    \b
    Example:
      cairn comments delete 0f9c2e7d4b3a4c1e9d8f7a6b5c4d3e2f
    """
    c = _collab(obj, admin).delete_comment(comment_id)
    if as_json:
        emit_json(comment_json(c))
    else:
        click.echo(f"Deleted comment {c.id} on {c.target}")


@comments.command("restore")
@click.argument("comment_id")
@click.option("--admin", is_flag=True, help="On a local store: restore another user's comment.")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, comment_id: str, admin: bool, as_json: bool) -> None:
    """Undo the deletion of a comment.

    \b
    Example:
      cairn comments restore 0f9c2e7d4b3a4c1e9d8f7a6b5c4d3e2f
    """
    c = _collab(obj, admin).restore_comment(comment_id)
    if as_json:
        emit_json(comment_json(c))
    else:
        click.echo(f"Restored comment {c.id} on {c.target}")


# -- saved views -------------------------------------------------------------------------
def view_json(v: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(v), "url": v.url}


experiment_option = click.option("-e", "--experiment", "experiment", required=True,
                                 help="The experiment (name or id).")


@click.group()
def views() -> None:
    """Saved views of an experiment's runs table (filter, columns, grouping, sort).

    A view opens in the web UI at the URL `cairn views show` prints.

    \b
    Examples:
      cairn views put -e fraud best --filter "metrics.auc > 0.9" --sort metrics.auc:DESC
      cairn views ls -e fraud
      cairn views show -e fraud best
    """


@views.command("ls")
@experiment_option
@json_option
@click.pass_obj
@handle_errors
def views_ls(obj, experiment: str, as_json: bool) -> None:
    """List an experiment's saved views.

    \b
    Example:
      cairn views ls -e fraud
    """
    found = _collab(obj).views(_experiment(obj.client, experiment))
    if as_json:
        emit_json([view_json(v) for v in found])
        return
    from rich.table import Table

    table = Table("name", "filter", "columns", "by", "updated")
    for v in found:
        table.add_row(v.name, v.state.get("filter", ""), str(len(v.state.get("columns", []))),
                      v.updated_by, ts(v.updated_at))
    console().print(table)


@views.command("show")
@experiment_option
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def views_show(obj, experiment: str, name: str, as_json: bool) -> None:
    """Show a saved view and the URL that opens it in the web UI.

    \b
    Example:
      cairn views show -e fraud best
    """
    v = _collab(obj).get_view(_experiment(obj.client, experiment), name)
    if as_json:
        emit_json(view_json(v))
        return
    click.echo(f"{v.name} (saved by {v.created_by}, updated by {v.updated_by} at "
               f"{ts(v.updated_at)})")
    click.echo(json.dumps(v.state, indent=2))
    click.echo(f"open: {v.url}")


def _sort(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    col, _, direction = text.rpartition(":")
    if not col or direction.upper() not in ("ASC", "DESC"):
        raise click.BadParameter(f"{text!r}: use COLUMN:ASC or COLUMN:DESC", param_hint="--sort")
    return {"id": col, "dir": direction.upper()}


@views.command("put")
@experiment_option
@click.argument("name")
@click.option("--filter", "filter_", default="", help="The search filter.")
@click.option("--columns", default="", help="Columns, comma-separated (metrics.loss,params.lr).")
@click.option("--group", default="", help="A param to group rows by.")
@click.option("--sort", default=None, help="COLUMN:ASC or COLUMN:DESC.")
@click.option("--state", "state_json", default=None,
              help="The whole state as JSON (instead of the options above).")
@click.option("--admin", is_flag=True, help="On a local store: replace another user's view.")
@json_option
@click.pass_obj
@handle_errors
def views_put(obj, experiment: str, name: str, filter_: str, columns: str, group: str,
              sort: str | None, state_json: str | None, admin: bool, as_json: bool) -> None:
    """Save (or replace) a view of an experiment's runs table.

    \b
    Example:
      cairn views put -e fraud best --filter "metrics.auc > 0.9" \\
          --columns metrics.auc,params.lr --group lr --sort metrics.auc:DESC
    """
    if state_json is not None:
        try:
            state = json.loads(state_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--state") from None
    else:
        state = {"filter": filter_, "columns": [c for c in columns.split(",") if c],
                 "group": group, "sort": _sort(sort)}
    v = _collab(obj, admin).save_view(_experiment(obj.client, experiment), name, state)
    if as_json:
        emit_json(view_json(v))
    else:
        click.echo(f"Saved view {v.name!r}: open {v.url}")


@views.command("delete")
@experiment_option
@click.argument("name")
@click.option("--admin", is_flag=True, help="On a local store: delete another user's view.")
@json_option
@click.pass_obj
@handle_errors
def views_delete(obj, experiment: str, name: str, admin: bool, as_json: bool) -> None:
    """Delete a saved view.

    \b
    Example:
      cairn views delete -e fraud best
    """
    exp = _experiment(obj.client, experiment)
    _collab(obj, admin).delete_view(exp, name)
    if as_json:
        emit_json({"deleted": name, "experiment_id": exp})
    else:
        click.echo(f"Deleted view {name!r}")


# -- dashboards --------------------------------------------------------------------------
def dashboard_json(d: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(d), "panels": list(d.panels), "url": d.url}


@click.group()
def dashboards() -> None:
    """Dashboards: named pages of charts and tables over saved queries.

    Panel kinds: line, scatter, parallel, table, significance.

    \b
    Examples:
      cairn dashboards put weekly --panel "line fraud metrics.loss" \\
          --panel "scatter fraud params.lr metrics.auc view=best" \\
          --panel "significance fraud metrics.auc across=seed,fold"
      cairn dashboards ls
      cairn dashboards show weekly
    """


def _panel(client: Any, text: str) -> dict[str, Any]:
    """``KIND EXPERIMENT COLUMN... [view=NAME] [filter=TEXT] [limit=N] [title=TEXT]
    [across=P1,P2]``."""
    import shlex

    words = shlex.split(text)
    if len(words) < 3:
        raise click.BadParameter(f"{text!r}: a panel is KIND EXPERIMENT COLUMN... "
                                 "[view=NAME] [filter=TEXT] [limit=N] [title=TEXT] "
                                 "[across=P1,P2]", param_hint="--panel")
    panel: dict[str, Any] = {"kind": words[0], "experiment_id": _experiment(client, words[1]),
                             "columns": []}
    for w in words[2:]:
        key, sep, value = w.partition("=")
        if sep and key in ("view", "filter", "title"):
            panel[key] = value
        elif sep and key == "across":
            panel["across"] = [a.strip() for a in value.split(",") if a.strip()]
        elif sep and key == "limit":
            if not value.isdigit():
                raise click.BadParameter(f"limit={value!r} is not a number", param_hint="--panel")
            panel["limit"] = int(value)
        else:
            panel["columns"].append(w)
    return panel


@dashboards.command("ls")
@json_option
@click.pass_obj
@handle_errors
def dashboards_ls(obj, as_json: bool) -> None:
    """List dashboards.

    \b
    Example:
      cairn dashboards ls --json
    """
    found = _collab(obj).dashboards()
    if as_json:
        emit_json([dashboard_json(d) for d in found])
        return
    from rich.table import Table

    table = Table("name", "panels", "description", "by", "updated")
    for d in found:
        table.add_row(d.name, str(len(d.panels)), d.description, d.updated_by, ts(d.updated_at))
    console().print(table)


@dashboards.command("show")
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def dashboards_show(obj, name: str, as_json: bool) -> None:
    """Show a dashboard's panels and the URL that opens it in the web UI.

    \b
    Example:
      cairn dashboards show weekly
    """
    d = _collab(obj).get_dashboard(name)
    if as_json:
        emit_json(dashboard_json(d))
        return
    click.echo(f"{d.name} (saved by {d.created_by}, updated at {ts(d.updated_at)})")
    if d.description:
        click.echo(d.description)
    for i, p in enumerate(d.panels, 1):
        query = f"view {p['view']!r}" if p["view"] else (f"filter {p['filter']!r}"
                                                          if p["filter"] else "all runs")
        click.echo(f"{i}. {p['kind']} {p['title'] or ''} of experiment {p['experiment_id']} "
                   f"({query}, {p['limit']} runs): {', '.join(p['columns'])}")
    click.echo(f"open: {d.url}")


@dashboards.command("put")
@click.argument("name")
@click.option("--panel", "panels", multiple=True,
              help="KIND EXPERIMENT COLUMN... [view=NAME] [filter=TEXT] [limit=N] "
                   "[title=TEXT]; repeat for more panels.")
@click.option("--panels-json", default=None, help="The panels as a JSON list (instead).")
@click.option("--description", default="", help="What the dashboard is for.")
@click.option("--admin", is_flag=True, help="On a local store: replace another user's dashboard.")
@json_option
@click.pass_obj
@handle_errors
def dashboards_put(obj, name: str, panels: tuple[str, ...], panels_json: str | None,
                   description: str, admin: bool, as_json: bool) -> None:
    """Save (or replace) a dashboard.

    KIND is line (metric histories), scatter (x then y), parallel or table; EXPERIMENT a
    name or id; COLUMNs metrics.NAME, params.NAME or tags.NAME.

    \b
    Example:
      cairn dashboards put weekly --panel "line fraud metrics.loss limit=5" \\
          --panel "table fraud metrics.auc params.lr filter='metrics.auc > 0.8'"
    """
    if panels_json is not None:
        try:
            found = json.loads(panels_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--panels-json") from None
    else:
        found = [_panel(obj.client, p) for p in panels]
    d = _collab(obj, admin).save_dashboard(name, found, description)
    if as_json:
        emit_json(dashboard_json(d))
    else:
        click.echo(f"Saved dashboard {d.name!r} ({len(d.panels)} panels): open {d.url}")


@dashboards.command("delete")
@click.argument("name")
@click.option("--admin", is_flag=True, help="On a local store: delete another user's dashboard.")
@json_option
@click.pass_obj
@handle_errors
def dashboards_delete(obj, name: str, admin: bool, as_json: bool) -> None:
    """Delete a dashboard.

    \b
    Example:
      cairn dashboards delete weekly
    """
    _collab(obj, admin).delete_dashboard(name)
    if as_json:
        emit_json({"deleted": name})
    else:
        click.echo(f"Deleted dashboard {name!r}")
