"""Two server processes on one PostgreSQL and one S3-compatible store serve one consistent state."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from serving import ProcessServer

import cairn
from cairn.entities import RecordBatch
from cairn.store.http import HttpStore

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOKEN = "cairn_replica-test-bootstrap-token-0123456789"


def test_two_replicas_on_one_database_and_bucket(tmp_path, pg_url, s3_bucket, s3_endpoint,  # noqa: F811
                                                 spool, monkeypatch):
    args = ("--db", pg_url, "--objects", f"s3://{s3_bucket}/cairn", "--endpoint-url", s3_endpoint,
            "--auth")
    env = {"CAIRN_BOOTSTRAP_TOKEN": TOKEN}  # not on the command line, where ps shows it
    a = ProcessServer(*args, env=env, log=tmp_path / "a.log")
    b = ProcessServer(*args, env=env, log=tmp_path / "b.log")
    # Both start at once against an empty database: one creates the schema and the admin.
    starters = [threading.Thread(target=s.start) for s in (a, b)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        sa = HttpStore(a.url, token=TOKEN, spool_dir=tmp_path / "spool-a")
        sb = HttpStore(b.url, token=TOKEN, spool_dir=tmp_path / "spool-b")
        exp = sa.create_experiment("shared")
        assert sb.get_experiment_by_name("shared") == exp

        # One run, two writers, each through its own replica, at the same time.
        create = {"experiment_id": exp.id, "experiment_name": "shared", "name": "r",
                  "user": "u", "start_time": 1}
        sa.write(RecordBatch(run_id="run1", writer_id="wa", seq=1, time=1, create=create))
        n, rounds = 200, 25
        errors: list[BaseException] = []

        def writer(store, wid, offset):
            try:
                for seq in range(1, rounds + 1):
                    steps = np.arange(n) + offset + (seq - 1) * n
                    batch = RecordBatch(run_id="run1", writer_id=wid, seq=seq + (wid == "wa"),
                                        time=seq, metrics={"m": (steps, steps, steps * 1.0)})
                    store.write(batch)
                    store.write(batch)  # a retry through the same replica: applied once
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(sa, "wa", 0)),
                   threading.Thread(target=writer, args=(sb, "wb", 10**6))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for store in (sa, sb):
            run = store.get_run("run1")
            assert run.metric_summaries["m"].count == 2 * n * rounds
            h = store.get_metric_history("run1", "m")
            assert len(h) == 2 * n * rounds and len(set(h.steps.tolist())) == 2 * n * rounds

        # Artifacts through A, read back through B (both on the bucket).
        art = tmp_path / "model.bin"
        art.write_bytes(np.random.default_rng(0).bytes(5 << 20))  # chunked: several objects
        monkeypatch.setenv("CAIRN_TRACKING_TOKEN", TOKEN)
        ca, cb = cairn.Client(a.url), cairn.Client(b.url)
        run = ca.create_run(exp.id, name="with-artifact")
        ca.log_artifact(run.id, art)
        ca.set_terminated(run.id)
        out = cb.download_artifacts(run.id, "model.bin", tmp_path / "dl")
        assert out.read_bytes() == art.read_bytes()
        assert cb.get_run(run.id).status is cairn.RunStatus.FINISHED
        found = cb.search_runs("shared", "attributes.status = 'FINISHED'")
        assert [r.id for r in found] == [run.id]
        sa.close()
        sb.close()
    finally:
        a.stop()
        b.stop()
