"""What every integration shares: which run to log into, patching, params, data sets, models.

Runs.  An autologged training call logs into the active run when there is one (the first
time), into a new child run of it when that run already holds an autologged training,
and otherwise into a run of its own that ends with the call (FAILED if the call raised).

Nesting.  While one autologged call runs, training calls it makes itself (a pipeline's
steps, a search's candidates, a booster under a scikit-learn wrapper) are not logged as
runs of their own.  The guard is per process, not per thread, so that the worker threads
of joblib and friends count as inside; a second, unrelated training in another thread at
the same moment is therefore not logged.

Nothing here imports a framework or numpy at import time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fluent
from ..entities import RunStatus
from ..errors import MissingDependency
from ..store.base import Indexed, RemoteServer
from ..store.validation import MAX_PARAM_VALUE

FRAMEWORK_TAG = "cairn.autolog.framework"
DIGEST_TAG = "cairn.input.digest"
SHAPE_TAG = "cairn.input.shape"
TYPE_TAG = "cairn.input.type"
TARGET_SHAPE_TAG = "cairn.input.target_shape"
DATASET_TAG = "cairn.input.dataset"

_lock = threading.RLock()
_depth = 0
_autologged_runs: set[str] = set()  # runs that already hold one autologged training


class MissingFramework(MissingDependency, ImportError):
    """Importing an integration whose framework is not installed (an ImportError too)."""


def missing(framework: str, extra: str, module: str) -> MissingFramework:
    """The error an integration raises when its framework is not installed."""
    return MissingFramework(f"cairn.autolog.{module} needs {framework}, which is not installed: "
                            f"pip install 'cairn[{extra}]'", extra=extra)


# -- runs ---------------------------------------------------------------------
class RunScope:
    """The run one training logs into; ``close()`` ends it if this scope started it."""

    def __init__(self, framework: str, run: fluent.ActiveRun | None = None) -> None:
        self.framework = framework
        self.owned = False
        if run is None:
            active = fluent.active_run()
            if active is None:
                run = fluent.start_run(tags={FRAMEWORK_TAG: framework})
                self.owned = True
            elif active.id in _autologged_runs:
                run = fluent.start_run(nested=True, tags={FRAMEWORK_TAG: framework})
                self.owned = True
            else:
                run = active
                run.set_tag(FRAMEWORK_TAG, framework)
        self.run = run
        with _lock:
            _autologged_runs.add(run.id)

    def close(self, exc: BaseException | None = None) -> None:
        try:
            finish_data(self.run)
        except Exception as error:  # noqa: BLE001 - the run must still end
            _log.warning("cairn.autolog: could not finish recording the data sets of run %s: %s",
                         self.run.id, error)
        if not self.owned:
            return
        self.owned = False
        if exc is None:
            status = RunStatus.FINISHED
        elif isinstance(exc, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        self.run.end(status)


@contextlib.contextmanager
def training(framework: str) -> Iterator[RunScope | None]:
    """Wrap one patched training call: yields its scope, or None when nested in another."""
    global _depth
    with _lock:
        nested = _depth > 0
        _depth += 1
    try:
        if nested:
            yield None
            return
        scope = RunScope(framework)
        try:
            yield scope
        except BaseException as exc:
            scope.close(exc)
            raise
        scope.close()
    finally:
        with _lock:
            _depth -= 1


# -- patching -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Patch:
    owner: Any
    name: str
    original: Any
    had_own: bool  # whether the owner defined the attribute itself (else it was inherited)


_patches: dict[str, dict[tuple[int, str], _Patch]] = {}


def patch(framework: str, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` with ``make(original)``, once; :func:`unpatch` restores it."""
    key = (id(owner), name)
    with _lock:
        table = _patches.setdefault(framework, {})
        if key in table:
            return
        had_own = name in getattr(owner, "__dict__", {})
        original = owner.__dict__[name] if had_own and isinstance(owner, type) else getattr(owner, name)
        table[key] = _Patch(owner, name, original, had_own)
        setattr(owner, name, make(original))


def subclasses(base: type) -> Iterator[type]:
    """``base`` and every class derived from it that is defined now, each once."""
    seen: set[type] = set()
    stack = [base]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.add(cls)
            yield cls
            stack.extend(cls.__subclasses__())


def unpatch(framework: str) -> None:
    with _lock:
        for p in reversed(list(_patches.pop(framework, {}).values())):
            if p.had_own or not isinstance(p.owner, type):
                setattr(p.owner, p.name, p.original)
            else:
                delattr(p.owner, p.name)


