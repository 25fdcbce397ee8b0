"""scikit-learn estimators and pipelines, pickled (see docs/registry.md on pickle safety)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ...errors import InvalidArgument
from . import Saved, class_path, require, stringify

FILE = "model.pkl"


def _estimators(model: Any) -> dict[str, str]:
    from sklearn.base import BaseEstimator

    out = {"": class_path(model)}
    for key, value in model.get_params(deep=True).items():
        if isinstance(value, BaseEstimator):
            out[key] = class_path(value)
    return out


def save(model: Any, path: Path, **_: Any) -> Saved:
    from sklearn.base import BaseEstimator

    path.mkdir(parents=True, exist_ok=True)
    with open(path / FILE, "wb") as f:
        pickle.dump(model, f, protocol=5)
    params = {k: v for k, v in model.get_params(deep=True).items()
              if not isinstance(v, BaseEstimator)}
    return Saved(options={"file": FILE, "class": class_path(model)},
                 fingerprint={"class": class_path(model), "estimators": _estimators(model)},
                 hyperparams=stringify(params),
                 packages=("scikit-learn", "numpy", "scipy", "joblib"))


def predict(model: Any, inputs: Any) -> Any:
    if not hasattr(model, "predict"):
        return None
    try:
        return model.predict(inputs)
    except Exception as exc:
        raise InvalidArgument(f"the model's predict() failed on input_example: {exc}") from None


def load(path: Path, options: dict[str, Any], what: str, **_: Any) -> Any:
    require("sklearn", "sklearn", what, extra="sklearn")
    # One read, then unpickle from memory: pickle.load on a file makes a read call (and so
    # gives up the GIL) per small object, and a server busy with requests makes each of
    # those waits cost milliseconds.
    return pickle.loads((path / options.get("file", FILE)).read_bytes())
