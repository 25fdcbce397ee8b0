"""cairn gc on a server's store: PostgreSQL for the index, S3 (the moto server) for the
objects.  Roots kept, garbage deleted in batches, a deduplicated put freshens the S3 object,
and 8 writer processes log artifacts while gc runs with grace 0."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from procs import reap_processes, spawn  # noqa: F401  (the fixture reaps them)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)

import cairn
from cairn.cas.backends.base import capability
from cairn.cli.main import cli
from cairn.lifecycle import gc as gclib
from cairn.lifecycle.gc import collect
from cairn.lifecycle.roots import referenced
from cairn.server.serve import open_objects
from cairn.store.sql.store import SqlStore

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def server_store(pg_database, s3_endpoint, s3_bucket, s3_env, monkeypatch):  # noqa: F811
    # S3 objects cannot be backdated: collect what is more than a second old (the writers
    # here record synchronously, so the window for buffered records is not needed).
    monkeypatch.setattr(gclib, "WRITE_WINDOW_S", 0.0)
    url = create_schema(pg_database)
    spec = f"s3://{s3_bucket}/cairn"
    store = SqlStore(url, open_objects(spec, s3_endpoint))
    store.open()
    yield store, url, spec, s3_endpoint
    store.close()


def stored(objects) -> set[str]:
    return set(objects.backend.iter_oids())


@pytest.mark.slow
def test_gc_on_postgres_and_s3_keeps_roots_and_deletes_garbage(server_store, tmp_path):
    store, url, spec, endpoint = server_store
    client = cairn.Client(store=store)
    src = tmp_path / "a"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_bytes(f"artifact {i}".encode() * 30)
    run = client.create_run(name="kept")
    client.log_artifacts(run.id, src)
    client.set_terminated(run.id)
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights" * 300)
    client.register_model("m", model)
    junk = {store.objects.put_bytes(f"s3 garbage {i}".encode() * 10) for i in range(1050)}
    roots = referenced(store)
    time.sleep(1.5)  # S3 times have whole seconds: a second's doubt keeps an object
    dry = collect(store, grace_s=0, dry_run=True)
    assert dry.garbage == len(junk) and junk <= stored(store.objects)
    calls = []
    backend = store.objects.backend
    delete_objects = backend.client.delete_objects if hasattr(backend, "client") else None
    if delete_objects is not None:  # count the batched deletes (1,000 keys a call at most)
        def counting(**kw):
            calls.append(len(kw["Delete"]["Objects"]))
            return delete_objects(**kw)
        backend.client.delete_objects = counting
    report = collect(store, grace_s=0)
    assert report.freed == len(junk) and report.freed_bytes == dry.garbage_bytes
    if delete_objects is not None:
        assert sorted(calls) == [50, 1000]  # batches run a few at once
    assert not junk & stored(store.objects)
    result = store.objects.verify(roots)
    assert result.ok and result.checked == len(roots)
    # The command, with --objects and --endpoint-url as for `cairn server`.
    out = CliRunner().invoke(cli, ["--store", url, "gc", "--json", "--grace", "0", "--objects", spec,
                                    "--endpoint-url", endpoint])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["freed"] == 0 and doc["live"] == len(roots)


def test_a_deduplicated_put_freshens_the_s3_object(server_store):
    store, *_ = server_store
    x = store.objects.put_bytes(b"old garbage on s3")
    scan = capability(store.objects.backend, "scan")
    (first,) = [t for o, _, t in scan() if o == x]
    time.sleep(1.2)
    store.objects.put_bytes(b"old garbage on s3")  # finds it: freshens it
    (second,) = [t for o, _, t in scan() if o == x]
    assert second >= first + 1_000_000_000
    time.sleep(1.2)
    assert store.objects.missing([x]) == set()  # asking before referring freshens too
    (third,) = [t for o, _, t in scan() if o == x]
    assert third >= second + 1_000_000_000
    report = collect(store, grace_s=3600)
    assert report.young == 1 and report.freed == 0 and x in stored(store.objects)


WRITER = """
import os, sys
import cairn
from cairn.server.serve import open_objects
from cairn.store.sql.store import SqlStore

wid, rounds, shared = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
url, spec, endpoint, work = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
store = SqlStore(url, open_objects(spec, endpoint))
client = cairn.Client(store=store)
work = os.path.join(work, f"w{wid}")
for r in range(rounds):
    run = client.create_run(name=f"w{wid}-{r}")
    d = os.path.join(work, str(r))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "own.txt"), "wb") as f:
        f.write(f"writer {wid} round {r}\\n".encode() * 40)
    with open(os.path.join(d, "shared.txt"), "wb") as f:
        f.write(f"s3 garbage {(wid * rounds + r) % shared}".encode() * 10)
    client.log_artifacts(run.id, d)
    client.set_terminated(run.id)
    print("RUN", run.id, flush=True)
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_gc_with_grace_0_while_8_writers_log_to_postgres_and_s3(server_store, tmp_path):
    store, url, spec, endpoint = server_store
    client = cairn.Client(store=store)
    src = tmp_path / "before"
    src.mkdir()
    for i in range(10):
        (src / f"b{i}.txt").write_bytes(f"before gc {i}".encode() * 25)
    run = client.create_run(name="before")
    client.log_artifacts(run.id, src)
    client.set_terminated(run.id)
    shared = 20
    old = {store.objects.put_bytes(f"s3 garbage {i}".encode() * 10) for i in range(shared)}
    junk = {store.objects.put_bytes(f"plain garbage {i}".encode() * 10) for i in range(100)}
    before = referenced(store)
    assert len(before) == 10 and not before & old
    time.sleep(1.5)
    rounds = 6
    writers = [spawn(tmp_path, WRITER, w, rounds, shared, url, spec, endpoint, tmp_path,
                     env={"CAIRN_CAPTURE_ENV": "0"}) for w in range(8)]
    runs = []
    while any(w.poll() is None for w in writers):
        runs.append(collect(store, grace_s=0))
    runs.append(collect(store, grace_s=0))
    logged = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        logged += [line.split()[1] for line in out.splitlines() if line.startswith("RUN")]
    assert len(logged) == 8 * rounds and len(runs) >= 2
    assert sum(r.freed for r in runs) >= len(junk)
    after = referenced(store)
    assert before <= after
    for rid in logged:
        assert {e.path for e in client.list_artifacts(rid)} == {"own.txt", "shared.txt"}
    assert len(after) == 10 + 8 * rounds + len({(w * rounds + r) % shared for w in range(8)
                                                 for r in range(rounds)})
    result = store.objects.verify(after)
    assert result.ok and result.checked == len(after), result
    assert not junk & stored(store.objects)
