"""`cairn webhooks` and `cairn events`, each with --json, on a real store and receiver."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cairn.cli.main import cli

from .conftest import alert, free_port


def _run(store, *args, ok=True):
    res = CliRunner().invoke(cli, ["--store", store, *args])
    assert (res.exit_code == 0) == ok, res.output
    return res


def test_the_webhook_commands(client, receiver):
    store = client.uri
    r = receiver()
    made = json.loads(_run(store, "webhooks", "add", r.url, "--event", "alert.firing",
                           "--model", "fraud", "--secret", "cli-secret-123", "--json").output)
    assert made["secret"] == "cli-secret-123" and made["events"] == ["alert.firing"]
    r.secret = made["secret"]
    dead = json.loads(_run(store, "webhooks", "add", f"http://127.0.0.1:{free_port()}/",
                           "--json").output)
    text = _run(store, "webhooks", "add", r.url, "--format", "slack").output
    assert "Signing secret (shown only now)" in text
    listed = json.loads(_run(store, "webhooks", "ls", "--json").output)
    assert len(listed) == 3 and all("secret" not in s for s in listed)
    assert "fraud" in _run(store, "webhooks", "ls").output

    alert(client, "k1")
    stats = json.loads(_run(store, "webhooks", "dispatch", "--once", "--max-attempts", "1",
                            "--json").output)
    assert (stats["sent"], stats["delivered"], stats["dead"]) == (3, 2, 1)
    assert all(q["verified"] for q in r.requests if "text" not in json.loads(q["body"]))
    dl = json.loads(_run(store, "webhooks", "deliveries", "--state", "dead", "--json").output)
    assert [d["url"] for d in dl] == [dead["url"]] and dl[0]["last_error"]
    assert "dead" in _run(store, "webhooks", "deliveries").output
    again = json.loads(_run(store, "webhooks", "redeliver", dl[0]["id"], "--json").output)
    assert again["state"] == "pending"

    events = json.loads(_run(store, "events", "ls", "--type", "alert.firing", "--json").output)
    assert [e["key"] for e in events] == ["k1"]
    assert json.loads(_run(store, "events", "ls", "--after", str(events[0]["seq"]),
                           "--json").output) == []
    assert "alert.firing" in _run(store, "events", "ls").output

    gone = json.loads(_run(store, "webhooks", "delete", dead["id"], "--json").output)
    assert gone["id"] == dead["id"]
    assert "Deleted subscription" in _run(store, "webhooks", "delete", made["id"]).output


def test_bad_input_is_a_clear_error(client):
    store = client.uri
    client.create_experiment("bad-input")  # the store exists: the errors are the input's
    for args in (["webhooks", "add", "ftp://x"], ["webhooks", "add", "http://x", "--event", "no"],
                 ["webhooks", "delete", "f" * 32], ["webhooks", "redeliver", "nope!"],
                 ["events", "ls", "--type", "nope"]):
        res = _run(store, *args, ok=False)
        assert res.output.startswith("Error:") or "Error" in res.output, res.output
    res = _run(store, "webhooks", "dispatch", "--interval", "soon", ok=False)
    assert "--interval" in res.output
    assert "No webhook subscriptions" in _run(store, "webhooks", "ls").output
    assert "No events." in _run(store, "events", "ls").output
    assert "No deliveries." in _run(store, "webhooks", "deliveries").output


def test_dispatch_runs_until_sigterm_and_exits_cleanly(client, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from cairn.webhooks.service import Webhooks

    Webhooks(client).subscribe("http://127.0.0.1:9/")
    env = {**os.environ, "CAIRN_CAPTURE_ENV": "0"}
    proc = subprocess.Popen([sys.executable, "-c", "from cairn.cli.main import main; main()",
                             "--store", client.uri,
                             "webhooks", "dispatch", "--interval", "100ms", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["errors"] == []
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err


def test_events_prune(client):
    store = client.uri
    alert(client, "k1")
    out = json.loads(_run(store, "events", "prune", "--older-than", "30d", "--json").output)
    assert out == {"deliveries": 0, "events": 0}  # nothing is that old
    assert "Pruned 0 event(s)" in _run(store, "events", "prune", "--older-than", "2d").output
    assert "--older-than" in _run(store, "events", "prune", "--older-than", "soon",
                                  ok=False).output
    assert "Error" in _run(store, "events", "prune", "--older-than", "1h", ok=False).output


def test_a_url_s_password_is_never_printed_in_text(client, receiver):
    store = client.uri
    url = f"http://hook:pw-s3cret-pw@127.0.0.1:{free_port()}/hook"
    text = _run(store, "webhooks", "add", url, "--secret", "cli-secret-123").output
    alert(client, "k1")
    _run(store, "webhooks", "dispatch", "--once", "--max-attempts", "1")
    sub = json.loads(_run(store, "webhooks", "ls", "--json").output)[0]
    for out in (text, _run(store, "webhooks", "ls").output,
                _run(store, "webhooks", "deliveries").output,
                _run(store, "webhooks", "delete", sub["id"]).output):
        assert "pw-s3cret-pw" not in out
    assert "hook:***@127.0.0.1" in text


def test_text_from_a_receiver_or_a_filter_is_printed_as_it_is(client):
    """Rich reads "[...]" in a table cell as markup: a receiver answering "[/]" made
    `cairn webhooks deliveries` fail, and a filter "[bold]x" printed as "x"."""
    import sqlalchemy as sa

    from cairn.store.sql.tables_monitoring import webhook_deliveries as D

    store = client.uri
    _run(store, "webhooks", "add", f"http://127.0.0.1:{free_port()}/", "--model", "[bold]m",
         "--secret", "cli-secret-123")
    alert(client, "k1", model="[bold]m")
    _run(store, "webhooks", "dispatch", "--once")
    with client.store.index.session(write=True) as conn:
        conn.execute(sa.update(D).values(last_error="HTTP 500: [/] [red]x"))
    out = _run(store, "webhooks", "deliveries").output
    assert "[/] [red]x" in out
    assert "model=[bold]m" in _run(store, "webhooks", "ls").output
