"""The remote client's spool: a server that dies mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from serving import CAIRN, ProcessServer

import cairn
from cairn.store.http import HttpStore

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STEPS = 300

WORKER = textwrap.dedent("""
    import sys, time, cairn
    cairn.set_experiment("spool-test")
    with cairn.start_run(name=sys.argv[1], params={"worker": sys.argv[1]}) as run:
        print(run.id, flush=True)
        for step in range(%d):
            cairn.log_metric("x", step * 1.5, step=step)
            cairn.log_metric("y", -step, step=step)
            time.sleep(float(sys.argv[2]))
""" % STEPS)


def _spawn(name: str, url: str, pause: float, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, name, str(pause)],
                            env={**os.environ, **env, "CAIRN_TRACKING_URI": url,
                                 "CAIRN_FLUSH_INTERVAL": "0.1", "CAIRN_CAPTURE_ENV": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_exactly_once(url: str, run_ids: list[str]) -> None:
    client = cairn.Client(url)
    for rid in run_ids:
        run = client.get_run(rid)
        assert run.status is cairn.RunStatus.FINISHED, run
        for key, scale in (("x", 1.5), ("y", -1.0)):
            h = client.get_metric_history(rid, key)
            assert h.steps.tolist() == list(range(STEPS)), (rid, key, len(h))
            assert h.values.tolist() == [s * scale for s in range(STEPS)]
            assert run.metric_summaries[key].count == STEPS


def test_kill_server_while_four_processes_log(tmp_path, pg_url, spool, server_workers):
    srv = ProcessServer("--db", pg_url, "--objects", str(tmp_path / "objects"), "--no-auth",
                        "--workers", str(server_workers), log=tmp_path / "server.log")
    srv.start()
    env = {"CAIRN_SPOOL_DRAIN_TIMEOUT": "60"}
    procs = [_spawn(f"w{i}", srv.url, 0.02, env) for i in range(4)]
    try:
        run_ids = [p.stdout.readline().strip() for p in procs]  # every run exists on the server
        assert all(run_ids), [p.stderr.read() for p in procs]
        time.sleep(1.5)
        srv.kill()  # mid-run: the workers keep logging into their spools
        time.sleep(2.0)
        srv.start()
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    try:
        _check_exactly_once(srv.url, run_ids)
    finally:
        srv.stop()
    leftover = list(spool.rglob("*.cjl"))
    assert leftover == [], leftover  # every journal was delivered and removed


def test_runs_that_end_while_the_server_is_away_arrive_with_cairn_sync(tmp_path, pg_url, spool):
    srv = ProcessServer("--db", pg_url, "--objects", str(tmp_path / "objects"), "--no-auth",
                        log=tmp_path / "server.log")
    srv.start()
    procs = [_spawn(f"w{i}", srv.url, 0.005, {"CAIRN_SPOOL_DRAIN_TIMEOUT": "0.5"})
             for i in range(2)]
    run_ids = [p.stdout.readline().strip() for p in procs]
    srv.kill()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "cairn sync" in err  # told where the records wait
    assert list(spool.rglob("*.cjl"))
    srv.start()
    try:
        out = subprocess.run([*CAIRN, "--store", srv.url, "sync"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "CAIRN_SPOOL_DIR": str(spool)})
        assert out.returncode == 0, out.stderr
        _check_exactly_once(srv.url, run_ids)
        again = subprocess.run([*CAIRN, "--store", srv.url, "sync", "--json"],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and '"pending_writers": 0' in again.stdout
    finally:
        srv.stop()
    assert list(spool.rglob("*.cjl")) == []


def test_sync_uploads_offline_local_runs_once(tmp_path, pg_url, spool):
    local = tmp_path / "offline"
    client = cairn.Client(str(local))
    exp = client.create_experiment("offline-exp")
    ids = []
    for i in range(5):
        run = client.create_run(exp.id, params={"i": i})
        client.log_batch(run.id, [("m", float(s), s, 1000 + s) for s in range(50)])
        art = tmp_path / f"a{i}.txt"
        art.write_text(f"artifact {i}")
        client.log_artifact(run.id, art)
        client.set_terminated(run.id)
        ids.append(run.id)
    with ProcessServer("--db", pg_url, "--objects", str(tmp_path / "objects"), "--no-auth") as srv:
        remote = HttpStore(srv.url, spool_dir=spool)
        remote.create_experiment("offline-exp")  # same name, another id: runs join it
        from cairn.store.sync import sync_local_store

        first = sync_local_store(local, remote, workers=4)
        assert first.ok and first.runs == 5 and first.applied == first.records
        assert first.objects_uploaded == 5
        second = sync_local_store(local, remote, workers=4)
        assert second.applied == 0 and second.duplicates == first.records
        rc = cairn.Client(srv.url)
        for i, rid in enumerate(ids):
            run = rc.get_run(rid)
            assert run.experiment == "offline-exp" and run.params == {"i": str(i)}
            assert len(rc.get_metric_history(rid, "m")) == 50
            out = rc.download_artifacts(rid, f"a{i}.txt", tmp_path / "dl")
            assert out.read_text() == f"artifact {i}"
        remote.close()
