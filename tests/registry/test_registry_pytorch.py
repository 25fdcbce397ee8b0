"""Real PyTorch (CPU) models: state_dict + class path, TorchScript, signatures, bumps."""

import sys

import numpy as np
import pytest

import cairn
from cairn import InvalidArgument, MissingDependency

torch = pytest.importorskip("torch")

from .nets import DictNet, NeedsArgs, TinyNet  # noqa: E402


def test_state_dict_round_trip_with_tensor_signature(tracking):
    torch.manual_seed(0)
    net = TinyNet(4, 8, 2)
    x = torch.randn(5, 4)
    with cairn.start_run(params={"lr": 0.01}) as run:
        mv = cairn.log_model(net, name="torch-clf", input_example=x,
                             init_kwargs={"n_in": 4, "hidden": 8, "n_out": 2})
    assert mv.flavor == "pytorch" and mv.version == "1.0.0" and mv.source_run_id == run.id
    assert mv.signature["inputs"] == {"type": "tensor", "framework": "torch", "dtype": "float32",
                                      "shape": [-1, 4]}
    assert mv.signature["outputs"]["shape"] == [-1, 2]
    assert mv.fingerprint["class"] == f"{TinyNet.__module__}:TinyNet"
    assert mv.fingerprint["state_dict"]["hidden.weight"] == ["float32", [8, 4]]
    assert mv.params["hidden"] == "8" and mv.params["lr"] == "0.01"
    assert mv.requirements["packages"]["torch"].startswith("2.")
    loaded = cairn.models.load("torch-clf/1.0.0", check_inputs=x)
    assert isinstance(loaded, TinyNet) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    # Weights into an instance the caller built (no class import needed).
    into = TinyNet(4, 8, 2)
    assert cairn.models.load("torch-clf/1.0.0", model=into) is into
    with pytest.raises(InvalidArgument, match=r"dimension 1 is 3, expected 4"):
        cairn.models.load("torch-clf/1.0.0", check_inputs=torch.randn(2, 3))


def test_architecture_change_is_major_and_retraining_is_patch(tracking):
    c = cairn.Client()
    x = torch.randn(3, 4)
    c.register_model("net", TinyNet(4, 8, 2), input_example=x, init_kwargs={"hidden": 8})
    v = c.register_model("net", TinyNet(4, 8, 2), input_example=x, init_kwargs={"hidden": 8})
    assert v.version == "1.0.1"
    v = c.register_model("net", TinyNet(4, 16, 2), input_example=x, init_kwargs={"hidden": 16})
    assert v.version == "2.0.0"
    assert v.bump_reasons[0].startswith("architecture changed: state_dict differs at hidden.bias")
    assert "hyperparameters changed: hidden 8 -> 16" in v.bump_reasons


def test_torchscript_when_asked_loads_without_the_class(tracking):
    net = TinyNet()
    x = torch.randn(2, 4)
    mv = cairn.Client().register_model("scripted", net, input_example=x, torchscript=True)
    loaded = cairn.models.load("scripted/1.0.0")
    assert isinstance(loaded, torch.jit.ScriptModule)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x))
    assert mv.fingerprint["class"].endswith("nets:TinyNet")


def test_dict_inputs_and_modules_that_need_init_args(tracking):
    c = cairn.Client()
    example = {"left": torch.randn(2, 3), "right": torch.randn(2, 2)}
    mv = c.register_model("two-towers", DictNet(), input_example=example)
    assert set(mv.signature["inputs"]["fields"]) == {"left", "right"}
    cairn.models.load("two-towers/1.0.0", check_inputs=example)
    with pytest.raises(InvalidArgument, match=r"key 'right' is missing"):
        cairn.models.load("two-towers/1.0.0", check_inputs={"left": torch.randn(1, 3)})
    # No init_kwargs for a module that needs them: registering works, loading says what to do.
    c.register_model("needs", NeedsArgs(3))
    with pytest.raises(InvalidArgument, match="register with init_kwargs= or pass model="):
        cairn.models.load("needs/1.0.0")
    assert isinstance(cairn.models.load("needs/1.0.0", model=NeedsArgs(3)), NeedsArgs)
    with pytest.raises(InvalidArgument, match="do not fit"):
        cairn.models.load("needs/1.0.0", model=NeedsArgs(5))
    with pytest.raises(InvalidArgument, match="failed on input_example"):
        c.register_model("bad-example", TinyNet(), input_example=torch.randn(2, 7))
    assert "bad-example" not in {m.name for m in c.list_registered_models()}


def test_missing_framework_at_load_time_is_a_clear_error(tracking, monkeypatch):
    cairn.Client().register_model("net", TinyNet(), init_kwargs={})
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(MissingDependency,
                       match=r"needs torch \(flavor pytorch\).*pip install 'cairn\[pytorch\]'"):
        cairn.models.load("net/1.0.0")


def test_numpy_input_example_for_a_torch_model(tracking):
    x = np.random.RandomState(0).randn(3, 4).astype(np.float32)
    mv = cairn.Client().register_model("np-net", TinyNet(), input_example=x)
    assert mv.signature["inputs"]["framework"] == "numpy"
    assert mv.signature["outputs"]["framework"] == "torch"
