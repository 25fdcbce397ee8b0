"""`cairn doctor` finds each kind of damage in a real store, names it, and exits 1; a whole
store exits 0.  Local directory stores, and PostgreSQL with objects in S3 (moto)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from pg_fixtures import pg_database, pg_url  # noqa: F401  (fixtures)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)

import cairn
from cairn.cli.main import cli
from cairn.doctor import CHECKS, diagnose
from cairn.errors import InvalidArgument, NotFound
from cairn.store.local import LocalStore

KEYS = {"store", "ok", "checks", "schema", "damaged_records", "quarantined_records",
        "quarantined_runs", "killed_runs"}


def doctor(store, *args, code=0):
    """`cairn --store STORE doctor ARGS... --json`: its report, after checking the exit code."""
    result = CliRunner().invoke(cli, ["--store", str(store), "doctor", *map(str, args), "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.output, result.stderr)
    return json.loads(result.stdout)


def doctor_text(store, *args, code=1) -> str:
    result = CliRunner().invoke(cli, ["--store", str(store), "doctor", *map(str, args)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == code, (result.output, result.stderr)
    assert "Traceback" not in result.output
    return result.stdout


def statuses(report) -> dict[str, str]:
    return {name: c["status"] for name, c in report["checks"].items()}


def damaged_only(report, *names) -> None:
    assert {n for n, s in statuses(report).items() if s == "damaged"} == set(names), report
    assert report["ok"] is False


@pytest.fixture
def store(tracking, tmp_path):
    """Two finished runs with artifacts, a data set of small files (packed) and an audited
    registry change: something for every check to look at."""
    cairn.set_experiment("doctor")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (model / "config.json").write_text('{"layers": 3}')
    for lr in ("0.1", "0.01"):
        with cairn.start_run(name=f"lr{lr}", params={"lr": lr}):
            for step in range(3):
                cairn.log_metric("acc", 0.5 + step / 10, step=step)
            cairn.log_artifacts(model, "model")
    client = cairn.Client(str(tracking))
    data = tmp_path / "data"
    data.mkdir()
    for i in range(5):
        (data / f"part{i}.csv").write_text(f"x,y\n{i},{i * i}\n")
    client.data.add(data, "tiny")
    client.create_registered_model("clf", description="audited")
    return tracking


def runs_of(store) -> list[str]:
    return sorted(r.id for r in cairn.Client(str(store)).search_runs("doctor"))


def artifact(store, path: str) -> tuple[str, str]:
    """(run id, oid) of artifact ``path`` of the first run."""
    rid = runs_of(store)[0]
    entry, = [e for e in cairn.Client(str(store)).list_artifacts(rid) if e.path == path]
    return rid, entry.digest


def flip(path: Path, at: int = -1) -> None:
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def loose(store, oid: str) -> Path:
    return store / "objects" / oid[:2] / oid[2:]


def index_db(store):
    return sqlite3.connect(store / "index.db")


# -- a whole store ----------------------------------------------------------------------------
def test_a_whole_store_passes_every_check(store):
    report = doctor(store)
    assert set(report) == KEYS and report["ok"] is True
    assert list(report["checks"]) == list(CHECKS)
    assert set(statuses(report).values()) == {"ok"}
    objects = report["checks"]["objects"]
    # the two runs' artifacts, the data set's file list, members and pack, and more
    assert objects["checked"] >= objects["stored"] >= 3 and objects["referenced"] >= 7
    assert report["checks"]["index"]["runs_in_index"] == 2
    assert report["checks"]["audit"]["checked"] >= 1
    text = doctor_text(store, code=0)
    for name in CHECKS:
        assert f"{name}:" in text
    assert "DAMAGED" not in text


def test_checks_can_be_sampled_and_skipped(store):
    report = doctor(store, "--sample", "2", "--skip", "index", "--skip", "audit")
    assert report["checks"]["objects"]["checked"] == 2
    assert report["checks"]["objects"]["sample"] == 2
    assert report["checks"]["index"]["status"] == "skipped"
    assert report["checks"]["audit"]["status"] == "skipped"
    result = CliRunner().invoke(cli, ["--store", str(store), "doctor", "--sample", "0"])
    assert result.exit_code == 2 and "--sample" in result.stderr
    result = CliRunner().invoke(cli, ["--store", str(store), "doctor", "--endpoint-url",
                                      "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "give both" in result.stderr
    with pytest.raises(InvalidArgument, match="cannot skip journals"):
        diagnose(LocalStore(store), skip=["journals"])


# -- objects ----------------------------------------------------------------------------------
def test_a_corrupt_loose_object_is_named_with_the_artifacts_it_breaks(store):
    rid, oid = artifact(store, "model/weights.bin")
    flip(loose(store, oid))
    report = doctor(store, code=1)
    damaged_only(report, "objects")
    bad, = report["checks"]["objects"]["corrupt"]
    assert bad["oid"] == oid
    assert f"run {rid} artifact model/weights.bin" in bad["referrers"]
    assert len(bad["referrers"]) == 2  # both runs logged the same file
    assert report["checks"]["objects"]["missing"] == []
    text = doctor_text(store)
    assert "objects:     DAMAGED" in text and f"corrupt {oid}" in text


def test_a_corrupt_pack_names_the_pack_and_its_members(store):
    client = cairn.Client(str(store))
    version = client.data.version("tiny")
    assert version.packs, "small files are expected to be packed"
    pack = version.packs[0]
    flip(loose(store, pack), at=len(loose(store, pack).read_bytes()) // 2)
    report = doctor(store, code=1)
    damaged_only(report, "objects")
    corrupt = {c["oid"]: c for c in report["checks"]["objects"]["corrupt"]}
    assert pack in corrupt and "data set tiny@1 (pack)" in corrupt[pack]["referrers"]
    members = [c for oid, c in corrupt.items() if oid != pack]
    assert members and all(m["pack"] == pack for m in members)
    assert all(r.startswith("data set tiny@1 file part") for m in members for r in m["referrers"])


def test_a_deleted_object_is_missing(store):
    rid, oid = artifact(store, "model/config.json")
    loose(store, oid).unlink()
    report = doctor(store, code=1)
    damaged_only(report, "objects")
    gone, = report["checks"]["objects"]["missing"]
    assert gone["oid"] == oid and f"run {rid} artifact model/config.json" in gone["referrers"]
    assert f"missing {oid}" in doctor_text(store)


# -- audit ------------------------------------------------------------------------------------
def test_an_edited_audit_row_is_named(store):
    with index_db(store) as db:
        seq, = db.execute("SELECT seq FROM audit_events WHERE action LIKE 'model.%' "
                          "ORDER BY seq LIMIT 1").fetchone()
        db.execute("UPDATE audit_events SET \"after\" = '{\"description\":\"forged\"}' "
                   "WHERE seq = ?", (seq,))
    report = doctor(store, code=1)
    damaged_only(report, "audit")
    audit = report["checks"]["audit"]
    assert audit["first_broken"] == seq
    assert f"#{seq}" in audit["problems"][0]["message"] and "edited" in audit["problems"][0]["message"]
    assert f"audit event #{seq}" in doctor_text(store)


# -- the index against the journals -------------------------------------------------------------
def test_an_index_missing_a_run_differs_until_reindexed(store):
    rid = runs_of(store)[0]
    with index_db(store) as db:
        db.execute("DELETE FROM runs WHERE id = ?", (rid,))
    report = doctor(store, code=1)
    damaged_only(report, "index")
    index = report["checks"]["index"]
    assert index["runs_in_journals"] == 2 and index["runs_in_index"] == 1
    assert index["fix"] == "cairn reindex"
    assert {"table": "runs", "run_id": rid, "key": None,
            "problem": "missing from the index"} in index["differences"]
    assert "cairn reindex" in doctor_text(store)

    result = CliRunner().invoke(cli, ["--store", str(store), "reindex"])
    assert result.exit_code == 0, result.output
    assert doctor(store)["ok"] is True


def test_an_edited_metric_in_the_index_is_a_difference(store):
    rid = runs_of(store)[1]
    with index_db(store) as db:
        db.execute("UPDATE latest_metrics SET value = 0.99 WHERE run_id = ? AND key = 'acc'",
                   (rid,))
    report = doctor(store, code=1)
    damaged_only(report, "index")
    diff, = report["checks"]["index"]["differences"]
    assert diff["run_id"] == rid and diff["table"] == "latest_metrics" and diff["key"] == "acc"
    assert diff["index"] == {"value": 0.99} and diff["journals"] == {"value": pytest.approx(0.7)}


def test_a_run_in_the_index_without_journals_is_a_difference(store):
    rid = runs_of(store)[0]
    shutil.rmtree(store / "runs" / rid)
    report = doctor(store, code=1)
    assert statuses(report)["index"] == "damaged"
    assert {"table": "runs", "run_id": rid, "key": None,
            "problem": "not in the journals"} in report["checks"]["index"]["differences"]


def test_a_running_run_is_not_a_difference(tracking):
    """A live run's status comes from its heartbeats, which only the index has: RUNNING in
    the index and presumed dead in a rebuild are the same."""
    with cairn.start_run():
        cairn.log_metric("loss", 1.0)
        cairn.flush()
        report = doctor(tracking)
    assert report["ok"] is True, report["checks"]["index"]


# -- the store itself -------------------------------------------------------------------------
def test_a_store_that_is_not_there_is_an_error_and_nothing_is_made(tmp_path):
    missing = tmp_path / "nowhere" / ".cairn"
    result = CliRunner().invoke(cli, ["--store", str(missing), "doctor"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no Cairn store at {missing}")
    with pytest.raises(NotFound, match="no Cairn store"):
        diagnose(LocalStore(missing))
    assert not (tmp_path / "nowhere").exists()


def test_a_database_store_needs_its_objects_named(tmp_path):
    from cairn.store.sql.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(InvalidArgument, match="--objects"):
        diagnose(store)
    store.close()


# -- PostgreSQL and S3 --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_and_s3_objects_and_audit(tmp_path, pg_url, s3_bucket, s3_endpoint, s3_env):  # noqa: F811
    from cairn.cas.backends.s3 import S3Backend
    from cairn.cas.odb import ObjectStore
    from cairn.store.sql.store import SqlStore

    objects = ObjectStore(S3Backend(s3_bucket, "cairn", endpoint_url=s3_endpoint))
    store = SqlStore(pg_url, objects)
    client = cairn.Client(store=store)
    exp = client.create_experiment("pg")
    run = client.create_run(exp.id, name="r")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(4096))
    client.log_artifact(run.id, weights)
    client.log_metric(run.id, "acc", 0.9)
    client.set_terminated(run.id)
    client.create_registered_model("clf")
    oid = client.list_artifacts(run.id)[0].digest
    args = ["--objects", f"s3://{s3_bucket}/cairn", "--endpoint-url", s3_endpoint]
    try:
        report = doctor(pg_url, *args)
        assert report["ok"] is True
        assert statuses(report) == {"schema": "ok", "journals": "not applicable",
                                    "quarantine": "not applicable", "index": "not applicable",
                                    "objects": "ok", "audit": "ok"}
        result = CliRunner().invoke(cli, ["--store", pg_url, "doctor"])
        assert result.exit_code == 1 and "--objects" in result.stderr

        # A flipped byte in S3, then an edited audit row in PostgreSQL.
        s3 = objects.backend.client
        key = f"cairn/{oid[:2]}/{oid[2:]}"
        raw = bytearray(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
        raw[-1] ^= 0x01
        s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(raw))
        report = doctor(pg_url, *args, code=1)
        damaged_only(report, "objects")
        bad, = report["checks"]["objects"]["corrupt"]
        assert bad["oid"] == oid and f"run {run.id} artifact weights.bin" in bad["referrers"]

        import sqlalchemy as sa

        with store.index.engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_events SET \"after\" = '{}' WHERE seq = 1"))
        report = doctor(pg_url, *args, "--skip", "objects", code=1)
        damaged_only(report, "audit")
        assert report["checks"]["audit"]["first_broken"] == 1
    finally:
        cairn.store.close_store(pg_url)
        store.close()


# -- the guide ----------------------------------------------------------------------------------
DOCS = Path(__file__).resolve().parent.parent / "docs" / "store-layout.md"


def guide() -> str:
    text = DOCS.read_text(encoding="utf-8")
    return text.split("## Checking: `cairn doctor`")[1].split("\n## ")[0]


def test_the_guides_examples_run(store):
    import re
    import shlex

    lines = [line for block in re.findall(r"^```sh\n(.*?)^```", guide(), re.M | re.S)
             for line in block.splitlines() if line.startswith("cairn doctor")]
    assert len(lines) == 3
    for line in lines:
        args = shlex.split(line, comments=True)[1:]
        result = CliRunner().invoke(cli, ["--store", str(store), *args])
        assert result.exit_code == 0, (line, result.output)


def keys_of(value, skip=("journals", "index")) -> set[str]:
    """Every key of a report, but the column names a difference shows."""
    if isinstance(value, list):
        return set().union(*(keys_of(v, skip) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    out = set(value)
    for k, v in value.items():
        if not (k in skip and isinstance(v, dict) and "status" not in v):
            out |= keys_of(v, skip)
    return out


def test_the_guide_names_every_option_and_json_key(store):
    text = guide()
    command = cli.commands["doctor"]
    for param in command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in ("--store", "--uri", "--help"):
                assert f"`{opt}" in text, f"{opt} is not in docs/store-layout.md"
    # Damage of every kind, so that every key shows.
    client = cairn.Client(str(store))
    pack = client.data.version("tiny").packs[0]
    flip(loose(store, pack), at=len(loose(store, pack).read_bytes()) // 2)
    with index_db(store) as db:
        db.execute("UPDATE latest_metrics SET value = 0.5")
        db.execute("UPDATE audit_events SET actor = 'mallory'")
    report = doctor(store, code=1)
    keys = keys_of(report)
    assert {"pack", "first_broken", "differences", "journals", "index"} <= keys
    for key in sorted(keys):
        assert f"`{key}`" in text, f"JSON key {key!r} is not in docs/store-layout.md"


def a_writer_during_the_comparison(monkeypatch, store, rid):
    """What a live writer does while doctor compares: the run's journal grows and the
    index follows it (after doctor's scratch replay, before its comparison)."""
    import cairn.doctor.index as dindex

    compare = dindex._compare

    def with_a_writer(journals_db, index_db):
        [journal] = (store / "runs" / rid / "journal").glob("*.cjl")
        with index_db_conn(index_db) as db:
            db.execute("UPDATE latest_metrics SET value = 0.9 WHERE run_id = ?", (rid,))
        with open(journal, "ab") as fh:
            fh.write(b"\0" * 16)
        return compare(journals_db, index_db)

    monkeypatch.setattr(dindex, "_compare", with_a_writer)
    return dindex


def test_a_run_written_while_doctor_compares_is_not_damage(store, monkeypatch):
    """A busy store: its differences are left out and the run is named, not damage."""
    rid = runs_of(store)[0]
    d = a_writer_during_the_comparison(monkeypatch, store, rid).check(LocalStore(store))
    assert d["ok"] is True and d["runs_written_meanwhile"] == [rid], d
    assert d["differences"] == [] and d["differences_found"] == 0


def test_a_damaged_run_next_to_a_busy_one_is_still_damage(store, monkeypatch):
    busy, quiet = runs_of(store)
    with index_db(store) as db:
        db.execute("UPDATE params SET value = 'forged' WHERE run_id = ?", (quiet,))
    d = a_writer_during_the_comparison(monkeypatch, store, busy).check(LocalStore(store))
    assert d["ok"] is False and d["runs_written_meanwhile"] == [busy]
    assert d["runs_differing"] == 1 and {x["run_id"] for x in d["differences"]} == {quiet}
    assert d["fix"] == "cairn reindex"


def index_db_conn(path):
    return sqlite3.connect(path)


def test_the_objects_check_keeps_no_referrer_text_for_a_whole_store(store, monkeypatch):
    """Memory on a big store: the first pass keeps one set of oids; who names an object
    is gathered (a second pass) only for the damaged ones."""
    import cairn.doctor.objects as dobj

    passes = []
    real = dobj.references

    def spy(conn, objects, only=None, names=True):
        refs = real(conn, objects, only=only, names=names)
        passes.append((only, names, len(refs.named)))
        return refs

    monkeypatch.setattr(dobj, "references", spy)
    assert doctor(store)["checks"]["objects"]["referenced"] > 0
    assert passes == [(None, False, 0)]

    rid, oid = artifact(store, "model/weights.bin")
    flip(loose(store, oid))
    passes.clear()
    corrupt, = doctor(store, code=1)["checks"]["objects"]["corrupt"]
    assert corrupt["oid"] == oid and any(rid in r for r in corrupt["referrers"])
    assert [p[:2] for p in passes] == [(None, False), ({oid}, True)]
