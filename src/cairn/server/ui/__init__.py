"""The web UI: the built front end as static files, plus the endpoints only the UI needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI


def mount(app: "FastAPI") -> None:
    """Add the UI to ``app``; called last, so its page routes never shadow an API route."""
