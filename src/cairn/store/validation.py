"""Input checks shared by every store and the client, with messages a user can act on."""

from __future__ import annotations

import functools
import math
import os
import re
from typing import Any, Callable, Iterable, TypeVar

from ..entities import LIFECYCLES, RUN_LIFECYCLE_TAG, RUN_NAME_TAG
from ..errors import InvalidArgument

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = 500
MAX_JSON_DEPTH = 64  # nesting of a JSON value (a request body, a run's environment)

_SURROGATE = re.compile("[\ud800-\udfff]")
# What a run id can be where it becomes a path or a URL segment: 32 hex digits for runs made
# here, letters, digits, "-" and "_" for imported ones; never "/", "." or "..".
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_run_id(value: Any) -> bool:
    """Whether ``value`` could be a run's id (safe as one path or URL segment)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


# -- text ----------------------------------------------------------------------------
# A str may hold a lone UTF-16 surrogate ("\ud800": what os.fsdecode makes of a file name
# that is not UTF-8, or what a JSON "\ud800" escape decodes to).  No store can keep one
# (journals, SQLite and PostgreSQL all need valid UTF-8), so every string that enters the
# API is checked here, at the call, before anything is buffered.  ASCII is the fast path.

def surrogate_error(text: str, field: str) -> InvalidArgument | None:
    """The error for the first lone surrogate in ``text`` (None: there is none)."""
    m = _SURROGATE.search(text)
    if m is None:
        return None
    return InvalidArgument(f"{field} contains a lone surrogate (\\u{ord(m.group()):04x}) at "
                           f"position {m.start()}; strings must be valid Unicode")


def check_text(value: Any, field: str) -> str:
    """``value`` if it is a str of valid Unicode (no lone surrogate), else InvalidArgument
    naming ``field``."""
    if type(value) is str and value.isascii():
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string, got {type(value).__name__} {value!r}")
    err = surrogate_error(value, field)
    if err is not None:
        raise err
    return value


def check_json(value: Any, field: str, *, nul: bool = False,
               max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """Check a JSON-like value (dicts, lists, tuples, scalars) without recursion: every
    string and key valid Unicode, no NUL characters when ``nul``, nested at most
    ``max_depth`` levels (None: any depth).  Returns ``value``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, str):
            _check_str(obj, field, nul, quote=True)
        elif isinstance(obj, (dict, list, tuple)):
            if max_depth is not None and depth > max_depth:
                raise InvalidArgument(f"{field} is nested more than {max_depth} levels deep")
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(k, str):
                        _check_str(k, field, nul, quote=True)
                    if isinstance(v, (str, dict, list, tuple)):
                        stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in obj if isinstance(v, (str, dict, list, tuple)))
    return value


def _writes_as_json(value: Any) -> bool:
    """Whether orjson writes ``value``: then none of its strings holds a lone surrogate
    (orjson refuses them).  In C, a few microseconds for a run's captured environment,
    where walking it in Python cost a third of creating a run."""
    import orjson  # here: `import cairn` does not load it

    try:
        orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a surrogate, another type, 255 levels
        return False
    return True


def scrub(value: Any) -> Any:
    """``value`` (a JSON-like value) with each lone surrogate written as its escape, the six
    characters ``\\udcff``: for text Cairn gathers itself rather than takes from a caller
    (the environment's argv, paths and variables), which must be kept, not refused."""
    if isinstance(value, (dict, list)) and _writes_as_json(value):
        return value
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _check_str(s: str, field: str, nul: bool, quote: bool = False) -> None:
    if nul and "\x00" in s:
        raise InvalidArgument(f"{field} contains a NUL character")
    if not s.isascii():
        err = surrogate_error(s, f"{field}: the string {s[:60]!r}" if quote else field)
        if err is not None:
            raise err


def _text_ok(s: Any, field: str) -> None:
    if isinstance(s, str) and not s.isascii():
        err = surrogate_error(s, field)
        if err is not None:
            raise err


