"""`cairn import mlflow`: stores written by the real mlflow client, imported and compared field by field."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cairn import Client
from cairn.cli.main import cli
from cairn.errors import (
    CairnError, Conflict, InvalidArgument, MissingDependency, NotFound, StoreUnavailable,
)
from cairn.importers import Counts, ImportMismatch, import_mlflow

from .mlflow_world import MODEL, assert_same, mlflow_at

pytestmark = [
    # MLflow's SQL store trips a SQLAlchemy deprecation of its own when it opens.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"),
]

# What the store in mlflow_world holds, active experiments and runs only, counted by hand.
EXPECTED = {"experiments": 3, "runs": 5, "params": 6, "metric_points": 37, "artifacts": 9,
            "models": 1, "versions": 2, "aliases": 1, "stages": 2}


def _check_counts(counts: Counts) -> None:
    got = counts.to_dict()
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["tags"] > 5 * 4  # MLflow's own tags (user, source, run name...) on every run


def test_sqlite_store_is_imported_field_by_field(mlflow_sources, cairn_client, tmp_path):
    uri, ids = mlflow_sources["sqlite"]
    summary = import_mlflow(uri, cairn_client)

    assert summary.verified and summary.source_uri == uri
    assert summary.imported == summary.source == summary.cairn
    _check_counts(summary.cairn)
    assert assert_same(uri, cairn_client, tmp_path) == 5

    # A few facts checked directly, not through the comparison.
    loss = cairn_client.get_metric_history(ids["sweep"], "loss")
    assert len(loss) == 21 and math.isnan(loss.values[-1]) and loss.values[0] == 1.0
    assert loss.timestamps[3] - loss.timestamps[0] == 3000
    # MLflow's SQL store keeps an infinity as the largest double; the import keeps what it kept.
    assert cairn_client.get_metric_history(ids["sweep"], "grad_norm").values[0] >= sys.float_info.max
    assert len(cairn_client.get_metric_history(ids["sweep"], "acc")) == 2  # two points at step 3
    assert cairn_client.get_run(ids["trial-1"]).parent_id == ids["sweep"]
    assert cairn_client.get_run(ids["crashed"]).status.value == "FAILED"
    sizes = {e.path: e.size for e in cairn_client.list_artifacts(ids["sweep"])}
    assert sizes["results/weights.bin"] == 5 << 20 and "results/plots/deep/curve.csv" in sizes
    with pytest.raises(NotFound):  # deleted in MLflow: left out by default
        cairn_client.get_run(ids["oops"])
    assert cairn_client.get_experiment_by_name("old") is None

    champion = cairn_client.resolve_model(f"{MODEL}@champion")
    assert (champion.version, champion.stage) == ("1.0.0", "Staging")
    assert cairn_client.resolve_model(f"{MODEL}@production").version == "2.0.0"
    path = cairn_client.load_model(f"{MODEL}/2.0.0")
    assert (path / "MLmodel").read_bytes() == b"flavors: {v: 2}\n"
    assert (path / "extra" / "notes.md").read_bytes() == b"# v2\n"


def test_mlruns_directory_is_imported_field_by_field(mlflow_sources, cairn_client, tmp_path,
                                                     monkeypatch):
    mlruns, ids = mlflow_sources["mlruns"]
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    summary = import_mlflow(str(mlruns), cairn_client)
    # The importer lets MLflow open the directory for the import only.
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ

    assert summary.verified and summary.imported == summary.cairn
    _check_counts(summary.cairn)
    assert cairn_client.get_run(ids["trial-2"]).parent_id == ids["sweep"]
    # The same directory as a file:// URI is the same source: nothing new.
    again = import_mlflow(mlruns.as_uri(), cairn_client)
    assert again.verified and again.imported == Counts() and again.source == summary.source
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert assert_same(mlruns.as_uri(), cairn_client, tmp_path) == 5


def test_a_second_import_adds_nothing(mlflow_sources, cairn_client):
    uri, ids = mlflow_sources["sqlite"]
    first = import_mlflow(uri, cairn_client)
    runs = {r.id for r in cairn_client.search_runs()}
    files = {rid: cairn_client.list_artifacts(rid) for rid in runs}
    versions = cairn_client.list_model_versions(MODEL)
    cairn_client.set_note(ids["bert"], "checked")  # what Cairn adds is not a difference

    second = import_mlflow(uri, cairn_client)

    assert second.imported == Counts()
    assert second.verified and second.source == first.source == second.cairn
    assert {r.id for r in cairn_client.search_runs()} == runs
    assert {rid: cairn_client.list_artifacts(rid) for rid in runs} == files
    assert cairn_client.get_run(ids["bert"]).tags["cairn.note"] == "checked"
    assert cairn_client.list_model_versions(MODEL) == versions
    assert len(cairn_client.list_experiments()) == 3


def test_an_interrupted_import_leaves_whole_runs_and_a_rerun_finishes_it(
        mlflow_sources, cairn_client, tmp_path, monkeypatch):
    uri, ids = mlflow_sources["sqlite"]
    store = cairn_client.store
    real_write, created = store.write, []

    def failing_write(batch, *args, **kwargs):
        if batch.create is not None:
            if len(created) == 2:
                raise StoreUnavailable("disk went away")
            created.append(batch.run_id)
        return real_write(batch, *args, **kwargs)

    monkeypatch.setattr(store, "write", failing_write)
    with pytest.raises(StoreUnavailable):
        import_mlflow(uri, cairn_client)
    monkeypatch.undo()

    # Two runs are in, each complete; nothing of the third.
    assert {r.id for r in cairn_client.search_runs()} == set(created)
    assert assert_same(uri, cairn_client, tmp_path / "partial", run_ids=created, models=False) == 2

    summary = import_mlflow(uri, cairn_client)
    assert summary.verified and summary.imported.runs == 3
    assert assert_same(uri, cairn_client, tmp_path / "whole") == 5


def test_a_source_that_changed_after_import_is_reported(sqlite_copy, cairn_client):
    from mlflow.tracking import MlflowClient

    uri, ids = sqlite_copy
    import_mlflow(uri, cairn_client)
    ml = MlflowClient(tracking_uri=uri)
    ml.set_tag(ids["bert"], "reviewed", "yes")  # tags stay editable: the next import syncs it
    ml.log_metric(ids["bert"], "f1", 0.9, step=1)  # a finished Cairn run's metrics are not

    with pytest.raises(ImportMismatch) as err:
        import_mlflow(uri, cairn_client)
    assert f"run {ids['bert']}: metric point counts differ" in err.value.message
    assert "metric_points: 38 in the source, 37 in Cairn" in err.value.message
    assert not any("tags" in p for p in err.value.details["problems"])
    assert cairn_client.get_run(ids["bert"]).tags["reviewed"] == "yes"


def test_artifacts_logged_after_the_import_are_brought_in(sqlite_copy, cairn_client, tmp_path):
    uri, _ = sqlite_copy
    with mlflow_at(uri) as mlflow:  # its own artifact folder: the shared store's stay untouched
        mlflow.set_experiment(experiment_id=mlflow.create_experiment(
            "late", artifact_location=(tmp_path / "late").as_uri()))
        with mlflow.start_run(run_name="evaluated") as run:
            mlflow.log_text("v1", "eval/report.txt")
    import_mlflow(uri, cairn_client)
    with mlflow_at(uri) as mlflow:
        mlflow.log_text("v2, longer", "eval/report.txt", run_id=run.info.run_id)  # replaced
        mlflow.log_text("new", "eval/deep/extra.txt", run_id=run.info.run_id)

    summary = import_mlflow(uri, cairn_client)
    assert summary.verified and summary.imported.artifacts == 2 and summary.imported.runs == 0
    files = {e.path: cairn_client.store.objects.read_bytes(e)
             for e in cairn_client.list_artifacts(run.info.run_id)}
    assert files == {"eval/report.txt": b"v2, longer", "eval/deep/extra.txt": b"new"}
    assert import_mlflow(uri, cairn_client).imported == Counts()


def test_a_later_import_follows_stages_and_aliases(sqlite_copy, cairn_client):
    import warnings

    from mlflow.tracking import MlflowClient

    uri, _ = sqlite_copy
    import_mlflow(uri, cairn_client)
    ml = MlflowClient(tracking_uri=uri, registry_uri=uri)
    ml.set_registered_model_alias(MODEL, "champion", "2")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning,
                                message=".*transition_model_version_stage")
        ml.transition_model_version_stage(MODEL, "1", "Production")  # two in Production now

    summary = import_mlflow(uri, cairn_client)
    assert summary.verified
    assert (summary.imported.aliases, summary.imported.stages, summary.imported.versions) == (1, 1, 0)
    model = cairn_client.get_registered_model(MODEL)
    assert dict(model.aliases) == {"champion": "2.0.0"}
    assert sorted(model.stages["Production"]) == ["1.0.0", "2.0.0"]
    policy = {p.stage: p for p in cairn_client.get_stage_policies(MODEL)}["Production"]
    assert policy.exclusive is False


def test_experiment_selection_and_deleted_items(mlflow_sources, cairn_client, tmp_path):
    uri, ids = mlflow_sources["sqlite"]
    summary = import_mlflow(uri, cairn_client, experiments=["nlp"])
    assert (summary.cairn.experiments, summary.cairn.runs, summary.cairn.models) == (1, 1, 0)
    assert [r.id for r in cairn_client.search_runs()] == [ids["bert"]]
    assert cairn_client.list_registered_models() == []  # its versions come from runs in vision

    with pytest.raises(NotFound, match="no experiment named or with id 'nope'"):
        import_mlflow(uri, cairn_client, experiments=["nope"])

    summary = import_mlflow(uri, cairn_client, include_deleted=True)
    assert summary.verified and summary.cairn.runs == 7
    assert cairn_client.get_run(ids["oops"]).tags["cairn.import.lifecycle"] == "deleted"
    assert cairn_client.get_experiment_by_name("old").tags["cairn.import.lifecycle"] == "deleted"
    assert dict(cairn_client.get_run(ids["ancient"]).params) == {"x": "1"}


def test_registry_names_cairn_cannot_hold_stop_the_import_before_any_write(sqlite_copy,
                                                                         cairn_client):
    from mlflow.tracking import MlflowClient

    uri, ids = sqlite_copy
    MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model("fraud model v2")
    with pytest.raises(InvalidArgument, match="'fraud model v2'.*--no-models"):
        import_mlflow(uri, cairn_client)
    assert cairn_client.search_runs() == [] and cairn_client.list_registered_models() == []

    summary = import_mlflow(uri, cairn_client, models=False)
    assert summary.verified and summary.cairn.runs == 5 and summary.cairn.models == 0


def test_the_registry_naming_policy_is_checked_before_any_write(mlflow_sources, cairn_client):
    cairn_client.set_naming_policy(template="{team}_{task}")
    with pytest.raises(InvalidArgument, match=f"model name '{MODEL}'.*--no-models"):
        import_mlflow(mlflow_sources["sqlite"][0], cairn_client)
    assert cairn_client.search_runs() == [] and cairn_client.list_registered_models() == []


def test_a_cairn_model_of_the_same_name_is_not_mixed_with_mlflow_versions(
        mlflow_sources, cairn_client, tmp_path):
    uri, _ = mlflow_sources["sqlite"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "w.txt").write_text("mine")
    cairn_client.register_model(MODEL, tmp_path / "mine", flavor="directory")
    with pytest.raises(Conflict, match=f"already has a model named '{MODEL}'"):
        import_mlflow(uri, cairn_client)
    assert cairn_client.search_runs() == []
    assert [v.version for v in cairn_client.list_model_versions(MODEL)] == ["1.0.0"]


# -- the command line -------------------------------------------------------------------------
def _invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="cairn")


def test_cli_json_then_table(mlflow_sources, tmp_path):
    uri, _ = mlflow_sources["sqlite"]
    store = str(tmp_path / "cli-store")
    result = _invoke("--store", store, "import", "mlflow", uri, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"] is True and data["source"] == uri
    assert data["in_source"] == data["in_cairn"] == data["imported"]
    assert {k: data["in_cairn"][k] for k in EXPECTED} == EXPECTED

    result = _invoke("--store", store, "import", "mlflow", uri, "--progress")
    assert result.exit_code == 0, result.output
    assert "imported now" in result.stdout and "verified" in result.stdout
    row = next(line for line in result.stdout.splitlines() if " runs " in line)
    assert row.split("│")[2].strip() == "0"  # nothing new the second time
    assert "model versions" in result.stderr  # the progress bar, forced on


def test_cli_bad_source_is_one_line_and_exit_1(tmp_path):
    result = _invoke("--store", str(tmp_path / "s"), "import", "mlflow", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: there is no MLflow store at ")
    assert not (tmp_path / "s").exists() or not Client(str(tmp_path / "s")).search_runs()


# -- bad sources ------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_sources_get_clear_errors_and_are_left_alone(tmp_path, cairn_client, mlflow_sources):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a database")
    cairn_client.create_experiment("exists")  # a Cairn store's index: SQLite, but not MLflow's
    index = cairn_client.store.root / "index.db"
    before = index.read_bytes()
    cases = [
        (str(tmp_path / "missing"), NotFound, "there is no MLflow store at"),
        (str(tmp_path / "empty"), InvalidArgument, "is not an MLflow mlruns directory"),
        (str(mlflow_sources["mlruns"][0].parent), InvalidArgument, "did you mean "
         f"{mlflow_sources['mlruns'][0]}?"),
        (str(tmp_path / "notes.txt"), InvalidArgument, "is a file; an MLflow database is given as"),
        (f"sqlite:///{tmp_path / 'missing.db'}", NotFound, "there is no MLflow database at"),
        (f"sqlite:///{tmp_path / 'notes.txt'}", InvalidArgument, "is not an SQLite database"),
        (f"sqlite:///{index}", InvalidArgument, "is not an MLflow tracking database"),
        ("s3://bucket/mlruns", InvalidArgument, "unsupported MLflow source"),
        ("", InvalidArgument, "must be a database URI"),
        (f"http://127.0.0.1:{_free_port()}", StoreUnavailable, "cannot reach the MLflow server"),
    ]
    target = Client(str(tmp_path / "target"))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        _QuietHandler, directory=str(tmp_path / "empty")))  # a web server, but not MLflow
    threading.Thread(target=web.serve_forever, daemon=True).start()
    cases.append((f"http://127.0.0.1:{web.server_address[1]}", InvalidArgument,
                  "does not answer as an MLflow server: API request to endpoint "
                  "/api/2.0/mlflow/experiments/search failed with error code 501"))
    try:
        for source, error, text in cases:
            started = time.monotonic()
            with pytest.raises(error) as err:
                import_mlflow(source, target)
            assert text in err.value.message, (source, err.value.message)
            assert "<html" not in err.value.message.lower()
            assert time.monotonic() - started < 15, source  # no minutes of retries
    finally:
        web.shutdown()
        web.server_close()
    assert not (tmp_path / "missing").exists() and not (tmp_path / "missing.db").exists()
    assert index.read_bytes() == before  # MLflow never created its tables in it
    assert (tmp_path / "notes.txt").read_text() == "not a database"
    assert not (tmp_path / "target").exists()  # nothing was written to Cairn


def test_without_mlflow_installed_the_error_says_how_to_get_it(mlflow_sources, cairn_client,
                                                               monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # `import` now fails as if absent
    with pytest.raises(MissingDependency, match="pip install mlflow") as err:
        import_mlflow(mlflow_sources["sqlite"][0], cairn_client)
    assert isinstance(err.value, CairnError)


# -- a Cairn store on PostgreSQL ---------------------------------------------------------------
@pytest.mark.postgres
def test_import_into_a_postgresql_store(mlflow_sources, pg_url, tmp_path):
    from cairn.cas.odb import ObjectStore
    from cairn.store.sql.store import SqlStore

    uri, ids = mlflow_sources["sqlite"]
    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "objects"))
    client = Client(pg_url)
    client._store = store  # the server's store: PostgreSQL plus an object store
    try:
        summary = import_mlflow(uri, client)
        assert summary.verified and summary.imported == summary.cairn
        _check_counts(summary.cairn)
        assert assert_same(uri, client, tmp_path) == 5
        assert import_mlflow(uri, client).imported == Counts()
    finally:
        store.close()


def test_import_into_a_cairn_server(mlflow_sources, tmp_path, monkeypatch):
    """`cairn --store http://... import mlflow`: runs go through the spool, models through
    the server's registry API."""
    from cairn.cas.odb import ObjectStore
    from cairn.server.app import create_app
    from cairn.store import close_store
    from cairn.store.sql.store import SqlStore
    from serving import ThreadedServer

    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    uri, _ = mlflow_sources["sqlite"]
    store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "objects"))
    try:
        with ThreadedServer(create_app(store)) as url:
            client = Client(url)
            try:
                summary = import_mlflow(uri, client)
                assert summary.verified and summary.imported == summary.cairn
                _check_counts(summary.cairn)
                assert assert_same(uri, client, tmp_path) == 5
                assert import_mlflow(uri, client).imported == Counts()
            finally:
                close_store(url)
    finally:
        store.close()


