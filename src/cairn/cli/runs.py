from __future__ import annotations

import statistics
import sys
from typing import Any

import click

from .format import STATUS_STYLE, duration, num, run_json, ts
from .main import console, emit_json, handle_errors, json_option, resolve_run


@click.group()
def runs() -> None:
    """Find, show and compare runs."""


@runs.command("ls")
@click.option("--experiment", "-e", multiple=True, help="Experiment name or id (repeatable).")
@click.option("--filter", "-f", "filter_", default="",
              help="e.g. \"metrics.acc > 0.9 AND params.lr = '0.01'\"")
@click.option("--order-by", "-o", multiple=True, help="e.g. \"metrics.acc DESC\" (repeatable).")
@click.option("--max-results", "-n", default=100, show_default=True, type=int)
@click.option("--page-token", default=None, help="Token printed by a previous page.")
@click.option("--columns", "-c", multiple=True, help="Extra columns: params.X, metrics.Y, tags.Z.")
@click.option("--all", "-a", "all_", is_flag=True, help="Deleted runs too (see `runs delete`).")
@click.option("--lifecycle", type=click.Choice(["active", "deleted"]), default=None,
              help="Only active runs (the default) or only deleted ones.")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, experiment, filter_, order_by, max_results, page_token, columns, all_, lifecycle,
       as_json) -> None:
    """List runs, newest first (deleted runs with --all or --lifecycle deleted).

    \b
    Example:
      cairn runs ls -e demo -f "metrics.accuracy > 0.8" -o "metrics.accuracy DESC"
    """
    page = obj.client.search_runs(list(experiment) or None, filter_, list(order_by), max_results,
                                  page_token, lifecycle=None if all_ else lifecycle or "active")
    if as_json:
        emit_json({"runs": [run_json(r) for r in page], "next_page_token": page.token})
        return
    from rich.table import Table

    if not columns:
        columns = _default_columns(page, order_by)
    many = len({r.experiment_id for r in page}) > 1
    table = Table("id", "name", *(["experiment"] if many else []), "status", "started", "duration",
                  *[c.split(".", 1)[1] for c in columns])
    for r in page:
        style = STATUS_STYLE.get(r.status.value, "")
        deleted = " [red](deleted)[/]" if r.lifecycle != "active" else ""
        table.add_row(r.id[:8], r.name, *([r.experiment] if many else []),
                      f"[{style}]{r.status.value}[/]{deleted}", ts(r.start_time), duration(r.duration_ms),
                      *[_cell(r, c) for c in columns])
    con = console()
    con.print(table)
    con.print(f"{len(page)} run(s)" + (f"; next page: --page-token {page.token}" if page.token else ""))


def _default_columns(page, order_by=()) -> list[str]:
    """Params that differ between the listed runs, then metrics (sort keys first)."""
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for item in order_by:
        entity, _, rest = item.partition(".")
        if entity in ("metrics", "metric"):
            metrics[rest.split()[0].strip("`\"")] = None
    for r in page:
        params.update(dict.fromkeys(r.params))
        metrics.update(dict.fromkeys(r.metrics))
    varying = [k for k in params if len({r.params.get(k) for r in page}) > 1] or list(params)
    return [f"params.{k}" for k in varying[:4]] + [f"metrics.{k}" for k in list(metrics)[:4]]


def _cell(run, column: str) -> str:
    entity, _, key = column.partition(".")
    source = {"params": run.params, "param": run.params, "metrics": run.metrics,
              "metric": run.metrics, "tags": run.tags, "tag": run.tags}.get(entity)
    if source is None:
        raise click.BadParameter(f"column {column!r} must start with params., metrics. or tags.")
    return num(source[key]) if key in source else "-"


@runs.command("show")
@click.argument("run_id")
@json_option
@click.pass_obj
@handle_errors
def show(obj, run_id: str, as_json: bool) -> None:
    """Show one run: status, params, metrics, tags, environment.

    RUN_ID may be a unique prefix, as `cairn runs ls` prints.

    \b
    Example:
      cairn runs show 3f2a9c --json
    """
    r = obj.client.get_run(resolve_run(obj.client, run_id))
    if as_json:
        emit_json(run_json(r, env=True))
        return
    from rich.table import Table

    con = console()
    style = STATUS_STYLE.get(r.status.value, "")
    con.print(f"[bold]{r.name}[/]  {r.id}\nexperiment {r.experiment} ({r.experiment_id})  "
              f"status [{style}]{r.status.value}[/]  user {r.user}\n"
              f"started {ts(r.start_time)}  duration {duration(r.duration_ms)}"
              + (f"\nparent {r.parent_id}" if r.parent_id else ""))
    git = (r.env or {}).get("git") or {}
    if git:
        con.print(f"git {git.get('commit')} on {git.get('branch')}"
                  + (" (dirty)" if git.get("dirty") else ""))
    env = _environment_rows(r.env or {})
    if env:
        t = Table("", "", title="environment", show_header=False)
        for k, v in env:
            t.add_row(k, v)
        con.print(t)
    for title, data in (("params", r.params), ("tags", r.tags)):
        if data:
            t = Table("key", "value", title=title)
            for k in sorted(data):
                t.add_row(k, str(data[k]))
            con.print(t)
    if r.metric_summaries:
        t = Table("metric", "last", "step", "min", "max", "points", title="metrics")
        for k in sorted(r.metric_summaries):
            m = r.metric_summaries[k]
            t.add_row(k, num(m.value), str(m.step), num(m.min), num(m.max), str(m.count))
        con.print(t)


