"""`cairn audit`: the hash-chained audit log of registry (and later server) mutations."""

from __future__ import annotations

import dataclasses

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option


@click.group()
def audit() -> None:
    """Read and verify the audit log.

    \b
    Examples:
      cairn audit log --target model:fraud-detector
      cairn audit verify
    """


@audit.command("log")
@click.option("--target", default=None, help="e.g. model:fraud-detector (includes its versions).")
@click.option("--action", default=None, help="e.g. model_version.stage")
@click.option("--actor", default=None)
@click.option("-n", "--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_obj
@handle_errors
def log(obj, target: str | None, action: str | None, actor: str | None, limit: int,
        as_json: bool) -> None:
    """List audit events, newest first.

    \b
    Example:
      cairn audit log --action model.rollback --json
    """
    events = obj.client.audit_log(target, action, actor, limit)
    if as_json:
        emit_json([dataclasses.asdict(e) for e in events])
        return
    from rich.table import Table

    table = Table("#", "time", "actor", "action", "target", "change")
    for e in events:
        change = f"{_short(e.before)} -> {_short(e.after)}"
        table.add_row(str(e.seq), ts(e.time), e.actor, e.action, e.target, change)
    console().print(table)


def _short(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "", [], {}))
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@audit.command("verify")
@json_option
@click.pass_obj
@handle_errors
def verify(obj, as_json: bool) -> None:
    """Check the whole hash chain; exit status 1 naming every edited or deleted event.

    \b
    Example:
      cairn audit verify --json
    """
    report = obj.client.verify_audit_log()
    if as_json:
        emit_json({"ok": report.ok, "checked": report.checked,
                   "problems": [dataclasses.asdict(p) for p in report.problems]})
    elif report.ok:
        click.echo(f"audit log ok: {report.checked} event(s), chain intact")
    else:
        click.echo(f"audit log DAMAGED ({report.checked} event(s) checked):", err=True)
        for p in report.problems:
            click.echo(f"  {p.message}", err=True)
    if not report.ok:
        raise SystemExit(1)
