"""The same drift report through a team server: lineage, the data set and the log are read
over its REST API, and the results are stored there."""

import datetime as dt

import cairn
from cairn.monitoring import drift_report

from .conftest import T0, train, transactions, write_log


def test_drift_through_a_server(cairn_server, tmp_path):
    client = cairn.Client(cairn_server)
    _, model, version = train(client, tmp=tmp_path)
    write_log(client, model, [transactions(300, seed=5),
                              transactions(300, seed=2, shift=1.0, channels=(0.1, 0.2, 0.7))])
    after = T0 + dt.timedelta(days=1)
    r = drift_report(client, "models:/fraud@production", "1h", since=T0,
                     until=T0 + dt.timedelta(hours=2), now=after)
    assert (r.reference, r.found_by) == (version.ref, "lineage")
    assert [w.column("amount").drifted for w in r.windows] == [False, True]
    assert r.windows[1].drifted and all(w.stored for w in r.windows)
    history = cairn.Client(cairn_server).get_metric_history(r.run_id, "drift.share")
    assert history.values.tolist() == [w.share for w in r.windows]
