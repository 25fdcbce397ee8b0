"""No single journal record can make a store unopenable (issue #15).

A record the index cannot take (a lone surrogate, a wrong type, an undecodable or
damaged record, a record of another run) is copied to ``<store>/quarantine/`` with its
reason, counted as read, and listed by ``cairn doctor``; the rest of its run and every
other run replay.  The bad records are written the way a damaged or old store holds
them: raw bytes appended to a run's journal file.  The store is then opened by real
``cairn`` processes.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cairn
from cairn.errors import NotFound
from cairn.entities import FileEntry, RecordBatch, RunStatus
from cairn.store import journal as jlib
from cairn.store.local import LocalStore

RUN_A, RUN_B, RUN_C = "a" * 32, "b" * 32, "c" * 32
W_A, W_B, W_C = "a0" * 8, "b0" * 8, "c0" * 8
T0 = 1_700_000_000_000


def frame(header: dict | bytes, blobs: bytes = b"", magic: bytes = jlib.MAGIC) -> bytes:
    """One journal record as raw bytes, its CRC valid: what a tampered or old store holds.
    ``json.dumps`` writes a lone surrogate as the escape ``\\ud800``, as old Cairn did."""
    hbytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    payload = struct.pack("<I", len(hbytes)) + hbytes + blobs
    return magic + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def points(steps, values):
    steps = np.asarray(steps, dtype=np.int64)
    return steps, T0 + steps, np.asarray(values, dtype=np.float64)


def create(run_id: str, writer: str, **extra) -> RecordBatch:
    return RecordBatch(run_id, writer, 1, T0, params={"lr": "0.1"}, tags={"team": "a"},
                       create={"experiment_id": "42", "experiment_name": "quarantine",
                               "experiment_created_at": T0, "name": f"run-{run_id[:4]}",
                               "user": "tester", "start_time": T0}, **extra)


def metric(run_id: str, writer: str, seq: int, step: int, **extra) -> RecordBatch:
    return RecordBatch(run_id, writer, seq, T0 + seq, metrics={"loss": points([step], [1 / (step + 1)])},
                       **extra)


def journal(root: Path, run_id: str, writer: str) -> Path:
    return root / "runs" / run_id / "journal" / f"{writer}.cjl"


def append(root: Path, batch: RecordBatch) -> None:
    jw = jlib.JournalWriter(journal(root, batch.run_id, batch.writer_id))
    try:
        jw.append(batch)
    finally:
        jw.close()


def append_raw(root: Path, run_id: str, writer: str, data: bytes) -> int:
    """Append bytes to a journal; returns the offset where they start."""
    path = journal(root, run_id, writer)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = path.stat().st_size if path.exists() else 0
    with open(path, "ab") as fh:
        fh.write(data)
    return start


def cairn_cli(root: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    """``cairn --store ROOT ARGS...`` in a process of its own."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from cairn.cli.main import main; main()",
         "--store", str(root), *args],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "COLUMNS": "200", "CAIRN_TRACKING_URI": str(root)})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    return proc


def doctor(root: Path) -> dict:
    return json.loads(cairn_cli(root, "doctor", "--json", code=1).stdout)


def read_store(root: Path):
    """Runs (by id) and each run's loss history, through a fresh store of this process."""
    store = LocalStore(root)
    try:
        store.open()
        runs = {r.id: r for r in store.search_runs(None, "", max_results=100)[0]}
        hist = {}
        for rid in runs:
            h = store.get_metric_history(rid, "loss")
            hist[rid] = [(int(s), float(v)) for s, v in zip(h.steps, h.values)]
        return runs, hist
    finally:
        store.close()


