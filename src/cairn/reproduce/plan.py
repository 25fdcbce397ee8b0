"""What a recorded run says about rebuilding it, and what it lacks: the plan of a rerun.

Read from the run's captured environment (``Run.env``, see :mod:`cairn.environment`) and
the store: the commit and the repository holding it, the stored patch and untracked files,
the command, the Python and package set, the data set versions it read.  Nothing here
changes anything; :func:`make_plan` is what ``cairn reproduce --dry-run`` prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from ..entities import Run
from ..environment import REDACTED

_GIT_TIMEOUT_S = 30
# What a recorded run may name, checked before any of it reaches git or uv as an argument
# (a store may be someone else's: "--upload-pack=..." is not a commit).
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PYTHON = re.compile(r"[0-9]+(\.[0-9]+){1,2}[0-9A-Za-z.+]*")
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")     # PEP 508
_VERSION = re.compile(r"[0-9A-Za-z!][0-9A-Za-z.!+_-]*")               # PEP 440, and local parts


@dataclass(frozen=True, slots=True)
class DataInput:
    """A data set version the run read, and whether this store still has all of it."""

    ref: str
    role: str
    tree: str | None
    present: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """How one run would be rebuilt and re-run; ``missing`` lists what stops it."""

    run_id: str
    name: str
    experiment: str
    repo: str | None = None            # the repository the commit is looked for in
    commit: str | None = None
    patch: str | None = None           # oid of the uncommitted diff (None: clean tree)
    patch_size: int | None = None
    untracked: dict[str, str] = field(default_factory=dict)   # path -> oid
    snapshot: dict[str, str] = field(default_factory=dict)    # path -> oid (no git)
    cwd: str = "."                     # relative to the code's root
    command: tuple[str, ...] = ()      # what follows the interpreter: script or -m module, args
    python: str | None = None          # the recorded version
    packages: dict[str, str] = field(default_factory=dict)
    package_sources: dict[str, Any] = field(default_factory=dict)
    env_vars: dict[str, str] = field(default_factory=dict)
    container: dict[str, Any] | None = None
    inputs: tuple[DataInput, ...] = ()
    process: str | None = None         # id of the process that made the run
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing

    def group_key(self) -> str:
        """Runs with equal keys were made by one process from one code and environment:
        one rerun of that process reproduces all of them."""
        if self.process is None or self.missing:
            return "run:" + self.run_id
        parts = [self.process, self.repo, self.commit, self.patch, sorted(self.untracked.items()),
                 sorted(self.snapshot.items()), self.cwd, list(self.command), self.python,
                 sorted(self.packages.items()), sorted(self.env_vars.items())]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [asdict(i) for i in self.inputs]
        d["packages"] = len(self.packages)
        d["complete"] = self.complete
        return d


def _part(env: Any, key: str) -> dict[str, Any]:
    value = env.get(key) if isinstance(env, dict) else None
    return value if isinstance(value, dict) else {}


def make_plan(client: Any, run: Run, repo: str | None = None) -> Plan:
    """The plan to rebuild ``run`` (read from ``client``'s store); ``repo`` overrides the
    repository recorded with the run."""
    env = run.env if isinstance(run.env, dict) else {}
    missing: list[str] = []
    notes: list[str] = []
    fields: dict[str, Any] = {}
    if not env or "python" not in env:
        missing.append("the environment: none was recorded (CAIRN_CAPTURE_ENV was off, or "
                       "the run was recorded by a client that does not capture it): no commit, "
                       "package set, Python version or command")
        return Plan(run.id, run.name, run.experiment, missing=tuple(missing),
                    inputs=tuple(_inputs(client, run)))
    git = env.get("git") if isinstance(env.get("git"), dict) else None
    source = _part(env, "source")
    cwd = env.get("cwd") if isinstance(env.get("cwd"), str) else None
    root: str | None = None
    if git is not None:
        root = repo or (git.get("root") if isinstance(git.get("root"), str) else None) or cwd
        fields["commit"] = git.get("commit")
        if fields["commit"] and not (isinstance(fields["commit"], str)
                                     and _COMMIT.fullmatch(fields["commit"])):
            missing.append(f"a commit: the recorded {fields['commit']!r} is not a commit id")
            fields["commit"] = None
        if not fields["commit"]:
            missing.append("a commit: the repository had no commits when the run was made")
        if "root" not in git:
            missing.append("the code's patch and untracked files: the run was recorded before "
                           "Cairn captured them (only the commit and a digest of the diff)")
        elif git.get("dirty") and not git.get("patch"):
            missing.append("the uncommitted diff: it was larger than "
                           "CAIRN_CAPTURE_SOURCE_MAX_TOTAL and was not stored")
        fields["patch"] = git.get("patch") or None
        fields["untracked"] = {k: v for k, v in (git.get("untracked") or {}).items()
                               if isinstance(k, str) and isinstance(v, str)}
        for item in git.get("skipped") or []:
            if isinstance(item, dict):
                notes.append(f"untracked file {item.get('path')} was not stored "
                             f"({item.get('reason')}); the rerun runs without it")
        if root is None:
            missing.append("the repository: give it with --repo PATH")
        elif fields.get("commit"):
            problem = _commit_problem(root, fields["commit"])
            if problem:
                missing.append(problem)
    elif source.get("files"):
        root = source.get("root") if isinstance(source.get("root"), str) else None
        fields["snapshot"] = {k: v for k, v in source["files"].items()
                              if isinstance(k, str) and isinstance(v, str)}
        notes.append(f"no git: the code is the stored snapshot of {len(fields['snapshot'])} "
                     f"file(s) from {root}")
    else:
        missing.append("the code: the run was not made in a git repository and no source "
                       "snapshot was stored")
    if cwd is None:
        missing.append("the working directory: the run was recorded before Cairn captured it")
    elif root is not None:
        rel = os.path.relpath(cwd, root)
        fields["cwd"] = "." if rel == "." else rel
        if rel.startswith(".."):
            notes.append(f"the working directory {cwd} was outside the code at {root}; the "
                         "rerun starts in the code's root")
            fields["cwd"] = "."
    command = _command(env, root, missing, notes)
    oids = [o for o in [fields.get("patch"), *fields.get("untracked", {}).values(),
                        *fields.get("snapshot", {}).values()] if o]
    absent = _absent_objects(client, oids)
    if fields.get("patch") in absent:
        missing.append(f"the patch object {fields['patch'][:12]} is not in the store (the "
                       "process that made the run could not store or upload it)")
    for path, oid in {**fields.get("untracked", {}), **fields.get("snapshot", {})}.items():
        if oid in absent:
            missing.append(f"source file {path} (object {oid[:12]}) is not in the store")
    if fields.get("patch") and fields["patch"] not in absent:
        fields["patch_size"] = _size(client, fields["patch"])
    python = _part(env, "python").get("version")
    packages = _part(env, "packages")
    if python and not (isinstance(python, str) and _PYTHON.fullmatch(python)):
        missing.append(f"the Python version: the recorded {python!r} is not a version")
        python = None
    elif not python:
        missing.append("the Python version")
    bad = sorted(str(k) for k, v in packages.items()
                 if not (isinstance(k, str) and _NAME.fullmatch(k) and isinstance(v, str)
                         and _VERSION.fullmatch(v)))
    if bad:
        missing.append("the package set: " + ", ".join(repr(b) for b in bad[:5])
                       + " is not a package name and version")
        packages = {}
    elif not packages:
        missing.append("the package set")
    process = _part(env, "process").get("id")
    inputs = _inputs(client, run)
    for i in inputs:
        if not i.present:
            missing.append(f"data set version {i.ref} (role {i.role}): "
                           + ("not in this store" if i.tree is None else
                              "some of its objects are not in this store"))
    return Plan(run.id, run.name, run.experiment, repo=root, command=command, python=python,
                packages={str(k): str(v) for k, v in packages.items()},
                package_sources=_part(env, "package_sources"),
                env_vars={str(k): str(v) for k, v in _part(env, "env_vars").items()},
                container=env.get("container") if isinstance(env.get("container"), dict) else None,
                inputs=tuple(inputs), process=process if isinstance(process, str) else None,
                missing=tuple(missing), notes=tuple(notes), **fields)


def _command(env: dict[str, Any], root: str | None, missing: list[str],
             notes: list[str]) -> tuple[str, ...]:
    entry = env.get("entry_point")
    argv = env.get("argv") if isinstance(env.get("argv"), list) else None
    if argv is None or not isinstance(entry, str) or entry in ("", "-", "-c"):
        how = "`python -c`" if entry == "-c" else "an interactive session or a notebook"
        missing.append(f"the command: the run was made by {how}, whose code is not a file")
        return ()
    args = tuple(str(a) for a in argv[1:])
    hidden = [args[i - 1] if a == REDACTED and i else a.partition("=")[0]
              for i, a in enumerate(args) if a == REDACTED or a.endswith("=" + REDACTED)]
    if hidden:
        missing.append("the value of " + ", ".join(hidden) + ": the argument looked like a "
                       "secret and was not recorded")
    if entry.startswith("-m "):
        return ("-m", entry[3:], *args)
    if root is not None:
        rel = os.path.relpath(entry, root)
        if not rel.startswith(".."):
            return (rel, *args)
    if os.path.isfile(entry):
        notes.append(f"the entry point {entry} is outside the code: the rerun runs that file "
                     "as it is on this machine now")
        return (entry, *args)
    missing.append(f"the entry point {entry}: it is outside the code and no longer exists")
    return ()


def _commit_problem(repo: str, commit: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return "git: it is not installed here, and the code is at a commit"
    if not os.path.isdir(repo):
        return f"the repository at {repo}: it no longer exists (give another with --repo)"
    done = subprocess.run([git, "-C", repo, "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, timeout=_GIT_TIMEOUT_S)
    if done.returncode != 0:
        return f"commit {commit} is not in the repository at {repo}"
    return None


def _absent_objects(client: Any, oids: list[str]) -> set[str]:
    if not oids:
        return set()
    from ..store.http import HttpStore

    store = client.store
    if isinstance(store, HttpStore):  # the spool holds only this machine's: ask the server
        return store.missing_objects(oids) - {o for o in oids if store.objects.has(o)}
    return {oid for oid in oids if not store.objects.has(oid)}


def _size(client: Any, oid: str) -> int | None:
    try:
        return int(client.store.objects.backend.size(oid))
    except Exception:  # packed, or a backend that cannot say: the size is only shown
        return None


def _inputs(client: Any, run: Run) -> list[DataInput]:
    from ..cas.tree import referenced_oids
    from ..errors import CairnError, NotFound

    try:
        data = client.data
        rows = data.catalog.run_inputs(run.id)
    except (CairnError, AttributeError):  # a server's data sets: no catalog to read here
        return []
    out = []
    for name, version, role in rows:
        ref = f"{name}@{version}"
        try:
            v = data.version(ref)
        except NotFound:
            out.append(DataInput(ref, role, None, False))
            continue
        try:
            entries = data.files(ref)
            present = not data.objects.missing(referenced_oids(entries))
        except CairnError:
            present = False
        out.append(DataInput(ref, role, v.tree, present))
    return out
