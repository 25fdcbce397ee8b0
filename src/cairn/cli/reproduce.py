"""`cairn reproduce`: rebuild a recorded run and re-run it (cairn.reproduce)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option, resolve_run

# Exit statuses: 0 reproduced (a dry run: nothing missing), 1 failed / missing / an error,
# 3 differs (2 is click's usage error).
EXIT_DIFFERS = 3


@click.command("reproduce")
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--dry-run", is_flag=True, help="Only print the plan and what is missing.")
@click.option("--sample", "sample_n", type=int, default=None, metavar="N",
              help="Reproduce N finished runs picked at random from --experiment; print the "
                   "rate.")
@click.option("-e", "--experiment", "experiments", multiple=True, metavar="NAME",
              help="The experiment(s) --sample picks from (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random choice of --sample.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="KEY=TOL",
              help="A metric's tolerance: absolute (val_loss=1e-6), relative ('*=0.1%') or "
                   "not judged (time=ignore); KEY may be a pattern. Repeatable. Default: "
                   "exact for seeded runs, else 1e-6 relative.")
@click.option("--env", "env_mode", type=click.Choice(["auto", "here", "build"]), default="auto",
              show_default=True,
              help="auto: this interpreter when the recorded Python and packages match it "
                   "exactly, else a virtualenv built with uv; here: always this one; build: "
                   "always build.")
@click.option("--repo", type=click.Path(file_okay=False), default=None,
              help="The git repository holding the run's commit (default: the one recorded).")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Stop a rerun that takes longer (its verdict: failed).")
@json_option
@click.pass_obj
@handle_errors
def reproduce(obj: Any, run_ids: tuple[str, ...], dry_run: bool, sample_n: int | None,
              experiments: tuple[str, ...], seed: int, tolerances: tuple[str, ...],
              env_mode: str, repo: str | None, timeout: float | None, as_json: bool) -> None:
    """Rebuild a run's code (its commit, uncommitted patch and untracked files, in a git
    worktree), environment (this interpreter, or one built with uv) and data (the same
    data set versions, by digest), re-run its command, and compare every metric.

    The verdict is reproduced, differs (which metrics, by how much) or failed (why).
    Each attempt is recorded as a run tagged cairn.reproduces; `cairn kpi` shows the
    rate. Runs made by one process are reproduced by one rerun of it. Exit status: 0
    reproduced, 3 differs, 1 failed (a dry run: 1 when something is missing).
    docs/reproduce.md has the details.

    \b
    Examples:
      cairn reproduce 1cbf0f28
      cairn reproduce 1cbf0f28 --dry-run
      cairn reproduce 1cbf0f28 --tolerance val_loss=1e-6 --tolerance '*=0'
      cairn reproduce --sample 20 -e fraud --json
    """
    from ..errors import InvalidArgument
    from ..reproduce import reproduce as run_reproduce
    from ..reproduce import sample

    obj.must_exist = True
    client = obj.client
    if sample_n is not None:
        if run_ids:
            raise InvalidArgument("give run ids or --sample N, not both")
        if not experiments:
            raise InvalidArgument("--sample needs the experiment(s) to pick from: -e NAME")
        ids = sample(client, list(experiments), sample_n, seed)
        if not ids:
            raise InvalidArgument(f"experiment(s) {', '.join(experiments)} have no finished runs "
                                  "to reproduce")
    elif experiments:
        raise InvalidArgument("-e/--experiment goes with --sample N")
    elif not run_ids:
        raise InvalidArgument("give a run id (or --sample N -e EXPERIMENT)")
    else:
        ids = [resolve_run(client, r) for r in run_ids]
    from ..progress import bar

    with bar("reproducing", None if dry_run else len(ids), unit="runs",
             enabled=False if dry_run or as_json else None) as advance:
        last = [0]

        def progress(_message: str, done: int) -> None:
            advance(done - last[0])
            last[0] = done

        reports = run_reproduce(client, ids, repo=repo, env=env_mode, tolerances=tolerances,
                                dry_run=dry_run, timeout=timeout, progress=progress)
    rate = _rate(reports)
    if as_json:
        body: dict[str, Any] = {"reports": [r.to_dict() for r in reports]}
        if not dry_run:
            body["rate"] = rate
        emit_json(body)
    elif len(reports) > 1 and not dry_run:
        for r in reports:  # the details of what did not reproduce, then one line each
            if r.verdict != "reproduced":
                _print(r)
        _summary(reports)
        console().print(f"reproduced {sum(r.verdict == 'reproduced' for r in reports)} of "
                        f"{len(reports)} runs: {rate:.0%}", highlight=False)
    else:
        for r in reports:
            _print(r)
    if dry_run:
        sys.exit(1 if any(r.plan.missing for r in reports) else 0)
    if any(r.verdict == "failed" for r in reports):
        sys.exit(1)
    if any(r.verdict == "differs" for r in reports):
        sys.exit(EXIT_DIFFERS)


def _rate(reports: list) -> float:
    return sum(r.verdict == "reproduced" for r in reports) / len(reports) if reports else 0.0


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _summary(reports: list) -> None:
    from rich.table import Table

    t = Table("run", "name", "experiment", "verdict", "summary", "rerun")
    colours = {"reproduced": "green", "differs": "yellow"}
    for r in reports:
        colour = colours.get(r.verdict, "red")
        t.add_row(r.original[:8], r.name, r.experiment, f"[{colour}]{r.verdict}[/]",
                  r.summary.splitlines()[0] if r.summary else "", (r.rerun or "-")[:8])
    console().print(t)


def _print(r: Any) -> None:
    from rich.table import Table

    out = console()
    p = r.plan
    out.print(f"[bold]{r.name}[/] ({r.original[:8]}, experiment {r.experiment})")
    code = "-" if not p.commit else f"commit {p.commit[:12]} in {p.repo}"
    if p.patch:
        code += f" + patch {p.patch[:12]}" + (f" ({p.patch_size} bytes)" if p.patch_size else "")
    if p.untracked:
        code += f" + {len(p.untracked)} untracked file(s)"
    if p.snapshot:
        code = f"snapshot of {len(p.snapshot)} file(s)"
    rows = [("code", code), ("run", f"python {' '.join(p.command) or '-'}  (in {p.cwd})"),
            ("environment", f"python {p.python or '-'}, {len(p.packages)} packages"
             + (f" ({r.environment})" if r.environment else "")),
            ("data", ", ".join(f"{i.ref} ({i.role})" for i in p.inputs) or "none read")]
    if p.env_vars:
        rows.append(("variables", ", ".join(f"{k}={v}" for k, v in p.env_vars.items())))
    plan = Table("", "", show_header=False, box=None)
    for k, v in rows:
        plan.add_row(k, v)
    out.print(plan)
    for m in p.missing:
        out.print(f"  [red]missing[/] {m}", highlight=False)
    if r.verdict == "planned":
        out.print("  plan complete: nothing missing" if not p.missing else "", highlight=False)
        return
    if r.metrics:
        t = Table("metric", "original", "rerun", "max |diff|", "points", "tolerance", "")
        for m in r.metrics:
            mark = "ok" if m.ok else ("[red]differs[/]" if m.judged else "")
            t.add_row(m.key, _num(m.original), _num(m.rerun),
                      m.problem or _num(m.max_diff), str(m.points), m.tolerance, mark)
        out.print(t)
    for d in r.params:
        out.print(f"  param {d['key']}: {d['original']!r} vs {d['rerun']!r}", highlight=False)
    for d in r.data:
        out.print(f"  {d['what']}: {d['original']} vs {d['rerun']}", highlight=False)
    for note in r.notes:
        out.print(f"  note: {note}", highlight=False, markup=False)
    colour = {"reproduced": "green", "differs": "yellow"}.get(r.verdict, "red")
    out.print(f"[{colour}]{r.verdict}[/]: ", end="")
    out.print(r.summary, highlight=False, markup=False)
    if r.rerun:
        out.print(f"  recorded as run {r.rerun[:8]}", highlight=False)


def register(cli: click.Group) -> None:
    """Adds `cairn reproduce` to ``cli``."""
    cli.add_command(reproduce)
