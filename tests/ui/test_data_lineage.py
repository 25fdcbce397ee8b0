"""Data set pages and the lineage graph in Chromium."""

from __future__ import annotations

import itertools
from urllib.parse import quote

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


def test_unknown_data_set_or_version_says_so(ui):
    page = ui.goto("/datasets/no-such-data")  # and logs no console error (the fixture checks)
    expect(page.locator("h1")).to_have_text("Data set not found")
    expect(page.locator(".error")).to_contain_text("no-such-data")
    page = ui.goto("/datasets/digits-data?version=99")
    expect(page.locator("table.versions tbody tr")).to_have_count(2)
    expect(page.locator(".error")).to_contain_text("digits-data has no version 99")
    page = ui.goto("/datasets/digits-data?version=gold")  # an alias is a version too
    expect(page.locator("h2", has_text="digits-data@gold")).to_be_visible()
    expect(page.locator("ul.tree").first).to_contain_text("README.md")  # @gold is @2
    expect(page.locator(".error")).to_have_count(0)


def test_lineage_from_a_model_version_reaches_data_and_run(ui, world):
    page = ui.goto(f"/lineage?node=model:digits@{world.versions[1].version}")
    graph = page.locator("svg.graph")
    expect(graph.locator(".node.root")).to_contain_text("model")
    expect(graph.locator(".node.kind-dataset")).to_contain_text("digits-data")
    expect(graph.locator(".node.kind-run")).to_have_count(1)
    assert graph.locator(".edge").count() >= 2
    graph.locator(".node.kind-run").click()  # centre on the run
    expect(page).to_have_url(f"{ui.base}/lineage?node=run%3A{world.runs['cnn-lr0.01-s0']}"
                             "&direction=both")
    expect(graph.locator(".node.root")).to_contain_text("run")
    graph.locator(".node.root").click()  # the centred node opens its page
    expect(page).to_have_url(f"{ui.base}/runs/{world.runs['cnn-lr0.01-s0']}")


NODE_BOXES = """svg => [...svg.querySelectorAll('.node')].map(n => {
  const r = n.querySelector('rect').getBoundingClientRect();
  return [n.dataset.id, r.left, r.top, r.right, r.bottom];
})"""


def boxes(graph) -> dict[str, tuple[float, float, float, float]]:
    """Each node's box on the screen: (left, top, right, bottom)."""
    return {nid: tuple(b) for nid, *b in graph.evaluate(NODE_BOXES)}


def scale(graph) -> float:
    return float(graph.get_attribute("data-scale"))


def test_lineage_layout_ranks_left_to_right_without_overlaps_and_pans_and_zooms(ui, world):
    p = world.pipeline
    page = ui.goto(f"/lineage?node={quote(p['raw'])}&direction=both")
    graph = page.locator("svg.graph")
    expect(graph.locator(".node")).to_have_count(8)
    expect(graph.locator(".edge-group")).to_have_count(15)
    assert graph.get_attribute("data-rankdir") == "LR"
    at = boxes(graph)
    assert set(at) == set(p.values())
    frame = graph.bounding_box()
    for nid, (left, top, right, bottom) in at.items():  # fitted: every node in view
        assert frame["x"] - 1 <= left and right <= frame["x"] + frame["width"] + 1, nid
        assert frame["y"] - 1 <= top and bottom <= frame["y"] + frame["height"] + 1, nid
    for (a, ba), (b, bb) in itertools.combinations(at.items(), 2):  # no two boxes overlap
        assert ba[2] <= bb[0] or bb[2] <= ba[0] or ba[3] <= bb[1] or bb[3] <= ba[1], (a, b)
    edges = graph.locator(".edge-group").evaluate_all(
        "es => es.map(e => [e.dataset.source, e.dataset.target, e.dataset.relation])")
    for source, target, relation in edges:  # every edge runs rightwards, used -> made
        assert at[source][2] < at[target][0], (source, target, relation)
    # Ranks: the raw data set, the run that split it, the splits, the runs, the models.
    lefts = [at[p[k]][0] for k in ("raw", "prep", "train", "finetune-a", "sentiment-a")]
    assert lefts == sorted(lefts) and len(set(lefts)) == 5
    assert at[p["train"]][0] == at[p["test"]][0]

    # Hovering an edge names its relation.
    edge = graph.locator(f'.edge-group[data-source="{p["prep"]}"][data-target="{p["train"]}"]')
    x, y = edge.locator("path.edge").evaluate("""path => {
      const pt = path.getPointAtLength(path.getTotalLength() / 2);
      const s = new DOMPoint(pt.x, pt.y).matrixTransform(path.getScreenCTM());
      return [s.x, s.y];
    }""")
    page.mouse.move(x, y)
    expect(graph.locator('.edge-label[visibility="visible"]')).to_have_text("produced")
    ui.shot("lineage")

    # Zoom: the wheel zooms in around the cursor, the buttons step, "fit" shows it all.
    viewport = graph.locator("g.viewport")
    fitted, k0 = viewport.get_attribute("transform"), scale(graph)
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.mouse.wheel(0, -300)
    expect(viewport).not_to_have_attribute("transform", fitted)
    k1 = scale(graph)
    assert k1 > k0 * 1.2
    width = boxes(graph)[p["raw"]]
    assert abs((width[2] - width[0]) - 180 * k1) < 1  # the nodes grew with the scale
    page.get_by_role("button", name="zoom out").click()
    assert abs(scale(graph) - k1 / 1.25) < 1e-3
    page.get_by_role("button", name="zoom in").click()
    assert abs(scale(graph) - k1) < 1e-3

    # Pan: a drag moves the drawing and is no click (the page stays where it is).
    url, before = page.url, boxes(graph)
    cx, cy = frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 30, steps=5)
    page.mouse.move(cx + 120, cy + 40, steps=5)
    page.mouse.up()
    after = boxes(graph)
    for nid in before:
        assert abs(after[nid][0] - before[nid][0] - 120) < 1.5, nid
        assert abs(after[nid][1] - before[nid][1] - 40) < 1.5, nid
    assert page.url == url and scale(graph) == k1
    page.get_by_role("button", name="fit").click()
    expect(viewport).to_have_attribute("transform", fitted)
