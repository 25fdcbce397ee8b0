"""Where comments live: in the store's database, beside (not derived from) the journals."""

from __future__ import annotations

import pytest

import cairn
from cairn.collab import collab_for
from cairn.errors import InvalidArgument


def test_comments_views_and_dashboards_survive_a_reindex(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    path = str(tmp_path / "store")
    client = cairn.Client(path, user="alice")
    exp = client.create_experiment("e").id
    run = client.create_run(exp).id
    client.set_terminated(run)
    talk = collab_for(client)
    c = talk.add_comment("run", run, "kept @bob")
    talk.save_view(exp, "v", {"filter": ""})
    talk.save_dashboard("d", [{"kind": "table", "experiment_id": exp, "columns": ["params.x"]}])
    client.store.reindex()  # rebuilds the runs and experiments from the journals
    assert [x.id for x in talk.comments("run", run)] == [c.id]
    assert [x.id for x in collab_for(client, "bob").mentions()] == [c.id]
    assert [v.name for v in talk.views(exp)] == ["v"]
    assert [d.name for d in talk.dashboards()] == ["d"]
    cairn.store.close_store(path)


def test_a_store_without_a_database_says_so(monkeypatch):
    client = cairn.Client("memory://collab-test", user="alice")
    exp = client.create_experiment("e").id
    with pytest.raises(InvalidArgument, match="need a store with a database"):
        collab_for(client).add_comment("experiment", exp, "hello")
    with pytest.raises(InvalidArgument, match="need a store with a database"):
        collab_for(client).views(exp)
