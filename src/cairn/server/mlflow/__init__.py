"""MLflow's REST API (``/api/2.0/mlflow/...``, ``/api/2.0/mlflow-artifacts/...``) over Cairn's store.

The mlflow client talks to a Cairn server unchanged; what it logs is a Cairn run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI


def mount(app: "FastAPI") -> None:
    """Add the MLflow-compatible routes to ``app`` (its ``state.cairn`` is the server context)."""
