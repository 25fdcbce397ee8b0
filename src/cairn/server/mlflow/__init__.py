"""MLflow's REST API (``/api/2.0/mlflow/...``, ``/api/2.0/mlflow-artifacts/...``) over Cairn's store.

The mlflow client talks to a Cairn server unchanged; what it logs is a Cairn run.
The routes live in small Starlette apps mounted on the main app, so that their
errors take MLflow's shape (``error_code`` names and statuses of MLflow's
``ErrorCode``) while the native ``/api/v1`` keeps Cairn's.  The mapping of MLflow's
entities onto Cairn's is documented in ``docs/mlflow.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")


def _routes() -> list:
    from . import artifacts, logged_models, registry, tracking

    return [*tracking.ROUTES, *logged_models.ROUTES, *registry.ROUTES, *artifacts.API_ROUTES]


def mount(app: "FastAPI") -> None:
    """Add the MLflow-compatible routes to ``app`` (its ``state.cairn`` is the server context)."""
    from . import artifacts
    from ._app import build_app, server_info

    context = app.state.cairn
    api = build_app(context, _routes())
    files = build_app(context, artifacts.ROUTES)
    for prefix in PREFIXES:
        app.mount(prefix, api)
    for prefix in ARTIFACT_PREFIXES:
        app.mount(prefix, files)
    app.add_api_route("/api/3.0/mlflow/server-info", server_info, methods=["GET"],
                      include_in_schema=False)
    # Match the mounts first: a request walked every native route's pattern before
    # reaching them, a measurable part of a small MLflow call.
    ours = app.router.routes[-(len(PREFIXES) + len(ARTIFACT_PREFIXES) + 1):]
    del app.router.routes[-len(ours):]
    app.router.routes[:0] = ours


def fast_endpoints() -> dict:
    """(full path, method) -> endpoint of the plain MLflow routes, for the app's
    :class:`~cairn.server.app.FastRoutes`: the same endpoints the mounted apps run."""
    from ._app import fast_routes

    return fast_routes(PREFIXES, _routes())
