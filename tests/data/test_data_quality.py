"""Statistics on add, expectations that fail an add with a report, and diffs with drift."""

from __future__ import annotations

import pytest

from cairn.data import QualityCheckFailed
from cairn.data.quality import Expectation
from cairn.errors import InvalidArgument

from .conftest import make_tree

pa = pytest.importorskip("pyarrow")

CSV_V1 = (b"id,amount,label\n" + b"".join(f"{i},{i * 1.5},{'ab'[i % 2]}\n".encode()
                                          for i in range(1, 101)) + b"100,150.0,a\n")


def test_stats_are_stored_with_the_version(ds, tmp_path):
    v = ds.add(make_tree(tmp_path / "t", {"t.csv": CSV_V1}), "t")
    st = v.stats["t.csv"]
    assert (st["rows"], st["columns"], st["duplicate_rows"]) == (101, 3, 1)
    assert st["schema"] == {"id": "int64", "amount": "double", "label": "string"}
    amount = st["columns_stats"]["amount"]
    assert (amount["min"], amount["max"], amount["nulls"], amount["distinct"]) == (1.5, 150.0, 0, 100)
    assert amount["mean"] == pytest.approx(sum(i * 1.5 for i in range(1, 101)) / 101 + 150 / 101)
    assert st["columns_stats"]["label"]["distinct"] == 2
    assert ds.version("t@1").stats == v.stats  # persisted


def test_parquet_stats(ds, tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "pq"
    src.mkdir()
    pq.write_table(pa.table({"x": [1, 2, None, 4], "s": ["a", "b", "b", None]}), src / "d.parquet")
    st = ds.add(src, "pq").stats["d.parquet"]
    assert st["rows"] == 4 and st["columns_stats"]["x"]["nulls"] == 1
    assert st["columns_stats"]["x"]["null_fraction"] == 0.25
    assert st["columns_stats"]["s"]["distinct"] == 2


def test_expectations_fail_the_add_with_a_clear_report(ds, tmp_path):
    src = make_tree(tmp_path / "q", {"t.csv": b"id,label,amount\n1,a,5\n2,,7\n2,b,-1\n"})
    with pytest.raises(QualityCheckFailed) as info:
        ds.add(src, "q", expect=["label not null", "id unique", "amount >= 0", "rows >= 3",
                                 "has column price"])
    msg = info.value.message
    assert "was not recorded: 4 of 5 expectation check(s) failed" in msg
    assert "FAIL  label not null [t.csv]: 1 null(s) in 'label'" in msg
    assert "FAIL  amount >= 0 [t.csv]: min is -1" in msg
    assert "PASS  rows >= 3" in msg
    assert "no tabular file has a column 'price'" in msg
    assert len(info.value.report) == 5
    assert ds.list() == []  # nothing recorded
    v = ds.add(src, "q", expect=["amount between -1 and 7", "nulls(label) <= 0.5", "rows == 3"])
    assert [r["passed"] for r in v.quality] == [True, True, True]


def test_expectation_grammar():
    assert Expectation.parse("label is not null").kind == "not_null"
    assert Expectation.parse("`odd name` unique").column == "odd name"
    e = Expectation.parse("nulls(x) <= 0.01")
    assert (e.kind, e.column, e.op, e.value) == ("null_fraction", "x", "<=", 0.01)
    assert Expectation.parse("no duplicate rows").kind == "no_duplicates"
    with pytest.raises(InvalidArgument, match="cannot read expectation"):
        Expectation.parse("label must be nice")


def test_diff_reports_files_schema_and_drift(ds, tmp_path):
    src = make_tree(tmp_path / "d", {"t.csv": CSV_V1, "a.txt": b"a", "old.txt": b"o", "m.txt": b"move"})
    ds.add(src, "d")
    (src / "old.txt").unlink()
    (src / "new.txt").write_bytes(b"n")
    (src / "m.txt").rename(src / "moved.txt")
    rows = b"id,amount,label,extra\n" + b"".join(
        f"{i},{i * 3.0 if i % 10 else ''},{'ab'[i % 2]},1\n".encode() for i in range(1, 101))
    (src / "t.csv").write_bytes(rows)
    ds.add(src, "d")
    d = ds.diff("d@1", "d@2")
    assert [c.path for c in d.added] == ["new.txt"]
    assert [c.path for c in d.removed] == ["old.txt"]
    assert [c.path for c in d.changed] == ["t.csv"]
    assert d.moved == (("m.txt", "moved.txt"),)
    assert d.unchanged == 1
    t = d.tables["t.csv"]
    assert t["rows"] == [101, 100]
    assert t["schema"]["added"] == {"extra": "int64"}
    assert t["columns"]["amount"]["drifted"] is True
    assert "amount" in t["drifted"] and "id" not in t["drifted"]
    assert ds.diff("d@2", "d@2").empty


def test_without_pyarrow_stats_are_skipped_and_expectations_refused(ds, tmp_path, monkeypatch):
    from cairn.data import stats
    from cairn.errors import MissingDependency

    monkeypatch.setattr(stats, "have_pyarrow", lambda: False)
    src = make_tree(tmp_path / "np", {"t.csv": CSV_V1})
    with pytest.raises(MissingDependency, match=r"pip install 'cairn\[data\]'"):
        ds.add(src, "np", expect=["rows >= 1"])
    v = ds.add(src, "np")
    assert "pyarrow" in v.stats["t.csv"]["error"]
