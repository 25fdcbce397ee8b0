"""The search grammar: filter and order_by text → small frozen values, and page tokens.

Pure Python, no third-party imports: the in-memory store, the SQL compiler and the
server all start from the :class:`Clause` and :class:`OrderKey` values built here.
The grammar is documented, with examples, in ``docs/search.md``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Iterable, Union

from cairn.errors import InvalidArgument, InvalidFilter

METRICS, PARAMS, TAGS, ATTRIBUTES = "metrics", "params", "tags", "attributes"

# Entity prefixes, case-insensitive, as MLflow spells them (search_utils.py).
_ENTITY_NAMES = {
    "metric": METRICS, "metrics": METRICS,
    "param": PARAMS, "params": PARAMS, "parameter": PARAMS, "parameters": PARAMS,
    "tag": TAGS, "tags": TAGS,
    "attribute": ATTRIBUTES, "attributes": ATTRIBUTES, "attr": ATTRIBUTES, "run": ATTRIBUTES,
}

# Canonical attribute name -> kind; "number" attributes compare numerically.
ATTRIBUTE_KINDS = {
    "run_id": "string", "run_name": "string", "status": "string", "user": "string",
    "experiment_id": "string", "parent_id": "string",
    "start_time": "number", "end_time": "number",
}
_ATTRIBUTE_ALIASES = {
    "id": "run_id", "run_uuid": "run_id",
    "name": "run_name", "run name": "run_name", "Run name": "run_name", "Run Name": "run_name",
    "user_id": "user",
    "created": "start_time", "Created": "start_time",
    "parent_run_id": "parent_id",
}

STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
_ALL_OPS = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL"

Value = Union[str, float, int, tuple, None]


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison ``<entity>.<key> <op> <value>``.

    ``entity`` is one of ``metrics``, ``params``, ``tags``, ``attributes``; ``key`` is the
    canonical attribute name for attributes.  ``op`` is upper case (``NOT IN``, ``IS NULL``…).
    ``value`` is a ``str``, a number (``float``; ``int`` for integral attribute literals),
    a tuple of those for ``IN``/``NOT IN``, or ``None`` for ``IS [NOT] NULL``.  A number
    compared with a param means a numeric comparison (see ``docs/search.md``).
    """

    entity: str
    key: str
    op: str
    value: Value = None

    @property
    def numeric(self) -> bool:
        """True when the comparison is numeric (metrics, numeric attributes, params vs numbers)."""
        first = self.value[0] if isinstance(self.value, tuple) else self.value
        return isinstance(first, (int, float))

    def __str__(self) -> str:
        if self.value is None:
            rhs = ""
        elif isinstance(self.value, tuple):
            rhs = " (" + ", ".join(_format_value(v) for v in self.value) + ")"
        else:
            rhs = " " + _format_value(self.value)
        return f"{self.entity}.{_format_key(self.key)} {self.op}{rhs}"


