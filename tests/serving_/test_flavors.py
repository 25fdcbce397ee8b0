"""Serving other flavors: PyTorch modules (one tensor, or named tensors) and MLflow models
imported into the registry as directories."""

import httpx
import numpy as np
import pytest

import cairn
from cairn.serving import deploy
from serving import ThreadedServer

from .conftest import COLUMNS, fit


def test_a_pytorch_module_is_called_on_a_tensor(registry, tracking):
    torch = pytest.importorskip("torch")
    from registry.nets import DictNet, TinyNet

    torch.manual_seed(0)
    c = cairn.Client(str(tracking))
    net = TinyNet(4, 8, 2)
    x = torch.randn(5, 4)
    c.register_model("net", net, input_example=x, init_kwargs={"hidden": 8})
    two = DictNet()
    c.register_model("towers", two, input_example={"left": torch.randn(2, 3),
                                                   "right": torch.randn(2, 2)})
    with ThreadedServer(deploy(registry, "models:/net/1.0.0", follow=False).app) as base:
        r = httpx.post(base + "/invocations", json={"inputs": x[:3].tolist()})
        assert r.status_code == 200, r.text
        with torch.no_grad():
            want = net(x[:3]).numpy()
        assert np.allclose(r.json()["predictions"], want, atol=1e-6)
        r = httpx.post(base + "/invocations", json={"inputs": x[:3, :3].tolist()})
        assert r.status_code == 400 and "dimension 1 is 3, expected 4" in r.json()["message"]
    with ThreadedServer(deploy(registry, "models:/towers/1.0.0", follow=False).app) as base:
        left, right = torch.randn(2, 3), torch.randn(2, 2)
        r = httpx.post(base + "/invocations", json={"inputs": {"left": left.tolist(),
                                                               "right": right.tolist()}})
        assert r.status_code == 200, r.text
        with torch.no_grad():
            assert np.allclose(r.json()["predictions"], two(left, right).numpy(), atol=1e-6)
        r = httpx.post(base + "/invocations", json={"inputs": {"left": left.tolist()}})
        assert r.status_code == 400 and "key 'right' is missing" in r.json()["message"]


@pytest.mark.slow  # imports mlflow (a few seconds)
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")
def test_a_model_imported_from_mlflow_is_served_as_an_mlflow_pyfunc(registry, tracking, frame,
                                                                      tmp_path):
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature

    X, _ = frame
    model = fit(frame)
    folder = tmp_path / "mlflow-model"
    mlflow_sklearn.save_model(model, str(folder), signature=infer_signature(X, model.predict(X)))
    # what `cairn import mlflow` registers: the MLmodel directory, flavor directory
    cairn.Client(str(tracking)).register_model("imported", folder, flavor="directory")
    with ThreadedServer(deploy(registry, "models:/imported/1.0.0", follow=False).app) as base:
        body = {"dataframe_split": {"columns": COLUMNS, "data": X[:4].to_numpy().tolist()}}
        r = httpx.post(base + "/invocations", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": model.predict(X[:4]).tolist()}
        # No Cairn signature: MLflow's own schema check refuses the input, as a 400.
        r = httpx.post(base + "/invocations", json={"dataframe_split": {
            "columns": ["amount"], "data": [[1.0]]}})
        assert r.status_code == 400, r.text
        assert "refused the input" in r.json()["message"] and "age" in r.json()["message"]
