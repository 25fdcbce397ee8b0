"""LightGBM autologging: ``lightgbm.train``, the scikit-learn wrappers, and ``CairnCallback``.

``lightgbm.train(params, train_set, ...)`` records:

* params: the booster params and ``num_boost_round``;
* each boosting round's eval metrics, live, as ``<valid name>-<metric>`` (``valid_0-l2``)
  at step = round;
* ``best_iteration`` and ``best_<valid name>-<metric>`` when early stopping ran;
* feature importance (``split``, ``gain``) as ``feature_importance_<type>.json``;
* the booster as the model (``model/model.txt``, LightGBM's own format);
* the training ``Dataset``'s data and label as ``cairn.input.digest`` and ``.shape``, and
  as a data set version (``<experiment>.train``, the run's "train" input); each other
  ``valid_sets`` entry with in-memory data as ``<experiment>.<valid name>``, an "eval" input.

``LGBMClassifier.fit`` and friends record the same, with ``get_params()`` as params, the
``X``/``y`` digest and data set, the ``eval_set`` entries as ``<experiment>.valid_<i>`` (or
their ``eval_names``), and the fitted estimator pickled as the model (``model/model.pkl``).

Without autolog, pass ``callbacks=[CairnCallback()]`` inside ``with cairn.start_run():``
to log the round metrics into that run.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from . import _common
from ..errors import NoActiveRun

try:
    import lightgbm
    from lightgbm.sklearn import LGBMModel
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise _common.missing("lightgbm", "lightgbm", "lightgbm") from exc

__all__ = ["CairnCallback", "autolog"]

FRAMEWORK = "lightgbm"
IMPORTANCE_TYPES = ("split", "gain")
_config: dict[str, Any] = {"log_models": True, "log_datasets": True, "dataset_name": None}


class CairnCallback:
    """A LightGBM callback logging each round's eval results into ``run`` or the active run."""

    order = 20  # after LightGBM's own logging, before early stopping ends training
    before_iteration = False

    def __init__(self, run: Any = None) -> None:
        self.run = run

    def __call__(self, env: Any) -> None:
        if self.run is None:
            from .. import fluent

            self.run = fluent.active_run()
            if self.run is None:
                raise NoActiveRun("cairn.autolog.lightgbm.CairnCallback needs an active run: "
                                  "train inside `with cairn.start_run():` or use autolog()")
        metrics = {f"{item[0]}-{item[1]}": item[2] for item in env.evaluation_result_list or ()}
        if metrics:
            self.run.log_metrics(metrics, step=env.iteration)


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, disable: bool = False) -> None:
    """Record ``lightgbm.train`` and ``LGBMModel.fit`` calls (see the module docstring)."""
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    _config.update(log_models=log_models, log_datasets=log_datasets,
                   dataset_name=_common.check_dataset_name(dataset_name))
    _common.patch(FRAMEWORK, lightgbm, "train", _wrap_train)
    for cls in _common.subclasses(LGBMModel):
        if "fit" in cls.__dict__:
            _common.patch(FRAMEWORK, cls, "fit", _wrap_fit)


def _with_callback(sig: inspect.Signature, args: tuple, kwargs: dict, callback: Any) -> tuple:
    bound = sig.bind(*args, **kwargs)
    bound.arguments["callbacks"] = [*(bound.arguments.get("callbacks") or ()), callback]
    return bound.args, bound.kwargs


def _wrap_train(original: Any) -> Any:
    sig = inspect.signature(original)

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(*args, **kwargs)
            run = scope.run
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            logged = _common.flatten(dict(bound.arguments["params"] or {}))
            logged["num_boost_round"] = str(bound.arguments["num_boost_round"])
            run.log_params(logged)
            _log_datasets(run, bound.arguments["train_set"], bound.arguments.get("valid_sets"),
                          bound.arguments.get("valid_names"))
            args, kwargs = _with_callback(sig, args, kwargs, CairnCallback(run))
            booster = original(*args, **kwargs)
            _log_result(run, booster)
            if _config["log_models"]:
                _common.log_model(run, booster, FRAMEWORK, _booster_saver(booster))
            return booster

    return train


def _wrap_fit(original: Any) -> Any:
    sig = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, *args, **kwargs)
            run = scope.run
            bound = sig.bind(self, *args, **kwargs)
            cls = type(self)
            run.set_tags({"cairn.autolog.estimator_class": f"{cls.__module__}.{cls.__qualname__}"})
            run.log_params(_common.short_params(self.get_params()))
            eval_set = bound.arguments.get("eval_set") or ()
            if isinstance(eval_set, tuple):  # one (X, y) pair
                eval_set = [eval_set]
            names = list(bound.arguments.get("eval_names") or ())
            _common.log_data(run, bound.arguments.get("X"), bound.arguments.get("y"),
                             options=_data_options(),
                             evals=[(names[i] if i < len(names) else f"valid_{i}",
                                      *_common.eval_pair(item))
                                    for i, item in enumerate(eval_set)])
            args, kwargs = _with_callback(sig, (self, *args), kwargs, CairnCallback(run))
            result = original(*args, **kwargs)
            _log_result(run, self.booster_)
            if _config["log_models"]:
                _common.log_model(run, self, FRAMEWORK, _common.pickle_saver(self))
            return result

    return fit


def _log_result(run: Any, booster: Any) -> None:
    if booster.best_iteration > 0:
        best = {"best_iteration": booster.best_iteration}
        for data, per_metric in (booster.best_score or {}).items():
            for name, value in per_metric.items():
                best[f"best_{data}-{name}"] = value
        _common.log_numeric(run, best, step=0)
    names = booster.feature_name()
    for kind in IMPORTANCE_TYPES:
        values = booster.feature_importance(importance_type=kind)
        ranked = dict(sorted(zip(names, (float(v) for v in values)), key=lambda kv: -kv[1]))
        _common.log_json(run, ranked, f"feature_importance_{kind}.json")


def _booster_saver(booster: Any):
    def save(root) -> None:
        booster.save_model(str(root / "model.txt"))

    return save


def _data_options() -> _common.DataOptions:
    return _common.DataOptions(_config["log_datasets"], _config["dataset_name"])


def _in_memory(dataset: Any) -> tuple[Any, Any]:
    """``(data, label)`` of a ``lightgbm.Dataset``; data None for a file or freed data."""
    data = getattr(dataset, "data", None)
    if data is None or isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        return None, None  # a file on disk, or data already freed: nothing in memory to digest
    return data, getattr(dataset, "label", None)


def _log_datasets(run: Any, train_set: Any, valid_sets: Any, valid_names: Any) -> None:
    data, label = _in_memory(train_set)
    if data is None:
        return
    if isinstance(valid_sets, lightgbm.Dataset):
        valid_sets = [valid_sets]
    names = list(valid_names or ())
    evals = [(names[i] if i < len(names) else f"valid_{i}", *_in_memory(vs))
             for i, vs in enumerate(valid_sets or ()) if vs is not train_set]
    _common.log_data(run, data, label, options=_data_options(), evals=evals)
