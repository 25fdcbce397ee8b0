"""The interpreter a rerun uses: this one, or a virtualenv built with uv.

``auto`` uses the current interpreter when the recorded Python version and package set
equal this process's exactly, and builds one otherwise; ``here`` always uses the current
one (differences are listed in the report); ``build`` always builds.  A build is
``uv venv`` plus ``uv pip install --no-deps`` of every recorded ``name==version`` (the
recorded set is complete, so nothing is resolved), packages installed from a directory
inside the repository come from the rebuilt code, and Cairn itself from the rebuilt code
when that is Cairn's own project.  uv reads its usual settings (``UV_INDEX_URL``,
``UV_OFFLINE``, ``UV_CACHE_DIR``...).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import InvalidArgument, MissingDependency
from .plan import Plan
from .workspace import SetupFailed

MODES = ("auto", "here", "build")
_UV_TIMEOUT_S = 1800
_PRECHECK_MAX = 20  # packages checked one by one to name the one that is not installable


@dataclass(frozen=True, slots=True)
class Interpreter:
    python: str
    how: str                      # here | built
    differences: tuple[str, ...] = field(default=())


def current_packages() -> dict[str, str]:
    from ..environment import capture_environment

    return dict(capture_environment(shared=True)["packages"])


def differences(plan: Plan) -> list[str]:
    """How this interpreter differs from the recorded one (empty: exactly the same)."""
    out = []
    here = ".".join(map(str, sys.version_info[:3]))
    if plan.python and plan.python != here:
        out.append(f"python {plan.python} recorded, {here} here")
    now = current_packages()
    for name in sorted(set(plan.packages) | set(now), key=str.lower):
        a, b = plan.packages.get(name), now.get(name)
        if a != b:
            out.append(f"{name}: {a or '-'} recorded, {b or '-'} here")
    return out


def uv_command() -> list[str]:
    exe = shutil.which("uv")
    if exe is not None:
        return [exe]
    if find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise MissingDependency("rebuilding a run's package set needs uv: pip install uv "
                            "(or pip install 'cairn[reproduce]'); --env here uses this "
                            "interpreter instead")


class Builder:
    """Builds (and, within one session, reuses) the environments of plans."""

    def __init__(self, mode: str, tmp: Path) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"--env must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.tmp = tmp
        self._built: dict[str, str] = {}

    def interpreter(self, plan: Plan, code: Path) -> Interpreter:
        diff = differences(plan)
        if self.mode == "here" or (self.mode == "auto" and not diff):
            return Interpreter(sys.executable, "here", tuple(diff))
        key = hashlib.sha256(json.dumps([plan.python, sorted(plan.packages.items()),
                                         str(code)]).encode()).hexdigest()[:16]
        if key not in self._built:
            self._built[key] = self._build(plan, code, self.tmp / f"venv-{key}")
        return Interpreter(self._built[key], "built", tuple(diff))

    def _build(self, plan: Plan, code: Path, venv: Path) -> str:
        uv = uv_command()
        here = ".".join(map(str, sys.version_info[:3]))
        py = sys.executable if plan.python in (None, here) else str(plan.python)
        made = _run([*uv, "venv", "--quiet", "--python", py, str(venv)])
        if made.returncode != 0:
            raise SetupFailed(f"python {plan.python} is not available: {_last(made.stderr)}")
        python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
        pins, local = self._requirements(plan, code)
        now = current_packages()
        changed = [p for p in pins if now.get(p.split("==")[0]) != p.split("==")[1]]
        install = [*uv, "pip", "install", "--quiet", "--no-deps", "--python", python]
        if changed:  # what this machine does not have already: the likely failures
            self._check(install, changed)
        done = _run([*install, *pins, *local]) if pins or local else None
        if done is not None and done.returncode != 0:
            named = [p for p in pins if re.search(rf"\b{re.escape(p.split('==')[0])}\b",
                                                   done.stderr, re.I)]
            raise SetupFailed("package not installable: " + (", ".join(named[:5]) or "?")
                              + f" ({_last(done.stderr)})")
        return python

    def _check(self, install: list[str], pins: list[str]) -> None:
        first = _run([*install, "--dry-run", *pins])
        if first.returncode == 0:
            return
        if len(pins) == 1:
            bad = pins
        else:
            bad = [p for p in pins[:_PRECHECK_MAX] if _run([*install, "--dry-run", p]).returncode]
        raise SetupFailed("package not installable: " + (", ".join(bad) or ", ".join(pins[:5]))
                          + f" ({_last(first.stderr)})")

    def _requirements(self, plan: Plan, code: Path) -> tuple[list[str], list[str]]:
        pins: list[str] = []
        local: list[str] = []
        for name, version in sorted(plan.packages.items(), key=lambda kv: kv[0].lower()):
            source = plan.package_sources.get(name)
            if name.lower() == "cairn":
                local += _cairn_source(code, source, version)
                continue
            if isinstance(source, dict) and isinstance(source.get("url"), str) \
                    and source["url"].startswith("file://"):
                local.append(self._local_source(plan, code, name, source["url"]))
                continue
            if isinstance(source, dict) and isinstance(source.get("url"), str):
                local.append(f"{name} @ {source['url']}")  # a VCS or archive URL
                continue
            pins.append(f"{name}=={version}")
        return pins, local

    def _local_source(self, plan: Plan, code: Path, name: str, url: str) -> str:
        path = unquote(urlsplit(url).path)
        if plan.repo:
            rel = os.path.relpath(path, plan.repo)
            if not rel.startswith(".."):
                return str(code / rel)  # the project itself (or a part of it): rebuilt code
        if os.path.exists(path):
            return path
        raise SetupFailed(f"package not installable: {name} was installed from {path}, "
                          "which no longer exists")


def _cairn_source(code: Path, source: object, version: str) -> list[str]:
    pyproject = code / "pyproject.toml"
    if pyproject.is_file() and re.search(r'(?m)^name\s*=\s*"cairn"', pyproject.read_text()):
        return [str(code)]  # reproducing Cairn's own examples: Cairn at that commit
    if isinstance(source, dict) and str(source.get("url", "")).startswith("file://"):
        path = unquote(urlsplit(str(source["url"])).path)
        if os.path.isdir(path):
            return [path]
    return [f"cairn=={version}"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=_UV_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SetupFailed(f"uv did not finish within {_UV_TIMEOUT_S} s: {' '.join(cmd[:4])}") \
            from None


def _last(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-3:])[-400:] if lines else "no output"
