"""HttpStore: the store protocol over a Cairn server's REST API, with a local spool.

``cairn.set_tracking_uri("http://host:5000")`` makes every Client and run use this
store.  Writes are journal first, as in the local store, only the journal is a
*spool* (:mod:`cairn.store.spool`): each batch is appended there, then sent; the
server acknowledges it by (writer id, sequence number) and applies each at most once.

* Server up: ``write`` returns once the server has the batch, and raises what the
  server refused (a finished run's metrics: :class:`~cairn.errors.RunFinished`).
* Server down or restarting: ``write`` returns as soon as the batch is in the spool;
  a background thread re-sends the backlog, in order, when the server is back.
  Training never waits and nothing is lost or applied twice.  A run that ends while
  the server is away waits up to ``CAIRN_SPOOL_DRAIN_TIMEOUT`` seconds for it, and
  whatever is left goes out with the next process or ``cairn sync``.

Artifacts are stored in the spool's object store first; before a batch that lists
files is sent, the objects the server lacks are uploaded.

Needs ``httpx`` (``pip install 'cairn[server]'``); imported on first use.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, cast

from ..entities import Experiment, FileEntry, MetricHistory, RecordBatch, Run
from ..errors import (
    CairnError, InvalidArgument, MissingDependency, NotFound, StoreUnavailable,
)
from . import journal as jlib
from . import segments as seglib
from . import wire
from .spool import Spool, default_root, server_dir
from .validation import is_run_id

if TYPE_CHECKING:
    import httpx

    from ..cas.backends.base import Backend
    from ..cas.odb import ObjectStore

MAX_REQUEST = 8 << 20  # bytes of frames per records request
OBJECT_TYPE = "application/vnd.cairn.object"
_ADOPT_AFTER_S = 30.0  # a journal untouched this long whose owner is gone is sent by others


def _httpx() -> ModuleType:
    try:
        import httpx
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingDependency("a server tracking URI needs httpx: pip install 'cairn[server]'") \
            from None
    return httpx


class HttpStore:
    def __init__(self, url: str, token: str | None = None, spool_dir: str | os.PathLike | None = None,
                 timeout: float = 30.0, drain_timeout: float = 10.0, fsync: bool = False,
                 ca_bundle: str | None = None, tls_verify: bool | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"not a server URL: {url!r}")
        self.uri = url.rstrip("/")
        self.token = token
        # None: CAIRN_CA_BUNDLE and CAIRN_TLS_VERIFY (options), read when the client is made.
        self.ca_bundle = ca_bundle
        self.tls_verify = tls_verify
        self.timeout = timeout
        self.drain_timeout = drain_timeout
        self.fsync = fsync
        self.spool = Spool(server_dir(Path(spool_dir) if spool_dir else default_root(), self.uri))
        self._client: httpx.Client | None = None
        self._objects: ObjectStore | None = None
        self._lock = threading.RLock()  # journal appends and the writer table
        self._writer_locks: dict[str, threading.Lock] = {}
        self._backlog: set[str] = set()  # writers of this process with unsent records
        self._finished: set[str] = set()  # writers whose run ended (files go once all is sent)
        self._experiments: dict[str, Experiment] = {}
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._closed = False
        self._warned: set[str] = set()
        self._down_until = 0.0
        self._adopt_checked = False
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"HttpStore({self.uri!r})"

    # -- transport -------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            httpx = _httpx()
            headers = {"user-agent": "cairn-client"}
            if self.token:
                headers["authorization"] = f"Bearer {self.token}"
            tls: dict[str, Any] = {}
            if self.uri.startswith("https://"):
                from . import options
                from .tls import client_context

                tls["verify"] = client_context(
                    self.uri, options.resolve(self.ca_bundle, "ca_bundle"),
                    options.resolve(self.tls_verify, "tls_verify"))
            self._client = httpx.Client(
                base_url=self.uri, headers=headers, **tls,
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        return self._client

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        httpx = _httpx()
        try:
            resp = self.client.request(method, "/api/v1" + path, **kw)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if resp.status_code >= 400:
            raise self._error(resp)
        return resp

    def _unreachable(self, exc: Exception) -> CairnError:
        """What a transport error means: a TLSError when the handshake failed (a certificate
        that does not verify is no outage: nothing is spooled to be sent later over it, and
        nothing goes over plain http instead), else StoreUnavailable."""
        from . import options
        from .tls import tls_error

        err = tls_error(self.uri, exc, options.resolve(self.ca_bundle, "ca_bundle"))
        if err is not None:
            return err
        return StoreUnavailable(f"the Cairn server at {self.uri} is unreachable: "
                                f"{type(exc).__name__}: {exc}")

    def _error(self, resp: httpx.Response) -> CairnError:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code in (502, 503, 504) and not (isinstance(body, dict) and
                                                         "error_code" in body):
            return StoreUnavailable(f"the Cairn server at {self.uri} answered {resp.status_code}")
        if isinstance(body, dict) and "error_code" in body:
            return wire.error_from_json(body, resp.status_code)
        err = CairnError(f"the Cairn server at {self.uri} answered {resp.status_code}: "
                         f"{resp.text[:200]}")
        err.http_status = resp.status_code
        return err

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._request(method, path, **kw).json()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """One request to the native API (``/api/v1`` + ``path``): its JSON, or None if empty.

        Errors come back as the error tree, as from every other method here; for
        clients of resources the store protocol does not cover (the model registry).
        """
        resp = self._request(method, path, **kw)
        return resp.json() if resp.content else None

    # -- objects ---------------------------------------------------------
    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            from ..cas.backends.local import LocalBackend
            from ..cas.odb import ObjectStore

            self._objects = ObjectStore(_SpoolBackend(LocalBackend(self.spool.root / "objects"), self))
        return self._objects

    def missing_objects(self, oids: Iterable[str]) -> set[str]:
        """The objects among ``oids`` that the server lacks, loose or packed."""
        oids = sorted(set(oids))
        missing: set[str] = set()
        for i in range(0, len(oids), 10_000):
            missing.update(self._json("POST", "/objects/missing",
                                      json={"oids": oids[i:i + 10_000]})["missing"])
        return missing

    def upload_objects(self, oids: Iterable[str], source: Backend | None = None) -> int:
        """Upload the objects among ``oids`` that the server lacks; returns how many."""
        missing = sorted(self.missing_objects(oids))
        if not missing:
            return 0
        backend = source if source is not None else self._spool_objects()

        def put(oid: str) -> int:
            try:
                data = backend.get(oid)
            except NotFound:  # not ours to send; the server says so if a batch needs it
                return 0
            self._request("PUT", f"/objects/{oid}", content=data,
                          headers={"content-type": OBJECT_TYPE})
            return 1

        from ..cas._pool import ordered_map

        return sum(ordered_map(put, missing, workers=min(8, len(missing))))

    def upload_files(self, entries: Iterable[FileEntry]) -> int:
        """Upload what the server lacks of files stored here, then drop the spool's copies."""
        from ..cas.tree import referenced_oids

        entries = list(entries)
        sent = self.upload_objects(referenced_oids(entries))
        self._forget_objects(entries)
        return sent

    # -- experiments -----------------------------------------------------
    def _remember(self, exps: Iterable[Experiment]) -> None:
        changed = False
        for e in exps:
            if self._experiments.get(e.id) != e:
                # The server's experiment of a name replaces one made up offline.
                for old in [o for o in self._experiments.values()
                            if o.name == e.name and o.id != e.id]:
                    del self._experiments[old.id]
                self._experiments[e.id] = e
                changed = True
        if changed:
            try:
                self.spool.save_experiments([wire.experiment_to_json(e)
                                             for e in self._experiments.values()])
            except OSError:
                pass

    def _cached(self) -> dict[str, Experiment]:
        if not self._experiments:
            for d in self.spool.load_experiments():
                try:
                    e = wire.experiment_from_json(d)
                except (KeyError, TypeError):
                    continue
                self._experiments[e.id] = e
        return self._experiments

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None,
                          experiment_id: str | None = None) -> Experiment:
        exp = wire.experiment_from_json(self._json("POST", "/experiments",
                                                   json={"name": name, "tags": dict(tags or {})}))
        self._remember([exp])
        return exp

    def get_experiment(self, experiment_id: str) -> Experiment:
        try:
            exp = wire.experiment_from_json(self._json("GET", f"/experiments/{_q(experiment_id)}"))
        except StoreUnavailable:
            cached = self._cached().get(str(experiment_id))
            if cached is None:
                raise
            return cached
        self._remember([exp])
        return exp

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            exp = wire.experiment_from_json(self._json("GET", "/experiments/by-name",
                                                       params={"name": name}))
        except NotFound:
            return None
        except StoreUnavailable:
            cached = next((e for e in self._cached().values() if e.name == name), None)
            if cached is None:
                raise
            return cached
        self._remember([exp])
        return exp

    def offline_experiment(self, name: str) -> Experiment:
        """The experiment ``name`` while the server is out of reach: the one this machine
        last saw under that name, else a new one (id made here).  A run created in it is
        spooled with its records; when they reach the server the run joins the server's
        experiment of that name, or creates it (:class:`~cairn.store.base.OfflineExperiments`)."""
        exp = next((e for e in self._cached().values() if e.name == name), None)
        if exp is None:
            from .. import clock

            exp = Experiment("0" if name == "Default" else clock.new_experiment_id(), name,
                             clock.now_ms(), "active", {})
            self._remember([exp])
        # Said at once: a mistyped server URL would otherwise train "offline" in silence.
        print(f"cairn: the server at {self.uri} is unreachable; the run starts offline in "
              f"experiment {name!r} and its records wait in {self.spool.root} until it is back "
              "(or `cairn sync`)", file=sys.stderr)
        return exp

    def list_experiments(self) -> list[Experiment]:
        exps = [wire.experiment_from_json(d) for d in self._json("GET", "/experiments")["experiments"]]
        self._remember(exps)
        return exps

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`: the server checks the role.)"""
        exp = wire.experiment_from_json(self._json(
            "PATCH", f"/experiments/{_q(experiment_id)}", json={"name": name}))
        self._remember([exp])
        return exp

    def set_experiment_lifecycle(self, experiment_id: str, lifecycle: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`.)"""
        verb = {"deleted": "delete", "active": "restore"}.get(lifecycle)
        if verb is None:
            raise InvalidArgument(f"lifecycle must be 'active' or 'deleted', got {lifecycle!r}")
        exp = wire.experiment_from_json(self._json(
            "POST", f"/experiments/{_q(experiment_id)}/{verb}"))
        self._remember([exp])
        return exp

    # -- writes ----------------------------------------------------------
    def _writer_lock(self, writer_id: str) -> threading.Lock:
        with self._lock:
            lk = self._writer_locks.get(writer_id)
            if lk is None:
                lk = self._writer_locks[writer_id] = threading.Lock()
            return lk

    def write(self, batch: RecordBatch, fsync: bool | None = None) -> None:
        """Spool the batch, then deliver it (and anything before it) if the server is there."""
        segs = [seglib.prepare(k, *arrays) for k, arrays in batch.metrics.items()]
        wid = batch.writer_id
        if not self._adopt_checked:  # journals left by processes that died while away
            self._adopt_checked = True
            if self.spool.writer_ids(idle_for=_ADOPT_AFTER_S):
                self._kick()
        terminal = batch.status is not None and batch.status.terminal
        with self._writer_lock(wid):
            with self._lock:
                start, end = self.spool.append(batch, segs,
                                                fsync=self.fsync if fsync is None else fsync)
                if terminal:
                    self._finished.add(wid)
            if wid in self._backlog and not terminal:
                self._kick()
                return
            # A run that ends waits a while for an absent server (once per outage).
            wait = self.drain_timeout if terminal and time.monotonic() > self._down_until else 0.0
            try:
                error = self._deliver(wid, deadline=time.monotonic() + wait, raise_for=batch.seq)
            except StoreUnavailable:
                self._backlog.add(wid)
                self._kick()
                if terminal:
                    self._down_until = time.monotonic() + max(self.drain_timeout, 1.0)
                    self._warn_left(wid)
                return
            except CairnError as exc:
                # Not the records' fault (a bad token): what was spooled before stays there
                # for later; this batch, whose error the caller sees (and whose sequence
                # number it may reuse), is set aside, kept in the spool's rejected area.
                self._set_aside(wid, start, end, batch, exc)
                raise
        if error is not None:
            raise error

    def _deliver(self, wid: str, deadline: float = 0.0, raise_for: int | None = None
                 ) -> CairnError | None:
        """Send one writer's unacknowledged records, in order; retries until ``deadline``.

        Returns the server's error for batch ``raise_for`` if it was rejected.  Raises
        StoreUnavailable if records remain unsent.
        """
        while True:
            try:
                with self.spool.lock(wid) as got:
                    if not got:  # someone else (cairn sync) is sending it right now
                        raise StoreUnavailable(f"the spool of writer {wid} is being sent elsewhere")
                    return self._send_all(wid, raise_for)
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)

    def _send_all(self, wid: str, raise_for: int | None) -> CairnError | None:
        """Send a writer's records in order, acknowledging each as the server answers.

        A record the server refuses (a 4xx for it) is kept in the spool's rejected area
        and skipped; a refused request of several records is sent again a record at a
        time, to find the one at fault.  Anything else (a 5xx, no answer, a result
        ``unavailable``) acknowledges nothing from there on: StoreUnavailable, sent later.
        """
        error = None
        one_at_a_time = False
        while True:
            skipped = self.spool.skipped(wid)
            entries: list[jlib.Entry] = []
            size = 0
            for item in self.spool.entries(wid):
                if isinstance(item, jlib.Damage):  # a damaged spool record cannot be sent
                    if entries:
                        break  # send what comes before it first
                    self.spool.ack(wid, item.offset + item.length)
                    print(f"cairn: skipped a damaged spool record in {item.path}: {item.reason}",
                          file=sys.stderr)
                    continue
                if item.offset in skipped:  # set aside already (see write)
                    if not entries:
                        self.spool.ack(wid, item.end)
                    continue
                entries.append(item)
                size += item.end - item.offset
                if size >= MAX_REQUEST or one_at_a_time:
                    break
            if not entries:
                break
            artifacts = [a for e in entries for a in e.batch.artifacts]
            if artifacts:
                from ..cas.tree import referenced_oids

                try:
                    self.upload_objects(referenced_oids(artifacts))
                except CairnError as exc:
                    if _transient(exc):
                        raise StoreUnavailable(f"uploading artifacts to {self.uri} failed: "
                                               f"{exc.message}") from None
                    raise
            base = entries[0].offset
            data = self._slice(wid, base, entries[-1].end)
            frames = [data[e.offset - base:e.end - base] for e in entries]
            try:
                # The caller's own record is all or nothing, as on every other backend (its
                # error is raised, and its sequence number used again); records sent for
                # earlier writes lose only the items the server refuses.
                own = raise_for if any(e.batch.seq == raise_for for e in entries) else None
                results = self._post_records(
                    b"".join(frames), None if own is None else wire.strict_batch(wid, own))
            except _Refused as exc:
                if len(entries) > 1:  # which record is it? send them one by one
                    one_at_a_time = True
                    continue
                err = wire.error_to_json(exc.error)
                raised = entries[0].batch.seq == raise_for
                if raised:
                    error = exc.error
                self._reject(wid, entries[0], err, frames[0], raised)
                one_at_a_time = False  # found it: the rest goes in full requests again
                continue
            for entry, frame, res in zip(entries, frames, results):
                status = res.get("status") if isinstance(res, dict) else None
                if status == "rejected":
                    err = res.get("error") or {}
                    raised = entry.batch.seq == raise_for
                    if raised:
                        error = wire.error_from_json(err)
                    self._reject(wid, entry, err, frame, raised, res.get("rejected_items"))
                    continue
                if status not in ("applied", "duplicate"):  # unavailable, or unknown to us
                    raise StoreUnavailable(f"the server could not apply record {entry.batch.seq} "
                                           f"of writer {wid} yet")
                items = res.get("rejected_items")
                if items:  # applied without some of its params, tags or metrics
                    self._reject_items(entry.batch, items)
                self.spool.ack(wid, entry.end)
                if entry.batch.artifacts:
                    self._forget_objects(entry.batch.artifacts)
                if entry.batch.status is not None and entry.batch.status.terminal:
                    self._finished.add(wid)
            if len(results) < len(entries):
                raise StoreUnavailable("the server answered for fewer records than were sent")
        self._backlog.discard(wid)
        if wid in self._finished:
            with self._lock:
                self.spool.remove(wid)
            self._finished.discard(wid)
            self._writer_locks.pop(wid, None)
        return error

    def _post_records(self, body: bytes, strict: str | None = None) -> list:
        """POST frames to ``/records``: the results, or StoreUnavailable (send again later),
        _Refused (a 4xx: something in the request is at fault), or the error of a request
        no record is at fault for (401, 403: a bad token)."""
        httpx = _httpx()
        try:
            resp = self.client.request("POST", "/api/v1/records", content=body,
                                       params={"strict": strict} if strict else None,
                                       headers={"content-type": wire.RECORDS_TYPE})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        status = resp.status_code
        if status >= 500 or status in (408, 429):
            raise StoreUnavailable(f"the Cairn server at {self.uri} answered {status}; the "
                                   "records stay in the spool and are sent again")
        if status >= 400:
            err = self._error(resp)
            if status in (401, 403, 404, 405, 407, 410, 415):  # the token, the route: no record
                raise err
            raise _Refused(err)
        try:
            results = resp.json()["results"]
        except (ValueError, KeyError, TypeError):
            raise StoreUnavailable(f"the Cairn server at {self.uri} answered records with "
                                   "something else than results") from None
        if not isinstance(results, list):
            raise StoreUnavailable(f"the Cairn server at {self.uri} answered records with "
                                   "something else than results")
        return results

    def _reject(self, wid: str, entry: jlib.Entry, err: dict, frame: bytes, raised: bool,
                items: list | None = None) -> None:
        """Keep a record the server refused in the rejected area, then acknowledge it."""
        self.spool.note_rejected(entry.batch, {**err, "raised": raised} if raised else err,
                                 frame=frame, items=items if isinstance(items, list) else None)
        if not raised:
            self._warn_rejected(entry.batch, err)
        self.spool.ack(wid, entry.end)

    def _reject_items(self, batch: RecordBatch, items: list) -> None:
        first = items[0] if isinstance(items[0], dict) else {}
        msg = (first.get("error") or {}).get("message", "refused")
        err = {"error_code": "INVALID_PARAMETER_VALUE",
               "message": f"{len(items)} item(s) left out: {msg}"}
        self.spool.note_rejected(batch, err, items=items)
        print(f"cairn: warning: the server left {len(items)} item(s) out of record {batch.seq} of "
              f"run {batch.run_id} and applied the rest: {msg} (kept in "
              f"{self.spool.rejected_dir}; `cairn sync` lists what was refused)", file=sys.stderr)

    def _set_aside(self, wid: str, start: int, end: int, batch: RecordBatch,
                   exc: CairnError) -> None:
        """Take the record at ``start`` out of the sending order (its error was raised)."""
        if self.spool.acked(wid) >= end:
            return  # it was dealt with (acknowledged or rejected) after all
        try:
            frame = self._slice(wid, start, end)
        except OSError:
            frame = None
        self.spool.note_rejected(batch, {**wire.error_to_json(exc), "raised": True}, frame=frame)
        if self.spool.acked(wid) >= start:
            self.spool.ack(wid, end)
        else:
            self.spool.skip(wid, start)

    def _spool_objects(self) -> Backend:
        """The spool's own object store (``objects`` reads fall back to the server)."""
        return cast(_SpoolBackend, self.objects.backend).local

    def _forget_objects(self, artifacts: Iterable[FileEntry]) -> None:
        """The server has these objects now: drop the spool's copies (reads fall back to it)."""
        from ..cas.tree import referenced_oids

        local = self._spool_objects()
        for oid in referenced_oids(artifacts):
            try:
                local.delete(oid)
            except (NotFound, OSError):
                pass

    def _slice(self, wid: str, start: int, end: int) -> bytes:
        with open(self.spool.path(wid), "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)

    def _warn_rejected(self, batch: RecordBatch, err: dict) -> None:
        print(f"cairn: warning: the server refused record {batch.seq} of run {batch.run_id}: "
              f"{err.get('message', err)} (kept in {self.spool.rejected_dir}; "
              "`cairn sync` lists what was refused)", file=sys.stderr)

    def _warn_left(self, wid: str) -> None:
        if wid not in self._warned:
            self._warned.add(wid)
            print(f"cairn: the server at {self.uri} is unreachable; the run's last records wait "
                  f"in {self.spool.root} and are sent when it is back (or run `cairn sync`)",
                  file=sys.stderr)

    # -- background delivery ---------------------------------------------
    def _kick(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._loop, name="cairn-spool-sender",
                                            daemon=True)
            self._sender.start()
        self._wake.set()

    def _loop(self) -> None:
        delay = 0.5
        last_adopt = 0.0
        while not self._closed:
            self._wake.wait(delay)
            self._wake.clear()
            ok = True
            for wid in list(self._backlog):
                lk = self._writer_lock(wid)
                if not lk.acquire(timeout=1.0):
                    continue
                try:
                    self._deliver(wid)
                except StoreUnavailable:
                    ok = False
                except CairnError as exc:  # e.g. 401: keep the records, say why
                    ok = False
                    print(f"cairn: cannot send spooled records to {self.uri}: {exc.message}",
                          file=sys.stderr)
                finally:
                    lk.release()
            if ok and time.monotonic() - last_adopt > _ADOPT_AFTER_S:
                last_adopt = time.monotonic()
                try:
                    self.sync(idle_for=_ADOPT_AFTER_S, skip=set(self._writer_locks))
                except CairnError as exc:  # e.g. 401: the sender thread must live on
                    print(f"cairn: cannot send spooled records to {self.uri}: {exc.message}",
                          file=sys.stderr)
            delay = 0.5 if ok else min(delay * 2, 5.0)
            if not self._backlog and ok:
                delay = 5.0

    def sync(self, idle_for: float = 0.0, skip: Iterable[str] = (), *,
             progress: bool | None = False) -> dict[str, int]:
        """Send every journal in this server's spool (``cairn sync``); returns counts.
        ``progress``: a bar on stderr, a step per journal (None: when it is a terminal)."""
        from ..progress import bar

        skip = set(skip)
        sent = left = 0
        wids = [w for w in self.spool.writer_ids(idle_for=idle_for) if w not in skip]
        with bar("sending spooled journals", len(wids), enabled=progress,
                 unit="journals") as advance:
            for wid in wids:
                if self._sync_one(wid):
                    sent += 1
                else:
                    left += 1
                advance(1)
        return {"writers_sent": sent, "writers_left": left}

    def _sync_one(self, wid: str) -> bool:
        """:meth:`sync` of one writer's journal: True if sent, False if it must wait (its
        writer is still at it, or the server is out of reach)."""
        try:
            with self.spool.lock(wid, blocking=False) as got:
                if not got:
                    return False
                finished = any(isinstance(e, jlib.Entry) and e.batch.status is not None
                               and e.batch.status.terminal for e in self.spool.entries(wid))
                if finished:
                    self._finished.add(wid)
                self._send_all(wid, None)
                if not self.spool.pending(wid) and self._journal_ended(wid):
                    self.spool.remove(wid)
                return True
        except StoreUnavailable:
            return False

    def _journal_ended(self, wid: str) -> bool:
        path = self.spool.path(wid)
        if not path.exists():
            return True
        last = None
        for item in jlib.read(path):
            if isinstance(item, jlib.Entry):
                last = item.batch
        return last is None or (last.status is not None and last.status.terminal)

    def pending_writers(self) -> int:
        return len([w for w in self.spool.writer_ids() if self.spool.pending(w)])

    def flush_spool(self, timeout: float | None = None) -> bool:
        """Try to send this process's backlog now; True when nothing is left."""
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        for wid in list(self._backlog):
            with self._writer_lock(wid):
                try:
                    self._deliver(wid, deadline=deadline)
                except StoreUnavailable:
                    return False
        return not self._backlog

    def heartbeat(self, run_ids: Sequence[str], when: int) -> None:
        if run_ids:
            self._request("POST", "/heartbeat", json={"run_ids": list(run_ids), "time": when})

    # -- reads -----------------------------------------------------------
    def _read_own_writes(self) -> None:
        if self._backlog:
            self.flush_spool(timeout=0.0)

    def get_run(self, run_id: str) -> Run:
        self._read_own_writes()
        return wire.run_from_json(self._json("GET", f"/runs/{_run_segment(run_id)}"))

    def search_runs(self, experiment_ids: Sequence[str] | None, filter: str = "",
                    order_by: Sequence[str] = (), max_results: int = 1000,
                    page_token: str | None = None,
                    lifecycle: str | None = "active") -> tuple[list[Run], str | None]:
        if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
            raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
        self._read_own_writes()
        body = {"experiment_ids": None if experiment_ids is None else [str(i) for i in experiment_ids],
                "filter": filter or "", "order_by": list(order_by or ()),
                "max_results": max_results, "page_token": page_token}
        if lifecycle != "active":  # what an older server answers without the field
            body["lifecycle"] = lifecycle or "all"
        d = self._json("POST", "/runs/search", json=body)
        return [wire.run_from_json(r) for r in d["runs"]], d.get("next_page_token")

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        self._read_own_writes()
        resp = self._request("GET", f"/runs/{_run_segment(run_id)}/metrics/history", params={"key": key},
                             headers={"accept": wire.SEGMENT_TYPE})
        s, t, v = seglib.decode(resp.content)
        return MetricHistory(key, s.copy(), t.copy(), v.copy())

    def get_metric_envelope(self, run_id: str, key: str, buckets: int,
                            step_min: int | None = None, step_max: int | None = None) -> dict:
        """A min/max envelope of one metric (see the server's history endpoint)."""
        params: dict[str, Any] = {"key": key, "buckets": buckets}
        if step_min is not None:
            params["step_min"] = step_min
        if step_max is not None:
            params["step_max"] = step_max
        return self._json("GET", f"/runs/{_run_segment(run_id)}/metrics/history", params=params)

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
        self._read_own_writes()
        d = self._json("GET", f"/runs/{_run_segment(run_id)}/artifacts")
        return [wire.entry_from_json(f) for f in d["files"]]

    # -- lifecycle -------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self._wake.set()
        with self._lock:
            self.spool.close()
        if self._client is not None:
            self._client.close()
            self._client = None


class _Refused(Exception):
    """The server refused a whole records request with a 4xx (a record in it is at fault)."""

    def __init__(self, error: CairnError) -> None:
        super().__init__(error.message)
        self.error = error


def _transient(exc: CairnError) -> bool:
    """An error that is no request's fault: a 5xx, a timeout, too many requests."""
    status = getattr(exc, "http_status", 500)
    return isinstance(exc, StoreUnavailable) or status >= 500 or status in (408, 429)


class _SpoolBackend:
    """Objects written to the local spool; reads fall back to the server."""

    def __init__(self, local: Backend, store: HttpStore) -> None:
        self.local = local
        self.store = store

    def __repr__(self) -> str:
        return f"SpoolBackend({self.store.uri})"

    def put(self, oid: str, data: bytes) -> None:
        self.local.put(oid, data)

    def get(self, oid: str) -> bytes:
        try:
            return self.local.get(oid)
        except NotFound:
            return self.store._request("GET", f"/objects/{oid}",
                                       headers={"accept": OBJECT_TYPE}).content

    def exists(self, oid: str) -> bool:
        return self.local.exists(oid)

    def iter_oids(self) -> Iterator[str]:
        return self.local.iter_oids()

    def delete(self, oid: str) -> None:
        self.local.delete(oid)

    def size(self, oid: str) -> int:
        try:
            return self.local.size(oid)
        except NotFound:
            return len(self.get(oid))


def _q(segment: str) -> str:
    import urllib.parse

    return urllib.parse.quote(str(segment), safe="")


def _run_segment(run_id: str) -> str:
    """``run_id`` as a path segment, or NotFound for a string no run can have as its id:
    the server would decode ``%2F`` and ``..`` into another route (a bare "no such
    endpoint"), where every other store answers that the run does not exist."""
    if not is_run_id(run_id):
        raise NotFound(f"run {run_id!r} does not exist")
    return run_id


_LIVE: "weakref.WeakSet[HttpStore]" = weakref.WeakSet()
# A forked child starts with no remote stores of its own (its parent sends its own spool).
os.register_at_fork(after_in_child=_LIVE.clear)


@atexit.register
def _drain_at_exit() -> None:
    for store in list(_LIVE):
        if store._backlog and not store._closed:
            if not store.flush_spool():
                n = len(store._backlog)
                print(f"cairn: {n} run writer(s) still have records in the spool at "
                      f"{store.spool.root}; they are sent by the next Cairn process that talks "
                      f"to {store.uri}, or by `cairn sync`", file=sys.stderr)
