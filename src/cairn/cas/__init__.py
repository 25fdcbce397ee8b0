"""Content-addressed object store: artifacts, data-set files and model weights.

See ``docs/objects.md`` for the on-disk format.  Import from here::

    from cairn.cas import ObjectStore
    store = ObjectStore.local(".cairn/objects")
    entry = store.put_file("model.pt", "model.pt")
"""

from .backends import Backend, LocalBackend, MemoryBackend
from .odb import CHUNK_THRESHOLD, ObjectStore
from .tree import referenced_oids
from .verify import VerifyResult

__all__ = [
    "CHUNK_THRESHOLD",
    "Backend",
    "LocalBackend",
    "MemoryBackend",
    "ObjectStore",
    "VerifyResult",
    "referenced_oids",
]
