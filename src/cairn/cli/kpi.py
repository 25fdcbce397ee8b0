"""`cairn kpi`: governance KPIs of the registry (cairn.monitoring.kpi)."""

from __future__ import annotations

from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option


@click.command("kpi")
@click.option("--model", default=None, metavar="NAME", help="Only this model (default: all).")
@click.option("--since", default=None, metavar="ISO",
              help="Releases and rollbacks from this time (default: from the first release).")
@click.option("--until", default=None, metavar="ISO",
              help="Up to this time (default: now); later events are not read.")
@click.option("--settle", default="24h", show_default=True, metavar="DURATION",
              help="How long a release must go without a rollback to count as a success.")
@click.option("-e", "--experiment", "experiments", multiple=True, metavar="NAME",
              help="The reproducibility rate of these experiments' runs only (repeatable).")
@json_option
@click.pass_obj
@handle_errors
def kpi(obj: Any, model: str | None, since: str | None, until: str | None, settle: str,
        experiments: tuple[str, ...], as_json: bool) -> None:
    """Deployment success rate, rollback frequency and mean time to rollback, and audit
    compliance (approval, signature, lineage to data) of the versions in production.

    A release is a version going live in the stage Production, under @champion, or on
    a `cairn serve` deployment's primary arm; it failed when rolled back within --settle.
    The reproducibility rate is the share of runs `cairn reproduce` tried whose latest
    attempt reproduced them. --since and --until take ISO 8601 times (UTC unless they say
    otherwise). docs/kpi.md defines each number.

    \b
    Examples:
      cairn kpi
      cairn kpi --model fraud --since 2025-01-01 --settle 12h --json
      cairn kpi -e quickstart
    """
    from ..monitoring.kpi import kpis

    obj.must_exist = True
    result = kpis(obj.client, model=model, since=since, until=until, settle=settle,
                  experiments=list(experiments) or None)
    if as_json:
        emit_json(result.to_dict())
        return
    _print(result)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _secs(s: float | None) -> str:
    from .format import duration

    return "-" if s is None else duration(round(s * 1000))


def _print(k: Any) -> None:
    from rich.table import Table

    from .format import ts

    out = console()
    since = "the first release" if k.since is None else ts(k.since)
    out.print(f"From {since} to {ts(k.until)}; a release settles after "
              f"{_secs(k.settle_s)}", highlight=False)
    table = Table("model", "deployments", "success", "failed", "pending", "rollbacks",
                  "per week", "mean time to rollback", "in production", "approved", "signed",
                  "lineage", "compliant", "reproduced")
    rows = [*k.models.items(), ("all", k.overall)] if len(k.models) != 1 else \
        list(k.models.items())
    for name, s in rows:
        table.add_row(name, str(s.deployments), _pct(s.success_rate), str(s.failed),
                      str(s.pending), str(s.rollbacks),
                      "-" if s.rollbacks_per_week is None else f"{s.rollbacks_per_week:.2f}",
                      _secs(s.mean_time_to_rollback_s), str(s.production_versions),
                      _pct(s.approval_rate), _pct(s.signature_rate), _pct(s.lineage_rate),
                      _pct(s.compliance_rate), _pct(s.reproducibility_rate))
    out.print(table)
    gaps = [c for c in k.compliance if not c.ok]
    if gaps:
        out.print("[bold]Not compliant:[/]")
        for c in gaps:
            held = ", ".join(c.held_by)
            out.print(f"  {c.model} {c.version} ({held}): {'; '.join(c.lacks)}",
                      highlight=False, markup=False)
    for note in k.notes:
        out.print(note, highlight=False, markup=False)


def register(group: click.Group) -> None:
    """Add ``cairn kpi`` to ``group``."""
    group.add_command(kpi)
