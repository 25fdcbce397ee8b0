"""`cairn check`: a CI gate for promotions (cairn.gate).

Exit codes: 0 every check passed, 1 a check failed, 2 the gate could not be evaluated
(bad usage, a bad rule, an unknown model, an unreadable store): CI tells a rejected
candidate from a broken gate.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import CairnError
from .main import console, emit_json

USAGE_ERROR = 2


@click.command("check")
@click.argument("candidate")
@click.option("--against", default=None, metavar="REF",
              help="The baseline: @production (default), @ALIAS, a stage name, or a full "
                   "reference such as models:/NAME/1.0.0.")
@click.option("--metric", "metrics", multiple=True, metavar="RULE",
              help="A metric rule, e.g. \"val_auc >= baseline - 0.005\" (repeatable).")
@click.option("--significance", type=float, default=None, metavar="ALPHA",
              help="With 2+ seed runs a side, a metric rule also needs a one-sided test "
                   "at this level (e.g. 0.05).")
@click.option("--across", "across", multiple=True, metavar="PARAM",
              help="The params that tell seed runs apart (default: seed; repeatable).")
@click.option("--test", "test", type=click.Choice(["welch", "mann-whitney"]), default=None,
              help="The significance test (default: welch).")
@click.option("--require", "require", multiple=True, metavar="LIST",
              help="Comma-separated: approval, signature, lineage (repeatable).")
@click.option("--require-baseline", is_flag=True,
              help="Fail when there is no baseline (else relative rules are skipped).")
@click.option("--require-significance", is_flag=True,
              help="Fail a metric rule whose significance test cannot run (one run a side).")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="A YAML rules file (metrics, require, significance ...); flags add to it.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]),
              default="table", show_default=True, help="How to print the result.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE",
              help="Write the report (Markdown, or JSON with --json) to FILE; stdout gets the "
                   "table.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def check(obj: Any, candidate: str, against: str | None, metrics: tuple[str, ...],
          significance: float | None, across: tuple[str, ...], test: str | None,
          require: tuple[str, ...], require_baseline: bool, require_significance: bool,
          rules_file: Path | None, fmt: str, output: Path | None, as_json: bool) -> None:
    """Gate a candidate model version against the baseline (production) in CI.

    Compares CANDIDATE (models:/NAME@ALIAS, NAME/1.2.0, NAME@staging) with the version
    --against names on metric rules (METRIC OP EXPR, EXPR using numbers and `baseline`,
    the baseline's value of the metric), a significance test across seed runs, and
    required approval, signature and lineage.  Exit 0: every check passed; 1: a check
    failed; 2: the gate could not be evaluated (bad rule, unknown model, bad usage).
    docs/ci.md explains each rule.

    \b
    Examples:
      cairn check models:/fraud@candidate --against @production \\
          --metric "val_auc >= baseline - 0.005" --significance 0.05 \\
          --require approval,signature
      cairn check fraud@staging --rules gate.yaml --format markdown --output report.md
      cairn check fraud/1.3.0 --metric "latency_ms <= baseline * 1.1" --json
    """
    try:
        from ..gate import GateSpec, check as run_check, load_spec, render

        spec = load_spec(rules_file) if rules_file is not None else GateSpec()
        spec = spec.merged(rules=metrics, require=require, against=against,
                           significance=significance, across=across or None, test=test,
                           require_baseline=require_baseline,
                           require_significance=require_significance)
        if not spec.rules and not spec.require and not spec.require_baseline:
            raise click.UsageError("nothing to check: give --metric, --require or --rules")
        result = run_check(obj.client, candidate, spec)
    except CairnError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(USAGE_ERROR)
    except OSError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(USAGE_ERROR)
    except click.ClickException:
        raise  # usage errors: click exits 2 itself
    except Exception as exc:  # a bug or an unforeseen failure: the gate could not run
        import traceback

        traceback.print_exc(file=sys.stderr)
        click.echo(f"Error: the gate could not be evaluated: {type(exc).__name__}: {exc}",
                   err=True)
        sys.exit(USAGE_ERROR)
    fmt = "json" if as_json else fmt
    if output is not None:
        # The file gets the report (Markdown, or JSON); the CI log still shows the table.
        text = _json(result) if fmt == "json" else render(result)
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            click.echo(f"Error: cannot write {output}: {exc.strerror or exc}", err=True)
            sys.exit(USAGE_ERROR)
        _print(result)
    elif fmt == "json":
        emit_json(result.to_dict())
    elif fmt == "markdown":
        click.echo(render(result), nl=False)
    else:
        _print(result)
    sys.exit(result.exit_code)


def _json(result: Any) -> str:
    import json

    return json.dumps(result.to_dict(), indent=2, default=str) + "\n"


def _print(result: Any) -> None:
    from rich.table import Table

    out = console()
    table = Table("rule", "candidate", "baseline", "threshold", "p-value", "verdict",
                  title=result.summary())
    style = {"pass": "green", "fail": "bold red", "skipped": "yellow"}
    for c in result.checks:
        cand, base = c.cells()
        p = c.test_note
        if c.test is not None and c.test.p_value is not None:
            p = f"{c.test.p_value:.3g} ({c.test.n_candidate} vs {c.test.n_baseline})"
        table.add_row(_plain(c.rule), _plain(cand), _plain(base),
                      "" if c.threshold is None else _num(c.threshold), _plain(p),
                      f"[{style.get(c.verdict, '')}]{c.verdict}[/]")
    out.print(table)
    for c in result.failures:
        out.print(f"FAIL {c.rule}: {c.reason}", highlight=False, markup=False)
    for note in result.notes:
        out.print(note, highlight=False, markup=False)


def _plain(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def register(cli: click.Group) -> None:
    """Adds `cairn check` to ``cli``."""
    cli.add_command(check)
