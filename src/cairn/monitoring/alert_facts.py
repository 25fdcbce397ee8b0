"""The facts an alert rule's condition is judged on, gathered for one model at one time.

``live.*`` and ``serving.*`` come from :func:`~cairn.monitoring.live.live_metrics` over the
rule's trailing window: without an arm prefix they are the version the rule follows (a
rule on ``fraud@production``) or the whole model (a rule on ``fraud``); ``primary.`` and
``canary.`` take that arm's requests.  ``train.<metric>`` is the metric of the version's
source run (the canary's version for ``canary.train.*``); ``drift.*`` the latest drift
results stored for the version (``cairn monitor drift`` stores them); ``predlog.dropped``
the requests the prediction log dropped in the window (the serving processes record them
in the serving runs).  Facts that cannot
be had (no labels yet, no canary, no drift stored) are missing, so the condition that
needs them is unknown; the notes say why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CairnError, NotFound
from .conditions import LIVE, Value
from .rules import Rule


@dataclass
class Facts:
    """Values by fact name (None: missing), what was looked at, and why some are missing."""

    values: dict[str, Value] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)   # scope -> version judged
    requests: int | None = None       # requests in the window that min_requests counts
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


FactSource = Callable[[Rule, int], Facts]
STALE_DRIFT_S = 86400


def _scope(name: str) -> tuple[str, str]:
    """``("canary", "live.accuracy")`` for ``canary.live.accuracy``; ``("", name)`` bare."""
    head, _, rest = name.partition(".")
    if head in ("primary", "canary"):
        return head, rest
    return "", name


class Gatherer:
    """Gathers facts with a client and a registry; one per evaluation, so that two rules
    on one model over one window read the prediction log once."""

    def __init__(self, client: Any, registry: Any) -> None:
        self.client = client
        self.registry = registry
        self._live: dict[tuple[str, int, int], Any] = {}
        self._labels: dict[str, Any] = {}  # model -> its labels: rules with other windows share them

    def __call__(self, rule: Rule, now_ms: int) -> Facts:
        facts = Facts()
        names = rule.parsed().facts
        needed = {_scope(n)[0] for n in names}
        versions: dict[str, str | None] = {}
        for scope in needed | {""}:
            versions[scope] = self._version(rule, scope, facts)
            if versions[scope] is not None:
                facts.versions[scope or "model"] = str(versions[scope])
        live = None
        if any(_scope(n)[1].split(".")[0] in ("live", "serving") for n in names) \
                or rule.min_requests:
            live = self._live_of(rule, now_ms, facts)
        for name in names:
            scope, rest = _scope(name)
            family, _, key = rest.partition(".")
            value: Value = None
            if family in ("live", "serving"):
                group = self._group(live, rule, scope, versions.get(scope), facts)
                value = _from_group(group, family, key) if group is not None else None
                if group is not None and family == "live" and value is None and key in LIVE:
                    facts.note(f"{name}: no labelled requests in the window yet")
            elif family == "train":
                value = self._train(rule, versions.get(scope), key, facts)
            elif family == "drift":
                value = self._drift(rule, versions.get(scope), rest, facts, now_ms)
            elif family == "predlog":
                value = self._dropped(rule, versions.get(""), now_ms, facts)
            facts.values[name] = value
        canary_used = "canary" in needed
        group = self._group(live, rule, "canary" if canary_used else "", versions.get(
            "canary" if canary_used else ""), facts) if live is not None else None
        facts.requests = None if group is None else int(group.requests)
        return facts

    # -- versions --------------------------------------------------------------------
    def _version(self, rule: Rule, scope: str, facts: Facts) -> str | None:
        name = rule.model_name
        refs = [f"{name}@{rule.canary}"] if scope == "canary" else \
            [rule.model] if rule.selector else [f"{name}@production", f"{name}@latest"]
        first: str | None = None
        for ref in refs:
            try:
                return str(self.registry.resolve(ref).version)
            except NotFound as exc:
                first = first or exc.message
                continue
            except CairnError as exc:
                facts.note(f"{ref}: {exc.message}")
                return None
        facts.note(f"{refs[0]}: {first}")
        return None

    # -- live ------------------------------------------------------------------------
    def _live_of(self, rule: Rule, now_ms: int, facts: Facts) -> Any:
        key = (rule.model_name, rule.window_s, now_ms)
        if key not in self._live:
            from .feedback import read_labels
            from .live import live_metrics

            until = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc)
            since = until - dt.timedelta(seconds=rule.window_s)
            try:
                # No lookback: it only counts labels of unknown requests, which no fact
                # uses, and reading a day of log every cycle would cost the most.
                labels = self._labels.get(rule.model_name)
                if labels is None:
                    labels = self._labels[rule.model_name] = read_labels(self.client,
                                                                         rule.model_name)
                self._live[key] = live_metrics(self.client, rule.model_name, since, until,
                                               lookback=dt.timedelta(0), labels=labels)
            except CairnError as exc:
                self._live[key] = exc
        got = self._live[key]
        if isinstance(got, CairnError):
            facts.note(f"live metrics of {rule.model_name}: {got.message}")
            return None
        return got

    def _group(self, live: Any, rule: Rule, scope: str, version: str | None,
               facts: Facts) -> Any:
        if live is None:
            return None
        from .live import EMPTY

        if scope:
            return live.by_arm.get(scope, EMPTY)
        if rule.selector:
            return EMPTY if version is None else live.by_version.get(version, EMPTY)
        return live.overall

    # -- the prediction log's drops --------------------------------------------------
    def _dropped(self, rule: Rule, version: str | None, now_ms: int, facts: Facts) -> Value:
        """Requests the prediction log dropped in the rule's window: the ``predlog.dropped``
        points serving processes record in the serving runs (of the version the rule
        follows, or of every version of the model)."""
        from ..serving.predlog_runs import DROPPED, find_runs

        if rule.selector and version is None:
            return None
        runs = find_runs(self.client, rule.model_name, version if rule.selector else None)
        if not runs:
            facts.note(f"predlog.dropped: {rule.model_name} has not been served with a "
                       "prediction log")
            return None
        since = now_ms - rule.window_s * 1000
        total = 0.0
        for run in runs:
            try:
                points = self.client.get_metric_history(run.run_id, DROPPED)
            except NotFound:  # never dropped anything
                continue
            total += sum(float(p.value) for p in points if since < p.timestamp <= now_ms)
        return total

    # -- the version's training run and its drift ------------------------------------
    def _train(self, rule: Rule, version: str | None, key: str, facts: Facts) -> Value:
        if version is None:
            return None
        mv = self.registry.get_model_version(rule.model_name, version)
        registered = (getattr(mv, "metrics", None) or {}).get(key)
        if registered is not None:  # as `cairn monitor live` reads train.*: registered first
            return float(registered)
        run_id = getattr(mv, "source_run_id", None) or getattr(mv, "run_id", None)
        if not run_id:
            facts.note(f"train.{key}: {rule.model_name} {version} has no source run")
            return None
        try:
            metrics = self.client.get_run(run_id).metrics
        except NotFound:
            facts.note(f"train.{key}: run {run_id} of {rule.model_name} {version} is gone")
            return None
        if key not in metrics:
            facts.note(f"train.{key}: run {run_id} has no metric {key!r}")
            return None
        return float(metrics[key])

    def _drift(self, rule: Rule, version: str | None, rest: str, facts: Facts,
               now_ms: int) -> Value:
        if version is None:
            return None
        from .results import find_run

        run_id = find_run(self.client, rule.model_name, version)
        if run_id is None:
            facts.note(f"{rest}: no drift results stored for {rule.model_name} {version} "
                       "(cairn monitor drift stores them)")
            return None
        run = self.client.get_run(run_id)
        latest = run.metric_summaries.get(rest)
        if rest not in run.metrics or latest is None:
            facts.note(f"{rest}: not in the drift results of {rule.model_name} {version}")
            return None
        # The step is the window's end in seconds: results older than a day (or than the
        # rule's window) say nothing about now.
        if now_ms / 1000 - latest.step > max(rule.window_s, STALE_DRIFT_S):
            facts.note(f"{rest}: the latest drift results of {rule.model_name} {version} "
                       "are over a day old")
            return None
        value = float(latest.value)
        return bool(value) if rest.endswith(".drifted") or rest == "drift.drifted" else value


def _from_group(group: Any, family: str, key: str) -> Value:
    if family == "serving":
        if key == "requests":
            return float(group.requests)
        if key == "errors":
            return float(group.errors)
        if key == "error_rate":
            return float(group.error_rate) if group.requests else None
        if key == "latency_p99_ms":
            return None if group.latency_p99_ms is None else float(group.latency_p99_ms)
        return None
    if key == "labelled":
        return float(group.labelled)
    value = group.metrics.get(key)
    return None if value is None else float(value)
