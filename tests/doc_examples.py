"""A guide's examples, for the tests that run them: its fenced blocks, and its Python
blocks executed in order in one namespace, a failure naming the guide and the line."""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(doc: Path, kind: str, section: str | None = None) -> list[tuple[int, str]]:
    """``(line, text)`` of each ```` ```kind ```` block of ``doc``; ``line`` is where its
    text starts.  With ``section``, only the blocks under the ``## section`` heading (up
    to the next ``## ``), so a guide shared by several features is tested a part at a time."""
    text = doc.read_text(encoding="utf-8")
    lo, hi = 0, len(text)
    if section is not None:
        head = re.search(rf"^## {re.escape(section)}[ \t]*$", text, re.M)
        assert head is not None, f"{doc.name}: no section '## {section}'"
        lo = head.end()
        nxt = re.compile(r"^## ", re.M).search(text, lo)
        hi = nxt.start() if nxt else len(text)
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"^```{re.escape(kind)}\n(.*?)^```", text, re.M | re.S)
            if lo <= m.start() < hi]


def run_python(doc: Path, *, at_least: int = 1, namespace: dict[str, Any] | None = None,
               after_each: Callable[[], None] | None = None,
               section: str | None = None) -> dict[str, Any]:
    """Run ``doc``'s Python blocks in order, in one namespace (returned, so a test can
    look at what they made or close what they opened)."""
    found = blocks(doc, "python", section)
    assert len(found) >= at_least, f"{doc.name}: {len(found)} Python examples"
    ns = namespace if namespace is not None else {}
    ns.setdefault("__name__", f"docs_{doc.stem.replace('-', '_')}")
    where = doc.relative_to(DOCS.parent) if doc.is_relative_to(DOCS.parent) else doc
    for line, code in found:
        try:
            exec(compile(code, f"{where}:{line}", "exec"), ns)
        except Exception:
            pytest.fail(f"the example at {where}:{line} failed:\n{traceback.format_exc()}")
        if after_each is not None:
            after_each()
    return ns
