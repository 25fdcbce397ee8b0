"""Attaching a signature made elsewhere to a registered, still unsigned version.

A remote client registers a version first (the server assigns its number and
created time, both part of what is signed), then signs the canonical payload with
its private key, which never leaves its machine.  This module is the server's half:
the signature is accepted only when it verifies against a key this store trusts,
and only once: a version's signature is as immutable as the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import clock
from ..errors import Conflict, InvalidArgument, InvalidSignature
from . import repo, signing
from .entities import ModelVersion
from .semver import SemVer

if TYPE_CHECKING:  # pragma: no cover
    from .service import Registry


def attach_signature(reg: "Registry", name: str, version: str, key_id: str,
                     signature: bytes) -> ModelVersion:
    """Store ``signature`` by trusted key ``key_id`` on ``name/version`` (audited, once)."""
    version = str(SemVer.parse(version))
    with reg.session(write=True) as conn:
        row = repo.require_version(conn, name, version)
        what = f"{name}/{version}"
        if row.signing_key is not None:
            raise Conflict(f"{what} is already signed (by key {row.signing_key}); a version's "
                           "signature cannot be replaced", name=name, version=version)
        key = repo.key_row(conn, key_id)
        if key is None or key.revoked_at is not None:
            state = "revoked" if key is not None else "not trusted"
            raise InvalidArgument(f"key {key_id!r} is {state} on this server, so its signature "
                                  f"of {what} was not stored; an admin trusts a public key with "
                                  "`cairn keys trust FILE --name NAME`", key_id=key_id)
        message = signing.payload(name, version, row.tree_oid, row.source_run_id, row.created_at,
                                  row.digest)
        try:
            signing.verify(key.public_key, signature, message, what)
        except InvalidSignature:
            # The caller's mistake, not damage in this store: a 4xx, and nothing stored.
            raise InvalidArgument(f"the signature does not verify with key {key_id} over the "
                                  f"canonical description of {what} as registered (name, "
                                  "version, tree, source run, created time, digest); it was not "
                                  "stored", key_id=key_id, name=name, version=version) from None
        # Compare-and-set: of two racing signers, exactly one wins.
        done = conn.execute(sa.update(repo.MV)
                            .where(repo.MV.c.name == name, repo.MV.c.version == version,
                                   repo.MV.c.signing_key.is_(None))
                            .values(signing_key=key_id, signature_bytes=signature))
        if done.rowcount != 1:
            raise Conflict(f"{what} was signed a moment ago by someone else; a version's "
                           "signature cannot be replaced", name=name, version=version)
        now = clock.now_ms()
        repo.record(conn, reg.user, "model_version.sign", f"model:{what}",
                    {"signing_key": None}, {"signing_key": key_id}, now)
        return repo.to_version(repo.require_version(conn, name, version), repo.aliases(conn, name))
