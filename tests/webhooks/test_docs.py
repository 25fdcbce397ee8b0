"""docs/webhooks.md: its Python examples run, in order, against a fresh store, and it
documents every event type and every option of the commands."""

from __future__ import annotations

import re
from pathlib import Path

import doc_examples

from cairn.webhooks.events import EVENT_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_webhooks_guide_examples_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        doc_examples.run_python(DOC, at_least=5, namespace=namespace)
    finally:
        server = namespace.get("server")
        if server is not None:
            server.shutdown()
            server.server_close()


def test_every_event_type_is_documented():
    text = DOC.read_text(encoding="utf-8")
    headings = " ".join(line for line in text.splitlines() if line.startswith("### "))
    for kind in EVENT_TYPES:
        assert f"`{kind}`" in headings, kind


def test_every_option_is_documented():
    from cairn.cli.main import cli

    text = DOC.read_text(encoding="utf-8")
    for group in ("webhooks", "events"):
        for name, cmd in cli.commands[group].commands.items():
            assert f"cairn {group} {name}" in text, name
            for param in cmd.params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--") and opt not in ("--json", "--store", "--uri"):
                        assert opt in text, (name, opt)


def test_the_documented_alert_payload_is_what_the_monitor_sends(client):
    """The example alert.firing payload has the keys, and the shapes, of the one that
    cairn.monitoring.alert_actions.emit_event stores (versions: a dict by scope)."""
    import json

    from cairn.monitoring.alert_actions import emit_event
    from cairn.monitoring.alert_store import AlertState
    from cairn.webhooks.service import Webhooks

    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### `alert.firing`"):]
    documented = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    st = AlertState("latency-p99", "churn@production", "firing", 1, 2, 1)
    value = {"facts": {"serving.latency_p99_ms": 412.0}, "versions": {"model": "1.1.0"},
             "notes": []}
    store = client.store
    store.open()
    with store.index.session(write=True) as conn:
        emit_event(conn, None, st, value, 2)
    [event] = Webhooks(client).events()
    sent = dict(event.payload)
    assert set(documented) == set(sent)
    assert {k: type(v) for k, v in documented.items() if sent[k] is not None} == \
        {k: type(v) for k, v in sent.items() if v is not None}
    assert "](alerts.md)" in section[:600]
