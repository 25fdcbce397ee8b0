"""Reading a pipeline file: ``cairn.yaml`` or DVC's ``dvc.yaml`` (with ``params.yaml``).

The result is a :class:`Pipeline`: stages with their commands, paths normalised to
posix paths relative to the pipeline file's directory, params resolved to values, and
the graph between stages (a stage depends on the stage whose output it reads).  Every
rule that makes a pipeline invalid is checked here, before anything runs: unknown keys,
cycles, two stages writing the same output.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from ..errors import InvalidArgument, MissingDependency, NotFound
from ..store.validation import surrogate_error

PIPELINE_FILES = ("cairn.yaml", "dvc.yaml")
DEFAULT_PARAMS = "params.yaml"
STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "wdir", "desc", "meta"}
FOREACH_KEYS = {"foreach", "do"}
TOP_KEYS = {"stages"}
# DVC keys that a stage or file may have and Cairn does not read: named in the error.
UNSUPPORTED = {"vars", "plots", "frozen", "always_changed", "matrix", "artifacts", "metrics",
               "params", "datasets"}
OUT_OPTIONS = {"cache", "persist", "desc"}
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_VAR_RE = re.compile(r"\$\{\s*([A-Za-z0-9_.\-]+)\s*\}")


class Stage(NamedTuple):
    """One stage, expanded and resolved.  Paths are relative to the pipeline's root.

    (Named tuples here and plain classes below: a no-op ``cairn pipeline run`` is mostly
    start-up, and a dataclass costs milliseconds to define.)"""

    name: str
    cmd: tuple[str, ...]
    wdir: str  # "." or a relative posix path
    deps: tuple[str, ...]
    params: Mapping[str, Any]  # "file:key" -> value (None when the key is missing)
    outs: tuple[str, ...]  # includes metrics files
    metrics: tuple[str, ...]
    persist: frozenset[str] = frozenset()


class Pipeline:
    """The stages of one pipeline file, in a topological order, and their graph."""

    __slots__ = ("path", "root", "stages", "upstream", "order")

    def __init__(self, path: Path, root: Path, stages: dict[str, Stage],
                 upstream: dict[str, list[str]], order: list[str]) -> None:
        self.path = path  # the pipeline file
        self.root = root  # its directory: every stage path is relative to it
        self.stages = stages
        self.upstream = upstream  # stage -> the stages whose outputs it reads
        self.order = order  # a topological order

    def downstream_of(self, names: Sequence[str]) -> set[str]:
        """``names`` and every stage that reads (transitively) what they write."""
        down: dict[str, list[str]] = {n: [] for n in self.stages}
        for n, ups in self.upstream.items():
            for u in ups:
                down[u].append(n)
        return _closure(names, down)

    def upstream_of(self, names: Sequence[str]) -> set[str]:
        """``names`` and every stage they (transitively) read from."""
        return _closure(names, self.upstream)

    def select(self, target: str | None) -> list[str]:
        """The stages to bring up to date for ``target`` (a stage, or a foreach group: all its
        items), with everything they read, in topological order; every stage for None."""
        if target is None:
            return list(self.order)
        picked = [n for n in self.stages if n == target or n.startswith(target + "@")]
        if not picked:
            raise NotFound(f"no stage {target!r} in {self.path.name}; stages: "
                           f"{', '.join(self.order)}", stage=target)
        need = self.upstream_of(picked)
        return [n for n in self.order if n in need]


def find_pipeline_file(path: str | os.PathLike[str] | None = None) -> Path:
    """The pipeline file: ``path`` if given, else ``cairn.yaml``, else ``dvc.yaml`` here."""
    if path is not None:
        p = Path(path)
        if p.is_dir():
            return find_pipeline_file_in(p)
        if not p.is_file():
            raise NotFound(f"no pipeline file {p}", path=str(p))
        return p
    return find_pipeline_file_in(Path("."))


def find_pipeline_file_in(directory: Path) -> Path:
    for name in PIPELINE_FILES:
        if (directory / name).is_file():
            return directory / name
    raise NotFound(f"no cairn.yaml or dvc.yaml in {directory.resolve()}; name one with -f FILE",
                   path=str(directory))


def yaml_module() -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependency("pipelines read YAML and need PyYAML: "
                                "pip install 'cairn[pipelines]'") from None
    return yaml


def read_yaml(path: Path) -> Any:
    yaml = yaml_module()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path} is not UTF-8 text: {exc}", path=str(path)) from None
    try:
        doc = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}", path=str(path)) from None
    check_expanded_size(doc, path)
    return doc


MAX_NODES = 5_000_000


def check_expanded_size(doc: Any, path: Path) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES values (a "billion
    laughs" file: small on disk, but every walk over it, hashing included, is exponential).
    Counted once per distinct node, so this costs one pass over what was parsed."""
    sizes: dict[int, int] = {}
    keep: list[Any] = []  # the nodes whose id() is a key of sizes stay alive

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once
        keep.append(node)
        children = (v for kv in node.items() for v in kv) if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        sizes[id(node)] = total
        return total

    try:
        n = size(doc)
    except RecursionError:
        n = MAX_NODES + 1
    if n > MAX_NODES:
        raise InvalidArgument(f"{path} expands to more than {MAX_NODES} values (YAML aliases "
                              "that repeat each other?)", path=str(path))


