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
    AlreadyExists, CairnError, Conflict, CorruptObject, InvalidArgument, InvalidFilter, NoActiveRun,
    NotFound, PermissionDenied, RunFinished, SchemaOutOfDate, StoreUnavailable,
)
from .fluent import (
    ActiveRun, active_run, end_run, flush, get_tracking_uri, log_artifact, log_artifacts, log_dict,
    log_figure, log_metric, log_metrics, log_param, log_params, log_text, set_experiment, set_tag,
    set_tags, set_tracking_uri, start_run,
)

__version__ = "0.1.0"

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
    "Metric",
    "MetricHistory",
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
    "end_run",
    "flush",
    "get_tracking_uri",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
