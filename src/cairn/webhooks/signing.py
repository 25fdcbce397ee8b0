"""The signature of a webhook delivery, and how a receiver checks it.

Every delivery carries ``Cairn-Signature: sha256=<hex>``: the HMAC-SHA256 of the exact
request body under the subscription's secret (UTF-8).  A receiver recomputes it over the
bytes it received, before parsing them, and compares in constant time::

    from cairn.webhooks.signing import verify

    if not verify(SECRET, request_body, request_headers.get("Cairn-Signature")):
        return 401

This module imports only the standard library, so a receiver may copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if isinstance(secret, str):
        return secret.encode("utf-8")
    raise TypeError(f"secret must be str or bytes, got {type(secret).__name__}")


def sign(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` under ``secret``."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, got {type(body).__name__}")
    return PREFIX + hmac.new(_key(secret), bytes(body), hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (the ``Cairn-Signature`` value) signs ``body`` under ``secret``;
    a missing or malformed header is False.  Constant time in the signature."""
    if not isinstance(header, str) or not header.startswith(PREFIX):
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode("ascii"),
                               header.strip().encode("ascii", "replace"))
