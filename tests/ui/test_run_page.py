"""The run page in Chromium: overview, params, artifacts previews, charts that zoom and update."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect


def chart(page, key: str):
    return page.locator(f'.chart[data-key="{key}"]')


def drag(page, box, x0: float, x1: float) -> None:
    """Drag across a chart's plot area between two x pixels (relative to the plot area)."""
    over = box.locator(".u-over")
    b = over.bounding_box()
    y = b["y"] + b["height"] / 2
    page.mouse.move(b["x"] + x0, y)
    page.mouse.down()
    page.mouse.move(b["x"] + (x0 + x1) / 2, y)
    page.mouse.move(b["x"] + x1, y)
    page.mouse.up()


def test_overview_params_artifacts_and_previews(ui, world):
    page = ui.goto(f"/runs/{world.spiky}")
    expect(page.locator("h1")).to_contain_text("cnn-lr0.1-s0")
    expect(page.locator("table.kv").first).to_contain_text("FINISHED")
    expect(page.locator("table.kv").first).to_contain_text("ann")
    expect(page.locator("section").nth(1)).to_contain_text("model")
    expect(page.locator("section").nth(1)).to_contain_text("cnn")
    expect(chart(page, "loss")).to_have_attribute("data-ready", "1")
    page.locator('.chart[data-key="grad_norm"]').scroll_into_view_if_needed()
    ui.shot("run-charts")

    page.get_by_role("link", name="notes.txt").click()
    expect(page.locator(".preview-text")).to_contain_text("training went fine")
    page.get_by_role("link", name="config.json").click()
    expect(page.locator(".preview-text")).to_contain_text('"layers": [')  # pretty-printed
    page.get_by_role("link", name="curve.png").click()
    img = page.locator(".preview-img")
    expect(img).to_be_visible()
    page.wait_for_function("() => document.querySelector('.preview-img').naturalWidth === 64")
    page.get_by_role("link", name="preds.csv").click()
    table = page.locator(".preview-table table")
    expect(table.locator("th")).to_have_text(["id", "label", "comment"])
    expect(table.locator("tbody tr").first.locator("td")).to_have_text(["1", "cat", "fluffy, small"])


def test_notes_are_edited_and_kept(ui, world, server):
    run = world.runs["mlp-lr0.01-s2"]
    page = ui.goto(f"/runs/{run}")
    notes = page.locator("section.notes")
    expect(notes).to_contain_text("No notes.")
    notes.get_by_role("button", name="Add notes").click()
    notes.get_by_label("notes").fill("lr too low?\nrerun with warmup")
    notes.get_by_role("button", name="Save").click()
    expect(notes.locator(".note-text")).to_have_text("lr too low?\nrerun with warmup")
    assert httpx.get(f"{server}/api/v1/runs/{run}", timeout=60).json()["tags"]["cairn.note"] == \
        "lr too low?\nrerun with warmup"
    page.reload()
    expect(page.locator("section.notes .note-text")).to_contain_text("rerun with warmup")
    notes.get_by_role("button", name="Edit notes").click()
    notes.get_by_role("button", name="Cancel").click()
    expect(notes.locator(".note-text")).to_contain_text("lr too low?")
    expect(page.locator("section").nth(2)).not_to_contain_text("cairn.note")  # not a tag row


def test_envelope_keeps_the_spike_and_zooming_fetches_exact_points(ui, world):
    page = ui.goto(f"/runs/{world.spiky}")
    box = chart(page, "grad_norm")
    expect(box).to_have_attribute("data-ready", "1")
    # 200,000 points drawn as a per-pixel min/max envelope: the lone spike at 50 survives.
    expect(box).to_have_attribute("data-exact", "false")
    assert float(box.get_attribute("data-ymax")) >= 50
    assert "min/max per pixel" in box.locator(".legend").inner_text()

    # Zoom twice around the spike: the second window is small enough to come back exact.
    for half_width in (12, 12):
        x = box.evaluate("el => el.chart.plot.valToPos(123457, 'x')")
        with page.expect_response(lambda r: "/series" in r.url and "step_min" in r.url):
            drag(page, box, x - half_width, x + half_width)
    expect(box).to_have_attribute("data-exact", "true")
    expect(box.locator(".chart-info")).to_contain_text("zoomed")
    assert float(box.get_attribute("data-ymax")) >= 50
    assert int(box.get_attribute("data-points")) < 1000
    ui.shot("run-chart-zoomed")
    with page.expect_response(lambda r: "/series" in r.url and "step_min" not in r.url):
        box.locator(".u-over").dblclick()
    expect(box).to_have_attribute("data-exact", "false")


def test_smoothing_log_scale_and_time_axis(ui, world):
    page = ui.goto(f"/runs/{world.runs['mlp-lr0.1-s1']}")
    box = chart(page, "loss")
    expect(box).to_have_attribute("data-ready", "1")
    over = box.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + 2, over["y"] + over["height"] / 2)  # hover: the values there
    expect(box.locator(".chart-info")).to_have_text(re.compile(r"^step 0: \d"))
    page.get_by_label("x axis").select_option("time")
    expect(box).to_have_attribute("data-x-mode", "time")
    page.get_by_label("x axis").select_option("relative")
    expect(box).to_have_attribute("data-x-mode", "relative")
    page.locator(".chart-controls input[type=checkbox]").check()
    expect(box).to_have_attribute("data-log", "true")
    page.get_by_label("smoothing").fill("0.9")
    expect(box.locator(".legend")).to_contain_text("loss")
    expect(chart(page, "accuracy")).to_have_attribute("data-log", "true")


def test_running_run_charts_update_live(ui, world, server):
    # Its writer's pulse: without one, a RUNNING run reads as KILLED (it crashed).
    assert httpx.post(f"{server}/api/v1/heartbeat",
                      json={"run_ids": [world.running]}, timeout=60).status_code == 200
    page = ui.goto(f"/runs/{world.running}")
    box = chart(page, "loss")
    expect(box).to_have_attribute("data-points", "20")
    expect(page.locator("h1 .badge")).to_have_text("RUNNING")
    r = httpx.post(f"{server}/api/v1/runs/{world.running}/log", json={
        "metrics": [{"key": "loss", "value": 0.5, "step": s} for s in range(20, 30)]
                   + [{"key": "lr", "value": 0.1, "step": 0}]}, timeout=60)
    assert r.status_code == 200, r.text
    expect(box).to_have_attribute("data-points", "30", timeout=10_000)
    expect(chart(page, "lr")).to_have_attribute("data-ready", "1", timeout=10_000)


def test_unknown_run_says_so(ui):
    page = ui.goto("/runs/does-not-exist")  # and logs no console error (the fixture checks)
    expect(page.locator("h1")).to_have_text("Run not found")
    expect(page.locator(".error")).to_contain_text("does-not-exist")
