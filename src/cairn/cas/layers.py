"""The layers a store's objects pass through on their way to where they are kept.

Every object store a Cairn store opens (a local directory, a server's ``--objects``
directory or ``s3://`` bucket) is built here, so encryption at rest and tiering apply
to all of them alike.  Layers are :class:`~cairn.cas.backends.base.Backend` wrappers,
outermost first::

    ObjectStore -> encryption (cairn.cas.crypto) -> tiering (cairn.cas.tiering) -> backend

Encryption sits outside tiering so that the cold tier only ever holds ciphertext.
Each layer decides from the store's own marker files and the settings whether it
applies; a store that uses neither gets its backend unwrapped.
"""

from __future__ import annotations

from .backends.base import Backend


def layered(backend: Backend) -> Backend:
    """``backend`` with the layers this store uses (none yet for most stores)."""
    # Tiering (cairn.cas.tiering): a local or S3 store is wrapped whether or not it has a
    # cold tier yet, so a process running before the first `cairn tier` still finds moved
    # objects.
    from .tiering import tiered

    inner = tiered(backend)
    # Encryption: the marker lives with ``backend`` (the hot store), the sealed bytes go to
    # ``inner``; raises EncryptionError for an encrypted store opened without its key.
    from .crypto import encryption_layer

    return encryption_layer(backend, inner)
