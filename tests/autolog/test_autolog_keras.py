"""Keras 3 (on the PyTorch backend here; TensorFlow works the same): the callback and autolog."""

import numpy as np
import pytest

import cairn

pytestmark = [
    pytest.mark.slow,  # importing Keras and its backend takes seconds
    # Keras' torch backend converting a learning rate through numpy 2 (a Keras issue, not ours)
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"
                               ":DeprecationWarning"),
]

keras = pytest.importorskip("keras", reason="needs Keras 3 or TensorFlow: pip install 'cairn[keras]'")
from cairn.autolog.keras import CairnCallback  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype("float32")
    return X, (X[:, 0] > 0).astype("float32")


def compiled_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def test_callback_logs_params_epochs_batches_summary_and_model(tracking, data, tmp_path):
    X, y = data
    model = compiled_model()
    model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[CairnCallback(log_every_n_steps=1)])
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.status is cairn.RunStatus.FINISHED and r.tags["cairn.autolog.framework"] == "keras"
    assert r.params["epochs"] == "3" and r.params["steps_per_epoch"] == "3"
    assert r.params["optimizer.class"].endswith("Adam")
    assert float(r.params["optimizer.learning_rate"]) == pytest.approx(0.01)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert c.get_metric_history(r.id, key).steps.tolist() == [0, 1, 2], key
    assert c.get_metric_history(r.id, "batch_loss").steps.tolist() == list(range(1, 10))
    paths = [e.path for e in c.list_artifacts(r.id)]
    assert paths == ["model/cairn_model.json", "model/model.keras", "model_summary.txt"]
    out = c.download_artifacts(r.id, "", tmp_path)
    assert "dense" in (out / "model_summary.txt").read_text().lower()
    restored = keras.saving.load_model(out / "model" / "model.keras")
    np.testing.assert_allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5)


def test_autolog_adds_the_callback_batch_size_and_data(tracking, data):
    X, y = data
    cairn.autolog.keras.autolog(log_models=False)
    compiled_model().fit(X, y, epochs=2, batch_size=32, verbose=0)
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.params["batch_size"] == "32" and r.params["epochs"] == "2"
    assert r.tags["cairn.input.shape"] == "[64, 4]" and r.tags["cairn.input.digest"].startswith("sha256:")
    assert len(c.get_metric_history(r.id, "loss")) == 2
    assert "batch_loss" not in r.metrics
    assert [e.path for e in c.list_artifacts(r.id)] == ["model_summary.txt"]
    assert r.tags["cairn.input.dataset"] == "Default.train@1"
    assert c.data.catalog.run_inputs(r.id) == [("Default.train", 1, "train")]


def test_autolog_versions_validation_data_as_an_eval_input(tracking, data):
    X, y = data
    cairn.autolog.keras.autolog(log_models=False)
    compiled_model().fit(X[:48], y[:48], epochs=1, verbose=0, validation_data=(X[48:], y[48:]))
    c = cairn.Client()
    [r] = c.search_runs()
    assert c.data.catalog.run_inputs(r.id) == [("Default.validation", 1, "eval"),
                                               ("Default.train", 1, "train")]
    x_val, y_val = c.data.load_array("Default.validation@1")
    assert (x_val == X[48:]).all() and (y_val == y[48:]).all()


def test_a_failing_fit_under_autolog_fails_the_run(tracking, data):
    X, y = data
    cairn.autolog.keras.autolog()

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        compiled_model().fit(X, y, epochs=2, verbose=0, callbacks=[Boom()])
    [r] = cairn.Client().search_runs()
    assert r.status is cairn.RunStatus.FAILED and cairn.active_run() is None
