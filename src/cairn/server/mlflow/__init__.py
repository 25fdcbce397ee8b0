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
    from starlette.routing import Route

    from .. import permissions
    from . import artifacts, ui_routes
    from ._app import _by_path, _endpoint, _needs, build_app, server_info, version

    context = app.state.cairn
    api = build_app(context, _routes(), permissions.MLFLOW)
    # The UI's prefix serves the same routes and those mlflow server serves there only.
    ajax = build_app(context, _routes() + ui_routes.AJAX_ROUTES,
                     {**permissions.MLFLOW, **permissions.MLFLOW_AJAX})
    files = build_app(context, artifacts.ROUTES, permissions.MLFLOW_ARTIFACTS)
    app.mount(PREFIXES[0], api)
    app.mount(PREFIXES[1], ajax)
    for prefix in ARTIFACT_PREFIXES:
        app.mount(prefix, files)
    for path, handlers in _by_path(ui_routes.ROOT_ROUTES).items():
        app.router.routes.append(Route(path, _endpoint(handlers, _needs(permissions.MLFLOW_ROOT,
                                                                          path)),
                                       methods=list(handlers)))
    app.add_api_route("/api/3.0/mlflow/server-info", server_info, methods=["GET"],
                      include_in_schema=False)
    app.add_api_route("/version", version, methods=["GET"], include_in_schema=False)
    # Match the mounts first: a request walked every native route's pattern before
    # reaching them, a measurable part of a small MLflow call.  (The root routes must come
    # before the UI's catch-all page route too.)
    count = len(PREFIXES) + len(ARTIFACT_PREFIXES) + len(ui_routes.ROOT_ROUTES) + 2
    ours = app.router.routes[-count:]
    del app.router.routes[-len(ours):]
    app.router.routes[:0] = ours


def fast_endpoints() -> dict:
    """(full path, method) -> endpoint of the plain MLflow routes, for the app's
    :class:`~cairn.server.app.FastRoutes`: the same endpoints the mounted apps run."""
    from .. import permissions
    from ._app import fast_routes

    return fast_routes(PREFIXES, _routes(), permissions.MLFLOW)