def quarantine_files(root: Path) -> dict[str, tuple[int, bytes]]:
    base = root / "quarantine"
    if not base.is_dir():
        return {}
    return {str(p.relative_to(base)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / ".cairn"


@pytest.fixture
def damaged(root: Path) -> dict[tuple[str, int], tuple[str, bytes]]:
    """Three runs; A and B hold bad records between good ones.  Returns the bad records:
    (run, offset) -> (what the reason must say, their bytes)."""
    bad: dict[tuple[str, int], tuple[str, bytes]] = {}

    def put(run_id: str, writer: str, data: bytes, why: str) -> None:
        bad[(run_id, append_raw(root, run_id, writer, data))] = (why, data)

    # Run A: good, a lone surrogate in a tag, good, a record cut short mid-file, a string
    # param, an artifact size no database integer holds, a segment of no points, good, end.
    append(root, create(RUN_A, W_A))
    append(root, metric(RUN_A, W_A, 2, 0))
    put(RUN_A, W_A, frame({"run": RUN_A, "w": W_A, "seq": 3, "t": T0, "tags": {"k": "x\ud800y"}}),
        "surrogates not allowed")
    append(root, metric(RUN_A, W_A, 4, 1, tags={"phase": "train"}))
    cut = frame({"run": RUN_A, "w": W_A, "seq": 5, "t": T0, "tags": {"lost": "yes"}})
    put(RUN_A, W_A, cut[:len(cut) - 7], "")  # the next record's magic follows
    put(RUN_A, W_A, frame({"run": RUN_A, "w": W_A, "seq": 6, "t": T0, "params": {"p": 5}}),
        "params must map strings to strings")
    put(RUN_A, W_A, frame({"run": RUN_A, "w": W_A, "seq": 7, "t": T0,
                           "artifacts": [["big.bin", 2 ** 70, "ab" * 32, []]]}),
        "OverflowError")
    empty = struct.pack("<cBI", b"S", 0, 0)
    put(RUN_A, W_A, frame({"run": RUN_A, "w": W_A, "seq": 8, "t": T0,
                           "segments": [["loss", len(empty)]]}, empty), "ValueError")
    append(root, metric(RUN_A, W_A, 9, 2))
    append(root, RecordBatch(RUN_A, W_A, 10, T0 + 10, status=RunStatus.FINISHED,
                             end_time=T0 + 10))

    # Run B: good, another run's record, a step given as text, JSON cut short with a valid
    # CRC, an unknown status, an unknown record kind (magic), good; the last record bad too.
    append(root, create(RUN_B, W_B))
    append(root, metric(RUN_B, W_B, 2, 0))
    put(RUN_B, W_B, frame({"run": "f" * 32, "w": W_B, "seq": 3, "t": T0, "tags": {"k": "v"}}),
        "lies in the journal of run")
    put(RUN_B, W_B, frame({"run": RUN_B, "w": W_B, "seq": "4", "t": T0}), "bad sequence number")
    put(RUN_B, W_B, frame(b'{"run": "' + RUN_B.encode() + b'", "w": "'), "undecodable record")
    put(RUN_B, W_B, frame({"run": RUN_B, "w": W_B, "seq": 5, "t": T0, "status": "EXPLODED"}),
        "undecodable record")
    put(RUN_B, W_B, frame({"run": RUN_B, "w": W_B, "seq": 6, "t": T0}, magic=b"CJR9"),
        "bad record magic")
    append(root, metric(RUN_B, W_B, 7, 1))
    put(RUN_B, W_B, frame({"run": RUN_B, "w": W_B, "seq": 8, "t": "later"}), "bad time")

    # Run C: nothing wrong.
    append(root, create(RUN_C, W_C))
    append(root, metric(RUN_C, W_C, 2, 0))
    append(root, metric(RUN_C, W_C, 3, 1))
    return bad


def test_bad_records_are_quarantined_and_the_rest_replays(root, damaged):
    listed = json.loads(cairn_cli(root, "runs", "ls", "--json").stdout)["runs"]
    assert sorted(r["id"] for r in listed) == [RUN_A, RUN_B, RUN_C]

    runs, hist = read_store(root)
    a, b = runs[RUN_A], runs[RUN_B]
    # Every good point before and after the bad records is there.
    assert hist[RUN_A] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert hist[RUN_B] == [(0, 1.0), (1, 0.5)]
    assert hist[RUN_C] == [(0, 1.0), (1, 0.5)]
    assert a.status is RunStatus.FINISHED and a.end_time == T0 + 10
    assert dict(a.params) == {"lr": "0.1"} and dict(a.tags) == {"team": "a", "phase": "train"}
    assert dict(b.tags) == {"team": "a"} and b.heartbeat == T0 + 7
    assert a.metrics["loss"] == pytest.approx(1 / 3)

    report = doctor(root)
    held = report["quarantined_records"]
    assert report["damaged_records"] == []  # each damaged span is listed once, in quarantine
    assert report["quarantined_runs"] == [RUN_A, RUN_B]
    assert {(q["run_id"], q["offset"]) for q in held} == set(damaged)
    for q in held:
        why, data = damaged[(q["run_id"], q["offset"])]
        assert why in q["reason"], q
        assert q["writer_id"] == {RUN_A: W_A, RUN_B: W_B}[q["run_id"]]
        assert q["journal"] == f"runs/{q['run_id']}/journal/{q['writer_id']}.cjl"
        # The bytes are kept, exactly as the journal holds them.
        kept = Path(q["file"]).with_suffix(".cjr").read_bytes()
        assert kept == data[:len(kept)] and q["length"] == len(kept)
        meta = json.loads(Path(q["file"]).read_text())
        assert meta["reason"] == q["reason"] and meta["offset"] == q["offset"]
    assert Path(held[0]["file"]).parent.parent == root / "quarantine"

    text = cairn_cli(root, "doctor", code=1).stdout
    assert f"{len(damaged)} journal record(s) in quarantine, of 2 run(s)" in text
    assert "surrogates not allowed" in text and RUN_B in text


def test_quarantined_records_are_not_tried_again(root, damaged):
    cairn_cli(root, "runs", "ls")
    before = quarantine_files(root)
    assert len(before) == 2 * len(damaged)  # the bytes and a note for each
    # Every journal counts as read to its end: nothing is left to replay.
    store = LocalStore(root)
    try:
        store.open()
        offsets = store.index.all_writer_offsets()
    finally:
        store.close()
    for run_id, writer in ((RUN_A, W_A), (RUN_B, W_B), (RUN_C, W_C)):
        assert offsets[writer] == journal(root, run_id, writer).stat().st_size

    time.sleep(0.01)
    cairn_cli(root, "runs", "ls")
    assert len(doctor(root)["quarantined_records"]) == len(damaged)
    assert quarantine_files(root) == before  # not rewritten, not added to

    # Without its quarantine folder the store still does not meet those records again.
    for p in sorted((root / "quarantine").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    cairn_cli(root, "runs", "ls")
    assert quarantine_files(root) == {}
    report = doctor(root)
    assert report["quarantined_records"] == []
    # The journal scan still finds the damaged spans (not the records the index refused).
    assert len(report["damaged_records"]) == 4


def test_reindex_on_a_store_with_bad_records(root, damaged):
    cairn_cli(root, "runs", "ls")
    before = read_store(root)
    quarantined = quarantine_files(root)

    out = json.loads(cairn_cli(root, "reindex", "--json").stdout)
    assert out["runs"] == 3 and out["quarantined"] == len(damaged)
    assert out["damaged"] == 4  # the cut record, two undecodable ones, the unknown magic
    assert "in quarantine" in cairn_cli(root, "reindex").stdout

    after = read_store(root)
    assert after[1] == before[1]
    assert {k: (r.params, r.tags, r.status, r.metrics) for k, r in after[0].items()} == \
        {k: (r.params, r.tags, r.status, r.metrics) for k, r in before[0].items()}
    assert quarantine_files(root) == quarantined  # the same entries, written once
    assert len(doctor(root)["quarantined_records"]) == len(damaged)


def test_reindex_first_on_a_store_that_never_opened(root, damaged):
    """`cairn reindex` (and `cairn doctor`) work as the first thing to open such a store."""
    os.remove(root / "index.db") if (root / "index.db").exists() else None
    out = json.loads(cairn_cli(root, "reindex", "--json").stdout)
    assert out["runs"] == 3 and out["quarantined"] == len(damaged)
    assert read_store(root)[1][RUN_A] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_a_bad_creation_record_quarantines_its_run_only(root):
    """A run whose creation record is bad cannot exist: its other records go to
    quarantine with it (instead of rows of a run that is not there); other runs open."""
    append_raw(root, RUN_A, W_A, frame({
        "run": RUN_A, "w": W_A, "seq": 1, "t": T0, "params": {"lr": "\udfff"},
        "create": {"experiment_id": "42", "experiment_name": "quarantine", "start_time": T0}}))
    append(root, metric(RUN_A, W_A, 2, 0))
    append(root, create(RUN_C, W_C))
    # A second writer of run A, seen in a later open.
    listed = json.loads(cairn_cli(root, "runs", "ls", "--json").stdout)["runs"]
    assert [r["id"] for r in listed] == [RUN_C]
    append(root, metric(RUN_A, "a1" * 8, 1, 5))
    cairn_cli(root, "runs", "ls")

    held = doctor(root)["quarantined_records"]
    assert [(q["writer_id"], q["creation"]) for q in held] == \
        [("a0" * 8, True), ("a0" * 8, False), ("a1" * 8, False)]
    assert "surrogates not allowed" in held[0]["reason"]
    assert all("creation record is in quarantine" in q["reason"] for q in held[1:])
    with pytest.raises(NotFound):
        cairn.Client(str(root)).get_run(RUN_A)


def test_records_of_a_run_whose_creation_is_still_on_its_way_wait(root):
    """A run copied in file by file may show a writer's journal before the creation
    record's: those records are neither applied nor quarantined, but wait for it."""
    append(root, create(RUN_C, W_C))
    append(root, metric(RUN_A, "a1" * 8, 1, 5))
    assert [r["id"] for r in json.loads(cairn_cli(root, "runs", "ls", "--json").stdout)["runs"]] \
        == [RUN_C]
    assert not (root / "quarantine").exists()
    append(root, create(RUN_A, W_A))
    append(root, metric(RUN_A, W_A, 2, 0))
    cairn_cli(root, "runs", "ls")
    assert read_store(root)[1][RUN_A] == [(0, 1.0), (5, 1 / 6)]
    assert json.loads(cairn_cli(root, "doctor", "--json").stdout)["quarantined_records"] == []


@pytest.mark.parametrize("delay", [0.05, 0], ids=["group-commit", "direct"])
def test_a_live_write_the_index_refuses_is_quarantined(root, delay):
    """A batch that reached the journal but that the index refuses (an integer no
    database column holds) is set aside; the batches around it go in, the writer goes on.
    Applied with others (group commit) the writer does not hear of it; applied at once
    (``CAIRN_INDEX_DELAY=0``, a server) the write raises."""
    store = LocalStore(root, index_delay=delay)
    try:
        store.write(create(RUN_A, W_A))
        store.write(metric(RUN_A, W_A, 2, 0))
        big = RecordBatch(RUN_A, W_A, 3, T0 + 3,
                          artifacts=(FileEntry("big.bin", 2 ** 70, "ab" * 32, ()),))
        if delay:
            store.write(big)
        else:
            with pytest.raises(OverflowError):
                store.write(big)
        store.write(metric(RUN_A, W_A, 4, 1))
        store.settle()
        assert [int(s) for s in store.get_metric_history(RUN_A, "loss").steps] == [0, 1]
        assert store.list_artifacts(RUN_A) == []
    finally:
        store.close()
    held = doctor(root)["quarantined_records"]
    assert len(held) == 1 and "OverflowError" in held[0]["reason"]
    assert held[0]["offset"] + held[0]["length"] < journal(root, RUN_A, W_A).stat().st_size
    # The quarantined bytes are that record, whole.
    kept = Path(held[0]["file"]).with_suffix(".cjr")
    entry, = jlib.read(kept)
    assert isinstance(entry, jlib.Entry) and entry.batch.seq == 3
    assert entry.batch.artifacts[0].size == 2 ** 70


def test_records_cairn_writes_are_never_quarantined(tracking, tmp_path):
    """The checks refuse nothing a real run journals: params, tags, deleted tags, metrics,
    artifacts, nested runs, the environment, every way a run ends."""
    (tmp_path / "f.txt").write_text("x")
    cairn.set_experiment("real")
    with cairn.start_run(name="parent", params={"lr": 0.1, "layers": [1, 2]}, tags={"t": "é"}):
        cairn.log_metrics({"acc": 0.5, "nan": float("nan"), "inf": float("inf")}, step=3)
        cairn.set_tag("gone", "x")
        cairn.flush()
        cairn.Client(str(tracking)).delete_tag(cairn.active_run().id, "gone")
        cairn.log_artifact(tmp_path / "f.txt")
        with cairn.start_run(name="child", nested=True):
            cairn.log_metric("loss", 1.0)
    with pytest.raises(RuntimeError), cairn.start_run(name="failed"):
        raise RuntimeError("boom")
    cairn.flush()
    out = json.loads(cairn_cli(tracking, "reindex", "--json").stdout)
    assert out["runs"] == 3 and out["records"] > 3
    assert out["quarantined"] == 0 and out["damaged"] == 0
    assert not (tracking / "quarantine").exists()
    assert json.loads(cairn_cli(tracking, "doctor", "--json").stdout)["quarantined_records"] == []


# -- whatever a record holds -------------------------------------------------------------------
_texts = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=6) | \
    st.sampled_from(["\ud800", "x\udfffy", "", "team", "loss"])
_scalars = st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | \
    st.floats(allow_nan=False, allow_infinity=False) | _texts
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) |
                       st.dictionaries(_texts, inner, max_size=3), max_leaves=8)