def is_patched(framework: str) -> bool:
    return bool(_patches.get(framework))


# -- params -------------------------------------------------------------------
def param_text(value: Any, limit: int = 500) -> str:
    """A param value as text, cut to ``limit`` characters (estimator reprs get long)."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def flatten(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Nested dicts to dotted keys; values to text; empty keys dropped."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + sep, sep))
        elif str(key).strip():
            out[name] = param_text(value, MAX_PARAM_VALUE)
    return out


def short_params(params: Mapping[str, Any], limit: int = 500) -> dict[str, str]:
    return {str(k): param_text(v, limit) for k, v in params.items()}


def metric_value(value: Any) -> float | None:
    """A number worth logging as a metric, or None (bools, text, arrays, None)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def log_numeric(run: fluent.ActiveRun, metrics: Mapping[str, Any], step: int | None) -> None:
    clean = {k: v for k, v in ((str(k), metric_value(v)) for k, v in metrics.items()) if v is not None}
    if clean:
        run.log_metrics(clean, step=step)


# -- data sets ----------------------------------------------------------------
#
# What a training reads is recorded twice: as cheap, searchable tags (type, shapes, content
# digest) and, when the store keeps data sets and the data is small enough, as a data set
# version logged as the run's input ("train", "eval"), so lineage reaches it.  The slow
# part (hashing, writing files, the catalog) runs in a background thread while the model
# trains; the data is copied first (training may change it in place).  finish_data() waits
# for that thread before the model is logged and before the run ends.

def digest(*parts: Any) -> str:
    """``sha256:<hex>`` of the content of arrays, data frames, sparse matrices or tensors
    (:func:`cairn.data.arrays.content_digest`)."""
    from ..data.arrays import content_digest

    return content_digest(*parts)


def shape_of(obj: Any) -> list[int] | None:
    shape = getattr(obj, "shape", None)
    if shape is None:
        import numpy as np

        try:
            shape = np.shape(obj)  # nested lists
        except (TypeError, ValueError):  # ragged
            shape = (len(obj),) if hasattr(obj, "__len__") else None
    try:
        return [int(d) for d in shape] if shape is not None else None
    except TypeError:
        return None


def input_tags(features: Any, targets: Any = None, shape: list[int] | None = None, *,
               with_digest: bool = True) -> dict[str, str]:
    """The training data as run tags: type, shapes and (``with_digest``) content digest."""
    tags: dict[str, str] = {}
    if features is None:
        return tags
    kind = type(features)
    tags[TYPE_TAG] = f"{kind.__module__}.{kind.__qualname__}"
    shape = shape if shape is not None else shape_of(features)
    if shape is not None:
        tags[SHAPE_TAG] = json.dumps(shape)
    if targets is not None and shape_of(targets) is not None:
        tags[TARGET_SHAPE_TAG] = json.dumps(shape_of(targets))
    if with_digest:
        tags[DIGEST_TAG] = digest(features, targets)
    return tags


@dataclass(slots=True)
class DataOptions:
    """What an integration does with the data it trains on (its autolog options)."""

    log: bool = True  # log_datasets: tags, and data set versions where the store keeps them
    name: str | None = None  # dataset_name: base of the data set names; None: the experiment's


def check_dataset_name(name: str | None) -> str | None:
    """``autolog(dataset_name=...)``: a valid data set name (checked once, up front)."""
    if name is not None:
        from ..data.entities import check_name

        check_name(f"{name}.train")
    return name