Filter = tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``order_by`` item: sort by ``entity.key``, ascending unless told otherwise."""

    entity: str
    key: str
    ascending: bool = True

    def __str__(self) -> str:
        return f"{self.entity}.{_format_key(self.key)} {'ASC' if self.ascending else 'DESC'}"


def format_filter(flt: Filter) -> str:
    """The canonical text of a filter; ``parse_filter(format_filter(f)) == f``."""
    return " AND ".join(str(c) for c in flt)


_BARE_KEY = re.compile(r"[\w\-/:][\w.\-/:]*")


def _format_key(key: str) -> str:
    if _BARE_KEY.fullmatch(key) and key.upper() not in _KEYWORDS:
        return key
    return "`" + key.replace("\\", "\\\\").replace("`", "``") + "`"


def _format_value(value: str | float | int) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return repr(value)


# ---------------------------------------------------------------------------------------
# Scanner

_KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "ASC", "DESC"}
_WS = re.compile(r"\s*")
_WORD = re.compile(r"[A-Za-z]+")
_BARE = re.compile(r"[\w\-/:]+")
_BARE_DOTTED = re.compile(r"[\w\-/:.]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class _Scanner:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.pos = 0
        self.what = what  # "filter" or "order_by item"

    # -- errors -------------------------------------------------------------------------
    def fail(self, expected: str, pos: int | None = None,
             found: str | None = None) -> InvalidFilter:
        pos = self.pos if pos is None else pos
        if found is None:
            found = self._describe(pos)
        message = (f"Invalid {self.what} at position {pos}: expected {expected}, found {found}\n"
                   f"  {self.text}\n  {' ' * pos}^")
        return InvalidFilter(message, position=pos)

    def _describe(self, pos: int) -> str:
        if pos >= len(self.text):
            return "the end of the text"
        if self.text[pos].isspace():
            return "whitespace"
        m = _WORD.match(self.text, pos) or _NUMBER.match(self.text, pos)
        token = m.group() if m else self.text[pos]
        return repr(token)

    # -- primitives ---------------------------------------------------------------------
    def skip_ws(self) -> None:
        m = _WS.match(self.text, self.pos)
        assert m is not None  # \s* matches everywhere
        self.pos = m.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek_word(self) -> str | None:
        """The upper-cased keyword at the cursor (whole word only), without consuming it."""
        self.skip_ws()
        m = _WORD.match(self.text, self.pos)
        if not m:
            return None
        end = m.end()
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_.`\"'"):
            return None
        return m.group().upper()

    def take_word(self, word: str) -> bool:
        if self.peek_word() == word:
            self.pos += len(word)
            return True
        return False

    def quoted(self) -> str:
        """A quoted run of text; the quote is doubled or backslash-escaped inside."""
        quote, start = self.text[self.pos], self.pos
        out: list[str] = []
        i = self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text) and self.text[i + 1] in ("\\", quote):
                out.append(self.text[i + 1])
                i += 2
            elif ch == quote:
                if i + 1 < len(self.text) and self.text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                else:
                    self.pos = i + 1
                    return "".join(out)
            else:
                out.append(ch)
                i += 1
        raise self.fail(f"a closing {quote} for the text opened here", pos=start,
                        found="the end of the text")

    # -- grammar pieces -----------------------------------------------------------------
    def identifier(self) -> tuple[str, str, int]:
        """``[entity.]key`` → (entity, canonical key, start position)."""
        self.skip_ws()
        start = self.pos
        first, first_quoted = self._part(dotted=False, expected="an identifier such as "
                                         "metrics.acc, params.lr, tags.team or status")
        if self.pos < len(self.text) and self.text[self.pos] == ".":
            entity = _ENTITY_NAMES.get(first.lower())
            if entity is None:
                raise self.fail("an entity type (metrics, params, tags or attributes)",
                                pos=start, found=repr(first))
            self.pos += 1
            key_pos = self.pos
            key, _ = self._part(dotted=True, expected=f"a key name after '{first}.' (quote "
                                "names with spaces or symbols: metrics.`val loss`)")
            if not key:
                raise self.fail("a non-empty key name", pos=key_pos)
        elif first_quoted or first.lower() not in _ENTITY_NAMES:
            entity, key, key_pos = ATTRIBUTES, first, start
        else:
            raise self.fail(f"'.' and a key name after the entity type '{first}'")
        if entity == ATTRIBUTES:
            key = _ATTRIBUTE_ALIASES.get(key, key)
            if key not in ATTRIBUTE_KINDS:
                names = ", ".join(sorted(ATTRIBUTE_KINDS))
                raise self.fail(f"an attribute name ({names}) or an entity type "
                                "(metrics., params., tags.)", pos=key_pos, found=repr(key))
        return entity, key, start

    def _part(self, *, dotted: bool, expected: str) -> tuple[str, bool]:
        if self.pos < len(self.text) and self.text[self.pos] in '`"':
            return self.quoted(), True
        m = (_BARE_DOTTED if dotted else _BARE).match(self.text, self.pos)
        if not m:
            raise self.fail(expected)
        self.pos = m.end()
        return m.group(), False


# ---------------------------------------------------------------------------------------
# Filters

def parse_filter(text: str | None) -> Filter:
    """Parse a filter such as ``"metrics.acc > 0.9 and params.model = 'cnn'"``.

    An empty (or ``None``) filter selects every run.  Raises :class:`InvalidFilter`, whose
    message points at the offending position and says what was expected there.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        raise InvalidFilter(f"A filter must be a string, not {type(text).__name__}")
    return _parse_filter(text)