def _environment_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    """What a reader of one run wants of its environment (``--json`` has all of it; the
    package list is long, so its size and the ML packages only)."""
    def part(key: str) -> dict[str, Any]:  # a run's env is JSON from anywhere: trust no shape
        value = env.get(key)
        return value if isinstance(value, dict) else {}

    rows: list[tuple[str, str]] = []
    py = part("python")
    if py:
        rows.append(("python", f"{py.get('version', '?')} ({py.get('implementation', '?')}) "
                               f"{py.get('executable', '')}".rstrip()))
    osinfo = part("os")
    if osinfo.get("platform"):
        rows.append(("os", str(osinfo["platform"])))
    cpu = part("cpu")
    if cpu:
        rows.append(("cpu", f"{cpu.get('count', '?')} × {cpu.get('model') or 'unknown'}"))
    gpus = env.get("gpus")
    for g in gpus if isinstance(gpus, list) else []:
        if not isinstance(g, dict):
            continue
        rows.append((f"gpu {g.get('index', '?')}", f"{g.get('name', '?')}, "
                                                  f"{g.get('memory_total_mb', '?')} MB"))
    for key in ("hostname", "user", "entry_point"):
        if env.get(key):
            rows.append((key.replace("_", " "), str(env[key])))
    argv = env.get("argv")
    if argv:
        rows.append(("argv", " ".join(map(str, argv)) if isinstance(argv, list) else str(argv)))
    packages = part("packages")
    if packages:
        known = [f"{n} {packages[n]}" for n in sorted(packages, key=str.lower)
                 if n.lower() in _ML_PACKAGES]
        rows.append(("packages", f"{len(packages)}" + (f": {', '.join(known)}" if known else "")))
    return rows


_ML_PACKAGES = {"cairn", "numpy", "pandas", "scikit-learn", "torch", "tensorflow", "keras",
                "jax", "xgboost", "lightgbm", "transformers", "lightning", "pytorch-lightning"}


@runs.command("tag")
@click.argument("run_id")
@click.argument("key")
@click.argument("value")
@json_option
@click.pass_obj
@handle_errors
def tag(obj, run_id: str, key: str, value: str, as_json: bool) -> None:
    """Set a tag on a run (also a finished one: tags stay editable).

    \b
    Example:
      cairn runs tag 3f2a9c reviewed yes
    """
    rid = resolve_run(obj.client, run_id)
    obj.client.set_tag(rid, key, value)
    _tag_done(rid, key, value, as_json)


@runs.command("untag")
@click.argument("run_id")
@click.argument("key")
@json_option
@click.pass_obj
@handle_errors
def untag(obj, run_id: str, key: str, as_json: bool) -> None:
    """Delete a tag of a run.

    \b
    Example:
      cairn runs untag 3f2a9c reviewed
    """
    from ..errors import NotFound

    rid = resolve_run(obj.client, run_id)
    if key not in obj.client.get_run(rid).tags:
        raise NotFound(f"run {rid} has no tag {key!r}")
    obj.client.delete_tag(rid, key)
    _tag_done(rid, key, None, as_json)


@runs.command("note")
@click.argument("run_id")
@click.argument("text")
@json_option
@click.pass_obj
@handle_errors
def note(obj, run_id: str, text: str, as_json: bool) -> None:
    """Set a run's note (Markdown, shown on its page in the UI); TEXT '-' reads standard input.

    \b
    Example:
      cairn runs note 3f2a9c "lr too high: diverged after epoch 3"
    """
    from ..client import NOTE_TAG

    rid = resolve_run(obj.client, run_id)
    if text == "-":
        text = sys.stdin.read()
    obj.client.set_note(rid, text)
    _tag_done(rid, NOTE_TAG, text, as_json)