def load_pipeline(path: str | os.PathLike[str] | None = None,
                  cache: dict[str, Any] | None = None) -> Pipeline:
    """Read and check a pipeline file (see ``docs/pipelines.md``).

    ``cache``: a dict the caller keeps (the lock file's ``pipeline`` entry): when the
    pipeline file and every params file it read stat as they did, the pipeline is taken
    from it without reading YAML at all; otherwise it is parsed and the cache refilled."""
    file = find_pipeline_file(path).resolve()
    # The entry is for one pipeline file (the first in its signature): cairn.yaml and
    # dvc.yaml side by side share the lock.
    if cache is not None and cache.get("sig"):
        try:
            sig = cache["sig"]
            if sig[0][0] == file.name and sig == _signature(file.parent, [s[0] for s in sig]):
                return _from_cache(file, cache)
        except (KeyError, TypeError, ValueError, IndexError, OSError):
            pass  # an older or damaged entry: parse again
    doc = read_yaml(file)
    read: dict[str, Any] = {}
    p = parse_pipeline(doc, file, read)
    if cache is not None:
        sig = _signature(file.parent, [file.name, *sorted(read)])
        cache.clear()
        if all(s[1] is None or not s[1][4] for s in sig):  # nothing racy
            cache.update(_to_cache(p, sig))
    return p


def _signature(root: Path, rels: list[str]) -> list[list[Any]]:
    import time

    now = time.time_ns()
    out: list[list[Any]] = []
    for rel in rels:
        try:
            st = os.stat(root / rel)
            out.append([rel, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                              st.st_mtime_ns >= now - 100_000_000]])
        except FileNotFoundError:
            out.append([rel, None])
    return out


def _to_cache(p: Pipeline, sig: list[list[Any]]) -> dict[str, Any]:
    return {"sig": sig, "order": p.order, "upstream": p.upstream,
            "stages": [[s.name, list(s.cmd), s.wdir, list(s.deps), list(s.params.items()),
                        list(s.outs), list(s.metrics), sorted(s.persist)]
                       for s in p.stages.values()]}


def _from_cache(file: Path, cache: dict[str, Any]) -> Pipeline:
    stages = {}
    for name, cmd, wdir, deps, params, outs, metrics, persist in cache["stages"]:
        stages[name] = Stage(name, tuple(cmd), wdir, tuple(deps), dict(params), tuple(outs),
                             tuple(metrics), frozenset(persist))
    upstream = {k: list(v) for k, v in cache["upstream"].items()}
    if set(upstream) != set(stages) or set(cache["order"]) != set(stages):
        raise ValueError("inconsistent")
    return Pipeline(file, file.parent, stages, upstream, list(cache["order"]))


