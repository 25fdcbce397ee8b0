"""Cairn: local-first experiment tracking, model registry and data versioning.

Four lines in a training script record a run in ``./.cairn``::

    import cairn
    with cairn.start_run(params={"lr": 0.01}):
        for step in range(100):
            cairn.log_metric("loss", 1 / (step + 1), step=step)

Importing cairn loads no framework, no numpy and no database driver.
"""

from .client import Client, RunPage
from .entities import Experiment, FileEntry, Metric, MetricHistory, Run, RunStatus
from .errors import (
    AlreadyExists, CairnError, Conflict, CorruptObject, InvalidArgument, InvalidFilter,
    InvalidSignature, MissingDependency, NoActiveRun, NotFound, PermissionDenied, RunFinished,
    SchemaOutOfDate, StoreUnavailable,
)
from .fluent import (
    ActiveRun, active_run, end_run, flush, get_tracking_uri, log_artifact, log_artifacts,
    log_dict, log_figure, log_input, log_metric, log_metrics, log_model, log_param, log_params,
    log_text, set_experiment, set_tag, set_tags, set_tracking_uri, start_run,
)
from . import autolog  # a light, callable module: cairn.autolog(), cairn.autolog.sklearn ...
from . import store_settings  # noqa: F401 - stores follow the CAIRN_* settings (cairn.store.options)

__version__ = "0.1.0"


_LAZY_MODULES = {"models": ".registry.models", "data": ".data"}
# Per-framework autologging, as `cairn.sklearn.autolog()` or `cairn.pytorch.track(...)`.
for _fw in ("sklearn", "pytorch", "lightning", "xgboost", "lightgbm", "transformers", "keras"):
    _LAZY_MODULES[_fw] = f".autolog.{_fw}"
del _fw


def __getattr__(name: str):
    # `cairn.models` (load registered models) is imported on first use, keeping `import cairn` light.
    # `cairn.data` (data set versioning) likewise.
    if name in _LAZY_MODULES:
        import importlib

        module = importlib.import_module(_LAZY_MODULES[name], __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "CairnError",
    "Client",
    "Conflict",
    "CorruptObject",
    "Experiment",
    "FileEntry",
    "InvalidArgument",
    "InvalidFilter",
    "InvalidSignature",
    "Metric",
    "MetricHistory",
    "MissingDependency",
    "NoActiveRun",
    "NotFound",
    "PermissionDenied",
    "Run",
    "RunFinished",
    "RunPage",
    "RunStatus",
    "SchemaOutOfDate",
    "StoreUnavailable",
    "__version__",
    "active_run",
    "autolog",
    "data",
    "end_run",
    "flush",
    "get_tracking_uri",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "models",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
