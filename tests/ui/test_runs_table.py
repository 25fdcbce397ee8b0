"""The runs table in Chromium: experiments, virtualised rows, sorting, columns, filter, compare."""

from __future__ import annotations

from playwright.sync_api import expect


def names(page) -> list[str]:
    return page.locator(".vt-row .vt-td:nth-child(2)").all_inner_texts()


def test_search_sort_and_select_runs_to_compare(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['vision']}")
    expect(page.locator(".vt-status")).to_have_text("12 runs")
    expect(page.locator(".vt-row")).to_have_count(12)
    # Default columns: the first metrics and params, loaded lazily.
    expect(page.locator(".vt-th", has_text="accuracy")).to_be_visible()

    page.get_by_label("filter").fill("params.model = 'cnn' AND params.lr = '0.01'")
    expect(page.locator(".vt-status")).to_have_text("3 runs")
    assert sorted(names(page)) == ["cnn-lr0.01-s0", "cnn-lr0.01-s1", "cnn-lr0.01-s2"]
    assert "filter=" in page.url  # the search is part of the shareable URL

    page.get_by_label("filter").fill("params.model = 'cnn'")
    expect(page.locator(".vt-status")).to_have_text("6 runs")
    page.locator(".vt-th", has_text="Run").click()  # server-side order_by, descending first
    expect(page.locator(".vt-row").first).to_contain_text("cnn-lr0.1-s2")
    page.locator(".vt-th", has_text="Run").click()
    expect(page.locator(".vt-row").first).to_contain_text("cnn-lr0.01-s0")
    assert "sort=name%3AASC" in page.url or "sort=name:ASC" in page.url
    ui.shot("runs-table")

    page.get_by_label("select cnn-lr0.01-s0").check()
    page.get_by_label("select cnn-lr0.01-s1").check()
    page.get_by_role("button", name="Compare (2)").click()
    expect(page).to_have_url(f"{ui.base}/compare?runs={world.runs['cnn-lr0.01-s0']},"
                             f"{world.runs['cnn-lr0.01-s1']}")
    expect(page.locator("h1")).to_have_text("Compare 2 runs")


def test_bad_filter_is_shown_inline_and_keeps_the_rows(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['vision']}")
    expect(page.locator(".vt-status")).to_have_text("12 runs")
    page.get_by_label("filter").fill("metrics.loss >")
    expect(page.locator(".filter-error")).to_contain_text("expected a value")
    expect(page.get_by_label("filter")).to_have_class("filter invalid")
    expect(page.locator(".vt-row")).to_have_count(12)  # nothing lost
    page.get_by_label("filter").fill("tags.team = 'vision' AND metrics.accuracy > 0.5")
    expect(page.locator(".filter-error")).to_have_text("")
    expect(page.locator(".vt-status")).to_have_text("12 runs")


def test_thousands_of_runs_render_only_visible_rows(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['sweep']}&sort=name:ASC")
    expect(page.locator(".vt-status")).to_contain_text("500+ runs")
    rows = page.locator(".vt-row").count()
    assert 10 < rows < 80, rows  # a window of rows, not 500
    scroller = page.locator(".vt-scroll")
    for _ in range(6):  # scroll to the end: pages load on the way, in order
        scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_timeout(150)
    expect(page.locator(".vt-status")).to_have_text("2000 runs", timeout=15_000)
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(page.locator(".vt-row").last).to_contain_text("sweep-01999")
    assert page.locator(".vt-row").count() < 80


def test_column_chooser_adds_a_param_column_and_sorts_by_it(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['sweep']}&columns=")
    expect(page.locator(".vt-status")).to_contain_text("runs")
    page.get_by_role("button", name="Columns").click()
    page.get_by_label("search keys").fill("wid")
    expect(page.locator(".chooser .menu-item")).to_have_count(1)
    page.locator(".chooser .menu-item", has_text="width").locator("input").check()
    expect(page.locator(".vt-th", has_text="width")).to_be_visible()
    assert "columns=params.width" in page.url
    page.locator("h1, .toolbar").first.click(position={"x": 1, "y": 1})
    page.locator(".vt-th", has_text="width").click()  # params sort as text (docs/search.md)
    expect(page.locator(".vt-th", has_text="width")).to_have_attribute("aria-sort", "descending")
    expect(page.locator(".vt-row").first.locator(".vt-td").last).to_have_text("96")
    page.locator(".vt-th", has_text="width").click()
    expect(page.locator(".vt-row").first.locator(".vt-td").last).to_have_text("128")


def test_experiment_picker_switches_experiments(ui, world):
    page = ui.goto("/")
    page.locator(".picker-button").click()
    page.locator(".menu-item", has_text="nlp").locator("input").check()
    expect(page.locator(".vt-status")).to_have_text("1 run")
    expect(page.locator(".vt-row")).to_contain_text("bert-live")
    assert f"experiments={world.experiments['nlp']}" in page.url


def test_filter_box_completes_keys(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['vision']}")
    expect(page.locator(".vt-status")).to_have_text("12 runs")
    box = page.get_by_label("filter")
    box.click()
    box.press_sequentially("metrics.acc")
    options = page.locator(".completions li")
    expect(options).to_have_count(1)
    expect(options.first).to_have_text("accuracy")
    box.press("Tab")
    expect(box).to_have_value("metrics.accuracy ")
    box.press_sequentially("> 0 AND params.")
    expect(options).to_have_count(4)  # epochs, lr, model, seed
    box.press("ArrowDown")
    box.press("ArrowDown")
    box.press("Enter")
    expect(box).to_have_value("metrics.accuracy > 0 AND params.model ")
    box.press_sequentially("= 'mlp'")
    expect(page.locator(".vt-status")).to_have_text("6 runs")


def test_group_by_a_param(ui, world):
    page = ui.goto(f"/?experiments={world.experiments['vision']}&sort=name:ASC")
    expect(page.locator(".vt-status")).to_have_text("12 runs")
    page.get_by_label("group by").select_option("model")
    expect(page.locator(".vt-th", has_text="group")).to_contain_text("model")
    expect(page.locator(".vt-row.group-start")).to_have_count(2)  # cnn, then mlp
    cells = page.locator(".vt-row .vt-td:nth-child(2)").all_inner_texts()
    assert cells == ["cnn"] * 6 + ["mlp"] * 6
    runs = page.locator(".vt-row .vt-td:nth-child(3)").all_inner_texts()
    assert runs[:6] == sorted(runs[:6])  # the chosen sort holds within each group
    assert "group=model" in page.url
