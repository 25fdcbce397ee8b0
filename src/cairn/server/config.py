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
