"""``cairn.models``: load registered models by reference, from the current tracking store.

::

    m = cairn.models.load("fraud-detector@production")      # a stage
    m = cairn.models.load("fraud-detector@champion")        # an alias
    m = cairn.models.load("fraud-detector/1.3.0", check_inputs=X)

Each function takes ``client=`` to use another store or user.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .entities import ModelVersion

if TYPE_CHECKING:
    from .remote import RemoteRegistry
    from .service import Registry


def _registry(client: Any = None) -> Registry | RemoteRegistry:
    if client is None:
        from ..client import Client

        client = Client()
    return client._registry


def load(ref: Any, *, client: Any = None, **options: Any) -> Any:
    """Load a model version, verifying its record, signature and files (see docs/registry.md)."""
    return _registry(client).load_model(ref, **options)


def get(ref: Any, *, client: Any = None) -> ModelVersion:
    """The :class:`ModelVersion` a reference resolves to, without loading it."""
    return _registry(client).resolve(ref)


def download(ref: Any, dst: Any = None, *, client: Any = None, **options: Any) -> Path:
    """The version's files: the verified read-only cache directory, or a copy under ``dst``."""
    return _registry(client).download_model(ref, dst, **options)


def check_inputs(ref: Any, inputs: Any, *, client: Any = None) -> None:
    """Raise :class:`~cairn.errors.InvalidArgument` when ``inputs`` do not fit the signature."""
    from .signature import check

    mv = get(ref, client=client)
    check(mv.signature, inputs, mv.uri)


__all__ = ["check_inputs", "download", "get", "load"]
