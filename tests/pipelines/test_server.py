"""A pipeline against a Cairn server: runs, versions and the run cache live there, so a
second clone with its own working copy gets hits from what the first one ran."""

from __future__ import annotations

import pytest

import cairn

from .conftest import Project, git


@pytest.mark.slow
def test_a_pipeline_against_a_server_shares_its_run_cache(project, cairn_server, tmp_path):
    project.client = cairn.Client(cairn_server)
    assert set(project.run().values()) == {"ran"}
    assert project.last.ok
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project.root), str(clone))
    other = Project(clone, tmp_path / "unused")
    other.client = cairn.Client(cairn_server)
    assert set(other.run().values()) == {"cached"}
    assert other.executed == []
    assert (clone / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"
