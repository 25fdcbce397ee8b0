"""Which registry, data set and lineage service a store gets, decided in one table.

A service takes the store it works on and the user it acts as::

    from cairn.services import registry_for, datasets_for, lineage_for

    reg = registry_for(store, "alice")      # Registry, or RemoteRegistry for a server's client
    ds = datasets_for(store, "alice")       # Datasets, or RemoteDatasets
    graph = lineage_for(store, "alice").graph("transactions@3")

:data:`SERVICES` maps a store type to the services made for it (a type not listed, nor
any of its bases, gets :data:`LOCAL`: the services that work on the store's SQL index).
:class:`cairn.Client` and the server's routes both build their services here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .data.api import Datasets
    from .lineage import Lineage
    from .registry.remote import RemoteRegistry
    from .registry.service import Registry
    from .store.base import Store

__all__ = ["LOCAL", "REMOTE", "SERVICES", "Services", "StoreService", "datasets_for",
           "lineage_for", "register_services", "registry_for", "services_of"]


@dataclass(frozen=True)
class Services:
    """The service classes for one kind of store, as ``"module:Class"`` (imported on use)."""

    registry: str
    datasets: str
    lineage: str

    def load(self, which: str) -> type:
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), name)


#: Services over the store's own SQL index and object store (local directory, PostgreSQL).
LOCAL = Services("cairn.registry.service:Registry", "cairn.data.api:Datasets",
                 "cairn.lineage:Lineage")
#: Services over a Cairn server's REST API (a client's :class:`~cairn.store.http.HttpStore`).
REMOTE = Services("cairn.registry.remote:RemoteRegistry", "cairn.data.remote:RemoteDatasets",
                  "cairn.lineage:RemoteLineage")

#: store type ("module.QualName", so no store module is imported to look one up) -> services.
SERVICES: dict[str, Services] = {"cairn.store.http.HttpStore": REMOTE}


def register_services(store_type: type | str, services: Services) -> None:
    """Make ``services`` the ones built for stores of ``store_type`` (and its subclasses)."""
    key = store_type if isinstance(store_type, str) else \
        f"{store_type.__module__}.{store_type.__qualname__}"
    SERVICES[key] = services


def services_of(store: Any) -> Services:
    """The services for ``store``'s type: the first of its classes (in MRO order) listed."""
    for cls in type(store).__mro__:
        found = SERVICES.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return LOCAL


def registry_for(store: "Store | Client", user: str | None = None) -> "Registry | RemoteRegistry":
    """The model registry on ``store``, acting as ``user`` (default: the current user).

    A :class:`~cairn.Client` stands for its store and user (as in every ``*_for``)."""
    return services_of(store_of(store)).load("registry")(store, user)


def datasets_for(store: "Store | Client", user: str | None = None) -> "Datasets":
    """Data set versioning on ``store``, acting as ``user``."""
    return services_of(store_of(store)).load("datasets")(store, user)


def lineage_for(store: "Store | Client | None" = None, user: str | None = None) -> "Lineage":
    """The lineage graph of ``store``'s data sets, runs and model versions."""
    return services_of(store_of(store)).load("lineage")(store, user)


class StoreService:
    """What a service holds: its store, the user it acts as, and a :class:`~cairn.Client`
    on the same store for the run reads and writes it needs (a run's source, logging the
    files of a version to its run).

    ``target`` is a store; a :class:`~cairn.Client` (its store, user and runs) is accepted
    too, and with nothing the fluent API's client is used (``cairn.set_tracking_uri``).
    """

    def __init__(self, target: Any = None, user: str | None = None) -> None:
        runs = _client_for(target, user)
        self._runs = runs
        self._backend = runs.store
        self._user = user

    @property
    def user(self) -> str:
        return self._user or self._runs.user

    @property
    def client(self) -> "Client":
        """The client this service reads and writes runs with."""
        return self._runs


def _client_for(target: Any, user: str | None) -> "Client":
    from .client import Client

    if target is None:
        from .fluent import _client

        return _client()
    if isinstance(target, Client):
        return target
    return Client(store=target, user=user)


def store_of(target: Any = None) -> "Store":
    """The store a service made from ``target`` (a store, a Client or None) works on."""
    from .client import Client

    if target is None:
        from .fluent import _client

        return _client().store
    if isinstance(target, Client):
        return target.store
    return target