@functools.lru_cache(maxsize=256)
def _parse_filter(text: str) -> Filter:
    # Cached: a dashboard or a sweep repeats a few filters, and the clauses are frozen.
    s = _Scanner(text, "filter")
    clauses: list[Clause] = []
    if s.at_end():
        return ()
    while True:
        clauses.append(_clause(s))
        if s.at_end():
            return tuple(clauses)
        if s.take_word("AND"):
            continue
        if s.peek_word() == "OR":
            raise s.fail("AND (OR is not supported: a filter is clauses joined by AND)")
        raise s.fail("AND or the end of the filter")


def _clause(s: _Scanner) -> Clause:
    entity, key, start = s.identifier()
    name = f"{entity}.{_format_key(key)}"
    s.skip_ws()
    op_pos = s.pos
    op = _operator(s, name)
    s.skip_ws()
    value_pos = s.pos
    if op in ("IS NULL", "IS NOT NULL"):
        value: Value = None
    elif op in ("IN", "NOT IN"):
        value = _tuple(s, name, op)
    else:
        value = _scalar(s, f"a value after '{name} {op}' (a number or a quoted string)")
    return _checked(s, Clause(entity, key, op, value), op_pos, value_pos)


def _operator(s: _Scanner, name: str) -> str:
    text, pos = s.text, s.pos
    for symbol in ("!=", "<=", ">=", "=", "<", ">"):
        if text.startswith(symbol, pos):
            if text.startswith("==", pos):
                raise s.fail("a comparison operator ('=' compares; '==' is not an operator)")
            if text.startswith("<>", pos):
                raise s.fail("a comparison operator (write '!=' for 'not equal')")
            s.pos += len(symbol)
            return symbol
    word = s.peek_word()
    if word in ("LIKE", "ILIKE", "IN"):
        s.take_word(word)
        return word
    if word == "NOT":
        s.take_word("NOT")
        if s.take_word("IN"):
            return "NOT IN"
        raise s.fail("IN after NOT (NOT is only supported as NOT IN)")
    if word == "IS":
        s.take_word("IS")
        negated = s.take_word("NOT")
        if s.take_word("NULL"):
            return "IS NOT NULL" if negated else "IS NULL"
        raise s.fail("NULL after IS NOT" if negated else "NULL or NOT NULL after IS")
    raise s.fail(f"a comparison operator after '{name}' ({_ALL_OPS})")


def _scalar(s: _Scanner, expected: str) -> str | float | int:
    s.skip_ws()
    pos = s.pos
    if pos < len(s.text) and s.text[pos] in "'\"":
        return s.quoted()
    m = _NUMBER.match(s.text, pos)
    if m:
        end = m.end()
        if end < len(s.text) and (s.text[end].isalnum() or s.text[end] in "_."):
            raise s.fail(expected + "; quote strings like 'abc'", pos=pos)
        number = float(m.group())
        if math.isinf(number):
            raise s.fail("a number within the range of a 64-bit float", pos=pos,
                         found=repr(m.group()))
        s.pos = end
        literal = m.group()
        if not any(c in literal for c in ".eE") and abs(int(literal)) < 2**63:
            return int(literal)
        return number
    word = s.peek_word()
    if word == "NULL":
        raise s.fail("a value (to test for a missing key write IS NULL / IS NOT NULL)")
    if word is not None or (pos < len(s.text) and _BARE.match(s.text, pos)):
        raise s.fail(expected + "; strings must be quoted like 'abc'")
    raise s.fail(expected)


def _tuple(s: _Scanner, name: str, op: str) -> tuple:
    if s.pos >= len(s.text) or s.text[s.pos] != "(":
        raise s.fail(f"a parenthesised list after '{name} {op}', e.g. ('a', 'b')")
    s.pos += 1
    items: list[str | float | int] = []
    while True:
        s.skip_ws()
        if s.pos < len(s.text) and s.text[s.pos] == ")" and items:
            s.pos += 1
            return tuple(items)
        items.append(_scalar(s, f"a value in the list after '{name} {op}'"))
        s.skip_ws()
        if s.pos < len(s.text) and s.text[s.pos] == ",":
            s.pos += 1
            continue
        if s.pos < len(s.text) and s.text[s.pos] == ")":
            s.pos += 1
            return tuple(items)
        raise s.fail("',' or ')' in the list")


