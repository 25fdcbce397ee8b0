"""Reports in the browser: Markdown with live panels (a run's metric chart, runs compared,
a model's stage history) rendered safely, edited in the page (a bad panel is named and
nothing is saved), downloaded as one HTML file; and that file opened from disk with
``file://`` and no server at all: its panels draw from the data it embeds, with no network
request and no console error.  Every page fails its test if it logs a console error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import Page

XSS = ('Watch: <script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> '
       '[click](javascript:window.__xss=3) [docs](https://example.com/docs) **bold**')
STEPS = 40


def panel(**spec) -> str:
    return "```cairn-panel\n" + json.dumps(spec) + "\n```\n"


def _seed(root: Path):
    """A store with experiment "sweep" (runs lr-0.1, lr-0.01, each STEPS points of loss) and
    model "clf" registered, then moved to staging and to production; a report over them."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import cairn
    from cairn.collab import collab_for
    from cairn.store.local import LocalStore

    store = LocalStore(root)
    client = cairn.Client(store.uri, user="ann")
    client._store = store
    exp = client.create_experiment("sweep").id
    runs = []
    for lr in (0.1, 0.01):
        r = client.create_run(exp, name=f"lr-{lr}", params={"lr": lr})
        for step in range(STEPS):
            client.log_metric(r.id, "loss", 1 / (step + 1) + lr, step=step)
        client.set_terminated(r.id)
        runs.append(r.id)
    X = np.arange(12, dtype=float).reshape(6, 2)
    mv = client.register_model("clf", LogisticRegression().fit(X, [0, 1] * 3), run_id=runs[1])
    client.transition_model_version_stage("clf", mv.version, "staging")
    client.transition_model_version_stage("clf", mv.version, "production")
    body = ("# Week 49\n\n" + XSS + "\n\n"
            + panel(type="metric", run=runs[1], key="loss", title="Loss of lr-0.01")
            + "\nSide by side:\n\n"
            + panel(type="compare", runs=runs, columns=["metrics.loss", "params.lr"], key="loss")
            + panel(type="stages", model="clf"))
    collab_for(client).save_report("week-49", body)
    return store, client, {"exp": exp, "runs": runs, "body": body}


@pytest.fixture(scope="module")
def rep_world(tmp_path_factory):
    from cairn.server import create_app

    tmp = tmp_path_factory.mktemp("reports-ui")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        store, client, w = _seed(tmp / "store")
    try:
        with ThreadedServer(create_app(store)) as url:
            yield {**w, "url": url, "client": client}
    finally:
        store.close()


@pytest.fixture
def tab(browser, rep_world, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    t = Page(browser, rep_world["url"], shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _stage_rows(client) -> int:
    from cairn.services import registry_for

    return sum(e.kind in ("register", "stage", "rollback")
               for e in registry_for(client).model_history("clf"))


def _check_rendered(page, stage_rows: int) -> None:
    """The report's panels drew, and its Markdown is text, not markup."""
    report = page.locator("article.report")
    expect(report.locator("h3").first).to_have_text("Week 49")
    chart = report.locator("section.panel-metric .chart[data-key=loss]")
    expect(chart).to_have_attribute("data-ready", "1")
    expect(chart).to_have_attribute("data-points", str(STEPS))
    expect(chart.locator("canvas")).to_have_count(1)
    both = report.locator("section.panel-compare .chart[data-key=loss]")
    expect(both).to_have_attribute("data-points", str(2 * STEPS))  # two runs' histories
    expect(both.locator(".legend")).to_contain_text("lr-0.1")
    rows = report.locator("section.panel-compare tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("lr-0.01")
    expect(rows.nth(1)).to_contain_text("0.01")
    history = report.locator("section.panel-stages table.stage-history tbody tr")
    expect(history).to_have_count(stage_rows)
    expect(history.last).to_contain_text("Production")
    body = report.locator(".markdown > p").first
    expect(body).to_contain_text("<script>window.__xss=1</script>")
    expect(body).to_contain_text('<img src=x onerror="window.__xss=2">')
    expect(body).to_contain_text("[click](javascript:window.__xss=3)")
    expect(body.locator("strong")).to_have_text("bold")
    assert body.locator("img, script").count() == 0
    assert page.evaluate("window.__xss") is None
    links = [a.get_attribute("href") for a in body.locator("a").all()]
    assert links == ["https://example.com/docs"]


def _open_offline(browser, path: Path, shots: Path, stage_rows: int) -> None:
    """Open an exported file from disk and check it drew, alone."""
    tab = Page(browser, "", shots)
    asked: list[str] = []
    url = path.resolve().as_uri()
    tab.page.on("request", lambda r: r.url != url and not r.url.startswith("data:")
                and asked.append(r.url))
    try:
        page = tab.goto(url)
        _check_rendered(page, stage_rows)
        expect(page.locator("article.report a[href^='/runs/']")).to_have_count(0)
        tab.shot("report-export")
    finally:
        errors = list(tab.errors)
        tab.page.close()
    assert not errors, errors
    assert asked == [], f"the exported file made requests: {asked}"


def test_a_report_draws_live_panels_and_is_downloaded(tab, rep_world, browser, tmp_path):
    client = rep_world["client"]
    rows = _stage_rows(client)
    page = tab.goto("/reports")
    page.get_by_role("link", name="week-49").click()
    expect(page).to_have_url(f"{tab.base}/reports/week-49")
    _check_rendered(page, rows)
    expect(page.locator(".report-head")).to_contain_text("by ann")
    tab.shot("report")
    # download: one file, which draws itself from disk
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download HTML").click()
    saved = tmp_path / "week-49.html"
    dl.value.save_as(saved)
    assert dl.value.suggested_filename == "week-49.html"
    _open_offline(browser, saved, tab.shots, rows)


def test_a_report_is_edited_in_the_page(tab, rep_world):
    from cairn.collab import collab_for

    talk = collab_for(rep_world["client"])
    page = tab.goto("/reports")
    page.get_by_label("report name").fill("scratch")
    page.get_by_role("button", name="New report").click()
    expect(page).to_have_url(f"{tab.base}/reports/scratch?edit=1")
    editor = page.get_by_label("report markdown")
    editor.fill("# Draft\n\n" + panel(type="pie", run="x"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[role=alert]")).to_contain_text("panel 1 (line 3) has unknown type 'pie'")
    assert talk.get_report("scratch").body == "# scratch\n"  # nothing was stored
    run = rep_world["runs"][0]
    editor.fill("# Draft\n\n" + panel(type="metric", run=run, key="loss"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("article.report section.panel-metric .chart")).to_have_attribute(
        "data-points", str(STEPS))
    expect(page.get_by_label("report markdown")).to_have_count(0)
    stored = talk.get_report("scratch")
    assert [p["run"] for p in stored.panels] == [run] and stored.author == "local"
    collab_for(rep_world["client"], admin=True).delete_report("scratch")


def test_an_export_opens_from_disk_with_no_server_running(browser, tmp_path, monkeypatch):
    """`cairn reports export` on a local store (no server anywhere), then file://."""
    from click.testing import CliRunner

    import cairn
    from cairn.cli.main import cli

    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    store, client, _ = _seed(tmp_path / "store")
    rows = _stage_rows(client)
    store.close()
    cairn.store.close_store(str(tmp_path / "store"))
    out = tmp_path / "shared" / "week-49.html"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "store"), "reports", "export",
                                      "week-49", "-o", str(out)])
    assert result.exit_code == 0, result.output
    cairn.store.close_store(str(tmp_path / "store"))
    _open_offline(browser, out, tmp_path, rows)
