"""`cairn monitor`: how served models are doing; first, data drift of the prediction log."""

from __future__ import annotations

from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option


@click.group()
def monitor() -> None:
    """Watch served models through their prediction log.

    MODEL_REF is models:/NAME@ALIAS (or @production, a stage) or models:/NAME/VERSION.
    --since and --until take ISO 8601 times (UTC unless they say otherwise).
    """


@monitor.command("drift")
@click.argument("model_ref")
@click.option("--window", default="1h", show_default=True, metavar="DURATION",
              help="Window length: 30s, 15m, 1h, 1d or 1w (windows start on multiples of it, UTC).")
@click.option("--since", default=None, metavar="ISO",
              help="From this time (default: 24 windows before --until).")
@click.option("--until", default=None, metavar="ISO", help="Up to this time (default: now).")
@click.option("--reference", default=None, metavar="NAME@VERSION",
              help="Compare with this data set version instead of the training data lineage finds.")
@click.option("--method", "methods", multiple=True, metavar="COLUMN=METHOD",
              help="ks, wasserstein, chisquare, jensenshannon or psi for a column (repeatable).")
@click.option("--threshold", "thresholds", multiple=True, metavar="COLUMN=VALUE",
              help="The drift threshold of a column's method (repeatable).")
@click.option("--share", default="0.5", show_default=True, metavar="F",
              help="Share of drifted columns at which a window's data set has drifted.")
@click.option("--no-store", is_flag=True,
              help="Only print: do not write the results to the monitoring run.")
@json_option
@click.pass_obj
@handle_errors
def drift(obj: Any, model_ref: str, window: str, since: str | None, until: str | None,
          reference: str | None, methods: tuple[str, ...], thresholds: tuple[str, ...],
          share: str, no_store: bool, as_json: bool) -> None:
    """Drift of each feature and of the prediction, window by window, against the data the
    version was trained on (found through lineage: its run's input with role train).

    Ended windows are stored (once each) as metrics of the version's run in experiment
    cairn-monitoring: drift.<column>, drift.<column>.drifted, drift.share. Drift found is
    not an error: the exit status is 0 either way.

    \b
    Examples:
      cairn monitor drift models:/fraud@production --window 1h
      cairn monitor drift models:/fraud/1.2.0 --since 2025-01-31 --method amount=psi --json
      cairn monitor drift models:/fraud@production --reference transactions@7 --no-store
    """
    from ..monitoring import drift_report, require

    require()
    obj.must_exist = True
    report = drift_report(obj.client, model_ref, window, since=since, until=until,
                          reference=reference, methods=list(methods),
                          thresholds=list(thresholds), share=share, store=not no_store)
    if as_json:
        emit_json(report.to_dict())
        return
    _print(report)


def _print(report: Any) -> None:
    from rich.table import Table

    out = console()
    how = "its training data, found through lineage" if report.found_by == "lineage" else "given"
    out.print(f"[bold]{report.model} {report.version}[/] against {report.reference} ({how}); "
              f"windows of {_duration(report.window)}", highlight=False)
    if report.missing_columns:
        out.print(f"not compared (the reference has no such column): "
                  f"{', '.join(report.missing_columns)}", highlight=False, markup=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    for w in report.windows:
        span = f"{w.start:%Y-%m-%d %H:%M} to {w.end:%H:%M} UTC"
        if not w.rows:
            out.print(f"\n{span}: no answered requests", highlight=False)
            continue
        judged = [c for c in w.columns if c.drifted is not None]
        drifted = sum(bool(c.drifted) for c in judged)
        verdict = "[red]data set drifted[/]" if w.drifted else "no data set drift"
        share = "" if w.share is None else f" ({w.share:.0%})"
        out.print(f"\n[bold]{span}[/]: {w.rows:,} rows, {drifted} of {len(judged)} columns "
                  f"drifted{share}: {verdict}" + (" [dim](stored)[/]" if w.stored else ""),
                  highlight=False)
        table = Table("column", "kind", "method", "score", "threshold", "drift", "missing")
        for c in w.columns:
            flag = "-" if c.drifted is None else ("[red]yes[/]" if c.drifted else "no")
            score = c.note or "-" if c.score is None else f"{c.score:.4g}"
            table.add_row(_plain(c.column), c.kind, c.method, score, f"{c.threshold:g}", flag,
                          f"{c.missing:.1%}")
        out.print(table)
    if report.run_id:
        stored = sum(w.stored for w in report.windows)
        out.print(f"\n{stored} window(s) stored in run {report.run_id} (experiment "
                  "cairn-monitoring)", highlight=False)


def _plain(text: str) -> Any:
    from rich.text import Text

    return Text(text)  # a column name is never rich markup


def _duration(td: Any) -> str:
    s = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"
