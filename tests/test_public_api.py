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


# -- layering ----------------------------------------------------------------------------
# A unit is a top-level module or package of cairn ("store" is all of cairn/store/); the
# package's own __init__ is "cairn".  LAYERS says which units each one may import, by any
# import statement anywhere in it: at the top, inside a function, under TYPE_CHECKING.
# (importlib.import_module by name, as services.py does, is not seen.)

LEAVES = {"errors", "clock", "names", "entities", "environment", "types", "stats", "progress"}
# Storage: never settings (stores take plain values; store_settings feeds them the
# CAIRN_* settings), never anything above it.
STORAGE = {"search", "cas", "store"}
CORE = LEAVES | STORAGE | {"settings", "sysmetrics", "store_settings", "writer", "anonymise"}
# The run API: a Client, the fluent state below it and the services table beside it (a
# Client builds its registry, data sets and lineage there; they hold a Client).
RUNS = CORE | {"_state", "client", "services"}
DOMAIN = RUNS | {"registry", "data", "lineage", "collab"}
APPS = DOMAIN | {"fluent", "autolog", "importers"}
EVERYTHING = APPS | {"server", "cli", "testing", "cairn"}

LAYERS: dict[str, set[str]] = {
    **{leaf: set() for leaf in LEAVES},
    "settings": {"errors"},
    "sysmetrics": {"errors"},
    "search": {"entities", "errors"},
    "cas": {"entities", "errors", "clock", "progress"},
    "store": {"search", "cas", "entities", "errors", "clock", "progress"},
    "store_settings": {"settings", "store"},
    "writer": LEAVES | STORAGE | {"settings", "anonymise"},
    # client-side anonymisation: rules and pseudonyms the writer applies before a record is
    # journaled, so it sits below the writer (what works on a whole store is in lifecycle)
    "anonymise": {"settings", "errors", "entities"},
    "_state": CORE,
    "client": RUNS,
    "services": DOMAIN,
    "registry": DOMAIN,
    "data": DOMAIN,
    "lineage": DOMAIN,
    "collab": DOMAIN,
    "fluent": DOMAIN,
    "autolog": APPS,
    "importers": DOMAIN,
    # no fluent API, no autolog, no CLI; the UI's monitoring page and trash
    "server": DOMAIN | {"monitoring", "lifecycle"},
    "serving": DOMAIN,  # model serving: only `cairn serve` imports it
    "monitoring": DOMAIN | {"serving", "webhooks", "reproduce"},  # predlog; alerts emit events; KPIs
    "reproduce": DOMAIN,  # rebuild and re-run a recorded run (cairn reproduce)
    "pipelines": DOMAIN,  # stages with a cache (cairn pipeline)
    "gate": DOMAIN,  # the CI gate for promotions (cairn check)
    "webhooks": DOMAIN,  # events from the registry's audit log and ended runs
    "doctor": DOMAIN,  # cairn doctor: a store's journals, index, objects and audit log
    # trash, retention, gc, backup, export and erasure: whole-store work over the domain
    "lifecycle": DOMAIN | {"anonymise", "doctor"},  # a restored backup is checked by doctor
    "cli": APPS | {"server", "serving", "monitoring", "webhooks", "reproduce", "pipelines", "gate",
                   "doctor", "lifecycle", "anonymise"},
    "testing": EVERYTHING,  # the pytest plugin: fixtures over every layer
    "cairn": EVERYTHING,
}

# Imports against the table, kept on purpose: (importer, imported) -> why.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("_state", "client"): "type-only (TYPE_CHECKING): the state keeps one Client per URI",
    ("services", "fluent"): "a service made with no store uses the fluent API's client",
    ("data", "fluent"): "Datasets.add logs a version as an input of the active fluent run",
    ("server", "cairn"): "only __version__ (health and app info)",
}


def _unit(module: str) -> str:
    """The unit of ``cairn.x.y`` (``x``, when it is a module or package of cairn)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] != "__init__" and \
            ((SRC / f"{parts[1]}.py").exists() or (SRC / parts[1]).is_dir()):
        return parts[1]
    return "cairn"


def _unit_of(path: pathlib.Path) -> str:
    return _unit("cairn." + ".".join(path.relative_to(SRC).with_suffix("").parts))


def _module_imports(path: pathlib.Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, absolute names) of every import in a source file."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod, [f"{mod}.{a.name}" for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names)
    return found


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute cairn module names imported by a source file (relative imports resolved)."""
    found = set()
    for _line, mod, names in _module_imports(path):
        found.add(mod)
        found.update(names)
    return {m for m in found if m == "cairn" or m.startswith("cairn.")}


def _sources() -> list[pathlib.Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def test_layering_follows_the_table():
    violations = []
    for path in _sources():
        rel = path.relative_to(SRC)
        me = _unit_of(path)
        if me not in LAYERS:
            violations.append(f"{rel}: unit {me!r} is not in LAYERS (tests/test_public_api.py)")
            continue
        for line, mod, names in _module_imports(path):
            if mod != "cairn" and not mod.startswith("cairn."):
                continue
            # ``from cairn import x``: x is the module imported (or a name of the package).
            targets = {_unit(n) for n in names} if mod == "cairn" else {_unit(mod)}
            for target in sorted(targets - {me} - LAYERS[me]):
                if (me, target) not in KNOWN_EXCEPTIONS:
                    violations.append(f"{rel}:{line}: {me} imports {target} ({mod})")
    assert not violations, "imports against LAYERS:\n" + "\n".join(violations)


def test_known_layering_exceptions_are_still_needed():
    used = set()
    for path in _sources():
        me = _unit_of(path)
        for _line, mod, names in _module_imports(path):
            if mod == "cairn" or mod.startswith("cairn."):
                used.update((me, t) for t in ({_unit(n) for n in names} if mod == "cairn"
                                              else {_unit(mod)}))
    assert set(KNOWN_EXCEPTIONS) <= used, set(KNOWN_EXCEPTIONS) - used


def test_leaves_and_storage_stay_low():
    # Spelled out: what the table above must never allow.
    for leaf in LEAVES:
        assert LAYERS[leaf] == set(), leaf
    upper = {"client", "fluent", "cli", "server", "writer", "settings", "store_settings",
             "services", "registry", "data", "lineage", "autolog", "importers", "cairn"}
    for low in ("store", "cas", "search"):
        assert not LAYERS[low] & upper, low
    for domain in ("registry", "data", "lineage"):
        assert not LAYERS[domain] & {"server", "cli", "autolog", "testing"}, domain


def test_the_clock_is_imported_as_a_module():
    # ``from cairn.clock import now_ms`` copies the function: cairn.testing's clock, which
    # replaces cairn.clock.time_ns, would not reach it.
    copies = []
    for path in _sources():
        for line, mod, _names in _module_imports(path):
            if mod == "cairn.clock":
                copies.append(f"{path.relative_to(SRC)}:{line}")
    assert not copies, f"use `from cairn import clock` and call clock.X(): {copies}"


def test_per_framework_autolog_namespaces_are_lazy():
    code = ("import sys, cairn; before = 'cairn.autolog.sklearn' in sys.modules; "
            "f = cairn.sklearn.autolog; t = cairn.pytorch.track; "
            "print(before, callable(f), callable(t))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
