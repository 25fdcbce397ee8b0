"""Server settings: one frozen value handed to :func:`cairn.server.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How one server process behaves.  Every replica of a team server gets the same values.

    ``auth``: require API tokens (off for the local default, on for a team server).
    ``bootstrap_token``: with auth, make this token an admin's (e.g. from a secret store),
    otherwise the first start prints a generated admin token once.
    ``audit``: record every mutating request in the hash-chained audit log (needs an
    SQL-backed store).
    ``max_request_bytes``: larger request bodies get 413.
    ``check_artifact_objects``: refuse artifact entries whose objects the server lacks
    (clients upload objects first); off only for tests of the bare store protocol.
    ``telemetry``: FastAPI's own OpenTelemetry spans and request metrics, for a process
    with an OpenTelemetry SDK configured.  Off by default: deciding per request whether
    a provider is configured cost 5% of metric ingestion.
    ``default_artifact_root``: MLflow's ``--default-artifact-root``: a new experiment made
    through the MLflow API (and ``Default``) gets ``<root>/<id>`` as its artifact location,
    where MLflow's client then writes its runs' files itself.  None: Cairn's proxy
    (``mlflow-artifacts:/<id>``) into its object store, MLflow's default with
    ``--serve-artifacts``; see :func:`artifact_root`.
    """

    auth: bool = False
    bootstrap_token: str | None = None
    bootstrap_user: str = "admin"
    audit: bool = True
    max_request_bytes: int = 64 * MiB
    max_object_bytes: int = 16 * MiB
    max_search_results: int = 10_000
    token_cache_s: float = 5.0
    check_artifact_objects: bool = True
    telemetry: bool = False
    default_artifact_root: str | None = None


def artifact_root(root: str | None, serve_artifacts: bool = True) -> str | None:
    """``default_artifact_root`` for MLflow's two options, resolved as ``mlflow server`` does:
    a relative path against the working directory; none given, Cairn's proxy when serving
    artifacts and ``./mlruns`` when not."""
    import os
    from urllib.parse import urlparse

    if not root:
        if serve_artifacts:
            return None
        root = "mlruns"
    if root.rstrip("/") == "mlflow-artifacts:":
        return None  # the proxy, named explicitly
    if not urlparse(root).scheme and not os.path.isabs(root):
        return os.path.abspath(root)
    return root
