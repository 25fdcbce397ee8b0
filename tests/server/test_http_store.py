"""The remote client store against a real server in a thread: the same API, the same errors."""

from __future__ import annotations

import pytest
from serving import ThreadedServer

import cairn
from cairn.cas import ObjectStore
from cairn.errors import RunFinished, StoreUnavailable, Unauthenticated
from cairn.server import ServerSettings, create_app
from cairn.store.http import HttpStore
from cairn.store.sql.store import SqlStore


@pytest.fixture
def server(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "objects"))
    with ThreadedServer(create_app(store)) as url:
        yield url
    store.close()


def test_fluent_api_artifacts_and_spool_cleanup(server, tmp_path, spool, monkeypatch, tracking):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    cairn.set_tracking_uri(server)  # the tracking fixture resets the fluent state afterwards
    cairn.set_experiment("remote")
    with cairn.start_run(params={"lr": 0.1}) as run:
        for step in range(100):
            cairn.log_metric("loss", 1 / (step + 1), step=step)
        cairn.log_text("hello", "notes/a.txt")
        (tmp_path / "ckpt").mkdir()
        (tmp_path / "ckpt" / "w.bin").write_bytes(b"\x01" * 5_000_000)  # chunked
        cairn.log_artifacts(tmp_path / "ckpt", "ckpt")
    client = cairn.Client(server)
    got = client.get_run(run.id)
    assert got.status is cairn.RunStatus.FINISHED and got.params == {"lr": "0.1"}
    assert len(client.get_metric_history(run.id, "loss")) == 100
    assert [e.path for e in client.list_artifacts(run.id)] == ["ckpt/w.bin", "notes/a.txt"]
    out = client.download_artifacts(run.id, "ckpt", tmp_path / "dl")
    assert (out / "w.bin").read_bytes() == b"\x01" * 5_000_000
    assert client.verify_artifacts(run.id).ok
    # Delivered: no journal and no object copies are left in the spool.
    assert not list(spool.rglob("*.cjl"))
    assert not [p for p in (spool.rglob("objects/*/*")) if p.is_file()]
    with pytest.raises(RunFinished):
        client.log_metric(run.id, "loss", 0.0, step=101)


def test_offline_reads_use_the_experiment_cache_and_fail_cleanly(server, tmp_path):
    store = HttpStore(server, spool_dir=tmp_path / "sp")
    exp = store.create_experiment("cached")
    store.close()
    away = HttpStore("http://127.0.0.1:9", spool_dir=tmp_path / "sp2")
    away.spool = HttpStore(server, spool_dir=tmp_path / "sp").spool  # the same cache
    assert away.get_experiment_by_name("cached") == exp  # set_experiment works offline
    with pytest.raises(StoreUnavailable):
        away.get_run("anything")
    away.close()


def test_a_wrong_token_is_an_error_not_a_lost_record(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}", ObjectStore.local(tmp_path / "o"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token="cairn_" + "t" * 30))
    app.state.cairn.start()
    with ThreadedServer(app) as url:
        bad = HttpStore(url, token="cairn_wrong-token-xxxxxxxxxxxxxxxx", spool_dir=tmp_path / "sp")
        with pytest.raises(Unauthenticated, match="unknown, revoked or expired"):
            bad.list_experiments()
        bad.close()
        good = HttpStore(url, token="cairn_" + "t" * 30, spool_dir=tmp_path / "sp")
        assert good.create_experiment("ok").name == "ok"
        good.close()
    store.close()
