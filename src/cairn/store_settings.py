"""The stores' tunables from the ``CAIRN_*`` settings: the settings-reading layer over
:mod:`cairn.store`, which reads no settings itself.

Importing ``cairn`` imports this module, which points :data:`cairn.store.options.DEFAULTS`
at :data:`FROM_SETTINGS`: every store, however it is made (``open_store``, a server's
``LocalStore(path)``, a test's), then reads each setting when it needs it, so one
changed later still takes effect (docs/settings.md).  A value given to a store's
constructor wins over its setting.
"""

from __future__ import annotations

from . import settings
from .store import options

__all__ = ["FROM_SETTINGS", "install"]

#: Each tunable read from its setting at each use.
FROM_SETTINGS = options.StoreOptions(
    index_delay=settings.INDEX_DELAY.get,
    fsync=settings.FSYNC.get,
    heartbeat_timeout=settings.HEARTBEAT_TIMEOUT.get,
    tracking_token=settings.TRACKING_TOKEN.get,
    spool_dir=settings.SPOOL_DIR.get,
    spool_drain_timeout=settings.SPOOL_DRAIN_TIMEOUT.get,
    ca_bundle=settings.CA_BUNDLE.get,
    tls_verify=settings.TLS_VERIFY.get,
)


def install() -> None:
    """Make the settings what stores given no value of their own use (done on import)."""
    options.set_defaults(FROM_SETTINGS)


install()
