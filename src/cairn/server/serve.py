"""Building a server from command-line choices, and running it with uvicorn.

The choices travel to uvicorn's worker processes as JSON in ``CAIRN_SERVER_CONFIG``,
so ``--workers N`` gives N identical, stateless replicas of the app.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InvalidArgument
from .config import ServerSettings

ENV = "CAIRN_SERVER_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """Where the data lives: ``db`` (a database URL, or None for the local store at ``store``),
    ``objects`` (a directory or ``s3://bucket/prefix``; by default the local store's own),
    ``cold_objects`` (the objects' cold tier, see cairn.cas.tiering)."""

    store: str = ".cairn"
    db: str | None = None
    objects: str | None = None
    endpoint_url: str | None = None
    cold_objects: str | None = None
    cold_endpoint_url: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def build(cfg: ServeConfig):
    """(store, objects, settings) for a config; does no I/O."""
    settings = ServerSettings(**cfg.settings)
    objects = None
    if cfg.objects:
        objects = open_objects(cfg.objects, cfg.endpoint_url)
    if cfg.db:
        from ..store.sql.store import SqlStore

        if objects is None:
            raise InvalidArgument("a database-backed server needs --objects (a directory shared "
                                  "by every replica, or s3://bucket/prefix)")
        store = SqlStore(cfg.db, objects)
    else:
        from ..store.local import LocalStore

        store = LocalStore(os.path.abspath(os.path.expanduser(cfg.store)))
        objects = objects or store.objects
    return store, objects, settings


def open_objects(spec: str, endpoint_url: str | None = None):
    from ..cas.odb import ObjectStore

    if spec.startswith("s3://"):
        from ..cas.backends.s3 import S3Backend
        from ..cas.layers import layered

        return ObjectStore(layered(S3Backend.from_url(spec, endpoint_url=endpoint_url)))
    if "://" in spec and not spec.startswith("file://"):
        raise InvalidArgument(f"--objects must be a directory or s3://bucket/prefix, got {spec!r}")
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    return ObjectStore.local(os.path.abspath(os.path.expanduser(path)))


def app_from_env():
    """The app factory uvicorn's workers call (``cairn.server.serve:app_from_env``)."""
    from .app import create_app

    raw = os.environ.get(ENV)
    cfg = ServeConfig(**json.loads(raw)) if raw else ServeConfig()
    store, objects, settings = build(cfg)
    return create_app(store, objects, settings)


def prepare(cfg: ServeConfig) -> str | None:
    """Open (or create) the schema and bootstrap auth once, before workers start.

    Returns a newly generated admin token, to be shown once.
    """
    from .context import ServerContext

    store, objects, settings = build(cfg)
    if cfg.cold_objects:
        from ..cas.tiering import configure

        # Recorded beside the objects (tiers.json), where every worker's store finds it.
        configure(objects, cfg.cold_objects, cfg.cold_endpoint_url)
    try:
        return ServerContext(store, objects, settings).start()
    finally:
        store.close()


def run(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 5000, workers: int = 1,
        log_level: str = "info", tls: dict[str, Any] | None = None) -> None:
    """Serve until stopped; ``tls``: uvicorn's ``ssl_certfile``, ``ssl_keyfile`` and
    ``ssl_keyfile_password`` for https (checked by the caller; kept out of the
    environment that carries ``cfg``, as the password must be)."""
    import uvicorn

    os.environ[ENV] = json.dumps(asdict(cfg))
    uvicorn.run("cairn.server.serve:app_from_env", factory=True, host=host, port=port,
                workers=workers if workers > 1 else None, log_level=log_level,
                timeout_keep_alive=30, access_log=False, **(tls or {}))