_FIELDS = ["seq", "t", "params", "tags", "deleted_tags", "artifacts", "status", "end_time",
           "create", "env", "segments"]
_headers = st.fixed_dictionaries({}, optional={
    "seq": st.integers(-3, 2 ** 70) | _values, "t": st.integers(0, 2 ** 70) | _values,
    "params": st.dictionaries(_texts, _texts | _values, max_size=3) | _values,
    "tags": st.dictionaries(_texts, _texts | _values, max_size=3) | _values,
    "deleted_tags": st.lists(_texts, max_size=3) | _values,
    "artifacts": st.lists(st.tuples(_texts, st.integers(-1, 2 ** 70), _texts,
                                    st.lists(st.tuples(_texts, st.integers()), max_size=2)),
                          max_size=2) | _values,
    "status": st.sampled_from(["FINISHED", "FAILED", "KILLED", "RUNNING", "?"]) | _values,
    "end_time": st.integers(0, 2 ** 70) | _values,
    "create": st.fixed_dictionaries({"experiment_id": _texts | _values}, optional={
        "experiment_name": _texts | _values, "name": _texts | _values,
        "start_time": st.integers(0, 2 ** 70) | _values, "parent_id": _texts | _values,
        "user": _texts | _values, "heartbeat": st.integers(0, 2 ** 70) | _values}) | _values,
    "env": st.dictionaries(_texts, _values, max_size=3) | _values,
    "segments": st.lists(st.tuples(_texts, st.integers(0, 40)), max_size=2) | _values,
})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(junk=st.lists(_headers, min_size=1, max_size=6), own=st.booleans(),
       cut=st.integers(0, 60))
