"""Post-import hooks: run a callback once a module has been imported, now or later.

``cairn.autolog()`` is called at the top of a script, usually before the framework is
imported; importing every installed framework eagerly would cost seconds (transformers,
torch) for frameworks the script never uses.  Instead a finder on ``sys.meta_path``
notices the import and calls back once the module has executed.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]

_lock = threading.RLock()
_waiting: dict[str, dict[str, Callback]] = {}  # module name -> {key: callback}


def installed(module: str) -> bool:
    """Whether the top-level package of ``module`` can be imported (without importing it)."""
    top = module.partition(".")[0]
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def when_imported(module: str, key: str, callback: Callback) -> bool:
    """Call ``callback(module)`` now if imported, else right after its import.

    Returns False (and registers nothing) when the module is not installed.  One callback
    per (module, key): registering again replaces it.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        callback(loaded)
        return True
    if not installed(module):
        return False
    with _lock:
        _waiting.setdefault(module, {})[key] = callback
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
    return True


def forget(key: str) -> None:
    """Drop every pending callback registered under ``key``."""
    with _lock:
        for name in list(_waiting):
            _waiting[name].pop(key, None)
            if not _waiting[name]:
                del _waiting[name]
        if not _waiting and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


def pending() -> dict[str, list[str]]:
    with _lock:
        return {name: sorted(cbs) for name, cbs in _waiting.items()}


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = list(_waiting.pop(name, {}).values())
        if not _waiting and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
    for callback in callbacks:
        callback(module)


class _Loader(importlib.abc.Loader):
    """Wraps the real loader for one import; the module itself only ever sees the real one."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _fire(self._name, module)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, fullname)
        return spec


_FINDER = _Finder()
