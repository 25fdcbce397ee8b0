"""`cairn monitor rules`, `cairn monitor status` and `cairn monitor run`: alert rules, where
each alert stands, and the loop that evaluates them and takes their actions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(rules)
    group.add_command(status)
    group.add_command(run)


def _alerts(obj: Any) -> Any:
    from ..monitoring.alerts import Alerts

    return Alerts(obj.client)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _text(value: str) -> Any:
    from rich.text import Text

    return Text(value)  # names and conditions are never rich markup


@click.group()
def rules() -> None:
    """Alert rules: a YAML file of conditions on live metrics, drift, errors and latency,
    each with the actions its firing takes (docs/alerts.md)."""


def _read(file: Path) -> str:
    from ..errors import InvalidArgument

    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{file} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {file}: {exc.strerror or exc}") from None


def _located(file: Path, exc: Any) -> Any:
    """The error with the file's name in front of its line and column."""
    from ..errors import InvalidArgument

    if exc.details.get("line") is not None:
        return InvalidArgument(f"{file}: {exc.message}", **exc.details)
    return exc


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@handle_errors
def rules_check(file: Path, as_json: bool) -> None:
    """Check FILE without applying it (no store is opened): for CI, before `apply`.

    \b
    Examples:
      cairn monitor rules check alerts.yaml
      cairn monitor rules check alerts.yaml --json
    """
    from ..errors import InvalidArgument
    from ..monitoring.rules import parse_rules

    try:
        found = parse_rules(_read(file))
    except InvalidArgument as exc:
        raise _located(file, exc) from None
    if as_json:
        emit_json({"file": str(file), "rules": [r.to_dict(secrets=False) for r in found]})
        return
    click.echo(f"{file}: {len(found)} rule(s), all valid"
               + (": " + ", ".join(r.name for r in found) if found else ""))


@rules.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.pass_obj
@handle_errors
def rules_apply(obj: Any, file: Path, as_json: bool) -> None:
    """Check FILE and make its rules the active ones (a new version of the rules).

    A file that does not parse is refused with the line and column of the mistake, and
    the previous rules stay active.

    \b
    Examples:
      cairn monitor rules apply alerts.yaml
      cairn monitor rules apply alerts.yaml --json
    """
    from ..errors import InvalidArgument

    text = _read(file)
    try:
        rs = _alerts(obj).apply(text)
    except InvalidArgument as exc:
        raise _located(file, exc) from None
    if as_json:
        emit_json(rs.to_dict())
        return
    click.echo(f"Applied version {rs.version} of the alert rules: {len(rs.rules)} rule(s)"
               + (": " + ", ".join(r.name for r in rs.rules) if rs.rules else ""))
    for warning in _unknown_models(obj, rs.rules):
        click.echo(f"warning: {warning}", err=True)


def _unknown_models(obj: Any, rules: Any) -> list[str]:
    """Rules on models not registered (yet): applied, but unknown until they are."""
    from ..errors import NotFound
    from ..services import registry_for

    reg = registry_for(obj.client)
    out = []
    for name in dict.fromkeys(r.model_name for r in rules):
        try:
            reg.get_registered_model(name)
        except NotFound:
            which = ", ".join(r.name for r in rules if r.model_name == name)
            out.append(f"no registered model {name!r} (yet): {which} stay unknown until "
                       "there is")
    return out


@rules.command("show")
@click.option("--version", "version", type=int, default=None, metavar="N",
              help="Show version N (default: the active rules).")
