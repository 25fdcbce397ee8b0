"""Bad input: clear errors, the user's files untouched, the store consistent afterwards."""

from __future__ import annotations

import errno
import os

import pytest
from click.testing import CliRunner

from cairn.cas.backends.local import LocalBackend
from cairn.cli.main import cli
from cairn.data import ingest
from cairn.errors import Conflict, NotFound, PermissionDenied, StoreUnavailable

from .conftest import make_tree, snapshot


def _store_is_consistent(ds) -> None:
    objects = ds.objects
    assert objects.verify().ok
    stored = set(objects.backend.iter_oids())
    assert objects.packs.packs() <= stored  # the index names no pack that is not there
    shards = [p for p in objects.backend.root.glob("*/*") if p.name.startswith(".tmp-")]
    assert shards == []  # no temporary file left behind


def test_missing_path(ds, tmp_path):
    with pytest.raises(NotFound, match="no such file or directory"):
        ds.add(tmp_path / "nope", "x")
    out = CliRunner().invoke(cli, ["--store", str(ds.store.root), "data", "add",
                                   str(tmp_path / "nope"), "-n", "x"])
    assert out.exit_code == 1 and "Error: no such file or directory" in out.output


def test_unreadable_file(ds, small_tree, monkeypatch):
    before = snapshot(small_tree)
    bad = str(small_tree / "part1" / "f004.txt")
    real_open = os.open

    def guarded(path, flags, *args, **kwargs):
        if os.fspath(path) == bad:  # as root chmod 000 would not stop us: simulate EACCES
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
    with pytest.raises(PermissionDenied, match=r"cannot read .*f004.txt: permission denied"):
        ds.add(small_tree, "x")
    assert ds.list() == []
    assert snapshot(small_tree) == before
    monkeypatch.setattr(os, "open", real_open)
    _store_is_consistent(ds)


def test_unreadable_directory(ds, small_tree, monkeypatch):
    real = os.scandir
    bad = str(small_tree / "part2")

    def guarded(path="."):
        if os.fspath(path) == bad:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", guarded)
    with pytest.raises(PermissionDenied, match="cannot read directory .*part2"):
        ds.add(small_tree, "x")


def test_a_file_changing_while_hashed(ds, small_tree, monkeypatch):
    target = small_tree / "part0" / "f003.txt"
    real = ingest._read_all

    def growing(fd, size):
        data = real(fd, size)
        if os.readlink(f"/proc/self/fd/{fd}") == str(target):
            with open(target, "ab") as f:  # another program appends while we read
                f.write(b"more")
        return data

    monkeypatch.setattr(ingest, "_read_all", growing)
    with pytest.raises(Conflict, match=r"f003.txt changed while it was being read"):
        ds.add(small_tree, "x")
    assert ds.list() == []
    _store_is_consistent(ds)


def test_a_file_changing_once_is_read_again(ds, small_tree, monkeypatch):
    target = small_tree / "part0" / "f003.txt"
    real = ingest._read_all
    changed = []

    def once(fd, size):
        data = real(fd, size)
        if not changed and os.readlink(f"/proc/self/fd/{fd}") == str(target):
            changed.append(1)
            target.write_bytes(b"final content")
        return data

    monkeypatch.setattr(ingest, "_read_all", once)
    v = ds.add(small_tree, "x")
    entry = next(e for e in ds.files(v) if e.path == "part0/f003.txt")
    assert ds.objects.read_bytes(entry) == b"final content"  # the snapshot that held still


def test_disk_full_while_adding(ds, tmp_path, monkeypatch):
    files = {f"f{i:03d}.bin": os.urandom(2000) for i in range(300)}
    files["big.bin"] = os.urandom(6 * 1024 * 1024)  # chunked: several loose objects
    src = make_tree(tmp_path / "src", files)
    before = snapshot(src)
    ds.add(make_tree(tmp_path / "seed", {"s.txt": b"seed"}), "seed")
    real = LocalBackend.put
    budget = [3]

    def full_disk(self, oid, data):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        budget[0] -= 1
        return real(self, oid, data)

    monkeypatch.setattr(LocalBackend, "put", full_disk)
    with pytest.raises(StoreUnavailable, match="disk holding the store is full.*nothing was "
                                               "recorded"):
        ds.add(src, "big", pack=True)
    assert [d.name for d in ds.list()] == ["seed"]
    assert snapshot(src) == before
    monkeypatch.setattr(LocalBackend, "put", real)
    _store_is_consistent(ds)
    v = ds.add(src, "big")  # space is back: the same add now works
    assert v.ref == "big@1" and ds.verify(v).ok


def test_disk_full_in_the_cli_is_one_clear_line(ds, tmp_path, monkeypatch):
    src = make_tree(tmp_path / "src", {"a.txt": b"a" * 100})

    def full_disk(self, oid, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalBackend, "put", full_disk)
    out = CliRunner().invoke(cli, ["--store", str(ds.store.root), "data", "add", str(src),
                                   "-n", "a"])
    assert out.exit_code == 1
    assert out.output.startswith("Error: the disk holding the store is full")
    assert "Traceback" not in out.output


def test_disk_full_during_checkout_leaves_no_half_files(ds, small_tree, tmp_path, monkeypatch):
    v = ds.add(small_tree, "s")
    real_write = os.write
    dest = tmp_path / "out"
    dest.mkdir()
    writes = [0]

    def full_disk(fd, data):
        writes[0] += 1
        if writes[0] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StoreUnavailable, match=r"disk holding .*out is full.*none is half-written"):
        ds.checkout(v, dest)
    monkeypatch.setattr(os, "write", real_write)
    assert 0 < sum(1 for p in dest.rglob("*") if p.is_file()) < v.files
    leftovers = [p for p in dest.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []
    for p in dest.rglob("*"):
        if p.is_file():  # every file there is whole
            assert p.read_bytes() == (small_tree / p.relative_to(dest)).read_bytes()
