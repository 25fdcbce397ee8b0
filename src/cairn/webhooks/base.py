"""What the webhooks service and the dispatcher share: a store with an SQL index."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from ..services import StoreService
from ..store.base import Indexed

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class IndexedService(StoreService):
    """A service over the tables of a store's SQL index (a local store, PostgreSQL)."""

    @property
    def store(self) -> Any:
        store = self._backend
        uri = str(getattr(store, "uri", ""))
        if uri.startswith(("http://", "https://")):
            raise InvalidArgument(f"webhooks and events are not supported over a server yet "
                                  f"({uri}); run them against the server's own store (its "
                                  "directory or PostgreSQL URL)")
        if not isinstance(store, Indexed):
            raise InvalidArgument(f"webhooks and events need a store with a database (a local "
                                  f"store directory or PostgreSQL), not {uri or store!r}")
        store.open()
        return store

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self.store.index.session(write=write)
