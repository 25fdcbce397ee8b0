"""The explicit client: every read and write goes through here; the fluent API is a veneer.

A Client does no I/O when constructed.  Its writes are synchronous (durable in
the journal when the call returns); its reads first flush whatever this process
has buffered for the same store, so a process always reads its own writes.
"""

from __future__ import annotations

import functools
import getpass
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from . import clock, settings
from . import writer as _writer
from .entities import (
    LIFECYCLES, RUN_LIFECYCLE_TAG, RUN_NAME_TAG, Experiment, FileEntry, MetricHistory,
    RecordBatch, Run, RunStatus,
)
from .errors import AlreadyExists, InvalidArgument, NotFound, StoreUnavailable
from .store.validation import (
    check_experiment_name, check_key, check_metric_value, check_step, check_run_name, check_text,
    own_checks, param_value, scrub, tag_value, text_checked,
)

if TYPE_CHECKING:  # pragma: no cover
    from .store.base import Store

DEFAULT_EXPERIMENT = "Default"
NOTE_TAG = "cairn.note"


def default_user() -> str:
    return settings.USER.get() or _login_name()


@functools.lru_cache(maxsize=1)
def _login_name() -> str:
    # Once per process: the passwd lookup cost a tenth of creating a short run.
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


class RunPage(list):
    """A page of runs; ``token`` fetches the next page (None on the last)."""

    def __init__(self, runs: Iterable[Run], token: str | None) -> None:
        super().__init__(runs)
        self.token = token


