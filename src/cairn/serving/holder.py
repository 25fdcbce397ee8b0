"""The model being served: loaded and verified by the registry, warmed, swapped atomically.

:class:`Served` is one loaded version: its registry record, the model, and how to call it.
:class:`ModelHolder` holds the current one; a request takes ``holder.current`` once and
uses that snapshot to the end, so a switch never changes the version under a request.
:class:`AliasFollower` is the background thread that polls the registry for where an
alias points and, when it moves, loads and warms the new version, then switches.  A
version that fails to load for good (a digest or signature check, a missing package, a
model with no predict, its files gone) is logged and skipped until the alias moves again;
one that fails for a passing reason (an I/O error, the store unavailable, a timeout) is
tried again on later polls, backing off; the old version keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import CorruptObject, InvalidArgument, MissingDependency, NotFound
from ..registry import loading
from ..registry.entities import ModelVersion
from ..registry.service import parse_ref
from .inputs import pandas

log = logging.getLogger("cairn.serving")

# Load failures that trying again cannot mend: a digest or signature check (CorruptObject,
# InvalidSignature), a flavor that cannot load or has no predict (InvalidArgument), a missing
# package (MissingDependency, ImportError), the version's files gone (NotFound).  Anything
# else (OSError, StoreUnavailable, a timeout) is retried.
PERMANENT = (CorruptObject, InvalidArgument, MissingDependency, NotFound, ImportError)
MAX_BACKOFF = 300.0  # seconds between tries of a version that keeps failing transiently


@dataclass(frozen=True, slots=True)
class Served:
    """One loaded model version and its ``predict(inputs)``."""

    version: ModelVersion
    model: Any
    predict: Callable[[Any], Any]
    fast_path: bool = False  # predict is fastpath's, not the model's own

    @property
    def label(self) -> str:
        return self.version.version


def predictor(model: Any, what: str) -> Callable[[Any], Any]:
    """How to call ``model``: its ``predict``, or a PyTorch module's forward without grad."""
    fn = getattr(model, "predict", None)
    if callable(fn):
        return fn
    torch = _torch_of(model)
    if torch is not None:
        def forward(inputs: Any) -> Any:
            with torch.no_grad():
                if isinstance(inputs, dict):
                    out = model(**{k: torch.as_tensor(v) for k, v in inputs.items()})
                else:
                    out = model(torch.as_tensor(inputs))
            return out.detach().cpu().numpy() if hasattr(out, "detach") else out

        return forward
    raise InvalidArgument(f"{what} loads as a {type(model).__name__}, which has no predict() to "
                          "serve (a directory-flavor model is a folder of files); register a "
                          "model object with a predict method", model=what)


def _torch_of(model: Any) -> Any:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return torch
    return None


def mlflow_model(path: Path, what: str) -> Any:
    """An MLflow model directory (``MLmodel`` inside, as ``cairn import mlflow`` registers
    them with the directory flavor) loaded as an MLflow pyfunc, or None for other folders."""
    if not (path / "MLmodel").is_file():
        return None
    from importlib import import_module
    from importlib.util import find_spec

    if find_spec("mlflow") is None:
        raise MissingDependency(f"{what} is an MLflow model (imported from MLflow); serving it "
                                "needs mlflow: pip install mlflow", package="mlflow")
    pyfunc = import_module("mlflow.pyfunc")
    return pyfunc.load_model(str(path))


def load_version(reg: Any, mv: ModelVersion, *, warm: bool = True,
                 fast: bool = True) -> Served:
    """Load ``mv`` through the registry (record digest, signature, every file's digest), then
    warm it with one row shaped like its signature (a warm-up that fails is only logged:
    zeros are not valid for every model).  ``fast``: predict through
    :mod:`~cairn.serving.fastpath` where it has a checked path for this model."""
    model = loading.load(reg, f"{mv.name}/{mv.version}")
    if isinstance(model, Path):
        model = mlflow_model(model, mv.uri) or model
    predict = predictor(model, mv.uri)
    quick = None
    if fast:
        from .fastpath import accelerate

        quick = accelerate(model, mv.uri)
    served = Served(mv, model, quick or predict, fast_path=quick is not None)
    if warm:
        example = _warm_input(mv.signature)
        if example is not None:
            try:
                served.predict(example)
            except Exception as exc:  # noqa: BLE001 (a warm-up is best effort)
                log.info("warm-up of %s on a row of zeros failed (%s); serving it anyway",
                         mv.uri, exc)
    return served


def _warm_input(signature: Any) -> Any:
    schema = (signature or {}).get("inputs") or {}
    try:
        import numpy as np

        if schema.get("type") == "tensor":
            shape = [1 if d == -1 else d for d in schema["shape"]] or [1]
            return np.zeros(shape, dtype=schema["dtype"])
        if schema.get("type") == "dataframe":
            pd = pandas()
            return pd.DataFrame({c["name"]: np.zeros(1).astype(c["dtype"]) if
                                 c["dtype"] not in ("object", "str", "string") else [""]
                                 for c in schema["columns"]})
    except Exception:  # noqa: BLE001 (an exotic dtype: no warm-up)
        return None
    return None


