"""Backup of a server's store (PostgreSQL + S3 on the moto server) taken while four writer
processes log through the server, restored into a fresh database and bucket, and verified;
a local backup restored into PostgreSQL; a store that is not empty refused."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from click.testing import CliRunner
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from procs import reap_processes, spawn, wait_for_line  # noqa: F401  (the fixture reaps them)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from serving import ThreadedServer
from .test_backup import ARTIFACT_EVERY, STEPS, WRITER, _register

import cairn
from cairn.cli.main import cli
from cairn.doctor import diagnose
from cairn.errors import Conflict
from cairn.lifecycle.backup import backup
from cairn.lifecycle.restore import restore
from cairn.server.serve import open_objects
from cairn.store.sql.store import SqlStore

pytestmark = pytest.mark.slow


def _verify(url: str, objects_spec: str, endpoint: str, snapshot_runs: dict) -> None:
    objects = open_objects(objects_spec, endpoint)
    store = SqlStore(url, objects)
    try:
        report = diagnose(store, objects=objects)
        assert report.ok, report.to_dict()
        assert report.check("objects").details["referenced"] > 0
        c = cairn.Client(store=store)
        for rid, status in snapshot_runs.items():
            steps = [p.step for p in c.get_metric_history(rid, "loss")]
            assert steps == list(range(len(steps)))
            if status == "FINISHED":
                assert len(steps) == STEPS
                assert len(c.list_artifacts(rid)) == STEPS // ARTIFACT_EVERY
            assert c.verify_artifacts(rid).ok
        assert c.verify_audit_log().ok and c.audit_log(limit=1)
        assert c.get_model_version("fraud", "1.0.0") is not None
    finally:
        store.close()


def test_postgres_s3_backup_under_load_restores(pg_database, s3_endpoint, s3_client,  # noqa: F811
                                                s3_bucket, s3_env, tmp_path):  # noqa: F811
    from cairn.server.app import create_app

    src_url = create_schema(pg_database)
    src_objects = f"s3://{s3_bucket}/cairn"
    store = SqlStore(src_url, open_objects(src_objects, s3_endpoint))
    stop, dest = tmp_path / "stop", tmp_path / "bk"
    env = {"CAIRN_SPOOL_DIR": str(tmp_path / "spool")}
    try:
        with ThreadedServer(create_app(store)) as url:
            _register(url)
            writers = [spawn(url, WRITER, stop, f"w{k}", env=env) for k in range(4)]
            for w in writers:
                wait_for_line(w, "STARTED")
            time.sleep(2.5)
            source = SqlStore(src_url)
            try:
                first = backup(source, dest, objects=src_objects, endpoint_url=s3_endpoint)
            finally:
                source.close()
            stop.touch()
            for w in writers:
                _out, err = w.communicate(timeout=180)
                assert w.returncode == 0, err
    finally:
        store.close()
    assert first.ok and first.source_kind == "sql" and first.objects_copied > 0
    conn = sqlite3.connect(dest / "index.db")
    try:
        runs = dict(conn.execute("SELECT id, status FROM runs"))
    finally:
        conn.close()
    assert len(runs) >= 4
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "sql" and manifest["counts"]["audit_events"] >= 3

    # Into a fresh database and bucket: the store as it was at the snapshot.
    s3_client.create_bucket(Bucket=s3_bucket + "-r")
    tgt_url, tgt_objects = create_schema(pg_database), f"s3://{s3_bucket}-r/restored"
    res = CliRunner().invoke(cli, ["--store", tgt_url, "restore", str(dest), "--objects",
                                   tgt_objects, "--endpoint-url", s3_endpoint, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["target_kind"] == "sql" and out["replaced"] is False
    _verify(tgt_url, tgt_objects, s3_endpoint, runs)
    restored = SqlStore(tgt_url, open_objects(tgt_objects, s3_endpoint))
    try:
        c = cairn.Client(store=restored)
        assert {r.id for r in c.search_runs(None, max_results=10_000)} == set(runs)
        # The writers went on after the snapshot: the source has runs the backup has not.
        source = SqlStore(src_url)
        try:
            later = {r.id for r in cairn.Client(store=source).search_runs(None, max_results=10_000)}
        finally:
            source.close()
        assert set(runs) < later, "the backup was taken while the writers logged"
        assert c.audit_log(limit=1)[0].hash == manifest["audit_head"]["hash"]
        # The restored store takes new writes (its sequences are past the restored ids).
        c.register_model("fraud2", _model())
        assert c.verify_audit_log().ok
    finally:
        restored.close()

    # Not empty now: refused, then replaced with --force.
    with pytest.raises(Conflict, match="not empty"):
        restore(dest, tgt_url, objects=tgt_objects, endpoint_url=s3_endpoint)
    restore(dest, tgt_url, objects=tgt_objects, endpoint_url=s3_endpoint, force=True)
    again = SqlStore(tgt_url)
    try:
        assert cairn.Client(store=again).get_registered_model("fraud2") is None
    except cairn.errors.NotFound:
        pass
    finally:
        again.close()


def _model():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.random.RandomState(1).randn(30, 3)
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_local_backup_restores_into_postgres(pg_database, tmp_path):  # noqa: F811
    """Cross-kind: a local store's backup (journals replayed first) into a database with a
    directory of objects; a database backup refuses to become a local store."""
    src = tmp_path / "store"
    _register(src)
    rid = _one_run(src)
    dest = tmp_path / "bk"
    backup(cairn.Client(str(src)).store, dest)
    url, objects = create_schema(pg_database), str(tmp_path / "objects")
    report = restore(dest, url, objects=objects)
    assert report.source_kind == "local" and report.target_kind == "sql"
    _verify(url, objects, None, {rid: "FINISHED"})


def _one_run(store) -> str:
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("cross").id)
    for i in range(STEPS):
        c.log_metric(run.id, "loss", 1.0 / (i + 1), step=i)
    for i in range(STEPS // ARTIFACT_EVERY):
        f = store.parent / f"a{i}.txt"
        f.write_text(f"artifact {i} " * 20)
        c.log_artifact(run.id, f)
    c.set_terminated(run.id)
    return run.id


def test_a_damaged_backup_leaves_the_database_untouched(pg_database, tmp_path):  # noqa: F811
    import sqlalchemy as sa

    from cairn.errors import CorruptObject

    src = tmp_path / "store"
    _one_run(src)
    dest = tmp_path / "bk"
    backup(cairn.Client(str(src)).store, dest)
    last = (dest / "objects.txt").read_text().split()[-3]
    obj = dest / "objects" / last[:2] / last[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-1])
    url = create_schema(pg_database)
    with pytest.raises(CorruptObject, match=f"object {last}"):
        restore(dest, url, objects=str(tmp_path / "objects"))
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == [], "no half-restored store"
    finally:
        engine.dispose()