# Every public method refuses strings that are not valid Unicode (a lone surrogate) at the
# call; the logging methods check their keys and values themselves (with messages that name
# the key), and the registry's and data sets' arguments are checked by those services.
@text_checked("metrics", "model", "input_example", "data", "target", "options")
class Client:
    """Reads and writes runs on one store as one user.

    ``uri`` picks the store (:func:`cairn.store.open_store`; default: the fluent API's
    tracking URI); or pass the ``store`` itself (what a server or service already holds).
    """

    def __init__(self, uri: str | None = None, user: str | None = None, *,
                 store: "Store | None" = None) -> None:
        self._uri = store.uri if uri is None and store is not None else uri
        self._user = user if user is None else check_text(user, "user")
        self._store = store
        self._writers: dict[str, list] = {}  # run_id -> [writer_id, seq]

    # -- plumbing --------------------------------------------------------
    @property
    def uri(self) -> str:
        if self._uri is None:
            from ._state import STATE

            return STATE.tracking_uri()
        return self._uri

    @property
    def user(self) -> str:
        return self._user or default_user()

    @property
    def store(self) -> "Store":
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.uri)
        return self._store

    def _sync(self) -> None:
        """Read-your-writes: flush this process's buffered records for this store."""
        _writer.FLUSHER.flush_all(self.store)

    def _write(self, run_id: str, **fields: Any) -> None:
        # A run this process is recording through the fluent API may still be only in
        # its writer's buffer (its creation included): deliver that first, so that this
        # write finds the run and is checked against its params and status.
        _writer.FLUSHER.flush_run(self.store, run_id)
        slot = self._writers.get(run_id)
        if slot is None:
            slot = self._writers[run_id] = [clock.new_writer_id(), 0]
        slot[1] += 1
        batch = _writer._anonymised(RecordBatch(run_id=run_id, writer_id=slot[0], seq=slot[1],
                                                time=clock.now_ms(), **fields))
        try:
            self.store.write(batch)
        except Exception:
            slot[1] -= 1  # the seq was not used; keep the writer's sequence gap-free
            raise

    # -- experiments -----------------------------------------------------
    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment:
        return self.store.create_experiment(name, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment:
        """Give an experiment a new (unused) name; its runs stay where they are."""
        check_experiment_name(name)
        return self._experiment_changes().rename_experiment(str(experiment_id), name)

    def delete_experiment(self, experiment_id: str) -> Experiment:
        """Move an experiment and its runs to the trash: hidden from lists and searches,
        kept on disk, undone by :meth:`restore_experiment` until the trash is emptied
        (``cairn trash empty``, or ``cairn gc`` after ``CAIRN_TRASH_DAYS``).  When and by
        whom is kept in its tags ``cairn.deleted_at`` and ``cairn.deleted_by``."""
        return self._experiment_lifecycle(experiment_id, "deleted")

    def restore_experiment(self, experiment_id: str) -> Experiment:
        """Undo :meth:`delete_experiment`: the experiment and its runs are active again."""
        return self._experiment_lifecycle(experiment_id, "active")

    def _experiment_lifecycle(self, experiment_id: str, lifecycle: str) -> Experiment:
        self._experiment_changes()
        return _lifecycle("trash").set_experiment_lifecycle(self.store, str(experiment_id), lifecycle,
                                                 self.user, clock.now_ms())

    def _experiment_changes(self) -> Any:
        from .store.base import ExperimentChanges

        store = self.store
        if not isinstance(store, ExperimentChanges):
            raise InvalidArgument(f"the store {store.uri} cannot rename or delete experiments")
        return store

    def get_or_create_experiment(self, name: str) -> Experiment:
        try:
            exp = self.store.get_experiment_by_name(name)
            if exp is not None:
                return exp
            try:
                if name == DEFAULT_EXPERIMENT:
                    return self.store.create_experiment(name, experiment_id="0")
                return self.store.create_experiment(name)
            except AlreadyExists:  # another process created it a moment ago
                exp = self.store.get_experiment_by_name(name)
                if exp is None:
                    raise
                return exp
        except StoreUnavailable:
            # A run starts while its server is down, as its logging goes on through an
            # outage: the experiment is settled by name when the spool is sent.
            from .store.base import OfflineExperiments

            if isinstance(self.store, OfflineExperiments):
                return self.store.offline_experiment(check_text(name, "experiment name"))
            raise

    def _experiment_ids(self, experiments: Any) -> list[str] | None:
        if experiments is None:
            return None
        if isinstance(experiments, (str, Experiment)):
            experiments = [experiments]
        ids = []
        for item in experiments:
            if isinstance(item, Experiment):
                ids.append(item.id)
                continue
            exp = self.store.get_experiment_by_name(str(item))
            if exp is None:
                try:
                    exp = self.store.get_experiment(str(item))
                except NotFound:
                    raise NotFound(f"no experiment named or with id {item!r}") from None
            ids.append(exp.id)
        return ids

    # -- runs ------------------------------------------------------------
    @own_checks
    def create_run(self, experiment_id: str | None = None, name: str | None = None,
                   params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                   parent_id: str | None = None, start_time: int | None = None) -> Run:
        """Create a run synchronously and return it (status RUNNING)."""
        exp = (self.get_or_create_experiment(DEFAULT_EXPERIMENT) if experiment_id is None
               else self.get_experiment(experiment_id))
        run_id = clock.new_run_id()
        self._write(run_id, create=self._creation(exp, run_id, name, parent_id, start_time),
                    params={check_key(k, "param"): param_value(k, v) for k, v in (params or {}).items()},
                    tags={check_key(k, "tag"): tag_value(k, v) for k, v in (tags or {}).items()})
        return self.store.get_run(run_id)

    def _creation(self, exp: Experiment, run_id: str, name: str | None, parent_id: str | None,
                 start_time: int | None) -> dict[str, Any]:
        from .names import random_name

        refuse_deleted(exp)
        if name is not None:
            check_text(name, "run name")
        if parent_id is not None:
            check_text(parent_id, "parent run id")
        return {"experiment_id": exp.id, "experiment_name": exp.name,
                "experiment_created_at": exp.created_at, "name": name or random_name(run_id),
                "parent_id": parent_id, "user": scrub(self.user),
                "start_time": clock.now_ms() if start_time is None else start_time}

    def get_run(self, run_id: str) -> Run:
        self._check_run_id(run_id)
        self._sync()
        return self.store.get_run(run_id)

    def search_runs(self, experiments: Any = None, filter: str = "", order_by: Sequence[str] = (),
                    max_results: int = 1000, page_token: str | None = None,
                    lifecycle: str | None = "active") -> RunPage:
        """A page of runs; ``lifecycle``: "active" (the default), "deleted" (runs deleted
        with :meth:`delete_run`, or with their experiment) or None (both)."""
        if isinstance(order_by, str):
            order_by = [order_by]
        self._sync()
        more: dict[str, Any] = {} if lifecycle == "active" else {"lifecycle": lifecycle}
        runs, token = self.store.search_runs(self._experiment_ids(experiments), filter, order_by,
                                             max_results, page_token, **more)
        return RunPage(runs, token)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        self._check_run_id(run_id)
        self._sync()
        return self.store.get_metric_history(run_id, key)

    @own_checks
    def log_batch(self, run_id: str, metrics: Sequence[Any] = (), params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        """Log many points at once: metrics as (key, value, step, timestamp_ms) tuples."""
        self._check_run_id(run_id)
        series = _group_metrics(metrics)
        self._write(run_id, metrics=series,
                    params={check_key(k, "param"): param_value(k, v) for k, v in (params or {}).items()},
                    tags={check_key(k, "tag"): tag_value(k, v) for k, v in (tags or {}).items()})

    @own_checks
    def log_metric(self, run_id: str, key: str, value: Any, step: int = 0,
                   timestamp: int | None = None) -> None:
        self.log_batch(run_id, [(key, value, step, clock.now_ms() if timestamp is None else timestamp)])

    @own_checks
    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    @own_checks
    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags={key: value})

    @own_checks
    def delete_tag(self, run_id: str, key: str) -> None:
        self._check_run_id(run_id)
        self._write(run_id, deleted_tags=(check_key(key, "tag"),))

    @own_checks
    def set_note(self, run_id: str, text: str) -> None:
        self.set_tag(run_id, NOTE_TAG, text)

    def rename_run(self, run_id: str, name: str) -> Run:
        """Give a run a new name (also a finished run).  Journalled as the reserved tag
        ``cairn.run.name``, so the name survives ``cairn reindex`` and ``cairn sync``."""
        self._check_run_id(run_id)
        check_run_name(name)
        run = self.get_run(run_id)  # NotFound for an unknown id, before anything is written
        # MLflow's tag of an older rename would otherwise still name the run there.
        old = ("mlflow.runName",) if "mlflow.runName" in run.tags else ()
        self._write(run_id, tags={RUN_NAME_TAG: name}, deleted_tags=old)
        return self.get_run(run_id)

    def delete_run(self, run_id: str, force: bool = False) -> Run:
        """Move a run to the trash: hidden from searches and lists (``lifecycle``
        "deleted"), kept on disk, undone by :meth:`restore_run` until the trash is emptied.

        A run that is the source run of a live registered model version is refused
        (:class:`~cairn.errors.Conflict`, naming the versions) unless ``force``: the
        version's lineage names it.  Even forced, emptying the trash keeps such a run
        while the version lives.  (MLflow's ``delete_run`` route does not ask.)"""
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be True or False, got {force!r}")
        if not force:
            used = self._live_versions_of(run_id)
            if used:
                from .errors import Conflict

                raise Conflict(f"run {run_id} is the source run of registered model "
                               f"version{'s' if len(used) > 1 else ''} {', '.join(used)}; "
                               "delete those versions first, or force it (`cairn runs delete "
                               "--force`, force=True)", run_id=run_id, model_versions=used)
        return self._set_lifecycle(run_id, "deleted")

    def _live_versions_of(self, run_id: str) -> list[str]:
        """``name/version`` of the live model versions registered from ``run_id``."""
        self._check_run_id(run_id)
        try:
            versions = self._registry.model_versions_of_run(run_id)
        except InvalidArgument:  # a store without a registry
            return []
        return [f"{mv.name}/{mv.version}" for mv in versions]

    def restore_run(self, run_id: str) -> Run:
        """Undo :meth:`delete_run`."""
        return self._set_lifecycle(run_id, "active")

    def _set_lifecycle(self, run_id: str, lifecycle: str) -> Run:
        assert lifecycle in LIFECYCLES
        self._check_run_id(run_id)
        self.get_run(run_id)  # NotFound for an unknown id
        self._write(run_id, tags={RUN_LIFECYCLE_TAG: lifecycle})
        return self.get_run(run_id)

    def set_terminated(self, run_id: str, status: str | RunStatus = RunStatus.FINISHED,
                       end_time: int | None = None) -> None:
        self._check_run_id(run_id)
        try:
            st = RunStatus(status)
        except ValueError:
            raise InvalidArgument(f"unknown run status {status!r}; use one of "
                                  f"{[s.value for s in RunStatus]}") from None
        if not st.terminal:
            raise InvalidArgument("set_terminated needs a terminal status: FINISHED, FAILED or KILLED")
        self._write(run_id, status=st, end_time=clock.now_ms() if end_time is None else end_time)

    # -- artifacts -------------------------------------------------------
    def store_artifacts(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> list[FileEntry]:
        """Put a file or directory into the object store; returns its entries (not yet logged)."""
        src = Path(local_path)
        if not src.exists():
            raise NotFound(f"artifact source {str(src)!r} does not exist")
        prefix = _clean_artifact_path(artifact_path) if artifact_path else ""
        try:
            if src.is_dir():
                return self.store.objects.put_dir(src, prefix)
            rel = f"{prefix}/{src.name}" if prefix else src.name
            return [self.store.objects.put_file(src, rel)]
        except StoreUnavailable as exc:
            # A full disk (StorageFull) or an I/O error writing an object: name the artifact
            # too.  Nothing was logged; objects already complete stay (a retry reuses them).
            raise type(exc)(f"artifact {str(src)!r} was not stored: {exc.message}",
                            **{**exc.details, "artifact": str(src)}) from exc

    def log_artifact(self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._check_run_id(run_id)
        if Path(local_path).is_dir():
            raise InvalidArgument(f"{local_path} is a directory; use log_artifacts")
        self._write(run_id, artifacts=tuple(self.store_artifacts(local_path, artifact_path)))

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._check_run_id(run_id)
        if not Path(local_dir).is_dir():
            raise InvalidArgument(f"{local_dir} is not a directory; use log_artifact")
        self._write(run_id, artifacts=tuple(self.store_artifacts(local_dir, artifact_path)))

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileEntry]:
        self._check_run_id(run_id)
        self._sync()
        entries = self.store.list_artifacts(run_id)
        prefix = path.strip("/")
        if not prefix:
            return entries
        return [e for e in entries if e.path == prefix or e.path.startswith(prefix + "/")]

    def download_artifacts(self, run_id: str, path: str = "", dst: str | os.PathLike = ".", *,
                           progress: bool | None = False) -> Path:
        """Restore artifacts under ``path`` into ``dst`` (keeping their paths), verified.

        Like MLflow: files land at ``dst/<artifact path>`` and the local path of
        ``path`` is returned.  ``progress``: a bar on stderr (None: when it is a terminal).
        """
        from .progress import bar

        entries = self.list_artifacts(run_id, path)
        if not entries:
            raise NotFound(f"run {run_id} has no artifact at {path!r}")
        dst = Path(dst)
        with bar(f"downloading {len(entries)} file(s)", sum(e.size for e in entries),
                 enabled=progress) as advance:
            for e in entries:
                try:
                    self.store.objects.checkout(e, dst / e.path)
                except NotFound as exc:  # collected after the run's artifact TTL passed?
                    why = _lifecycle("retention").expiry_message(run_id, self.get_run(run_id).tags)
                    if why is None:
                        raise
                    raise NotFound(f"{e.path}: {why}", run_id=run_id, path=e.path,
                                   expired=True) from exc
                advance(e.size)
        prefix = path.strip("/")
        return dst / prefix if prefix else dst

    def set_artifacts_ttl(self, run_id: str, days: int | None) -> int | None:
        """Make a run's artifacts expire ``days`` after it ended (W&B's artifact TTL; None
        removes the run's own TTL); the expiry, epoch ms (see :mod:`cairn.lifecycle.retention`)."""
        self._check_run_id(run_id)
        return _lifecycle("retention").set_artifacts_ttl(self.store, run_id, days,  # type: ignore[no-any-return]
                                                         actor=self.user)

    def verify_artifacts(self, run_id: str | None = None, *, progress: bool | None = False):
        """Re-hash stored objects (all, or a run's) and report corruption; ``progress``: a
        bar on stderr (None: when it is a terminal)."""
        if run_id is None:
            return self.store.objects.verify(progress=progress)
        oids: list[str] = []
        for e in self.list_artifacts(run_id):
            if e.chunks:
                oids.extend(c[0] for c in e.chunks)
            else:
                oids.append(e.digest)
        return self.store.objects.verify(oids, progress=progress)

    # -- model registry: thin delegation to cairn.registry (imported on first use) ------
    @property
    def _registry(self):
        reg = self.__dict__.get("_registry_impl")
        if reg is None:
            from .services import registry_for

            reg = self.__dict__["_registry_impl"] = registry_for(self)
        return reg

    def register_model(self, name: str, model: Any, **options: Any):
        """Register a new version of ``name`` (see :meth:`cairn.registry.Registry.register_model`)."""
        return self._registry.register_model(name, model, **options)

    def create_registered_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None):
        return self._registry.create_registered_model(name, description, tags)

    def get_registered_model(self, name: str):
        return self._registry.get_registered_model(name)

    def list_registered_models(self):
        return self._registry.list_registered_models()

    def get_model_version(self, name: str, version: str):
        return self._registry.get_model_version(name, version)

    def list_model_versions(self, name: str, stage: str | None = None):
        return self._registry.list_model_versions(name, stage)

    def get_latest_model_version(self, name: str):
        return self._registry.latest_model_version(name)

    def resolve_model(self, ref: str):
        """The version ``name/1.3.0``, ``name@production``, ``name@champion`` or ``name@latest`` names."""
        return self._registry.resolve(ref)

    def load_model(self, ref: Any, **options: Any):
        return self._registry.load_model(ref, **options)

    def download_model(self, ref: Any, dst: str | os.PathLike | None = None, **options: Any) -> Path:
        return self._registry.download_model(ref, dst, **options)

    def verify_model(self, name: str, version: str | None = None, trusted_keys: Any = None, *,
                     progress: bool | None = False):
        return self._registry.verify_model_versions(name, version, trusted_keys, progress)

    def diff_model_versions(self, name: str, a: str, b: str) -> dict[str, Any]:
        return self._registry.diff_model_versions(name, a, b)

    def set_stage_policy(self, name: str, stage: str, approvals: int = 0,
                         approvers: Sequence[str] | None = None, exclusive: bool | None = None):
        return self._registry.set_stage_policy(name, stage, approvals, approvers, exclusive)

    def get_stage_policies(self, name: str):
        return self._registry.get_stage_policies(name)

    def transition_model_version_stage(self, name: str, version: str, stage: str, comment: str = ""):
        """Move a version to a stage directly (refused when the stage's policy needs approvals)."""
        return self._registry.transition_stage(name, version, stage, comment)

    def request_transition(self, name: str, version: str, stage: str, comment: str = ""):
        return self._registry.request_transition(name, version, stage, comment)

    def approve(self, request_id: str, comment: str = ""):
        return self._registry.approve(request_id, comment)

    def reject(self, request_id: str, comment: str = ""):
        return self._registry.reject(request_id, comment)

    def get_transition_request(self, request_id: str):
        return self._registry.get_transition_request(request_id)

    def list_transition_requests(self, name: str | None = None, status: str | None = "pending"):
        return self._registry.list_transition_requests(name, status)

    def set_alias(self, name: str, alias: str, version: str):
        return self._registry.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._registry.delete_alias(name, alias)

    def rollback(self, name: str, stage: str = "production", to: str | None = None, reason: str = ""):
        return self._registry.rollback(name, stage, to, reason)

    def rename_registered_model(self, name: str, new_name: str):
        """Rename a model with its versions, aliases and history (audited)."""
        return self._registry.rename_registered_model(name, new_name)

    def delete_registered_model(self, name: str, force: bool = False):
        """Delete a model and its versions; one in Production or with an alias only with ``force``."""
        return self._registry.delete_registered_model(name, force)

    def delete_model_version(self, name: str, version: str, force: bool = False):
        """Move a version to the trash (never numbered again); one in Production or with an
        alias only with ``force``.  :meth:`restore_model_version` brings it back."""
        return self._registry.delete_model_version(name, version, force)

    def restore_model_version(self, name: str, version: str):
        """Bring a version back from the trash (Archived if it was deleted from Staging or
        Production; without aliases)."""
        return self._registry.restore_model_version(name, version)

    # -- the trash ---------------------------------------------------------
    def delete_dataset_version(self, ref: str, force: bool = False):
        """Move data set version ``ref`` (``name@3``) to the trash (see
        :meth:`cairn.data.Datasets.delete_version`)."""
        return self.data.delete_version(ref, force)

    def restore_dataset_version(self, ref: str):
        """Bring data set version ``ref`` back from the trash."""
        return self.data.restore_version(ref)

    def list_trash(self) -> list[Any]:
        """What is in the trash of this client's store: a list of
        :class:`cairn.lifecycle.trash.TrashItem` (through a server: server admins only)."""
        from .store.base import RemoteServer

        trash = _lifecycle("trash")
        store = self.store
        if isinstance(store, RemoteServer):
            return [trash.TrashItem(**d) for d in store.call("GET", "/trash")["items"]]
        return trash.list_trash(store)

    def empty_trash(self, older_than_days: float | None = None, *, dry_run: bool = False,
                    progress: bool | None = False):
        """Purge for good what has been in the trash at least ``older_than_days`` (None:
        everything); ``dry_run``: only report; ``progress``: a bar on stderr (None: on a
        terminal).  A :class:`cairn.lifecycle.trash.PurgeReport`; through a server: server
        admins only."""
        from .store.base import RemoteServer

        trash = _lifecycle("trash")
        if older_than_days is not None and (
                isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float))
                or not 0 <= older_than_days <= 1e6):
            raise InvalidArgument(f"older_than_days must be None or a number of days from 0 to "
                                  f"1000000, got {older_than_days!r}")
        if not isinstance(dry_run, bool):
            raise InvalidArgument(f"dry_run must be True or False, got {dry_run!r}")
        store = self.store
        if isinstance(store, RemoteServer):
            d = store.call("POST", "/trash/empty", json={"older_than_days": older_than_days,
                                                          "dry_run": dry_run})
            return trash.PurgeReport(
                d["dry_run"], d["now_ms"], d["older_than_ms"],
                [trash.TrashItem(**i) for i in d["purged"]],
                [(trash.TrashItem(**{k: v for k, v in i.items() if k != "reason"}), i["reason"])
                 for i in d["kept"]], d.get("runs_in_experiments", 0))
        older = None if older_than_days is None else trash.days_ms(older_than_days)
        return trash.purge(store, older_than_ms=older, now_ms=clock.now_ms(), dry_run=dry_run,
                           actor=self.user, progress=progress)

    def model_version_at(self, name: str, stage: str, when: Any):
        return self._registry.model_version_at(name, stage, when)

    def model_history(self, name: str, version: str | None = None):
        return self._registry.model_history(name, version)

    def record_deployment(self, name: str, version: str, event: str, *, deployment: str,
                          arm: str = "primary", reason: str = "", previous: str | None = None):
        """Record a deployment's start, switch, rollback or stop (see cairn.registry.deployments)."""
        return self._registry.record_deployment(name, version, event, deployment=deployment,
                                                arm=arm, reason=reason, previous=previous)

    def deployments(self, name: str, deployment: str | None = None):
        """The deployment events of model ``name`` (of one deployment), oldest first."""
        return self._registry.deployments(name, deployment)

    def set_naming_policy(self, template: str | None = None, regex: str | None = None):
        return self._registry.set_naming_policy(template, regex)

    def get_naming_policy(self):
        return self._registry.get_naming_policy()

    def model_versions_of_run(self, run_id: str):
        """The model versions registered from run ``run_id``."""
        return self._registry.model_versions_of_run(run_id)

    def create_signing_key(self, name: str = "default", directory: str | os.PathLike | None = None):
        """Make an Ed25519 key pair in the keys directory and trust it here; new versions get signed."""
        return self._registry.create_signing_key(name, directory)

    def trust_signing_key(self, public_key_pem: str, name: str):
        return self._registry.trust_key(public_key_pem, name)

    def list_signing_keys(self, include_revoked: bool = False):
        return self._registry.list_keys(include_revoked)

    def revoke_signing_key(self, key_id: str) -> None:
        self._registry.revoke_key(key_id)

    def audit_log(self, target: str | None = None, action: str | None = None,
                  actor: str | None = None, limit: int | None = None):
        return self._registry.audit_log(target, action, actor, limit)

    def verify_audit_log(self):
        return self._registry.verify_audit_log()

    # -- data sets and lineage: thin delegation to cairn.data / cairn.lineage --------
    @property
    def data(self):
        """Data set versioning on this client's store (:class:`cairn.data.Datasets`)."""
        ds = self.__dict__.get("_datasets_impl")
        if ds is None:
            from .services import datasets_for

            ds = self.__dict__["_datasets_impl"] = datasets_for(self)
        return ds

    def log_input(self, run_id: str, dataset: str, role: str = "input"):
        """Record that run ``run_id`` reads data set version ``dataset`` ("name@3") as ``role``."""
        self._check_run_id(run_id)
        return self.data.log_input(run_id, dataset, role)

    def lineage(self, ref: str, direction: str = "upstream", depth: int | None = None):
        """The lineage graph around ``ref`` (a data set version, run or model version)."""
        from .services import lineage_for

        return lineage_for(self).graph(ref, direction=direction, depth=depth)

    # -- helpers ---------------------------------------------------------
    @staticmethod
    def _check_run_id(run_id: Any) -> None:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidArgument(f"run id must be a non-empty string, got {run_id!r}")
        check_text(run_id, f"run id {run_id!r}")


