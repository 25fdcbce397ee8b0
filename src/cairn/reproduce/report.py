"""A reproduction's report, and the run that records it in the original's experiment.

Every attempt (not a dry run) is recorded as a run: the rerun's params, metric histories,
artifacts and environment, tagged ``cairn.reproduces`` = the original's id and
``cairn.reproduce.verdict``, with the full report as the artifact
``reproduce/report.json``.  A failed attempt is a FAILED run with the tags and the report.
The KPI (``cairn kpi``) and lineage read these tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..entities import FileEntry, RecordBatch, Run, RunStatus
from ..lineage import REPRODUCES_TAG, VERDICT_TAG  # lineage draws its edges from these tags
from .compare import MetricRow
from .plan import Plan

SUMMARY_TAG = "cairn.reproduce.summary"
REPORT_ARTIFACT = "reproduce/report.json"
VERDICTS = ("reproduced", "differs", "failed")


@dataclass(slots=True)
class Report:
    """What ``cairn reproduce`` found for one original run."""

    original: str
    name: str
    experiment: str
    verdict: str                     # reproduced | differs | failed | planned (dry run)
    plan: Plan
    why: list[str] = field(default_factory=list)        # failed: what stopped it
    rerun: str | None = None                              # the run recording this attempt
    environment: str | None = None                        # here | built
    metrics: list[MetricRow] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        if self.verdict == "failed":
            return "; ".join(self.why)[:500]
        if self.verdict == "planned":
            return "missing: " + "; ".join(self.plan.missing) if self.plan.missing else "ready"
        bad = [m for m in self.metrics if m.judged and not m.ok]
        parts = [f"{m.key} differs by {_num(m.max_diff)} (tolerance {m.tolerance})"
                 if m.problem is None else f"{m.key}: {m.problem}" for m in bad]
        parts += [f"param {p['key']}: {p['original']!r} vs {p['rerun']!r}" for p in self.params]
        parts += [f"{d['what']} differ" for d in self.data]
        if not parts:
            judged = sum(1 for m in self.metrics if m.judged)
            if not judged:
                return "nothing differs (no metric to compare; params and data are the same)"
            return f"{judged} metric(s) equal within their tolerances"
        return "; ".join(parts)[:500]

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original, "name": self.name, "experiment": self.experiment,
                "verdict": self.verdict, "summary": self.summary, "why": list(self.why),
                "rerun": self.rerun, "environment": self.environment,
                "metrics": [m.to_dict() for m in self.metrics], "params": list(self.params),
                "data": list(self.data), "notes": list(self.notes),
                "seconds": round(self.seconds, 3), "plan": self.plan.to_dict()}


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def record(client: Any, original: Run, report: Report, rerun_client: Any = None,
           rerun: Run | None = None) -> str:
    """Write the attempt as a new run of the original's experiment; returns its id."""
    from ..client import refuse_deleted

    exp = client.get_experiment(original.experiment_id)
    refuse_deleted(exp)
    run_id = clock.new_run_id()
    start = rerun.start_time if rerun is not None else clock.now_ms()
    create = client._creation(exp, run_id, f"{original.name}-reproduced", None, start)
    tags = {k: v for k, v in (rerun.tags if rerun is not None else {}).items()
            if not k.startswith(("cairn.", "mlflow."))}
    report.rerun = run_id
    tags.update({REPRODUCES_TAG: original.id, VERDICT_TAG: report.verdict,
                 SUMMARY_TAG: report.summary})
    metrics: dict[str, tuple[Any, Any, Any]] = {}
    artifacts: list[FileEntry] = []
    if rerun is not None and rerun_client is not None:
        for key in rerun.metrics:
            h = rerun_client.get_metric_history(rerun.id, key)
            metrics[key] = (h.steps, h.timestamps, h.values)
        src, dst = rerun_client.store.objects, client.store.objects
        from ..cas.tree import referenced_oids

        entries = [e for e in rerun_client.list_artifacts(rerun.id) if e.path != REPORT_ARTIFACT]
        for oid in referenced_oids(entries):
            if not dst.has(oid):
                dst.put_bytes(src.get_bytes(oid))
        artifacts += entries
    body = json.dumps(report.to_dict(), indent=2, default=str).encode()
    artifacts.append(FileEntry(REPORT_ARTIFACT, len(body), client.store.objects.put_bytes(body)))
    failed = report.verdict == "failed" or rerun is None
    status = RunStatus.FAILED if failed or rerun is None else (
        rerun.status if rerun.status.terminal else RunStatus.KILLED)
    end = rerun.end_time if rerun is not None and rerun.end_time else clock.now_ms()
    from ..writer import _anonymised  # CAIRN_ANONYMISE: its user is the reproducer's name

    client.store.write(_anonymised(RecordBatch(
        run_id=run_id, writer_id=clock.new_writer_id(), seq=1, time=clock.now_ms(),
        params=dict(rerun.params) if rerun is not None else {}, tags=tags, metrics=metrics,
        artifacts=tuple(artifacts), status=status, end_time=end, create=create,
        env=dict(rerun.env) if rerun is not None and rerun.env else None)))
    return run_id
