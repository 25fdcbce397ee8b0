"""Reports on every backend (local store, PostgreSQL used directly, a real server over
HTTP): saved with an author, panels checked and resolved where they enter (nothing is
stored otherwise), data drawn now, exported as one HTML file.

The backends and users are test_collab_conformance's: alice edits, bob and vera view,
root is an admin.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from cairn.collab import collab_for
from cairn.collab.reports import panel_blocks, series_json
from cairn.errors import InvalidArgument, NotFound, PermissionDenied

from .test_collab_conformance import backend  # noqa: F401  (a fixture, used by name)
from .test_collab_conformance import pg_database  # noqa: F401


def panel(**spec) -> str:
    return "```cairn-panel\n" + json.dumps(spec) + "\n```\n"


@pytest.fixture
def rworld(backend):  # noqa: F811
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    alice = backend.client("alice")
    exp = alice.create_experiment("reports").id
    runs = []
    for lr in (0.1, 0.01):
        r = alice.create_run(exp, name=f"lr-{lr}", params={"lr": lr})
        for step in range(5):
            alice.log_metric(r.id, "loss", 1 / (step + 1) + lr, step=step)
        alice.set_tag(r.id, "team", "fraud")
        alice.set_terminated(r.id)
        runs.append(r.id)
    X = np.arange(12, dtype=float).reshape(6, 2)
    mv = alice.register_model("clf", LogisticRegression().fit(X, [0, 1] * 3))
    alice.transition_model_version_stage("clf", mv.version, "staging")
    body = ("# Weekly\n\nLoss went **down**.\n\n"
            + panel(type="metric", run=runs[0], key="loss", title="Loss")
            + "\nSide by side:\n\n"
            + panel(type="compare", runs=runs, columns=["metrics.loss", "params.lr", "tags.team"],
                    key="loss")
            + panel(type="stages", model="clf"))
    return {"exp": exp, "runs": runs, "body": body, "version": mv.version,
            "a": collab_for(alice), "v": collab_for(backend.client("vera")),
            "root": collab_for(backend.client("root"), admin=True)}


def test_a_report_round_trips_with_its_author_and_panels(rworld):
    a, v, root, runs = rworld["a"], rworld["v"], rworld["root"], rworld["runs"]
    r = a.save_report("weekly", rworld["body"])
    assert (r.name, r.author, r.updated_by, r.url) == ("weekly", "alice", "alice",
                                                       "/reports/weekly")
    assert [p["type"] for p in r.panels] == ["metric", "compare", "stages"]
    assert r.panels[0]["run"] == runs[0] and r.panels[1]["runs"] == runs
    assert r.experiment_ids == (rworld["exp"],) and r.models == ("clf",)
    got = v.get_report("weekly")
    assert (got.body, got.author, got.experiment_ids) == (rworld["body"], "alice", r.experiment_ids)
    assert [x.name for x in v.reports()] == ["weekly"]
    with pytest.raises(PermissionDenied):
        v.delete_report("weekly")
    again = root.save_report("weekly", "# Rewritten\n")
    assert (again.author, again.updated_by, again.panels) == ("alice", "root", ())
    a.delete_report("weekly")
    assert a.reports() == []
    with pytest.raises(NotFound):
        a.get_report("weekly")


def test_report_data_is_drawn_from_current_data(rworld):
    a = rworld["a"]
    a.save_report("weekly", rworld["body"])
    snap = rworld["v"].report_data("weekly")
    assert (snap["name"], snap["author"], snap["body"]) == ("weekly", "alice", rworld["body"])
    metric, compare, stages = snap["panels"]
    assert metric["spec"]["type"] == "metric" and "experiments" not in metric["spec"]
    series = metric["data"]["series"]
    assert series["exact"] and series["steps"] == [0, 1, 2, 3, 4]
    assert math.isclose(series["values"][0], 1.1)
    assert metric["data"]["run"]["name"] == "lr-0.1"
    assert [r["name"] for r in compare["data"]["runs"]] == ["lr-0.1", "lr-0.01"]
    assert compare["data"]["runs"][1]["cells"][1:] == ["0.01", "fraud"]
    assert [(x["name"], x["count"]) for x in compare["data"]["series"]] == [("lr-0.1", 5),
                                                                          ("lr-0.01", 5)]
    kinds = [(e["kind"], e["to"]) for e in stages["data"]["events"]]
    assert kinds[0][0] == "register" and kinds[-1][0] == "stage"
    assert kinds[-1][1].lower() == "staging"
    # panels are live: a new point shows the next time the data is drawn
    alice = rworld["a"].client
    other = alice.create_run(rworld["exp"], name="late")
    alice.log_metric(other.id, "loss", 0.5)
    alice.set_terminated(other.id)
    a.save_report("late", panel(type="metric", run=other.id, key="loss"))
    assert a.report_data("late")["panels"][0]["data"]["series"]["count"] == 1


@pytest.mark.parametrize("body, error, match", [
    (panel(type="pie", run="x"), InvalidArgument, r"panel 1 \(line 1\) has unknown type 'pie'"),
    ("text\n\n" + panel(type="metric", key="loss"), InvalidArgument, r"panel 1 \(line 3\).*'run'"),
    (panel(type="metric", run="0" * 32, key="loss"), NotFound, "panel 1 .*no run '0{32}'"),
    (panel(type="stages", model="clf") + panel(type="stages", model="nope"), NotFound,
     "panel 2 .*no model 'nope'"),
    (panel(type="compare", runs=[], columns=["metrics.loss"]), InvalidArgument, "'runs'"),
    (panel(type="compare", runs=["RUN"], columns=["loss"]), InvalidArgument, "metrics.NAME"),
    (panel(type="metric", run="RUN", key="loss", colour="red"), InvalidArgument, "unknown keys"),
    ("```cairn-panel\n{not json\n```", InvalidArgument, "panel 1 .*not a JSON object"),
    ("```cairn-panel\n[1]\n```", InvalidArgument, "must be a JSON object"),
    ("```cairn-panel\n{\"type\": \"metric\", \"run\": NaN}\n```", InvalidArgument, "JSON"),
    ("x" * (256 * 1024 + 1), InvalidArgument, "256 KiB"),
    ("bad \ud800", InvalidArgument, "surrogate"),
])
def test_bad_panels_are_refused_naming_the_panel_and_nothing_is_stored(rworld, body, error,
                                                                        match):
    a = rworld["a"]
    with pytest.raises(error, match=match):
        a.save_report("bad", body.replace("RUN", rworld["runs"][0]))
    assert a.reports() == []


@pytest.mark.parametrize("name", ["", "a/b", " x", "x" * 129, "\x00"])
def test_bad_names_are_refused(rworld, name):
    with pytest.raises(InvalidArgument, match="report name"):
        rworld["a"].save_report(name, "# x")
    assert rworld["a"].reports() == []


def test_an_export_is_one_html_file_with_the_data_inlined(rworld):
    a = rworld["a"]
    a.save_report("weekly", rworld["body"] + "\n<script>alert(1)</script> </script><!--\n")
    page = a.export_report("weekly")
    assert page.startswith("<!doctype html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # nothing is fetched: no src= or href= to anywhere but data:
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?!data:)[^"'\s>]+""", page) == []
    # the report's text is in the JSON only, where it cannot close the element
    head, data = page.split('<script type="application/json" id="cairn-report-data">')
    data = data.split("</script>")[0]
    assert "<" not in data and ">" not in data
    snap = json.loads(data)
    assert snap["body"].endswith("<script>alert(1)</script> </script><!--\n")
    assert [p["spec"]["type"] for p in snap["panels"]] == ["metric", "compare", "stages"]
    assert page.count("<script") == 2