@pytest.mark.postgres
def test_import_from_an_mlflow_postgresql_database(pg_url, cairn_client, tmp_path):
    import sqlalchemy as sa
    from mlflow.tracking import MlflowClient

    def tables() -> set[str]:
        engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                return set(sa.inspect(conn).get_table_names())
        finally:
            engine.dispose()

    with pytest.raises(InvalidArgument, match="is not an MLflow tracking database"):
        import_mlflow(pg_url, cairn_client)
    assert tables() == set()  # MLflow was never let loose on the empty database
    with pytest.raises(StoreUnavailable, match="cannot reach the MLflow database") as err:
        import_mlflow(f"postgresql://postgres:s3cret@127.0.0.1:{_free_port()}/mlflow",
                      cairn_client)
    assert "s3cret" not in err.value.message

    # psycopg2 is not installed here: MLflow itself is given the psycopg 3 driver.
    ml_uri = pg_url.replace("postgresql://", "postgresql+psycopg://")
    ml = MlflowClient(tracking_uri=ml_uri, registry_uri=ml_uri)
    (tmp_path / "art" / "model").mkdir(parents=True)
    (tmp_path / "art" / "model" / "MLmodel").write_text("flavors: {}\n")
    exp = ml.create_experiment("on-postgres", artifact_location=(tmp_path / "art").as_uri())
    run = ml.create_run(exp, run_name="pg-run")
    ml.log_param(run.info.run_id, "alpha", "0.5")
    for step in range(3):
        ml.log_metric(run.info.run_id, "rmse", 1.0 / (step + 1), step=step)
    ml.set_terminated(run.info.run_id)
    ml.create_registered_model(MODEL)
    ml.create_model_version(MODEL, (tmp_path / "art" / "model").as_uri(), run_id=run.info.run_id)

    summary = import_mlflow(pg_url, cairn_client)  # the plain postgresql:// URL
    assert summary.verified and summary.source_uri.startswith("postgresql://postgres@")
    assert (summary.cairn.runs, summary.cairn.metric_points, summary.cairn.versions) == (1, 3, 1)
    assert assert_same(ml_uri, cairn_client, tmp_path) == 1


