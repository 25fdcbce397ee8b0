"""Rebuild a recorded run's code, environment and data, re-run it, and compare (docs/reproduce.md).

::

    from cairn.reproduce import reproduce

    [report] = reproduce(client, ["1cbf0f28..."])          # plan, rebuild, re-run, compare
    report.verdict, report.summary                           # "reproduced", "..."
    reproduce(client, ids, dry_run=True)[0].plan.missing    # only the plan

Runs made by one process from one code and environment are reproduced by one rerun of
that process (``cairn reproduce --sample 9 -e quickstart`` runs quickstart.py once).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..entities import Run, RunStatus
from ..errors import CairnError, InvalidArgument, NotFound
from .compare import compare_data, compare_metrics, compare_params, parse_tolerances
from .envbuild import MODES, Builder
from .plan import Plan, make_plan
from .rate import Rate, reproducibility
from .report import (
    REPORT_ARTIFACT, REPRODUCES_TAG, SUMMARY_TAG, VERDICT_TAG, VERDICTS, Report, record,
)
from .rerun import Matcher, execute, seed_inputs, throwaway_store
from .workspace import SetupFailed, code

__all__ = ["MODES", "Plan", "Rate", "Report", "REPORT_ARTIFACT", "REPRODUCES_TAG", "SUMMARY_TAG",
           "VERDICTS", "VERDICT_TAG", "make_plan", "reproduce", "reproducibility", "sample"]


def sample(client: Any, experiments: Any, n: int, seed: int = 0) -> list[str]:
    """Ids of ``n`` finished runs of ``experiments`` picked at random (``seed``), not counting
    reruns made by ``cairn reproduce``; all of them when there are fewer."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgument(f"the sample size must be a positive integer, got {n!r}")
    ids: list[str] = []
    token = None
    while True:
        page = client.search_runs(experiments, "attributes.status = 'FINISHED'",
                                  max_results=1000, page_token=token)
        ids += [r.id for r in page if REPRODUCES_TAG not in r.tags]
        token = page.token
        if not token:
            break
    ids.sort()
    return sorted(random.Random(seed).sample(ids, min(n, len(ids))))


def reproduce(client: Any, run_ids: Sequence[str], *, repo: str | None = None, env: str = "auto",
              tolerances: Iterable[str] = (), dry_run: bool = False,
              timeout: float | None = None,
              progress: Callable[[str, int], None] | None = None) -> list[Report]:
    """Reproduce each run of ``run_ids`` (or only plan it, ``dry_run``); one report each, in
    order.  ``env``: auto | here | build; ``tolerances``: ``KEY=TOL`` strings (see
    :mod:`cairn.reproduce.compare`); ``timeout``: seconds one rerun may take.
    ``progress(message, done)`` is called as runs are finished."""
    rules = parse_tolerances(tolerances)
    if env not in MODES:
        raise InvalidArgument(f"env must be one of {', '.join(MODES)}, got {env!r}")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
    originals = [client.get_run(i) for i in run_ids]
    plans = {r.id: make_plan(client, r, repo) for r in originals}
    if dry_run:
        return [Report(r.id, r.name, r.experiment, "planned", plans[r.id]) for r in originals]
    reports: dict[str, Report] = {}
    groups: dict[str, list[Run]] = {}
    for r in originals:
        groups.setdefault(plans[r.id].group_key(), []).append(r)
    with _sigterm_unwinds():
        tmp = Path(tempfile.mkdtemp(prefix="cairn-reproduce-"))
        try:
            builder = Builder(env, tmp)
            for n, runs in enumerate(groups.values()):
                work = tmp / f"g{n}"
                work.mkdir()
                for report in _group(client, runs, [plans[r.id] for r in runs], builder, rules,
                                     timeout, work):
                    reports[report.original] = report
                    if progress is not None:
                        progress(f"{report.name}: {report.verdict}", len(reports))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [reports[r.id] for r in originals]


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, ``kill``) unwinds like Ctrl-C: the rerun is stopped and
    the worktree and temporary files are removed.  Only where nothing else handles it."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def unwind(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _group(client: Any, runs: list[Run], plans: list[Plan], builder: Builder,
           rules: list, timeout: float | None, work: Path) -> list[Report]:
    """Reproduce the runs of one process with one rerun."""
    started = time.monotonic()
    plan = plans[0]
    out = []

    def failed(why: list[str], notes: Sequence[str] = ()) -> list[Report]:
        done = []
        for r, p in zip(runs, plans):
            report = Report(r.id, r.name, r.experiment, "failed", p, list(why), notes=list(notes))
            report.seconds = time.monotonic() - started
            record(client, r, report)
            done.append(report)
        return done

    if plan.missing:  # a group of one: runs that miss something are never grouped
        return failed([f"missing {m}" for m in plan.missing])
    try:
        with code(plan, client.store.objects, work) as code_dir:
            interp = builder.interpreter(plan, code_dir)
            store_dir = throwaway_store(client.store, work)
            from ..client import Client

            seeding = Client(str(store_dir))
            try:
                seed_inputs(client, seeding, [i for p in plans for i in p.inputs],
                            shared_objects=(store_dir / "objects").is_symlink())
            finally:
                seeding.store.close()
            ran = execute(plan, code_dir, interp.python, store_dir, [r.id for r in runs],
                          timeout, work / "output.log")
            rerun_client = Client(str(store_dir))  # opened after the rerun: replays its journals
            try:
                matcher = Matcher(client, rerun_client)
                for r, p in zip(runs, plans):
                    out.append(_judge(client, r, p, rerun_client, matcher, ran, interp, rules,
                                      started))
            finally:
                rerun_client.store.close()
    except SetupFailed as exc:
        return failed([str(exc)])
    except (CairnError, OSError) as exc:  # e.g. a data set version gone since the plan
        if out:
            raise
        return failed([f"the rerun could not be set up: {getattr(exc, 'message', None) or exc}"])
    return out


