"""docs/serving.md's examples run, in order, against a fresh store and a real server."""

import re
from pathlib import Path

import doc_examples

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def test_serving_guide_examples_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        doc_examples.run_python(DOC, at_least=6, namespace=namespace)
    finally:
        if "server" in namespace:
            namespace["server"].should_exit = True
            namespace["deployment"].close()


def test_the_guide_has_a_section_for_each_part_of_serving():
    text = DOC.read_text(encoding="utf-8")
    for heading in ("## Canary and blue-green", "### Deployment history", "## The prediction log",
                    "## Metrics", "## Micro-batching", "## Following an alias",
                    "## Batch scoring: cairn predict", "## Several workers", "## Not yet"):
        assert f"\n{heading}\n" in text, heading
    # Every option of `cairn serve` is in the guide's table.
    from cairn.cli.main import cli

    for param in cli.commands["serve"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--json",):
                assert f"`{opt}" in text, opt


def test_links_point_somewhere():
    docs = DOC.parent
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or (docs / page).exists(), target
