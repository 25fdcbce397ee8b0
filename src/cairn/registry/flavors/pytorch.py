"""PyTorch modules: the ``state_dict`` plus the module's class path, or TorchScript when asked.

A state_dict is loaded with ``torch.load(weights_only=True)``, which runs no
pickled code; the module is rebuilt as ``Class(**init_kwargs)`` (from
``log_model(init_kwargs=...)``, or a module's own ``hparams`` dict) or the
caller passes ``model=`` an instance to load the weights into.  TorchScript
(``torchscript=True``) needs no class at load time; PyTorch deprecates it in
favour of ``torch.export``, and its deprecation warnings are silenced here
because the user asked for it explicitly.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

from ...errors import InvalidArgument
from . import Saved, class_path, import_class, require, stringify

STATE = "state_dict.pt"
LOAD_OPTIONS = ("model", "map_location")
SCRIPT = "model.ts"


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        yield


def _as_torch(inputs: Any) -> Any:
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs
    if isinstance(inputs, dict):
        return {k: _as_torch(v) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(_as_torch(v) for v in inputs)
    return torch.as_tensor(inputs)


def _call(model: Any, inputs: Any) -> Any:
    x = _as_torch(inputs)
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, tuple):
        return model(*x)
    return model(x)


def _shapes(state: dict[str, Any]) -> dict[str, list]:
    return {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in state.items()
            if hasattr(v, "shape")}


def save(model: Any, path: Path, *, input_example: Any = None, torchscript: bool = False,
         init_kwargs: dict[str, Any] | None = None, **_: Any) -> Saved:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    is_script = isinstance(model, torch.jit.ScriptModule)
    original = getattr(model, "original_name", None) if is_script else None
    cls = f"torchscript:{original}" if is_script else class_path(model)
    fingerprint = {"class": cls, "state_dict": _shapes(state)}
    kwargs = dict(init_kwargs if init_kwargs is not None else getattr(model, "hparams", None) or {})
    if torchscript or is_script:
        with _quiet_jit():
            scripted = model if is_script else _script(model, input_example)
            torch.jit.save(scripted, str(path / SCRIPT))
        options: dict[str, Any] = {"format": "torchscript", "file": SCRIPT, "class": cls}
    else:
        torch.save(state, path / STATE)
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            raise InvalidArgument("init_kwargs must be JSON values (numbers, strings, lists, "
                                  "dicts) so the module can be rebuilt at load time") from None
        options = {"format": "state_dict", "file": STATE, "class": cls, "init_kwargs": kwargs}
    return Saved(options=options, fingerprint=fingerprint, hyperparams=stringify(kwargs),
                 packages=("torch", "numpy"))


def _script(model: Any, example: Any) -> Any:
    import torch

    try:
        return torch.jit.script(model)
    except Exception as exc:
        if example is None:
            raise InvalidArgument(f"torch.jit.script failed ({exc}); pass input_example= so the "
                                  "module can be traced instead") from None
        try:
            x = _as_torch(example)
            return torch.jit.trace(model, tuple(x) if isinstance(x, tuple) else x)
        except Exception as exc2:
            raise InvalidArgument(f"TorchScript failed: script: {exc}; trace: {exc2}") from None


def predict(model: Any, inputs: Any) -> Any:
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _call(model, inputs)
    except Exception as exc:
        raise InvalidArgument(f"the module failed on input_example: {exc}") from None
    finally:
        model.train(was_training)


def load(path: Path, options: dict[str, Any], what: str, model: Any = None,
         map_location: Any = "cpu", **_: Any) -> Any:
    torch = require("torch", "pytorch", what, extra="pytorch")
    if options.get("format") == "torchscript":
        with _quiet_jit():
            return torch.jit.load(str(path / options.get("file", SCRIPT)), map_location=map_location)
    state = torch.load(path / options.get("file", STATE), map_location=map_location,
                       weights_only=True)
    if model is None:
        cls = import_class(options["class"], what)
        kwargs = options.get("init_kwargs") or {}
        try:
            model = cls(**kwargs)
        except Exception as exc:
            raise InvalidArgument(f"{what}: could not build {options['class']}(**{kwargs}): {exc}; "
                                  "register with init_kwargs= or pass model=<an instance>") from None
    try:
        model.load_state_dict(state)
    except Exception as exc:
        raise InvalidArgument(f"{what}: the stored weights do not fit {type(model).__name__}: "
                              f"{exc}") from None
    model.eval()
    return model
