"""Buffered run writers and the background flusher.

Logging calls only append to in-process buffers; one daemon thread per process
turns each writer's buffer into a :class:`RecordBatch` about once a second and
hands it to the store (journal first, index second).  ``flush()`` does the same
synchronously.  A batch that failed for a transient reason keeps its sequence
number and is retried, so nothing is lost or applied twice.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import os
import threading
import time
import weakref
from typing import Any, Mapping

from . import clock, settings
from .entities import FileEntry, RecordBatch, RunStatus
from .errors import CairnError, InvalidArgument, RunFinished, StoreUnavailable
from .store.validation import (
    check_key, check_metric_value, check_step, check_text, param_value, scrub, tag_value,
)


class RunWriter:
    """Everything one process logs to one run, buffered until the next flush."""

    def __init__(self, store: Any, run_id: str, create: Mapping[str, Any] | None = None,
                 env_future: Any = None) -> None:
        self.store = store
        self.run_id = run_id
        self.writer_id = clock.new_writer_id()
        self._seq = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._create = dict(create) if create is not None else None
        self._env_future = env_future
        self._params: dict[str, str] = {}
        self._all_params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._deleted: list[str] = []
        self._artifacts: list[FileEntry] = []
        self._series: dict[str, tuple[array.array, array.array, array.array]] = {}
        self._last_step: dict[str, int] = {}
        self._keys_ok: set[str] = set()
        self._status: RunStatus | None = None
        self._end_time: int | None = None
        self._pending: RecordBatch | None = None  # taken but not yet accepted by the store
        self._error: CairnError | None = None
        self.finished = False
        self.status_written = False
        self.last_write = 0.0
        if create is not None:
            _anonymised(None)  # a missing key or a bad rules file fails the run's start

    # -- the hot path ----------------------------------------------------
    def log_metric(self, key: str, value: Any, step: Any = None, timestamp: Any = None) -> None:
        if key not in self._keys_ok:
            check_key(key, "metric")
            self._keys_ok.add(key)
        if type(value) is not float:
            value = check_metric_value(key, value)
        if timestamp is None:
            timestamp = clock.time_ns() // 1_000_000
        elif type(timestamp) is not int:
            timestamp = check_step(key, timestamp)
        with self._lock:
            if self.finished:
                raise RunFinished(f"run {self.run_id} has ended; its metrics are immutable")
            if step is None:
                step = self._last_step.get(key, -1) + 1
            elif type(step) is not int:
                step = check_step(key, step)
            self._last_step[key] = step
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (array.array("q"), array.array("q"), array.array("d"))
            series[0].append(step)
            series[1].append(timestamp)
            series[2].append(value)

    def log_metrics(self, metrics: Mapping[str, Any], step: Any = None, timestamp: Any = None) -> None:
        if timestamp is None:
            timestamp = clock.time_ns() // 1_000_000
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = {check_key(k, "param"): param_value(k, v) for k, v in params.items()}
        with self._lock:
            self._check_open("params")
            for k, v in clean.items():
                old = self._all_params.get(k)
                if old is not None and old != v:
                    raise InvalidArgument(f"param {k!r} of run {self.run_id} is already {old!r}; "
                                          f"params are immutable and cannot be changed to {v!r}")
            self._all_params.update(clean)
            self._params.update(clean)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {check_key(k, "tag"): tag_value(k, v) for k, v in tags.items()}
        with self._lock:
            self._tags.update(clean)
            self._deleted = [k for k in self._deleted if k not in clean]

    def delete_tag(self, key: str) -> None:
        check_text(key, "tag key")
        with self._lock:
            self._tags.pop(key, None)
            self._deleted.append(key)

    def add_artifacts(self, entries: list[FileEntry]) -> None:
        for e in entries:  # a file name that was not UTF-8 (os.fsdecode's lone surrogates)
            check_text(e.path, f"artifact path {e.path!r}")
        with self._lock:
            self._artifacts.extend(entries)

    def end(self, status: RunStatus, end_time: int | None = None) -> None:
        with self._lock:
            if self.finished:
                return
            self._status = status
            self._end_time = end_time or clock.now_ms()
            self.finished = True

    def _check_open(self, what: str) -> None:
        if self.finished:
            raise RunFinished(f"run {self.run_id} has ended; its {what} are immutable")

    # -- flushing ----------------------------------------------------------
    def _take(self, wait_env: bool) -> RecordBatch | None:
        env = None
        fut = self._env_future
        if fut is not None and (wait_env or fut.done()):
            try:
                env = fut.result(timeout=10)
            except Exception as exc:  # environment capture must never break a run
                env = {"error": f"environment capture failed: {exc}"}
            env = scrub(env)  # a file name or argument that is not UTF-8: kept, escaped
            self._env_future = None
            _put_sources(self.store, env)
        with self._lock:
            if self._pending is not None:
                return self._pending
            metrics = dict(self._series)
            batch = RecordBatch(
                run_id=self.run_id, writer_id=self.writer_id, seq=self._seq + 1, time=clock.now_ms(),
                params=self._params, tags=self._tags, deleted_tags=tuple(self._deleted),
                metrics=metrics, artifacts=tuple(self._artifacts),
                status=self._status if self.finished and not self.status_written else None,
                end_time=self._end_time,
                create=self._create, env=env)
            if batch.is_empty():
                return None
            batch = _anonymised(batch)
            self._seq += 1
            self._params, self._tags, self._deleted, self._artifacts = {}, {}, [], []
            self._series = {}
            self._create = None
            self._pending = batch
            return batch

    def flush(self, background: bool = False) -> None:
        """Write what is buffered.  In the background, errors are kept for the next flush()."""
        with self._flush_lock:
            if not background and self._error is not None:
                err, self._error = self._error, None
                raise err
            batch = self._take(wait_env=self.finished)
            if batch is None:
                return
            try:
                self.store.write(batch)
            except (StoreUnavailable, OSError) as exc:
                if not background:
                    raise StoreUnavailable(f"could not write run {self.run_id}: {exc}") from exc
                return  # keep it pending; the next flush retries with the same seq
            except CairnError as exc:
                self._pending = None  # the store refused it for good: report, don't retry
                if not background:
                    raise
                self._error = exc
                return
            self._pending = None
            self.last_write = time.monotonic()
            if batch.status is not None:
                self.status_written = True



def _anonymised(batch: Any) -> Any:
    """What of ``batch`` may leave the process (CAIRN_ANONYMISE: :mod:`cairn.anonymise`)."""
    from .anonymise.rules import active

    anon = active()
    if anon is None or batch is None:
        return batch
    from .anonymise.records import anonymise_batch

    return anonymise_batch(batch, anon)


# The patch and source files a captured environment names go to each store once per
# process: the environment is the same dict for every run of a working directory.
_sources_lock = threading.Lock()
_sources_last: tuple[Any, Any] | None = None  # (store, env) of the last put: most runs
_sources_done: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def _put_sources(store: Any, env: Any) -> None:
    """Store what ``env`` names of the code (``cairn reproduce`` rebuilds it from these)."""
    global _sources_last
    last = _sources_last
    if last is not None and last[0] is store and last[1] is env:
        return
    from .environment import source_blobs

    with _sources_lock:
        try:
            done = _sources_done.setdefault(store, set())
        except TypeError:  # a store that takes no weak reference: put every time (dedup)
            done = set()
        blobs = {oid: data for oid, data in source_blobs(env).items() if oid not in done}
        try:
            for oid, data in blobs.items():
                store.objects.put_bytes(data)
                done.add(oid)
        except Exception:  # never break a run: `cairn reproduce` reports the missing object
            return
        _sources_last = (store, env)
    if blobs:
        from .store.http import HttpStore

        if isinstance(store, HttpStore):  # the spool holds them: send them on (best effort)
            def send() -> None:
                try:
                    store.upload_objects(list(blobs))
                except RuntimeError:  # the interpreter is exiting: no new transfer threads
                    with contextlib.suppress(Exception):
                        for oid in store.missing_objects(list(blobs)):
                            store.upload_objects([oid])  # one at a time: no thread pool
                except Exception:
                    pass
            thread = threading.Thread(target=send, name="cairn-source-upload", daemon=True)
            with _sources_lock:
                if not _uploads:
                    atexit.register(_wait_for_uploads)
                _uploads.append(thread)
            thread.start()


_uploads: list[threading.Thread] = []
_UPLOAD_WAIT_S = 30.0  # at exit, how long a short script waits for its code to reach the server


def _wait_for_uploads() -> None:
    """At exit: let the source uploads finish (a daemon thread dies with the interpreter, and
    a script shorter than an upload would leave a run whose code never reached the server)."""
    deadline = time.monotonic() + _UPLOAD_WAIT_S
    for thread in list(_uploads):
        thread.join(max(0.0, deadline - time.monotonic()))


class Flusher:
    """The process's one background thread: flushes every open writer periodically."""

    def __init__(self) -> None:
        self._writers: dict[int, RunWriter] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._pid = os.getpid()

    def register(self, writer: RunWriter) -> None:
        with self._lock:
            self._writers[id(writer)] = writer
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="cairn-flusher", daemon=True)
                self._thread.start()

    def unregister(self, writer: RunWriter) -> None:
        with self._lock:
            self._writers.pop(id(writer), None)

    def writers(self, store: Any = None) -> list[RunWriter]:
        with self._lock:
            ws = list(self._writers.values())
        return ws if store is None else [w for w in ws if w.store is store]

    def flush_all(self, store: Any = None) -> None:
        errors = []
        for w in self.writers(store):
            try:
                w.flush()
            except CairnError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def flush_run(self, store: Any, run_id: str) -> None:
        """Deliver what this process has buffered for one run of ``store``."""
        for w in self.writers(store):
            if w.run_id == run_id:
                w.flush()

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while True:
            self._wake.wait(settings.FLUSH_INTERVAL.get())
            self._wake.clear()
            for w in self.writers():
                try:
                    w.flush(background=True)
                except Exception:  # the flusher must survive anything; errors surface on flush()
                    pass
            beat = settings.HEARTBEAT_INTERVAL.get()
            if time.monotonic() - last_beat >= beat:
                last_beat = time.monotonic()
                self._heartbeat(beat)

    def _heartbeat(self, interval: float) -> None:
        by_store: dict[int, tuple[Any, list[str]]] = {}
        cutoff = time.monotonic() - interval
        for w in self.writers():
            if not w.finished and w.last_write < cutoff and w._seq > 0:
                by_store.setdefault(id(w.store), (w.store, []))[1].append(w.run_id)
        for store, ids in by_store.values():
            try:
                store.heartbeat(ids, clock.now_ms())
            except Exception:
                pass


FLUSHER = Flusher()


def _after_fork() -> None:
    # A forked child has no flusher thread and must not flush its parent's runs.
    global FLUSHER
    FLUSHER = Flusher()


os.register_at_fork(after_in_child=_after_fork)
