"""An MLflow store written by the real mlflow client, and a field-by-field comparison with Cairn.

The store holds what an import must carry over: experiments with tags, a deleted
experiment, nested runs, a failed run, a deleted run, params, tags, metric
histories with NaN, an infinity and two points at one step, artifacts in
sub-directories (one large enough to be chunked), and a registered model with two
versions, an alias and stages.
"""

from __future__ import annotations

import contextlib
import math
import random
import warnings
from pathlib import Path

import numpy as np

BASE_TS = 1_700_000_000_000
MODEL = "classifier"


@contextlib.contextmanager
def mlflow_at(uri: str):
    """Point mlflow's fluent API at ``uri`` for a block, and leave no run or experiment behind."""
    import mlflow
    from mlflow.tracking import fluent

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield mlflow
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = None
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def build(uri: str, work: Path, *, explicit_locations: bool) -> dict[str, str]:
    """Write the store at ``uri``; files to log are made under ``work``. Returns run ids by name."""
    from mlflow.tracking import MlflowClient

    work.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    with mlflow_at(uri) as mlflow:
        for name, tags in (("vision", {"team": "cv", "mlflow.note.content": "image models"}),
                           ("nlp", {}), ("old", {"note": "abandoned"})):
            loc = (work / "artifacts" / name).as_uri() if explicit_locations else None
            mlflow.create_experiment(name, artifact_location=loc, tags=tags)
        mlflow.set_experiment("vision")
        with mlflow.start_run(run_name="sweep") as parent:
            ids["sweep"] = parent.info.run_id
            mlflow.log_params({"lr": 0.01, "optimizer": "adam", "layers": 3})
            mlflow.set_tags({"stage": "search", "owner": "ana"})
            for step in range(20):
                mlflow.log_metric("loss", 1 / (step + 1), step=step, timestamp=BASE_TS + step * 1000)
            mlflow.log_metric("loss", math.nan, step=20, timestamp=BASE_TS + 20_000)
            mlflow.log_metric("grad_norm", math.inf, step=0, timestamp=BASE_TS)
            mlflow.log_metric("grad_norm", 2.5, step=1, timestamp=BASE_TS + 1000)
            mlflow.log_metric("acc", 0.5, step=3, timestamp=BASE_TS + 1)
            mlflow.log_metric("acc", 0.6, step=3, timestamp=BASE_TS + 2)
            _files(work / "out", {"report.txt": b"all good\n",
                                  "plots/deep/curve.csv": b"step,loss\n0,1.0\n1,0.5\n",
                                  "weights.bin": random.Random(7).randbytes(5 << 20)})
            mlflow.log_artifacts(str(work / "out"), "results")
            mlflow.log_artifact(str(work / "out" / "report.txt"))
            _files(work / "model1", {"MLmodel": b"flavors: {v: 1}\n", "model.pkl": b"\x80v1"})
            _files(work / "model2", {"MLmodel": b"flavors: {v: 2}\n", "model.pkl": b"\x80v2",
                                     "extra/notes.md": b"# v2\n"})
            mlflow.log_artifacts(str(work / "model1"), "model")
            mlflow.log_artifacts(str(work / "model2"), "model_v2")
            for seed in (1, 2):
                with mlflow.start_run(run_name=f"trial-{seed}", nested=True) as child:
                    ids[f"trial-{seed}"] = child.info.run_id
                    mlflow.log_param("seed", seed)
                    for step in range(5):
                        mlflow.log_metric("acc", 0.1 * step + seed / 100, step=step,
                                          timestamp=BASE_TS + step)
        with mlflow.start_run(run_name="crashed") as run:
            ids["crashed"] = run.info.run_id
            mlflow.log_metric("loss", 3.0)
            mlflow.end_run(status="FAILED")
        mlflow.set_experiment("nlp")
        with mlflow.start_run(run_name="bert") as run:
            ids["bert"] = run.info.run_id
            mlflow.log_param("model", "bert-base")
            mlflow.log_metric("f1", 0.81)
        with mlflow.start_run(run_name="oops") as run:
            ids["oops"] = run.info.run_id
        client = MlflowClient()
        client.delete_run(ids["oops"])
        mlflow.set_experiment("old")
        with mlflow.start_run(run_name="ancient") as run:
            ids["ancient"] = run.info.run_id
            mlflow.log_param("x", 1)
        client.delete_experiment(client.get_experiment_by_name("old").experiment_id)

        client.create_registered_model(MODEL, tags={"task": "fraud"}, description="fraud model")
        art = parent.info.artifact_uri
        client.create_model_version(MODEL, f"{art}/model", run_id=ids["sweep"], description="first")
        client.create_model_version(MODEL, f"{art}/model_v2", run_id=ids["sweep"])
        client.set_registered_model_alias(MODEL, "champion", "1")
        with warnings.catch_warnings():
            # Stages are deprecated in MLflow but still in use; importing them is the point.
            warnings.filterwarnings("ignore", category=FutureWarning,
                                    message=".*transition_model_version_stage")
            client.transition_model_version_stage(MODEL, "2", "Production")
            client.transition_model_version_stage(MODEL, "1", "Staging")
    return ids


