"""Remotes: push and pull only what is missing, in parallel, resumable; a real S3 server (moto)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.data import remotes
from cairn.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, StoreUnavailable

from .conftest import make_tree, snapshot


def _files(n: int, size: int = 700) -> dict[str, bytes]:
    return {f"d{i % 10}/f{i:04d}.bin": os.urandom(size) for i in range(n)}


def test_remote_config(ds, tmp_path):
    root = ds.store.root
    with pytest.raises(NotFound, match="no remote configured"):
        remotes.get_remote_config(root, None)
    a = remotes.add_remote(root, "origin", "s3://bucket/team/cairn", endpoint_url="http://x")
    assert a.default and a.url == "s3://bucket/team/cairn"
    b = remotes.add_remote(root, "nas", str(tmp_path / "nas"))
    assert not b.default
    with pytest.raises(AlreadyExists):
        remotes.add_remote(root, "nas", str(tmp_path))
    for bad in ("ftp://x", "s3://", ""):
        with pytest.raises(InvalidArgument):
            remotes.add_remote(root, "bad", bad)
    assert [r.name for r in remotes.list_remotes(root)] == ["nas", "origin"]
    remotes.remove_remote(root, "origin")
    assert remotes.get_remote_config(root, None).name == "nas"


def test_push_and_pull_through_a_directory_remote(ds, other, tmp_path):
    src = make_tree(tmp_path / "src", _files(300))
    ds.add(src, "imgs", aliases=["gold"])
    (src / "d0" / "f0000.bin").write_bytes(b"changed")
    ds.add(src, "imgs")
    remotes.add_remote(ds.store.root, "nas", str(tmp_path / "nas"))
    first = ds.push("imgs", progress=False)
    assert first.versions == ("imgs@1", "imgs@2") and first.objects >= 3
    assert ds.push("imgs", progress=False).objects == 0  # nothing missing any more
    remotes.add_remote(other.data.store.root, "nas", str(tmp_path / "nas"))
    got = other.data.pull("imgs@1", progress=False)
    assert got.versions == ("imgs@1",)
    assert other.data.version("imgs@gold").version == 1
    out = other.data.checkout("imgs@1", tmp_path / "out")
    assert (out / "d0" / "f0000.bin").read_bytes() != b"changed"
    got = other.data.pull(progress=False)
    assert got.versions == ("imgs@2",)
    assert other.data.version("imgs@2").tree == ds.version("imgs@2").tree
    assert other.data.verify("imgs@2").ok


def test_conflicting_versions_are_refused(ds, other, tmp_path):
    remotes.add_remote(ds.store.root, "nas", str(tmp_path / "nas"))
    remotes.add_remote(other.data.store.root, "nas", str(tmp_path / "nas"))
    ds.add(make_tree(tmp_path / "a", {"a.txt": b"mine"}), "x")
    other.data.add(make_tree(tmp_path / "b", {"a.txt": b"theirs"}), "x")
    ds.push(progress=False)
    with pytest.raises(Conflict, match="different x@1"):
        other.data.push(progress=False)
    with pytest.raises(Conflict):
        other.data.pull("x", progress=False)


def _s3_remote(ds, bucket, name="origin"):
    endpoint, b = bucket
    remotes.add_remote(ds.store.root, name, f"s3://{b}/team/data", endpoint_url=endpoint)


def _count_puts(monkeypatch):
    from cairn.cas.backends.s3 import S3Backend

    calls = []
    real = S3Backend.put

    def put(self, oid, data):
        calls.append(oid)
        return real(self, oid, data)

    monkeypatch.setattr(S3Backend, "put", put)
    return calls


def test_s3_push_pull_round_trip_with_few_requests(ds, other, tmp_path, bucket, monkeypatch):
    files = _files(2000, 300)
    src = make_tree(tmp_path / "src", files)
    v = ds.add(src, "small")
    _s3_remote(ds, bucket)
    puts = _count_puts(monkeypatch)
    res = ds.push("small", progress=False, workers=4)
    assert res.versions == ("small@1",)
    assert len(puts) == res.objects <= 3  # packs and the tree, not one request per file
    assert ds.push("small", progress=False).objects == 0
    _s3_remote(other.data, bucket)
    other.data.pull("small", progress=False)
    out = other.data.checkout("small@1", tmp_path / "out")
    assert snapshot(out).keys() == snapshot(src).keys()
    for rel in list(files)[::211]:
        assert (out / rel).read_bytes() == files[rel]
    assert other.data.version("small@1").tree == v.tree


def test_interrupted_push_is_resumable_and_leaves_no_ref(ds, other, tmp_path, bucket,
                                                         monkeypatch):
    from cairn.cas.backends.s3 import S3Backend

    src = make_tree(tmp_path / "src", {f"w{i}.bin": os.urandom(1_500_000) for i in range(6)})
    ds.add(src, "weights", pack=False)  # six loose objects of 1.5 MB: six requests
    _s3_remote(ds, bucket)
    real = S3Backend.put
    sent = []

    def flaky(self, oid, data):
        if len(sent) >= 3:
            raise StoreUnavailable("S3 at the endpoint is unreachable: connection reset")
        sent.append(oid)
        return real(self, oid, data)

    monkeypatch.setattr(S3Backend, "put", flaky)
    with pytest.raises(StoreUnavailable, match=r"interrupted after 3 of 7 object\(s\).*run it "
                                               r"again to resume"):
        ds.push("weights", progress=False, workers=1)
    _s3_remote(other.data, bucket)
    with pytest.raises(NotFound, match="no data set 'weights'"):
        other.data.pull("weights", progress=False)  # the version list was never written
    monkeypatch.setattr(S3Backend, "put", real)
    puts = _count_puts(monkeypatch)
    res = ds.push("weights", progress=False)
    assert res.objects == len(puts) == 4 and res.skipped == 3  # only what was missing
    other.data.pull("weights", progress=False)
    assert other.data.verify("weights@1").ok


def test_cli_remote_push_pull(ds, tmp_path, bucket):
    endpoint, b = bucket
    src = make_tree(tmp_path / "src", _files(20))
    store = str(ds.store.root)
    run = CliRunner().invoke
    assert run(cli, ["--store", store, "data", "add", str(src), "-n", "c"]).exit_code == 0
    out = run(cli, ["--store", store, "remote", "add", "origin", f"s3://{b}/p",
                    "--endpoint-url", endpoint])
    assert out.exit_code == 0 and "(default)" in out.output
    assert "origin" in run(cli, ["--store", store, "remote", "ls"]).output
    out = run(cli, ["--store", store, "data", "push", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert "pushed 1 version(s) to origin" in out.output
    other = str(tmp_path / "o")
    run(cli, ["--store", other, "remote", "add", "origin", f"s3://{b}/p", "--endpoint-url",
              endpoint])
    out = run(cli, ["--store", other, "data", "pull", "c", "--no-progress"])
    assert out.exit_code == 0 and "pulled 1 version(s)" in out.output, out.output
    from cairn.store import close_store

    close_store(str(tmp_path / "o"))


def test_interrupted_pull_records_nothing_and_resumes(ds, other, tmp_path, monkeypatch):
    from cairn.cas.backends.local import LocalBackend

    src = make_tree(tmp_path / "src", {f"w{i}.bin": os.urandom(1_200_000) for i in range(5)})
    ds.add(src, "w", pack=False)
    remotes.add_remote(ds.store.root, "nas", str(tmp_path / "nas"))
    ds.push(progress=False)
    remotes.add_remote(other.data.store.root, "nas", str(tmp_path / "nas"))
    other_root = str(other.data.store.root)
    real = LocalBackend.put
    done = []

    def flaky(self, oid, data):
        if str(self.root).startswith(other_root):
            if len(done) >= 2:
                raise ConnectionResetError("connection reset by peer")
            done.append(oid)
        return real(self, oid, data)

    monkeypatch.setattr(LocalBackend, "put", flaky)
    with pytest.raises(StoreUnavailable, match="pull from .nas. was interrupted.*No version was "
                                               "recorded locally"):
        other.data.pull(progress=False, workers=1)
    with pytest.raises(NotFound):
        other.data.version("w@1")
    monkeypatch.setattr(LocalBackend, "put", real)
    res = other.data.pull(progress=False)
    assert res.versions == ("w@1",) and res.objects == 6 - 2  # five files and the tree
    assert other.data.verify("w@1").ok
