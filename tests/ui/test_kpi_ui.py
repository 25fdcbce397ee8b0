"""The KPIs page in Chromium, and its API route (GET /api/v1/ui/kpi).

A small store of its own, its history written at known times (the test clock, as
tests/monitoring/test_kpi.py does), all long settled by now:

- T0        fraud 1.0.0 (trained on a data set, signed) goes to Production by an approved
            request: release A, which succeeds
- T0+1d     fraud 1.1.0 (no run, unsigned) by an approved request: release B
- T0+1d2h   Production rolled back: B failed after 2 h, 1.0.0 is back
- T0+2d     churn 1.0.0 (no run, unsigned) moved to Production directly: succeeds, and is
            in production without approval, signature or lineage
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import STATIC, Page

UTC = dt.timezone.utc
T0 = int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)  # a Monday
HOUR, DAY = 3_600_000, 86_400_000
UNTIL = "2025-02-03T00:00"  # four weeks after T0 (naive: UTC)


def _model(seed: int):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    import cairn
    from cairn import clock
    from cairn.store import close_store
    from cairn.testing import Clock

    root = tmp_path_factory.mktemp("kpi") / "store"
    fake = Clock(T0 - HOUR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(root.parent / "keys"))  # never the developer's keys
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        mp.setattr(clock, "time_ns", fake.time_ns)
        alice = cairn.Client(str(root), user="alice")
        bob = cairn.Client(str(root), user="bob")
        alice.create_signing_key("release")
        data_file = root.parent / "train.csv"
        data_file.write_text("a,b,c\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(9)))
        data = cairn.data.Datasets(alice).add(data_file, "transactions")
        run = alice.create_run(alice.get_or_create_experiment("training").id)
        alice.log_input(run.id, data.ref, role="train")
        alice.register_model("fraud", _model(1), run_id=run.id, version="1.0.0",
                             signing_key="release")
        alice.set_terminated(run.id)
        alice.register_model("fraud", _model(2), version="1.1.0")
        alice.set_stage_policy("fraud", "production", approvals=1)
        fake.set(T0)
        bob.approve(alice.request_transition("fraud", "1.0.0", "production").id)
        fake.set(T0 + DAY)
        bob.approve(alice.request_transition("fraud", "1.1.0", "production").id)
        fake.set(T0 + DAY + 2 * HOUR)
        alice.rollback("fraud", reason="precision fell")
        fake.set(T0 + 2 * DAY - HOUR)
        alice.register_model("churn", _model(3), version="1.0.0")
        fake.set(T0 + 2 * DAY)
        alice.transition_model_version_stage("churn", "1.0.0", "production")
        close_store(str(root))
    return root


@pytest.fixture(scope="module")
def kpi_server(store_root):
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the web UI is not built ({STATIC} has no index.html): run `make ui`")
    store = LocalStore(store_root)
    try:
        with ThreadedServer(create_app(store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture
def tab(browser, kpi_server, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)  # as conftest's ``ui``
    shots.mkdir(parents=True, exist_ok=True)
    t = Page(browser, kpi_server, shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _local_kpis(store_root, **options):
    import cairn
    from cairn.monitoring.kpi import kpis
    from cairn.store import close_store

    try:
        return kpis(cairn.Client(str(store_root)), **options).to_dict()
    finally:
        close_store(str(store_root))


def test_kpi_api_answers_what_cairn_kpi_computes(kpi_server, store_root):
    import httpx

    got = httpx.get(kpi_server + "/api/v1/ui/kpi", params={"until": UNTIL}, timeout=60)
    assert got.status_code == 200, got.text
    data = got.json()
    assert data == _local_kpis(store_root, until=UNTIL)
    o = data["overall"]
    assert (o["deployments"], o["succeeded"], o["failed"], o["pending"]) == (3, 2, 1, 0)
    assert o["rollbacks"] == 1 and o["mean_time_to_rollback_s"] == 7200
    assert o["rollbacks_per_week"] == 0.25
    assert (o["production_versions"], o["compliant"], o["with_approval"]) == (2, 1, 1)
    assert sorted(data["models"]) == ["churn", "fraud"]
    bad = [c for c in data["compliance"] if not c["ok"]]
    assert [(c["model"], c["version"]) for c in bad] == [("churn", "1.0.0")]
    assert [x.split(":")[0] for x in bad[0]["lacks"]] == ["approval", "signature", "lineage"]

    one = httpx.get(kpi_server + "/api/v1/ui/kpi", timeout=60,
                    params={"model": "fraud", "settle": "1h", "since": "2025-01-06T12:00",
                            "until": UNTIL}).json()
    assert one == _local_kpis(store_root, model="fraud", settle="1h",
                              since="2025-01-06T12:00", until=UNTIL)
    assert list(one["models"]) == ["fraud"] and one["settle_s"] == 3600
    assert one["overall"]["deployments"] == 1  # only 1.1.0 started after noon on T0
    assert one["overall"]["succeeded"] == 1  # settled in an hour, rolled back after two

    # The empty fields of the page's form are "not given".
    blank = httpx.get(kpi_server + "/api/v1/ui/kpi", params={"since": "", "until": " "},
                      timeout=60).json()
    assert blank["since"] is None and blank["overall"]["deployments"] == 3


@pytest.mark.parametrize("params, words", [
    ({"settle": "soon"}, "settle period"),
    ({"settle": "0s"}, "settle period"),
    ({"settle": "x" * 33}, "settle"),
    ({"since": "yesterday-ish"}, "since"),
    ({"since": "2025-01-01\x00"}, "NUL"),
    ({"since": "2" * 65}, "since"),
    ({"since": "2025-02-01", "until": "2025-01-01"}, "must be after since"),
    ({"model": "x" * 257}, "model"),
    ({"model": " "}, "model"),
])
def test_kpi_api_refuses_bad_parameters_with_400(kpi_server, params, words):
    import httpx

    r = httpx.get(kpi_server + "/api/v1/ui/kpi", params=params, timeout=30)
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]


def test_kpi_api_of_a_missing_model_is_404(kpi_server):
    import httpx

    assert httpx.get(kpi_server + "/api/v1/ui/kpi", params={"model": "nope"},
                     timeout=30).status_code == 404


def test_kpi_api_counts_only_the_models_the_caller_may_view(store_root):
    """Auth on: vic (viewer on fraud) sees fraud's numbers alone, an outsider nothing, and
    neither hears churn's name; asking for churn is refused."""
    from fastapi.testclient import TestClient

    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    token = "cairn_kpi-test-admin-token-0123456789"
    store = LocalStore(store_root)
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=token,
                                                    bootstrap_user="root", audit=False))
    try:
        with TestClient(app) as api:
            app.state.cairn.start()
            admin = {"authorization": f"Bearer {token}"}
            users = {}
            for user in ("outsider", "vic"):
                assert api.post("/api/v1/users", json={"name": user},
                                headers=admin).status_code == 201
                t = api.post(f"/api/v1/users/{user}/tokens", json={"name": "t"},
                             headers=admin).json()["token"]
                users[user] = {"authorization": f"Bearer {t}"}
            r = api.put("/api/v1/roles", json={"user": "vic", "resource_type": "model",
                                               "role": "viewer", "resource_id": "fraud"},
                        headers=admin)
            assert r.status_code == 200, r.text
            url = "/api/v1/ui/kpi"
            q = {"until": UNTIL}
            assert api.get(url, params=q).status_code == 401

            every = api.get(url, params=q, headers=admin).json()
            assert sorted(every["models"]) == ["churn", "fraud"]
            assert every["overall"]["deployments"] == 3

            vic = api.get(url, params=q, headers=users["vic"])
            assert vic.status_code == 200, vic.text
            seen = vic.json()
            assert list(seen["models"]) == ["fraud"]
            assert seen["overall"] == every["models"]["fraud"]
            assert (seen["overall"]["deployments"], seen["overall"]["production_versions"]) \
                == (2, 1)
            assert "churn" not in json.dumps(seen)

            out = api.get(url, params=q, headers=users["outsider"])
            assert out.status_code == 200, out.text
            nothing = out.json()
            assert nothing["models"] == {} and nothing["overall"]["deployments"] == 0
            assert nothing["releases"] == nothing["rollbacks"] == nothing["compliance"] == []
            text = json.dumps(nothing)
            assert "churn" not in text and "fraud" not in text

            for name in ("churn", "nope"):  # the same answer whether or not it exists
                assert api.get(url, params={"model": name},
                               headers=users["vic"]).status_code == 403
            assert api.get(url, params={"model": "fraud"},
                           headers=users["outsider"]).status_code == 403
    finally:
        store.close()


