"""Keyed pseudonyms: HMAC-SHA256 of a value under the team's key.

The same key maps one person to the same pseudonym on every machine of a team (so
runs stay comparable by who ran them); without the key a pseudonym cannot be turned
back into a name by trying likely names, which an unkeyed hash would allow.
"""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_LENGTH = 16


def pseudonym(key: bytes, category: str, value: str, length: int = 8) -> str:
    """``<category>-<hex>``: the first ``length`` hex digits of HMAC-SHA256(key, category:value).

    The category is inside the MAC, so a user and a host of the same name get unrelated
    pseudonyms.  User and host names are compared case-insensitively (``Alice`` on
    Windows and ``alice`` on Linux are one person); a lone surrogate is hashed as its
    escape rather than refused: this runs on what Cairn gathered itself.
    """
    text = value.lower() if category in ("user", "host", "email") else value
    data = f"{category}:{text}".encode("utf-8", "backslashreplace")
    digest = hmac.new(key, data, hashlib.sha256).hexdigest()
    return f"{category}-{digest[:length]}"
