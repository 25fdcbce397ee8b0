"""The public namespace is pinned, import stays light, and layering goes one way."""

import ast
import pathlib
import subprocess
import sys

import cairn

SRC = pathlib.Path(cairn.__file__).parent


def test_all_is_sorted_and_exported():
    assert cairn.__all__ == sorted(cairn.__all__)
    for name in cairn.__all__:
        assert hasattr(cairn, name), name


def test_import_cairn_loads_no_heavy_module():
    code = ("import sys, cairn; heavy = ['numpy', 'sqlalchemy', 'alembic', 'zstandard', 'fastcdc', "
            "'rich', 'click', 'sklearn', 'torch', 'pandas', 'fastapi', 'matplotlib', 'psutil']; "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute cairn module names imported by a source file (relative imports resolved)."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "cairn" or m.startswith("cairn.")}


def test_layering_is_one_way():
    # Leaves import nothing from cairn; storage never reaches up to client, fluent, server or CLI.
    for leaf in ("errors.py", "types.py"):
        if (SRC / leaf).exists():
            assert _imports(SRC / leaf) == set(), leaf
    upper = ("cairn.client", "cairn.fluent", "cairn.cli", "cairn.server", "cairn.writer")
    for sub in ("store", "cas"):
        for path in (SRC / sub).rglob("*.py"):
            bad = {m for m in _imports(path) if m.startswith(upper)}
            assert not bad, f"{path.relative_to(SRC)} imports {bad}"
    for path in (SRC / "entities.py", SRC / "settings.py"):
        bad = {m for m in _imports(path) if m.startswith(upper + ("cairn.store", "cairn.cas"))}
        assert not bad, f"{path.name} imports {bad}"


def test_per_framework_autolog_namespaces_are_lazy():
    code = ("import sys, cairn; before = 'cairn.autolog.sklearn' in sys.modules; "
            "f = cairn.sklearn.autolog; t = cairn.pytorch.track; "
            "print(before, callable(f), callable(t))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