def check_batch_text(batch: Any) -> None:
    """Every string of a RecordBatch valid Unicode: what each store's ``write`` checks first,
    so that every backend refuses a batch no store could keep, and refuses it the same way."""
    _text_ok(batch.run_id, "run id")
    _text_ok(batch.writer_id, "writer id")
    for k, v in batch.params.items():
        _text_ok(k, f"param key {k!r}")
        _text_ok(v, f"param {k!r} value")
    for k, v in batch.tags.items():
        _text_ok(k, f"tag key {k!r}")
        _text_ok(v, f"tag {k!r} value")
    for k in batch.deleted_tags:
        _text_ok(k, f"tag key {k!r}")
    if batch.tags or batch.deleted_tags:
        check_row_tags(batch.tags, batch.deleted_tags)
    for k in batch.metrics:
        _text_ok(k, f"metric key {k!r}")
    for a in batch.artifacts:
        _text_ok(a.path, f"artifact path {a.path!r}")
    if batch.create is not None:
        for k, v in batch.create.items():
            _text_ok(v, f"create.{k}")
    if batch.env is not None and not _writes_as_json(batch.env):
        check_json(batch.env, "env", max_depth=None)  # names what is wrong, if anything


F = TypeVar("F", bound=Callable[..., Any])


def text_args(fn: F, skip: Iterable[str] = ()) -> F:
    """Wrap ``fn`` so that its str arguments (and the strings inside dict, list and tuple
    arguments) are checked with :func:`check_text` before it runs; ``skip`` names the
    arguments that hold data rather than text (a model, an array)."""
    if getattr(fn, "__text_checked__", False):
        return fn  # wrapped already, or checks its text itself (:func:`own_checks`)
    code = fn.__code__
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    skipped = frozenset(skip) | {"self", "cls"}
    where = fn.__qualname__.rsplit(".", 1)[-1]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, value in zip(names, args):
            if name not in skipped:
                _check_arg(value, name, where)
        for name, value in kwargs.items():
            if name not in skipped:
                _check_arg(value, name, where)
        return fn(*args, **kwargs)

    wrapper.__text_checked__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def own_checks(fn: F) -> F:
    """Mark a method that checks its text arguments itself (with messages that say more, as
    "tag 'x' value ..."): :func:`text_checked` leaves it alone."""
    fn.__text_checked__ = True  # type: ignore[attr-defined]
    return fn


def _check_arg(value: Any, name: str, where: str) -> None:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if not value.isascii():
            err = surrogate_error(value, f"{name} (argument of {where}())")
            if err is not None:
                raise err
    elif isinstance(value, (dict, list, tuple)):
        check_json(value, f"{name} (argument of {where}())", max_depth=None)


def text_checked(*skip: str) -> Callable[[type], type]:
    """Class decorator: every public method (inherited ones too) checks its text arguments
    (:func:`text_args`), except the arguments named in ``skip``."""
    def decorate(cls: type) -> type:
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            fn = getattr(cls, attr, None)
            raw = cls.__dict__.get(attr, fn)
            if isinstance(raw, (staticmethod, classmethod, property)) or not callable(fn) \
                    or not hasattr(fn, "__code__"):
                continue
            setattr(cls, attr, text_args(fn, skip))
        return cls
    return decorate


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
    if not key.isascii():
        err = surrogate_error(key, f"{kind} key {key!r}")
        if err is not None:
            raise err
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
    if not text.isascii():
        err = surrogate_error(text, f"param {key!r} value")
        if err is not None:
            raise err
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else _stringify(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidArgument(f"tag {key!r} value is {len(text)} characters; the limit is {MAX_TAG_VALUE}")
    if not text.isascii():
        err = surrogate_error(text, f"tag {key!r} value")
        if err is not None:
            raise err
    return text


def _stringify(value: Any) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    return str(value)


def check_run_name(name: Any) -> str:
    """A run's new name: non-empty, at most MAX_NAME characters, valid Unicode."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"run name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"run name is {len(name)} characters; the limit is {MAX_NAME}")
    return check_text(name, "run name")


def check_row_tags(tags: Any, deleted: Any = ()) -> None:
    """The reserved tags of a batch (``cairn.run.name``, ``cairn.run.lifecycle``) hold a
    valid name and lifecycle, and are never deleted (a restore sets "active")."""
    if RUN_NAME_TAG in tags:
        check_run_name(tags[RUN_NAME_TAG])
    if RUN_LIFECYCLE_TAG in tags and tags[RUN_LIFECYCLE_TAG] not in LIFECYCLES:
        raise InvalidArgument(f"tag {RUN_LIFECYCLE_TAG!r} must be one of {list(LIFECYCLES)}, "
                              f"got {tags[RUN_LIFECYCLE_TAG]!r}")
    for key in deleted:
        if key in (RUN_NAME_TAG, RUN_LIFECYCLE_TAG):
            raise InvalidArgument(f"tag {key!r} holds the run's name or lifecycle and cannot "
                                  "be deleted; rename or restore the run instead")


def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"experiment name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"experiment name is {len(name)} characters; the limit is {MAX_NAME}")
    return check_text(name, f"experiment name {name!r}")
