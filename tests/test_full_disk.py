"""A store on a disk that fills up: real ENOSPC from a small tmpfs, no mocks.

Every write into the store (an artifact, a directory of them, generated artifacts, a
model version, a data set) must fail with a :class:`cairn.errors.StorageFull` (a
:class:`StoreUnavailable`) that names the path, leave no half-written object, keep the
store readable, and leave the run with the right status for a reader in another
process: FAILED once its end record is written, which a full disk may delay until
there is room again (docs/tracking.md, "When the disk is full").

Mounting needs root on Linux (CI runs the suite as root); elsewhere these tests skip.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cairn
from cairn import writer as _writer
from cairn.errors import (
    CairnError, PermissionDenied, StorageFull, StoreUnavailable, from_os_error,
)
from cairn.store import open_store

KiB = 1024
MiB = 1024 * KiB


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted at ``path``; fill it, then free it again."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._fillers: list[Path] = []

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all the space but ``leave`` bytes (0: every last byte, up to ENOSPC)."""
        filler = self.path / f"filler-{len(self._fillers)}"
        self._fillers.append(filler)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            want = max(self.free() - leave, 0)
            block = b"\xff" * (64 * KiB)
            while want > 0:
                try:
                    want -= os.write(fd, block[:min(want, len(block))])
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
            if leave == 0:  # the last pages, a byte at a time
                try:
                    while os.write(fd, block[:4096]):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def unfill(self) -> None:
        for filler in self._fillers:
            filler.unlink(missing_ok=True)
        self._fillers.clear()


def _mount(path: Path, size: int, ro: bool = False) -> None:
    opts = f"size={size}" + (",ro" if ro else "")
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                             capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command on this machine")
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {out.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path, cairn_state, monkeypatch):
    """A 6 MiB tmpfs holding the tracking store (``small_disk.path / "store"``);
    unmounted afterwards, whatever the test left on it."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to mount a small tmpfs (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    _mount(mnt, 6 * MiB)
    disk = SmallDisk(mnt, 6 * MiB)
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    cairn.set_tracking_uri(str(mnt / "store"))
    try:
        yield disk
    finally:
        disk.unfill()
        try:
            cairn._state.reset(end_runs=True)
        except CairnError:
            pass
        # A writer whose end record never made it stays with the flusher to retry it:
        # it must not write into the directory under the mount once it is gone.
        for w in _writer.FLUSHER.writers():
            if str(getattr(w.store, "root", "")).startswith(str(mnt)):
                _writer.FLUSHER.unregister(w)
        from cairn.store import close_stores

        close_stores()
        out = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
        if out.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def _random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))  # incompressible: stored as big as it is
    return path


def _leftovers(root: Path) -> list[Path]:
    """Temporary files of interrupted object writes (``.tmp-*`` in a shard directory)."""
    return [p for p in (root / "objects").glob("*/.tmp-*")]


def _read_in_new_process(store: Path, run_id: str, **env: str) -> dict:
    """What a reader in a fresh process sees of the run: status and artifact paths."""
    code = textwrap.dedent(f"""
        import json
        from cairn.client import Client
        from cairn.errors import CairnError
        c = Client({str(store)!r})
        try:
            run = c.get_run({run_id!r})
            seen = {{"status": run.status.value,
                    "artifacts": [e.path for e in c.list_artifacts(run.id)]}}
        except CairnError as exc:
            seen = {{"error": type(exc).__name__, "message": exc.message}}
        print(json.dumps(seen))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_consistent(store: Path) -> None:
    s = open_store(str(store))
    assert s.objects.verify().ok
    assert _leftovers(store) == []
    assert s.scan_damage() == []  # no torn journal record left behind either


