"""The compare page in Chromium: overlaid charts, params diff, aggregation across seeds."""

from __future__ import annotations

from playwright.sync_api import expect


def test_overlay_diff_and_seed_aggregation(ui, world):
    names = [f"{m}-lr0.1-s{s}" for m in ("cnn", "mlp") for s in range(3)]
    page = ui.goto("/compare?runs=" + ",".join(world.runs[n] for n in names))
    expect(page.locator("h1")).to_have_text("Compare 6 runs")
    expect(page.locator(".run-list li")).to_have_count(6)

    chart = page.locator(".chart.big").first
    expect(chart).to_have_attribute("data-ready", "1")
    expect(chart.locator(".legend-item")).to_have_count(6)  # one line per run
    page.get_by_label("metric", exact=True).select_option("loss")
    expect(chart).to_have_attribute("data-metric", "loss")
    expect(chart).to_have_attribute("data-points", "600")

    # Params diff: only differing params by default, highlighted.
    diff = page.locator("table.diff")
    expect(diff.locator("tbody tr")).to_have_count(2)  # model and seed; lr and epochs agree
    expect(diff.locator("tr.differs")).to_have_count(2)
    page.locator("h2", has_text="Params").locator("input").uncheck()
    expect(diff.locator("tbody tr")).to_have_count(4)
    expect(diff.locator("tr.differs")).to_have_count(2)

    # Parallel coordinates over the params that differ (model, seed) and the metric; a scatter.
    page.get_by_label("parallel metric").select_option("accuracy")
    pc = page.locator("svg.parallel")
    expect(pc.locator(".pc-line")).to_have_count(6)
    expect(pc.locator(".pc-label")).to_have_text(["model", "seed", "accuracy"])
    page.get_by_label("scatter param").select_option("model")
    dots = page.locator("svg.scatter .sc-dot")
    expect(dots).to_have_count(6)
    xs = {round(float(d.get_attribute("cx"))) for d in dots.all()}
    assert len(xs) == 2  # two categories: cnn and mlp
    page.locator("h2", has_text="Params and metrics").evaluate("el => el.scrollIntoView()")
    ui.shot("compare-parallel")

    # Across seeds: two groups (cnn, mlp) of three seeds each, tested against each other.
    groups = page.locator("table.groups tbody tr")
    expect(groups).to_have_count(2)
    expect(groups.first).to_contain_text("model=cnn")
    expect(groups.first.locator("td").nth(1)).to_have_text("3")
    tests = page.locator("table.tests tbody tr")
    expect(tests).to_have_count(1)
    cells = tests.first.locator("td").all_inner_texts()
    assert cells[2:4] == ["3", "3"]
    assert 0 < float(cells[5]) <= 1 and 0 < float(cells[8]) <= 1
    agg = page.locator(".chart.big").nth(1)
    expect(agg.locator(".legend-item")).to_have_count(2)
    ui.shot("compare")
    page.locator("h2", has_text="Across seeds").evaluate("el => el.scrollIntoView()")
    ui.shot("compare-seeds")

    # A different grouping: everything but model and seed -> one group, nothing to test.
    page.get_by_label("across").fill("seed, model")
    page.get_by_role("button", name="Aggregate").click()
    expect(groups).to_have_count(1)
    expect(page.locator("text=One group only")).to_be_visible()


def test_compare_zoom_and_missing_runs(ui, world):
    a, b = world.runs["cnn-lr0.1-s0"], world.runs["cnn-lr0.1-s1"]
    page = ui.goto(f"/compare?runs={a},{b},nope")
    expect(page.locator(".error")).to_contain_text("not found: nope")
    page.get_by_label("metric", exact=True).select_option("loss")
    chart = page.locator(".chart.big").first
    expect(chart).to_have_attribute("data-metric", "loss")
    expect(chart).to_have_attribute("data-points", "200")
    over = chart.locator(".u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + 10, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] / 4, y)
    page.mouse.up()
    expect(chart.locator(".chart-info")).to_contain_text("zoomed")
    assert int(chart.get_attribute("data-points")) < 200


def test_too_many_groups_are_refused_on_the_page_without_asking(ui, world):
    runs = world.sweep[:30]  # lr and width go together (8 groups); width x seed: 30 groups
    page = ui.goto("/compare?runs=" + ",".join(runs))
    groups = page.locator("table.groups tbody tr")
    expect(groups).to_have_count(8)  # across seeds, as the page opens
    asked: list[str] = []
    page.on("request", lambda r: "/compare/aggregate" in r.url and asked.append(r.url))
    page.get_by_label("across").fill("lr")
    page.get_by_role("button", name="Aggregate").click()
    notice = page.locator(".too-many-groups")
    expect(notice).to_contain_text("These 30 runs make 30 groups")
    expect(notice).to_contain_text("at most 20")
    expect(groups).to_have_count(0)
    expect(page.locator(".chart.big").nth(1).locator(".legend-item")).to_have_count(0)
    assert asked == []  # no request the server would refuse (a 400 is a console error)
    assert not ui.errors

    page.get_by_label("across").fill("seed")  # back to a grouping the server answers
    page.get_by_role("button", name="Aggregate").click()
    expect(groups).to_have_count(8)
    expect(notice).to_have_count(0)
