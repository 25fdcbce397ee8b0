"""Hugging Face transformers: ``CairnCallback`` and autologging of ``Trainer.train``.

Three ways in::

    Trainer(..., callbacks=[CairnCallback()])
    import cairn.autolog.transformers; TrainingArguments(..., report_to="cairn")
    cairn.autolog()   # patches Trainer.train to add the callback

Recorded (on the main process only):

* params: every ``TrainingArguments`` field (nested values flattened with ``.``), the model
  config as ``config.<name>``, ``model.class`` and ``model.parameters``;
* metrics: everything the Trainer logs (``loss``, ``learning_rate``, ``grad_norm``,
  ``eval_*``, ``train_runtime`` ...) at step = ``global_step``;
* the final model via ``save_pretrained`` (plus the tokenizer or processor, when the
  Trainer has one) as the model (``model/...``);
* under autolog, the training data set as ``cairn.input.*`` tags (digest for tensor data
  sets and ``datasets.Dataset`` fingerprints, length otherwise); a ``TensorDataset`` of
  features and labels also as a data set version (``<experiment>.train``, the run's "train"
  input), and such an ``eval_dataset`` as ``<experiment>.eval``, an "eval" input.

The run is the given or active one, else one the callback starts in ``on_train_begin`` and
ends in ``on_train_end``.  Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from . import _common

try:
    from transformers import Trainer, TrainerCallback
    from transformers.integrations import integration_utils as _integrations
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise _common.missing("transformers", "transformers", "transformers") from exc

__all__ = ["CairnCallback", "autolog"]

FRAMEWORK = "transformers"
_config: dict[str, Any] = {"log_models": True, "log_datasets": True, "dataset_name": None}


class CairnCallback(TrainerCallback):
    """Logs a ``Trainer``'s arguments, metrics and final model into a cairn run."""

    def __init__(self, run: Any = None, *, log_models: bool = True) -> None:
        self._given = run
        self._scope: _common.RunScope | None = None
        self.log_models = log_models

    @property
    def run(self) -> Any:
        return self._scope.run if self._scope is not None else None

    def use_run(self, run: Any) -> None:
        """Log the next training into ``run`` (autolog's patched fit hands its run over)."""
        self._given = run

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self._scope is None:
            self._scope = _common.RunScope(FRAMEWORK, self._given)
        params = _common.flatten({k: v for k, v in args.to_dict().items() if v is not None})
        params = {k: _common.param_text(v) for k, v in params.items()}
        if model is not None:
            params["model.class"] = f"{type(model).__module__}.{type(model).__qualname__}"
            params["model.parameters"] = str(sum(p.numel() for p in model.parameters()))
            config = getattr(model, "config", None)
            if config is not None and hasattr(config, "to_dict"):
                params.update(_common.short_params(
                    {f"config.{k}": v for k, v in config.to_dict().items() if v is not None}))
        self._scope.run.log_params(params)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
               **kwargs: Any) -> None:
        if self._scope is not None and state.is_world_process_zero and logs:
            _common.log_numeric(self._scope.run, logs, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     processing_class: Any = None, **kwargs: Any) -> None:
        if self._scope is None or not state.is_world_process_zero:
            return
        scope, self._scope = self._scope, None
        try:
            if self.log_models and model is not None and hasattr(model, "save_pretrained"):
                processor = processing_class or kwargs.get("tokenizer")

                def save(root) -> None:
                    model.save_pretrained(root)
                    if processor is not None and hasattr(processor, "save_pretrained"):
                        processor.save_pretrained(root)

                _common.log_model(scope.run, model, FRAMEWORK, save)
        finally:
            scope.close()

    def abort(self, exc: BaseException) -> None:
        """End the run as FAILED/KILLED when training raised (on_train_end never came)."""
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.close(exc)


# ``TrainingArguments(report_to="cairn")`` finds the callback here.
_integrations.INTEGRATION_TO_CALLBACK.setdefault("cairn", CairnCallback)


def autolog(*, log_models: bool = True, log_datasets: bool = True,
            dataset_name: str | None = None, disable: bool = False) -> None:
    """Add a :class:`CairnCallback` to every ``Trainer.train`` (see the module docstring)."""
    if disable:
        _common.unpatch(FRAMEWORK)
        return
    _config.update(log_models=log_models, log_datasets=log_datasets,
                   dataset_name=_common.check_dataset_name(dataset_name))
    _common.patch(FRAMEWORK, Trainer, "train", _wrap_train)


def _wrap_train(original: Any) -> Any:
    @functools.wraps(original)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _common.training(FRAMEWORK) as scope:
            if scope is None:
                return original(self, *args, **kwargs)
            ours = [cb for cb in self.callback_handler.callbacks if isinstance(cb, CairnCallback)]
            added = not ours
            callback = ours[0] if ours else CairnCallback(log_models=_config["log_models"])
            callback.use_run(scope.run)
            if added:
                self.add_callback(callback)
            if self.train_dataset is not None:
                _log_data(scope.run, self.train_dataset, getattr(self, "eval_dataset", None))
            try:
                return original(self, *args, **kwargs)
            except BaseException as exc:
                callback.abort(exc)
                raise
            finally:
                if added:
                    self.remove_callback(callback)

    return train


def _log_data(run: Any, train: Any, evaluation: Any) -> None:
    options = _common.DataOptions(_config["log_datasets"], _config["dataset_name"])
    if not options.log:
        return
    pair = _pair(train)
    evals = evaluation.items() if isinstance(evaluation, dict) else [("eval", evaluation)]
    sets = [(name if name == "eval" else f"eval_{name}", *p)
            for name, p in ((n, _pair(d)) for n, d in evals) if p is not None]
    if pair is not None:  # the tags and the version come from the tensors
        tags = {_common.TYPE_TAG: f"{type(train).__module__}.{type(train).__qualname__}"}
        _common.log_data(run, *pair, options=options, evals=sets, tags=tags)
    else:
        _common.log_data(run, None, options=options, evals=sets, tags=dataset_tags(train))


def _pair(dataset: Any) -> tuple[Any, Any] | None:
    """(features, labels) of a ``TensorDataset`` of one or two tensors, else None: what
    can be stored as a data set version whole."""
    tensors = getattr(dataset, "tensors", None)
    if not tensors or len(tensors) > 2:
        return None
    return tensors[0], tensors[1] if len(tensors) > 1 else None


def dataset_tags(dataset: Any) -> dict[str, str]:
    """``cairn.input.*`` tags for a torch or 🤗 ``datasets`` data set."""
    kind = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    fingerprint = getattr(dataset, "_fingerprint", None)
    if fingerprint is not None:  # datasets.Dataset: content fingerprint, already computed
        return {_common.DIGEST_TAG: f"datasets:{fingerprint}", _common.TYPE_TAG: kind,
                _common.SHAPE_TAG: json.dumps([len(dataset), len(dataset.column_names)])}
    tensors = getattr(dataset, "tensors", None)
    if tensors:  # torch TensorDataset
        tags = _common.input_tags(tensors[0], tensors[1] if len(tensors) > 1 else None)
        if len(tensors) > 2:  # the digest covers every tensor
            tags[_common.DIGEST_TAG] = _common.digest(*tensors)
        tags[_common.TYPE_TAG] = kind
        return tags
    try:
        return {_common.SHAPE_TAG: json.dumps([len(dataset)]), _common.TYPE_TAG: kind}
    except TypeError:  # an iterable data set has no length
        return {_common.TYPE_TAG: kind}
