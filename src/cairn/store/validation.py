"""Input checks shared by every store and the client, with messages a user can act on."""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidArgument

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = 500


def check_key(key: Any, kind: str) -> str:
    if not isinstance(key, str):
        raise InvalidArgument(f"{kind} key must be a string, got {type(key).__name__} {key!r}")
    if not key or key.strip() != key or len(key) > MAX_KEY:
        if not key:
            raise InvalidArgument(f"{kind} key must not be empty")
        if len(key) > MAX_KEY:
            raise InvalidArgument(f"{kind} key is {len(key)} characters long; the limit is {MAX_KEY}: "
                                  f"{key[:40]!r}...")
        raise InvalidArgument(f"{kind} key {key!r} must not start or end with whitespace")
    if "\x00" in key or ".." in key.split("/") or key.startswith("/"):
        raise InvalidArgument(f"{kind} key {key!r} contains a NUL byte or a path escape")
    return key


def check_metric_value(key: str, value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise InvalidArgument(f"metric {key!r} must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"metric {key!r} must be a number, got {type(value).__name__} {value!r}") from None


def check_step(key: str, step: Any) -> int:
    if type(step) is int:
        return step
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        if isinstance(step, float) and step.is_integer():
            return int(step)
        raise InvalidArgument(f"step of metric {key!r} must be an integer, got {step!r}")
    return int(step.__index__())


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else _stringify(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidArgument(f"param {key!r} value is {len(text)} characters; the limit is "
                              f"{MAX_PARAM_VALUE}")
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else _stringify(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidArgument(f"tag {key!r} value is {len(text)} characters; the limit is {MAX_TAG_VALUE}")
    return text


def _stringify(value: Any) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    return str(value)


def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"experiment name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"experiment name is {len(name)} characters; the limit is {MAX_NAME}")
    return name
