"""Registry pages in Chromium: models, versions, approvals, rollback, stage history.

The tests share the seeded model "digits" and run in file order: the refused move comes
before the approval that changes its stages.
"""

from __future__ import annotations

from playwright.sync_api import expect


def test_models_list(ui, world):
    page = ui.goto("/models")
    row = page.locator("table.models tbody tr", has_text="digits")
    expect(row).to_contain_text(world.versions[1].version)
    expect(row).to_contain_text("@champion → 1.0.0")
    expect(row.locator(".stage-chip", has_text="Production")).to_contain_text("1.0.0")
    ui.shot("models")
    row.get_by_role("link", name="digits").click()
    expect(page).to_have_url(f"{ui.base}/models/digits")


def test_registry_errors_are_shown(ui, world):
    page = ui.goto("/models/digits")
    new = world.versions[1]
    newer = page.locator(f'tr[data-version="{new.version}"]')
    expect(newer.locator(".badge")).to_have_text("Development")
    ui.expect_console_error("403")  # the policy asks for an approval first
    newer.get_by_label(f"stage for {new.version}").select_option("Production")
    newer.get_by_role("button", name="Move").click()
    expect(page.locator(".error")).to_contain_text("approval")
    expect(newer.locator(".badge")).to_have_text("Development")


def test_approve_then_roll_back_with_a_reason(ui, world):
    page = ui.goto("/models/digits")
    new = world.versions[1]
    newer = page.locator(f'tr[data-version="{new.version}"]')
    expect(newer.locator(".badge")).to_have_text("Development")
    expect(newer.locator(".bump")).to_have_text(new.bump)  # the bump, with its reasons
    assert new.bump_reasons
    expect(newer.locator(".reasons li")).to_have_count(len(new.bump_reasons))
    expect(page.locator('tr[data-version="1.0.0"] .alias')).to_have_text("@champion")
    request = page.locator("table.requests tbody tr")
    expect(request).to_have_count(1)
    expect(request).to_contain_text("Development → Production")
    ui.shot("model-page")

    # A version's record: the params and data sets it was registered with.
    newer.get_by_role("link", name=new.version).click()
    details = page.locator("tr.version-details")
    expect(details).to_contain_text("C 0.1")
    expect(details.get_by_role("link", name="digits-data@2")).to_be_visible()
    newer.get_by_role("link", name=new.version).click()
    expect(details).to_have_count(0)

    # Which version was in Production now, and before anything was: the stage history answers.
    page.get_by_role("button", name="Look up").click()
    expect(page.locator(".at-result")).to_contain_text("1.0.0 was in Production")
    page.get_by_label("time").fill("2001-01-01T00:00:00")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator(".at-result")).to_contain_text("no version was in Production")

    request.get_by_label("comment on").fill("ship it")
    request.get_by_role("button", name="Approve").click()
    expect(page.locator(".ok")).to_contain_text(f"approved: {new.version} → Production")
    expect(newer.locator(".badge")).to_have_text("Production")
    expect(page.locator("text=No pending requests.")).to_be_visible()

    # A rollback needs a reason; without one the form says so and nothing changes.
    page.get_by_role("button", name="Roll back").click()
    expect(page.locator(".error")).to_contain_text("reason")
    expect(newer.locator(".badge")).to_have_text("Production")
    page.get_by_label("rollback reason").fill("latency regression")
    page.get_by_role("button", name="Roll back").click()
    expect(page.locator(".ok")).to_contain_text("rolled back Production")
    expect(page.locator('tr[data-version="1.0.0"] .badge')).to_have_text("Production")
    timeline = page.locator(".timeline li")
    expect(timeline.first).to_contain_text("rollback")
    expect(timeline.first).to_contain_text("latency regression")
    ui.shot("model-rollback")


def test_reject_a_request_with_a_comment(ui, world):
    import cairn

    new = world.versions[1]  # rolled back out of Production by the test before
    cairn.Client(str(world.root)).request_transition("digits", new.version, "production",
                                                     comment="second try")
    page = ui.goto("/models/digits")
    request = page.locator("table.requests tbody tr")
    expect(request).to_have_count(1)
    expect(request).to_contain_text("second try")
    request.get_by_label("comment on").fill("p99 latency still too high")
    request.get_by_role("button", name="Reject").click()
    expect(page.locator(".ok")).to_contain_text(f"rejected: {new.version} → Production")
    expect(page.locator("text=No pending requests.")).to_be_visible()
    expect(page.locator(f'tr[data-version="{new.version}"] .badge')).not_to_have_text("Production")
    expect(page.locator('tr[data-version="1.0.0"] .badge')).to_have_text("Production")
    expect(page.locator(".timeline li").first).to_contain_text("request rejected")
