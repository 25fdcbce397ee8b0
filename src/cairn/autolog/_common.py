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
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fluent
from ..entities import RunStatus
from ..errors import MissingDependency
from ..store.validation import MAX_PARAM_VALUE

FRAMEWORK_TAG = "cairn.autolog.framework"
DIGEST_TAG = "cairn.input.digest"
SHAPE_TAG = "cairn.input.shape"
TYPE_TAG = "cairn.input.type"
TARGET_SHAPE_TAG = "cairn.input.target_shape"

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
def _feed(h: Any, obj: Any) -> None:
    import numpy as np

    module = type(obj).__module__.split(".")[0]
    if module == "pandas" and hasattr(obj, "columns"):  # DataFrame
        h.update(repr([str(c) for c in obj.columns]).encode())
        for name in obj.columns:
            _feed(h, obj[name].to_numpy())
        return
    if module == "pandas":  # Series, Index
        h.update(repr(getattr(obj, "name", None)).encode())
        _feed(h, obj.to_numpy())
        return
    if module == "scipy" and hasattr(obj, "tocsr"):
        m = obj.tocsr()
        h.update(f"csr{m.shape}".encode())
        for part in (m.data, m.indices, m.indptr):
            _feed(h, part)
        return
    if module == "torch":
        obj = obj.detach().cpu().numpy()
    a = np.asarray(obj)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.dtype.hasobject:
        h.update(repr(a.tolist()).encode())
    else:
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))


def digest(*parts: Any) -> str:
    """``sha256:<hex>`` of the content of arrays, data frames, sparse matrices or tensors."""
    h = hashlib.sha256()
    for part in parts:
        if part is not None:
            _feed(h, part)
    return "sha256:" + h.hexdigest()


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


def input_tags(features: Any, targets: Any = None, shape: list[int] | None = None) -> dict[str, str]:
    """The training data as run tags: digest of features and targets, shapes, type.

    (Data-set run inputs do not exist yet; these tags stand in for them.)
    """
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
    tags[DIGEST_TAG] = digest(features, targets)
    return tags


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
    """Log a trained model: through the registry hook when set, else as artifacts."""
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
