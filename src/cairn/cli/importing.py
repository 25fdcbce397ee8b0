"""`cairn import ...`: bring history in from other tools (a shell over cairn.importers)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from .main import console, emit_json, handle_errors, json_option

_ROWS = (("experiments", "experiments"), ("runs", "runs"), ("params", "params"),
         ("tags", "tags"), ("metric_points", "metric points"), ("artifacts", "artifact files"),
         ("models", "models"), ("versions", "model versions"), ("aliases", "aliases"),
         ("stages", "stages"))


@click.group("import")
def import_() -> None:
    """Bring history in from other tools."""


@import_.command("mlflow")
@click.argument("source")
@click.option("--experiment", "-e", multiple=True,
              help="Import only this MLflow experiment (name or id; repeatable).")
@click.option("--include-deleted", is_flag=True, help="Also import deleted experiments and runs.")
@click.option("--no-models", is_flag=True, help="Leave the model registry out.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: on a terminal, never with --json).")
@json_option
@click.pass_obj
@handle_errors
def mlflow(obj, source: str, experiment: tuple[str, ...], include_deleted: bool, no_models: bool,
           progress: bool | None, as_json: bool) -> None:
    """Import an MLflow store: experiments, runs, artifacts, models.

    SOURCE is an MLflow database URI (sqlite:///mlflow.db, postgresql://...), an
    mlruns directory, or the URL of a running MLflow server.  Running it again
    imports only what is new.  The counts are checked against the source at the
    end; a difference is an error.

    \b
    Examples:
      cairn import mlflow sqlite:///mlflow.db
      cairn import mlflow ./mlruns --experiment churn --json
      cairn import mlflow http://mlflow.internal:5000
    """
    from ..importers import import_mlflow

    show = progress if progress is not None else (not as_json and sys.stderr.isatty())
    with _bars(show and not as_json) as report:
        summary = import_mlflow(source, obj.client, experiments=list(experiment) or None,
                                include_deleted=include_deleted, models=not no_models,
                                progress=report)
    if as_json:
        emit_json(summary.to_dict())
        return
    from rich.table import Table

    table = Table("", "imported now", "in MLflow", "in Cairn",
                  title=f"import from {summary.source_uri}")
    for field, label in _ROWS:
        table.add_row(label, str(getattr(summary.imported, field)),
                      str(getattr(summary.source, field)), str(getattr(summary.cairn, field)))
    con = console()
    con.print(table)
    con.print("[green]verified[/]: Cairn holds everything selected in the source")


@contextmanager
def _bars(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """One rich progress bar per kind of item the importer reports, on stderr."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield report
