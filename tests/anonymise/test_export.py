"""`cairn export DEST [--anonymise]`: a new local store with the chosen runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import cairn
from cairn.anonymise import pseudonym
from cairn.cli.main import cli
from tests.pg_fixtures import pg_database, pg_url  # noqa: F401

KEY = "team-secret-0123456789"
ORIGINALS = [b"zelda", b"zelda@lab.example.org", b"10.20.30.40", b"gpu-box-7"]


def _fill(client, tmp_path):
    exp = client.create_experiment("shared")
    other = client.create_experiment("private")
    run = client.create_run(exp.id, params={"data": "/home/zelda/d.csv", "peer": "10.20.30.40"},
                            tags={"mlflow.user": "zelda", "contact": "zelda@lab.example.org",
                                  "host": "gpu-box-7"})
    client.log_batch(run.id, [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(50)])
    art = tmp_path / "weights.bin"
    art.write_bytes(b"\x00\x01" * 5000)
    client.log_artifact(run.id, str(art))
    client.set_terminated(run.id)
    hidden = client.create_run(other.id, params={"x": "1"})
    client.set_terminated(hidden.id)
    return run, hidden


def _every_byte(root):
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _export(src, dest, *args, env=None):
    return CliRunner().invoke(cli, ["--store", str(src), "export", str(dest), *args],
                              env=env)


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    client = cairn.Client(str(src), user="zelda")
    return src, *_fill(client, tmp_path)


def test_export_copies_runs_of_the_chosen_experiments(source, tmp_path):
    src, run, hidden = source
    dest = tmp_path / "dest"
    out = _export(src, dest, "-e", "shared", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["runs"] == 1 and report["metric_points"] == 50 and report["artifacts"] == 1
    c = cairn.Client(str(dest))
    got = c.get_run(run.id)
    assert got.params["data"] == "/home/zelda/d.csv" and got.user == "zelda"
    assert got.status.value == "FINISHED"
    h = c.get_metric_history(run.id, "loss")
    assert np.array_equal(h.steps, np.arange(50)) and h.values[3] == 0.25
    assert (c.download_artifacts(run.id, "weights.bin", tmp_path / "dl")).read_bytes() == \
        b"\x00\x01" * 5000
    with pytest.raises(cairn.NotFound):
        c.get_run(hidden.id)
    ls = CliRunner().invoke(cli, ["--store", str(dest), "runs", "ls", "--json"])
    assert ls.exit_code == 0 and run.id in ls.output


def test_export_anonymised_holds_no_original(source, tmp_path):
    src, run, _ = source
    dest = tmp_path / "anon"
    missing = _export(src, dest, "--anonymise", env={"CAIRN_ANONYMISE_KEY": ""})
    assert missing.exit_code == 1 and "CAIRN_ANONYMISE_KEY" in missing.output
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"users": ["zelda"], "hosts": ["gpu-box-7"]}))
    out = _export(src, dest, "--anonymise", "--json",
                  env={"CAIRN_ANONYMISE_KEY": KEY, "CAIRN_ANONYMISE_RULES": str(rules)})
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["anonymised"] is True
    data = _every_byte(dest)
    for original in ORIGINALS:
        assert original not in data, f"{original!r} in the export"
    got = cairn.Client(str(dest)).get_run(run.id)
    user = pseudonym(KEY.encode(), "user", "zelda")
    assert got.user == user and got.tags["mlflow.user"] == user
    assert got.params["data"] == f"/home/{user}/d.csv"
    assert cairn.Client(str(dest)).get_metric_history(run.id, "loss").values[0] == 1.0


def test_a_non_empty_destination_is_refused_without_force(source, tmp_path):
    src = source[0]
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    out = _export(src, dest)
    assert out.exit_code == 1 and "not empty" in out.output
    assert (dest / "keep.txt").read_text() == "mine" and len(list(dest.iterdir())) == 1
    assert _export(src, dest, "--force").exit_code == 0


def test_export_from_a_team_server(cairn_server, tmp_path):
    client = cairn.Client(cairn_server, user="zelda")
    run, _ = _fill(client, tmp_path)
    from cairn.lifecycle.export import export_runs
    from cairn.anonymise.rules import Anonymiser, Rules

    anon = Anonymiser(Rules(users=("zelda",), hosts=("gpu-box-7",)), KEY.encode(), local=False)
    report = export_runs(client, tmp_path / "out", experiments=["shared"], anonymiser=anon)
    assert report.runs == 1 and report.objects >= 1
    for original in ORIGINALS:
        assert original not in _every_byte(tmp_path / "out")
    got = cairn.Client(str(tmp_path / "out")).get_run(run.id)
    assert len(cairn.Client(str(tmp_path / "out")).get_metric_history(run.id, "loss")) == 50
    assert got.user == pseudonym(KEY.encode(), "user", "zelda")


def test_export_from_postgresql(pg_url, tmp_path):  # noqa: F811
    from cairn.cas.odb import ObjectStore
    from cairn.store.sql.store import SqlStore

    objects = tmp_path / "objects"
    store = SqlStore(pg_url, ObjectStore.local(objects)).open()
    try:
        run, _ = _fill(cairn.Client(store=store, user="zelda"), tmp_path)
    finally:
        store.close()
    dest = tmp_path / "from-pg"
    out = CliRunner().invoke(cli, ["--store", pg_url, "export", str(dest), "-e", "shared",
                                   "--objects", str(objects), "--anonymise", "--json"],
                             env={"CAIRN_ANONYMISE_KEY": KEY})
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["runs"] == 1
    got = cairn.Client(str(dest))
    assert got.get_run(run.id).tags["mlflow.user"] == pseudonym(KEY.encode(), "user", "zelda")
    assert got.download_artifacts(run.id, "weights.bin", tmp_path / "dl").stat().st_size == 10000
    assert b"zelda@lab.example.org" not in _every_byte(dest)