@runs.command("rename")
@click.argument("run_id")
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def rename(obj, run_id: str, name: str, as_json: bool) -> None:
    """Give a run a new name (also a finished run).

    \b
    Example:
      cairn runs rename 3f2a9c baseline-lr0.01
    """
    client = obj.client
    run = client.rename_run(resolve_run(client, run_id), name)
    if as_json:
        emit_json({"run_id": run.id, "name": run.name, "lifecycle": run.lifecycle})
    else:
        click.echo(f"run {run.id}: renamed to {run.name!r}")


@runs.command("delete")
@click.argument("run_id")
@click.option("--force", is_flag=True,
              help="Also a run that is the source run of a live registered model version.")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, run_id: str, force: bool, as_json: bool) -> None:
    """Move a run to the trash (hidden from `runs ls` and searches, undone by `runs restore`).

    Nothing is erased until the trash is emptied (`cairn trash empty`, or `cairn gc` after
    CAIRN_TRASH_DAYS): its records, metrics and artifacts stay, and `runs ls --all` lists
    it.  A run that a live registered model version was registered from needs --force.
    On a team server this needs the editor role on its experiment.

    \b
    Example:
      cairn runs delete 3f2a9c
    """
    client = obj.client
    _lifecycle_done(client.delete_run(resolve_run(client, run_id), force=force), as_json)


@runs.command("restore")
@click.argument("run_id")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, run_id: str, as_json: bool) -> None:
    """Restore a deleted run.

    \b
    Example:
      cairn runs restore 3f2a9c
    """
    client = obj.client
    _lifecycle_done(client.restore_run(resolve_run(client, run_id)), as_json)


def _lifecycle_done(run: Any, as_json: bool) -> None:
    if as_json:
        emit_json({"run_id": run.id, "name": run.name, "lifecycle": run.lifecycle})
    else:
        click.echo(f"run {run.id} ({run.name}): "
                   + ("deleted (restore with `cairn runs restore`)"
                      if run.lifecycle == "deleted" else "restored"))


def _tag_done(run_id: str, key: str, value: str | None, as_json: bool) -> None:
    if as_json:
        emit_json({"run_id": run_id, "key": key, "value": value})
    elif value is None:
        click.echo(f"run {run_id}: tag {key!r} deleted")
    else:
        click.echo(f"run {run_id}: {key} = {value!r}")


@runs.command("compare")
@click.argument("run_ids", nargs=-1)
@click.option("--experiment", "-e", multiple=True, help="Compare the runs of these experiments.")
@click.option("--filter", "-f", "filter_", default="", help="With -e: only runs matching this filter.")
@click.option("--across", default=None,
              help="Aggregate over this param (e.g. seed): groups runs that differ only in it "
                   "and shows mean ± std and n per metric.")
@json_option
@click.pass_obj
@handle_errors
def compare(obj, run_ids, experiment, filter_, across, as_json) -> None:
    """Compare runs side by side; rows that differ are highlighted.

    \b
    Examples:
      cairn runs compare 3f2a 9c1d
      cairn runs compare -e quickstart --across seed
    """
    from ..errors import InvalidArgument

    client = obj.client
    runs_ = [client.get_run(resolve_run(client, rid)) for rid in run_ids]
    if experiment or filter_:
        runs_ += list(client.search_runs(list(experiment) or None, filter_, max_results=1000))
    seen: set[str] = set()
    runs_ = [r for r in runs_ if not (r.id in seen or seen.add(r.id))]  # type: ignore[func-returns-value]  # each run once
    if not runs_:
        raise InvalidArgument("name run ids to compare, or --experiment/--filter to select runs")
    if across:
        _compare_groups(runs_, across, as_json)
        return
    params = sorted({k for r in runs_ for k in r.params})
    metrics = sorted({k for r in runs_ for k in r.metrics})
    if as_json:
        emit_json({"runs": [run_json(r) for r in runs_],
                   "differing_params": [k for k in params if len({r.params.get(k) for r in runs_}) > 1]})
        return
    from rich.table import Table

    table = Table("", *[f"{r.name}\n{r.id[:8]}" for r in runs_])
    table.add_row("status", *[r.status.value for r in runs_])
    table.add_row("duration", *[duration(r.duration_ms) for r in runs_])
    for section, keys, get in (("params", params, lambda r, k: r.params.get(k)),
                               ("metrics", metrics, lambda r, k: r.metrics.get(k))):
        for k in keys:
            vals = [get(r, k) for r in runs_]
            differs = len({num(v) for v in vals}) > 1
            cells = ["-" if v is None else num(v) for v in vals]
            if section == "metrics" and differs:
                nums = [v for v in vals if v is not None and v == v]
                best = max(nums) if nums else None
                cells = [f"[bold]{c}[/]" if v == best else c for c, v in zip(cells, vals)]
            label = f"{section[:-1]}.{k}"
            table.add_row(f"[yellow]{label}[/]" if differs else label, *cells)
    console().print(table)


