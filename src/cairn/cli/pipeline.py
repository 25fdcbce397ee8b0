"""`cairn pipeline`: stages with a cache (cairn.pipelines; docs/pipelines.md)."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option

_STYLE = {"ran": "green", "cached": "cyan", "restored": "cyan", "unchanged": "dim",
          "failed": "red", "killed": "red", "skipped": "yellow", "stale": "yellow"}


def _file_option(fn: Any) -> Any:
    return click.option("-f", "--file", "file", default=None, metavar="FILE",
                        help="The pipeline file (default: cairn.yaml, else dvc.yaml, here).")(fn)


@click.group("pipeline")
def pipeline() -> None:
    """Run a pipeline of stages with a cache (cairn.yaml or dvc.yaml).

    \b
    Examples:
      cairn pipeline run --jobs 4
      cairn pipeline status
      cairn pipeline show -f dvc.yaml
    """


def _line(r: Any) -> str:
    style = _STYLE.get(r.status, "")
    text = f"[{style}]{r.status:>9}[/{style}]  {r.name}" if style else f"{r.status:>9}  {r.name}"
    extra = []
    if r.status == "ran":
        extra.append(f"{r.seconds:.2f}s")
    if r.status == "stale" and r.cached:
        extra.append("in the run cache")
    if r.run_id and r.status in ("ran", "cached", "failed", "killed"):
        extra.append(f"run {r.run_id[:8]}")
    if r.reason:
        extra.append(r.reason.splitlines()[0])
    return text + (f"  [dim]({'; '.join(extra)})[/dim]" if extra else "")


def _sigterm_as_interrupt() -> Any:
    """SIGTERM stops a pipeline as Ctrl-C does: children stopped, their runs KILLED."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test's CliRunner in a thread)
        return None


@pipeline.command("run")
@click.argument("stage", required=False)
@_file_option
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Stages run at once (independent ones).")
@click.option("--dry-run", is_flag=True, help="Say what would run or be restored; run nothing.")
@click.option("--force", is_flag=True, help="Run the selected stages even when cached.")
@click.option("--experiment", default="pipeline", show_default=True,
              help="Experiment the stages' runs go into.")
@json_option
@click.pass_obj
@handle_errors
def run_cmd(obj: Any, stage: str | None, file: str | None, jobs: int, dry_run: bool,
            force: bool, experiment: str, as_json: bool) -> None:
    """Bring the pipeline up to date: STAGE and what it reads, or every stage.

    A stage whose key (command, dependencies' contents, params) was seen before is not
    run: its outputs are restored from the store.  Each executed stage is a run; exit
    status 1 when a stage failed, 130 when interrupted.

    \b
    Examples:
      cairn pipeline run
      cairn pipeline run train --jobs 4
      cairn pipeline run --dry-run --json
    """
    from .. import pipelines

    show: Any = lambda r: None  # noqa: E731
    if not as_json:  # rich costs start-up time that a no-op --json run does not need
        from rich.console import Console

        err = Console(stderr=True)

        def show(r: Any) -> None:
            err.print(_line(r), highlight=False)
    old = _sigterm_as_interrupt()
    try:
        if as_json or not sys.stderr.isatty():
            result = pipelines.run(obj.client, file, stage, jobs=jobs, dry_run=dry_run,
                                   force=force, experiment=experiment, on_event=show)
        else:
            with err.status("running the pipeline ...") as status:
                count = [0]

                def event(r: Any) -> None:
                    count[0] += 1
                    status.update(f"running the pipeline ... {count[0]} stage(s) done")
                    show(r)

                result = pipelines.run(obj.client, file, stage, jobs=jobs, dry_run=dry_run,
                                       force=force, experiment=experiment, on_event=event)
    except KeyboardInterrupt:
        click.echo("Interrupted: running stages were stopped and their runs marked KILLED; "
                   "nothing of theirs was cached.", err=True)
        sys.exit(130)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if as_json:
        emit_json(result.to_dict())
    else:
        counts: dict[str, int] = {}
        for r in result.stages:
            counts[r.status] = counts.get(r.status, 0) + 1
        console().print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no stages")
    if not result.ok:
        sys.exit(1)


@pipeline.command("status")
@click.argument("stage", required=False)
@_file_option
@json_option
@click.pass_obj
@handle_errors
def status_cmd(obj: Any, stage: str | None, file: str | None, as_json: bool) -> None:
    """Which stages are stale, and why; runs nothing.

    A stale stage whose key is in the run cache would be restored, not run.

    \b
    Examples:
      cairn pipeline status
      cairn pipeline status train --json
    """
    from .. import pipelines
    from ..errors import NotFound

    try:
        client = obj.client
    except NotFound:  # no store yet: every stage is judged from the lock file alone
        client = None
    result = pipelines.status(client, file, stage)
    if as_json:
        emit_json(result.to_dict())
        return
    out = console()
    for r in result.stages:
        out.print(_line(r), highlight=False)
    stale = sum(r.status == "stale" for r in result.stages)
    out.print("everything is up to date" if not stale else f"{stale} stale stage(s)")


@pipeline.command("show")
@_file_option
@json_option
@handle_errors
def show_cmd(file: str | None, as_json: bool) -> None:
    """The stages of a pipeline file, in the order they run, with what each reads and writes.

    \b
    Examples:
      cairn pipeline show
      cairn pipeline show -f dvc.yaml --json
    """
    from ..pipelines import load_pipeline

    p = load_pipeline(file)
    stages: list[dict[str, Any]] = [{"name": n, "cmd": list(p.stages[n].cmd), "wdir": p.stages[n].wdir,
               "deps": list(p.stages[n].deps), "params": dict(p.stages[n].params),
               "outs": list(p.stages[n].outs), "metrics": list(p.stages[n].metrics),
               "upstream": p.upstream[n]} for n in p.order]
    if as_json:
        emit_json({"file": str(p.path), "stages": stages})
        return
    from rich.table import Table

    table = Table("stage", "cmd", "deps", "outs", "after")
    for s in stages:
        table.add_row(s["name"], " && ".join(s["cmd"]), "\n".join(s["deps"]),
                      "\n".join(s["outs"]), ", ".join(s["upstream"]))
    console().print(table)


def register(cli: click.Group) -> None:
    """Adds `cairn pipeline` (run, status, show) to ``cli``."""
    cli.add_command(pipeline)
