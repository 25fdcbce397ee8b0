"""A faster ``predict`` for scikit-learn's forests on small inputs, identical to the model's own.

A forest's ``predict`` on one row spends about three quarters of its time in scikit-learn's
``Parallel`` machinery, not in the trees: per tree it enters a configuration context and
replays the warnings filters, even when the forest runs on one thread (scikit-learn issue
#16143).  For a 100-tree forest that is milliseconds per request, the largest cost of serving
it.  For the four stock forests run without ``n_jobs``, :func:`accelerate` calls the same
per-tree functions in the same order, with the same validation, into the same accumulators,
so its answers are the same bit for bit; what it skips is the dispatch.  Before it is used it
is checked against the model's own ``predict`` on generated rows, and on any difference or
error the model's own ``predict`` is served instead.  ``cairn serve --no-fast-path`` turns it
off.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

Predict = Callable[[Any], Any]

_FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
            "ExtraTreesRegressor")
_CHECK_ROWS = 64  # generated rows the fast path must answer exactly as the model does


def accelerate(model: Any, what: str = "the model") -> Predict | None:
    """A checked fast ``predict`` for ``model``, or None when it has none (not a stock
    scikit-learn forest, ``n_jobs`` set, or a check that failed)."""
    try:
        fast = _forest_predict(model)
        if fast is None:
            return None
        same = _agrees(model, fast)
    except Exception as exc:  # noqa: BLE001 (an internal we rely on moved: serve the model's own)
        log.info("no fast path for %s: its check failed (%s)", what, exc)
        return None
    if not same:
        log.warning("no fast path for %s: it differed from the model's own predict", what)
        return None
    log.info("serving %s with the fast path for scikit-learn forests", what)
    return fast


def _forest_predict(model: Any) -> Predict | None:
    if "sklearn" not in sys.modules:  # nothing loaded it: the model is not scikit-learn's
        return None
    try:
        from sklearn import ensemble
        from sklearn.ensemble import _forest
    except ImportError:
        return None
    # Exact types only: a subclass may have its own predict; and none of the methods we
    # stand in for may be replaced on the instance (the check below could miss what a
    # replacement does on inputs it does not try).
    kind = next((n for n in _FORESTS if type(model) is getattr(ensemble, n, None)), None)
    if kind is None or getattr(model, "n_jobs", None) not in (None, 1):
        return None
    if {"predict", "predict_proba", "_validate_X_predict"} & set(getattr(model, "__dict__", ())):
        return None
    accumulate = getattr(_forest, "_accumulate_prediction", None)
    if not callable(accumulate) or not callable(getattr(model, "_validate_X_predict", None)):
        return None
    trees = getattr(model, "estimators_", None)
    if trees is None or len(trees) == 0:
        return None
    import numpy as np

    lock = threading.Lock()  # what scikit-learn hands each tree; uncontended here

    # The model's attributes are read on every call, as its own predict reads them, so a
    # refit (warm_start adds trees) cannot leave this path behind.
    if kind.endswith("Regressor"):
        def regress(X: Any) -> Any:
            X = model._validate_X_predict(X)
            n_outputs = model.n_outputs_
            shape = (X.shape[0], n_outputs) if n_outputs > 1 else (X.shape[0],)
            y_hat = np.zeros(shape, dtype=np.float64)
            trees = model.estimators_
            for tree in trees:
                accumulate(tree.predict, X, [y_hat], lock)
            y_hat /= len(trees)
            return y_hat

        return regress

    def classify(X: Any) -> Any:
        X = model._validate_X_predict(X)
        proba = [np.zeros((X.shape[0], j), dtype=np.float64)
                 for j in np.atleast_1d(model.n_classes_)]
        trees = model.estimators_
        for tree in trees:
            accumulate(tree.predict_proba, X, proba, lock)
        for p in proba:
            p /= len(trees)
        classes = model.classes_
        if model.n_outputs_ == 1:
            return classes.take(np.argmax(proba[0], axis=1), axis=0)
        out = np.empty((X.shape[0], model.n_outputs_), dtype=classes[0].dtype)
        for k in range(model.n_outputs_):
            out[:, k] = classes[k].take(np.argmax(proba[k], axis=1), axis=0)
        return out

    return classify


def _agrees(model: Any, fast: Predict) -> bool:
    """Whether ``fast`` answers generated rows (one, then many) exactly as ``model.predict``."""
    import numpy as np

    n = int(model.n_features_in_)
    rng = np.random.default_rng(0)
    # Wide and narrow values, so that rows land in many different leaves.
    values = rng.standard_normal((_CHECK_ROWS, n)) * rng.choice([0.1, 1.0, 100.0], (1, n))
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        from .inputs import pandas

        pd = pandas()
        frames: list[Any] = [pd.DataFrame(values[:1], columns=list(names)),
                             pd.DataFrame(values, columns=list(names))]
    else:
        frames = [values[:1], values]
    for X in frames:
        mine, theirs = fast(X), model.predict(X)
        if mine.dtype != theirs.dtype or not np.array_equal(mine, theirs):
            return False
    return True
