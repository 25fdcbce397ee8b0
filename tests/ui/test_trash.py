"""Delete and restore in Chromium: runs, experiments, model versions and data set versions go
to the Trash page and come back from it; a protected model version shows why it is refused.

A store of its own (the shared world's runs and versions stay as other tests expect them),
a real server, Debian's Chromium. No test allows a console error: a protected version's
refusal is asked for first (GET .../protected), never provoked as a 409.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import STATIC, Page
from .world import T0, write_run


@pytest.fixture(scope="module")
def trash_world():
    """Experiments "keep" (runs r0-r3) and "doomed" (runs d0, d1); model "churn": 1.0.0 in
    Production with alias @champion (protected) and 1.1.0 in Development; data set
    "shards" with two versions, the second an input of model "fed" (protected)."""
    from sklearn.linear_model import LogisticRegression

    import cairn
    from cairn.entities import RunStatus

    tmp = Path(tempfile.mkdtemp(prefix="cairn-ui-trash-"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))
            client = cairn.Client(str(tmp / "store"), user="ann")
            ids: dict[str, str] = {}
            for exp, names in (("keep", ["r0", "r1", "r2", "r3"]), ("doomed", ["d0", "d1"])):
                e = client.create_experiment(exp).id
                ids[exp] = e
                for i, n in enumerate(names):
                    ids[n] = write_run(client.store, e, exp, n, {"i": i}, {},
                                       {"loss": (np.array([0]), np.array([T0]),
                                                 np.array([1.0 / (i + 1)]))},
                                       T0 + i * 1000, RunStatus.FINISHED)
            X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]])
            y = np.array([0, 1, 0, 1])
            for C in (1.0, 0.5):
                client.register_model("churn", LogisticRegression(C=C).fit(X, y))
            client.transition_model_version_stage("churn", "1.0.0", "Production")
            client.set_alias("churn", "champion", "1.0.0")
            src = tmp / "shard.csv"
            for rows in (3, 5):
                src.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(rows)))
                client.data.add(src, "shards", f"{rows} rows")
            # shards@2 trained model "fed" 1.0.0: protected from deletion.
            feed = client.create_experiment("feed").id
            run = write_run(client.store, feed, "feed", "trainer", {}, {}, {}, T0,
                            RunStatus.FINISHED)
            client.log_input(run, "shards@2", role="train")
            client.register_model("fed", LogisticRegression().fit(X, y), run_id=run)
            client.store.close()
        yield tmp / "store", ids
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def trash_server(trash_world):
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the web UI is not built ({STATIC} has no index.html): run `make ui`")
    store = LocalStore(trash_world[0])
    try:
        with ThreadedServer(create_app(store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture
def tab(browser, trash_server, tmp_path):
    import os

    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    t = Page(browser, trash_server, shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _trash_row(page, name):
    return page.locator("table.trash tbody tr", has_text=name)


def test_a_run_deleted_from_the_table_is_in_the_trash_and_comes_back(tab, trash_world):
    _, ids = trash_world
    page = tab.goto(f"/?experiments={ids['keep']}")
    rows = page.locator(".vt-row")
    expect(rows).to_have_count(4)
    delete = page.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_disabled()  # nothing ticked
    page.get_by_label("select r1").check()
    page.get_by_label("select r2").check()
    expect(page.get_by_role("button", name="Delete (2)")).to_be_enabled()

    # Cancel keeps them; the dialog is modal and Escape closes it.
    page.get_by_role("button", name="Delete (2)").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete 2 runs?")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(rows).to_have_count(4)

    page.get_by_role("button", name="Delete (2)").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".ok")).to_contain_text("Deleted 2 runs")
    expect(rows).to_have_count(2)
    expect(page.locator(".vt-row", has_text="r1")).to_have_count(0)

    # "show deleted": the table of the runs in the trash, where the action is Restore.
    page.get_by_label("show deleted").check()
    expect(rows).to_have_count(2)
    expect(page.locator(".vt-row", has_text="r2")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"[?&]deleted=1$"))  # a link to this table
    page.get_by_label("show deleted").uncheck()
    expect(rows).to_have_count(2)

    page = tab.goto("/trash")
    for n in ("r1", "r2"):
        expect(_trash_row(page, n)).to_contain_text("run")
        expect(_trash_row(page, n)).to_contain_text("in keep")
    tab.shot("trash")
    _trash_row(page, "r1").get_by_role("button", name="Restore").click()
    expect(page.locator(".ok")).to_contain_text("Restored run r1")
    expect(_trash_row(page, "r1")).to_have_count(0)

    page = tab.goto(f"/?experiments={ids['keep']}")
    expect(rows).to_have_count(3)
    expect(page.locator(".vt-row", has_text="r1")).to_have_count(1)


def test_a_run_page_deletes_and_restores_its_run(tab, trash_world):
    _, ids = trash_world
    page = tab.goto(f"/runs/{ids['r3']}")
    page.get_by_role("button", name="Delete run").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".trash-notice")).to_contain_text("This run is in the trash")
    restore = page.get_by_role("button", name="Restore run")
    expect(restore).to_be_visible()
    page = tab.goto("/trash")
    expect(_trash_row(page, "r3")).to_have_count(1)
    page = tab.goto(f"/runs/{ids['r3']}")
    page.get_by_role("button", name="Restore run").click()
    expect(page.get_by_role("button", name="Delete run")).to_be_visible()
    expect(page.locator(".trash-notice")).to_have_count(0)


def test_an_experiment_goes_to_the_trash_with_its_runs_and_comes_back(tab, trash_world):
    _, ids = trash_world
    page = tab.goto(f"/?experiments={ids['doomed']}")
    expect(page.locator(".vt-row")).to_have_count(2)
    page.get_by_role("button", name="delete experiment doomed").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Its runs go with it")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".ok")).to_contain_text("Deleted experiment doomed")
    page.get_by_role("button", name="All experiments").click()
    expect(page.locator(".menu-item", has_text="doomed")).to_have_count(0)

    page = tab.goto("/trash?kind=experiment")
    row = _trash_row(page, "doomed")
    expect(row).to_contain_text("experiment")
    row.get_by_role("button", name="restore experiment doomed").click()
    expect(page.locator(".ok")).to_contain_text("Restored experiment doomed")
    page.get_by_role("link", name="doomed").click()
    expect(page.locator(".vt-row")).to_have_count(2)


def test_a_model_version_goes_to_the_trash_and_a_protected_one_says_why(tab, trash_world):
    page = tab.goto("/models/churn")
    protected = page.locator('tr[data-version="1.0.0"]')
    protected.get_by_role("button", name="delete version 1.0.0").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("churn 1.0.0 is protected")
    expect(dialog).to_contain_text("Production")
    expect(dialog).to_contain_text("champion")
    tab.shot("trash-protected")
    dialog.get_by_role("button", name="Cancel").click()  # nothing was sent, nothing refused
    expect(protected).to_have_count(1)

    plain = page.locator('tr[data-version="1.1.0"]')
    plain.get_by_role("button", name="delete version 1.1.0").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".ok")).to_contain_text("churn 1.1.0 deleted")
    expect(plain).to_have_count(0)

    page = tab.goto("/trash?kind=model_version")
    row = _trash_row(page, "1.1.0")
    expect(row).to_contain_text("model version")
    row.get_by_role("button", name="Restore").click()
    expect(page.locator(".ok")).to_contain_text("Restored model version")
    page = tab.goto("/models/churn")
    expect(page.locator('tr[data-version="1.1.0"]')).to_have_count(1)


def test_a_protected_model_version_is_deleted_only_when_forced_twice(tab, trash_world):
    page = tab.goto("/models/churn")
    row = page.locator('tr[data-version="1.0.0"]')
    row.get_by_role("button", name="delete version 1.0.0").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete anyway…").click()
    second = page.get_by_role("dialog")
    expect(second).to_contain_text("Force the deletion of version churn 1.0.0?")
    second.get_by_role("button", name="Cancel").click()  # the second answer counts too
    expect(row).to_have_count(1)

    row.get_by_role("button", name="delete version 1.0.0").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete anyway…").click()
    page.get_by_role("dialog").get_by_role("button", name="Force delete").click()
    expect(page.locator(".ok")).to_contain_text("churn 1.0.0 deleted")
    expect(row).to_have_count(0)
    page = tab.goto("/trash?kind=model_version")
    _trash_row(page, "1.0.0").get_by_role("button", name="Restore").click()
    expect(page.locator(".ok")).to_contain_text("Restored model version")


def test_a_data_set_version_goes_to_the_trash_and_comes_back(tab, trash_world):
    page = tab.goto("/datasets/shards")
    first = page.locator('table.versions tr[data-version="1"]')
    expect(first).to_have_count(1)
    first.get_by_role("button", name="delete version 1").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete data set version shards@1?")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".ok")).to_contain_text("shards@1 deleted")
    expect(first).to_have_count(0)
    expect(page.locator('table.versions tr[data-version="2"]')).to_have_count(1)

    page = tab.goto("/trash?kind=dataset_version")
    row = _trash_row(page, "shards@1")
    expect(row).to_contain_text("data set version")
    expect(row).to_contain_text("local")  # who deleted it
    row.get_by_role("button", name="Restore").click()
    expect(page.locator(".ok")).to_contain_text("Restored data set version")
    page = tab.goto("/datasets/shards")
    expect(page.locator('table.versions tr[data-version="1"]')).to_have_count(1)


def test_a_protected_data_set_version_says_why_and_is_forced_only_twice(tab, trash_world):
    page = tab.goto("/datasets/shards")
    row = page.locator('table.versions tr[data-version="2"]')
    row.get_by_role("button", name="delete version 2").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("data set version shards@2 is protected")
    expect(dialog).to_contain_text("it is an input of registered model version fed/1.0.0")
    dialog.get_by_role("button", name="Delete anyway…").click()  # auth off: the local admin
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(row).to_have_count(1)  # nothing was sent
