"""What a gate decided: one :class:`Check` per rule and requirement, and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .seeds import Test

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


@dataclass(frozen=True, slots=True)
class Side:
    """The candidate or the baseline: the version a reference resolved to."""

    ref: str
    name: str
    version: str
    stage: str
    run_id: str | None
    runs: tuple[str, ...] = ()  # its seed group (the run ids), when a test was asked for

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "name": self.name, "version": self.version,
                "stage": self.stage, "run_id": self.run_id, "runs": list(self.runs)}

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True, slots=True)
class Check:
    """One rule or requirement.  ``verdict`` is pass, fail or skipped; ``reason`` says why
    it failed or was skipped, ``detail`` what it found when it passed."""

    kind: str  # metric | baseline | approval | signature | lineage
    rule: str
    verdict: str
    reason: str = ""
    detail: str = ""
    metric: str | None = None
    candidate: float | None = None
    candidate_source: str | None = None  # "version" (registered metrics) or "run <id>"
    baseline: float | None = None
    baseline_source: str | None = None
    threshold: float | None = None
    test: Test | None = None
    test_note: str = ""  # why no test decided this rule (e.g. "not applicable (1 run)")

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def cells(self) -> tuple[str, str]:
        """What a report shows in the candidate and baseline columns: a metric's values;
        for a requirement, what it found, or "missing" (its reason is listed below the
        table); for the baseline row, why there is none."""
        if self.kind == "metric":
            return _num(self.candidate), _num(self.baseline)
        if self.kind == "baseline":
            return "", self.reason
        return (self.detail if self.verdict == PASS else "missing"), ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "verdict": self.verdict,
                "reason": self.reason, "detail": self.detail, "metric": self.metric,
                "candidate": _jnum(self.candidate), "candidate_source": self.candidate_source,
                "baseline": _jnum(self.baseline), "baseline_source": self.baseline_source,
                "threshold": _jnum(self.threshold),
                "test": None if self.test is None else self.test.to_dict(),
                "test_note": self.test_note}


def _jnum(x: float | None) -> float | str | None:
    """A value for JSON, which has no NaN or infinity: those as "nan", "inf", "-inf" (as
    every cairn --json output spells them), so the report still parses."""
    if x is None or math.isfinite(x):
        return x
    return str(x)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


@dataclass(frozen=True, slots=True)
class GateResult:
    candidate: Side
    baseline: Side | None
    against: str
    significance: float | None
    across: tuple[str, ...]
    test: str
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail a gate)."""
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> str:
        base = "no baseline" if self.baseline is None else f"{self.baseline} ({self.against})"
        n = len(self.failures)
        verdict = "passes" if self.passed else f"fails {n} of {len(self.checks)} checks"
        return f"{self.candidate} {verdict} against {base}"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "summary": self.summary(),
                "candidate": self.candidate.to_dict(),
                "baseline": None if self.baseline is None else self.baseline.to_dict(),
                "against": self.against, "significance": self.significance,
                "across": list(self.across), "test": self.test,
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes)}
