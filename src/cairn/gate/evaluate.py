"""Resolve a candidate and its baseline, and check every rule and requirement of a spec.

Works on any store a :class:`cairn.Client` opens (a directory, PostgreSQL, a server):
everything is read through the client and the registry service built for its store.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidArgument, NotFound
from .result import FAIL, PASS, SKIPPED, Check, GateResult, Side
from .rules import MetricRule
from .seeds import SeedGroup, one_sided, seed_group
from .spec import GateSpec

#: The stages an approval may move a candidate to (a candidate is approved on its way to
#: Staging or Production; the request may still wait for more approvals).
APPROVAL_STAGES = ("Staging", "Production")


def check(client: Any, candidate: str, spec: GateSpec | None = None) -> GateResult:
    """Check ``candidate`` (a model reference: ``models:/fraud@candidate``, ``fraud/1.2.0``)
    against ``spec.against`` on every rule and requirement of ``spec``.

    Raises :class:`~cairn.errors.NotFound` for an unknown candidate or baseline model
    and :class:`~cairn.errors.InvalidArgument` for a bad reference: the gate could not be
    evaluated.  Everything else (a missing metric, a missing signature) is a failed
    check in the result.
    """
    spec = spec if spec is not None else GateSpec()
    from ..store.validation import check_text

    if not isinstance(candidate, str):
        raise InvalidArgument(f"the candidate must be a model reference such as "
                              f"models:/fraud@candidate, got {candidate!r}")
    check_text(candidate, "candidate")
    cand_mv = client.resolve_model(candidate.strip())
    base_mv, no_baseline = _baseline(client, cand_mv, spec.against)
    return _Evaluation(client, spec, candidate.strip(), cand_mv, base_mv, no_baseline).run()


def _baseline(client: Any, cand: Any, against: str) -> tuple[Any, str]:
    """(the baseline version, "") or (None, why there is none)."""
    from ..registry import Stage, parse_ref

    if against.startswith("@"):
        ref = f"{cand.name}{against}"
    elif Stage.is_stage(against):
        ref = f"{cand.name}@{against}"
    else:
        ref = against
    name, kind, value = parse_ref(ref)
    model = client.get_registered_model(name)  # NotFound: a mistyped model is an error
    if kind == "stage" and not client.list_model_versions(name, value):
        return None, f"{name} has no version in {value}"
    if kind == "alias" and value not in model.aliases:
        return None, f"{name} has no alias {value!r}"
    if kind == "latest" and model.latest_version is None:
        return None, f"{name} has no versions"
    return client.resolve_model(ref), ""


def _side(ref: str, mv: Any) -> Side:
    return Side(ref, mv.name, mv.version, mv.stage, mv.source_run_id)


class _Evaluation:
    def __init__(self, client: Any, spec: GateSpec, ref: str, cand: Any, base: Any,
                 no_baseline: str) -> None:
        self.client, self.spec, self.ref = client, spec, ref
        self.cand, self.base, self.no_baseline = cand, base, no_baseline
        self._runs: dict[str, Any] = {}
        self._groups: dict[str, SeedGroup] = {}

    def run(self) -> GateResult:
        checks: list[Check] = []
        if self.base is None:
            verdict = FAIL if self.spec.require_baseline else SKIPPED
            checks.append(Check("baseline", f"baseline {self.spec.against}", verdict,
                                reason=f"no baseline: {self.no_baseline}" + (
                                    " (--require-baseline)" if self.spec.require_baseline
                                    else "; rules relative to the baseline are skipped")))
        checks += [self._metric(rule) for rule in self.spec.rules]
        for req in self.spec.require:
            checks.append(getattr(self, f"_{req}")())
        notes = []
        if self.base is not None and (self.base.name, self.base.version) == \
                (self.cand.name, self.cand.version):
            notes.append(f"the candidate is the baseline ({self.spec.against} is "
                         f"{self.cand.name} {self.cand.version})")
        test_asked = self.spec.significance is not None
        cand_side = _side(self.ref, self.cand)
        base_side = None if self.base is None else _side(self.spec.against, self.base)
        if test_asked:
            cand_side = _with_runs(cand_side, self._group(self.cand))
            if self.base is not None and base_side is not None:
                base_side = _with_runs(base_side, self._group(self.base))
        return GateResult(cand_side, base_side, self.spec.against, self.spec.significance,
                          self.spec.across, self.spec.test, tuple(checks), tuple(notes))

    # -- values ------------------------------------------------------------------------
    def _run(self, run_id: str | None) -> Any:
        if not run_id:
            return None
        if run_id not in self._runs:
            try:
                self._runs[run_id] = self.client.get_run(run_id)
            except NotFound:
                self._runs[run_id] = None
        return self._runs[run_id]

    def _value(self, mv: Any, metric: str) -> tuple[float | None, str | None]:
        """The version's registered value of ``metric``, else its source run's latest."""
        if metric in mv.metrics:
            return float(mv.metrics[metric]), "version"
        run = self._run(mv.source_run_id)
        if run is not None and metric in run.metrics:
            return float(run.metrics[metric]), f"run {run.id}"
        return None, None

    def _group(self, mv: Any) -> SeedGroup:
        key = f"{mv.name}/{mv.version}"
        if key not in self._groups:
            self._groups[key] = seed_group(self.client, mv.source_run_id, self.spec.across)
        return self._groups[key]

    # -- metric rules ------------------------------------------------------------------
    def _metric(self, rule: MetricRule) -> Check:
        m = rule.metric
        forged = [mv for mv in (self.cand, self.base) if mv is not None and not _record_ok(mv)]
        if forged:
            return Check("metric", rule.text, FAIL, metric=m, reason="; ".join(
                f"the registry record of {_name(mv)} was changed after registration (its "
                "digest does not match): its metrics cannot be trusted" for mv in forged))
        cv, cs = self._value(self.cand, m)
        fields: dict[str, Any] = {"metric": m, "candidate": cv, "candidate_source": cs}
        if cv is None:
            return Check("metric", rule.text, FAIL, reason=f"the candidate {_name(self.cand)} "
                         f"has no metric {m!r} (neither registered nor logged by its run)",
                         **fields)
        bv = bs = None
        if rule.relative:
            if self.base is None:
                return Check("metric", rule.text, FAIL if self.spec.require_baseline else
                             SKIPPED, reason=f"no baseline: {self.no_baseline}", **fields)
            bv, bs = self._value(self.base, m)
            fields.update(baseline=bv, baseline_source=bs)
            if bv is None:
                return Check("metric", rule.text, FAIL, reason=f"the baseline "
                             f"{_name(self.base)} has no metric {m!r} (neither registered nor "
                             "logged by its run)", **fields)
        elif self.base is not None:
            bv, bs = self._value(self.base, m)
            fields.update(baseline=bv, baseline_source=bs)  # shown for context only
        if not math.isfinite(cv) or (rule.relative and bv is not None and not math.isfinite(bv)):
            return Check("metric", rule.text, FAIL, reason=f"{m} is not a finite number "
                         f"(candidate {cv}, baseline {bv})", **fields)
        try:
            ok, limit = rule.holds(cv, bv if rule.relative else None)
        except ZeroDivisionError:
            return Check("metric", rule.text, FAIL, reason=f"the threshold divides by zero "
                         f"(baseline {m} = {_g(bv)})", **fields)
        except OverflowError:
            return Check("metric", rule.text, FAIL, reason=f"the threshold is not a finite "
                         f"number (baseline {m} = {_g(bv)})", **fields)
        fields["threshold"] = limit
        test, note, test_fails = self._significance(rule)
        fields.update(test=test, test_note=note)
        if not ok:
            return Check("metric", rule.text, FAIL, reason=f"{m} {_g(cv)} is not {rule.op} "
                         f"{_g(limit)}" + (f" (baseline {_g(bv)})" if rule.relative else ""),
                         **fields)
        if test_fails:
            return Check("metric", rule.text, FAIL, reason=test_fails, **fields)
        return Check("metric", rule.text, PASS, detail=f"{m} {_g(cv)} {rule.op} {_g(limit)}",
                     **fields)

    def _significance(self, rule: MetricRule) -> tuple[Any, str, str]:
        """(the test or None, why there is none, why it fails the rule or "")."""
        alpha = self.spec.significance
        if alpha is None:
            return None, "", ""
        if not rule.relative:
            return None, "not applicable (absolute threshold)", ""
        if rule.higher_is_better is None:
            return None, "not applicable (== has no side to test)", ""
        strict = " (--require-significance)" if self.spec.require_significance else ""
        cg, bg = self._group(self.cand), self._group(self.base)
        if set(cg.run_ids) & set(bg.run_ids):
            note = "not applicable (the candidate and the baseline share runs)"
            return None, note, note + strict if strict else ""
        cvals, bvals = cg.values(rule.metric), bg.values(rule.metric)
        if len(cvals) < 2 or len(bvals) < 2:
            note = f"not applicable ({len(cvals)} vs {len(bvals)} runs" + "".join(
                f"; {side}: {g.note}" for side, g in (("candidate", cg), ("baseline", bg))
                if g.note) + ")"
            return None, note, note + strict if strict else ""
        try:
            limits = [rule.threshold_for(b) for b in bvals]
        except ArithmeticError:
            note = "not applicable (a baseline run's threshold divides by zero or overflows)"
            return None, note, note + strict if strict else ""
        test = one_sided(cvals, limits, bool(rule.higher_is_better), self.spec.test)
        if test.p_value is None:
            note = f"not applicable ({test.note})"
            return test, note, note + strict if strict else ""
        if test.p_value >= alpha:
            side = "above" if rule.higher_is_better else "below"
            return test, "", (f"not significant: the candidate's {rule.metric} is not "
                              f"{side} the threshold beyond seed noise (one-sided {test.method} "
                              f"p = {test.p_value:.3g} >= {alpha:g}; {test.n_candidate} vs "
                              f"{test.n_baseline} runs)")
        return test, "", ""

    # -- requirements ------------------------------------------------------------------
    def _approval(self) -> Check:
        from ..registry.compliance import approval_problem, approvals

        reqs = self.client.list_transition_requests(self.cand.name, status=None)
        found = approvals(reqs, stages=APPROVAL_STAGES, pending=True).get(self.cand.version)
        if found:
            detail = "; ".join(f"approved by {a.user} (request {r.id} to {r.to_stage}, "
                               f"{r.status})" for r, a in found)
            return Check("approval", "approval", PASS, detail=detail)
        why = approval_problem(reqs, self.cand.version, stages=APPROVAL_STAGES, pending=True)
        return Check("approval", "approval", FAIL, reason=f"{_name(self.cand)}: {why}")

    def _signature(self) -> Check:
        from ..registry.compliance import signature_problem
        from ..services import registry_for

        why = signature_problem(registry_for(self.client), self.cand)
        if why:
            return Check("signature", "signature", FAIL, reason=f"{_name(self.cand)}: {why}")
        return Check("signature", "signature", PASS,
                     detail=f"signed by trusted key {self.cand.signing_key}")

    def _lineage(self) -> Check:
        from ..registry.compliance import data_inputs, lineage_problem

        found = data_inputs(self.client, self.cand)
        if found:
            return Check("lineage", "lineage", PASS, detail="trained on " + ", ".join(found))
        return Check("lineage", "lineage", FAIL,
                     reason=f"{_name(self.cand)}: {lineage_problem(self.client, self.cand)}")


def _record_ok(mv: Any) -> bool:
    from ..registry.loading import record_ok

    return record_ok(mv)


def _with_runs(side: Side, group: SeedGroup) -> Side:
    from dataclasses import replace

    return replace(side, runs=group.run_ids)


def _name(mv: Any) -> str:
    return f"{mv.name} {mv.version}"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"
