"""A dashboard's significance panel: the runs of its query grouped across seeds, with the
same tables (and the same numbers) as the compare page; p values checked against scipy.
Every page fails its test if it logs a console error (tests/ui/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import Page

ACC = {("0.1", 0): 0.80, ("0.1", 1): 0.82, ("0.1", 2): 0.81,
       ("0.01", 0): 0.90, ("0.01", 1): 0.91, ("0.01", 2): 0.93}


@pytest.fixture(scope="module")
def sig_world(tmp_path_factory):
    import cairn
    from cairn.collab import collab_for
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    tmp = tmp_path_factory.mktemp("dash-sig")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        store = LocalStore(tmp / "store")
        client = cairn.Client(str(tmp / "store"), user="ann")
        exp = client.create_experiment("seeds").id
        for (lr, seed), acc in ACC.items():
            r = client.create_run(exp, name=f"lr{lr}-s{seed}", params={"lr": lr, "seed": seed})
            client.log_metric(r.id, "acc", acc)
            client.set_terminated(r.id)
        cairn.flush()
        collab_for(client).save_dashboard("seeds-board", [
            {"kind": "significance", "experiment_id": exp, "columns": ["metrics.acc"],
             "across": ["seed"], "title": "lr, across seeds"}])
    try:
        with ThreadedServer(create_app(store)) as url:
            yield {"url": url}
    finally:
        store.close()


@pytest.fixture
def tab(browser, sig_world, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    t = Page(browser, sig_world["url"], shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def test_a_significance_panel_groups_across_seeds_and_tests_the_groups(tab):
    from scipy import stats

    page = tab.goto("/dashboards/seeds-board")
    panel = page.locator("section.panel-significance")
    expect(panel.locator("table.groups tbody tr")).to_have_count(2)
    expect(panel.locator("table.tests tbody tr")).to_have_count(1)
    row = panel.locator("table.tests tbody tr").first.locator("td")
    a = [v for (lr, _s), v in ACC.items() if lr == "0.1"]
    b = [v for (lr, _s), v in ACC.items() if lr == "0.01"]
    welch = stats.ttest_ind(a, b, equal_var=False).pvalue
    shown = float(row.nth(5).inner_text())
    assert shown == pytest.approx(welch, abs=1e-4)
    assert row.nth(5).locator(".signif").count() == 1  # p < 0.05 is marked