def _compare_groups(runs_, across: str, as_json: bool) -> None:
    from .. import stats
    from ..lineage import REPRODUCES_TAG

    # A rerun by `cairn reproduce` has its original's params and seed: the same result
    # again, not another sample, so it would shrink the std and the p-values.
    reruns = [r.id for r in runs_ if r.tags.get(REPRODUCES_TAG)]
    if reruns and len(reruns) < len(runs_):
        runs_ = [r for r in runs_ if not r.tags.get(REPRODUCES_TAG)]
    else:
        reruns = []  # only reruns were asked for: compare them with each other
    groups: dict[tuple, list] = {}
    for r in runs_:
        groups.setdefault(stats.group_key(r.params, across), []).append(r)
    metrics = sorted({k for r in runs_ for k in r.metrics})
    rows: list[dict[str, Any]] = []
    # Label groups by the params that tell them apart, not the ones all runs share.
    shared = {k for k in {k for key in groups for k, _ in key}
              if len({dict(key).get(k) for key in groups}) == 1}
    for key, members in groups.items():
        row: dict[str, Any] = {"params": {k: v for k, v in key if k not in shared}, "n": len(members),
                               across: sorted(r.params.get(across, "-") for r in members), "metrics": {}}
        for m in metrics:
            vals = [r.metrics[m] for r in members if m in r.metrics and r.metrics[m] == r.metrics[m]]
            if vals:
                row["metrics"][m] = {"mean": statistics.fmean(vals),
                                     "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                     "n": len(vals)}
        rows.append(row)
    labels = [", ".join(f"{k}={v}" for k, v in row["params"].items()) or "(all)" for row in rows]
    tests = _significance(list(groups.values()), metrics)
    if as_json:
        emit_json({"across": across, "groups": rows, "tests": tests, "reruns_left_out": reruns})
        return
    from rich.table import Table

    table = Table("group", "n", *metrics, title=f"mean ± std across {across}")
    for label, row in zip(labels, rows):
        cells = []
        for m in metrics:
            s = row["metrics"].get(m)
            cells.append("-" if s is None else f"{s['mean']:.4g} ± {s['std']:.2g}")
        table.add_row(label, str(row["n"]), *cells)
    con = console()
    con.print(table)
    if reruns:
        con.print(f"left out {len(reruns)} rerun(s) by `cairn reproduce` (tag {REPRODUCES_TAG}): "
                  "they repeat their original's seed")
    if not tests:
        return
    sig = Table("metric", "group a", "group b", "Δ mean (a - b)", "Welch p", "Cohen's d",
                "Mann-Whitney p", title="is the difference more than seed noise? (two-sided)")
    for t in tests:
        w, u = t["welch"], t["mann_whitney"]
        sig.add_row(t["metric"], labels[t["a"]], labels[t["b"]], _g(t["diff"]), _p(w["p"]),
                    _g(w["cohen_d"]), _p(u["p"]))
    con.print(sig)
    con.print("p < 0.05: unlikely to be seed noise alone; with 2-3 seeds a group the tests "
              "have little power, so a large p proves nothing")


def _significance(groups: list[list], metrics: list[str]) -> list[dict[str, Any]]:
    """Welch's t test and Mann-Whitney U between each pair of groups, per metric: the tests
    the web UI's seed comparison shows (``cairn.stats``)."""
    import itertools

    from .. import stats

    out: list[dict[str, Any]] = []
    for m in metrics:
        finals = [[r.metrics[m] for r in g if m in r.metrics] for g in groups]
        for (i, a), (j, b) in itertools.combinations(enumerate(finals), 2):
            if len(a) < 2 or len(b) < 2:
                continue  # no spread to test against
            w, u = stats.welch(a, b), stats.mann_whitney(a, b)
            fa, fb = [x for x in a if x == x], [x for x in b if x == x]
            out.append({"metric": m, "a": i, "b": j, "n_a": len(fa), "n_b": len(fb),
                        "diff": statistics.fmean(fa) - statistics.fmean(fb) if fa and fb else None,
                        "welch": {"t": w.statistic, "p": w.p_value, "cohen_d": w.effect,
                                  "method": w.method},
                        "mann_whitney": {"u": u.statistic, "p": u.p_value,
                                         "rank_biserial": u.effect, "method": u.method}})
    return out


def _g(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:+.3g}"


def _p(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"[bold]{x:.3g}[/]" if x < 0.05 else f"{x:.3g}"