def test_log_artifact_bigger_than_the_free_space(small_disk, tmp_path):
    store = small_disk.path / "store"
    big = _random_file(tmp_path / "src" / "weights.bin", 2 * MiB)
    with pytest.raises(StorageFull) as caught:
        with cairn.start_run() as run:
            cairn.log_metric("loss", 0.5)
            cairn.flush()
            small_disk.fill(leave=512 * KiB)
            cairn.log_artifact(big)
    err = caught.value
    assert isinstance(err, StoreUnavailable) and isinstance(err, CairnError)
    assert "no space left on device" in err.message
    assert str(big) in err.message  # the artifact ...
    assert str(store / "objects") in err.message  # ... and where it could not go
    assert err.details["errno"] == errno.ENOSPC
    assert err.to_dict()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert _leftovers(store) == []
    # The run ended FAILED, for a reader in another process too, with the disk still full.
    seen = _read_in_new_process(store, run.id)
    assert seen == {"status": "FAILED", "artifacts": []}
    assert cairn.Client().get_run(run.id).status.value == "FAILED"

    small_disk.unfill()
    _assert_consistent(store)
    with cairn.start_run() as again:  # there is room again: the same call works
        cairn.log_artifact(big)
    assert _read_in_new_process(store, again.id) == {"status": "FINISHED",
                                                     "artifacts": ["weights.bin"]}
    got = cairn.Client().download_artifacts(again.id, "weights.bin", tmp_path / "out")
    assert got.read_bytes() == big.read_bytes()
    _assert_consistent(store)


def test_a_completely_full_disk_delays_the_end_record_until_there_is_room(small_disk, tmp_path):
    """Not one byte left: the end record cannot be written either.  The with-block raises
    the artifact's error (the failed end is a note on it), flush() keeps failing with
    StoreUnavailable while the disk is full, and once there is room the kept end record
    lands: a new reader sees FAILED, not RUNNING."""
    store = small_disk.path / "store"
    big = _random_file(tmp_path / "src" / "big.bin", 300 * KiB)
    with pytest.raises(StorageFull, match="no space left on device") as caught:
        with cairn.start_run() as run:
            cairn.log_metric("loss", 0.5)
            cairn.flush()
            small_disk.fill(leave=0)
            for step in range(1, 5001):  # buffered: they go with the end record, which is
                cairn.log_metric("loss", 1 / step)  # more than the journal's last page holds
            cairn.log_artifact(big)
    assert str(big) in caught.value.message
    assert any(f"run {run.id} could not be marked FAILED" in note
               for note in getattr(caught.value, "__notes__", []))
    assert cairn.active_run() is None  # the run is over for this process
    assert _leftovers(store) == []
    for _ in range(2):  # the disk is still full: flush says so, every time
        with pytest.raises(StoreUnavailable):
            cairn.flush()

    small_disk.unfill()
    cairn.flush()  # delivers the end record (the flusher thread would, within a second)
    assert _read_in_new_process(store, run.id)["status"] == "FAILED"
    history = cairn.Client().get_metric_history(run.id, "loss")
    assert list(history.values) == [0.5] + [1 / step for step in range(1, 5001)]
    _assert_consistent(store)
    with cairn.start_run() as again:
        cairn.log_artifact(big)
    assert _read_in_new_process(store, again.id)["artifacts"] == ["big.bin"]


