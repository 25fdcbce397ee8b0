"""Store backends and the one place that turns a tracking URI into a store."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument

_STORES: dict[str, Any] = {}
_LOCK = threading.Lock()


def open_store(uri: str) -> Any:
    """The process-wide store for ``uri``: a directory path, ``file://``, ``memory://name`` or
    the URL of a Cairn server (``http://host:port``, see :mod:`cairn.store.http`).

    Stores are shared per process so every Client and run in it uses one set of
    journal handles and one connection pool.  Nothing is read until first use.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument(f"tracking URI must be a non-empty string, got {uri!r}")
    if uri.startswith("memory://"):
        key = uri
    elif uri.startswith(("http://", "https://")):
        key = uri.rstrip("/")
    elif uri.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        key = uri  # a server's database, for admin commands (cairn audit verify, users ...)
    elif "://" in uri and not uri.startswith("file://"):
        raise InvalidArgument(f"unsupported tracking URI scheme in {uri!r}; use a directory path, "
                              "file://PATH, memory://NAME, http(s)://SERVER or postgresql://...")
    else:
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        key = str(Path(os.path.expanduser(path)).resolve())
    with _LOCK:
        store = _STORES.get(key)
        if store is None:
            if key.startswith(("http://", "https://")):
                store = _http_store(key)
            elif key.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
                from .sql.store import SqlStore

                store = SqlStore(key)
            elif key.startswith("memory://"):
                from .memory import MemoryStore

                store = MemoryStore(key[len("memory://"):])
            else:
                from .local import LocalStore

                store = LocalStore(key)
            _STORES[key] = store
        return store


def _http_store(url: str) -> Any:
    from .. import settings
    from .http import HttpStore

    return HttpStore(url, token=settings.TRACKING_TOKEN.get() or None,
                     spool_dir=settings.SPOOL_DIR.get() or None,
                     drain_timeout=settings.SPOOL_DRAIN_TIMEOUT.get(), fsync=settings.FSYNC.get())


def _forget_after_fork() -> None:
    # SQLite connections and journal handles must not cross a fork.
    _STORES.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
