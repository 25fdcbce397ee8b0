"""Long operations draw a progress bar on stderr when asked (the CLI asks when stderr is a
terminal), and print nothing there otherwise: downloads and verifies of artifacts, models
and data sets (#17)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli


@pytest.fixture
def world(tracking, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (tmp_path / "m" / "config.json").write_text('{"layers": 3}')
    with cairn.start_run() as run:
        cairn.log_artifacts(tmp_path / "m", "model")
    sklearn = pytest.importorskip("sklearn.linear_model")
    client = cairn.Client()
    mv = client.register_model("clf", sklearn.LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    return client, run.id, mv


def test_bars_when_asked_and_silence_otherwise(world, tmp_path, capsys):
    client, run_id, mv = world
    client.download_artifacts(run_id, "model", tmp_path / "a")
    client.verify_artifacts(run_id)
    client.download_model(mv.uri, tmp_path / "b")
    client.verify_model("clf")
    assert capsys.readouterr().err == ""

    client.download_artifacts(run_id, "model", tmp_path / "c", progress=True)
    err = capsys.readouterr().err
    assert "downloading 2 file(s)" in err and "1.0/1.0 MiB" in err
    assert (tmp_path / "c" / "model" / "weights.bin").stat().st_size == 1 << 20

    assert client.verify_artifacts(run_id, progress=True).ok
    err = capsys.readouterr().err
    assert "verifying objects" in err and "100%" in err

    client.download_model(mv.uri, tmp_path / "d", progress=True)
    assert f"fetching {mv.uri}" in capsys.readouterr().err
    assert [r.ok for r in client.verify_model("clf", progress=True)] == [True]
    assert "verifying objects" in capsys.readouterr().err


def test_the_cli_is_silent_when_stderr_is_no_terminal(world, tmp_path):
    client, run_id, mv = world
    store = str(cairn.get_tracking_uri())
    for args in (["artifacts", "get", run_id, "model", "-d", str(tmp_path / "x")],
                 ["artifacts", "verify", run_id], ["models", "get", mv.uri, str(tmp_path / "y")],
                 ["models", "verify", "clf"]):
        result = CliRunner().invoke(cli, ["--store", store, *args])
        assert result.exit_code == 0, result.output
        assert result.stderr == "", args


def test_reindex_and_sync_draw_bars_when_asked(world, tmp_path, capsys):
    from cairn.entities import RecordBatch
    from cairn.store import open_store
    from cairn.store.http import HttpStore

    store = open_store(str(cairn.get_tracking_uri()))
    result = store.reindex(progress=True)
    err = capsys.readouterr().err
    assert result["runs"] == 1 and "reindexing runs" in err and "1/1" in err
    assert store.reindex()["runs"] == 1 and capsys.readouterr().err == ""

    # A spool whose server is out of reach: the journal waits, and the bar counts it.
    offline = HttpStore("http://127.0.0.1:9", spool_dir=tmp_path / "spool", drain_timeout=0.1)
    try:
        offline.write(RecordBatch(run_id="r" * 32, writer_id="w1", seq=1, time=1,
                                  tags={"a": "b"}))
        assert offline.sync(progress=True) == {"writers_sent": 0, "writers_left": 1}
        err = capsys.readouterr().err
        assert "sending spooled journals" in err and "1/1" in err
    finally:
        offline.close()


def test_sizes_print_one_way_on_bars_and_in_results(world, tmp_path):
    """The bar's speed and the data commands' results print sizes with one function: binary
    units, thousands separated as rich prints the amounts beside the speed."""
    from cairn.progress import size_text

    sizes = [0, 999, 1023, 1024, 1536, 1024**2 - 1, 5 * 1024**3, 1024**4 * 1023, 1024**5]
    assert [size_text(n) for n in sizes] == [
        "0 B", "999 B", "1,023 B", "1.0 KiB", "1.5 KiB", "1,024.0 KiB", "5.0 GiB",
        "1,023.0 TiB", "1.0 PiB"]
    assert size_text(512.9) == "512 B"  # a speed: whole bytes
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 1023)
    out = CliRunner().invoke(cli, ["data", "add", str(tmp_path / "d"), "-n", "sizes"])
    assert out.exit_code == 0, out.output
    assert "1,023 B" in out.output
