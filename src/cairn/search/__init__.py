"""Run search: MLflow's filter grammar, order_by and page tokens.

``parse_filter`` / ``parse_order_by`` turn text into small frozen values; ``matches`` and
``sort_runs`` evaluate them over :class:`cairn.entities.Run` (the in-memory store), and
``compile_query`` turns them into one SQLAlchemy ``SELECT`` over the index tables (SQLite
and PostgreSQL), with the same semantics.  The grammar is in ``docs/search.md``.

Importing this package does not import SQLAlchemy; ``compile_query`` does, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from cairn.search.evaluate import matches, sort_runs
from cairn.search.parser import (
    Clause, Filter, OrderKey, decode_page_token, encode_page_token, format_filter,
    parse_filter, parse_order_by,
)

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

    from sqlalchemy.sql import Select

__all__ = [
    "Clause",
    "Filter",
    "OrderKey",
    "compile_query",
    "decode_page_token",
    "encode_page_token",
    "format_filter",
    "matches",
    "parse_filter",
    "parse_order_by",
    "sort_runs",
]


def compile_query(
    experiment_ids: Iterable[str] | None,
    flt: Filter,
    order: Iterable[OrderKey],
    tables: "ModuleType",
    **options: Any,
) -> "Select":
    """See :func:`cairn.search.sql.compile_query` (imported lazily: it needs SQLAlchemy)."""
    from cairn.search.sql import compile_query as compile_

    return compile_(experiment_ids, flt, order, tables, **options)
