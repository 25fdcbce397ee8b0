"""The web UI: the built front end as static files, plus the endpoints only the UI needs.

``make ui`` (or ``make test`` / ``make demo``) builds ``ui/`` into ``static/`` here;
docs/ui.md describes the pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

UI_API = "/api/v1/ui"


def mount(app: "FastAPI") -> None:
    """Add the UI to ``app``; called last, so its page routes never shadow an API route."""
    from . import api, pages

    app.include_router(api.router, prefix=UI_API)
    app.router.routes.append(pages.route())
