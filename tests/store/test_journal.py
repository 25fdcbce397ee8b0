"""Journal records round-trip whatever text a user logs."""

import math

from cairn.entities import RecordBatch
from cairn.store import journal as jlib


def test_records_round_trip_non_ascii_and_lone_surrogates(tmp_path):
    batch = RecordBatch(run_id="r1", writer_id="w1", seq=1, time=5,
                        params={"lr": "0.1", "name": "é ✓ 模型"}, tags={"odd": "\ud800x"},
                        metrics={"acc": ([0, 1], [5, 6], [0.5, math.nan])},
                        env={"python": "3.11"})
    path = tmp_path / "runs" / "r1" / "journal" / "w1.cjl"
    jw = jlib.JournalWriter(path)  # makes the run's directories on first append
    start, end = jw.append(batch)
    start2, end2 = jw.append(RecordBatch(run_id="r1", writer_id="w1", seq=2, time=6,
                                         tags={"more": "x"}))
    jw.close()
    assert start == 0 and start2 == end and end2 == path.stat().st_size
    entries = [e for e in jlib.read(path) if isinstance(e, jlib.Entry)]
    got = entries[0].batch
    assert got.params == batch.params and got.tags == {"odd": "\ud800x"}
    assert got.env == {"python": "3.11"}
    steps, _ts, values = got.metrics["acc"]
    assert list(steps) == [0, 1] and values[0] == 0.5 and math.isnan(values[1])
    assert entries[1].batch.tags == {"more": "x"} and entries[1].offset == end
