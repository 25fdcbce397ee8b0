"""Governance KPIs (`cairn kpi`): real registry actions on a local store, at known times,
and the exact KPI values they must give."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument, NotFound
from cairn.monitoring.kpi import DEFAULT_SETTLE, kpis, parse_settle

UTC = dt.timezone.utc
T0 = int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
HOST = "serve-1.example:8080"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


def _model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def _trained(client, tmp_path, name: str, seed: int, **options):
    """``name``'s next version, from a run that logged a data set version with role train."""
    path = tmp_path / f"train-{seed}.csv"
    path.write_text("a,b,c\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(seed + 5)))
    data = cairn.data.Datasets(client).add(path, "transactions")
    run = client.create_run(client.get_or_create_experiment("training").id)
    client.log_input(run.id, data.ref, role="train")
    mv = client.register_model(name, _model(seed), run_id=run.id, **options)
    client.set_terminated(run.id)
    return mv


@pytest.fixture
def history(tracking, tmp_path, cairn_clock):
    """``fraud`` through five days, ending at T0 + 4d 1h (all times UTC):

    - T0        1.0.0 (trained on data) moved to Production directly: release A
    - T0+1d     Production now needs 1 approval
    - T0+1d1h   1.0.1 requested by alice, approved by bob: release B (A replaced)
    - T0+1d3h   rollback of Production: B failed after 2 h; 1.0.0 restored
    - T0+3d     1.0.2 (trained, signed) requested, approved; @champion -> 1.0.2, and
                serve-1 starts serving it a minute later: release C, one release
    - T0+4d     1.0.3 (no run, unsigned) gets @champion; serve-1 switches to it
    - T0+4d30m  serve-1 rolls back to 1.0.2: release D failed after 30 min
    """
    alice = cairn.Client(str(tracking), user="alice")
    bob = cairn.Client(str(tracking), user="bob")
    cairn_clock.set(T0 - HOUR)
    _trained(alice, tmp_path, "fraud", 1, version="1.0.0")                    # 1.0.0
    _trained(alice, tmp_path, "fraud", 2, version="1.0.1")                    # 1.0.1
    alice.create_signing_key("release")
    cairn_clock.set(T0)
    alice.transition_model_version_stage("fraud", "1.0.0", "production")
    cairn_clock.set(T0 + DAY)
    alice.set_stage_policy("fraud", "production", approvals=1)
    cairn_clock.set(T0 + DAY + HOUR)
    bob.approve(alice.request_transition("fraud", "1.0.1", "production").id)
    cairn_clock.set(T0 + DAY + 3 * HOUR)
    alice.rollback("fraud", reason="precision fell")
    cairn_clock.set(T0 + 3 * DAY - HOUR)
    v2 = _trained(alice, tmp_path, "fraud", 3, version="1.0.2", signing_key="release")
    assert v2.version == "1.0.2" and v2.signed
    cairn_clock.set(T0 + 3 * DAY)
    bob.approve(alice.request_transition("fraud", "1.0.2", "production").id)
    alice.set_alias("fraud", "champion", "1.0.2")
    cairn_clock.set(T0 + 3 * DAY + MIN)
    alice.record_deployment("fraud", "1.0.2", "start", deployment=HOST)
    cairn_clock.set(T0 + 4 * DAY - HOUR)
    assert alice.register_model("fraud", _model(4), version="1.0.3").version == "1.0.3"
    cairn_clock.set(T0 + 4 * DAY)
    alice.set_alias("fraud", "champion", "1.0.3")
    alice.record_deployment("fraud", "1.0.3", "switch", deployment=HOST, previous="1.0.2")
    alice.record_deployment("fraud", "1.0.3", "start", deployment=HOST, arm="canary")
    cairn_clock.set(T0 + 4 * DAY + 30 * MIN)
    alice.record_deployment("fraud", "1.0.2", "rollback", deployment=HOST, previous="1.0.3")
    alice.record_deployment("fraud", "1.0.2", "stop", deployment=HOST, arm="canary")
    cairn_clock.set(T0 + 4 * DAY + HOUR)
    return alice


def test_the_kpis_of_a_known_history(history):
    k = kpis(history)
    o = k.overall
    assert (o.deployments, o.succeeded, o.failed, o.pending) == (4, 2, 2, 0)
    assert o.success_rate == 0.5 and o.change_failure_rate == 0.5
    assert o.rollbacks == 2
    assert o.mean_time_to_rollback_s == (2 * 3600 + 30 * 60) / 2
    assert o.rollbacks_per_week == 2.0  # four days of history count as one week
    assert [(r.version, r.started, r.track, r.outcome, r.rolled_back) for r in k.releases] == [
        ("1.0.0", T0, "stage", "succeeded", None),
        ("1.0.1", T0 + DAY + HOUR, "stage", "failed", T0 + DAY + 3 * HOUR),
        ("1.0.0", T0 + DAY + 3 * HOUR, "stage", "restored", None),
        ("1.0.2", T0 + 3 * DAY, "stage", "succeeded", None),
        ("1.0.3", T0 + 4 * DAY, "@champion", "failed", T0 + 4 * DAY + 30 * MIN),
    ]
    assert k.releases[0].ended == T0 + DAY + HOUR and k.releases[3].ended is None
    assert [(r.version, r.to, r.time, r.after_s, r.track) for r in k.rollbacks] == [
        ("1.0.1", "1.0.0", T0 + DAY + 3 * HOUR, 7200.0, "stage"),
        ("1.0.3", "1.0.2", T0 + 4 * DAY + 30 * MIN, 1800.0, f"serve:{HOST}"),
    ]
    assert k.models["fraud"] == o
    assert k.settle_s == DEFAULT_SETTLE.total_seconds() == 86400
    assert k.until == T0 + 4 * DAY + HOUR and k.since is None
    for value in (o.success_rate, o.rollbacks_per_week, o.mean_time_to_rollback_s):
        assert isinstance(value, float) and math.isfinite(value)


def test_compliance_of_the_versions_in_production(history):
    k = kpis(history)
    good, bad = k.compliance
    assert (good.version, good.held_by, good.ok, good.lacks) == \
        ("1.0.2", ("Production",), True, ())
    assert (bad.version, bad.held_by) == ("1.0.3", ("@champion",))
    assert (bad.approval, bad.signature, bad.lineage, bad.ok) == (False, False, False, False)
    assert [x.split(":")[0] for x in bad.lacks] == ["approval", "signature", "lineage"]
    assert "not signed" in bad.lacks[1] and "without a source run" in bad.lacks[2]
    o = k.overall
    assert (o.production_versions, o.with_approval, o.with_signature, o.with_lineage,
            o.compliant) == (2, 1, 1, 1, 1)
    assert o.approval_rate == o.signature_rate == o.lineage_rate == o.compliance_rate == 0.5
    assert o.reproducibility_rate is None
    assert any("cairn reproduce" in n for n in k.notes)


def test_a_revoked_key_no_longer_signs_validly(history):
    key = next(k for k in history.list_signing_keys() if k.name == "release")
    history._registry.revoke_key(key.key_id)
    good = kpis(history).compliance[0]
    assert (good.version, good.signature, good.ok) == ("1.0.2", False, False)
    assert good.lacks == (f"signature: signed by key {key.key_id}, which this registry does "
                          "not trust",)


def test_the_window_selects_releases_and_rollbacks(history):
    late = kpis(history, since=dt.datetime.fromtimestamp((T0 + 2 * DAY) / 1000, UTC))
    assert [r.version for r in late.releases] == ["1.0.2", "1.0.3"]
    assert [r.version for r in late.rollbacks] == ["1.0.3"]
    assert (late.overall.deployments, late.overall.failed, late.overall.rollbacks) == (2, 1, 1)
    assert late.overall.rollbacks_per_week == 1.0
    assert late.since == T0 + 2 * DAY

    # Up to T0 + 1d 2h: 1.0.1 was released an hour before and not rolled back yet.
    early = kpis(history, until="2025-01-07T02:00")
    assert [(r.version, r.outcome) for r in early.releases] == [
        ("1.0.0", "succeeded"), ("1.0.1", "pending")]
    assert (early.overall.pending, early.overall.rollbacks) == (1, 0)
    assert early.overall.success_rate == 1.0 and early.overall.mean_time_to_rollback_s is None

    wide = kpis(history, since=(T0 - 4 * WEEKS) / 1000)  # epoch seconds: five weeks in all
    assert wide.overall.rollbacks_per_week == pytest.approx(2 / ((4 * WEEKS + 4 * DAY + HOUR)
                                                                 / (7 * DAY)))


WEEKS = 7 * DAY


def test_the_settle_period_decides_what_failed(history):
    k = kpis(history, settle="1h")  # 1.0.1 lasted 2 h: a success now
    assert [(r.version, r.outcome) for r in k.releases if r.outcome != "restored"] == [
        ("1.0.0", "succeeded"), ("1.0.1", "succeeded"), ("1.0.2", "succeeded"),
        ("1.0.3", "failed")]
    assert k.overall.success_rate == 0.75 and k.overall.rollbacks == 2
    assert kpis(history, settle=dt.timedelta(days=2)).overall.pending == 1  # 1.0.3
    assert kpis(history, settle=7200).settle_s == 7200


def test_per_model_and_overall(history, tmp_path, cairn_clock):
    cairn_clock.set(T0 + 4 * DAY + HOUR)
    history.register_model("churn", _model(9))
    history.transition_model_version_stage("churn", "1.0.0", "production")
    cairn_clock.set(T0 + 4 * DAY + 2 * HOUR)
    k = kpis(history)
    churn = k.models["churn"]
    assert (churn.deployments, churn.pending, churn.success_rate, churn.rollbacks) == \
        (1, 1, None, 0)
    assert churn.rollbacks_per_week == 0.0
    assert (churn.production_versions, churn.compliant) == (1, 0)
    assert (k.overall.deployments, k.overall.pending, k.overall.production_versions) == (5, 1, 3)
    assert sorted(k.models) == ["churn", "fraud"]
    only = kpis(history, model="churn")
    assert list(only.models) == ["churn"] and only.overall == churn


def test_an_empty_registry(tracking, cairn_clock):
    k = kpis(cairn.Client(str(tracking)))
    o = k.overall
    assert (o.deployments, o.rollbacks, o.production_versions) == (0, 0, 0)
    assert o.success_rate is None and o.rollbacks_per_week is None
    assert o.mean_time_to_rollback_s is None and o.compliance_rate is None
    assert k.models == {} and k.releases == () and "no registered models" in k.notes
    json.dumps(k.to_dict())


@pytest.mark.parametrize("options, message", [
    ({"model": "nope"}, "no registered model"),
    ({"model": ""}, "model must be"),
    ({"model": 3}, "model must be"),
    ({"model": "fr\ud800aud"}, "model contains a lone surrogate"),
    ({"model": "x" * 100_000}, "no registered model"),
    ({"since": "yesterday"}, "not an ISO 8601 time"),
    ({"since": "2025-01-01\ud800"}, "not an ISO 8601 time"),
    ({"until": float("nan")}, "not a time"),
    ({"since": True}, "not a time"),
    ({"since": 1e300}, "out of range"),
    ({"since": "2025-02-01", "until": "2025-01-01"}, "must be after since"),
    ({"since": "2999-01-01"}, "in the future"),
    ({"settle": "soon"}, "settle period"),
    ({"settle": 0}, "settle period"),
    ({"settle": float("inf")}, "settle period"),
    ({"settle": "x" * 10_000}, "settle period"),
    ({"settle": "9" * 5000 + "h"}, "settle period"),
    ({"settle": -3600}, "settle period"),
])
def test_bad_arguments_are_refused_clearly(client, options, message):
    with pytest.raises((InvalidArgument, NotFound), match=message):
        kpis(client, **options)


def test_parse_settle():
    assert parse_settle("24h") == dt.timedelta(hours=24)
    assert parse_settle(90) == dt.timedelta(seconds=90)
    with pytest.raises(InvalidArgument, match="settle period"):
        parse_settle(None)


def test_json_is_the_result(history):
    d = kpis(history).to_dict()
    assert d["overall"]["success_rate"] == 0.5 and d["overall"]["deployments"] == 4
    assert d["reproducibility_rate"] is None and "cairn reproduce" in d["reproducibility_note"]
    assert d["releases"][0]["started"] == "2025-01-06T00:00:00.000+00:00"
    assert d["compliance"][1]["ok"] is False and d["models"]["fraud"]["rollbacks"] == 2
    assert json.loads(json.dumps(d)) == d


def test_cli_json_and_table(history, tracking):
    runner = CliRunner()
    out = runner.invoke(cli, ["--store", str(tracking), "kpi", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["overall"]["failed"] == 2 and d["overall"]["compliant"] == 1
    assert d["rollbacks"][1]["track"] == f"serve:{HOST}"

    out = runner.invoke(cli, ["--store", str(tracking), "kpi", "--model", "fraud",
                              "--settle", "1h"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "75%" in text and "fraud 1.0.3" in text and "not signed" in text
    assert "cairn reproduce" in text

    out = runner.invoke(cli, ["--store", str(tracking), "kpi", "--since", "nope"])
    assert out.exit_code == 1 and "Error:" in out.output and "ISO 8601" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(cli, ["--store", str(tracking), "kpi", "--model", "nope"])
    assert out.exit_code == 1 and "no registered model" in out.output


def test_cli_on_a_missing_store_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere"
    out = CliRunner().invoke(cli, ["--store", str(missing), "kpi"])
    assert out.exit_code == 1 and "no Cairn store" in out.output
    assert not missing.exists()


def test_through_a_team_server(cairn_server, tmp_path, cairn_clock):
    """The same reads over a server's REST API: history, requests, keys and lineage."""
    client = cairn.Client(cairn_server, user="alice")
    cairn_clock.set(T0 - HOUR)
    _trained(client, tmp_path, "fraud", 1, version="1.0.0")
    client.register_model("fraud", _model(2), version="1.0.1")
    cairn_clock.set(T0)
    client.transition_model_version_stage("fraud", "1.0.0", "production")
    cairn_clock.set(T0 + 2 * DAY)
    client.transition_model_version_stage("fraud", "1.0.1", "production")
    cairn_clock.set(T0 + 2 * DAY + 10 * MIN)
    client.rollback("fraud", reason="errors")
    cairn_clock.set(T0 + 3 * DAY)
    k = kpis(client)
    assert [(r.version, r.outcome) for r in k.releases] == [
        ("1.0.0", "succeeded"), ("1.0.1", "failed"), ("1.0.0", "restored")]
    assert [(r.version, r.after_s) for r in k.rollbacks] == [("1.0.1", 600.0)]
    (c,) = k.compliance
    assert (c.version, c.approval, c.signature, c.lineage) == ("1.0.0", False, False, True)


def test_champion_moved_back_is_a_rollback(client, cairn_clock):
    for seed in (1, 2, 3):
        client.register_model("churn", _model(seed), version=f"1.0.{seed - 1}")
    cairn_clock.set(T0)
    client.set_alias("churn", "champion", "1.0.0")
    cairn_clock.set(T0 + HOUR)
    client.set_alias("churn", "champion", "1.0.1")
    cairn_clock.set(T0 + 3 * HOUR)
    client.set_alias("churn", "champion", "1.0.0")   # back: a rollback of 1.0.1
    cairn_clock.set(T0 + 2 * DAY)
    client.set_alias("churn", "champion", "1.0.2")   # forward again: a new release
    cairn_clock.set(T0 + 2 * DAY + HOUR)
    client.set_alias("churn", "champion", "1.0.1")   # older than 1.0.2 and held it: rollback
    cairn_clock.set(T0 + 3 * DAY)
    client.set_alias("churn", "other", "1.0.2")      # not a production alias
    k = kpis(client)
    assert [(r.version, r.outcome, r.track) for r in k.releases] == [
        ("1.0.0", "succeeded", "@champion"), ("1.0.1", "failed", "@champion"),
        ("1.0.0", "restored", "@champion"), ("1.0.2", "failed", "@champion"),
        ("1.0.1", "restored", "@champion")]
    assert [(r.version, r.to, r.after_s) for r in k.rollbacks] == [
        ("1.0.1", "1.0.0", 7200.0), ("1.0.2", "1.0.1", 3600.0)]
    (c,) = k.compliance
    assert (c.version, c.held_by, c.approval) == ("1.0.1", ("@champion",), False)


def test_a_server_alone_restarts_and_stops(client, cairn_clock):
    """Without any stage or alias: the server's primary arm is the production track; a
    restart of the same version an instant later is the same release."""
    for seed in (1, 2):
        client.register_model("churn", _model(seed), version=f"1.0.{seed - 1}")
    cairn_clock.set(T0)
    client.record_deployment("churn", "1.0.0", "start", deployment=HOST)
    cairn_clock.set(T0 + DAY)
    client.record_deployment("churn", "1.0.0", "stop", deployment=HOST)
    client.record_deployment("churn", "1.0.0", "start", deployment=HOST)   # same instant
    cairn_clock.set(T0 + 2 * DAY)
    client.record_deployment("churn", "1.0.1", "switch", deployment=HOST, previous="1.0.0")
    client.record_deployment("churn", "1.0.1", "start", deployment="other:1", arm="canary")
    cairn_clock.set(T0 + 5 * DAY)
    client.record_deployment("churn", "1.0.1", "stop", deployment=HOST)
    k = kpis(client)
    assert [(r.version, r.started, r.ended, r.outcome, r.track) for r in k.releases] == [
        ("1.0.0", T0, T0 + 2 * DAY, "succeeded", f"serve:{HOST}"),
        ("1.0.1", T0 + 2 * DAY, T0 + 5 * DAY, "succeeded", f"serve:{HOST}")]
    assert k.rollbacks == () and k.overall.success_rate == 1.0
    assert k.compliance == ()  # nothing in Production or under @champion now


def test_a_rollback_in_the_window_of_a_release_before_it(client, cairn_clock):
    for seed in (1, 2):
        client.register_model("churn", _model(seed), version=f"1.0.{seed - 1}")
    cairn_clock.set(T0)
    client.transition_model_version_stage("churn", "1.0.0", "production")
    cairn_clock.set(T0 + DAY)
    client.transition_model_version_stage("churn", "1.0.1", "production")
    cairn_clock.set(T0 + 3 * DAY)
    client.rollback("churn")                    # two days on: a rollback, not a failure
    cairn_clock.set(T0 + 4 * DAY)
    k = kpis(client, since="2025-01-08")        # T0 + 2d
    # Both releases started before the window; only the restoring is in it.
    assert [(r.version, r.outcome) for r in k.releases] == [("1.0.0", "restored")]
    assert k.overall.deployments == 0 and k.overall.success_rate is None
    assert [(r.version, r.after_s) for r in k.rollbacks] == [("1.0.1", 2 * 86400.0)]
    whole = kpis(client)
    assert [(r.version, r.outcome) for r in whole.releases] == [
        ("1.0.0", "succeeded"), ("1.0.1", "succeeded"), ("1.0.0", "restored")]


def test_a_deleted_production_version_leaves_production(client, cairn_clock):
    client.register_model("churn", _model(1))
    cairn_clock.set(T0)
    client.transition_model_version_stage("churn", "1.0.0", "production")
    cairn_clock.set(T0 + HOUR)
    client.delete_model_version("churn", "1.0.0", force=True)
    cairn_clock.set(T0 + 2 * DAY)
    k = kpis(client)
    assert [(r.version, r.ended, r.outcome) for r in k.releases] == [
        ("1.0.0", T0 + HOUR, "succeeded")]
    assert k.compliance == () and k.overall.production_versions == 0


def test_cli_help_names_the_production_tracks_the_kpis_use():
    """@production names the stage (no alias may be called so): the help must not offer
    it as a track of its own, and must name each alias that is one."""
    from cairn.monitoring.kpi import PRODUCTION_ALIASES

    out = CliRunner().invoke(cli, ["kpi", "--help"])
    assert out.exit_code == 0
    text = " ".join(out.output.split())
    assert "@production" not in text
    assert all(f"@{a}" in text for a in PRODUCTION_ALIASES)
