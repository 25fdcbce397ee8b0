"""Automatic logging for training frameworks: ``cairn.autolog()``.

One call records runs with no further code::

    import cairn
    cairn.autolog()                   # every installed framework, now or once imported
    cairn.autolog.sklearn.autolog()   # or one framework; each has its own options

Integrations (each an optional extra, ``pip install 'cairn[NAME]'``):

    sklearn       patched ``fit`` of estimators, pipelines and search CV
    xgboost       patched ``xgboost.train`` and the scikit-learn wrappers; ``CairnCallback``
    lightgbm      patched ``lightgbm.train`` and the scikit-learn wrappers; ``CairnCallback``
    transformers  patched ``Trainer.train``; ``CairnCallback`` (also ``report_to="cairn"``)
    keras         patched ``Model.fit``; ``CairnCallback``
    lightning     patched ``Trainer.fit``; ``CairnLogger``
    pytorch       ``Tracker`` for plain training loops (explicit; nothing to patch)

``cairn.autolog`` itself is light: it imports no framework.  A framework is patched when it
is imported (or at once, if it already was); a framework that is not installed is skipped,
and importing its integration module directly says which extra to install.
See ``docs/autolog.md`` for what each integration records.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any, Iterable

from ..errors import MissingDependency
from . import _hooks
from ._common import set_model_logger

__all__ = ["INTEGRATIONS", "autolog", "set_model_logger"]

# integration module -> the modules whose import enables it
INTEGRATIONS: dict[str, tuple[str, ...]] = {
    "sklearn": ("sklearn",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "transformers": ("transformers.trainer",),
    "keras": ("keras",),
    "lightning": ("lightning.pytorch", "pytorch_lightning"),
}
_EXPLICIT = ("pytorch",)  # helpers with nothing to patch


def autolog(*, log_models: bool = True, log_datasets: bool = True, system_metrics: bool = True,
            disable: bool = False, exclude: Iterable[str] = (),
            registered_model_name: str | None = None,
            dataset_name: str | None = None) -> list[str]:
    """Turn on automatic logging for every installed framework (or off, with ``disable``).

    ``log_models``: store trained models; ``log_datasets``: record the training data's
    digest and shape as ``cairn.input.*`` tags and, when the store keeps data sets, store it
    as a data set version logged as the run's "train" input (evaluation data as "eval");
    ``dataset_name``: those data sets are ``<dataset_name>.train`` (``.<eval name>``),
    default: the experiment's name; ``system_metrics``: sample ``system/...`` metrics in
    every top-level run (needs psutil, ``cairn[system]``); ``exclude``: integration names to
    leave alone; ``registered_model_name``: also register every trained model as a new
    version of this registered model (``cairn.log_model``'s registry, with the run as its
    source).  Returns the integrations now on (or pending import).
    """
    from .. import sysmetrics
    from . import _common

    if not disable:
        _common.check_dataset_name(dataset_name)

    _common.set_model_logger(_common.registering_logger(registered_model_name)
                             if registered_model_name and not disable else None)

    exclude = set(exclude)
    unknown = exclude - set(INTEGRATIONS)
    if unknown:
        raise ValueError(f"unknown integrations {sorted(unknown)}; known: {sorted(INTEGRATIONS)}")
    options = {"log_models": log_models, "log_datasets": log_datasets, "dataset_name": dataset_name}
    enabled: list[str] = []
    for name, triggers in INTEGRATIONS.items():
        if name in exclude:
            continue
        if disable:
            _hooks.forget(name)
            module = sys.modules.get(f"{__name__}.{name}")
            if module is not None:
                module.autolog(disable=True)
            continue
        on = False
        for trigger in triggers:
            on |= _hooks.when_imported(trigger, name, _enabler(name, options))
        if on:
            enabled.append(name)
    if disable:
        sysmetrics.set_default(False)
    elif system_metrics:
        try:
            sysmetrics.require()
        except MissingDependency as exc:
            warnings.warn(f"cairn.autolog: no system metrics: {exc}", stacklevel=2)
        else:
            sysmetrics.set_default(True)
    else:
        sysmetrics.set_default(False)
    return enabled


def _enabler(name: str, options: dict[str, Any]):
    def enable(_module: types.ModuleType) -> None:
        importlib.import_module(f"{__name__}.{name}").autolog(**options)

    return enable


def __getattr__(name: str) -> types.ModuleType:
    if name in INTEGRATIONS or name in _EXPLICIT:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *INTEGRATIONS, *_EXPLICIT])


class _CallableModule(types.ModuleType):
    """``cairn.autolog(...)`` calls :func:`autolog`; ``cairn.autolog.sklearn`` is a module."""

    def __call__(self, **kwargs: Any) -> list[str]:
        return autolog(**kwargs)


sys.modules[__name__].__class__ = _CallableModule
