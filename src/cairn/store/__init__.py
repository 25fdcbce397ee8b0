"""Store backends and the one place that turns a tracking URI into a store.

:func:`open_store` looks the URI's scheme up in one table (:data:`SCHEMES`, as MLflow
picks a tracking store by scheme): each entry canonicalises the URI (the key that
shares one store per process) and makes the store.  A URI with no registered scheme
is a directory path.  :func:`register_scheme` adds a backend.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InvalidArgument
from .base import Store

__all__ = ["SCHEMES", "Scheme", "Store", "close_store", "close_stores", "open_store", "register_scheme"]


@dataclass(frozen=True)
class Scheme:
    """How one URI scheme opens a store: ``canonical(uri)`` is the per-process sharing key,
    ``factory(key)`` makes the store for it."""

    factory: Callable[[str], Store]
    canonical: Callable[[str], str] = lambda uri: uri


def _directory_key(uri: str) -> str:
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return str(Path(os.path.expanduser(path)).resolve())


def _local_store(key: str) -> Store:
    from .local import LocalStore

    return LocalStore(key)


def _sql_store(key: str) -> Store:
    from .sql.store import SqlStore

    return SqlStore(key)


def _memory_store(key: str) -> Store:
    from .memory import MemoryStore

    return MemoryStore(key[len("memory://"):])


def _http_store(url: str) -> Store:
    # The token, spool and fsync are the process's, as they are when the store opens
    # (options.DEFAULTS: the CAIRN_* settings once cairn.store_settings is imported).
    from . import options
    from .http import HttpStore

    opt = options.default
    return HttpStore(url, token=opt("tracking_token") or None, spool_dir=opt("spool_dir") or None,
                     drain_timeout=opt("spool_drain_timeout"), fsync=opt("fsync"))


_LOCAL = Scheme(_local_store, _directory_key)
_SQL = Scheme(_sql_store)  # a server's database, for admin commands (cairn audit verify, users ...)
_HTTP = Scheme(_http_store, lambda uri: uri.rstrip("/"))

#: scheme -> how to open it; a URI without a registered scheme is a directory path.
SCHEMES: dict[str, Scheme] = {
    "file": _LOCAL,
    "memory": Scheme(_memory_store),
    "http": _HTTP,
    "https": _HTTP,
    "postgresql": _SQL,
    "postgresql+psycopg": _SQL,
    "postgres": _SQL,
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")

_STORES: dict[str, Store] = {}
_LOCK = threading.Lock()


def register_scheme(scheme: str, factory: Callable[[str], Store],
                    canonical: Callable[[str], str] | None = None) -> None:
    """Open URIs of ``scheme`` (``scheme://...``) with ``factory`` (given the canonical URI)."""
    SCHEMES[scheme.lower()] = Scheme(factory, canonical or (lambda uri: uri))


def _scheme(uri: str) -> Scheme:
    m = _SCHEME.match(uri)
    if m is not None and m.group(1).lower() in SCHEMES:
        return SCHEMES[m.group(1).lower()]
    if "://" in uri:
        raise InvalidArgument(f"unsupported tracking URI scheme in {uri!r}; use a directory path, "
                              "file://PATH, memory://NAME, http(s)://SERVER or postgresql://...")
    return _LOCAL


def local_directory(uri: str) -> Path | None:
    """The directory of a local store URI (a path or ``file://``); None for other kinds."""
    if not isinstance(uri, str) or not uri or _scheme(uri) is not _LOCAL:
        return None
    return Path(_directory_key(uri))


def open_store(uri: str) -> Store:
    """The process-wide store for ``uri``: a directory path, ``file://``, ``memory://name``,
    the URL of a Cairn server (``http://host:port``, see :mod:`cairn.store.http`) or a
    server's database (``postgresql://...``).

    Stores are shared per process (one per canonical URI) so every Client and run in it
    uses one set of journal handles and one connection pool.  Nothing is read until
    first use.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument(f"tracking URI must be a non-empty string, got {uri!r}")
    scheme = _scheme(uri)
    key = scheme.canonical(uri)
    with _LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = scheme.factory(key)
        return store


def close_store(uri: str) -> bool:
    """Close and forget the process-wide store for ``uri``, if one is open; the next
    :func:`open_store` of it makes a new one.  True if there was one."""
    key = _scheme(uri).canonical(uri)
    with _LOCK:
        store = _STORES.pop(key, None)
    if store is None:
        return False
    store.close()
    return True


def close_stores(*schemes: str) -> None:
    """Close and forget the process-wide stores (only those of URI ``schemes``, such as
    ``"http", "https"``, when given; directories are ``"file"``)."""
    wanted = {SCHEMES[s.lower()] for s in schemes}
    with _LOCK:
        keys = [k for k in _STORES if not wanted or _scheme(k) in wanted]
        stores = [_STORES.pop(k) for k in keys]
    for store in stores:
        store.close()


def _forget_after_fork() -> None:
    # SQLite connections and journal handles must not cross a fork.
    _STORES.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
