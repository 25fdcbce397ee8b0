"""Encryption at rest on S3 (the moto server), for a team server on PostgreSQL + S3, and
through the public API into a local store."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from serving import CAIRN, ThreadedServer

import cairn
from cairn.cas import LocalBackend
from cairn.cas.backends.s3 import S3Backend
from cairn.cas.crypto import MAGIC, MARKER_NAME, parse_header
from cairn.cas.keyprovider import parse_key
from cairn.errors import CorruptObject, EncryptionError
from cairn.server.serve import open_objects

KEY = base64.b64encode(b"\x44" * 32).decode()
NEW = base64.b64encode(b"\x55" * 32).decode()
SECRET = b"confidential model weights " * 500


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


def bucket_state(client, bucket) -> dict[str, bytes]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_s3_store_is_sealed_marked_and_refuses_a_missing_or_wrong_key(
        s3_bucket, s3_client, s3_endpoint, monkeypatch):  # noqa: F811
    url = f"s3://{s3_bucket}/team/objects"
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    objects = open_objects(url, s3_endpoint)
    oid = objects.put_bytes(SECRET)
    tree = objects.put_tree([])
    assert objects.get_bytes(oid) == SECRET and objects.get_tree(tree) == []
    state = bucket_state(s3_client, s3_bucket)
    assert f"team/objects/{MARKER_NAME}" in state
    assert json.loads(state[f"team/objects/{MARKER_NAME}"])["key_id"] == \
        parse_key(KEY, "k").key_id
    for key, body in state.items():
        if not key.endswith(MARKER_NAME):
            assert body.startswith(MAGIC) and b"confidential" not in body, key
    assert sorted(objects.backend.iter_oids()) == sorted([oid, tree])  # the marker is no object

    monkeypatch.delenv("CAIRN_MASTER_KEY")
    with pytest.raises(EncryptionError, match="no key was given"):
        open_objects(url, s3_endpoint)
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    with pytest.raises(EncryptionError, match="wrong master key"):
        open_objects(url, s3_endpoint)
    assert bucket_state(s3_client, s3_bucket) == state  # nothing written or overwritten

    # One bit of the ciphertext flipped in the bucket: authentication fails on read.
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    raw = S3Backend(s3_bucket, "team/objects", client=s3_client)
    body = bytearray(raw.get(oid))
    body[-20] ^= 0x80
    raw.put(oid, bytes(body))
    objects = open_objects(url, s3_endpoint)
    with pytest.raises(CorruptObject, match=oid):
        objects.get_bytes(oid)
    assert objects.verify().corrupt == (oid,)


def test_rotation_on_s3_with_the_cli(
        s3_bucket, s3_client, s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    url = f"s3://{s3_bucket}/objs"
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    objects = open_objects(url, s3_endpoint)
    oids = [objects.put_bytes(b"s3 object %d" % i) for i in range(12)]
    new_file = tmp_path / "new.key"
    new_file.write_text(NEW)
    new_file.chmod(0o600)
    out = subprocess.run([*CAIRN, "encryption", "rotate", "--new-key-file", str(new_file),
                          "--objects", url, "--endpoint-url", s3_endpoint, "--json"],
                         env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rewritten"] == 12
    raw = S3Backend(s3_bucket, "objs", client=s3_client)
    new_id = parse_key(NEW, "n").key_id
    assert {parse_header(o, raw.get(o)).key_id for o in oids} == {new_id}
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    fresh = open_objects(url, s3_endpoint)
    assert [fresh.get_bytes(o) for o in oids] == [b"s3 object %d" % i for i in range(12)]


@pytest.mark.postgres
@pytest.mark.slow
def test_team_server_on_postgres_with_an_encrypted_s3_object_store(
        pg_database, s3_bucket, s3_client, s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    from cairn.server.app import create_app
    from cairn.store.sql.store import SqlStore

    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    url = f"s3://{s3_bucket}/cairn"
    objects = open_objects(url, s3_endpoint)
    store = SqlStore(create_schema(pg_database), objects)
    art = tmp_path / "weights.bin"
    art.write_bytes(SECRET * 400 + os.urandom(1 << 20))  # chunked: several objects
    try:
        with ThreadedServer(create_app(store)) as server_url:
            client = cairn.Client(server_url)
            exp = client.create_experiment("enc")
            run = client.create_run(exp.id, name="r")
            client.log_artifact(run.id, art)
            client.set_terminated(run.id)
            out = client.download_artifacts(run.id, "weights.bin", tmp_path / "dl")
            assert out.read_bytes() == art.read_bytes()
    finally:
        from cairn.store import close_stores

        close_stores("http", "https")
        store.close()
    state = bucket_state(s3_client, s3_bucket)
    assert len(state) > 3
    for key, body in state.items():
        if not key.endswith(MARKER_NAME):
            assert body.startswith(MAGIC) and b"confidential" not in body, key
    # A server started without the key refuses to start rather than write plaintext.
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    with pytest.raises(EncryptionError):
        open_objects(url, s3_endpoint)


def test_a_run_logs_and_downloads_artifacts_through_an_encrypted_local_store(
        tmp_path, monkeypatch, cairn_state):
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    store_dir = tmp_path / "store"
    cairn.set_tracking_uri(str(store_dir))
    src = tmp_path / "artifacts"
    src.mkdir()
    (src / "notes.txt").write_bytes(SECRET)
    (src / "big.bin").write_bytes(SECRET * 2000)  # above the chunking threshold
    with cairn.start_run(experiment="enc") as run:
        cairn.log_artifact(src / "notes.txt")
        cairn.log_artifact(src / "big.bin", "model")
        run_id = run.id
    dest = cairn.Client(str(store_dir)).download_artifacts(run_id, "", tmp_path / "out")
    assert (dest / "notes.txt").read_bytes() == SECRET
    assert (dest / "model" / "big.bin").read_bytes() == SECRET * 2000
    objects = store_dir / "objects"
    assert (objects / MARKER_NAME).exists()
    backend = LocalBackend(objects)
    oids = list(backend.iter_oids())
    assert len(oids) >= 3
    for oid in oids:
        stored = backend.get(oid)
        assert stored.startswith(MAGIC) and b"confidential" not in stored
