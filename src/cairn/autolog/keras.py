"""Keras (Keras 3 on any backend, or ``tf.keras``): ``CairnCallback`` and autologging of ``fit``.

``model.fit(..., callbacks=[CairnCallback()])`` records:

* params: ``epochs``, ``steps_per_epoch`` (as Keras reports it), ``optimizer.class`` and the
  optimizer's config (``optimizer.learning_rate`` ...); under autolog also ``batch_size``;
* metrics: each epoch's logs (``loss``, ``accuracy``, ``val_loss`` ...) at step = epoch, and
  with ``log_every_n_steps`` the batch logs as ``batch_<name>`` at step = global batch;
* artifacts: ``model_summary.txt`` and the trained model as ``model/model.keras``;
* under autolog, ``x``/``y`` arrays as ``cairn.input.*`` tags and as a data set version
  (``<experiment>.train``, the run's "train" input); array ``validation_data`` as
  ``<experiment>.validation``, an "eval" input.

The run is the given or active one, else one the callback starts and ends with training.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from . import _common

try:
    import keras
except ImportError:  # pragma: no cover - Keras 2 inside TensorFlow
    try:
        from tensorflow import keras
    except ImportError as exc:
        raise _common.missing("Keras (keras>=3, or tensorflow)", "keras", "keras") from exc

__all__ = ["CairnCallback", "autolog"]

FRAMEWORK = "keras"
_config: dict[str, Any] = {"log_models": True, "log_datasets": True, "dataset_name": None}


class CairnCallback(keras.callbacks.Callback):
    """Logs a Keras ``fit`` into a cairn run (see the module docstring)."""

    def __init__(self, run: Any = None, *, log_models: bool = True,
                 log_every_n_steps: int | None = None) -> None:
        super().__init__()
        self._given = run
        self._scope: _common.RunScope | None = None
        self.log_models = log_models
        self.every = log_every_n_steps
        self._batches = 0
        self.extra_params: dict[str, Any] = {}

    @property
    def run(self) -> Any:
        return self._scope.run if self._scope is not None else None

    def use_run(self, run: Any) -> None:
        """Log the next training into ``run`` (autolog's patched fit hands its run over)."""
        self._given = run

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._scope = _common.RunScope(FRAMEWORK, self._given)
        self._batches = 0
        run = self._scope.run
        params = {k: v for k, v in (self.params or {}).items() if k in ("epochs", "steps")}
        if "steps" in params:
            params["steps_per_epoch"] = params.pop("steps")
        params.update(self.extra_params)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            params["optimizer.class"] = f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
            params.update(_common.flatten(_optimizer_config(optimizer), "optimizer."))
        run.log_params(_common.short_params(params))
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        _common.log_text(run, "\n".join(lines), "model_summary.txt")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self.every and self._scope is not None and self._batches % self.every == 0 and logs:
            _common.log_numeric(self._scope.run, {f"batch_{k}": v for k, v in logs.items()},
                                step=self._batches)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._scope is not None and logs:
            _common.log_numeric(self._scope.run, logs, step=epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._scope is None:
            return
        scope, self._scope = self._scope, None
        try:
            if self.log_models:
                model = self.model

                def save(root) -> None:
                    model.save(str(root / "model.keras"))

                _common.log_model(scope.run, model, FRAMEWORK, save)
        finally:
            scope.close()

    def abort(self, exc: BaseException) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.close(exc)


def _optimizer_config(optimizer: Any) -> dict[str, Any]:
    config = dict(optimizer.get_config())
    config.pop("name", None)
    lr = getattr(optimizer, "learning_rate", None)
    if lr is not None and not isinstance(config.get("learning_rate"), (int, float)):
        try:  # a schedule: record the value at the start rather than its config dict
            config["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        except Exception:
            pass
    return {k: v for k, v in config.items() if v is not None}


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, disable: bool = False) -> None:
    """Add a :class:`CairnCallback` to every ``Model.fit`` (see the module docstring)."""
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    _config.update(log_models=log_models, log_datasets=log_datasets,
                   dataset_name=_common.check_dataset_name(dataset_name))
    _common.patch(FRAMEWORK, keras.Model, "fit", _wrap_fit)


def _wrap_fit(original: Any) -> Any:
    sig = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, *args, **kwargs)
            bound = sig.bind(self, *args, **kwargs)
            given = list(bound.arguments.get("callbacks") or [])
            ours = [cb for cb in given if isinstance(cb, CairnCallback)]
            callback = ours[0] if ours else CairnCallback(log_models=_config["log_models"])
            callback.use_run(scope.run)
            if bound.arguments.get("batch_size") is not None:
                callback.extra_params["batch_size"] = bound.arguments["batch_size"]
            if not ours:
                bound.arguments["callbacks"] = [*given, callback]
            x, y = bound.arguments.get("x"), bound.arguments.get("y")
            if x is not None and hasattr(x, "shape"):
                _log_data(scope.run, x, y, bound.arguments.get("validation_data"))
            try:
                return original(*bound.args, **bound.kwargs)
            except BaseException as exc:
                callback.abort(exc)
                raise

    return fit


def _log_data(run: Any, x: Any, y: Any, validation: Any) -> None:
    options = _common.DataOptions(_config["log_datasets"], _config["dataset_name"])
    evals = []
    if isinstance(validation, (tuple, list)) and validation and hasattr(validation[0], "shape"):
        val_y = validation[1] if len(validation) > 1 and hasattr(validation[1], "shape") else None
        evals.append(("validation", validation[0], val_y))
    _common.log_data(run, x, y, options=options, evals=evals)
