"""What every route needs: one table of (method, path template) -> :class:`Need`.

Every route family reads its required role from here — the native ``/api/v1``, the UI's
JSON routes, MLflow's ``/api/2.0/mlflow`` (and ``/ajax-api``) and its artifact routes:
:func:`~cairn.server.context.principal` attaches the matched route's need to the caller,
and the route's checks (``Guard.need``, the ``require_run``-style helpers called without
a role) take the role from it.  ``tests/server/test_authz_routes.py`` fails when a
mounted route has no entry, an entry names no route, or a route lets a role through
that its entry does not; ``docs/server.md``'s table of routes is generated from
:func:`markdown_table`.

Kinds of need:

``open``        no token (the probes, the API description, the UI's pages and session)
``user``        any valid token (lists and searches answer only what the caller may view)
``experiment``  ``role`` on the experiment the request names (itself, or through a run)
``model``       ``role`` on the registered model the request names
``somewhere``   ``role`` on some experiment or model (content-addressed objects and data
                sets, which belong to no single one)
``all``         ``role`` on every resource of type ``on`` (a global or ``TYPE *``
                binding): creating one, whose creator then administers it
``self``        the caller's own (tokens); anyone else's needs a global admin
``grant``       admin on the resource the request names (``global`` / ``*``: a global admin)
``admin``       a global admin
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..store.sql.auth import RANK

KINDS = ("open", "user", "experiment", "model", "somewhere", "all", "self", "grant", "admin")
API = "/api/v1"
UI = "/api/v1/ui"
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MLFLOW_ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")


@dataclass(frozen=True, slots=True)
class Need:
    kind: str
    role: str | None = None
    on: str | None = None  # the resource type of ``all`` and ``somewhere`` (None: any)
    also: str = ""  # further checks the route makes, for the docs
    in_body: bool = False  # a UI page: the route checks it and answers a refusal in a 200

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert (self.role is not None) == (self.kind in ("experiment", "model", "somewhere",
                                                         "all")), self
        assert self.role is None or self.role in RANK, self.role

    def describe(self) -> str:
        k, r = self.kind, self.role
        text = {
            "open": "no token",
            "user": "any user with a token",
            "experiment": f"{r} on the experiment",
            "model": f"{r} on the model",
            "somewhere": f"{r} on some {self.on or 'experiment or model'}",
            "all": f"{r} on all {self.on}s",
            "self": "your own; anyone's: global admin",
            "grant": "admin on the resource named (global, `*`: global admin)",
            "admin": "global admin",
        }[k]
        if self.in_body:
            text += " (a refusal comes in its 200 answer)"
        return f"{text}; {self.also}" if self.also else text


OPEN = Need("open")
USER = Need("user")
ADMIN = Need("admin")


def exp(role: str, also: str = "") -> Need:
    return Need("experiment", role, also=also)


def model(role: str, also: str = "") -> Need:
    return Need("model", role, also=also)


def somewhere(role: str, on: str | None = None, also: str = "") -> Need:
    return Need("somewhere", role, on, also)


# Comments: the role is checked on the comment's target (its run's or experiment's
# experiment, its model version's model; a data set version's: a role somewhere).
_ON_TARGET = "viewer on the target (none: 404)"
_OWN = "; its author, or admin on the target"
_DASHBOARD = "viewer on every experiment its panels show (none: 404)"
_REPORT = "viewer on every experiment and model its panels draw from (none: 404)"

NATIVE: dict[tuple[str, str], Need] = {
    # probes and the API description
    ("GET", "/health"): OPEN,
    ("GET", "/ready"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("GET", f"{API}/info"): USER,
    # experiments and runs
    ("GET", f"{API}/experiments"): USER,
    ("POST", f"{API}/experiments"): Need("all", "editor", "experiment"),
    ("GET", f"{API}/experiments/by-name"): exp("viewer"),
    ("GET", f"{API}/experiments/{{experiment_id}}"): exp("viewer"),
    # as MLflow's experiments/update, /delete and /restore below
    ("PATCH", f"{API}/experiments/{{experiment_id}}"): exp("admin"),
    ("POST", f"{API}/experiments/{{experiment_id}}/delete"): exp("admin"),
    ("POST", f"{API}/experiments/{{experiment_id}}/restore"): exp("admin"),
    ("POST", f"{API}/runs"): exp("editor"),
    ("GET", f"{API}/runs/{{run_id}}"): exp("viewer"),
    ("POST", f"{API}/runs/search"): USER,
    ("POST", f"{API}/runs/{{run_id}}/log"): exp("editor"),
    ("POST", f"{API}/runs/{{run_id}}/end"): exp("editor"),
    ("PUT", f"{API}/runs/{{run_id}}/tags/{{key:path}}"): exp("editor"),
    ("DELETE", f"{API}/runs/{{run_id}}/tags/{{key:path}}"): exp("editor"),
    # a rename and a soft delete/restore: writes to the run, as its tags are
    ("PATCH", f"{API}/runs/{{run_id}}"): exp("editor"),
    ("POST", f"{API}/runs/{{run_id}}/delete"): exp("editor"),
    ("POST", f"{API}/runs/{{run_id}}/restore"): exp("editor"),
    ("POST", f"{API}/heartbeat"): exp("editor", "of every run named"),
    ("POST", f"{API}/records"): exp("editor", "of every batch's run; a new experiment: "
                                    "editor on all experiments"),
    ("GET", f"{API}/runs/{{run_id}}/metrics/history"): exp("viewer"),
    # artifacts and objects
    ("POST", f"{API}/objects/missing"): somewhere("editor"),
    ("PUT", f"{API}/objects/{{oid}}"): somewhere("editor"),
    ("GET", f"{API}/objects/{{oid}}"): somewhere("viewer"),
    ("GET", f"{API}/runs/{{run_id}}/artifacts"): exp("viewer"),
    ("GET", f"{API}/runs/{{run_id}}/artifacts/download"): exp("viewer"),
    ("POST", f"{API}/runs/{{run_id}}/artifacts"): exp("editor"),
    # users, tokens, roles, audit
    ("GET", f"{API}/whoami"): USER,
    ("GET", f"{API}/users"): ADMIN,
    ("POST", f"{API}/users"): ADMIN,
    ("POST", f"{API}/users/{{name}}/disable"): ADMIN,
    ("POST", f"{API}/users/{{name}}/tokens"): Need(
        "self", also="never outliving the token that asks"),
    ("GET", f"{API}/tokens"): Need("self"),
    ("DELETE", f"{API}/tokens/{{token_id}}"): Need("self"),
    ("GET", f"{API}/roles"): Need("grant", also="your own bindings: any user"),
    ("PUT", f"{API}/roles"): Need("grant"),
    ("POST", f"{API}/roles/revoke"): Need("grant"),
    ("GET", f"{API}/audit"): ADMIN,
    ("GET", f"{API}/audit/verify"): ADMIN,
    ("POST", f"{API}/admin/erase-user"): Need(
        "admin", also="audited: one user.erase event; the events naming them become tombstones"),
    # registered models
    ("GET", f"{API}/models"): USER,
    ("POST", f"{API}/models"): Need("all", "editor", "model"),
    ("GET", f"{API}/models/{{name}}"): model("viewer"),
    ("GET", f"{API}/models/{{name}}/versions"): model("viewer"),
    ("POST", f"{API}/models/{{name}}/versions"): model(
        "editor", "viewer on the source run's experiment (editor when a run is named with "
                  "client-saved files)"),
    ("GET", f"{API}/models/{{name}}/versions/{{version}}"): model("viewer"),
    ("DELETE", f"{API}/models/{{name}}/versions/{{version}}"): model(
        "admin", "to the trash; refused while it is in Production or has an alias, unless "
                 "force"),
    ("POST", f"{API}/models/{{name}}/versions/{{version}}/restore"): model("admin"),
    ("POST", f"{API}/models/{{name}}/rename"): model("admin", "its roles move with it"),
    ("DELETE", f"{API}/models/{{name}}"): model(
        "admin", "refused while a version is protected, unless force; its roles go"),
    ("GET", f"{API}/models/{{name}}/protected"): model("viewer"),
    ("POST", f"{API}/models/{{name}}/versions/{{version}}/stage"): model("editor"),
    ("POST", f"{API}/models/{{name}}/versions/{{version}}/signature"): model("editor"),
    ("POST", f"{API}/models/{{name}}/requests"): model("editor"),
    ("GET", f"{API}/models/{{name}}/requests"): model("viewer"),
    ("GET", f"{API}/models/requests/{{request_id}}"): model("viewer"),
    ("POST", f"{API}/models/requests/{{request_id}}/approve"): model("approver"),
    ("POST", f"{API}/models/requests/{{request_id}}/reject"): model(
        "approver", "its requester withdraws it as editor"),
    ("PUT", f"{API}/models/{{name}}/aliases/{{alias}}"): model("editor"),
    ("DELETE", f"{API}/models/{{name}}/aliases/{{alias}}"): model("editor"),
    ("POST", f"{API}/models/{{name}}/rollback"): model("editor"),
    ("GET", f"{API}/models/{{name}}/history"): model("viewer"),
    ("POST", f"{API}/models/{{name}}/deployments"): model("editor"),
    ("GET", f"{API}/models/{{name}}/deployments"): model("viewer"),
    ("GET", f"{API}/models/{{name}}/at"): model("viewer"),
    ("GET", f"{API}/models/{{name}}/policies"): model("viewer"),
    ("PUT", f"{API}/models/{{name}}/policies"): model("admin"),
    ("GET", f"{API}/runs/{{run_id}}/model-versions"): exp(
        "viewer", "lists versions of the models the caller may view"),
    ("GET", f"{API}/registry/naming"): USER,
    ("PUT", f"{API}/registry/naming"): ADMIN,
    ("GET", f"{API}/registry/keys"): USER,
    ("POST", f"{API}/registry/keys"): ADMIN,
    ("POST", f"{API}/registry/keys/{{key_id}}/revoke"): ADMIN,
    # data sets and lineage
    ("GET", f"{API}/datasets"): somewhere("viewer"),
    ("GET", f"{API}/datasets/diff"): somewhere("viewer"),
    ("GET", f"{API}/datasets/{{name:path}}/versions"): somewhere("viewer"),
    ("POST", f"{API}/datasets/{{name:path}}/versions"): somewhere(
        "editor", also="editor on the experiment of the run named"),
    ("GET", f"{API}/datasets/{{name:path}}/versions/{{version}}"): somewhere("viewer"),
    ("GET", f"{API}/datasets/{{name:path}}/versions/{{version}}/files"): somewhere("viewer"),
    ("GET", f"{API}/datasets/{{name:path}}/versions/{{version}}/stats"): somewhere("viewer"),
    ("POST", f"{API}/datasets/{{name:path}}/versions/{{version}}/verify"): somewhere("viewer"),
    ("DELETE", f"{API}/datasets/{{name:path}}/versions/{{version}}"): somewhere(
        "editor", also="to the trash; force (an input of a live model version): global admin"),
    ("POST", f"{API}/datasets/{{name:path}}/versions/{{version}}/restore"): somewhere("editor"),
    ("POST", f"{API}/datasets/{{name:path}}/versions/{{version}}/delete"): somewhere(
        "editor", also="to the trash; force (an input of a live model version): global admin"),
    ("GET", f"{API}/trash"): ADMIN,
    ("POST", f"{API}/trash/empty"): ADMIN,
    # retention policies and artifact TTL (cairn.lifecycle.retention audits each change)
    ("GET", f"{API}/retention"): Need("user", also="experiments' policies: viewer on the "
                                                   "experiment; data sets': viewer somewhere"),
    ("GET", f"{API}/retention/plan"): ADMIN,
    ("GET", f"{API}/retention/experiments/{{experiment_id}}"): exp("viewer"),
    ("PUT", f"{API}/retention/experiments/{{experiment_id}}"): exp(
        "admin", "refused if it would trash what a Production or aliased model version needs"),
    ("DELETE", f"{API}/retention/experiments/{{experiment_id}}"): exp("admin"),
    ("GET", f"{API}/retention/datasets/{{name:path}}"): somewhere("viewer"),
    ("PUT", f"{API}/retention/datasets/{{name:path}}"): ADMIN,
    ("DELETE", f"{API}/retention/datasets/{{name:path}}"): ADMIN,
    ("PUT", f"{API}/runs/{{run_id}}/artifacts/ttl"): exp(
        "admin", "the run's artifacts are collected once it passes"),
    ("PUT", f"{API}/datasets/{{name:path}}/aliases/{{alias}}"): somewhere("editor"),
    ("DELETE", f"{API}/datasets/{{name:path}}/aliases/{{alias}}"): somewhere("editor"),
    ("POST", f"{API}/runs/{{run_id}}/inputs"): exp("editor"),
    ("GET", f"{API}/runs/{{run_id}}/inputs"): exp("viewer"),
    ("GET", f"{API}/lineage"): somewhere(
        "viewer", also="leaves out what the caller may not view"),
    # comments and saved views (cairn.server.routes.collab)
    ("GET", f"{API}/comments"): Need("user", also=_ON_TARGET),
    ("POST", f"{API}/comments"): Need("user", also=_ON_TARGET),
    ("GET", f"{API}/comments/mentions"): Need(
        "user", also="lists only comments on what the caller may view; another user's: "
                     "global admin"),
    ("GET", f"{API}/comments/{{comment_id}}"): Need("user", also=_ON_TARGET),
    ("GET", f"{API}/comments/{{comment_id}}/history"): Need("user", also=_ON_TARGET),
    ("PUT", f"{API}/comments/{{comment_id}}"): Need("user", also=_ON_TARGET + _OWN),
    ("DELETE", f"{API}/comments/{{comment_id}}"): Need("user", also=_ON_TARGET + _OWN),
    ("POST", f"{API}/comments/{{comment_id}}/restore"): Need("user", also=_ON_TARGET + _OWN),
    ("GET", f"{API}/experiments/{{experiment_id}}/views"): exp("viewer"),
    ("GET", f"{API}/experiments/{{experiment_id}}/views/{{name}}"): exp("viewer"),
    ("PUT", f"{API}/experiments/{{experiment_id}}/views/{{name}}"): exp(
        "editor", "replacing another user's view: admin"),
    ("DELETE", f"{API}/experiments/{{experiment_id}}/views/{{name}}"): exp(
        "editor", "another user's view: admin"),
    ("GET", f"{API}/dashboards"): Need(
        "user", also="lists those whose every experiment the caller may view"),
    ("GET", f"{API}/dashboards/{{name}}"): Need("user", also=_DASHBOARD),
    ("PUT", f"{API}/dashboards/{{name}}"): Need(
        "user", also="editor on every experiment its panels show; another user's: global admin"),
    ("DELETE", f"{API}/dashboards/{{name}}"): Need(
        "user", also=_DASHBOARD + "; its creator, or a global admin"),
    # reports (cairn.server.routes.reports)
    ("GET", f"{API}/reports"): Need(
        "user", also="lists those whose every experiment and model the caller may view"),
    ("GET", f"{API}/reports/{{name}}"): Need("user", also=_REPORT),
    ("GET", f"{API}/reports/{{name}}/data"): Need("user", also=_REPORT),
    ("GET", f"{API}/reports/{{name}}/export"): Need("user", also=_REPORT),
    ("POST", f"{API}/reports/check"): Need(
        "user", also="answers what saving would refuse (as PUT would decide); stores nothing"),
    ("PUT", f"{API}/reports/{{name}}"): Need(
        "user", also="editor on every experiment and model its panels draw from; another "
                     "user's: global admin"),
    ("DELETE", f"{API}/reports/{{name}}"): Need(
        "user", also=_REPORT + "; its author, or a global admin"),
    # the web UI: its pages, and the JSON only it reads
    ("GET", "/{path:path}"): OPEN,
    ("GET", f"{UI}/session"): OPEN,
    ("POST", f"{UI}/runs"): USER,
    ("GET", f"{UI}/keys"): USER,
    ("GET", f"{UI}/runs/{{run_id}}"): exp("viewer"),
    ("GET", f"{UI}/runs/{{run_id}}/series"): exp("viewer"),
    ("POST", f"{UI}/compare/aggregate"): exp("viewer", "of every run compared"),
    ("GET", f"{UI}/models/{{name}}"): model("viewer"),
    ("GET", f"{UI}/models/{{name}}/monitoring"): model("viewer"),
    ("GET", f"{UI}/kpi"): Need(
        "user", also="counts only the models the caller may view; `model=`: viewer on it"),
    ("GET", f"{UI}/datasets/{{name:path}}"): Need("somewhere", "viewer", in_body=True),
    ("GET", f"{UI}/check-filter"): USER,
    ("GET", f"{UI}/experiments"): Need("user", also="lists only the experiments the caller may "
                                                  "view"),
    ("GET", f"{UI}/trash"): Need("user", also="lists only what the caller may view"),
    # MLflow 3's client asks this once a minute
    ("GET", "/api/3.0/mlflow/server-info"): USER,
    # MLflow's version (MLflow's basic auth asks credentials for it too)
    ("GET", "/version"): USER,
}

# MLflow's routes, by their path under each of MLFLOW_PREFIXES.  Deleting, restoring or
# renaming an experiment, or deleting or restoring a run, hides runs from everyone: admin
# on the experiment, as for granting (MLflow's own auth asks MANAGE for deletes too).
MLFLOW: dict[tuple[str, str], Need] = {
    ("POST", "/experiments/create"): Need("all", "editor", "experiment"),
    ("GET", "/experiments/get"): exp("viewer"),
    ("GET", "/experiments/get-by-name"): exp("viewer"),
    ("POST", "/experiments/search"): USER,
    ("GET", "/experiments/search"): USER,
    ("POST", "/experiments/update"): exp("admin"),
    ("POST", "/experiments/delete"): exp("admin"),
    ("POST", "/experiments/restore"): exp("admin"),
    ("POST", "/experiments/set-experiment-tag"): exp("editor"),
    ("POST", "/experiments/delete-experiment-tag"): exp("editor"),
    ("POST", "/runs/create"): exp("editor"),
    ("GET", "/runs/get"): exp("viewer"),
    ("POST", "/runs/update"): exp("editor"),
    ("POST", "/runs/delete"): exp("admin"),
    ("POST", "/runs/restore"): exp("admin"),
    ("POST", "/runs/set-tag"): exp("editor"),
    ("POST", "/runs/delete-tag"): exp("editor"),
    ("POST", "/runs/log-parameter"): exp("editor"),
    ("POST", "/runs/log-metric"): exp("editor"),
    ("POST", "/runs/log-batch"): exp("editor"),
    ("POST", "/runs/log-inputs"): exp("editor"),
    ("POST", "/runs/log-model"): exp("editor"),
    ("POST", "/runs/search"): USER,
    ("GET", "/metrics/get-history"): exp("viewer"),
    ("GET", "/metrics/get-history-bulk-interval"): exp("viewer", "of every run named"),
    ("POST", "/logged-models"): exp("editor"),
    ("POST", "/logged-models/search"): USER,
    ("GET", "/logged-models/{model_id}"): exp("viewer"),
    ("PATCH", "/logged-models/{model_id}"): exp("editor"),
    ("DELETE", "/logged-models/{model_id}"): exp("editor"),
    ("PATCH", "/logged-models/{model_id}/tags"): exp("editor"),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key:path}"): exp("editor"),
    ("POST", "/logged-models/{model_id}/params"): exp("editor"),
    ("GET", "/logged-models/{model_id}/artifacts/directories"): exp("viewer"),
    ("POST", "/runs/outputs"): exp("editor"),
    ("POST", "/registered-models/create"): Need("all", "editor", "model"),
    ("GET", "/registered-models/get"): model("viewer"),
    ("PATCH", "/registered-models/update"): model("editor"),
    ("POST", "/registered-models/rename"): model("admin", "its roles move with it"),
    ("DELETE", "/registered-models/delete"): model(
        "admin", "refused while a version is protected; its roles go"),
    ("GET", "/registered-models/search"): USER,
    ("POST", "/registered-models/set-tag"): model("editor"),
    ("DELETE", "/registered-models/delete-tag"): model("editor"),
    ("POST", "/registered-models/get-latest-versions"): model("viewer"),
    ("GET", "/registered-models/get-latest-versions"): model("viewer"),
    ("POST", "/registered-models/alias"): model("editor"),
    ("DELETE", "/registered-models/alias"): model("editor"),
    ("GET", "/registered-models/alias"): model("viewer"),
    ("POST", "/model-versions/create"): model("editor", "viewer on the source run's experiment"),
    ("GET", "/model-versions/get"): model("viewer"),
    ("PATCH", "/model-versions/update"): model("editor"),
    ("DELETE", "/model-versions/delete"): model(
        "admin", "refused while it is in Production or has an alias"),
    ("GET", "/model-versions/search"): USER,
    ("GET", "/model-versions/get-download-uri"): model(
        "viewer", "viewer on the source run's experiment"),
    ("POST", "/model-versions/transition-stage"): model("editor"),
    ("POST", "/model-versions/set-tag"): model("editor"),
    ("DELETE", "/model-versions/delete-tag"): model("editor"),
    ("GET", "/artifacts/list"): exp("viewer"),
}

# What mlflow server serves under the UI's prefix only (MLFLOW_PREFIXES[1]).
MLFLOW_AJAX: dict[tuple[str, str], Need] = {
    ("POST", "/upload-artifact"): exp("editor"),
    ("GET", "/logged-models/{model_id}/artifacts/files"): exp("viewer"),
    ("GET", "/metrics/get-history-bulk"): exp("viewer", "of every run named"),
    ("POST", "/experiments/search-datasets"): exp("viewer", "of every experiment named"),
}

# MLflow's UI routes at the server's root.
MLFLOW_ROOT: dict[tuple[str, str], Need] = {
    ("GET", "/get-artifact"): exp("viewer"),
}

# mlflow-artifacts, by their path under each of MLFLOW_ARTIFACT_PREFIXES.  A path that is no
# run's artifacts is the experiment's its first part names, or else the server's.
_FREE = "a path outside runs: on the experiment its first part names, else on some experiment or model"
MLFLOW_ARTIFACTS: dict[tuple[str, str], Need] = {
    ("GET", "/artifacts"): exp("viewer", _FREE),
    ("GET", "/artifacts/{path:path}"): exp("viewer", _FREE),
    ("PUT", "/artifacts/{path:path}"): exp("editor", _FREE),
    ("DELETE", "/artifacts/{path:path}"): Need("user", also="not supported (400)"),
}


def _table() -> dict[tuple[str, str], Need]:
    table = {**NATIVE, **MLFLOW_ROOT}
    table.update({(m, MLFLOW_PREFIXES[1] + p): n for (m, p), n in MLFLOW_AJAX.items()})
    for prefix in MLFLOW_PREFIXES:
        table.update({(m, prefix + p): n for (m, p), n in MLFLOW.items()})
    for prefix in MLFLOW_ARTIFACT_PREFIXES:
        table.update({(m, prefix + p): n for (m, p), n in MLFLOW_ARTIFACTS.items()})
    return table


TABLE: dict[tuple[str, str], Need] = _table()


def lookup(method: str, path: str) -> Need | None:
    """The need of a route by its method and path template (HEAD: as GET)."""
    return TABLE.get(("GET" if method == "HEAD" else method, path))


def mounted_routes(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, endpoint) of every route an app serves, mounts included.

    HEAD, which Starlette adds to every GET, is left out: it is answered as the GET.
    """
    from starlette.routing import Mount

    contexts: Any
    try:  # FastAPI releases that keep included routers as such
        from fastapi.routing import iter_route_contexts as contexts
    except ImportError:  # pragma: no cover - older FastAPI: the routes are flat
        contexts = None

    def walk(routes: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
        flat = list(contexts(routes)) if contexts is not None else list(routes)
        for r in flat:
            original = getattr(r, "original_route", r)
            if isinstance(original, Mount):
                yield from walk(original.routes, prefix + str(original.path))
                continue
            for method in sorted(getattr(r, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + str(r.path), r.endpoint

    yield from walk(app.routes, "")


def markdown_table() -> str:
    """docs/server.md's table of routes and what each needs (MLflow's once per family)."""
    rows = ["| route | needs |", "|---|---|"]

    def add(items: dict[tuple[str, str], Need], prefix: str) -> None:
        for (method, path), need in items.items():
            rows.append(f"| `{method} {prefix}{path}` | {need.describe()} |")

    add(NATIVE, "")
    add(MLFLOW_ROOT, "")
    add(MLFLOW, "{mlflow}")
    add(MLFLOW_AJAX, MLFLOW_PREFIXES[1])
    add(MLFLOW_ARTIFACTS, "{mlflow-artifacts}")
    return "\n".join(rows)
