"""Artifacts logged by writers that exit without flushing their index writes (``os._exit``,
as a forked worker does) are seen by a reader that opened the store before they exited."""

import multiprocessing
import os

import pytest

import cairn


def _log(store: str, run_id: str, k: int, tmp: str) -> None:
    c = cairn.Client(store)
    for i in range(15):
        path = os.path.join(tmp, f"w{k}-{i}.txt")
        with open(path, "w") as f:
            f.write(f"{k} {i}")
        c.log_artifact(run_id, path, "seg")
    os._exit(0)  # no atexit: whatever the index has not applied yet is only in the journal


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_reader_open_before_two_writers_exit_lists_every_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    store = str(tmp_path / "store")
    reader = cairn.Client(store)
    run = reader.create_run(reader.get_or_create_experiment("e").id)
    assert reader.list_artifacts(run.id) == []  # the reader's store is open, its index read
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_log, args=(store, run.id, k, str(tmp_path))) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = sorted(e.path for e in reader.list_artifacts(run.id, "seg"))
    assert names == sorted(f"seg/w{k}-{i}.txt" for k in range(2) for i in range(15))