def _differences(what: str, items: list[str]) -> str:
    return f"{what}: " + "; ".join(items[:10]) + (f" ... ({len(items)} in all)"
                                                  if len(items) > 10 else "")


def _compare(client: Any, original: Run, rerun_client: Any, rerun: Run, rules: list,
             report: Report) -> None:
    report.metrics = compare_metrics(client, original, rerun_client, rerun, rules)
    report.params = compare_params(original, rerun)
    report.data = compare_data(client, original, rerun_client, rerun)
    bad = any(m.judged and not m.ok for m in report.metrics) or report.params or report.data
    report.verdict = "differs" if bad else "reproduced"


def _judge(client: Any, original: Run, plan: Plan, rerun_client: Any, matcher: Matcher,
           ran: Any, interp: Any, rules: list, started: float) -> Report:
    report = Report(original.id, original.name, original.experiment, "failed", plan,
                    environment=interp.how, notes=list(plan.notes))
    if interp.how == "here" and interp.differences:
        report.notes.append(_differences("this environment differs from the recorded one",
                                         list(interp.differences)))
    if plan.container and plan.container.get("image_digest"):
        report.notes.append(f"recorded in container image {plan.container['image_digest']}; "
                            "the rerun ran where cairn reproduce runs")
    exit_text = ("was stopped at the timeout" if ran.returncode is None
                 else f"exited with status {ran.returncode}")
    try:
        candidates = matcher.candidates(original)
    except NotFound:
        candidates = []
    rerun = candidates[0] if candidates else None
    if rerun is None:
        report.why.append(f"the command {exit_text} and made {matcher.made} run(s), none of "
                          f"them in experiment {original.experiment!r} with the original's "
                          f"params; its output ended:\n{ran.output_tail}")
    elif original.status == RunStatus.FINISHED and rerun.status != RunStatus.FINISHED:
        report.why.append(f"the rerun ended {rerun.status} (the command {exit_text}); its "
                          f"output ended:\n{ran.output_tail}")
    else:
        for candidate in candidates:
            _compare(client, original, rerun_client, candidate, rules, report)
            if report.verdict == "reproduced":
                rerun = candidate
                break
        else:
            if len(candidates) > 1:  # none reproduces it: report against the likeliest
                _compare(client, original, rerun_client, rerun, rules, report)
        if len(candidates) > 1:
            report.notes.append(f"{len(candidates)} runs of the rerun have the original's "
                                "place and params and their order is not certain (runs started "
                                "in one millisecond); the one compared is "
                                + ("one that reproduces the original" if
                                   report.verdict == "reproduced" else "the likeliest"))
        if ran.returncode != 0:
            report.notes.append(f"the command {exit_text} after the run ended")
        if interp.how == "built" and isinstance(rerun.env, dict):
            got = rerun.env.get("packages") or {}
            wrong = [f"{n}: {plan.packages.get(n, '-')} recorded, {got.get(n, '-')} built"
                     for n in sorted(set(plan.packages) | set(got), key=str.lower)
                     if plan.packages.get(n) != got.get(n)]
            report.notes.append(_differences("the built environment differs from the recorded "
                                             "one", wrong) if wrong else
                                f"built with uv: the recorded {len(plan.packages)} packages")
        git = (rerun.env or {}).get("git") if isinstance(rerun.env, dict) else None
        if plan.commit and isinstance(git, dict) and (
                git.get("commit") != plan.commit or git.get("diff_digest") != plan.patch):
            report.notes.append("the rerun's code did not show the recorded commit and diff")
    report.seconds = time.monotonic() - started
    record(client, original, report, rerun_client, rerun)
    if report.verdict != "failed" and plan.inputs and not any(d["what"] == "inputs"
                                                               for d in report.data):
        for i in plan.inputs:  # the rerun read these very versions (by digest)
            client.log_input(report.rerun, i.ref, i.role)
    return report