def log_data(run: fluent.ActiveRun, features: Any, targets: Any = None, *,
             options: DataOptions, evals: Sequence[tuple[str, Any, Any]] = (),
             tags: Mapping[str, str] | None = None, copied: bool = False) -> None:
    """Record the data a training reads.

    Tags ``cairn.input.type|shape|target_shape|digest`` for ``features``/``targets``; and,
    when the run's store keeps data sets and the data is within
    ``CAIRN_AUTOLOG_MAX_DATASET_BYTES``, a version of data set ``<name>.train`` logged as the
    run's "train" input and named by the ``cairn.input.dataset`` tag.  Each
    ``(name, features, targets)`` of ``evals`` becomes a version of ``<name>.<its name>``,
    an "eval" input, unless it is the training data (the same objects or content).

    ``tags`` adds to or replaces the computed tags (an integration's own type or shape; with
    a ``cairn.input.digest`` of its own the features are not versioned); ``copied``: the
    arrays are the integration's own copies (no snapshot needed).
    Never raises for the data's sake: training goes on.
    """
    if not options.log:
        return
    base = {**input_tags(features, targets, with_digest=False), **(tags or {})}
    storing = stores_datasets(run)
    train = None
    if (storing and features is not None and DIGEST_TAG not in base
            and _fits(run, options, "train", features, targets)):
        train = (features, targets)
    sets = []
    if storing:
        seen = {"train"}
        for name, x, y in evals:
            suffix = _name_part(name) or "eval"
            if x is None or x is features or suffix in seen:
                continue
            seen.add(suffix)
            if _fits(run, options, suffix, x, y):
                sets.append((suffix, x, y))
    snapshots = None
    if train is not None or sets:
        snap = (lambda x: x) if copied else _snapshot
        try:
            snapshots = (None if train is None else (snap(features), snap(targets)),
                         [(suffix, snap(x), snap(y)) for suffix, x, y in sets])
        except Exception as exc:  # noqa: BLE001 - e.g. no memory for a copy: tags only
            _not_stored("train", exc)
            train = None
    if train is None and features is not None and DIGEST_TAG not in base:
        try:
            base[DIGEST_TAG] = digest(features, targets)
        except Exception as exc:  # noqa: BLE001 - data it cannot read: training goes on
            _warn_once(f"digest:{type(exc).__name__}", f"cairn.autolog: cannot digest the "
                       f"training data: {type(exc).__name__}: {exc}")
    if base:
        run.set_tags(base)
    if snapshots is not None:
        job = _DataJob(run, options, *snapshots, base.get(DIGEST_TAG))
        with _lock:
            _jobs.setdefault(run.id, []).append(job)


def eval_pair(item: Any) -> tuple[Any, Any]:
    """``(X, y)`` of a scikit-learn style ``eval_set`` entry (None, None if it is not one)."""
    try:
        return item[0], item[1] if len(item) > 1 else None
    except (TypeError, IndexError):
        return None, None


def finish_data(run: fluent.ActiveRun) -> list[Any]:
    """Wait until the run's data sets are stored; tag the training one
    (``cairn.input.dataset``).  Returns the versions, training data first."""
    with _lock:
        jobs = _jobs.pop(run.id, [])
    out: list[Any] = []
    for job in jobs:
        job.join()
        if job.train_version is not None:
            run.set_tag(DATASET_TAG, job.train_version.ref)
            out.append(job.train_version)
        out.extend(job.eval_versions)
    return out


class _DataJob:
    """Digests, stores and logs the data sets of one training, in a thread of its own."""

    def __init__(self, run: fluent.ActiveRun, options: DataOptions,
                 train: tuple[Any, Any] | None, evals: list[tuple[str, Any, Any]],
                 train_digest: str | None) -> None:
        self.run, self.options = run, options
        self.train_version: Any = None
        self.eval_versions: list[Any] = []
        self._thread = threading.Thread(target=self._work, args=(train, evals, train_digest),
                                        name="cairn-autolog-data")
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _work(self, train: tuple[Any, Any] | None, evals: list[tuple[str, Any, Any]],
              train_digest: str | None) -> None:
        run = self.run
        if train is not None:
            try:
                train_digest = digest(*train)
            except Exception as exc:  # noqa: BLE001 - reported, never raised into training
                _not_stored("train", exc)
                train = None
            else:
                run.set_tags({DIGEST_TAG: train_digest})
        ds = _datasets(run)
        if ds is None:
            return
        if train is not None:
            self.train_version = self._store(ds, "train", "train", train, train_digest)
        for suffix, x, y in evals:
            try:
                d = digest(x, y)
            except Exception as exc:  # noqa: BLE001
                _not_stored(suffix, exc)
                continue
            if d != train_digest:
                version = self._store(ds, "eval", suffix, (x, y), d)
                if version is not None:
                    self.eval_versions.append(version)

    def _store(self, ds: Any, role: str, suffix: str, data: tuple[Any, Any], d: str) -> Any:
        run = self.run
        name = _data_set_name(run, self.options, suffix)
        try:
            staged = ds._stage_array(*data, digest=d)
            message = f"{role} data of run {run.name} ({run.id[:8]}), recorded by autolog"
            from ..anonymise.rules import active

            anon = active()  # run.name is the name as given, not as recorded
            version = ds._commit_array(staged, name, message if anon is None else anon.text(message))
            ds.log_input(run.id, version, role)
        except Exception as exc:  # noqa: BLE001 - the data is a by-product: training goes on
            _not_stored(name, exc)
            return None
        return version


