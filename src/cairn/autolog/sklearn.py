"""scikit-learn autologging: ``fit`` of estimators, pipelines and hyperparameter searches.

Each outermost ``fit`` / ``fit_transform`` / ``fit_predict`` records:

* params: ``estimator.get_params(deep=True)`` (a pipeline's steps as ``step__param``);
* tags: ``cairn.autolog.estimator_class``, ``cairn.input.digest|shape|target_shape|type``;
* the fit data (``X`` and ``y``) as a data set version, ``<experiment>.train``, logged as the
  run's "train" input (``cairn.input.dataset`` names it; see ``docs/autolog.md``);
* metrics on the fit data, for classifiers ``training_accuracy_score``,
  ``training_precision_score``, ``training_recall_score``, ``training_f1_score`` (weighted),
  ``training_log_loss`` and ``training_roc_auc`` (with ``predict_proba``), for regressors
  ``training_mean_squared_error``, ``training_root_mean_squared_error``,
  ``training_mean_absolute_error``, ``training_r2_score``; and ``training_score``
  (``estimator.score``) for both;
* the fitted estimator, pickled, as the model (``model/model.pkl``).

Search CV (``GridSearchCV``, ``RandomizedSearchCV``, the halving searches) adds the best
params as ``best_<name>`` params, ``best_cv_score`` and ``best_index`` metrics, the whole
``cv_results_`` as the table artifact ``cv_results.csv``, the best estimator as the model
``best_estimator``, and a child run for each of the ``max_tuning_runs`` best candidates
(their params and ``mean_*``/``std_*``/``rank_*`` results).

Estimator classes are patched as they are defined (existing ones at once, later ones
through ``BaseEstimator.__init_subclass__``), so enabling costs nothing up front and
third-party estimators built on ``BaseEstimator`` are covered too.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

from . import _common

try:
    from sklearn.base import BaseEstimator
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise _common.missing("scikit-learn", "sklearn", "sklearn") from exc

__all__ = ["autolog"]

FRAMEWORK = "sklearn"
_METHODS = ("fit", "fit_transform", "fit_predict")
_config: dict[str, Any] = {"log_models": True, "log_datasets": True, "dataset_name": None,
                           "log_training_metrics": True, "max_tuning_runs": 5}


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, log_training_metrics: bool = True,
            max_tuning_runs: int | None = 5, disable: bool = False) -> None:
    """Record every scikit-learn ``fit`` as a run (see the module docstring).

    ``log_datasets``: tag the fit data and store it as data set ``<dataset_name>.train``
    (default: the experiment's name); ``max_tuning_runs``: child runs for the best N search
    candidates (0: none, None: all).
    """
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    _config.update(log_models=log_models, log_datasets=log_datasets,
                   dataset_name=_common.check_dataset_name(dataset_name),
                   log_training_metrics=log_training_metrics, max_tuning_runs=max_tuning_runs)
    if _common.is_patched(FRAMEWORK):
        return
    _patch_subclass_hook()
    for cls in _common.subclasses(BaseEstimator):
        _patch_class(cls)


def _patch_class(cls: type) -> None:
    for name in _METHODS:
        if inspect.isfunction(cls.__dict__.get(name)):
            _common.patch(FRAMEWORK, cls, name, _wrap)


def _patch_subclass_hook() -> None:
    own = BaseEstimator.__dict__.get("__init_subclass__")

    def make(original: Any) -> classmethod:
        def __init_subclass__(cls, **kwargs: Any) -> None:
            if own is not None:
                own.__get__(None, cls)(**kwargs)
            else:
                super(BaseEstimator, cls).__init_subclass__(**kwargs)
            _patch_class(cls)

        return classmethod(__init_subclass__)

    _common.patch(FRAMEWORK, BaseEstimator, "__init_subclass__", make)


def _wrap(original: Any) -> Any:
    @functools.wraps(original)
    def fit(self, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, *args, **kwargs)
            X, y = _xy(args, kwargs)
            _log_before(scope.run, self, X, y)
            result = original(self, *args, **kwargs)
            _log_after(scope.run, self, X, y, kwargs.get("sample_weight"))
            return result

    fit.__cairn_original__ = original
    return fit


def _xy(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return X, y


def _log_before(run: Any, est: Any, X: Any, y: Any) -> None:
    cls = type(est)
    run.set_tags({"cairn.autolog.estimator_class": f"{cls.__module__}.{cls.__qualname__}",
                  "cairn.autolog.estimator_name": cls.__name__})
    run.log_params(_common.short_params(est.get_params(deep=True)))
    if X is not None:
        _common.log_data(run, X, y, options=_data_options())


def _data_options() -> _common.DataOptions:
    return _common.DataOptions(_config["log_datasets"], _config["dataset_name"])


def _log_after(run: Any, est: Any, X: Any, y: Any, sample_weight: Any) -> None:
    from sklearn.model_selection._search import BaseSearchCV

    search = isinstance(est, BaseSearchCV)
    if _config["log_training_metrics"] and y is not None and X is not None:
        if not search or getattr(est, "refit", False):
            _common.log_numeric(run, _training_metrics(est, X, y, sample_weight), step=0)
    if search:
        _log_search(run, est)
    if _config["log_models"]:
        _common.log_model(run, est, FRAMEWORK, _common.pickle_saver(est))


def _training_metrics(est: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    out: dict[str, float] = {}
    classifier, regressor = is_classifier(est), is_regressor(est)
    if not (classifier or regressor) or not hasattr(est, "predict"):
        return out
    y_pred = est.predict(X)
    sw = {"sample_weight": sample_weight}
    if classifier:
        out["training_accuracy_score"] = m.accuracy_score(y, y_pred, **sw)
        for name, fn in (("precision", m.precision_score), ("recall", m.recall_score),
                         ("f1", m.f1_score)):
            out[f"training_{name}_score"] = fn(y, y_pred, average="weighted", zero_division=0, **sw)
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X)
            classes = getattr(est, "classes_", None)
            out["training_log_loss"] = m.log_loss(y, proba, labels=classes, **sw)
            try:
                if proba.shape[1] == 2:
                    out["training_roc_auc"] = m.roc_auc_score(y, proba[:, 1], **sw)
                else:
                    out["training_roc_auc"] = m.roc_auc_score(y, proba, multi_class="ovr",
                                                              labels=classes, **sw)
            except ValueError:  # a class missing from y: AUC is undefined, not an error
                pass
    else:
        mse = m.mean_squared_error(y, y_pred, **sw)
        out.update(training_mean_squared_error=mse, training_root_mean_squared_error=math.sqrt(mse),
                   training_mean_absolute_error=m.mean_absolute_error(y, y_pred, **sw),
                   training_r2_score=m.r2_score(y, y_pred, **sw))
    if hasattr(est, "score"):
        if sample_weight is None:
            out["training_score"] = est.score(X, y)
        else:
            out["training_score"] = est.score(X, y, sample_weight=sample_weight)
    return out


def _log_search(run: Any, search: Any) -> None:
    from .. import fluent

    if hasattr(search, "best_params_"):
        run.log_params({f"best_{k}": _common.param_text(v) for k, v in search.best_params_.items()})
    best = {}
    if hasattr(search, "best_score_"):
        best["best_cv_score"] = search.best_score_
    if hasattr(search, "best_index_"):
        best["best_index"] = search.best_index_
    _common.log_numeric(run, best, step=0)
    results = search.cv_results_
    _common.log_table(run, results, "cv_results.csv")
    if _config["log_models"] and hasattr(search, "best_estimator_"):
        _common.log_model(run, search.best_estimator_, FRAMEWORK,
                          _common.pickle_saver(search.best_estimator_), "best_estimator")
    limit = _config["max_tuning_runs"]
    if limit == 0:
        return
    rank_key = _rank_key(search, results)
    order = sorted(range(len(results["params"])), key=lambda i: (results[rank_key][i], i))
    if limit is not None:
        order = order[:limit]
    numeric = [k for k in results if k.startswith(("mean_", "std_", "rank_"))]
    for i in order:
        with fluent.start_run(name=f"{run.name}-candidate-{i}", nested=True,
                              tags={_common.FRAMEWORK_TAG: FRAMEWORK,
                                    "cairn.autolog.candidate_index": str(i)}) as child:
            child.log_params(_common.short_params(results["params"][i]))
            _common.log_numeric(child, {k: results[k][i] for k in numeric}, step=0)


def _rank_key(search: Any, results: dict) -> str:
    refit = getattr(search, "refit", True)
    if isinstance(refit, str) and f"rank_test_{refit}" in results:
        return f"rank_test_{refit}"
    if "rank_test_score" in results:
        return "rank_test_score"
    return next(k for k in results if k.startswith("rank_test_"))
