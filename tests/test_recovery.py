"""Journal guarantees with real files: replay, damage, truncation, reindex, schema checks.

The journal is the source of truth and the index is derived from it, so these tests
write journals directly (as another process, a crash or a copy would leave them) and
check what a store makes of them.
"""

import contextlib
import math
import shutil
import sqlite3
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cairn
from cairn.entities import FileEntry, RecordBatch, RunStatus
from cairn.errors import SchemaOutOfDate
from cairn.store import journal as jlib
from cairn.store.local import LocalStore

DERIVED = ("experiments", "runs", "params", "tags", "latest_metrics", "metric_segments",
           "artifacts", "writers")


def now() -> int:
    return time.time_ns() // 1_000_000


def series(steps, values):
    t = now()
    return (np.asarray(steps, dtype=np.int64), np.asarray([t + s for s in steps], dtype=np.int64),
            np.asarray(values, dtype=np.float64))


def batches(run_id: str, writer: str | None = None, exp=("42", "journal-exp")) -> list[RecordBatch]:
    """A whole run as its writer would journal it: create, three metric flushes, the end.

    Writer ids are unique across runs (real ones are 64 random bits): the index keeps
    one applied sequence number per writer id.
    """
    writer = writer or default_writer(run_id)
    t = now()
    create = {"experiment_id": exp[0], "experiment_name": exp[1], "experiment_created_at": t,
              "name": f"run-{run_id[:6]}", "parent_id": None, "user": "tester", "start_time": t}
    return [
        RecordBatch(run_id, writer, 1, t, params={"lr": "0.1"}, tags={"team": "a"}, create=create),
        RecordBatch(run_id, writer, 2, t + 1, metrics={"loss": series([0], [1.0])}),
        RecordBatch(run_id, writer, 3, t + 2, metrics={"loss": series([1], [0.5])},
                    tags={"phase": "train"}),
        RecordBatch(run_id, writer, 4, t + 3, metrics={"loss": series([2], [0.25])}),
        RecordBatch(run_id, writer, 5, t + 4, status=RunStatus.FINISHED, end_time=t + 4),
    ]


def default_writer(run_id: str) -> str:
    return f"w-{run_id[:8]}"


def journal_path(root: Path, run_id: str, writer: str | None = None) -> Path:
    return root / "runs" / run_id / "journal" / f"{writer or default_writer(run_id)}.cjl"


def append(root: Path, items: list[RecordBatch]) -> list[tuple[int, int]]:
    """Append batches the way a writer does, without touching the index; returns their spans."""
    jw = jlib.JournalWriter(journal_path(root, items[0].run_id, items[0].writer_id))
    try:
        return [jw.append(b) for b in items]
    finally:
        jw.close()


def counts(root: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(root / "index.db")) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in DERIVED}


def flip(path: Path, offset: int, n: int = 4) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + n] = bytes(b ^ 0xFF for b in data[offset:offset + n])
    path.write_bytes(bytes(data))


