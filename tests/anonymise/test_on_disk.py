"""With CAIRN_ANONYMISE on, the bytes a store keeps hold none of the originals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import cairn
from cairn.anonymise import pseudonym
from cairn.errors import InvalidArgument

KEY = "team-secret-0123456789"
ORIGINALS = [b"zelda", b"Zelda", b"zelda@lab.example.org", b"10.20.30.40", b"2001:db8::7"]


@pytest.fixture
def anonymised(monkeypatch):
    monkeypatch.setenv("CAIRN_ANONYMISE", "1")
    monkeypatch.setenv("CAIRN_ANONYMISE_KEY", KEY)
    monkeypatch.setenv("CAIRN_USER", "zelda")


def _every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _host() -> list[bytes]:
    host = socket.gethostname().split(".")[0]
    return [host.encode()] if len(host) >= 4 else []  # too short to search for


def test_journal_and_index_hold_no_original(anonymised, tracking):
    with cairn.start_run(params={"data": "/home/zelda/data.csv",
                                 "contact": "Zelda <zelda@lab.example.org>",
                                 "peer": "10.20.30.40", "peer6": "2001:db8::7"},
                         tags={"mlflow.user": "zelda", "note": "run on the box of zelda"}) as run:
        cairn.log_metric("loss", 0.5)
        cairn.set_tag("host", socket.gethostname())
    client = cairn.Client(str(tracking))
    other = client.create_run(params={"path": "C:\\Users\\zelda\\x"}, tags={"who": "zelda"})
    client.log_param(other.id, "mail", "zelda@lab.example.org")
    client.set_terminated(other.id)
    cairn.flush()

    got = client.get_run(run.id)
    user = pseudonym(KEY.encode(), "user", "zelda")
    assert got.user == user and got.params["data"] == f"/home/{user}/data.csv"
    assert got.tags["mlflow.user"] == user
    assert client.get_metric_history(run.id, "loss").values[0] == 0.5  # untouched
    assert set(got.params) == {"data", "contact", "peer", "peer6"}  # keys untouched
    assert client.get_run(other.id).user == user

    data = _every_byte(tracking)
    for original in ORIGINALS + _host():
        assert original not in data, f"{original!r} is on disk"


def test_off_by_default_records_as_is(tracking, monkeypatch):
    monkeypatch.delenv("CAIRN_ANONYMISE", raising=False)
    monkeypatch.delenv("CAIRN_ANONYMISE_RULES", raising=False)
    monkeypatch.setenv("CAIRN_USER", "zelda")
    with cairn.start_run(params={"contact": "zelda@lab.example.org"}) as run:
        pass
    got = cairn.Client(str(tracking)).get_run(run.id)
    assert got.user == "zelda" and got.params["contact"] == "zelda@lab.example.org"


def test_missing_key_fails_the_start_and_writes_nothing(tracking, monkeypatch):
    monkeypatch.setenv("CAIRN_ANONYMISE", "1")
    monkeypatch.delenv("CAIRN_ANONYMISE_KEY", raising=False)
    with pytest.raises(InvalidArgument, match="CAIRN_ANONYMISE_KEY"):
        cairn.start_run()
    with pytest.raises(InvalidArgument, match="CAIRN_ANONYMISE_KEY"):
        cairn.Client(str(tracking)).create_run()
    assert not list(tracking.rglob("*.cjl"))


def test_rules_file_turns_it_on(tracking, monkeypatch, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('users = ["quentin"]\n[actions]\nemail = "remove"\n')
    monkeypatch.delenv("CAIRN_ANONYMISE", raising=False)
    monkeypatch.setenv("CAIRN_ANONYMISE_RULES", str(rules))
    monkeypatch.setenv("CAIRN_ANONYMISE_KEY", KEY)
    with cairn.start_run(params={"owner": "quentin", "mail": "q@x.example.com"}) as run:
        pass
    got = cairn.Client(str(tracking)).get_run(run.id)
    assert got.params == {"owner": pseudonym(KEY.encode(), "user", "quentin"),
                          "mail": "[removed]"}


def test_a_lone_surrogate_in_a_param_is_still_refused(anonymised, tracking):
    with pytest.raises(InvalidArgument, match="surrogate"):
        cairn.Client(str(tracking)).create_run(params={"p": "zelda\ud800"})