def _clean_artifact_path(path: str) -> str:
    check_text(str(path), "artifact path")
    p = PurePosixPath(str(path).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise InvalidArgument(f"artifact path {path!r} must be relative and stay inside the run")
    return str(p).strip("/").removeprefix(".").strip("/")


def _group_metrics(metrics: Sequence[Any]) -> dict[str, tuple[Any, Any, Any]]:
    """(key, value, step, timestamp) tuples -> key -> (steps, timestamps, values), validated.

    Batches of plain numbers are transposed and checked by numpy in C; anything unusual
    (strings, None, Metric objects) takes the per-item path, which names the bad item.
    """
    if not metrics:
        return {}
    try:
        keys, values, steps, stamps = zip(*metrics)
    except (TypeError, ValueError):
        return _group_slow(metrics)
    import numpy as np

    v = np.asarray(values)
    s = np.asarray(steps)
    t = np.asarray(stamps)
    if v.dtype.kind not in "fiu" or s.dtype.kind not in "iu" or t.dtype.kind not in "iu" \
            or v.ndim != 1:
        return _group_slow(metrics)
    v = v.astype(np.float64, copy=False)
    s = s.astype(np.int64, copy=False)
    t = t.astype(np.int64, copy=False)
    first = keys[0]
    if keys.count(first) == len(keys):
        check_key(first, "metric")
        return {first: (s, t, v)}
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out = {}
    for k, idx in groups.items():
        check_key(k, "metric")
        ix = np.asarray(idx)
        out[k] = (s[ix], t[ix], v[ix])
    return out


def _group_slow(metrics: Sequence[Any]) -> dict[str, tuple[list, list, list]]:
    out: dict[str, tuple[list, list, list]] = {}
    for item in metrics:
        try:
            key, value, step, ts = item
        except (TypeError, ValueError):
            key = getattr(item, "key", None)
            if key is None:
                raise InvalidArgument(f"each metric must be (key, value, step, timestamp_ms), got {item!r}") from None
            value, step, ts = item.value, item.step, item.timestamp
        series = out.get(key)
        if series is None:
            check_key(key, "metric")
            series = out[key] = ([], [], [])
        series[0].append(step if type(step) is int else check_step(key, step))
        series[1].append(ts if type(ts) is int else check_step(key, ts))
        series[2].append(value if type(value) is float else check_metric_value(key, value))
    return out


def _lifecycle(module: str) -> Any:
    """``cairn.lifecycle.<module>`` (trash, retention): whole-store work above the client,
    reached by name, as the services table reaches the registry and data sets (see
    :mod:`cairn.services`)."""
    import importlib

    return importlib.import_module(f"cairn.lifecycle.{module}")


def refuse_deleted(exp: Experiment) -> None:
    """A deleted experiment takes no new runs (MLflow refuses them too): it is in the trash,
    and a run logged there would be hidden from the user who logged it."""
    if getattr(exp, "lifecycle", "active") == "deleted":
        raise InvalidArgument(f"experiment {exp.name!r} ({exp.id}) is deleted; restore it "
                              f"(cairn experiments restore {exp.id}) before adding runs to it, "
                              "or use another experiment", experiment_id=exp.id)
