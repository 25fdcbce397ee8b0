"""A pipeline against a Cairn server: runs, versions and the run cache live there, so a
second clone with its own working copy gets hits from what the first one ran."""

from __future__ import annotations

import pytest

import cairn

from .conftest import Project, git


@pytest.mark.slow
def test_a_pipeline_against_a_server_shares_its_run_cache(project, cairn_server, tmp_path):
    project.client = cairn.Client(cairn_server)
    assert set(project.run().values()) == {"ran"}
    assert project.last.ok
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project.root), str(clone))
    other = Project(clone, tmp_path / "unused")
    other.client = cairn.Client(cairn_server)
    assert set(other.run().values()) == {"cached"}
    assert other.executed == []
    assert (clone / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"


@pytest.fixture
def postgres_server(tmp_path):
    """A Cairn server whose store is PostgreSQL (objects on disk), in a thread."""
    from pg_fixtures import create_database, create_schema, drop_database

    from cairn.cas import ObjectStore
    from cairn.server import create_app
    from cairn.store.sql.store import SqlStore
    from cairn.testing import ServerThread

    db = create_database()
    store = SqlStore(create_schema(db), ObjectStore.local(tmp_path / "objects"))
    try:
        with ServerThread(create_app(store)) as url:
            yield url
    finally:
        store.close()
        drop_database(db)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_pipeline_on_a_postgresql_backed_server(project, postgres_server):
    project.client = cairn.Client(postgres_server)
    assert set(project.run().values()) == {"ran"}
    train = next(r for r in project.last.stages if r.name == "train")
    assert project.client.get_run(train.run_id).params["train.lr"] == "0.1"
    project.write("params.yaml", "train:\n  lr: 0.2\nreport:\n  title: weekly\n")
    assert project.run()["train"] == "ran"
    (project.root / "cairn.lock").unlink()  # only the server remembers the keys now
    project.write("params.yaml", "train:\n  lr: 0.1\nreport:\n  title: weekly\n")
    assert set(project.run().values()) == {"cached"}
    assert project.executed == []
    assert (project.root / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"