def _files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# -- comparison -----------------------------------------------------------------------------------
def _sorted_history(steps, stamps, values):
    steps, stamps, values = (np.asarray(steps, np.int64), np.asarray(stamps, np.int64),
                             np.asarray(values, np.float64))
    order = np.lexsort((values, stamps, steps))
    return steps[order], stamps[order], values[order]


def _tree_bytes(objects, entries, prefix="") -> dict[str, bytes]:
    return {e.path[len(prefix):]: objects.read_bytes(e) for e in entries if e.path.startswith(prefix)}


def assert_same(uri: str, cairn, tmp: Path, *, run_ids=None, models=True) -> int:
    """Every active run of the MLflow store at ``uri`` (or those in ``run_ids``) equals its
    Cairn copy field by field; so do the registry's models. Returns the runs compared."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    ml = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exps = {e.experiment_id: e for e in ml.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    for e in exps.values():
        got = cairn.get_experiment_by_name(e.name)
        assert got is not None, e.name
        if e.name != "Default":
            assert {k: v for k, v in got.tags.items() if not k.startswith("cairn.import.")} \
                == e.tags
    runs = ml.search_runs(list(exps), run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    if run_ids is not None:
        runs = [r for r in runs if r.info.run_id in run_ids]
    copies = {}
    if models:
        for v in cairn.list_model_versions(MODEL):
            copies.setdefault(v.source_run_id, []).append(f"models/{MODEL}/{v.version}/")
    for r in runs:
        rid = r.info.run_id
        c = cairn.get_run(rid)
        assert c.experiment == exps[r.info.experiment_id].name
        assert (c.name, c.user, c.start_time) == (r.info.run_name, r.info.user_id, r.info.start_time)
        assert c.status.value == r.info.status and c.end_time == r.info.end_time
        assert c.parent_id == r.data.tags.get("mlflow.parentRunId")
        assert dict(c.params) == r.data.params
        assert {k: v for k, v in c.tags.items() if not k.startswith("cairn.import.")} == r.data.tags
        assert c.tags["cairn.import.mlflow_run_id"] == rid
        assert set(c.metrics) == set(r.data.metrics)
        for key in r.data.metrics:
            hist = ml.get_metric_history(rid, key)
            want = _sorted_history([m.step for m in hist], [m.timestamp for m in hist],
                                   [m.value for m in hist])
            h = cairn.get_metric_history(rid, key)
            got = _sorted_history(h.steps, h.timestamps, h.values)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)  # NaN equals NaN here
        dst = tmp / "mlflow-artifacts" / rid
        dst.mkdir(parents=True)
        ml.download_artifacts(rid, "", str(dst))
        want_files = {p.relative_to(dst).as_posix(): p.read_bytes()
                      for p in dst.rglob("*") if p.is_file()}
        entries = [e for e in cairn.list_artifacts(rid)
                   if not e.path.startswith(tuple(copies.get(rid, ())))]
        assert _tree_bytes(cairn.store.objects, entries) == want_files
    if models:
        _assert_registry(ml, cairn, tmp)
    return len(runs)


def _assert_registry(ml, cairn, tmp: Path) -> None:
    import mlflow.artifacts

    stage = {"None": "Development", "Staging": "Staging", "Production": "Production",
             "Archived": "Archived"}
    for rm in ml.search_registered_models():
        rm = ml.get_registered_model(rm.name)
        got = cairn.get_registered_model(rm.name)
        assert got.description == (rm.description or "")
        assert {k: v for k, v in got.tags.items() if not k.startswith("cairn.import.")} == rm.tags
        assert dict(got.aliases) == {a: f"{v}.0.0" for a, v in rm.aliases.items()}
        versions = ml.search_model_versions(f"name = '{rm.name}'")
        have = {v.version: v for v in cairn.list_model_versions(rm.name)}
        assert set(have) == {f"{v.version}.0.0" for v in versions}
        for v in versions:
            cv = have[f"{v.version}.0.0"]
            assert cv.stage == stage[v.current_stage]
            assert cv.source_run_id == v.run_id
            assert cv.description == (v.description or "")
            assert cv.flavor == "directory"
            dst = tmp / "mlflow-models" / rm.name / str(v.version)
            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=ml.get_model_version_download_uri(rm.name, v.version),
                dst_path=str(dst)))
            want = {p.relative_to(local).as_posix(): p.read_bytes()
                    for p in local.rglob("*") if p.is_file()}
            tree = cairn.store.objects.get_tree(cv.tree_oid)
            assert _tree_bytes(cairn.store.objects, tree, "model/") == want
