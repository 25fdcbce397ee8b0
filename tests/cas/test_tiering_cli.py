"""Tiering through the public API, `cairn tier`, `cairn doctor` and a team server with
``--cold-objects`` (PostgreSQL, objects on disk, the cold tier in S3: the moto server)."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from serving import CAIRN, ProcessServer

import cairn
from cairn.cas.tiering import DAY_MS, move_cold

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


def _cli(store: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_COLD")}
    return subprocess.run([*CAIRN, "--store", str(store), *args], capture_output=True, text=True,
                          env={**full, "CAIRN_CAPTURE_ENV": "0", **(env or {})}, timeout=120)


def _hot_files(root: Path) -> list[Path]:
    return [p for p in root.glob("??/*") if not p.name.startswith(".")]


@pytest.mark.slow  # three CLI processes and a 5 MiB chunked artifact
def test_logged_artifacts_aged_moved_and_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    store = tmp_path / ".cairn"
    client = cairn.Client(str(store))
    run = client.create_run(name="old")
    (tmp_path / "notes.txt").write_text("a small artifact\n" * 20)
    weights = random.Random(3).randbytes(5 * 1024 * 1024)  # chunked: many objects
    (tmp_path / "weights.bin").write_bytes(weights)
    client.log_artifact(run.id, tmp_path / "notes.txt")
    client.log_artifact(run.id, tmp_path / "weights.bin", "model")
    client.set_terminated(run.id)
    objects = client.store.objects
    hot = store / "objects"
    stored = len(_hot_files(hot))
    assert stored > 3

    cold = tmp_path / "archive"
    dry = _cli(store, "tier", "--cold-objects", str(cold), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    assert (doc["dry_run"], doc["candidates"], doc["moved"]) == (True, 0, 0)  # all new
    assert doc["examined"] == stored and doc["cold"] == str(cold)

    # 31 days later (a controlled clock), nothing was read: everything moves.
    now = cairn.cas.tiering.clock.now_ms() + 31 * DAY_MS
    report = move_cold(objects, older_than_days=30, now=now)
    assert report.moved == stored and _hot_files(hot) == []

    # Another process, no setting: the download is transparent and verified.
    got = _cli(store, "artifacts", "get", run.id, "-d", str(tmp_path / "out"), "--json")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out" / "model" / "weights.bin").read_bytes() == weights
    assert (tmp_path / "out" / "notes.txt").read_text() == "a small artifact\n" * 20
    assert _hot_files(hot) == []  # reading cold objects does not bring them back

    doctor = _cli(store, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    objs = json.loads(doctor.stdout)["checks"]["objects"]
    assert objs["status"] == "ok" and objs["stored"] == stored and objs["missing"] == []

    # A cold object damaged in the cold tier is found by doctor.
    victim = next(p for p in (cold).glob("??/*"))
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + bytes([victim.read_bytes()[-1] ^ 1]))
    damaged = _cli(store, "doctor", "--json")
    assert damaged.returncode == 1
    objs = json.loads(damaged.stdout)["checks"]["objects"]
    assert [o["oid"] for o in objs["corrupt"]] == [victim.parent.name + victim.name]


def test_tier_command_moves_reports_and_refuses_bad_input(tmp_path):
    store = tmp_path / ".cairn"
    client = cairn.Client(str(store))
    run = client.create_run()
    (tmp_path / "a.txt").write_text("x" * 500)
    client.log_artifact(run.id, tmp_path / "a.txt")
    client.set_terminated(run.id)

    none = _cli(store, "tier")
    assert none.returncode == 1 and "no cold tier" in none.stderr
    same = _cli(store, "tier", "--cold-objects", str(store / "objects"))
    assert same.returncode == 1 and "hot object store itself" in same.stderr
    neg = _cli(store, "tier", "--cold-objects", str(tmp_path / "c"), "--days", "-1")
    assert neg.returncode == 2
    missing = _cli(tmp_path / "nowhere", "tier", "--cold-objects", str(tmp_path / "c"))
    assert missing.returncode == 1 and "no Cairn store" in missing.stderr
    assert not (tmp_path / "nowhere").exists()

    env = {"CAIRN_COLD_OBJECTS": str(tmp_path / "cold")}
    moved = _cli(store, "tier", "--days", "0", env=env)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("moved 1 object(s)") and str(tmp_path / "cold") in moved.stdout
    again = _cli(store, "tier", "--days", "0", "--json")  # the store remembers its tier
    assert json.loads(again.stdout)["moved"] == 0
    other = _cli(store, "tier", "--cold-objects", str(tmp_path / "other"))
    assert other.returncode == 1 and "cannot be changed" in other.stderr
    got = _cli(store, "artifacts", "get", run.id, "-d", str(tmp_path / "out"))
    assert got.returncode == 0 and (tmp_path / "out" / "a.txt").read_text() == "x" * 500


@pytest.mark.slow
@pytest.mark.postgres
def test_team_server_with_a_cold_s3_tier(tmp_path, pg_database, s3_bucket,  # noqa: F811
                                         s3_endpoint):  # noqa: F811
    pg_url = create_schema(pg_database)
    objects = tmp_path / "objects"
    cold = f"s3://{s3_bucket}/cold"
    env = {**AWS, "CAIRN_SPOOL_DIR": str(tmp_path / "spool")}
    with ProcessServer("--db", pg_url, "--objects", str(objects), "--no-auth",
                       "--cold-objects", cold, "--cold-endpoint-url", s3_endpoint,
                       env=env, log=tmp_path / "server.log") as srv:
        assert json.loads((objects / "tiers.json").read_text())["cold"] == cold
        client = cairn.Client(srv.url)
        run = client.create_run(name="served")
        (tmp_path / "report.txt").write_text("served artifact\n" * 50)
        client.log_artifact(run.id, tmp_path / "report.txt")
        client.set_terminated(run.id)
        assert _hot_files(objects)

        moved = subprocess.run([*CAIRN, "--store", pg_url, "tier", "--objects", str(objects),
                                "--days", "0", "--json"], capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=120)
        assert moved.returncode == 0, moved.stderr
        assert json.loads(moved.stdout)["moved"] >= 1 and _hot_files(objects) == []

        client.download_artifacts(run.id, "", tmp_path / "out")  # through the server
        assert (tmp_path / "out" / "report.txt").read_text() == "served artifact\n" * 50
    assert _hot_files(objects) == []


def test_the_guide_runs_and_names_what_exists(tmp_path, monkeypatch):
    import re

    from doc_examples import DOCS, blocks, run_python

    from cairn.cas.tier_move import TierReport

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    for k in ("CAIRN_TRACKING_URI", "CAIRN_COLD_OBJECTS"):
        monkeypatch.delenv(k, raising=False)
    doc = DOCS / "lifecycle.md"
    try:
        run_python(doc, section="Tiering")
    finally:
        cairn.end_run()
    assert (tmp_path / "tier-demo" / "objects" / "tiers.json").exists()

    text = doc.read_text()
    section = text[text.index("## Tiering"):text.index("## Backup and restore")]
    keys = set(re.findall(r"`(\w+)`", section[section.index("`--json`"):
                                              section.index("The same from Python")]))
    assert keys <= set(TierReport("h", "c", 1.0, False).to_dict()), keys
    helps = {cmd: subprocess.run([*CAIRN, *cmd.split(), "--help"], capture_output=True,
                                 text=True).stdout for cmd in ("tier", "server")}
    for line in [b for _, b in blocks(doc, "sh", "Tiering")]:
        for cmd in ("tier", "server"):
            for opt in re.findall(rf"cairn (?:--store \S+ )?{cmd}\b(.*)", line):
                for flag in re.findall(r"--[a-z-]+", opt):
                    assert flag in helps[cmd], (cmd, flag)
