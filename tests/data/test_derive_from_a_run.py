"""derive() for a run that made an output from no recorded data, with a commit the caller
already knows (what a pipeline stage records)."""

import pytest

from cairn.errors import InvalidArgument


def test_a_run_can_produce_a_version_from_no_inputs(client, tmp_path):
    out = tmp_path / "made.txt"
    out.write_text("made from nothing\n")
    run = client.create_run(name="generate")
    v = client.data.derive([], out, "made", run_id=run.id, commit="a" * 40,
                           transform={"stage": "generate"})
    assert v.run_id == run.id and v.commit == "a" * 40 and v.parents == ()
    assert v.kind == "derive" and v.transform == {"stage": "generate"}
    graph = client.lineage("made@1")
    assert f"run:{run.id}" in graph.nodes


def test_no_inputs_and_no_run_is_still_refused(client, tmp_path):
    out = tmp_path / "made.txt"
    out.write_text("x\n")
    with pytest.raises(InvalidArgument, match="at least one input version, or the run_id"):
        client.data.derive([], out, "made")
    assert client.data.list() == []


@pytest.mark.parametrize("commit", [123, "", "main", "x" * 100, "A" * 40])
def test_a_commit_that_is_not_a_commit_id_is_refused(client, tmp_path, commit):
    out = tmp_path / "made.txt"
    out.write_text("x\n")
    run = client.create_run(name="generate")
    with pytest.raises(InvalidArgument, match="commit must be a git commit id"):
        client.data.derive([], out, "made", run_id=run.id, commit=commit)
    assert client.data.list() == []


def test_a_commit_without_a_run_and_an_empty_run_id_are_refused(client, tmp_path):
    out = tmp_path / "made.txt"
    out.write_text("x\n")
    client.data.add(out, "raw")
    with pytest.raises(InvalidArgument, match="give run_id too"):
        client.data.derive(["raw@1"], out, "made", commit="a" * 40)
    with pytest.raises(InvalidArgument, match="run_id must be a run id"):
        client.data.derive(["raw@1"], out, "made", run_id="")
    assert [d.name for d in client.data.list()] == ["raw"]


def test_capture_off_records_no_commit_and_reads_no_tree(client, tmp_path, monkeypatch):
    """CAIRN_CAPTURE_ENV=0 turns off what derive would learn from the working tree too."""
    from cairn import environment

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.setattr(environment, "capture_environment",
                        lambda *a, **k: pytest.fail("the environment was captured"))
    out = tmp_path / "made.txt"
    out.write_text("x\n")
    run = client.create_run(name="r")
    v = client.data.derive([], out, "made", run_id=run.id)
    assert v.commit is None and v.run_id == run.id
