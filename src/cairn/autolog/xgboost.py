"""XGBoost autologging: ``xgboost.train``, the scikit-learn wrappers, and ``CairnCallback``.

``xgboost.train(params, dtrain, ...)`` records:

* params: the booster params, ``num_boost_round``, ``early_stopping_rounds``;
* each boosting round's eval metrics, live, as ``<eval name>-<metric>`` (``eval-rmse``) at
  step = round;
* ``best_iteration`` and ``best_score`` when early stopping ran;
* feature importance (``weight``, ``gain``, ``cover``) as ``feature_importance_<type>.json``;
* the booster as the model (``model/model.json``, XGBoost's own format);
* the training ``DMatrix`` as ``cairn.input.shape`` and, where its data can be read back,
  ``cairn.input.digest`` and a data set version (``<experiment>.train``, the run's "train"
  input); each other ``evals`` entry as version ``<experiment>.<its name>``, an "eval" input.

``XGBClassifier.fit`` and friends record the same, with ``get_params()`` as params, the
``X``/``y`` digest and data set, the ``eval_set`` entries as ``<experiment>.validation_<i>``,
and the round metrics from ``evals_result()`` once fitting ends (the estimator's own
``callbacks`` are left alone).

Without autolog, pass ``callbacks=[CairnCallback()]`` to ``xgboost.train`` to log round
metrics, importance and the model into the active run (or a run of its own).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from . import _common

try:
    import xgboost
    from xgboost.callback import TrainingCallback
    from xgboost.sklearn import XGBModel
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise _common.missing("xgboost", "xgboost", "xgboost") from exc

__all__ = ["CairnCallback", "autolog"]

FRAMEWORK = "xgboost"
IMPORTANCE_TYPES = ("weight", "gain", "cover")
_config: dict[str, Any] = {"log_models": True, "log_datasets": True, "dataset_name": None}


class CairnCallback(TrainingCallback):
    """Logs each round's eval metrics; after training, feature importance and the model.

    Logs into ``run`` when given, else the active run, else a run it starts and ends.
    """

    def __init__(self, run: Any = None, *, log_models: bool = True,
                 importance_types: tuple[str, ...] = IMPORTANCE_TYPES) -> None:
        super().__init__()
        self._given = run
        self._scope: _common.RunScope | None = None
        self.log_models = log_models
        self.importance_types = importance_types

    @property
    def run(self) -> Any:
        return self._scope.run if self._scope is not None else None

    def before_training(self, model: Any) -> Any:
        self._scope = _common.RunScope(FRAMEWORK, self._given)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        metrics = {}
        for data, per_metric in evals_log.items():
            for name, values in per_metric.items():
                last = values[-1]
                metrics[f"{data}-{name}"] = last[0] if isinstance(last, tuple) else last  # cv: (mean, std)
        if metrics:
            self.run.log_metrics(metrics, step=epoch)
        return False

    def after_training(self, model: Any) -> Any:
        try:
            _log_result(self.run, model, self.importance_types, self.log_models)
        finally:
            scope, self._scope = self._scope, None
            scope.close()
        return model


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, disable: bool = False) -> None:
    """Record ``xgboost.train`` and ``XGBModel.fit`` calls (see the module docstring)."""
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    _config.update(log_models=log_models, log_datasets=log_datasets,
                   dataset_name=_common.check_dataset_name(dataset_name))
    _common.patch(FRAMEWORK, xgboost, "train", _wrap_train)
    for cls in _common.subclasses(XGBModel):
        if "fit" in cls.__dict__:
            _common.patch(FRAMEWORK, cls, "fit", _wrap_fit)


def _wrap_train(original: Any) -> Any:
    @functools.wraps(original)
    def train(params: Any, dtrain: Any, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(params, dtrain, *args, **kwargs)
            run = scope.run
            logged = _common.flatten(dict(params or {}))
            logged["num_boost_round"] = str(args[0] if args else kwargs.get("num_boost_round", 10))
            if kwargs.get("early_stopping_rounds") is not None:
                logged["early_stopping_rounds"] = str(kwargs["early_stopping_rounds"])
            run.log_params(logged)
            _log_dmatrices(run, dtrain, kwargs.get("evals"))
            callback = CairnCallback(run, log_models=_config["log_models"])
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or ()), callback]
            return original(params, dtrain, *args, **kwargs)

    return train


def _wrap_fit(original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, X: Any, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, X, y, *args, **kwargs)
            run = scope.run
            cls = type(self)
            run.set_tags({"cairn.autolog.estimator_class": f"{cls.__module__}.{cls.__qualname__}"})
            # None means "the booster's default": leave those out rather than log "None" 40 times.
            run.log_params(_common.short_params(
                {k: v for k, v in self.get_params().items() if v is not None}))
            _common.log_data(run, X, y, options=_data_options(),
                             evals=[(f"validation_{i}", *_common.eval_pair(item))
                                    for i, item in enumerate(kwargs.get("eval_set") or ())])
            result = original(self, X, y, *args, **kwargs)
            try:
                history = self.evals_result()
            except Exception:  # XGBoostError when no eval_set was given
                history = {}
            for data, per_metric in history.items():
                for name, values in per_metric.items():
                    for step, value in enumerate(values):
                        run.log_metric(f"{data}-{name}", value, step=step)
            _log_result(run, self.get_booster(), IMPORTANCE_TYPES, False)
            if _config["log_models"]:
                _common.log_model(run, self, FRAMEWORK, _saver(self))
            return result

    return fit


def _log_result(run: Any, booster: Any, importance_types: tuple[str, ...], log_models: bool) -> None:
    attrs = booster.attributes()
    if "best_iteration" in attrs:
        run.log_metrics({"best_iteration": float(attrs["best_iteration"]),
                         "best_score": float(attrs["best_score"])}, step=0)
    for kind in importance_types:
        scores = booster.get_score(importance_type=kind)
        if scores:
            ranked = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
            _common.log_json(run, ranked, f"feature_importance_{kind}.json")
    if log_models:
        _common.log_model(run, booster, FRAMEWORK, _saver(booster))


def _saver(model: Any):
    def save(root) -> None:
        model.save_model(str(root / "model.json"))

    return save


def _data_options() -> _common.DataOptions:
    return _common.DataOptions(_config["log_datasets"], _config["dataset_name"])


def _dmatrix_data(dmatrix: Any) -> tuple[Any, Any]:
    """``(features, labels)`` of a ``DMatrix`` (features None: it keeps no data to read back)."""
    try:
        data = dmatrix.get_data()
    except Exception:  # a QuantileDMatrix keeps no data to read back
        return None, None
    label = dmatrix.get_label()
    return data, label if label.size else None


def _log_dmatrices(run: Any, dtrain: Any, evals: Any) -> None:
    options = _data_options()
    if not options.log:
        return
    data, label = _dmatrix_data(dtrain)  # copies, read back from the DMatrix
    kind = f"{type(dtrain).__module__}.{type(dtrain).__qualname__}"
    tags = {_common.SHAPE_TAG: json.dumps([int(dtrain.num_row()), int(dtrain.num_col())]),
            _common.TYPE_TAG: kind}
    sets = []
    if evals and _common.stores_datasets(run):
        from .. import settings

        limit = settings.AUTOLOG_MAX_DATASET_BYTES.get()
        for item in evals:
            try:
                dm, name = item
            except (TypeError, ValueError):
                continue
            # Reading a DMatrix back copies it: not for one too large to be stored anyway.
            if dm is not dtrain and int(dm.num_nonmissing()) * 12 <= limit:
                sets.append((str(name), *_dmatrix_data(dm)))
    _common.log_data(run, data, label, options=options, evals=sets, tags=tags, copied=True)
