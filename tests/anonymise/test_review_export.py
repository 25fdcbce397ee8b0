"""Review of `cairn export`: exporting again, and a DEST that is the source store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli


def _export(src, dest, *args):
    return CliRunner().invoke(cli, ["--store", str(src), "export", str(dest), *args])


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    client = cairn.Client(str(src), user="zelda")
    exp = client.create_experiment("shared")
    run = client.create_run(exp.id, params={"lr": "0.1"})
    client.log_batch(run.id, [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(5)])
    client.set_terminated(run.id)
    return src, run


def _points(store, run_id):
    return len(cairn.Client(str(store)).get_metric_history(run_id, "loss"))


def test_exporting_again_with_force_keeps_each_point_once(source, tmp_path):
    src, run = source
    dest = tmp_path / "dest"
    assert _export(src, dest, "--json").exit_code == 0
    again = _export(src, dest, "--force", "--json")
    assert again.exit_code == 0, again.output
    assert _points(dest, run.id) == 5
    assert json.loads(again.output)["runs"] == 0  # it was there already


@pytest.mark.parametrize("inside", ["", "sub"])
def test_dest_in_the_source_store_is_refused(source, inside):
    src, run = source
    dest = src / inside if inside else src
    out = _export(src, dest, "--force", "--json")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "source store" in out.output
    assert _points(src, run.id) == 5
    assert not (src / "sub").exists()
    assert CliRunner().invoke(cli, ["--store", str(src), "doctor"]).exit_code == 0


def test_what_is_in_the_trash_is_not_exported(tmp_path):
    """A deleted run or experiment must not come back to life, active, in a store that is
    made to be shared."""
    src = tmp_path / "src"
    client = cairn.Client(str(src), user="bob")
    exp = client.create_experiment("kept")
    live = client.create_run(exp.id, name="live")
    client.set_terminated(live.id)
    trashed = client.create_run(exp.id, name="trashed")
    client.set_terminated(trashed.id)
    client.delete_run(trashed.id)
    gone = client.create_experiment("gone")
    client.set_terminated(client.create_run(gone.id).id)
    client.delete_experiment(gone.id)

    dest = tmp_path / "dest"
    out = _export(src, dest, "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["runs"] == 1 and report["experiments"] == ["kept"]
    got = cairn.Client(str(dest))
    assert [r.id for r in got.search_runs(lifecycle=None)] == [live.id]
    assert [e.name for e in got.list_experiments()] == ["kept"]

    named = _export(src, tmp_path / "named", "-e", "gone")
    assert named.exit_code == 1 and "trash" in named.output
    assert not (tmp_path / "named").exists()


def test_an_anonymised_run_keeps_its_pseudonym_through_an_anonymised_export(tmp_path,
                                                                           monkeypatch):
    """Runs logged with CAIRN_ANONYMISE and runs logged without it, by the same person and
    exported with --anonymise under the same key, name that person by one pseudonym."""
    from cairn.anonymise import pseudonym

    key = "team-secret-0123456789"
    src = tmp_path / "src"
    monkeypatch.setenv("CAIRN_ANONYMISE_KEY", key)
    monkeypatch.setenv("CAIRN_ANONYMISE", "1")
    early = cairn.Client(str(src), user="zelda").create_run(tags={"mlflow.user": "zelda"})
    monkeypatch.delenv("CAIRN_ANONYMISE")
    late = cairn.Client(str(src), user="zelda").create_run(tags={"mlflow.user": "zelda"})
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"users": ["zelda"]}))
    monkeypatch.setenv("CAIRN_ANONYMISE_RULES", str(rules))
    assert _export(src, tmp_path / "dest", "--anonymise").exit_code == 0
    got = cairn.Client(str(tmp_path / "dest"))
    zelda = pseudonym(key.encode(), "user", "zelda")
    for run in (early, late):
        r = got.get_run(run.id)
        assert (r.user, r.tags["mlflow.user"]) == (zelda, zelda)
