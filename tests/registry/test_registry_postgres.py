"""The registry and its audit chain on PostgreSQL (the server's store), not only SQLite."""

import pytest

import cairn
from cairn.cas.odb import ObjectStore

from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

from .conftest import fit_logreg

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_clients(request, tmp_path, monkeypatch):
    from pg_fixtures import create_schema

    from cairn.store.sql.store import SqlStore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    url = create_schema(request.getfixturevalue("pg_database"))
    store = SqlStore(url, objects=ObjectStore.local(tmp_path / "objects"))

    def client(user):
        c = cairn.Client(user=user)
        c._store = store  # the server's store, as a server-side Client would hold it
        return c

    yield client
    store.close()


def test_register_approve_rollback_and_audit_on_postgres(pg_clients, data):
    import sqlalchemy as sa

    alice, bob = pg_clients("alice"), pg_clients("bob")
    alice.register_model("fraud", fit_logreg(data))
    v2 = alice.register_model("fraud", fit_logreg(data, C=0.2))
    assert v2.version == "1.1.0"
    alice.set_stage_policy("fraud", "production", approvals=1)
    for version in ("1.0.0", "1.1.0"):
        req = alice.request_transition("fraud", version, "production")
        assert bob.approve(req.id).status == "applied"
    assert alice.rollback("fraud", reason="regression").version == "1.0.0"
    assert alice.get_model_version("fraud", "1.1.0").stage == "Archived"
    model = alice.load_model("fraud@production")
    assert model.predict(data[0][:2]).shape == (2,)
    assert alice.verify_audit_log().ok
    n = len(alice.audit_log())
    with alice.store.index.session(write=True) as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    report = alice.verify_audit_log()
    assert [p.seq for p in report.problems] == [3] and report.checked == n