_jobs: dict[str, list[_DataJob]] = {}  # run id -> the data sets it is storing
_log = logging.getLogger("cairn.autolog")
_warned: set[str] = set()  # what was already said, once per process


def _warn_once(key: str, message: str) -> None:
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    _log.warning(message)


def _not_stored(name: str, exc: BaseException) -> None:
    _warn_once(f"error:{name}:{type(exc).__name__}:{exc}",
               f"cairn.autolog: {name} data is not stored as a data set version, only tagged: "
               f"{type(exc).__name__}: {exc}")


def stores_datasets(run: fluent.ActiveRun) -> bool:
    """Whether the run's store keeps data sets (what ``Datasets.store`` requires)."""
    store = run.client.store
    if isinstance(store, (Indexed, RemoteServer)):
        return True  # a local store, or a server (HttpStore: cairn.data.remote)
    _no_data_sets(store)
    return False


def _no_data_sets(store: Any) -> None:
    uri = str(store.uri)
    _warn_once(f"store:{uri}", f"cairn.autolog: the store {uri} keeps no data sets, so training "
               "data is recorded as cairn.input.* tags only, not as data set versions (data "
               "versioning needs a local store directory)")


def _datasets(run: fluent.ActiveRun) -> Any:
    """The run's store's data set API, or None (said once) when it keeps no data sets."""
    from ..errors import InvalidArgument

    ds = run.client.data
    try:
        ds.store  # noqa: B018 - raises for a store without data sets
    except InvalidArgument:
        _no_data_sets(run.client.store)
        return None
    from ..anonymise.rules import active

    anon = active()
    if anon is not None:  # the version is linked to the run: its creator would unmask it
        from ..services import datasets_for

        return datasets_for(run.client, anon.user(run.client.user))
    return ds


def _snapshot(obj: Any) -> Any:
    """A private copy of array-like data, so that training may change the original."""
    if obj is None:
        return None
    module = type(obj).__module__.split(".")[0]
    if module == "torch":
        return obj.detach().to("cpu", copy=True)
    if module in ("numpy", "pandas", "scipy") and hasattr(obj, "copy"):
        return obj.copy()  # numpy keeps the memory layout; pandas copies deep by default
    if isinstance(obj, (list, tuple)):
        import numpy as np

        try:
            a = np.array(obj)
        except (TypeError, ValueError):  # ragged: leave it, it is not stored anyway
            return obj
        return obj if a.dtype.hasobject else a
    return obj


def _name_part(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._\-]+", "-", str(text)).strip("-._")[:64]


def _data_set_name(run: fluent.ActiveRun, options: DataOptions, suffix: str) -> str:
    base = options.name
    if base is None:
        parts = (_name_part(p) for p in run.experiment.name.split("/"))
        base = "/".join(p for p in parts if p)[:180] or "autolog"
    return f"{base}.{suffix}"


def _fits(run: fluent.ActiveRun, options: DataOptions, suffix: str, features: Any,
          targets: Any) -> bool:
    """Whether the data is within CAIRN_AUTOLOG_MAX_DATASET_BYTES (else say so, once)."""
    from .. import settings

    limit = settings.AUTOLOG_MAX_DATASET_BYTES.get()
    size = _nbytes(features) + _nbytes(targets)
    if size <= limit:
        return True
    name = _data_set_name(run, options, suffix)
    why = ("CAIRN_AUTOLOG_MAX_DATASET_BYTES is 0" if limit == 0 else
           f"its {size:,} bytes exceed CAIRN_AUTOLOG_MAX_DATASET_BYTES={limit:,}")
    _warn_once(f"size:{name}:{size}", f"cairn.autolog: the {suffix} data is not stored as data "
               f"set {name}, only tagged with its digest and shape: {why}")
    return False


def _nbytes(obj: Any) -> int:
    """About how many bytes ``obj`` holds in memory, read without copying it (lists aside)."""
    try:
        return _nbytes_of(obj)
    except Exception:  # noqa: BLE001 - an object that will not say: as if empty
        return 0


def _nbytes_of(obj: Any) -> int:
    if obj is None:
        return 0
    module = type(obj).__module__.split(".")[0]
    if module == "pandas":
        usage = obj.memory_usage(index=True, deep=False)
        return int(usage.sum() if hasattr(usage, "sum") else usage)
    if module == "scipy":
        return sum(int(getattr(obj, a).nbytes) for a in ("data", "indices", "indptr", "row",
                                                          "col", "offsets", "coords")
                   if hasattr(getattr(obj, a, None), "nbytes"))
    if module == "torch":
        return int(obj.numel()) * int(obj.element_size())
    size = getattr(obj, "nbytes", None)
    if isinstance(size, int):
        return size
    import numpy as np

    return int(np.asarray(obj).nbytes)  # nested lists


