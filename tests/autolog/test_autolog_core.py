"""What every integration shares: lazy import, import hooks, missing extras, runs, data digests."""

import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cairn
from cairn.autolog import _common, _hooks


def run_python(code, tmp_path):
    env_code = f"import cairn; cairn.set_tracking_uri({str(tmp_path / 'store')!r})\n"
    out = subprocess.run([sys.executable, "-c", env_code + textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_import_cairn_and_autolog_load_no_framework(tmp_path):
    lines = run_python("""
        import sys
        heavy = ["numpy", "sklearn", "torch", "xgboost", "lightgbm", "transformers", "keras",
                 "lightning", "psutil", "pynvml", "cairn.sysmetrics"]
        print([m for m in heavy if m in sys.modules])
        print(callable(cairn.autolog), type(cairn.autolog).__name__)
        on = cairn.autolog(system_metrics=False)  # hooks only: still nothing imported
        print([m for m in heavy if m in sys.modules and m != "cairn.sysmetrics"])
        print("sklearn" in on)
    """, tmp_path)
    assert lines == ["[]", "True _CallableModule", "[]", "True"]


@pytest.mark.slow  # a fresh interpreter importing scikit-learn
def test_autolog_before_the_framework_is_imported_patches_it_on_import(tmp_path):
    pytest.importorskip("sklearn")
    lines = run_python("""
        cairn.autolog(system_metrics=False)
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
        X, y = load_iris(return_X_y=True)
        DecisionTreeClassifier(max_depth=2).fit(X, y)
        runs = cairn.Client().search_runs()
        print(len(runs), runs[0].params["max_depth"], runs[0].tags["cairn.autolog.framework"])
        import sklearn, importlib.resources
        print(type(sklearn.__loader__).__name__, type(sklearn.__spec__.loader).__name__)
        from cairn.autolog import _hooks
        print(_hooks.pending().get("sklearn"))
    """, tmp_path)
    # the module only ever sees its real loader; the one-shot hook is gone
    assert lines == ["1 2 sklearn", "SourceFileLoader SourceFileLoader", "None"]


@pytest.mark.parametrize("module,extra", [("xgboost", "xgboost"), ("lightgbm", "lightgbm"),
                                          ("transformers", "transformers"), ("sklearn", "sklearn"),
                                          ("pytorch", "pytorch"), ("keras", "keras")])
def test_a_missing_framework_names_the_extra_to_install(monkeypatch, module, extra):
    blocked = {"pytorch": ["torch"], "keras": ["keras", "tensorflow"],
               "sklearn": ["sklearn", "sklearn.base"]}.get(module, [module])
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # import name -> ImportError
    monkeypatch.delitem(sys.modules, f"cairn.autolog.{module}", raising=False)
    monkeypatch.delitem(vars(cairn.autolog), module, raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'cairn\[{extra}\]'") as info:
        importlib.import_module(f"cairn.autolog.{module}")
    assert isinstance(info.value, cairn.MissingDependency)
    assert info.value.details == {"extra": extra}


def test_lightning_missing_names_its_extra(monkeypatch):
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "cairn.autolog.lightning", raising=False)
    monkeypatch.delitem(vars(cairn.autolog), "lightning", raising=False)
    with pytest.raises(cairn.MissingDependency, match=r"cairn\[lightning\]"):
        cairn.autolog.lightning  # noqa: B018  (the package's __getattr__ imports it)


def test_autolog_skips_what_is_not_installed_and_rejects_unknown_names(monkeypatch):
    monkeypatch.setattr(_hooks, "installed", lambda module: module.startswith("sklearn"))
    for name in ("xgboost", "lightgbm", "keras", "lightning.pytorch", "pytorch_lightning",
                 "transformers.trainer"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert cairn.autolog(system_metrics=False) == ["sklearn"]
    with pytest.raises(ValueError, match="unknown integrations"):
        cairn.autolog(exclude=["tensorflow"])


def test_import_hook_fires_once_after_the_module_ran(tmp_path, monkeypatch):
    pkg = tmp_path / "fakefw"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    assert _hooks.when_imported("fakefw", "test", lambda m: seen.append(m.VALUE))
    assert seen == [] and _hooks.pending() == {"fakefw": ["test"]}
    import fakefw

    assert seen == [42] and fakefw.__loader__.__class__.__name__ == "SourceFileLoader"
    assert _hooks.pending() == {}
    assert _hooks.when_imported("fakefw", "test", lambda m: seen.append("again"))  # already in
    assert seen == [42, "again"]
    assert not _hooks.when_imported("no_such_framework_here", "test", seen.append)
    monkeypatch.delitem(sys.modules, "fakefw")


def test_digest_follows_content_not_identity():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert _common.digest(a) == _common.digest(a.copy()) == _common.digest(np.asfortranarray(a))
    assert _common.digest(a) != _common.digest(a.astype(np.float32))  # dtype counts
    assert _common.digest(a) != _common.digest(a.reshape(4, 3))  # shape counts
    assert _common.digest(a, [0, 1, 2]) != _common.digest(a, [0, 1, 1])  # targets count
    assert _common.digest(a).startswith("sha256:") and len(_common.digest(a)) == 7 + 64


def test_digest_of_frames_sparse_and_lists():
    pd = pytest.importorskip("pandas")
    sparse = pytest.importorskip("scipy.sparse")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert _common.digest(df) == _common.digest(df.copy())
    assert _common.digest(df) != _common.digest(df.rename(columns={"a": "c"}))
    m = sparse.random(20, 5, density=0.2, random_state=0, format="csr")
    assert _common.digest(m) == _common.digest(m.tocoo()) != _common.digest(m * 2)
    assert _common.input_tags([[1, 2], [3, 4]], [0, 1])["cairn.input.shape"] == "[2, 2]"


def test_the_model_logger_hook_replaces_the_artifact_fallback(tracking):
    got = []
    _common.set_model_logger(lambda run, model, flavor, save, path: got.append((run.id, model, flavor, path)))
    try:
        with cairn.start_run() as run:
            _common.log_model(run, "a model", "sklearn", lambda root: None)
    finally:
        _common.set_model_logger(None)
    assert got == [(run.id, "a model", "sklearn", "model")]
    assert cairn.Client().list_artifacts(run.id) == []


def test_params_are_flattened_and_long_values_cut():
    flat = _common.flatten({"a": {"b": 1, "c": {"d": None}}, "e": "x" * 7000, " ": 1, "f": {}})
    assert flat["a.b"] == "1" and flat["a.c.d"] == "None" and flat["f"] == "{}"
    assert len(flat["e"]) == 6000 and flat["e"].endswith("...") and " " not in flat
    assert _common.short_params({"k": "y" * 900})["k"] == "y" * 497 + "..."
    assert _common.metric_value(np.float32(0.5)) == 0.5 and _common.metric_value(True) is None
    assert _common.metric_value("1") is None and _common.metric_value(np.ones(2)) is None


def test_autolog_without_psutil_warns_and_goes_on_without_system_metrics(monkeypatch):
    from cairn import sysmetrics

    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.warns(UserWarning, match=r"no system metrics.*cairn\[system\]"):
        cairn.autolog()
    assert not sysmetrics.default_enabled()
    monkeypatch.delitem(sys.modules, "psutil")
    pytest.importorskip("psutil")
    cairn.autolog()
    assert sysmetrics.default_enabled()
    cairn.autolog(disable=True)
    assert not sysmetrics.default_enabled()
