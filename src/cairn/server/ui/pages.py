"""The built front end as static files, and index.html for every page URL.

Each page has its own URL (``/runs/RUN_ID``, ``/compare?runs=a,b``, ``/models/NAME``)
so links can be shared; the browser's router draws it from ``index.html``.  Paths
under ``/api/`` never fall back to the page: an unknown API path stays a JSON 404.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match, Route

STATIC = Path(__file__).parent / "static"
# Hashed asset names never change content, so browsers may keep them; index.html must
# be asked for again, or a new build would load stale asset names.
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Cairn</title>
<h1>The Cairn web UI is not built</h1>
<p>This Cairn was installed from source without its front end. Build it once with
<code>make ui</code> (needs Node.js 20+ and npm), then reload this page.
The REST API works without it: see <a href="/docs">/docs</a>.</p>"""


API_ROOTS = ("/api", "/ajax-api")  # /ajax-api: where MLflow's own front end calls its API


def _is_api(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in API_ROOTS)


class PageRoute(Route):
    """GET/HEAD of any non-API path; other methods and API paths fall through to 404/405."""

    def matches(self, scope):
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or _is_api(scope["path"])):
            return Match.NONE, {}
        return super().matches(scope)


def _file(path: str) -> Path | None:
    """The built file at ``path``, if it is one (never outside the build directory)."""
    if not path or path.endswith("/"):
        return None
    candidate = (STATIC / path).resolve()
    root = STATIC.resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None
    return candidate


async def page(request: Request) -> Response:
    path = request.path_params["path"]
    found = _file(path)
    if found is not None:
        cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
        return FileResponse(found, headers={"cache-control": cache})
    if path.startswith("assets/"):  # a missing asset is a 404, not a page
        return Response(status_code=404)
    index = STATIC / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503)
    return FileResponse(index, headers={"cache-control": "no-cache"})


def route() -> PageRoute:
    return PageRoute("/{path:path}", page, methods=["GET", "HEAD"], include_in_schema=False)
