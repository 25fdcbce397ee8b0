"""Bringing history in from other tools (today: MLflow), verified against the source.

Nothing here is imported by ``import cairn``; the source tool's package (``mlflow``)
is imported only when an import runs.
"""

from __future__ import annotations

from .mlflow import import_mlflow
from .summary import Counts, ImportMismatch, ImportSummary

__all__ = ["Counts", "ImportMismatch", "ImportSummary", "import_mlflow"]