@click.option("--source", is_flag=True, help="Print the YAML as applied (secrets included).")
@json_option
@click.pass_obj
@handle_errors
def rules_show(obj: Any, version: int | None, source: bool, as_json: bool) -> None:
    """Show the active alert rules (or an earlier version); secrets are hidden.

    \b
    Examples:
      cairn monitor rules show
      cairn monitor rules show --version 3 --json
      cairn monitor rules show --source > alerts.yaml
    """
    obj.must_exist = True
    rs = _alerts(obj).ruleset(version)
    if source:
        click.echo("" if rs is None else rs.source, nl=False)
        return
    if as_json:
        emit_json(None if rs is None else rs.to_dict())
        return
    if rs is None:
        click.echo("No alert rules yet: `cairn monitor rules apply FILE` sets them.")
        return
    from rich.table import Table

    out = console()
    out.print(f"Alert rules version {rs.version}, applied by {rs.applied_by} at "
              f"{_when(rs.applied_at)}", highlight=False, markup=False)
    table = Table("rule", "model", "condition", "for", "window", "min requests", "actions")
    for r in rs.rules:
        table.add_row(_text(r.name), _text(r.model), _text(r.condition), _span(r.for_s),
                      _span(r.window_s), str(r.min_requests),
                      ", ".join(a.kind for a in r.actions) or "-")
    out.print(table)


@click.command("status")
@click.argument("model_ref", required=False)
@click.option("--live-window", default="10m", show_default=True, metavar="DURATION",
              help="With MODEL_REF: the span of the live metrics summary.")
@json_option
@click.pass_obj
@handle_errors
def status(obj: Any, model_ref: str | None, live_window: str, as_json: bool) -> None:
    """Where each alert stands: its state, the values last seen, since when it fires, the
    actions it took; with MODEL_REF (fraud or models:/fraud@production) only that model's,
    and a summary of its live metrics.

    \b
    Examples:
      cairn monitor status
      cairn monitor status models:/fraud@production --json
    """
    obj.must_exist = True
    alerts = _alerts(obj)
    rs = alerts.ruleset()
    states = alerts.states(model_ref)
    active = {(r.name, r.model) for r in rs.rules} if rs else set()
    rows = []
    for st in states:
        rule = rs.rule(st.rule) if rs else None
        rows.append({**st.to_dict(), "active_rule": (st.rule, st.model) in active,
                     "condition": rule.condition if rule else None,
                     "firing_since": st.changed_at if st.state == "firing" else None})
    taken = [a.to_dict() for a in alerts.actions(model=model_ref, limit=20)]
    never = [r for r in (rs.rules if rs else ())
             if not any(s.rule == r.name and s.model == r.model for s in states)
             and (model_ref is None or r.model_name == _name_of(model_ref))]
    live = _live(obj, model_ref, live_window) if model_ref else None
    if as_json:
        emit_json({"rules_version": rs.version if rs else None, "alerts": rows,
                   "not_evaluated": [r.name for r in never], "actions": taken,
                   "live": live})
        return
    _print_status(rows, never, taken, live)


def _name_of(ref: str) -> str:
    return ref.strip().removeprefix("models:/").partition("@")[0].partition("/")[0]


def _live(obj: Any, model_ref: str, window: str) -> dict[str, Any] | None:
    from ..errors import CairnError
    from ..monitoring.windows import parse_window

    span = parse_window(window)
    try:
        from ..monitoring.live import live_metrics

        until = dt.datetime.now(dt.timezone.utc)
        return dict(live_metrics(obj.client, _name_of(model_ref), until - span, until).to_dict())
    except (CairnError, ImportError) as exc:
        return {"error": getattr(exc, "message", str(exc))}


