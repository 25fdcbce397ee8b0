"""Flavors: how a kind of model is saved to files and loaded back.

A flavor is detected from the object (frameworks are only recognised when their
module is already imported, so detection imports nothing).  Each flavor writes
its files under a directory and returns a :class:`Saved` description; loading
gets that directory back from the verified cache.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...errors import InvalidArgument, MissingDependency

NAMES = ("sklearn", "pytorch", "pickle", "directory")


@dataclass
class Saved:
    """What a flavor's ``save`` reports about the files it wrote."""

    options: dict[str, Any] = field(default_factory=dict)  # what load() needs, stored in the meta
    fingerprint: dict[str, Any] = field(default_factory=dict)  # architecture, compared on bump
    hyperparams: dict[str, str] = field(default_factory=dict)  # compared on bump
    packages: tuple[str, ...] = ()  # distributions the model needs at load time


def module_for(name: str) -> Any:
    if name not in NAMES:
        raise InvalidArgument(f"unknown flavor {name!r}; use one of {', '.join(NAMES)}",
                              flavor=name)
    return importlib.import_module(f"{__name__}.{name}")


def detect(model: Any) -> str:
    """The flavor of ``model`` without importing any framework."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir():
            return "directory"
        raise InvalidArgument(f"model path {str(path)!r} is not a directory; a directory of "
                              "files is registered as is, objects are saved by their flavor")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "pytorch"
    base = sys.modules.get("sklearn.base")
    if base is not None and isinstance(model, base.BaseEstimator):
        return "sklearn"
    return "pickle"


def class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str, what: str) -> type:
    module, _, qual = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"{what}: cannot import the model class {path} ({exc}); make it "
                              "importable (not defined in __main__ of another script) or pass "
                              "model=<an instance> to load the weights into") from None
    return obj


def require(module: str, flavor: str, what: str, extra: str | None = None) -> Any:
    """Import an optional framework or raise :class:`MissingDependency` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f"pip install 'cairn[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependency(f"{what} needs {module} (flavor {flavor}) but it is not "
                                f"installed; install it ({hint}) and load again",
                                flavor=flavor, package=module) from None


@functools.lru_cache(maxsize=256)
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(dists: tuple[str, ...]) -> dict[str, str]:
    found = {dist: _version(dist) for dist in dists}
    return {k: v for k, v in found.items() if v is not None}


def distribution_of(obj: Any) -> tuple[str, ...]:
    """The installed distribution that provides ``obj``'s class, if any (for requirements)."""
    top = type(obj).__module__.split(".")[0]
    if top in ("builtins", "__main__"):
        return ()
    try:
        return tuple(importlib.metadata.packages_distributions().get(top, ()))[:1]
    except Exception:  # metadata of broken installs must not break registration
        return ()


def requirements(packages: tuple[str, ...]) -> dict[str, Any]:
    return {"python": platform.python_version(), "packages": versions(tuple(sorted(set(packages))))}


def simple(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def stringify(params: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameters as strings, keeping only what has a stable spelling."""
    out = {}
    for key, value in params.items():
        if simple(value):
            out[str(key)] = str(value)
        elif isinstance(value, (list, tuple)) and all(simple(v) for v in value):
            out[str(key)] = str(list(value))
    return out


Predict = Callable[[Any, Any], Any]