_URGENT_INTERVAL = 0.0005  # seconds: Python's GIL switch interval while a version loads
_urgent_lock = threading.Lock()
_urgent_count = 0
_urgent_saved = 0.0


@contextmanager
def urgent() -> Iterator[None]:
    """Let a thread that often gives up the GIL (file reads, hashing, SQLite: loading a
    version) get it back quickly while other threads keep it busy (requests being served).
    With Python's default 5 ms switch interval each of the loader's hundreds of waits costs
    up to 5 ms: a load of 10 ms took 1 to 4 s under full load, and the alias switch with it.
    """
    global _urgent_count, _urgent_saved
    with _urgent_lock:
        if _urgent_count == 0:
            _urgent_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_urgent_saved, _URGENT_INTERVAL))
        _urgent_count += 1
    try:
        yield
    finally:
        with _urgent_lock:
            _urgent_count -= 1
            if _urgent_count == 0:
                sys.setswitchinterval(_urgent_saved)


class ModelHolder:
    """The version being served; ``current`` is read once per request, ``switch`` is atomic."""

    def __init__(self, served: Served) -> None:
        self._current = served
        self.switches = 0
        # Called as fn(old, new) after each switch (metrics, the registry's history); a
        # callback that fails is logged and never undoes the switch.
        self.on_switch: list[Callable[[Served, Served], None]] = []

    @property
    def current(self) -> Served:
        return self._current

    def switch(self, served: Served) -> None:
        old, self._current = self._current, served  # one reference assignment
        self.switches += 1
        log.info("now serving %s (was %s)", served.version.uri, old.version.version)
        for callback in self.on_switch:
            try:
                callback(old, served)
            except Exception:  # noqa: BLE001 (bookkeeping never undoes a switch)
                log.exception("after switching to %s", served.version.uri)


class AliasFollower:
    """Polls ``ref`` (``name@alias``) every ``interval`` seconds; loads and switches on a move."""

    def __init__(self, reg: Any, ref: str, holder: ModelHolder, interval: float = 2.0,
                 load: Callable[[Any, ModelVersion], Served] = load_version) -> None:
        self.reg = reg
        self.ref = ref
        self.holder = holder
        self.interval = interval
        self._load = load
        self._failed: tuple[str, str] | None = None  # (version, digest) that cannot load
        # (version, digest) that failed transiently, how many times, and when to try again.
        self._retry: tuple[tuple[str, str], int, float] | None = None
        self._stop = threading.Event()
        self._starting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cairn-serve-follow", daemon=True)

    def start(self) -> "AliasFollower":
        """Start polling (once: a second call, from the app's lifespan, does nothing)."""
        if self.interval <= 0:  # 0 means "do not follow": no thread, no busy loop
            return self
        with self._starting:
            if not self._thread.is_alive() and not self._stop.is_set() \
                    and self._thread.ident is None:
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)  # a load in progress is waited for, within reason

    def _run(self) -> None:
        problem = None  # logged once, not at every poll, until it changes or goes away
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 (the poller must outlive a bad poll)
                text = str(getattr(exc, "message", exc))
                if text != problem:
                    log.warning("could not check %s (still serving %s): %s", self.ref,
                                self.holder.current.version.version, text)
                problem = text
            else:
                if problem is not None:
                    log.info("%s can be checked again", self.ref)
                problem = None

    def check(self) -> bool:
        """One poll: True when it switched to a new version."""
        with urgent():
            return self._check()

    def _check(self) -> bool:
        mv = self.reg.resolve(self.ref)
        current = self.holder.current.version
        if (mv.version, mv.digest) == (current.version, current.digest):
            self._failed = None
            return False
        key = (mv.version, mv.digest)
        if self._failed == key:
            return False  # already refused; wait until the alias moves again
        tries = 0
        if self._retry is not None and self._retry[0] == key:
            tries = self._retry[1]
            if time.monotonic() < self._retry[2]:
                return False  # backing off after a transient failure
        started = time.monotonic()
        try:
            served = self._load(self.reg, mv)
        except PERMANENT as exc:
            self._failed, self._retry = key, None
            log.error("%s moved to %s, which failed to load; still serving %s: %s",
                      self.ref, mv.version, current.version, getattr(exc, "message", exc))
            return False
        except Exception as exc:  # noqa: BLE001 (transient: the old version keeps serving)
            tries += 1
            wait = min(max(self.interval, 0.01) * 2 ** tries, MAX_BACKOFF)
            self._retry = (key, tries, time.monotonic() + wait)
            log.warning("%s moved to %s, which could not be loaded (try %d); still serving "
                        "%s, will retry in %.1fs: %s: %s", self.ref, mv.version, tries,
                        current.version, wait, type(exc).__name__,
                        getattr(exc, "message", exc))
            return False
        self._retry = None
        log.info("loaded and warmed %s in %.2fs", mv.uri, time.monotonic() - started)
        self.holder.switch(served)
        return True


def is_alias_ref(ref: str) -> bool:
    """Whether ``ref`` names an alias or stage (it can move) rather than a fixed version."""
    _name, kind, _value = parse_ref(ref.removeprefix("models:/"))
    return kind != "version"