def test_kpi_page_shows_the_numbers_and_what_production_versions_lack(tab):
    page = tab.goto("/models")
    page.get_by_role("link", name="Governance KPIs").click()
    expect(page).to_have_url(f"{tab.base}/kpi")
    expect(page.locator("h1")).to_have_text("Governance KPIs")

    cards = page.locator(".kpi-cards")
    expect(cards.locator('[data-kpi="success_rate"] .kpi-value')).to_have_text("66.7%")
    expect(cards.locator('[data-kpi="change_failure_rate"] .kpi-value')).to_have_text("33.3%")
    expect(cards.locator('[data-kpi="rollbacks"] .kpi-value')).to_have_text("1")
    expect(cards.locator('[data-kpi="mean_time_to_rollback"] .kpi-value')).to_have_text("2h 0m")
    expect(cards.locator('[data-kpi="compliance_rate"] .kpi-value')).to_have_text("50%")
    expect(cards.locator('[data-kpi="reproducibility_rate"] .kpi-value')).to_have_text("not yet")

    table = page.locator("table.kpi")
    fraud = table.locator('tr[data-model="fraud"]')
    expect(fraud.locator("td")).to_have_count(15)
    expect(fraud.locator("td").nth(0)).to_have_text("2")  # deployments
    expect(fraud.locator("td").nth(4)).to_have_text("50%")  # success rate
    expect(fraud.locator("td").nth(13)).to_have_text("100%")  # compliant
    expect(table.locator('tr[data-model="churn"] td').nth(13)).to_have_text("0%")
    expect(table.locator('tr[data-model="all"] td').nth(0)).to_have_text("3")

    bad = page.locator("ul.noncompliant > li")
    expect(bad).to_have_count(1)
    expect(bad.first).to_have_attribute("data-model", "churn")
    expect(bad.first.locator("a")).to_have_text("churn 1.0.0")
    expect(bad.first.locator("a")).to_have_attribute("href", "/models/churn")
    lacks = bad.first.locator("ul.lacks li")
    expect(lacks).to_have_count(3)
    expect(lacks.nth(0)).to_contain_text("approval")
    expect(lacks.nth(1)).to_contain_text("not signed")
    expect(lacks.nth(2)).to_contain_text("lineage")
    expect(page.locator("table.kpi-rollbacks tbody tr")).to_have_count(1)
    expect(page.locator('table.kpi-rollbacks tr[data-version="1.1.0"]')).to_contain_text("1.0.0")
    page.screenshot(path=str(tab.shots / "kpi.png"), full_page=True)

    # The form: one model, a window and a settle period, kept in the address.
    page.get_by_label("model").select_option("fraud")
    page.get_by_label("until").fill(UNTIL)
    page.get_by_label("settle period").fill("1h")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(f"{tab.base}/kpi?model=fraud&until={UNTIL.replace(':', '%3A')}"
                             "&settle=1h")
    expect(cards.locator('[data-kpi="success_rate"] .kpi-value')).to_have_text("100%")
    expect(cards.locator('[data-kpi="rollbacks"] .kpi-sub')).to_have_text("0.25 a week")
    expect(page.locator("table.kpi tbody tr")).to_have_count(1)
    expect(page.locator("ul.noncompliant")).to_have_count(0)

    # A settle period the server would refuse is caught before asking it (no 400 logged).
    page.get_by_label("settle period").fill("soon")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".kpi-form .error")).to_contain_text("settle period")
    page.get_by_label("settle period").fill("1h")
    page.get_by_label("since").fill("last tuesday")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".kpi-form .error")).to_contain_text("since \"last tuesday\"")
    expect(page.locator(".kpi-form .error")).to_have_count(1)