@pytest.fixture
def root(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def opened():
    """Open LocalStores and close them all at the end of the test."""
    stores = []

    def open_(path):
        s = LocalStore(path)
        stores.append(s)
        return s.open()

    yield open_
    for s in stores:
        s.close()


# -- (a) records the index never saw are replayed ------------------------------------------
def test_journal_only_run_is_replayed_on_open(root, opened):
    append(root, batches("a" * 32))
    store = opened(root)
    r = store.get_run("a" * 32)
    assert r.status is RunStatus.FINISHED and r.name == "run-aaaaaa" and r.user == "tester"
    assert r.params == {"lr": "0.1"} and r.tags == {"team": "a", "phase": "train"}
    assert r.experiment == "journal-exp" and r.metrics == {"loss": 0.25}
    assert store.get_metric_history("a" * 32, "loss").values.tolist() == [1.0, 0.5, 0.25]
    assert [e.name for e in store.list_experiments()] == ["journal-exp"]
    assert store.damage == []


def test_unknown_run_is_replayed_when_asked_for(root, opened):
    store = opened(root)
    assert store.search_runs(None)[0] == []
    append(root, batches("b" * 32))  # another process, after this store was opened
    assert store.get_run("b" * 32).metrics == {"loss": 0.25}
    assert [r.id for r in store.search_runs(None)[0]] == ["b" * 32]


def test_run_directory_copied_from_another_store(tmp_path, opened):
    src, dst = tmp_path / "laptop", tmp_path / "cluster"
    exp = opened(src).create_experiment("shared-name-differs")
    copied = batches("c" * 32, exp=(exp.id, exp.name))
    append(src, copied)
    target = opened(dst)
    local = batches("d" * 32)
    for b in local:
        target.write(b)
    shutil.copytree(src / "runs" / ("c" * 32), dst / "runs" / ("c" * 32))
    r = target.get_run("c" * 32)
    assert r.experiment == exp.name and r.experiment_id == exp.id and r.metrics == {"loss": 0.25}
    assert target.get_run("d" * 32).metrics == {"loss": 0.25}  # the target's own run is intact


def test_copied_run_joins_the_experiment_of_the_same_name(tmp_path, opened):
    src, dst = tmp_path / "a", tmp_path / "b"
    exp_a = opened(src).create_experiment("demo")
    append(src, batches("e" * 32, exp=(exp_a.id, "demo")))
    target = opened(dst)
    exp_b = target.create_experiment("demo")
    shutil.copytree(src / "runs" / ("e" * 32), dst / "runs" / ("e" * 32))
    assert target.get_run("e" * 32).experiment == "demo"
    assert [r.id for r in target.search_runs([exp_b.id])[0]] == ["e" * 32]


def test_records_after_a_crash_are_replayed_for_a_running_run(root, opened):
    run = batches("f" * 32)
    store = opened(root)
    for b in run[:2]:
        store.write(b)
    store.close()
    # The writer appended two more records, then died before the index saw them.
    append(root, run[2:4])
    again = opened(root)
    assert again.get_metric_history("f" * 32, "loss").values.tolist() == [1.0, 0.5, 0.25]
    assert again.get_run("f" * 32).tags["phase"] == "train"


def test_unindexed_record_of_a_finished_run_is_replayed_on_open(root, opened):
    store = opened(root)
    for b in batches("9" * 32):
        store.write(b)
    store.close()
    append(root, [RecordBatch("9" * 32, "late", 1, now(), tags={"reviewed": "yes"})])
    assert opened(root).get_run("9" * 32).tags.get("reviewed") == "yes"


# -- (b) a damaged record loses only itself -----------------------------------------------
def test_damaged_middle_record_loses_only_that_record(root, opened):
    spans = append(root, batches("1" * 32))
    path = journal_path(root, "1" * 32)
    start, end = spans[2]  # the record with step 1 and the "phase" tag
    flip(path, (start + end) // 2)  # inside its payload
    store = opened(root)
    r = store.get_run("1" * 32)
    assert r.status is RunStatus.FINISHED and r.params == {"lr": "0.1"}
    assert "phase" not in r.tags
    h = store.get_metric_history("1" * 32, "loss")
    assert h.steps.tolist() == [0, 2] and h.values.tolist() == [1.0, 0.25]
    damage, = store.scan_damage()
    assert (damage.path, damage.offset, damage.length) == (str(path), start, end - start)
    assert damage.reason == "CRC mismatch"
    assert store.damage == [damage]  # what recovery skipped, too


def test_reindex_skips_a_damaged_record_and_keeps_the_rest(root, opened):
    store = opened(root)
    for b in batches("2" * 32):
        store.write(b)
    entries = [e for e in jlib.read(journal_path(root, "2" * 32))]
    assert len(entries) == 5
    flip(journal_path(root, "2" * 32), entries[1].offset + 20)
    result = store.reindex()
    assert result == {"runs": 1, "records": 4, "damaged": 1, "quarantined": 1}
    assert store.get_metric_history("2" * 32, "loss").steps.tolist() == [1, 2]
    assert store.get_run("2" * 32).status is RunStatus.FINISHED


@pytest.mark.parametrize("where", ["magic", "length", "crc", "header"])
def test_damage_anywhere_in_a_record_is_reported_not_returned(tmp_path, where):
    items = batches("3" * 32)
    path = tmp_path / "w.cjl"
    jw = jlib.JournalWriter(path)
    spans = [jw.append(b) for b in items]
    jw.close()
    start, _ = spans[1]
    flip(path, start + {"magic": 0, "length": 4, "crc": 8, "header": 16}[where], 2)
    out = list(jlib.read(path))
    kept = [o.batch.seq for o in out if isinstance(o, jlib.Entry)]
    assert kept == [1, 3, 4, 5]
    assert [o.offset for o in out if isinstance(o, jlib.Damage)] == [start]


# -- (c) a torn tail is a write in progress, not damage -------------------------------------
def test_truncated_tail_is_not_damage(root, opened):
    items = batches("4" * 32)[:4]  # still running
    spans = append(root, items)
    path = journal_path(root, "4" * 32)
    start, end = spans[-1]
    with open(path, "r+b") as fh:
        fh.truncate(start + (end - start) // 2)
    store = opened(root)
    assert store.damage == [] and store.scan_damage() == []
    h = store.get_metric_history("4" * 32, "loss")
    assert h.steps.tolist() == [0, 1]
    assert store.get_run("4" * 32).status is RunStatus.RUNNING
    # The writer's successor (a new process, a new journal file) carries on.
    store.write(RecordBatch("4" * 32, "w2", 1, now(), metrics={"loss": series([3], [0.1])}))
    assert store.get_metric_history("4" * 32, "loss").steps.tolist() == [0, 1, 3]


def test_truncated_frame_header_is_not_damage(tmp_path):
    path = tmp_path / "w.cjl"
    jw = jlib.JournalWriter(path)
    jw.append(batches("5" * 32)[0])
    jw.close()
    with open(path, "ab") as fh:
        fh.write(jlib.MAGIC + b"\x01")  # died after 5 bytes of the next frame
    assert [type(o) for o in jlib.read(path)] == [jlib.Entry]


# -- (d) reindex rebuilds exactly what was there ------------------------------------------
def _snapshot(client: cairn.Client) -> str:
    runs = sorted(client.search_runs(), key=lambda r: r.id)
    out = []
    for r in runs:
        summaries = {k: (m.value, m.step, m.timestamp, m.min, m.max, m.count)
                     for k, m in sorted(r.metric_summaries.items())}
        full = client.get_run(r.id)
        histories = {k: (h.steps.tolist(), h.timestamps.tolist(), h.values.tolist())
                     for k in sorted(r.metrics)
                     for h in [client.get_metric_history(r.id, k)]}
        out.append((r.id, r.name, r.experiment_id, r.experiment, r.status, r.start_time,
                    r.end_time, r.user, r.parent_id, sorted(r.params.items()),
                    sorted(r.tags.items()), summaries, histories, sorted(full.env.items()),
                    client.list_artifacts(r.id)))
    exps = [(e.id, e.name, e.created_at, dict(e.tags)) for e in client.list_experiments()]
    return repr((out, exps))  # repr: NaN compares equal to NaN this way


def test_reindex_rebuilds_the_same_runs(tracking, tmp_path):
    (tmp_path / "f.txt").write_text("artifact")
    cairn.set_experiment("reindex")
    with cairn.start_run(name="parent", params={"lr": 0.1}, tags={"t": "1"}) as parent:
        for step in range(300):  # a compressed segment
            cairn.log_metric("loss", 1 / (step + 1), step=step)
        cairn.log_metric("odd", math.nan)
        cairn.log_metric("odd", -math.inf)
        cairn.flush()
        with cairn.start_run(name="child", nested=True):
            cairn.log_metrics({"acc": 0.5, "loss": 2.0}, step=3)
            cairn.log_artifact(tmp_path / "f.txt", "files")
    with pytest.raises(RuntimeError):
        with cairn.start_run(name="failed"):
            cairn.log_metric("x", 1)
            raise RuntimeError("boom")
    client = cairn.Client(str(tracking))
    client.set_note(parent.id, "a note after the end")  # another writer of the same run
    client.delete_tag(parent.id, "t")
    manual = client.create_run(params={"p": "q"})
    client.log_batch(manual.id, [("m", 1.0, 0, 5), ("m", 0.5, 0, 4)])  # same step, out of order
    client.set_terminated(manual.id, "KILLED")
    before = _snapshot(client)
    assert "a note after the end" in before and "'t', '1'" not in before
    store = client.store
    result = store.reindex()
    assert result["runs"] == 4 and result["damaged"] == 0
    assert _snapshot(client) == before


# -- (e) replay is idempotent ----------------------------------------------------------------
def test_replay_is_idempotent(root, opened):
    append(root, batches("6" * 32))
    append(root, batches("7" * 32))
    first = opened(root)
    c1 = counts(root)
    assert c1["runs"] == 2 and c1["metric_segments"] == 6
    first.close()
    second = opened(root)
    assert second.recover() == 0
    assert second.recover_run("6" * 32, from_start=True) == 0
    assert counts(root) == c1
    for b in batches("6" * 32)[1:]:  # re-sent batches (a retry) change nothing
        second.write(RecordBatch(b.run_id, b.writer_id, b.seq, b.time, metrics=b.metrics))
    assert counts(root) == c1
    assert len(second.get_metric_history("6" * 32, "loss")) == 3
    second.reindex()
    assert counts(root) == c1


# -- (f) the index schema revision is checked, never migrated implicitly -------------------
@pytest.mark.parametrize("revision", ["0000_ancient", "9999_future"])
def test_unknown_schema_revision_is_refused(root, opened, revision):
    opened(root).close()
    with contextlib.closing(sqlite3.connect(root / "index.db")) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.commit()
    with pytest.raises(SchemaOutOfDate, match="cairn db upgrade") as info:
        LocalStore(root).open()
    assert revision in info.value.message and info.value.error_code == "SCHEMA_OUT_OF_DATE"
    with contextlib.closing(sqlite3.connect(root / "index.db")) as db:  # left untouched
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (revision,)


def test_index_without_a_revision_is_refused(root, opened):
    opened(root).close()
    with contextlib.closing(sqlite3.connect(root / "index.db")) as db:
        db.execute("DROP TABLE alembic_version")
        db.commit()
    with pytest.raises(SchemaOutOfDate, match="cairn db upgrade"):
        LocalStore(root).open()


def test_a_new_index_is_at_the_head_of_the_migrations(root, opened):
    """A fresh store is stamped with the revision `cairn db upgrade` would reach."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cairn.store.sql.migrate import MIGRATIONS
    from cairn.store.sql.tables import HEAD_REVISION

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
    opened(root).close()
    with contextlib.closing(sqlite3.connect(root / "index.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD_REVISION,)


def test_constructing_a_store_does_no_io(root):
    LocalStore(root)
    assert not root.exists()


# -- (g) the record format round-trips every batch -----------------------------------------
keys = st.text(min_size=1, max_size=20)
texts = st.text(max_size=30)
ints64 = st.integers(-(2**63), 2**63 - 1)
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8)


SPECIAL = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]


@st.composite
def metric_series(draw):
    """Small series drawn point by point; large ones (zstd-compressed) from a seed, salted with
    special values, so that big arrays cost little to generate."""
    if draw(st.booleans()):
        n = draw(st.integers(1, 12))
        return (draw(hnp.arrays(np.int64, n, elements=ints64)),
                draw(hnp.arrays(np.int64, n, elements=ints64)),
                draw(hnp.arrays(np.float64, n, elements=any_float)))
    n = draw(st.integers(256, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    steps = np.arange(n, dtype=np.int64) * draw(st.integers(-(2**40), 2**40)) + draw(ints64)
    stamps = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True)
    values = rng.standard_normal(n)
    for x in draw(st.lists(any_float | st.sampled_from(SPECIAL), max_size=8)):
        values[rng.integers(n)] = x
    return steps, stamps, values


@st.composite
def record_batches(draw):
    status = draw(st.none() | st.sampled_from(list(RunStatus)))
    return RecordBatch(
        run_id=draw(keys), writer_id=draw(keys), seq=draw(st.integers(1, 2**62)),
        time=draw(st.integers(0, 2**62)),
        params=draw(st.dictionaries(keys, texts, max_size=4)),
        tags=draw(st.dictionaries(keys, texts, max_size=4)),
        deleted_tags=tuple(draw(st.lists(keys, max_size=3))),
        metrics=draw(st.dictionaries(keys, metric_series(), max_size=3)),
        artifacts=tuple(draw(st.lists(st.builds(
            FileEntry, keys, st.integers(0, 2**50), texts,
            st.lists(st.tuples(texts, st.integers(0, 2**30)), max_size=3).map(tuple)),
            max_size=3))),
        status=status,
        end_time=None if status is None else draw(st.integers(0, 2**62)),
        create=draw(st.none() | st.dictionaries(texts, json_value, max_size=4)),
        env=draw(st.none() | st.dictionaries(texts, json_value, max_size=4)),
    )


def _bits(a) -> list[int]:
    return np.asarray(a, dtype="<f8").view("<i8").tolist()


def assert_same_batch(got: RecordBatch, want: RecordBatch) -> None:
    for name in ("run_id", "writer_id", "seq", "time", "params", "tags", "deleted_tags",
                 "artifacts", "status", "end_time", "create", "env"):
        assert getattr(got, name) == getattr(want, name), name
    assert list(got.metrics) == list(want.metrics)
    for key, (s, t, v) in want.metrics.items():
        gs, gt, gv = got.metrics[key]
        assert np.asarray(gs).tolist() == s.tolist() and np.asarray(gt).tolist() == t.tolist()
        assert _bits(gv) == _bits(v)  # NaN and infinities bit for bit


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_batches())
def test_encode_decode_round_trip(batch):
    record = jlib.encode_batch(batch)
    magic, length, crc = struct.unpack_from("<4sII", record)
    payload = record[12:]
    assert magic == jlib.MAGIC and length == len(payload) and crc == zlib.crc32(payload)
    assert_same_batch(jlib.decode_payload(payload), batch)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_batches(), record_batches(), st.data())
def test_any_flipped_byte_loses_only_its_record(first, second, data):
    a, b = jlib.encode_batch(first), jlib.encode_batch(second)
    pos = data.draw(st.integers(0, len(a) - 1))
    mask = data.draw(st.integers(1, 255))
    damaged = bytearray(a + b)
    damaged[pos] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.cjl"
        path.write_bytes(bytes(damaged))
        out = list(jlib.read(path))
    entries = [o for o in out if isinstance(o, jlib.Entry)]
    assert len(entries) == 1 and entries[0].offset == len(a)
    assert_same_batch(entries[0].batch, second)
    assert any(isinstance(o, jlib.Damage) and o.offset == 0 for o in out)
