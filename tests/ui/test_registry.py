"""Registry pages in Chromium: models, versions, approvals, rollback, stage history.

The tests share the seeded model "digits" and run in file order: the request made from the
page comes (and is withdrawn, leaving the seeded one) before the approval that changes its
stages. No test allows a console error: the page never sends a move a policy refuses.
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


def test_a_stage_that_needs_an_approval_is_requested(ui, world):
    """Production needs an approval: the page offers a request, never a move it would refuse."""
    import cairn

    new = world.versions[1]
    ann = cairn.Client(str(world.root), user="ann")
    [seeded] = ann.list_transition_requests("digits")
    assert (seeded.version, seeded.to_stage) == (new.version, "Production")
    page = ui.goto("/models/digits")
    newer = page.locator(f'tr[data-version="{new.version}"]')
    stage = newer.get_by_label(f"stage for {new.version}")
    note = newer.locator(".policy-note")
    expect(newer.locator(".badge")).to_have_text("Development")
    expect(newer.get_by_role("button", name="Move")).to_be_visible()  # Staging: no policy
    expect(note).to_have_text("")

    # Ann's request is waiting: no second one is offered, and no move.
    stage.select_option("Production")
    expect(note).to_contain_text("Production needs 1 approval")
    expect(note).to_contain_text("the request by ann is waiting")
    expect(newer.get_by_role("button", name="Move")).to_be_hidden()
    expect(newer.get_by_role("button", name="Request")).to_be_hidden()

    # She withdraws it; now the page offers a request, with a comment, and says why.
    ann.reject(seeded.id, comment="asking from the page instead")
    page.reload()
    expect(page.locator("text=No pending requests.")).to_be_visible()
    expect(page.locator(".timeline li").first).to_contain_text("request withdrawn by ann")
    stage.select_option("Production")
    expect(note).to_contain_text("Production needs 1 approval by policy: request the move")
    expect(newer.get_by_role("button", name="Move")).to_be_hidden()
    newer.get_by_label(f"request comment for {new.version}").fill("better accuracy, again")
    ui.shot("model-request")
    newer.get_by_role("button", name="Request").click()
    expect(page.locator(".ok")).to_contain_text(
        f"requested: {new.version} → Production, waiting for approval")
    request = page.locator("table.requests tbody tr")
    expect(request).to_have_count(1)
    expect(request).to_contain_text("Development → Production")
    expect(request).to_contain_text("better accuracy, again")
    expect(newer.locator(".badge")).to_have_text("Development")
    stage.select_option("Production")
    expect(note).to_contain_text("the request by local is waiting")

    # The requester may withdraw a request, not approve it (the server would refuse).
    expect(request.get_by_role("button", name="Approve")).to_have_count(0)
    request.get_by_role("button", name="Withdraw").click()
    expect(page.locator(".ok")).to_contain_text(f"withdrawn: {new.version} → Production")
    expect(page.locator("text=No pending requests.")).to_be_visible()
    expect(page.locator(".timeline li").first).to_contain_text("request withdrawn by local")

    # As the world was: Ann's request waits for the approval the next test gives.
    ann.request_transition("digits", new.version, "production", comment="better accuracy")


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

    # Nothing was in Production before 1.0.0: the form offers no rollback (the registry would
    # refuse it with 409, which the browser logs as an error).
    rollback = page.get_by_role("button", name="Roll back")
    expect(rollback).to_be_disabled()
    expect(rollback).to_have_attribute(
        "title", "nothing to roll back to: no earlier version was in Production")
    expect(page.get_by_label("rollback to")).to_have_text("no earlier version")

    request.get_by_label("comment on").fill("ship it")
    request.get_by_role("button", name="Approve").click()
    expect(page.locator(".ok")).to_contain_text(f"approved: {new.version} → Production")
    expect(newer.locator(".badge")).to_have_text("Production")
    expect(page.locator("text=No pending requests.")).to_be_visible()

    # Now 1.0.0 was there before: it is what "the previous version" puts back.
    expect(rollback).to_be_enabled()
    expect(page.get_by_label("rollback to").locator("option")).to_have_text(
        ["the previous version (1.0.0)", "1.0.0"])
    page.get_by_label("rollback stage").select_option("Staging")  # never had a version
    expect(rollback).to_be_disabled()
    page.get_by_label("rollback stage").select_option("Production")

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
    expect(page.locator(".timeline li").first).to_contain_text("request rejected by local")


def test_unknown_model_says_so(ui):
    page = ui.goto("/models/no-such-model")  # and logs no console error (the fixture checks)
    expect(page.locator("h1")).to_have_text("Model not found")
    expect(page.locator(".error")).to_contain_text("no-such-model")
    page.get_by_role("link", name="All models").click()
    expect(page.locator("table.models")).to_contain_text("digits")
