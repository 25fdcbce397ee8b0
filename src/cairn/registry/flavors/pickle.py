"""Any picklable Python object.

Unpickling runs code chosen by whoever wrote the file: load pickled models only
from registries you trust (signing with trusted keys makes that checkable).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ...errors import InvalidArgument
from . import Saved, class_path, distribution_of

FILE = "model.pkl"


def save(model: Any, path: Path, **_: Any) -> Saved:
    path.mkdir(parents=True, exist_ok=True)
    try:
        data = pickle.dumps(model, protocol=5)
    except Exception as exc:
        raise InvalidArgument(f"cannot pickle the model ({type(model).__name__}): {exc}") from None
    (path / FILE).write_bytes(data)
    return Saved(options={"file": FILE, "class": class_path(model)},
                 fingerprint={"class": class_path(model)}, packages=distribution_of(model))


def predict(model: Any, inputs: Any) -> Any:
    fn = getattr(model, "predict", None)
    if fn is None:
        return None
    try:
        return fn(inputs)
    except Exception as exc:
        raise InvalidArgument(f"the model's predict() failed on input_example: {exc}") from None


def load(path: Path, options: dict[str, Any], what: str, **_: Any) -> Any:
    data = (path / options.get("file", FILE)).read_bytes()  # one read: see sklearn.load
    try:
        return pickle.loads(data)
    except ModuleNotFoundError as exc:
        from ...errors import MissingDependency

        raise MissingDependency(f"{what} needs the module {exc.name!r} to unpickle; install "
                                "the package that provides it", package=exc.name) from None
