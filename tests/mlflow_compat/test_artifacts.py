"""Artifacts through MLflow's proxy: what the mlflow client uploads is a Cairn artifact."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402


def test_log_and_download_artifacts(url, client, cairn_client, tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("alpha")
    (tmp_path / "src" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "one.csv").write_text("x,y\n1,2\n")
    mlflow.set_experiment("artifacts")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "one.csv"))
        mlflow.log_artifacts(str(tmp_path / "src"), artifact_path="data")
        mlflow.log_dict({"k": [1, 2]}, "conf/config.json")
        mlflow.log_text("hello", "notes.txt")
    rid = run.info.run_id

    top = {f.path: f for f in client.list_artifacts(rid)}
    assert set(top) == {"one.csv", "data", "conf", "notes.txt"}
    assert top["data"].is_dir and not top["one.csv"].is_dir and top["one.csv"].file_size == 8
    inner = {f.path: f for f in client.list_artifacts(rid, "data")}
    assert set(inner) == {"data/a.txt", "data/sub"} and inner["data/sub"].is_dir

    out = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data",
                                              dst_path=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "data" / "a.txt").read_text() == "alpha"
    assert (tmp_path / "dl" / "data" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 40
    assert out.endswith("data")
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/conf/config.json") == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes.txt") == "hello"

    # Cairn's own API sees the same files, byte for byte.
    paths = sorted(e.path for e in cairn_client.list_artifacts(rid))
    assert paths == ["conf/config.json", "data/a.txt", "data/sub/b.bin", "notes.txt", "one.csv"]
    got = cairn_client.download_artifacts(rid, "data/sub/b.bin", tmp_path / "cairn")
    assert got.read_bytes() == bytes(range(256)) * 40


def test_proxy_wire_details(url, client):
    import requests

    run = client.create_run(client.create_experiment("wire-artifacts"))
    base = f"{url}/api/2.0/mlflow-artifacts/artifacts"
    root = run.info.artifact_uri[len("mlflow-artifacts:/"):]
    assert requests.put(f"{base}/{root}/MLmodel", data=b"flavors: {}\n").status_code == 200
    r = requests.get(f"{base}/{root}/MLmodel", headers={"accept": "application/json"})
    assert r.status_code == 200 and r.content == b"flavors: {}\n"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == "attachment; filename=MLmodel"  # as mlflow server
    r = requests.get(f"{base}/{root}/missing.txt")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.get(base, params={"path": f"{root}/MLmodel"}).json() == {}
    assert requests.get(base, params={"path": f"{root}/nothing-here"}).json() == {}
    listed = requests.get(f"{url}/api/2.0/mlflow/artifacts/list",
                          params={"run_id": run.info.run_id}).json()
    assert listed["files"] == [{"path": "MLmodel", "is_dir": False, "file_size": 12}]
    # requests folds the '..' away: what arrives is '<experiment>/<run>/escape.txt', outside
    # the run's artifacts, a free path that mlflow server stores too (200)
    r = requests.put(f"{base}/{root}/../escape.txt", data=b"x")
    assert r.status_code == 200
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["MLmodel"]


def test_unknown_run_artifacts(client):
    with pytest.raises(MlflowException) as e:
        client.list_artifacts("0123456789abcdef0123456789abcdef")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
