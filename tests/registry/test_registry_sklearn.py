"""Registering and loading real scikit-learn models; semantic versions and their reasons."""

import numpy as np
import pytest

import cairn
from cairn import AlreadyExists, InvalidArgument, NotFound

from .conftest import fit_logreg


def test_log_model_in_a_run_registers_loads_and_records_lineage(tracking, data, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "1")
    X, y = data
    with cairn.start_run(params={"C": 1.0, "seed": 0}) as run:
        model = fit_logreg(data)
        cairn.log_metric("auc", 0.91)
        mv = cairn.log_model(model, name="fraud-detector", input_example=X[:5],
                             datasets=["transactions@3"])
    assert mv.version == "1.0.0" and mv.bump == "initial"
    assert mv.bump_reasons == ("first version of this model",)
    assert mv.flavor == "sklearn" and mv.stage == "Development"
    assert mv.source_run_id == run.id
    assert mv.metrics == {"auc": 0.91}
    assert mv.params["C"] == "1.0" and mv.params["seed"] == "0"
    assert mv.datasets == ({"name": "transactions", "version": "3"},)
    assert mv.signature["inputs"] == {"type": "tensor", "framework": "numpy", "dtype": "float64",
                                      "shape": [-1, 4]}
    assert mv.signature["outputs"]["shape"] == [-1]
    assert mv.requirements["packages"]["scikit-learn"]
    assert mv.requirements["python"].count(".") == 2
    assert mv.lineage["run"]["id"] == run.id
    from cairn.environment import capture_environment

    git = capture_environment().get("git")  # the test runs inside the project's git checkout
    assert mv.lineage["code"] == (None if not git else {k: git.get(k) for k in
                                                        ("commit", "branch", "dirty", "remote")})
    assert mv.lineage["environment"]["python"] == mv.requirements["python"]
    # The version also appears among its run's artifacts.
    paths = {e.path for e in cairn.Client().list_artifacts(run.id)}
    assert "models/fraud-detector/1.0.0/model/model.pkl" in paths
    assert "models/fraud-detector/1.0.0/cairn-model.json" in paths

    for ref in ("fraud-detector/1.0.0", "models:/fraud-detector/1.0.0", "fraud-detector@latest",
                "fraud-detector@development"):
        loaded = cairn.models.load(ref)
        assert np.array_equal(loaded.predict(X), model.predict(X)), ref
    assert cairn.models.get("fraud-detector@latest") == mv


def test_signature_is_checked_on_request(tracking, data):
    X, _ = data
    client = cairn.Client()
    client.register_model("m", fit_logreg(data), input_example=X[:5])
    assert cairn.models.load("m/1.0.0", check_inputs=X[:2]) is not None
    cairn.models.check_inputs("m/1.0.0", X[:3].astype(np.int64))  # int fits float, same kind
    with pytest.raises(InvalidArgument, match=r"dimension 1 is 3, expected 4"):
        cairn.models.load("m/1.0.0", check_inputs=X[:2, :3])
    with pytest.raises(InvalidArgument, match="dtype is <U|dtype is str|expected float64"):
        cairn.models.check_inputs("m/1.0.0", np.array([["a", "b", "c", "d"]]))
    client.register_model("nosig", fit_logreg(data))
    with pytest.raises(InvalidArgument, match="no signature"):
        cairn.models.load("nosig/1.0.0", check_inputs=X)
    with pytest.raises(InvalidArgument, match="unknown load option.*check_input "):
        cairn.models.load("m/1.0.0", check_input=X)  # a typo is an error, not silently ignored


def test_pandas_signature(tracking, data):
    pd = pytest.importorskip("pandas")
    from sklearn.tree import DecisionTreeClassifier

    X, y = data
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(df, y)
    mv = cairn.Client().register_model("tree", model, input_example=df.head())
    cols = mv.signature["inputs"]["columns"]
    assert [c["name"] for c in cols] == ["a", "b", "c", "d"] and cols[0]["dtype"] == "float64"
    cairn.models.load("tree/1.0.0", check_inputs=df)
    with pytest.raises(InvalidArgument, match="column 'd' is missing"):
        cairn.models.load("tree/1.0.0", check_inputs=df[["a", "b", "c"]])