def test_panel_blocks_follow_the_uis_fences():
    body = ("```cairn-panel\nA\n```\n> ```cairn-panel\n> quoted\n```\n"
            "~~~~ cairn-panel \nB\n~~~~\n```python\nC\n```\n```cairn-panel\nunclosed")
    assert [s for _, s in panel_blocks("```cairn-panel\nA\n```")] == ["A"]
    assert [s for _, s in panel_blocks("~~~~ cairn-panel \nB\n~~~~\n")] == ["B"]
    assert [s for _, s in panel_blocks("```python\nC\n```\n```cairn-panel\nD")] == ["D"]
    # A quote's lines start with '>', so "> ```cairn-panel" is no panel (the UI shows it as
    # code inside the quote); the bare ``` after it opens a fence that runs to "```python",
    # and the next bare ``` one that "```cairn-panel" closes: only A is a panel, as in the UI.
    assert panel_blocks(body) == [(1, "A")]


def test_long_series_become_an_envelope_that_keeps_spikes():
    import numpy as np

    n = 10_000
    values = np.zeros(n)
    values[1234] = 99.0
    values[5000] = float("nan")
    s = series_json(np.arange(n), np.arange(n) * 1000, values, points=100)
    assert (s["exact"], s["count"], len(s["steps"])) == (False, n, 100)
    assert max(s["max"]) == 99.0 and s["steps"][-1] == n - 1
    assert series_json(np.arange(3), np.arange(3), np.array([1.0, float("inf"), 2.0]))[
        "values"] == [1.0, "Infinity", 2.0]