def parse_pipeline(doc: Any, file: Path, params_cache: dict[str, Any] | None = None) -> Pipeline:
    """Check ``doc`` (the YAML of ``file``) and build its :class:`Pipeline`.
    ``params_cache`` collects the params files read (relative path -> content)."""
    where = file.name
    if not isinstance(doc, Mapping):
        raise InvalidArgument(f"{where}: expected a mapping with 'stages', got "
                              f"{type(doc).__name__}")
    _check_keys(doc, TOP_KEYS, where)
    stages_doc = doc.get("stages")
    if not isinstance(stages_doc, Mapping) or not stages_doc:
        raise InvalidArgument(f"{where}: 'stages' must be a mapping of stage names to stages")
    root = file.parent
    if params_cache is None:
        params_cache = {}
    stages: dict[str, Stage] = {}
    for name, body in stages_doc.items():
        _check_stage_name(name, where)
        if isinstance(body, Mapping) and "foreach" in body:
            for item_name, expanded in _expand_foreach(name, body, where):
                _add(stages, _stage(item_name, expanded, root, params_cache, where), where)
        else:
            _add(stages, _stage(name, body, root, params_cache, where), where)
    for s in stages.values():
        for out in s.outs:
            if out in (file.name, "cairn.lock") or out == ".git" or out.startswith(".git/"):
                raise InvalidArgument(f"{where}: stage {s.name!r}: {out!r} cannot be an output "
                                      "(a restore from the cache would overwrite it)", path=out)
    upstream = _graph(stages, where)
    return Pipeline(file, root, stages, upstream, _topo_order(stages, upstream, where))


def _add(stages: dict[str, Stage], stage: Stage, where: str) -> None:
    if stage.name in stages:
        raise InvalidArgument(f"{where}: two stages are named {stage.name!r}")
    stages[stage.name] = stage


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in doc:
        if key in allowed:
            continue
        if key in UNSUPPORTED:
            raise InvalidArgument(
                f"{where}: {key!r} is a DVC key that cairn pipeline does not read; it reads "
                f"stages with {', '.join(sorted(STAGE_KEYS | FOREACH_KEYS))} (see "
                f"docs/pipelines.md, 'Switching from DVC')", key=str(key))
        raise InvalidArgument(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}",
                              key=str(key))


def _check_stage_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(f"{where}: invalid stage name {name!r}: use letters, digits, "
                              "'_', '.', '-' (at most 128 characters)")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    err = surrogate_error(value, what)
    if err is not None:
        raise err
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character")
    return value