def test_suggested_bumps_follow_what_changed(tracking, data):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    c = cairn.Client()
    env = {"git": {"commit": "a" * 40}}
    reg = c.register_model
    v1 = reg("m", fit_logreg(data), input_example=X[:3], datasets=["tx@1"], env=env)
    assert v1.version == "1.0.0"
    # Retrained, nothing else changed -> PATCH
    v = reg("m", fit_logreg(data), input_example=X[:3], datasets=["tx@1"], env=env)
    assert (v.version, v.bump) == ("1.0.1", "patch") and "no change" in v.bump_reasons[0]
    # Hyperparameters -> MINOR
    v = reg("m", fit_logreg(data, C=0.1), input_example=X[:3], datasets=["tx@1"], env=env)
    assert (v.version, v.bump) == ("1.1.0", "minor")
    assert v.bump_reasons == ("hyperparameters changed: C 1.0 -> 0.1",)
    # Data set version -> MINOR
    v = reg("m", fit_logreg(data, C=0.1), input_example=X[:3], datasets=["tx@2"], env=env)
    assert v.version == "1.2.0" and v.bump_reasons == ("data set version changed: tx 1 -> 2",)
    # Code commit -> MINOR
    v = reg("m", fit_logreg(data, C=0.1), input_example=X[:3], datasets=["tx@2"],
            env={"git": {"commit": "b" * 40}})
    assert v.version == "1.3.0" and v.bump_reasons[0].startswith("code changed: commit aaaa")
    env = {"git": {"commit": "b" * 40}}
    # Training data set (another name) -> MAJOR
    v = reg("m", fit_logreg(data, C=0.1), input_example=X[:3], datasets=["clicks@1"], env=env)
    assert (v.version, v.bump) == ("2.0.0", "major")
    assert v.bump_reasons == ("training data set changed: tx -> clicks",)
    # Signature -> MAJOR
    v = reg("m", fit_logreg((X[:, :3], y), C=0.1), input_example=X[:3, :3],
            datasets=["clicks@1"], env=env)
    assert v.version == "3.0.0"
    assert v.bump_reasons[0].startswith("signature changed: inputs float64[-1, 4] -> float64[-1, 3]")
    # Architecture -> MAJOR (and the hyperparameters that came with it are listed too)
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X[:, :3], y)
    v = reg("m", rf, input_example=X[:3, :3], datasets=["clicks@1"], env=env)
    assert v.version == "4.0.0"
    assert v.bump_reasons[0] == ("architecture changed: sklearn.linear_model._logistic:LogisticRegression"
                                 " -> sklearn.ensemble._forest:RandomForestClassifier")
    assert v.parent == "m/3.0.0"
    # Explicit bump and explicit version, with the suggestion kept as a reason
    v = reg("m", rf, bump="minor", input_example=X[:3, :3], datasets=["clicks@1"], env=env)
    assert (v.version, v.bump) == ("4.1.0", "minor")
    assert v.bump_reasons[0] == "bump minor requested (suggested: patch)"
    v = reg("m", rf, version="4.0.7", parent="3.0.0", input_example=X[:3, :3],
            datasets=["clicks@1"], env=env)
    assert (v.version, v.bump, v.parent) == ("4.0.7", "explicit", "m/3.0.0")
    assert v.bump_reasons[0] == "version 4.0.7 set explicitly (suggested: major)"
    order = [mv.version for mv in c.list_model_versions("m")]
    assert order == ["1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.3.0", "2.0.0", "3.0.0", "4.0.0",
                     "4.0.7", "4.1.0"]
    diff = c.diff_model_versions("m", "1.0.1", "1.1.0")
    assert diff["suggested_bump"] == "minor" and diff["params"]["C"] == ["1.0", "0.1"]
    assert diff["files"]["changed"] == ["model/model.pkl"]


def test_versions_are_immutable_and_bad_versions_are_refused(tracking, data):
    c = cairn.Client()
    model = fit_logreg(data)
    c.register_model("m", model, version="2.1.0")
    with pytest.raises(AlreadyExists, match=r"m/2.1.0 already exists and versions are immutable.*2\.1\.1"):
        c.register_model("m", model, version="2.1.0")
    for bad in ("1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", "latest", ""):
        with pytest.raises(InvalidArgument, match="not a semantic version"):
            c.register_model("m", model, version=bad)
        with pytest.raises(InvalidArgument, match="not a semantic version"):
            c.get_model_version("m", bad)
    with pytest.raises(InvalidArgument, match="version= or bump="):
        c.register_model("m", model, version="3.0.0", bump="major")
    with pytest.raises(InvalidArgument, match="bump must be one of"):
        c.register_model("m", model, bump="huge")
    assert [mv.version for mv in c.list_model_versions("m")] == ["2.1.0"]
    # Nothing in the registry API can change a registered version's content (deleting one
    # is audited, and its number is never given again: tests/registry/test_registry_lifecycle.py).
    assert not hasattr(c, "update_model_version")


def test_unknown_models_versions_and_references_are_clear_errors(tracking, data):
    c = cairn.Client()
    with pytest.raises(NotFound, match="no registered model named 'ghost'"):
        c.get_model_version("ghost", "1.0.0")
    c.register_model("m", fit_logreg(data))
    with pytest.raises(NotFound, match=r"model 'm' has no version '9.9.9' \(latest versions: 1.0.0\)"):
        c.get_model_version("m", "9.9.9")
    with pytest.raises(NotFound, match="has no version in Production"):
        cairn.models.load("m@production")
    with pytest.raises(NotFound, match="has no alias 'champion'"):
        cairn.models.load("m@champion")
    with pytest.raises(InvalidArgument, match="does not say which version"):
        cairn.models.load("m")
    with pytest.raises(InvalidArgument, match="model name"):
        c.register_model("bad/name", fit_logreg(data))
    with pytest.raises(NotFound, match="no registered model"):
        c.list_model_versions("ghost")


def test_memory_store_refuses_the_registry_clearly(data):
    c = cairn.Client("memory://registry-test")
    with pytest.raises(InvalidArgument, match="registry needs a store with a database"):
        c.register_model("m", fit_logreg(data))


def test_data_set_versions_the_run_read_are_lineage_and_drive_the_bump(tracking, data, tmp_path):
    X, y = data
    src = tmp_path / "tx.csv"
    src.write_text("a,b\n1,2\n")
    cairn.data.add(src, name="transactions")
    src.write_text("a,b\n1,2\n3,4\n")
    cairn.data.add(src, name="transactions")
    versions = []
    for ds in ("transactions@1", "transactions@2"):
        with cairn.start_run():
            cairn.log_input(ds, role="train")
            versions.append(cairn.log_model(fit_logreg(data), name="m"))
    assert versions[0].datasets == ({"name": "transactions", "version": "1", "role": "train"},)
    assert (versions[1].version, versions[1].bump_reasons) == \
        ("1.1.0", ("data set version changed: transactions 1 -> 2",))
