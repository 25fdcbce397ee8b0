"""The anonymisation rules: each category, the rules file, keys and bad input."""

from __future__ import annotations

import json

import pytest

from cairn.anonymise import pseudonym
from cairn.anonymise.rules import REMOVED, Anonymiser, Rules, active, load_rules, parse_rules
from cairn.errors import InvalidArgument

KEY = b"team-secret-0123456789"


@pytest.fixture
def anon():
    return Anonymiser(Rules(users=("alice",), hosts=("gpu-box-7",)), KEY, local=False)


@pytest.mark.parametrize("text, original", [
    ("ran by alice today", "alice"),
    ("ALICE", "ALICE"),
    ("on gpu-box-7 with 8 GPUs", "gpu-box-7"),
    ("mail alice.smith+ml@corp.example.com now", "alice.smith+ml@corp.example.com"),
    ("<bob@lab.example.org>", "bob@lab.example.org"),
    ("/home/carol/proj/train.py", "carol"),
    ("/var/home/carol/x", "carol"),
    ("/Users/Dave/code", "Dave"),
    ("C:\\Users\\erin\\data\\x.csv", "erin"),
    ("C:/Users/erin/data", "erin"),
    ("--data=/home/frank/d", "frank"),
    ("10.1.2.3:8080", "10.1.2.3"),
    ("peer 192.168.0.17.", "192.168.0.17"),
    ("ip 2001:db8::1 up", "2001:db8::1"),
    ("[fe80::1%eth0]:80", "fe80::1%eth0"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
])
def test_each_category_is_replaced(anon, text, original):
    out = anon.text(text)
    assert original not in out
    assert out != text


@pytest.mark.parametrize("text", [
    "numpy 1.26.4", "v1.2.3", "time 12:30:45", "127.0.0.1", "::1", "alice-smith", "malice",
    "git@github.com:org/repo.git", "/home/Shared/x", "sha256:" + "ab" * 32, "",
])
def test_what_is_not_personal_stays(anon, text):
    assert anon.text(text) == text


def test_home_paths_name_the_user_by_their_user_pseudonym(anon):
    user = pseudonym(KEY, "user", "carol")
    assert anon.text("/home/carol/p") == f"/home/{user}/p"
    assert anon.text("C:\\Users\\Carol\\p") == f"C:\\Users\\{user}\\p"  # case-insensitive
    assert anon.user("carol") == user


def test_pseudonyms_are_stable_per_key_and_differ_between_keys():
    a = Anonymiser(Rules(users=("alice",)), KEY, local=False)
    b = Anonymiser(Rules(users=("alice",)), KEY, local=False)
    c = Anonymiser(Rules(users=("alice",)), b"another-team-secret-xyz", local=False)
    assert a.text("alice") == b.text("alice") == a.user("alice")
    assert a.text("alice").startswith("user-") and len(a.text("alice")) == len("user-") + 8
    assert a.text("alice") != c.text("alice")
    assert a.user("alice") != a.host("alice")  # the category is inside the MAC


def test_actions_per_category_and_extra_patterns():
    rules = parse_rules({"actions": {"email": "remove", "ip": "keep", "home": "remove"},
                         "patterns": [{"regex": r"EMP-\d{6}", "category": "badge"},
                                      {"regex": r"secret-\w+", "action": "remove"}],
                         "drop_keys": ["token_*"]})
    a = Anonymiser(rules, KEY, local=False)
    assert a.text("x a@b.example.com y") == f"x {REMOVED} y"
    assert a.text("10.0.0.9") == "10.0.0.9"
    assert a.text("/home/zed/p") == "~/p"
    badge = a.text("id EMP-123456")
    assert badge.startswith("id badge-") and "123456" not in badge
    assert a.text("secret-sauce") == REMOVED
    assert a.mapping({"token_a": "x", "lr": "0.1"}) == {"lr": "0.1"}


def test_rules_file_json_and_toml(tmp_path):
    j = tmp_path / "rules.json"
    j.write_text(json.dumps({"users": ["zoe"], "actions": {"user": "remove"}}))
    t = tmp_path / "rules.toml"
    t.write_text('users = ["zoe"]\n[actions]\nuser = "remove"\n')
    for path in (j, t):
        a = Anonymiser(load_rules(path), KEY, local=False)
        assert a.text("by zoe") == f"by {REMOVED}"


@pytest.mark.parametrize("doc, message", [
    ({"patterns": [{"regex": "("}]}, "bad regular expression"),
    ({"patterns": [{"regex": "x*"}]}, "matches the empty string"),
    ({"actions": {"email": "shred"}}, "not one of"),
    ({"actions": {"phone": "remove"}}, "unknown category"),
    ({"colour": 1}, "unknown entries"),
    ({"users": "alice"}, "must be a list"),
    ({"users": ["al\ud800ice"]}, "lone surrogate"),
    ({"patterns": [{"regex": "x", "category": "Bad Name"}]}, "lower-case"),
])
def test_bad_rules_are_refused_clearly(tmp_path, doc, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_rules(doc)


def test_bad_rules_file_names_the_file(tmp_path):
    bad = tmp_path / "rules.json"
    bad.write_text('{"patterns": [{"regex": "[unclosed"}]}')
    with pytest.raises(InvalidArgument, match=r"rules\.json: pattern 1 has a bad regular"):
        load_rules(bad)
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        load_rules(bad)
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


def test_a_lone_surrogate_is_kept_not_a_crash(anon):
    out = anon.text("arg \udcff by alice")
    assert "\udcff" in out and "alice" not in out
    assert anon.user("bad\udcffname").startswith("user-")


def test_a_short_or_missing_key_is_refused(monkeypatch):
    with pytest.raises(InvalidArgument, match="at least 16"):
        Anonymiser(Rules(), b"short", local=False)
    monkeypatch.setenv("CAIRN_ANONYMISE", "1")
    monkeypatch.delenv("CAIRN_ANONYMISE_KEY", raising=False)
    with pytest.raises(InvalidArgument, match="CAIRN_ANONYMISE_KEY is not set"):
        active()


def test_environment_fields(anon):
    env = {"user": "alice", "hostname": "gpu-box-7", "cwd": "/home/alice/proj",
           "argv": ["train.py", "--out", "/home/alice/out"],
           "env_vars": {"CUDA_VISIBLE_DEVICES": "0", "MASTER_ADDR": "10.0.0.5"},
           "packages": {"weird": "1.2.3.4"}, "git": {"remote": "git@github.com:o/r.git",
                                                     "root": "/home/alice/proj"}}
    out = anon.env(env)
    text = json.dumps(out)
    for original in ("alice", "gpu-box-7", "10.0.0.5"):
        assert original not in text
    assert out["packages"] == {"weird": "1.2.3.4"}
    assert out["env_vars"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert out["git"]["remote"] == "git@github.com:o/r.git"
    assert env["user"] == "alice"  # the shared captured dict is not changed