def _describe_value(value: str | float | int) -> str:
    kind = "string" if isinstance(value, str) else "number"
    return f"the {kind} {_format_value(value)}"


def _checked(s: _Scanner, c: Clause, op_pos: int, value_pos: int) -> Clause:
    """Check the operator and the value types against the entity; normalise numbers."""
    name = f"{c.entity}.{_format_key(c.key)}"
    values = c.value if isinstance(c.value, tuple) else () if c.value is None else (c.value,)
    numbers = [v for v in values if not isinstance(v, str)]
    strings = [v for v in values if isinstance(v, str)]
    if numbers and strings:
        raise s.fail("values of one type in the list (all numbers or all quoted strings)",
                     pos=value_pos, found="a mix of numbers and strings")
    if c.entity == METRICS or (c.entity == ATTRIBUTES and ATTRIBUTE_KINDS[c.key] == "number"):
        kind = "a number"
        if c.op not in NUMBER_OPS:
            raise s.fail(f"a numeric comparison for {name} ({', '.join(NUMBER_OPS)}); "
                         f"{c.op} applies to strings", pos=op_pos, found=repr(c.op))
        if strings:
            raise s.fail(f"{kind} for {name} (unquoted, e.g. 0.5)", pos=value_pos,
                         found=_describe_value(strings[0]))
    elif c.entity == PARAMS and numbers:
        if c.op in ("LIKE", "ILIKE"):
            raise s.fail(f"a quoted pattern after {c.op}", pos=value_pos,
                         found=_describe_value(numbers[0]))
    else:
        if c.op not in STRING_OPS:
            hint = (" (to compare a param numerically, write an unquoted number)"
                    if c.entity == PARAMS else "")
            raise s.fail(f"a string comparison for {name} ({', '.join(STRING_OPS)}){hint}",
                         pos=op_pos, found=repr(c.op))
        if numbers:
            raise s.fail(f"a quoted string for {name}, e.g. '{_format_value(numbers[0])}'",
                         pos=value_pos, found=_describe_value(numbers[0]))
    if numbers and c.entity in (METRICS, PARAMS):
        # Metrics and params compare as 64-bit floats: keep one number type.
        as_float = tuple(float(v) for v in values)
        value = as_float if isinstance(c.value, tuple) else as_float[0]
        return Clause(c.entity, c.key, c.op, value)
    return c


# ---------------------------------------------------------------------------------------
# order_by

def parse_order_by(items: Iterable[str] | str | None) -> tuple[OrderKey, ...]:
    """Parse ``order_by`` items such as ``["metrics.acc DESC", "params.lr", "start_time"]``.

    Each item is ``<entity>.<key> [ASC|DESC]`` (ascending by default; an item may also hold
    several keys separated by commas).  Without a prefix the key is an attribute.
    """
    if items is None:
        return ()
    if isinstance(items, str):
        items = [items]
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidFilter(f"An order_by item must be a string, not {type(item).__name__}")
        s = _Scanner(item, "order_by item")
        if s.at_end():
            continue
        while True:
            entity, key, _ = s.identifier()
            ascending = True
            if s.take_word("DESC"):
                ascending = False
            else:
                s.take_word("ASC")
            keys.append(OrderKey(entity, key, ascending))
            if s.at_end():
                break
            if s.text[s.pos] == ",":
                s.pos += 1
                continue
            raise s.fail("ASC, DESC, ',' or the end of the item")
    return tuple(keys)


# ---------------------------------------------------------------------------------------
# Page tokens

def encode_page_token(offset: int) -> str:
    """An opaque token for the page that starts at ``offset`` (base64 of JSON, like MLflow)."""
    return base64.b64encode(json.dumps({"offset": int(offset)}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset in a token from :func:`encode_page_token`; ``None`` or ``""`` means 0."""
    if not token:
        return 0
    try:
        raw = base64.b64decode(token.replace("-", "+").replace("_", "/"), validate=True)
        offset = json.loads(raw)["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidArgument(f"Invalid page token {token!r}", page_token=token) from None
    if type(offset) is not int or offset < 0:
        raise InvalidArgument(f"Invalid page token {token!r}", page_token=token)
    return offset