# -- foreach ---------------------------------------------------------------------------
def _expand_foreach(name: str, body: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
    _check_keys(body, FOREACH_KEYS, f"{where}: stage {name!r}")
    items = body.get("foreach")
    do = body.get("do")
    if not isinstance(do, Mapping):
        raise InvalidArgument(f"{where}: stage {name!r}: foreach needs a 'do' mapping")
    if isinstance(items, Mapping):
        pairs = [(str(k), {"key": k, "item": v}) for k, v in items.items()]
    elif isinstance(items, list):
        # As DVC names them: a scalar item by its value, a structured one by its index.
        pairs = [(str(i) if isinstance(v, (Mapping, list)) else str(v), {"item": v})
                 for i, v in enumerate(items)]
    else:
        raise InvalidArgument(f"{where}: stage {name!r}: foreach must be a list or a mapping "
                              "(a ${...} reference is not supported)")
    if not pairs:
        raise InvalidArgument(f"{where}: stage {name!r}: foreach is empty")
    out = []
    for label, ctx in pairs:
        item_name = f"{name}@{label}"
        _check_stage_name(item_name.replace("@", "_"), where)
        out.append((item_name, _interpolate(do, ctx, f"{where}: stage {item_name!r}")))
    return out


def _interpolate(value: Any, ctx: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        whole = _VAR_RE.fullmatch(value.strip())
        if whole and whole.group(1).split(".")[0] in ctx and value.strip() == value:
            return _lookup(ctx, whole.group(1), where)
        return _VAR_RE.sub(lambda m: _render(_lookup(ctx, m.group(1), where), where)
                           if m.group(1).split(".")[0] in ctx else m.group(0), value)
    if isinstance(value, Mapping):
        return {_interpolate(k, ctx, where): _interpolate(v, ctx, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, ctx, where) for v in value]
    return value


def _lookup(ctx: Mapping[str, Any], dotted: str, where: str) -> Any:
    node: Any = ctx
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidArgument(f"{where}: ${{{dotted}}} is not defined")
    return node


def _render(value: Any, where: str) -> str:
    if isinstance(value, (Mapping, list)):
        raise InvalidArgument(f"{where}: cannot put a {type(value).__name__} inside a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- one stage -------------------------------------------------------------------------
def _stage(name: str, body: Any, root: Path, params_cache: dict[str, Any], where: str) -> Stage:
    here = f"{where}: stage {name!r}"
    if not isinstance(body, Mapping):
        raise InvalidArgument(f"{here}: expected a mapping with 'cmd'")
    _check_keys(body, STAGE_KEYS, here)
    wdir = _rel_path(body.get("wdir", "."), ".", root, f"{here}: wdir", allow_dot=True)
    # ${param} in any string reads params.yaml of the working directory, as DVC does.
    defaults = _params_file(root, wdir, DEFAULT_PARAMS, params_cache, required=False)
    if defaults:
        body = _interpolate(body, defaults, here)
    cmd_doc = body.get("cmd")
    cmd: tuple[str, ...]
    if isinstance(cmd_doc, str):
        cmd = (_text(cmd_doc, f"{here}: cmd"),)
    elif isinstance(cmd_doc, list) and cmd_doc:
        cmd = tuple(_text(c, f"{here}: cmd") for c in cmd_doc)
    else:
        raise InvalidArgument(f"{here}: 'cmd' must be a command or a list of commands")
    deps = tuple(_rel_path(d, wdir, root, f"{here}: dep") for d in _list(body, "deps", here))
    outs, persist = _outs(body, "outs", wdir, root, here)
    metrics, mpersist = _outs(body, "metrics", wdir, root, here)
    params = _params(body, wdir, root, params_cache, here)
    everything = outs + metrics
    if len(set(everything)) != len(everything):
        raise InvalidArgument(f"{here}: an output is listed twice")
    for dep in deps:
        for out in everything:
            if dep == out or dep.startswith(out + "/") or out.startswith(dep + "/"):
                # Its key would hold what it writes: it would run again every time.
                raise InvalidArgument(f"{here}: it reads its own output: dependency {dep!r} "
                                      f"and output {out!r} overlap", path=dep)
    return Stage(name, cmd, wdir, tuple(dict.fromkeys(deps)), params, everything, metrics,
                 frozenset(persist | mpersist))


def _list(body: Mapping[str, Any], key: str, here: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{here}: '{key}' must be a list")
    return value


def _outs(body: Mapping[str, Any], key: str, wdir: str, root: Path,
          here: str) -> tuple[tuple[str, ...], set[str]]:
    paths: list[str] = []
    persist: set[str] = set()
    for item in _list(body, key, here):
        options: Mapping[str, Any] = {}
        if isinstance(item, Mapping):
            if len(item) != 1:
                raise InvalidArgument(f"{here}: an entry of '{key}' is a path or "
                                      "{path: {options}}")
            item, options = next(iter(item.items()))
            options = options or {}
            if not isinstance(options, Mapping):
                raise InvalidArgument(f"{here}: options of {item!r} must be a mapping")
            for opt in options:
                if opt not in OUT_OPTIONS:
                    raise InvalidArgument(
                        f"{here}: option {opt!r} of {item!r} is not read by cairn pipeline "
                        f"(it reads {', '.join(sorted(OUT_OPTIONS))})", key=str(opt))
        path = _rel_path(item, wdir, root, f"{here}: {key[:-1] if key == 'outs' else key}")
        paths.append(path)
        if options.get("persist"):
            persist.add(path)
    return tuple(paths), persist


def _rel_path(value: Any, wdir: str, root: Path, what: str, allow_dot: bool = False) -> str:
    """A path of the pipeline as a normalised posix path relative to the root; it must stay
    inside the root (a stage writing outside the project is refused)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    text = _text(value, what)
    if os.path.isabs(text):
        raise InvalidArgument(f"{what} {text!r} is absolute; use a path relative to "
                              f"{root}", path=text)
    joined = posixpath.normpath(posixpath.join(wdir, text.replace(os.sep, "/")))
    if joined == ".." or joined.startswith("../"):
        raise InvalidArgument(f"{what} {text!r} is outside the pipeline's directory {root}",
                              path=text)
    if joined == "." and not allow_dot:
        raise InvalidArgument(f"{what} {text!r} names the whole project directory", path=text)
    return joined


# -- params ----------------------------------------------------------------------------
def _params_file(root: Path, wdir: str, name: str, cache: dict[str, Any], *,
                 required: bool) -> Mapping[str, Any]:
    rel = posixpath.normpath(posixpath.join(wdir, name))
    if rel not in cache:
        p = root / rel
        if not p.is_file():
            if required:
                raise NotFound(f"params file {rel} does not exist", path=rel)
            cache[rel] = {}
        else:
            doc = read_params(p)
            cache[rel] = doc
    return cache[rel]


def read_params(path: Path) -> Mapping[str, Any]:
    """A params file (YAML, or JSON which is YAML too) as a mapping."""
    doc = read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise InvalidArgument(f"params file {path.name} must hold a mapping")
    return doc


def _params(body: Mapping[str, Any], wdir: str, root: Path, cache: dict[str, Any],
            here: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _list(body, "params", here):
        if isinstance(item, str):
            _param(out, DEFAULT_PARAMS, item, wdir, root, cache, here)
        elif isinstance(item, Mapping):
            for file, keys in item.items():
                file = _text(file, f"{here}: params file")
                _rel_path(file, wdir, root, f"{here}: params file")  # inside the project
                if keys is None:  # every param of the file
                    doc = _params_file(root, wdir, file, cache, required=True)
                    for k in doc:
                        _param(out, file, str(k), wdir, root, cache, here)
                    continue
                if not isinstance(keys, list):
                    raise InvalidArgument(f"{here}: params of {file} must be a list of keys")
                for k in keys:
                    _param(out, file, k, wdir, root, cache, here)
        else:
            raise InvalidArgument(f"{here}: a params entry is a key or {{file: [keys]}}, "
                                  f"got {item!r}")
    return dict(sorted(out.items()))


def _param(out: dict[str, Any], file: str, key: Any, wdir: str, root: Path,
           cache: dict[str, Any], here: str) -> None:
    key = _text(key, f"{here}: param")
    doc = _params_file(root, wdir, file, cache, required=True)
    node: Any = doc
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise InvalidArgument(f"{here}: param {key!r} is not in "
                                  f"{posixpath.normpath(posixpath.join(wdir, file))}", param=key)
    rel = posixpath.normpath(posixpath.join(wdir, file))
    out[f"{rel}:{key}"] = node


# -- the graph ---------------------------------------------------------------------------
def _graph(stages: Mapping[str, Stage], where: str) -> dict[str, list[str]]:
    writer: dict[str, str] = {}
    for s in stages.values():
        for out in s.outs:
            clash = writer.get(out) or next(
                (writer[a] for a in _ancestors(out) if a in writer), None)
            other_out = out if out in writer else next((a for a in _ancestors(out) if a in writer),
                                                       None)
            if clash is None:
                inside = [o for o in writer if o.startswith(out + "/")]
                if inside:
                    other_out, clash = inside[0], writer[inside[0]]
            if clash is not None:
                raise InvalidArgument(
                    f"{where}: stages {clash!r} and {s.name!r} both write {other_out!r}"
                    + ("" if out == other_out else f" (and {out!r} overlaps it)"),
                    stages=[clash, s.name], path=out)
            writer[out] = s.name
    dirs_written = sorted(writer)
    upstream: dict[str, list[str]] = {}
    for s in stages.values():
        ups: list[str] = []
        for dep in s.deps:
            found = [writer[p] for p in (dep, *_ancestors(dep)) if p in writer]
            if not found and any(o.startswith(dep + "/") for o in dirs_written):
                found = [writer[o] for o in dirs_written if o.startswith(dep + "/")]
            for w in found:
                if w != s.name and w not in ups:
                    ups.append(w)
        upstream[s.name] = ups
    return upstream


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _topo_order(stages: Mapping[str, Stage], upstream: Mapping[str, list[str]],
                where: str) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    for start in stages:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            ups = upstream[node]
            if i < len(ups):
                stack.append((node, i + 1))
                nxt = ups[i]
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt):] + [nxt]
                    raise InvalidArgument(f"{where}: the stages form a cycle: "
                                          f"{' -> '.join(reversed(cycle))}", stages=cycle)
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
                order.append(node)
    return order


def _closure(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> set[str]:
    """``names`` and every stage reached from them along ``edges``."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(edges[n])
    return seen
