"""Data set pages and the lineage graph in Chromium."""

from __future__ import annotations

from playwright.sync_api import expect


def test_data_set_versions_files_and_diff(ui):
    page = ui.goto("/datasets")
    row = page.locator("table.datasets tbody tr", has_text="digits-data")
    expect(row).to_contain_text("@gold → 2")
    row.get_by_role("link", name="digits-data").click()
    expect(page.locator("table.versions tbody tr")).to_have_count(2)
    expect(page.locator("h2", has_text="digits-data@2")).to_be_visible()
    tree = page.locator("ul.tree").first
    expect(tree).to_contain_text("train/")
    expect(tree).to_contain_text("README.md")
    stats = page.locator(".table-stats", has_text="train/part.csv")
    expect(stats.locator("h4")).to_contain_text("41 rows")
    expect(stats.locator("tbody tr", has_text="label")).to_contain_text("int64")
    expect(page.locator(".quality li.passed")).to_have_count(4)  # 2 checks x 2 CSV files
    page.get_by_role("button", name="Diff").click()
    diff = page.locator(".diff-box")
    expect(diff).to_contain_text("1 added, 0 removed, 1 changed")
    expect(diff.locator("tr.ch-added")).to_contain_text("README.md")
    expect(diff.locator("tr.ch-changed")).to_contain_text("train/part.csv")
    ui.shot("dataset")
    page.get_by_role("link", name="@1").click()
    expect(page.locator("h2", has_text="digits-data@1")).to_be_visible()
    assert page.url.endswith("/datasets/digits-data?version=1")


def test_lineage_from_a_model_version_reaches_data_and_run(ui, world):
    page = ui.goto(f"/lineage?node=model:digits@{world.versions[1].version}")
    graph = page.locator("svg.graph")
    expect(graph.locator(".node.root")).to_contain_text("model")
    expect(graph.locator(".node.kind-dataset")).to_contain_text("digits-data")
    expect(graph.locator(".node.kind-run")).to_have_count(1)
    assert graph.locator(".edge").count() >= 2
    ui.shot("lineage")
    graph.locator(".node.kind-run").click()  # centre on the run
    expect(page).to_have_url(f"{ui.base}/lineage?node=run%3A{world.runs['cnn-lr0.01-s0']}"
                             "&direction=both")
    expect(graph.locator(".node.root")).to_contain_text("run")
    graph.locator(".node.root").click()  # the centred node opens its page
    expect(page).to_have_url(f"{ui.base}/runs/{world.runs['cnn-lr0.01-s0']}")