def test_no_record_makes_a_store_unopenable(tmp_path_factory, junk, own, cut):
    """Any JSON header in a CRC-valid record, in a run's journal between good records (or
    cut short): the store opens, every read works, the good records all replay."""
    root = tmp_path_factory.mktemp("fuzz") / ".cairn"
    jw = "d1" * 8  # the junk's own writer, so that a valid seq there shadows nothing good
    append(root, create(RUN_A, W_A))
    for i, header in enumerate(junk):
        # In the good writer's journal the junk's seq is never valid: a valid one would
        # stand for the good record of that seq (replay applies each (writer, seq) once).
        data = frame(json.dumps({"run": RUN_A, "w": jw if own else W_A,
                                 **header, **({} if own else {"seq": 0})}).encode(),
                     b"S\x00\x01\x00\x00\x00" + bytes(24) if header.get("segments") else b"")
        append_raw(root, RUN_A, jw if own else W_A, data if i else data[:len(data) - cut])
        append(root, metric(RUN_A, W_A, 2 + i, i))
    append(root, metric(RUN_C, W_C, 1, 7, create=create(RUN_C, W_C).create))

    store = LocalStore(root)
    try:
        store.open()
        runs = {r.id: r for r in store.search_runs(None, "", max_results=100)[0]}
        assert set(runs) <= {RUN_A, RUN_C} and RUN_C in runs
        for rid in runs:
            store.get_run(rid)
            store.list_artifacts(rid)
            for key in runs[rid].metrics:
                store.get_metric_history(rid, key)
        history = store.get_metric_history(RUN_A, "loss")
        good = [i for i in range(len(junk))]
        assert [int(s) for s in history.steps if s in good] == good  # every good point
        store.search_runs(None, "params.lr = '0.1'", order_by=["metrics.loss DESC"])
        assert len(list((root / "quarantine").glob("*/*.json"))) <= len(junk)
        # Every journal counts as read to its end (but a record cut short at the very end
        # of one, which may still be being written): no later open meets the junk again.
        offsets = store.index.all_writer_offsets()
        for path in root.glob("runs/*/journal/*.cjl"):
            if not (path.stem == jw and len(junk) == 1 and cut):
                assert offsets.get(path.stem) == path.stat().st_size, path
        assert store.recover() == 0
    finally:
        store.close()
