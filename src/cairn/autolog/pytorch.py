"""PyTorch plain training loops: a :class:`Tracker` that logs what a loop does not say itself.

::

    from cairn.autolog import pytorch as cairn_torch

    with cairn_torch.track(model, optimizer, scheduler, data=X_train) as t:
        for epoch in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
                t.log(loss=loss)            # at step = optimizer steps so far
            scheduler.step()
            t.epoch(val_loss=evaluate())    # at step = epoch index

Recorded:

* params: ``model.class``, ``model.parameters``, ``model.trainable_parameters``,
  ``optimizer.class`` and its hyperparameters (``optimizer.lr``, ``optimizer.betas`` ...; per
  group as ``optimizer.group_<i>.<name>`` when groups differ), ``scheduler.class`` and its
  settings (``scheduler.step_size`` ...), and ``params=`` you pass;
* metrics: ``lr`` (``lr/group_<i>`` with several groups) after optimizer steps, i.e. the
  learning-rate schedule; ``grad_norm`` (global L2 norm before each step) with
  ``grad_norm=True``; whatever you pass to :meth:`Tracker.log` and :meth:`Tracker.epoch`;
* artifacts: ``model_summary.txt`` (``str(model)``) and, at the end, the model's
  ``state_dict`` as the model (``model/state_dict.pt``);
* tags: ``cairn.input.*`` for ``data=`` / ``targets=``, which are also stored as a data set
  version (``<dataset_name or experiment>.train``) logged as the run's "train" input, once, as
  the tracker starts (``log_datasets=False``: neither).

Learning rate and gradient norm come from optimizer step hooks, so they need no call in the
loop; ``log_every_n_steps`` (default 10, like the frameworks' own defaults it keeps logging
well under 1 % of a small model's step) thins them and :meth:`Tracker.log` alike.  A tensor
passed to ``log`` is read with ``.item()`` (a device sync on GPU) only on the steps that are
logged; ``log_every_n_steps=1`` records every step.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import clock
from . import _common

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise _common.missing("PyTorch", "pytorch", "pytorch") from exc

__all__ = ["Tracker", "track"]

FRAMEWORK = "pytorch"
_SKIP_OPTIMIZER_KEYS = {"params", "initial_lr", "name"}


class Tracker:
    """Logs one training loop into a run; see the module docstring.  Use :func:`track`."""

    def __init__(self, model: Any, optimizer: Any = None, scheduler: Any = None, *,
                 run: Any = None, data: Any = None, targets: Any = None,
                 params: Mapping[str, Any] | None = None, log_every_n_steps: int = 10,
                 grad_norm: bool = False, log_models: bool = True, log_datasets: bool = True,
                 dataset_name: str | None = None) -> None:
        if log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be >= 1, got {log_every_n_steps}")
        self._data_options = _common.DataOptions(log_datasets,
                                                 _common.check_dataset_name(dataset_name))
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.every = log_every_n_steps
        self.grad_norm = grad_norm
        self.log_models = log_models
        self.global_step = 0
        self.epoch_index = 0
        self._given_run = run
        self._data = (data, targets)
        self._extra_params = dict(params or {})
        self._scope: _common.RunScope | None = None
        self._writer: Any = None  # the run's buffer, for the per-step path
        self._handles: list[Any] = []

    @property
    def run(self) -> Any:
        if self._scope is None:
            raise RuntimeError("the tracker is not started: use `with track(...)` or .start()")
        return self._scope.run

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Tracker":
        self._scope = _common.RunScope(FRAMEWORK, self._given_run)
        run = self._scope.run
        self._writer = run._writer
        run.log_params({**self._describe(), **_common.short_params(self._extra_params)})
        data, targets = self._data
        if data is not None:
            _common.log_data(run, data, targets, options=self._data_options)
        _common.log_text(run, str(self.model), "model_summary.txt")
        if self.optimizer is not None:
            if self.grad_norm:
                self._handles.append(self.optimizer.register_step_pre_hook(self._before_step))
            self._handles.append(self.optimizer.register_step_post_hook(self._after_step))
        return self

    def close(self, exc: BaseException | None = None) -> None:
        """Remove the hooks, log the model (unless training failed), end a run it started."""
        if self._scope is None:
            return
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        scope, self._scope, self._writer = self._scope, None, None
        try:
            if exc is None and self.log_models:
                model = self.model

                def save(root) -> None:
                    torch.save(model.state_dict(), root / "state_dict.pt")

                _common.log_model(scope.run, model, FRAMEWORK, save)
        finally:
            scope.close(exc)

    def __enter__(self) -> "Tracker":
        return self if self._scope is not None else self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)

    # -- logging -----------------------------------------------------------
    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Log metrics (tensors welcome) at ``step``, default: optimizer steps taken so far.

        Skipped, without reading the tensors, on steps that ``log_every_n_steps`` thins out.
        This is the per-step hot path: it goes straight to the run's buffer.
        """
        if step is None:
            step = self.global_step
            if self.every != 1 and step % self.every:
                return
        writer = self._writer
        if writer is None:
            raise RuntimeError("the tracker is not started: use `with track(...)` or .start()")
        timestamp = clock.time_ns() // 1_000_000
        for key, value in metrics.items():
            writer.log_metric(key, value.item() if isinstance(value, torch.Tensor) else value,
                              step, timestamp)

    def epoch(self, **metrics: Any) -> None:
        """End an epoch: log ``metrics`` at step = epoch index (0, 1, ...)."""
        if metrics:
            self.run.log_metrics({k: _number(v) for k, v in metrics.items()}, step=self.epoch_index)
        self.epoch_index += 1

    # -- hooks -------------------------------------------------------------
    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if (self.global_step + 1) % self.every:
            return
        grads = [p.grad.detach() for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            self.run.log_metric("grad_norm", norm.item(), step=self.global_step + 1)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.global_step += 1
        if self.every != 1 and self.global_step % self.every:
            return
        groups = optimizer.param_groups
        if len(groups) == 1:
            self._writer.log_metric("lr", _number(groups[0]["lr"]), self.global_step)
        else:
            self.run.log_metrics({f"lr/group_{i}": _number(g["lr"]) for i, g in enumerate(groups)},
                                 step=self.global_step)

    # -- params ------------------------------------------------------------
    def _describe(self) -> dict[str, str]:
        model = self.model
        out = {"model.class": _qualname(model),
               "model.parameters": str(sum(p.numel() for p in model.parameters())),
               "model.trainable_parameters": str(sum(p.numel() for p in model.parameters()
                                                     if p.requires_grad))}
        if self.optimizer is not None:
            out["optimizer.class"] = _qualname(self.optimizer)
            groups = [{k: v for k, v in g.items() if k not in _SKIP_OPTIMIZER_KEYS
                       and _simple(v)} for g in self.optimizer.param_groups]
            if all(g == groups[0] for g in groups):
                out.update({f"optimizer.{k}": _common.param_text(v) for k, v in groups[0].items()})
            else:
                for i, g in enumerate(groups):
                    out.update({f"optimizer.group_{i}.{k}": _common.param_text(v) for k, v in g.items()})
        if self.scheduler is not None:
            out["scheduler.class"] = _qualname(self.scheduler)
            state = self.scheduler.state_dict()
            out.update({f"scheduler.{k}": _common.param_text(v) for k, v in state.items()
                        if not k.startswith("_") and k not in ("last_epoch", "base_lrs")
                        and _simple(v)})
        return out


def track(model: Any, optimizer: Any = None, scheduler: Any = None, **options: Any) -> Tracker:
    """A started :class:`Tracker`; ``with track(...) as t:`` ends it (and the run it began)."""
    return Tracker(model, optimizer, scheduler, **options).start()


def _qualname(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _simple(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, tuple) and all(isinstance(v, (bool, int, float)) for v in value)


def _number(value: Any) -> Any:
    return value.item() if isinstance(value, torch.Tensor) else value
