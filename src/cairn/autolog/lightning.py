"""PyTorch Lightning: the ``CairnLogger`` logger, and autologging of ``Trainer.fit``.

``Trainer(logger=CairnLogger())`` records everything Lightning hands its loggers: hyper-
parameters (``save_hyperparameters()``, flattened with ``.``), every ``self.log(...)`` metric at
the trainer's step, and, with ``log_model=True``, the best checkpoint (or the last one) as
``checkpoints/<file>`` when training ends.  The run is the active one, else a run the logger
starts on first use and ends in ``finalize`` (FINISHED, or FAILED when fitting failed).

``autolog()`` patches ``Trainer.fit`` of ``lightning.pytorch`` and ``pytorch_lightning``
(whichever are imported) to add a ``CairnLogger`` when the trainer has none, plus:
``optimizer.class`` and its hyperparameters as params, ``lr`` (``lr/optimizer_<i>/group_<j>``
with several) and ``epoch`` as each epoch starts (step = epoch), and the module's
``state_dict`` as the model (``model/state_dict.pt``).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from argparse import Namespace
from typing import Any, Mapping

from . import _common

FRAMEWORK = "lightning"
_PACKAGES = ("lightning.pytorch", "pytorch_lightning")


def _import(package: str) -> Any:
    return importlib.import_module(package)


def _first_package() -> str:
    for package in _PACKAGES:
        try:
            _import(package)
        except ImportError:
            continue
        return package
    raise _common.missing("lightning (or pytorch-lightning)", "lightning", "lightning")


_classes: dict[str, tuple[type, type]] = {}


def _classes_for(package: str) -> tuple[type, type]:
    """(CairnLogger, _OptimizerCallback) built on ``package``'s base classes."""
    if package in _classes:
        return _classes[package]
    pl = _import(package)
    Logger = importlib.import_module(f"{package}.loggers").Logger
    rank_zero_only = importlib.import_module(f"{package}.utilities").rank_zero_only

    class CairnLogger(Logger):
        """A Lightning logger writing to a cairn run (see ``cairn.autolog.lightning``)."""

        def __init__(self, run: Any = None, *, log_model: bool = False) -> None:
            super().__init__()
            self._given = run
            self._scope: _common.RunScope | None = None
            self.log_model = log_model
            self._checkpoint_callback: Any = None
            self._run_id = ""

        def use_run(self, run: Any) -> None:
            """Log the next training into ``run`` (autolog's patched fit hands its run over)."""
            self._given = run

        @property
        @rank_zero_only
        def experiment(self) -> Any:
            """The cairn ``ActiveRun`` (started on first use)."""
            if self._scope is None:
                self._scope = _common.RunScope(FRAMEWORK, self._given)
                self._run_id = self._scope.run.id
            return self._scope.run

        @property
        def name(self) -> str:
            return "cairn"

        @property
        def version(self) -> str:
            """The run's id ("" until the run starts)."""
            return self._run_id

        @property
        def save_dir(self) -> str | None:
            return None

        @rank_zero_only
        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(params, Namespace):
                params = vars(params)
            params = dict(params or {})
            if params:
                self.experiment.log_params(_common.flatten(params))

        @rank_zero_only
        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            _common.log_numeric(self.experiment, metrics, step)

        def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
            self._checkpoint_callback = checkpoint_callback

        @rank_zero_only
        def finalize(self, status: str) -> None:
            if self._scope is None:
                return
            run = self._scope.run
            if self.log_model and status == "success" and self._checkpoint_callback is not None:
                cb = self._checkpoint_callback
                path = getattr(cb, "best_model_path", "") or getattr(cb, "last_model_path", "")
                if path and os.path.isfile(path):
                    _common.log_artifacts(run, path, "checkpoints")
            scope, self._scope = self._scope, None
            scope.close(None if status == "success" else RuntimeError(f"training {status}"))

    class _OptimizerCallback(pl.Callback):
        """Optimizer params at the start, each epoch's learning rates (autolog only)."""

        def __init__(self, run: Any) -> None:
            self.run = run

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            params: dict[str, str] = {}
            many = len(trainer.optimizers) > 1
            for i, opt in enumerate(trainer.optimizers):
                prefix = f"optimizer_{i}." if many else "optimizer."
                params[prefix + "class"] = f"{type(opt).__module__}.{type(opt).__qualname__}"
                group = opt.param_groups[0]
                params.update({prefix + k: _common.param_text(v) for k, v in group.items()
                               if k not in ("params", "initial_lr") and _simple(v)})
            if params:
                self.run.log_params(params)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            lrs: dict[str, float] = {"epoch": trainer.current_epoch}
            many = len(trainer.optimizers) > 1
            for i, opt in enumerate(trainer.optimizers):
                groups = opt.param_groups
                for j, g in enumerate(groups):
                    key = "lr"
                    if many:
                        key += f"/optimizer_{i}"
                    if len(groups) > 1:
                        key += f"/group_{j}"
                    lrs[key] = g["lr"]
            _common.log_numeric(self.run, lrs, step=trainer.current_epoch)

    _classes[package] = (CairnLogger, _OptimizerCallback)
    return _classes[package]


def _simple(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, tuple) and all(isinstance(v, (bool, int, float)) for v in value)


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, disable: bool = False) -> None:
    """Record ``Trainer.fit`` of every imported Lightning package (see the module docstring).

    ``log_datasets`` and ``dataset_name`` are accepted for symmetry; Lightning's data loaders
    are neither digested nor stored.
    """
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    for package in _PACKAGES:
        if package in sys.modules:
            trainer_cls = _import(package).Trainer
            _common.patch(FRAMEWORK, trainer_cls, "fit", functools.partial(_wrap_fit, package,
                                                                           log_models))


def _wrap_fit(package: str, log_models: bool, original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, model, *args, **kwargs)
            logger_cls, callback_cls = _classes_for(package)
            saved_loggers, saved_callbacks = list(self.loggers), list(self.callbacks)
            ours = [lg for lg in self.loggers if isinstance(lg, logger_cls)]
            if ours:
                ours[0].use_run(scope.run)
            else:
                self.loggers = [*self.loggers, logger_cls(scope.run)]
            self.callbacks.append(callback_cls(scope.run))
            try:
                result = original(self, model, *args, **kwargs)
            finally:
                self.loggers = saved_loggers
                self.callbacks[:] = saved_callbacks
            if log_models:
                def save(root) -> None:
                    import torch

                    torch.save(model.state_dict(), root / "state_dict.pt")

                _common.log_model(scope.run, model, FRAMEWORK, save)
            return result

    return fit


def __getattr__(name: str) -> Any:
    if name == "CairnLogger":
        return _classes_for(_first_package())[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_first_package()  # fail at import, with the extra to install, when Lightning is missing
