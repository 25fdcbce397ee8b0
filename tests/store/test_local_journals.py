"""A local store keeps a bounded number of journal files open."""

from cairn.entities import RecordBatch
from cairn.store import local
from cairn.store.local import LocalStore


def test_quiet_writers_give_back_their_files_and_reopen(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_OPEN_JOURNALS", 8)
    store = LocalStore(tmp_path / "s")
    exp = store.create_experiment("e")

    def batch(i: int, seq: int, **fields) -> RecordBatch:
        return RecordBatch(run_id=f"run{i}", writer_id=f"w{i}", seq=seq, time=1000 + seq, **fields)

    for i in range(20):  # twenty runs that never end: more writers than open files allowed
        store.write(batch(i, 1, create={"experiment_id": exp.id, "name": f"r{i}"}, params={"i": str(i)}))
    assert len(store._journals) <= 8
    for i in range(20):  # the first writers write again: their files reopen and append
        store.write(batch(i, 2, tags={"again": "yes"}))
    assert len(store._journals) <= 8
    runs = {r.name: r for r in store.search_runs(None, "tags.again = 'yes'", max_results=100)[0]}
    assert len(runs) == 20 and runs["r0"].params == {"i": "0"}
    store.close()
    # The journals alone rebuild the same index.
    again = LocalStore(tmp_path / "s")
    assert again.reindex()["records"] == 40
    assert len(again.search_runs(None, "tags.again = 'yes'", max_results=100)[0]) == 20
    again.close()