# -- the guide's example runs -----------------------------------------------------------------
def test_the_guide_example_runs(tmp_path, monkeypatch):
    """docs/mlflow-import.md: its python blocks run in order, then its `cairn` lines."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[2] / "docs" / "mlflow-import.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    lines = [line for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
             for line in block.splitlines() if line.startswith("cairn ")]
    assert blocks and lines
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_mlflow_import"}
    try:
        for code in blocks:
            exec(compile(code, "docs/mlflow-import.md", "exec"), namespace)
        assert namespace["summary"].imported.runs == 1
        for line in lines:
            result = _invoke(*shlex.split(line)[1:])
            assert result.exit_code == 0, f"`{line}` failed:\n{result.output}"
            assert "verified" in result.stdout
    finally:
        from cairn.store import close_store

        close_store(str(tmp_path / "cairn-store"))


# -- a running MLflow server ------------------------------------------------------------------
@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path, log: Path):
    """`mlflow server` as a child process in its own session, killed with its workers after."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["timeout", "180", str(Path(sys.executable).parent / "mlflow"), "server",
             "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"mlflow server exited:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"mlflow server did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.slow
def test_import_from_a_running_mlflow_server(sqlite_copy, cairn_client, tmp_path):
    """Tracking, registry and artifacts over MLflow's REST API, the artifact proxy included."""
    uri, ids = sqlite_copy
    with mlflow_server(uri, tmp_path / "proxied", tmp_path / "server.log") as url:
        with mlflow_at(url) as mlflow:  # a run logged through the server: its files go via the proxy
            mlflow.set_experiment("served")  # created by the server: artifacts behind its proxy
            with mlflow.start_run(run_name="served") as run:
                mlflow.log_metrics({"f1": 0.5}, step=0)
                mlflow.log_metrics({"f1": 0.7}, step=1)
                mlflow.log_text("via the proxy", "notes/served.txt")
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")

        summary = import_mlflow(url, cairn_client)
        assert summary.verified and summary.source_uri == url
        assert (summary.cairn.experiments, summary.cairn.runs, summary.cairn.versions) == (4, 6, 2)
        assert assert_same(url, cairn_client, tmp_path) == 6
    entry = next(e for e in cairn_client.list_artifacts(run.info.run_id))
    assert cairn_client.store.objects.read_bytes(entry) == b"via the proxy"
