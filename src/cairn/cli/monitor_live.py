"""`cairn monitor feedback` and `cairn monitor live`: ground truth in, live quality out."""

from __future__ import annotations

from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(feedback)
    group.add_command(live)


@click.command("feedback")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "model", required=True, metavar="NAME",
              help="The registered model the labels are for.")
@json_option
@click.pass_obj
@handle_errors
def feedback(obj: Any, file: str, model: str, as_json: bool) -> None:
    """Store ground-truth labels of served predictions from FILE (Parquet, or CSV with a
    header): columns request_id and label, optionally timestamp.

    A record that does not fit is reported (its row and why) and the others are stored;
    a label sent again for a request id replaces the earlier one. Labels for request ids
    the prediction log does not have are counted by `cairn monitor live`.

    \b
    Examples:
      cairn monitor feedback labels.csv --model fraud
      cairn monitor feedback labels.parquet --model fraud --json
    """
    from ..monitoring import require
    from ..monitoring.feedback import read_file, record_feedback

    require()
    obj.must_exist = True
    result = record_feedback(obj.client, model, read_file(file))
    if as_json:
        emit_json(result.to_dict())
        return
    out = console()
    out.print(f"{result.stored} label(s) of {model} stored, {len(result.rejected)} rejected",
              highlight=False, markup=False)
    for r in result.rejected[:20]:
        out.print(f"  row {r.index}: {r.error}", highlight=False, markup=False)
    if len(result.rejected) > 20:
        out.print(f"  ... and {len(result.rejected) - 20} more (--json lists them all)",
                  highlight=False, markup=False)


@click.command("live")
@click.argument("model_ref")
@click.option("--window", default="1h", show_default=True, metavar="DURATION",
              help="Window length: 30s, 15m, 1h, 1d or 1w (windows start on multiples of it, UTC).")
@click.option("--since", default=None, metavar="ISO",
              help="From this time (default: 24 windows before --until).")
@click.option("--until", default=None, metavar="ISO", help="Up to this time (default: now).")
@click.option("--no-store", is_flag=True,
              help="Only print: do not write the results to the monitoring runs.")
@json_option
@click.pass_obj
@handle_errors
def live(obj: Any, model_ref: str, window: str, since: str | None, until: str | None,
         no_store: bool, as_json: bool) -> None:
    """Live quality of a served model: its prediction log joined with the labels sent
    back (POST /v1/feedback or `cairn monitor feedback`), window by window, per version
    and arm, against the metric each version was registered with.

    Classification: accuracy, f1, auc (when the log holds scores); regression: rmse,
    mae. Ended windows are stored (once each) as live.<metric>, live.labelled,
    live.requests, live.error_rate and train.<metric> of each version's run in experiment
    cairn-monitoring.

    \b
    Examples:
      cairn monitor live models:/fraud@production --window 1h
      cairn monitor live fraud --since 2025-01-31 --until 2025-02-01 --no-store --json
    """
    from ..monitoring import require
    from ..monitoring.live import live_report

    require()
    obj.must_exist = True
    report = live_report(obj.client, model_ref, window, since=since, until=until,
                         store=not no_store)
    if as_json:
        emit_json(report.to_dict())
        return
    _print(report)


def _print(report: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..monitoring.live import METRICS
    from .monitor import _duration

    out = console()
    out.print(f"[bold]{report.model}[/]: live quality in windows of {_duration(report.window)}",
              highlight=False)
    for version, metrics in report.train.items():
        if metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            out.print(f"registered with: {version}: {shown}", highlight=False, markup=False)
    for w in report.windows:
        live = w.live
        span = f"{w.start:%Y-%m-%d %H:%M} to {w.end:%H:%M} UTC"
        if not live.overall.requests and not live.labels:
            out.print(f"\n{span}: no requests", highlight=False)
            continue
        stored = " [dim](stored)[/]" if w.stored else ""
        out.print(f"\n[bold]{span}[/]: {live.overall.requests:,} requests, "
                  f"{live.overall.labelled:,} labelled, {live.labels:,} label(s) received, "
                  f"{live.unknown_ids:,} for unknown request ids{stored}", highlight=False)
        for note in live.notes:
            out.print(f"note: {note}", highlight=False, markup=False)
        names = [m for m in METRICS if any(m in g.metrics for g in _groups(live))]
        table = Table("group", "requests", "errors", "p99 ms", "labelled", *names)
        for label, version, g in _rows(live):
            train = report.train.get(version, {}) if version else {}
            cells = [_metric(g.metrics.get(m), train.get(m)) for m in names]
            p99 = "-" if g.latency_p99_ms is None else f"{g.latency_p99_ms:.1f}"
            table.add_row(Text(label), f"{g.requests:,}", f"{g.error_rate:.1%}", p99,
                          f"{g.labelled:,}", *cells)
        out.print(table)
    if report.run_ids:
        count = sum(len(w.stored) for w in report.windows)
        out.print(f"\n{count} window(s) stored in the monitoring runs of "
                  f"{', '.join(sorted(report.run_ids))} (experiment cairn-monitoring)",
                  highlight=False)


def _groups(live: Any) -> list[Any]:
    return [live.overall, *live.by_version.values(), *live.by_arm.values()]


def _rows(live: Any) -> list[tuple[str, str | None, Any]]:
    rows: list[tuple[str, str | None, Any]] = [("all", None, live.overall)]
    rows += [(f"version {v}", v, g) for v, g in live.by_version.items()]
    rows += [(f"arm {a}", None, g) for a, g in live.by_arm.items()]
    return rows


def _metric(value: float | None, train: float | None) -> str:
    if value is None:
        return "-"
    if train is None:
        return f"{value:.4g}"
    return f"{value:.4g} (train {train:.4g}, {value - train:+.4g})"