def _print_status(rows: list[dict[str, Any]], never: list[Any], taken: list[dict[str, Any]],
                  live: dict[str, Any] | None) -> None:
    from rich.table import Table

    out = console()
    if not rows and not never:
        out.print("No alerts: `cairn monitor rules apply FILE` sets rules, `cairn monitor run` "
                  "evaluates them.", highlight=False)
    if rows:
        table = Table("rule", "model", "state", "since", "firings", "values", "notes")
        colour = {"firing": "red", "pending": "yellow", "resolved": "green"}
        for r in rows:
            v = r["value"]
            result = v.get("result")
            values = v.get("shown") or "-"
            if result is None and v:
                values += " (unknown)"
            since = r["firing_since"] if r["state"] == "firing" else (
                r["active_since"] if r["state"] == "pending" else r["changed_at"])
            state = r["state"] + ("" if r["active_rule"] else " (rule removed)")
            c = colour.get(r["state"])
            table.add_row(_text(r["rule"]), _text(r["model"]),
                          f"[{c}]{state}[/]" if c else state, _when(since), str(r["firing"]),
                          _text(values), _text("; ".join(v.get("notes", [])) or "-"))
        out.print(table)
    for rule in never:
        out.print(f"{rule.name} on {rule.model}: not evaluated yet", highlight=False,
                  markup=False)
    if taken:
        table = Table("rule", "model", "firing", "action", "when", "result")
        for a in taken:
            result = a["result"]
            shown = "(in progress)" if result is None else ", ".join(
                f"{k}={v}" for k, v in result.items())
            table.add_row(_text(a["rule"]), _text(a["model"]), str(a["firing"]), a["kind"],
                          _when(a["claimed_at"]), _text(shown))
        out.print(table)
    if live is not None:
        if "error" in live:
            out.print(f"live metrics: {live['error']}", highlight=False, markup=False)
            return
        table = Table("live", "requests", "error rate", "p99 ms", "labelled", "metrics")
        groups = [("all", live["overall"])] + [(f"arm {k}", g) for k, g in live["by_arm"].items()] \
            + [(f"version {k}", g) for k, g in live["by_version"].items()]
        for label, g in groups:
            p99 = g["latency_p99_ms"]
            table.add_row(_text(label), str(g["requests"]), f"{g['error_rate']:.2%}",
                          "-" if p99 is None else f"{p99:.1f}", str(g["labelled"]),
                          ", ".join(f"{k}={v:.4g}" for k, v in g["metrics"].items()) or "-")
        out.print(table)


@click.command("run")
@click.option("--interval", default="30s", show_default=True, metavar="DURATION",
              help="Time between evaluations: 10s, 30s, 1m...")
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron).")
@json_option
@click.pass_obj
@handle_errors
def run(obj: Any, interval: str, once: bool, as_json: bool) -> None:
    """Evaluate the alert rules every --interval, take the actions of alerts that fire
    (rollback, canary abort or promote, notify) and send due webhooks, until stopped
    (Ctrl-C or SIGTERM: the cycle in progress finishes first).

    Two monitors may run at once: each change of state and each action happens once.
    With --json each cycle is printed as one line of JSON.

    \b
    Examples:
      cairn monitor run
      cairn monitor run --interval 10s
      cairn monitor run --once --json
    """
    import json
    import logging
    import signal
    import sys

    from ..errors import CairnError
    from ..monitoring.daemon import Cycle, Monitor
    from ..monitoring.windows import parse_window

    from ..monitoring import require

    require()  # live metrics read the prediction log (pandas, pyarrow)
    seconds = parse_window(interval).total_seconds()
    obj.must_exist = True

    def report(c: Cycle) -> None:
        if as_json:
            # One line a cycle, flushed: a log file or a pipe sees each cycle as it ends.
            click.echo(json.dumps(c.to_dict(), default=str))
            sys.stdout.flush()
            return
        for t in c.transitions:
            click.echo(f"{_when(t.at)}  {t.rule} on {t.model}: {t.from_state} -> {t.to_state}"
                       f"  ({t.value.get('shown', '')})")
        for a in c.actions:
            click.echo(f"{_when(a.claimed_at)}  {a.rule} on {a.model}, firing {a.firing}: "
                       f"{a.kind}: {a.result}")
        if c.error:
            click.echo(f"{_when(c.at)}  error: {c.error}", err=True)
        sys.stdout.flush()

    if not as_json:
        logging.getLogger("cairn.monitoring").setLevel(logging.WARNING)
    monitor = Monitor(_alerts(obj), seconds, on_cycle=report)
    if once:
        cycle = monitor.once()
        if cycle.error:
            raise CairnError(cycle.error)
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def stop(_signum: int, _frame: Any) -> None:
        monitor.stop()

    for s in previous:
        signal.signal(s, stop)
    try:
        if not as_json:
            click.echo(f"Monitoring every {_span(int(seconds))}; Ctrl-C stops.")
        monitor.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if not as_json:
        click.echo("Stopped.")