# -- artifacts and models -----------------------------------------------------
def log_artifacts(run: fluent.ActiveRun, local_path: str | os.PathLike,
                  artifact_path: str | None = None) -> None:
    """A file or directory into the run, without requiring ``run`` to be the active run."""
    run._writer.add_artifacts(run.client.store_artifacts(local_path, artifact_path))


def log_json(run: fluent.ActiveRun, data: Any, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        parent = Path(artifact_file).parent.as_posix()
        log_artifacts(run, path, None if parent == "." else parent)


def log_text(run: fluent.ActiveRun, text: str, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_text(text, encoding="utf-8")
        parent = Path(artifact_file).parent.as_posix()
        log_artifacts(run, path, None if parent == "." else parent)


def log_table(run: fluent.ActiveRun, columns: Mapping[str, Any], artifact_file: str) -> None:
    """A dict of equal-length columns as a CSV artifact (no pandas needed)."""
    import csv

    names = list(columns)
    rows = zip(*(list(columns[n]) for n in names))
    with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:
        path = Path(tmp) / Path(artifact_file).name
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(names)
            for row in rows:
                w.writerow([_cell(v) for v in row])
        parent = Path(artifact_file).parent.as_posix()
        log_artifacts(run, path, None if parent == "." else parent)


def _cell(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


MODEL_META = "cairn_model.json"

# (run, model, flavor, save, artifact_path) -> None.  See set_model_logger.
ModelLogger = Callable[[Any, Any, str, Callable[[Path], None], str], None]
_model_logger: ModelLogger | None = None


def set_model_logger(logger: ModelLogger | None) -> None:
    """THE HOOK for the model registry.

    Every integration hands its trained model to :func:`log_model`.  Until the registry's
    ``log_model`` exists, the model is stored as plain run artifacts (``model/...`` plus a
    ``cairn_model.json`` describing it).  When it lands, register it here once (e.g. in
    ``cairn/autolog/__init__.py``) and every integration logs through it; ``logger`` receives
    ``(run, model, flavor, save, artifact_path)``, where ``save(directory)`` writes the
    framework's native files.  ``None`` restores the artifact fallback.
    """
    global _model_logger
    _model_logger = logger


def log_model(run: fluent.ActiveRun, model: Any, flavor: str, save: Callable[[Path], None],
              artifact_path: str = "model") -> None:
    """Log a trained model: through the registry hook when set, else as artifacts.

    The run's data sets are stored first, so a registered model version lists them."""
    finish_data(run)
    if _model_logger is not None:
        _model_logger(run, model, flavor, save, artifact_path)
        return
    log_model_files(run, model, flavor, save, artifact_path)


def registering_logger(registered_model_name: str) -> ModelLogger:
    """A model logger that keeps the native files and also registers a version in the registry."""

    def logger(run: Any, model: Any, flavor: str, save: Callable[[Path], None],
               artifact_path: str) -> None:
        log_model_files(run, model, flavor, save, artifact_path)
        run.client.register_model(registered_model_name, model, run_id=run.id)

    return logger


def log_model_files(run: fluent.ActiveRun, model: Any, flavor: str, save: Callable[[Path], None],
                    artifact_path: str = "model") -> None:
    """The framework's native files under ``artifact_path`` plus a ``cairn_model.json``."""
    with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
        root = Path(tmp) / "m"
        root.mkdir()
        save(root)
        kind = type(model)
        meta = {"flavor": flavor, "class": f"{kind.__module__}.{kind.__qualname__}",
                "framework_version": _version(flavor), "python": sys.version.split()[0],
                "files": sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())}
        (root / MODEL_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        log_artifacts(run, root, artifact_path)


_DISTRIBUTIONS = {"sklearn": "scikit-learn", "pytorch": "torch", "xgboost": "xgboost",
                  "lightgbm": "lightgbm", "transformers": "transformers", "keras": "keras",
                  "lightning": "lightning"}


def _version(flavor: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(_DISTRIBUTIONS.get(flavor, flavor))
    except importlib.metadata.PackageNotFoundError:
        return None


def pickle_saver(model: Any, filename: str = "model.pkl") -> Callable[[Path], None]:
    def save(root: Path) -> None:
        import pickle

        with (root / filename).open("wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)

    return save
