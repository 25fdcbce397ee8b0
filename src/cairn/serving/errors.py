"""The one error a request can end in, with its HTTP status and MLflow-style error code.

Parsing, validation and prediction raise :class:`RequestError`; the app turns it into
``{"error_code": ..., "message": ...}`` with ``status``, the body ``mlflow models serve``
answers with.
"""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """A request that gets no predictions: ``status`` (4xx or 500), ``code``, ``message``."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST",
                 **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": self.message, **self.fields}


def bad_request(message: str, **fields: Any) -> RequestError:
    return RequestError(message, 400, "BAD_REQUEST", **fields)


MAX_PROBLEMS = 20  # an error body lists this many problems, then counts the rest


def problems_error(message: str, found: list[str]) -> RequestError:
    """A 400 ``message: problem; problem ...`` listing at most :data:`MAX_PROBLEMS` of
    ``found`` (then "and N more"), with ``problems`` (those listed) and ``problem_count``."""
    shown = found[:MAX_PROBLEMS]
    rest = len(found) - len(shown)
    text = "; ".join(shown) + (f"; and {rest} more" if rest else "")
    return bad_request(f"{message}: {text}", problems=shown, problem_count=len(found))


def listed(items: list[str], sep: str = ", ") -> str:
    """``items`` joined by ``sep``, at most :data:`MAX_PROBLEMS` of them, then "and N more"."""
    rest = len(items) - MAX_PROBLEMS
    return sep.join(items[:MAX_PROBLEMS]) + (f"{sep}and {rest} more" if rest > 0 else "")
