"""The store layer's tunables, and where a store given none of them finds its own.

Stores read no settings and no environment.  Each takes its tunables as plain
constructor arguments (``LocalStore(path, index_delay=0.0, fsync=True,
heartbeat_timeout=60.0)``); one left out (None) is asked of :data:`DEFAULTS` at each
use.  The layer above the stores (:mod:`cairn.store_settings`, imported with
``cairn``) points :data:`DEFAULTS` at the ``CAIRN_*`` settings, read when asked, so a
setting changed later still takes effect, as docs/settings.md promises; without it the
built-in values below apply (they are the settings' defaults, which a test checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar, Union

__all__ = ["DEFAULTS", "StoreOptions", "Tunable", "default", "resolve", "set_defaults"]

T = TypeVar("T")
#: A value, or a function of no arguments asked for it at each use.
Tunable = Union[T, Callable[[], T]]


@dataclass(frozen=True)
class StoreOptions:
    """Every store's tunables; each a value or a zero-argument function."""

    #: Seconds a local store's index write may wait to share a transaction (group commit).
    index_delay: Tunable[float] = 0.01
    #: fsync every journal (and spool) append.
    fsync: Tunable[bool] = False
    #: Seconds without a heartbeat after which a RUNNING run reads as KILLED.
    heartbeat_timeout: Tunable[float] = 60.0
    #: API token an :class:`~cairn.store.http.HttpStore` sends ("" for none).
    tracking_token: Tunable[str] = ""
    #: Where an HttpStore spools records ("" for ~/.cache/cairn/spool).
    spool_dir: Tunable[str] = ""
    #: Seconds an ending run waits for an unreachable server before leaving its spool.
    spool_drain_timeout: Tunable[float] = 10.0
    #: CA certificates (PEM file or directory) an HttpStore trusts ("" for the system's).
    ca_bundle: Tunable[str] = ""
    #: Whether an HttpStore checks an https:// server's certificate.
    tls_verify: Tunable[bool] = True


#: The tunables of stores constructed without them (see :func:`set_defaults`).
DEFAULTS = StoreOptions()


def set_defaults(options: StoreOptions) -> None:
    """Make ``options`` what every store given no value of its own uses from now on."""
    global DEFAULTS
    DEFAULTS = options


def default(name: str) -> Any:
    """The default of tunable ``name`` (a :class:`StoreOptions` field) now."""
    value = getattr(DEFAULTS, name)
    return value() if callable(value) else value


def resolve(value: Any, name: str) -> Any:
    """``value`` (what a store was given), or when it is None the default for ``name`` now."""
    return default(name) if value is None else value