def test_a_process_that_ends_on_a_full_disk_leaves_its_run_killed_not_running(small_disk,
                                                                              tmp_path):
    """The end record never made it (the process exited with the disk full): its run
    reads KILLED once its heartbeat is stale, before and after the disk frees up."""
    store = small_disk.path / "store"
    big = _random_file(tmp_path / "big.bin", 300 * KiB)
    code = textwrap.dedent(f"""
        import os, sys, cairn
        from cairn.errors import StorageFull
        cairn.set_tracking_uri({str(store)!r})
        run = cairn.start_run()
        cairn.log_metric("loss", 1.0)
        cairn.flush()
        print(run.id, flush=True)
        fd = os.open({str(small_disk.path / "filler-0")!r}, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        try:
            cairn.log_artifact({str(big)!r})
        except StorageFull as exc:
            print("StorageFull", exc.message, file=sys.stderr)
            sys.exit(3)   # the atexit hook tries to end the run: the disk is still full
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 3, out.stderr
    assert "no space left on device" in out.stderr
    run_id = out.stdout.split()[0]
    small_disk._fillers.append(small_disk.path / "filler-0")
    assert _leftovers(store) == []
    stale = {"CAIRN_HEARTBEAT_TIMEOUT": "0.5"}
    time.sleep(1.0)
    # The disk is still full: opening the store replays the journals into the index, which
    # may need room; then the reader is told so.  Either way it is not told RUNNING.
    seen = _read_in_new_process(store, run_id, **stale)
    assert seen.get("status") == "KILLED" or (
        seen["error"] == "StoreUnavailable" and "disk is full" in seen["message"]), seen
    small_disk.unfill()
    assert _read_in_new_process(store, run_id, **stale)["status"] == "KILLED"
    assert _read_in_new_process(store, run_id)["status"] == "KILLED"  # persisted by then


def test_log_artifacts_with_a_chunked_file(small_disk, tmp_path):
    """A directory holding a file above the chunking threshold: the chunks stored before
    the disk filled are whole objects; the one being written is not left behind."""
    store = small_disk.path / "store"
    src = tmp_path / "ckpt"
    _random_file(src / "small.txt", 10 * KiB)
    _random_file(src / "model.bin", 5 * MiB)  # above CHUNK_THRESHOLD (4 MiB): chunked
    with pytest.raises(StorageFull, match="no space left on device") as caught:
        with cairn.start_run() as run:
            small_disk.fill(leave=1 * MiB)
            cairn.log_artifacts(src, "ckpt")
    assert str(src) in caught.value.message
    assert _leftovers(store) == []
    # The chunks stored before the disk filled are whole (unreferenced) objects and take
    # the last bytes: a reader may need room to open the store (it replays journals into
    # the index), so it reads once the disk is freed.
    small_disk.unfill()
    assert _read_in_new_process(store, run.id) == {"status": "FAILED", "artifacts": []}
    _assert_consistent(store)
    with cairn.start_run() as again:
        cairn.log_artifacts(src, "ckpt")
    assert _read_in_new_process(store, again.id)["artifacts"] == ["ckpt/model.bin",
                                                                  "ckpt/small.txt"]
    _assert_consistent(store)


def test_generated_artifacts(small_disk, tmp_path, monkeypatch):
    """log_text and log_dict: the store's disk full, then the temporary directory's."""
    store = small_disk.path / "store"
    with cairn.start_run() as run:
        cairn.flush()
        small_disk.fill(leave=0)
        with pytest.raises(StorageFull, match="no space left on device") as caught:
            cairn.log_dict({"x": "y" * 4000}, "config/params.json")
        assert "params.json" in caught.value.message
        assert str(store / "objects") in caught.value.message
        # The temporary file itself on the full disk (TMPDIR there).
        tmp = small_disk.path / "tmp"
        small_disk.unfill()
        tmp.mkdir()
        small_disk.fill(leave=0)
        monkeypatch.setattr("tempfile.tempdir", str(tmp))
        with pytest.raises(StorageFull, match="log_text.*temporary file.*no space left") as caught:
            cairn.log_text("z" * 100_000, "notes.txt")
        assert str(tmp) in caught.value.message
        monkeypatch.setattr("tempfile.tempdir", None)
        small_disk.unfill()
        cairn.log_text("hello", "notes.txt")
    assert _read_in_new_process(store, run.id) == {"status": "FINISHED",
                                                   "artifacts": ["notes.txt"]}
    _assert_consistent(store)


def test_registering_a_model(small_disk):
    store = small_disk.path / "store"
    model = {"weights": os.urandom(1 * MiB)}  # the pickle flavor
    with cairn.start_run() as run:
        cairn.flush()
        client = cairn.Client()
        small_disk.fill(leave=256 * KiB)
        with pytest.raises(StorageFull, match="no space left on device"):
            cairn.log_model(model, "net", flavor="pickle")
        assert _leftovers(store) == []
        small_disk.unfill()
        version = cairn.log_model(model, "net", flavor="pickle")
    assert [v.version for v in client.list_model_versions("net")] == [version.version]
    loaded = client.load_model(f"net/{version.version}")
    assert pickle.dumps(loaded) == pickle.dumps(model)
    assert _read_in_new_process(store, run.id)["status"] == "FINISHED"
    _assert_consistent(store)


def test_adding_a_data_set(small_disk, tmp_path):
    """Many small files (packed) and one big one: nothing is recorded while the disk is full."""
    store = small_disk.path / "store"
    src = tmp_path / "data"
    for i in range(40):
        _random_file(src / f"part/{i:03d}.bin", 20 * KiB)
    _random_file(src / "big.bin", 1536 * KiB)
    client = cairn.Client()
    client.data.add(_random_file(tmp_path / "seed" / "s.bin", KiB), "seed")
    small_disk.fill(leave=512 * KiB)
    with pytest.raises(StorageFull, match="no space left on device"):
        client.data.add(src, "train")
    assert [d.name for d in client.data.list()] == ["seed"]
    assert _leftovers(store) == []
    small_disk.unfill()
    v = client.data.add(src, "train")
    assert v.files == 41 and client.data.verify(v).ok
    _assert_consistent(store)


def test_a_read_only_file_system(tmp_path, cairn_state, monkeypatch):
    """EROFS (the store's file system remounted read-only): a StoreUnavailable that says
    so and names the path, not a StorageFull and not a bare OSError."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to mount a small tmpfs (CI runs as root)")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    _mount(mnt, 4 * MiB)
    try:
        store = mnt / "store"
        monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
        cairn.set_tracking_uri(str(store))
        with cairn.start_run() as run:
            cairn.flush()
        from cairn.store import close_stores

        close_stores()  # no file open for writing: the remount needs that
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        src = _random_file(tmp_path / "a.bin", 10 * KiB)
        with pytest.raises(StoreUnavailable, match="read-only file system") as caught:
            cairn.Client().log_artifact(run.id, src)
        assert not isinstance(caught.value, StorageFull)
        assert str(store / "objects") in caught.value.message
    finally:
        cairn._state.reset()
        from cairn.store import close_stores

        close_stores()
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_file_size_limit_is_efbig(tmp_path):
    """EFBIG (RLIMIT_FSIZE, SIGXFSZ ignored), in a process of its own."""
    if sys.platform != "linux":
        pytest.skip("RLIMIT_FSIZE as on Linux")
    store = tmp_path / "store"
    src = _random_file(tmp_path / "a.bin", 2 * MiB)
    code = textwrap.dedent(f"""
        import resource, signal, cairn
        from cairn.errors import StoreUnavailable
        run = cairn.Client({str(store)!r}).create_run()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))
        try:
            cairn.Client({str(store)!r}).log_artifact(run.id, {str(src)!r})
        except StoreUnavailable as exc:
            print(type(exc).__name__, exc.message)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("StoreUnavailable ")
    assert "file too large" in out.stdout and "a.bin" in out.stdout
    assert _leftovers(store) == []


@pytest.mark.parametrize("code, cls, words", [
    (errno.ENOSPC, StorageFull, "no space left on device"),
    (errno.EDQUOT, StorageFull, "disk quota exceeded"),
    (errno.EIO, StoreUnavailable, "input/output error"),
    (errno.EROFS, StoreUnavailable, "read-only file system"),
    (errno.EFBIG, StoreUnavailable, "file too large"),
    (errno.EACCES, PermissionDenied, "permission denied"),
])
def test_from_os_error(code, cls, words):
    exc = OSError(code, os.strerror(code))
    err = from_os_error(exc, "could not write object", "/s/objects/ab/cd", "try again")
    assert type(err) is cls
    assert err.message.startswith(f"could not write object /s/objects/ab/cd: {words}")
    assert err.message.endswith("; try again")
    assert err.details == {"errno": code, "path": "/s/objects/ab/cd"}

