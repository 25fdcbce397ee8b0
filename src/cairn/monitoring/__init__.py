"""Monitoring of served models: data drift of the prediction log against training data.

::

    from cairn.monitoring import drift_report

    report = drift_report(client, "models:/fraud@production", window="1h")

Modules, one job each: :mod:`~cairn.monitoring.drift` (the statistics, NumPy and SciPy),
:mod:`~cairn.monitoring.reference` (the training data, found through lineage),
:mod:`~cairn.monitoring.windows` (the prediction log cut into windows),
:mod:`~cairn.monitoring.report` (the report), :mod:`~cairn.monitoring.results` (stored as
metrics of a monitoring run).  Needs ``pip install 'cairn[monitor]'`` (SciPy, pandas,
pyarrow); nothing in ``import cairn`` loads this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .drift import ColumnDrift
    from .report import DriftReport, WindowDrift

__all__ = ["ColumnDrift", "DriftReport", "WindowDrift", "drift_report", "require"]

NEEDED = ("scipy", "pandas", "pyarrow")


def require() -> None:
    """MissingDependency naming the pip command when a package of the extra is missing."""
    from importlib.util import find_spec

    from ..errors import MissingDependency

    missing = [m for m in NEEDED if find_spec(m) is None]
    if missing:
        raise MissingDependency(f"drift monitoring needs {', '.join(missing)}: "
                                "pip install 'cairn[monitor]'", packages=missing)


def drift_report(client: Any, model: str, window: Any = "1h", **options: Any) -> DriftReport:
    """See :func:`cairn.monitoring.report.drift_report`."""
    require()
    from .report import drift_report as report

    return report(client, model, window, **options)


def __getattr__(name: str) -> Any:
    # The result classes import NumPy: loaded when asked for, so that the modules that need
    # none (kpi, rules) can be imported without it.
    if name == "ColumnDrift":
        from .drift import ColumnDrift

        return ColumnDrift
    if name in ("DriftReport", "WindowDrift"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
