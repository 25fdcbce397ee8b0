"""A report as one self-contained HTML file, to share outside the team.

The file holds everything: the report's snapshot (its Markdown and every panel's data,
drawn at export time) as JSON, and the web UI's report renderer with its CSS, inlined
(``make ui`` builds them into ``cairn/server/ui/static/report``).  It opens from disk
(``file://``) with no server and makes no network request: its Content-Security-Policy
allows no connection, no outside resource, and only its own script, by hash; the
Markdown is rendered by the same renderer as in the UI, which builds elements from text
and never parses HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

from ..errors import CairnError

BUNDLE = Path(__file__).resolve().parents[1] / "server" / "ui" / "static" / "report"


def _bundle() -> tuple[str, str]:
    try:
        js = (BUNDLE / "report.js").read_text(encoding="utf-8")
        css = (BUNDLE / "report.css").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CairnError(f"the report renderer is not built ({BUNDLE} has no report.js and "
                         "report.css): run `make ui`") from None
    return js, css


def _json_for_script(data: Any) -> str:
    """JSON that cannot end the <script> element holding it, nor open a comment."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def export_html(snapshot: dict[str, Any]) -> str:
    """One HTML document that renders ``snapshot`` (:func:`cairn.collab.reports.snapshot`)."""
    js, css = _bundle()
    # Neither may end its element early ("<\/" is "</" in a JS string or regular expression).
    js = re.sub(r"</(?=script)", r"<\\/", js, flags=re.I)
    css = re.sub(r"</(?=style)", r"<\\/", css, flags=re.I)
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    title = html.escape(f"{snapshot['name']} · Cairn report", quote=True)
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"generator\" content=\"Cairn\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{title}</title>\n<style>{css}</style>\n</head>\n<body>\n"
            "<main id=\"report\"></main>\n"
            "<script type=\"application/json\" id=\"cairn-report-data\">"
            f"{_json_for_script(snapshot)}</script>\n"
            f"<script>{js}</script>\n</body>\n</html>\n")
