"""The fluent API for training code: ``cairn.start_run()``, ``cairn.log_metric()`` ...

A thin veneer over :class:`Client` and :class:`RunWriter`.  What it remembers
between calls (tracking URI, experiment, clients, the active runs) lives in
:data:`cairn._state.STATE`: the active run in a ContextVar; threads that did not
start a run see the most recent run started in the process, so data-loader and
callback threads can log too.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, cast

from . import clock, settings
from . import writer as _writer
from ._state import STATE
from .client import DEFAULT_EXPERIMENT, Client
from .entities import Experiment, Run, RunStatus
from .errors import (
    DISK_ERRNOS, CairnError, InvalidArgument, NoActiveRun, StoreUnavailable, from_os_error,
)
from .store.validation import check_text, scrub


#: Set by ``cairn reproduce`` in the process it re-runs: every run of that process goes to
#: this throwaway store, whatever the script asks for (see docs/reproduce.md).
REPRODUCE_STORE_VAR = "CAIRN_REPRODUCE_STORE"


def set_tracking_uri(uri: str | os.PathLike) -> None:
    """Where runs go: a directory (the local store) or, later, a server URL."""
    if os.environ.get(REPRODUCE_STORE_VAR):
        return  # a rerun by `cairn reproduce`: its runs stay in the throwaway store
    STATE.set_tracking_uri(os.fspath(uri))


def get_tracking_uri() -> str:
    return STATE.tracking_uri()


def _client() -> Client:
    uri = get_tracking_uri()
    client = STATE.clients.get(uri)
    if client is None:
        client = STATE.clients[uri] = Client(uri)
    return client


def set_experiment(name: str) -> Experiment:
    """Make ``name`` the experiment of new runs, creating it if missing."""
    exp = _client().get_or_create_experiment(name)
    STATE.experiment, STATE.experiment_name = exp, name
    return exp


def _current_experiment(name: str | None) -> Experiment:
    if name is not None:
        return _client().get_or_create_experiment(name)
    if STATE.experiment is None:
        STATE.experiment = _client().get_or_create_experiment(STATE.experiment_name or DEFAULT_EXPERIMENT)
    return STATE.experiment


class ActiveRun:
    """A run being recorded by this process; a context manager that ends it."""

    def __init__(self, client: Client, run_id: str, name: str, experiment: Experiment,
                 writer: _writer.RunWriter, parent: "ActiveRun | None") -> None:
        self.client = client
        self.id = run_id
        self.name = name
        self.experiment = experiment
        self.experiment_id = experiment.id
        self.parent = parent
        self._writer = writer
        self._token: contextvars.Token | None = None
        self._sampler = None  # system metrics (cairn.sysmetrics), when on for this run

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id} experiment={self.experiment.name!r}>"

    def _activate(self, sample_system: bool) -> None:
        """Make this run the context's active one; start sampling system metrics if asked."""
        self._token = STATE.push(self)
        _writer.FLUSHER.register(self._writer)
        _install_signal_handlers()
        if sample_system:
            from . import sysmetrics

            self._sampler = sysmetrics.start_sampler(self)

    # The same calls as the module-level functions, bound to this run.
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._writer.log_metrics(metrics, step)

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
        self._writer.log_metric(key, value, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._writer.log_metrics(metrics, step)

    def log_param(self, key: str, value: Any) -> None:
        self._writer.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._writer.log_params(params)

    def set_tag(self, key: str, value: Any) -> None:
        self._writer.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._writer.set_tags(tags)

    def get(self) -> Run:
        """The run as stored now (flushes first)."""
        return self.client.get_run(self.id)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        _end(self, RunStatus(status))

    def _detach(self) -> None:
        """Stop recording without ending the run (``cairn._state.reset()``): flush what was
        logged, stop the background work; the run shows as KILLED once its heartbeat is stale."""
        if self._sampler is not None:
            self._sampler.stop()
        try:
            self._writer.flush()
        finally:
            _writer.FLUSHER.unregister(self._writer)
            STATE.remove(self, self._token)

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        try:
            _end(self, status)
        except CairnError as end_exc:
            if exc is None:
                raise
            # The block's own error (often the same full disk) is what the caller must see;
            # the end record is kept and retried (see _end), which the note says.
            exc.add_note(f"cairn: run {self.id} could not be marked {status.value} yet: "
                         f"{end_exc}")


def start_run(name: str | None = None, experiment: str | None = None,
              params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
              nested: bool = False, system_metrics: bool | None = None) -> ActiveRun:
    """Start recording a run; use it as a context manager so its status is always right.

    ``system_metrics=True`` samples CPU, memory, disk, network and GPUs as ``system/...``
    metrics in the background (see ``cairn.sysmetrics``); None leaves it to the default,
    which ``cairn.autolog()`` turns on for top-level runs.
    """
    parent = active_run()
    if parent is not None and not nested:
        raise InvalidArgument(f"run {parent.name} ({parent.id}) is already active; end it first "
                              "or pass nested=True to start a child run")
    from . import sysmetrics as _sysmetrics

    sample_system = _sysmetrics.wanted(system_metrics, nested=parent is not None)
    if sample_system:
        _sysmetrics.require()
    client = _client()
    exp = _current_experiment(experiment)
    if exp.lifecycle == "deleted":  # as it was when set: it may have been restored since
        exp = client.get_experiment(exp.id)
        if STATE.experiment is not None and STATE.experiment.id == exp.id:
            STATE.experiment = exp
    run_id = clock.new_run_id()
    env_future = None
    if settings.CAPTURE_ENV.get():
        from .environment import capture_environment_async

        env_future = capture_environment_async(shared=True)
    create = client._creation(exp, run_id, name, parent.id if parent else None, None)
    w = _writer.RunWriter(client.store, run_id, create, env_future)
    if params:
        w.log_params(params)
    if tags:
        w.set_tags(tags)
    run = ActiveRun(client, run_id, create["name"], exp, w, parent)
    run._activate(sample_system)
    return run


def _end(run: ActiveRun, status: RunStatus) -> None:
    w = run._writer
    if w.finished:
        return
    if run._sampler is not None:
        run._sampler.stop()  # its last sample goes in before the run ends
    w.end(status)
    try:
        w.flush()
    except StoreUnavailable:
        # The end record could not be written (a full disk, a server out of reach). The
        # writer keeps it, with its sequence number, and stays with the flusher, which
        # retries it every flush interval, at each cairn.flush() and at exit: once there is
        # room again readers see the run FAILED/FINISHED/KILLED.  Should the process end
        # first, the run's heartbeat has stopped with its last write, so readers see it
        # KILLED once heartbeat_timeout has passed; never RUNNING for good.
        STATE.remove(run, run._token)
        raise
    except BaseException:
        _writer.FLUSHER.unregister(w)
        STATE.remove(run, run._token)
        raise
    _writer.FLUSHER.unregister(w)
    STATE.remove(run, run._token)


def active_run() -> ActiveRun | None:
    return cast("ActiveRun | None", STATE.current())  # only ActiveRuns are pushed


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    run = active_run()
    if run is not None:
        _end(run, RunStatus(status))


def _require_run(what: str) -> ActiveRun:
    run = active_run()
    if run is None:
        raise NoActiveRun(f"cairn.{what}() needs an active run: call it inside "
                          "`with cairn.start_run():`")
    return run


def log_metric(key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
    run = active_run()
    if run is None:
        _require_run("log_metric")
    run._writer.log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    _require_run("log_metrics")._writer.log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    _require_run("log_param")._writer.log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    _require_run("log_params")._writer.log_params(params)


def set_tag(key: str, value: Any) -> None:
    _require_run("set_tag")._writer.set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_run("set_tags")._writer.set_tags(tags)


def log_artifact(local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
    run = _require_run("log_artifact")
    if Path(local_path).is_dir():
        raise InvalidArgument(f"{local_path} is a directory; use log_artifacts")
    run._writer.add_artifacts(run.client.store_artifacts(local_path, artifact_path))


def log_artifacts(local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
    run = _require_run("log_artifacts")
    if not Path(local_dir).is_dir():
        raise InvalidArgument(f"{local_dir} is not a directory; use log_artifact")
    run._writer.add_artifacts(run.client.store_artifacts(local_dir, artifact_path))


def _log_generated(what: str, artifact_file: str, write) -> None:
    run = _require_run(what)
    rel = Path(str(artifact_file))
    with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:
        path = Path(tmp) / rel.name
        try:
            write(path)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            # The temporary directory's disk (TMPDIR) is full or failing.
            raise from_os_error(exc, f"cairn.{what}() could not write the temporary file",
                                path, "free some space there (or point TMPDIR elsewhere) and "
                                "try again") from exc
        parent = rel.parent.as_posix()
        run._writer.add_artifacts(run.client.store_artifacts(path, None if parent == "." else parent))


def log_text(text: str, artifact_file: str) -> None:
    """Store ``text`` as the artifact ``artifact_file`` (e.g. "notes/summary.txt")."""
    if not isinstance(text, str):
        raise InvalidArgument(f"log_text needs a str, got {type(text).__name__}")
    check_text(text, "log_text text")
    _log_generated("log_text", artifact_file, lambda p: p.write_text(text, encoding="utf-8"))


def log_dict(data: Any, artifact_file: str) -> None:
    """Store a dict as JSON (or YAML for .yaml/.yml files, when PyYAML is installed)."""

    def write(p: Path) -> None:
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InvalidArgument("writing YAML needs PyYAML: pip install pyyaml") from None
            p.write_text(yaml.safe_dump(data, sort_keys=False))
        else:
            try:
                p.write_text(json.dumps(data, indent=2, default=str))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"log_dict could not serialise the data: {exc}") from None

    _log_generated("log_dict", artifact_file, write)


def log_figure(figure: Any, artifact_file: str) -> None:
    """Store a matplotlib figure (savefig) or plotly figure (write_image/write_html)."""

    def write(p: Path) -> None:
        if hasattr(figure, "savefig"):
            figure.savefig(p)
        elif p.suffix == ".html" and hasattr(figure, "write_html"):
            figure.write_html(str(p))
        elif hasattr(figure, "write_image"):
            figure.write_image(str(p))
        else:
            raise InvalidArgument(f"log_figure needs a matplotlib or plotly figure, got "
                                  f"{type(figure).__name__}")

    _log_generated("log_figure", artifact_file, write)


def log_model(model: Any, name: str, *, input_example: Any = None, **options: Any):
    """Register ``model`` as a new version of ``name`` and return the :class:`ModelVersion`.

    Inside a run the version records the run (params, metrics, data set inputs, code
    commit, environment) and its files appear among the run's artifacts.  Options
    are those of :meth:`Client.register_model` (``version=``, ``bump=``, ``parent=``,
    ``flavor=``, ``datasets=``, ``torchscript=``, ``init_kwargs=`` ...).
    """
    run = active_run()
    if run is None:
        return _client().register_model(name, model, input_example=input_example, **options)
    env = None
    if settings.CAPTURE_ENV.get():
        from .environment import capture_environment

        env = scrub(capture_environment())  # cached per process: the same the run records
    return run.client.register_model(name, model, run_id=run.id, input_example=input_example,
                                     env=options.pop("env", env), **options)


def log_input(dataset: str, role: str = "input") -> Any:
    """Record that the active run reads data set version ``dataset`` ("name@3") as ``role``."""
    run = _require_run("log_input")
    return run.client.log_input(run.id, dataset, role)


def flush() -> None:
    """Block until everything logged so far in this process is durable in its store."""
    _writer.FLUSHER.flush_all()
    from .store.group_commit import settle_all

    settle_all()  # visible to other processes too, not only durable in the journal


# -- process exit and signals ----------------------------------------------
def _end_all(status: RunStatus) -> None:
    runs = list(reversed(STATE.runs()))
    for run in runs:
        try:
            _end(run, status)
        except Exception as exc:  # at exit there is nobody left to raise to
            print(f"cairn: could not end run {run.id}: {exc}", file=sys.stderr)


@atexit.register
def _at_exit() -> None:
    last = getattr(sys, "last_value", None) or getattr(sys, "last_exc", None)
    if last is None:
        status = RunStatus.FINISHED
    elif isinstance(last, KeyboardInterrupt):
        status = RunStatus.KILLED
    else:
        status = RunStatus.FAILED
    _end_all(status)
    try:
        _writer.FLUSHER.flush_all()
    except Exception as exc:
        print(f"cairn: final flush failed: {exc}", file=sys.stderr)
    # Its own exit hook may have run already (hooks run last-registered first).
    group_commit = sys.modules.get("cairn.store.group_commit")
    if group_commit is not None:
        group_commit.settle_all()


_TERM_GRACE_S = 5.0  # how long SIGTERM waits for the runs to be ended and indexed


def _end_and_settle() -> None:
    _end_all(RunStatus.KILLED)
    # Dying of the signal skips the exit hooks: make the records visible to readers now
    # rather than when the next process replays the journals.
    from .store.group_commit import settle_all

    settle_all()


def _install_signal_handlers() -> None:
    """On SIGTERM: flush, mark runs KILLED, then die of the signal as before."""
    if STATE.signals_installed or threading.current_thread() is not threading.main_thread():
        return
    STATE.signals_installed = True
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):  # pragma: no cover - exotic platforms
        return
    if previous not in (signal.SIG_DFL, None):
        return  # the program handles SIGTERM itself; its with-blocks will end the runs

    def on_term(signum, frame):
        # In a thread of its own, and waited for a few seconds at most: the main thread
        # may have been stopped holding a lock that ending the runs needs (a writer's, the
        # store's), and SIGTERM must end the process anyway.  What does not get written
        # now is in the journal already (or lost with the last second of points), and the
        # run shows as KILLED once its heartbeat is stale.
        ender = threading.Thread(target=_end_and_settle, name="cairn-sigterm", daemon=True)
        ender.start()
        ender.join(_TERM_GRACE_S)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_term)

