"""The checks every value entering the webhooks API passes, with messages a user can act on.

Kept apart from the service so that the event producers, the dispatcher and an alert
rule's own ``notify`` (``enqueue_direct``) refuse the same things the same way.
"""

from __future__ import annotations

import math
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from ..store.validation import check_json, check_text

MAX_URL = 2048
MAX_SECRET = 512
MIN_SECRET = 8
MAX_KEY = 200  # events.key
MAX_FILTER = 256  # a model name or experiment id in a filter
MAX_LIMIT = 1000
FORMATS = ("json", "slack")
STATES = ("pending", "delivered", "dead")


def check_url(url: Any) -> str:
    """An absolute http(s) URL with a host, at most 2048 characters."""
    check_text(url, "webhook url")
    if not url or len(url) > MAX_URL:
        raise InvalidArgument(f"webhook url must be 1 to {MAX_URL} characters, got "
                              f"{len(url)}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidArgument(f"webhook url {url[:80]!r} contains whitespace or control "
                              "characters")
    if not url.isascii():
        raise InvalidArgument(f"webhook url {url[:80]!r} must be ASCII: percent-encode its path "
                              "and query, and give an international host name in punycode")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as e:
        raise InvalidArgument(f"webhook url {url[:80]!r} is not a valid URL: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidArgument(f"webhook url must start with http:// or https://, got "
                              f"{url[:80]!r}")
    if not parts.hostname:
        raise InvalidArgument(f"webhook url {url[:80]!r} has no host")
    return url


def check_secret(secret: Any) -> str:
    """A signing secret: printable text of 8 to 512 characters."""
    check_text(secret, "webhook secret")
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise InvalidArgument(f"webhook secret must be {MIN_SECRET} to {MAX_SECRET} characters "
                              f"long, got {len(secret)}")
    if not secret.isprintable() or secret.strip() != secret:
        raise InvalidArgument("webhook secret must be printable, without leading or trailing "
                              "whitespace")
    return secret


def check_format(fmt: Any) -> str:
    check_text(fmt, "webhook format")
    if fmt not in FORMATS:
        raise InvalidArgument(f"webhook format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def check_event_type(kind: Any) -> str:
    from .events import EVENT_TYPES

    check_text(kind, "event type")
    if kind not in EVENT_TYPES:
        raise InvalidArgument(f"unknown event type {kind!r}; the types are: "
                              f"{', '.join(EVENT_TYPES)}")
    return kind


def check_event_types(kinds: Any) -> tuple[str, ...]:
    """A sorted tuple of known event types without duplicates (empty: every type)."""
    if kinds is None:
        return ()
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, Iterable) or isinstance(kinds, (bytes, dict)):
        raise InvalidArgument(f"events must be a list of event types, got "
                              f"{type(kinds).__name__}")
    return tuple(sorted({check_event_type(k) for k in kinds}))


def check_filter_value(value: Any, field: str) -> str | None:
    if value is None:
        return None
    check_text(value, field)
    if not value or len(value) > MAX_FILTER or value.strip() != value:
        raise InvalidArgument(f"{field} must be 1 to {MAX_FILTER} characters without leading "
                              f"or trailing whitespace, got {value[:80]!r}")
    if not value.isprintable():
        raise InvalidArgument(f"{field} {value[:80]!r} contains control characters")
    return value


def check_id(value: Any, what: str) -> str:
    check_text(value, f"{what} id")
    if not value or len(value) > 32 or not value.isalnum() or not value.isascii():
        raise InvalidArgument(f"{what} id must be up to 32 letters and digits, got "
                              f"{value[:80]!r}")
    return value


def check_int(value: Any, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_limit(limit: Any) -> int:
    return check_int(limit, "limit", 1, MAX_LIMIT)


def check_state(state: Any) -> str | None:
    if state is None:
        return None
    check_text(state, "delivery state")
    if state not in STATES:
        raise InvalidArgument(f"delivery state must be one of {', '.join(STATES)}, got "
                              f"{state!r}")
    return state


def check_key(key: Any) -> str:
    check_text(key, "event key")
    if not key or len(key) > MAX_KEY:
        raise InvalidArgument(f"event key must be 1 to {MAX_KEY} characters, got {len(key)}")
    return key


def check_payload(payload: Any) -> dict[str, Any]:
    """A JSON object of valid Unicode, finite numbers and JSON types only."""
    if not isinstance(payload, dict):
        raise InvalidArgument(f"event payload must be a dict, got {type(payload).__name__}")
    check_json(payload, "event payload")
    stack: list[Any] = [payload]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, str):
                    raise InvalidArgument(f"event payload keys must be strings, got {k!r}")
                stack.append(v)
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, float):
            if not math.isfinite(obj):
                raise InvalidArgument(f"event payload holds {obj!r}; JSON has no NaN or "
                                      "infinity (send null instead)")
        elif obj is not None and not isinstance(obj, (str, int, bool)):
            raise InvalidArgument(f"event payload holds a {type(obj).__name__} ({obj!r:.80}); "
                                  "only JSON types are allowed")
    return payload


def check_text_field(value: Any, field: str, limit: int = 200) -> str:
    """Non-empty printable text of at most ``limit`` characters."""
    check_text(value, field)
    if not value or len(value) > limit or not value.isprintable():
        raise InvalidArgument(f"{field} must be 1 to {limit} printable characters, got "
                              f"{value[:80]!r}")
    return value
