"""The docs are checked against the code: examples run, references cover every name.

``docs/cli.md`` ends with a reference generated from the click commands; after changing a
command, refresh it with::

    CAIRN_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/test_docs.py
"""

import inspect
import os
import re
import shlex
import subprocess
import sys
import traceback
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cairn
from cairn import settings
from cairn.cli.main import cli
from cairn.store.sql.tables import DERIVED_TABLES

DOCS = Path(__file__).resolve().parent.parent / "docs"
OWNED = ("tracking.md", "api.md", "store-layout.md", "formats.md", "cli.md", "settings.md", "testing.md")
BEGIN, END = "<!-- BEGIN GENERATED REFERENCE -->", "<!-- END GENERATED REFERENCE -->"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def code_blocks(text: str, lang: str) -> list[tuple[int, str]]:
    """(line number, code) of each fenced block in ``lang``."""
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)]


def commands(group: click.Group = cli, path: tuple[str, ...] = ("cairn",)):
    """Every leaf command as (("cairn", "runs", "ls"), command), in registration order; not
    the hidden aliases of renamed commands (``models download``)."""
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


# -- examples run -----------------------------------------------------------------------------
@pytest.mark.parametrize("doc", ["tracking.md", "formats.md"])
def test_python_examples_run(doc, tracking, tmp_path, monkeypatch):
    """Each page's ```python blocks run in order, in one namespace, against a fresh store."""
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(read(doc), "python")
    assert blocks, f"{doc} has no python examples"
    namespace: dict = {"__name__": f"docs_{doc}"}
    for line, code in blocks:
        try:
            exec(compile(code, f"docs/{doc}:{line}", "exec"), namespace)
        except Exception:
            pytest.fail(f"the example at docs/{doc}:{line} failed:\n{traceback.format_exc()}")
        assert cairn.active_run() is None, f"the example at docs/{doc}:{line} left a run active"


def test_testing_example_passes_under_pytest(tmp_path):
    """docs/testing.md's example is a test module: pytest runs it in a child process, where
    the fixtures come from the cairn.testing entry point as they do in a user's project."""
    [(line, code)] = code_blocks(read("testing.md"), "python")
    (tmp_path / "test_example.py").write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_TRACKING", "PYTEST_"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-W", "error", "test_example.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"the example at docs/testing.md:{line} failed:\n{out.stdout}{out.stderr}"
    assert "4 passed" in out.stdout
    assert not (tmp_path / ".cairn").exists()  # nothing went to the default store


def test_cli_session_runs(tracking, tmp_path, monkeypatch):
    """The `cairn ...` lines of docs/cli.md (before the reference) run against a real store."""
    monkeypatch.chdir(tmp_path)
    cairn.set_experiment("demo")
    for lr in ("0.1", "0.01"):
        for seed in range(2):
            with cairn.start_run(params={"lr": lr, "seed": seed}) as run:
                cairn.log_metric("acc", float(lr) + seed / 10)
                cairn.log_text("weights", "model/weights.txt")
    other = next(r.id for r in cairn.Client().search_runs("demo") if r.id != run.id)
    text = read("cli.md").split(BEGIN)[0]
    lines = [line for _, block in code_blocks(text, "sh") for line in block.splitlines()
             if line.startswith("cairn ")]
    assert len(lines) >= 10
    for line in lines:
        args = shlex.split(line.replace("OTHER_RUN_ID", other[:8]).replace("RUN_ID", run.id[:8]),
                           comments=True)[1:]
        result = CliRunner().invoke(cli, ["--store", str(tracking), *args], prog_name="cairn")
        assert result.exit_code == 0, f"`{line}` failed:\n{result.output}{result.exception!r}"
    assert (tmp_path / "restored" / "model" / "weights.txt").read_text() == "weights"


# -- references cover the code ---------------------------------------------------------------
def cli_reference() -> str:
    parts = []
    for path, _ in [(("cairn",), cli), *commands()]:
        result = CliRunner().invoke(cli, [*path[1:], "--help"], prog_name="cairn",
                                    terminal_width=100)
        assert result.exit_code == 0, result.output
        parts.append(f"### `{' '.join(path)}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def test_cli_reference_is_generated_from_the_commands():
    text = read("cli.md")
    assert BEGIN in text and END in text
    head, rest = text.split(BEGIN)
    current, tail = rest.split(END)
    fresh = "\n" + cli_reference() + "\n"
    if os.environ.get("CAIRN_UPDATE_DOCS"):
        (DOCS / "cli.md").write_text(head + BEGIN + fresh + END + tail, encoding="utf-8")
        return
    assert current == fresh, ("docs/cli.md is out of date with the commands: run "
                              "CAIRN_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/test_docs.py")


def test_every_cli_command_is_documented():
    text = read("cli.md")
    for path, cmd in commands():
        name = " ".join(path)
        assert f"### `{name}`" in text, f"{name} is missing from docs/cli.md"
        assert "Example" in (cmd.help or ""), f"{name} has no example in its help"


def _settings_row(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name} needs exactly one row in the table of docs/settings.md"
    return rows[0]


def _doc_default(value) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def test_every_setting_is_documented_with_its_default():
    text = read("settings.md")
    for s in settings.SETTINGS:
        cells = [c.strip() for c in _settings_row(text, s.name).strip("|").split("|")]
        assert cells[2] == _doc_default(s.default), f"{s.name}: default should be {s.default!r}"
        assert cells[3] == s.help, f"{s.name}: the meaning should be the setting's help text"
    documented = set(re.findall(r"^\| `(CAIRN_[A-Z_]+)` \|", text, re.M))
    assert documented == {s.name for s in settings.SETTINGS}


def test_every_public_name_is_in_the_api_reference():
    text = read("api.md")
    for name in cairn.__all__:
        assert re.search(rf"`{re.escape(name)}[`(]", text), f"cairn.{name} is missing from docs/api.md"
    client_part = text.split("## `Client`")[1].split("\n## ")[0]
    public = [n for n, _ in inspect.getmembers(cairn.Client) if not n.startswith("_")]
    assert "get_run" in public
    for name in public:
        assert re.search(rf"`{name}[`(]", client_part), f"Client.{name} is missing from docs/api.md"


def test_store_layout_describes_every_derived_table():
    text = read("store-layout.md")
    for table in DERIVED_TABLES:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{table.name}` |")]
        assert len(rows) == 1, f"table {table.name} is missing from docs/store-layout.md"
        for column in table.columns:
            assert f"`{column.name}`" in rows[0], f"{table.name}.{column.name} is not described"


def _anchors(text: str) -> set[str]:
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


@pytest.mark.parametrize("doc", OWNED)
def test_links_point_somewhere(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", read(doc)):
        if "://" in target:
            continue
        page, _, anchor = target.partition("#")
        path = DOCS / (page or doc)
        assert path.exists(), f"docs/{doc} links to missing {page}"
        if anchor:
            assert anchor in _anchors(path.read_text(encoding="utf-8")), \
                f"docs/{doc} links to missing anchor {target}"
