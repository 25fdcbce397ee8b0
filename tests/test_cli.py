"""The `cairn` command over a real local store made with the fluent API."""

import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.store import close_store, open_store
from cairn.store.local import LocalStore
from cairn.store.sql.tables import HEAD_REVISION

# Final accuracy of the six "demo" runs, by (lr, seed): the numbers the compare test checks.
ACC = {("0.1", 0): 0.80, ("0.1", 1): 0.84, ("0.1", 2): 0.88,
       ("0.01", 0): 0.70, ("0.01", 1): 0.75, ("0.01", 2): 0.71}


@pytest.fixture
def store(tracking, tmp_path):
    """Seven finished runs: six in "demo" (lr x seed), one in "other" with artifacts."""
    cairn.set_experiment("demo")
    for (lr, seed), acc in ACC.items():
        with cairn.start_run(name=f"lr{lr}-s{seed}", params={"lr": lr, "seed": seed}):
            for step in range(3):
                cairn.log_metric("acc", acc - (2 - step) / 10, step=step)
            cairn.log_metric("loss", 1 - acc)
    cairn.set_experiment("other")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "model" / "config.json").write_text('{"layers": 3}')
    with cairn.start_run(name="long", params={"lr": "0.5", "seed": 0}):
        for step in range(3):  # a flush per step: several records in one journal file
            cairn.log_metric("acc", 0.9 + step / 100, step=step)
            cairn.flush()
        cairn.log_artifacts(tmp_path / "model", "model")
        cairn.log_text("trained for 3 steps", "notes.txt")
    return tracking


@pytest.fixture
def long_run(store):
    return cairn.Client(str(store)).search_runs("other")[0].id


def invoke(store, *args, code=0):
    """Run `cairn --store STORE ARGS...`, check the exit code and that nothing crashed."""
    result = CliRunner().invoke(cli, ["--store", str(store), *map(str, args)],
                                env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.output, result.stderr)
    assert "Traceback" not in result.output
    return result


def as_json(store, *args):
    return json.loads(invoke(store, *args, "--json").stdout)


def demo_ids_by_acc(store):
    client = cairn.Client(str(store))
    runs = client.search_runs("demo")
    return [r.id for r in sorted(runs, key=lambda r: -r.metrics["acc"])]


# -- the command itself -------------------------------------------------------------------
def test_help_in_a_real_process():
    exe = Path(sys.executable).with_name("cairn")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cairn.cli.main"]
    proc = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for group in ("experiments", "runs", "artifacts", "doctor", "reindex", "db"):
        assert group in proc.stdout


def _commands(group: click.Group, prefix: str = "cairn"):
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


def test_every_command_has_help_with_an_example():
    for path, cmd in _commands(cli):
        assert cmd.help and "Example" in cmd.help, f"{path} has no example in its help"
        result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


# -- experiments -------------------------------------------------------------------------------
def test_experiments_ls(store):
    exps = as_json(store, "experiments", "ls")
    assert [e["name"] for e in exps] == ["demo", "other"]
    assert all(e["id"] and e["created_at"] > 0 for e in exps)
    table = invoke(store, "experiments", "ls").stdout
    assert "demo" in table and exps[1]["id"] in table


def test_experiments_create(store):
    created = as_json(store, "experiments", "create", "fresh")
    assert created["name"] == "fresh"
    assert "fresh" in [e["name"] for e in as_json(store, "experiments", "ls")]
    err = invoke(store, "experiments", "create", "fresh", code=1).stderr
    assert err.startswith("Error: ") and "already exists" in err


# -- runs ls -----------------------------------------------------------------------------------
def test_runs_ls_filters_by_experiment(store):
    assert len(as_json(store, "runs", "ls")["runs"]) == 7
    demo = as_json(store, "runs", "ls", "-e", "demo")["runs"]
    assert len(demo) == 6 and {r["experiment"] for r in demo} == {"demo"}
    other = as_json(store, "runs", "ls", "--experiment", "other")["runs"]
    assert [r["name"] for r in other] == ["long"]
    both = as_json(store, "runs", "ls", "-e", "demo", "-e", "other")
    assert len(both["runs"]) == 7 and both["next_page_token"] is None


def test_runs_ls_filter_and_order(store):
    page = as_json(store, "runs", "ls", "-e", "demo", "--filter", "params.lr = '0.1'",
                   "--order-by", "metrics.acc DESC")
    assert [r["name"] for r in page["runs"]] == ["lr0.1-s2", "lr0.1-s1", "lr0.1-s0"]
    assert [r["metrics"]["acc"] for r in page["runs"]] == pytest.approx([0.88, 0.84, 0.80])
    assert page["runs"][0]["params"] == {"lr": "0.1", "seed": "2"}
    assert page["runs"][0]["status"] == "FINISHED"
    asc = as_json(store, "runs", "ls", "-f", "metrics.acc < 0.8", "-o", "metrics.acc")["runs"]
    assert [r["name"] for r in asc] == ["lr0.01-s0", "lr0.01-s2", "lr0.01-s1"]


def test_runs_ls_pages(store):
    expected = demo_ids_by_acc(store)
    seen, token, pages = [], None, 0
    while True:
        args = ["runs", "ls", "-e", "demo", "-o", "metrics.acc DESC", "--max-results", "4"]
        page = as_json(store, *args, *(["--page-token", token] if token else []))
        seen += [r["id"] for r in page["runs"]]
        token, pages = page["next_page_token"], pages + 1
        if token is None:
            break
    assert pages == 2 and seen == expected


def test_runs_ls_table(store):
    out = invoke(store, "runs", "ls", "-e", "demo", "-n", "2", "-o", "metrics.acc DESC",
                 "-c", "params.lr", "-c", "metrics.acc").stdout
    assert "lr0.1-s2" in out and "0.88" in out and "lr0.01-s0" not in out
    assert "2 run(s); next page: --page-token " in out


# -- runs show and compare ---------------------------------------------------------------------
def test_runs_show(store, long_run):
    shown = as_json(store, "runs", "show", long_run)
    assert shown["id"] == long_run and shown["name"] == "long" and shown["experiment"] == "other"
    assert shown["params"] == {"lr": "0.5", "seed": "0"}
    assert shown["metrics"]["acc"] == pytest.approx(0.92)
    assert shown["env"]["python"]["version"] and "packages" in shown["env"]
    # A unique prefix is enough, as `runs ls` prints shortened ids.
    assert as_json(store, "runs", "show", long_run[:10])["id"] == long_run
    table = invoke(store, "runs", "show", long_run).stdout
    assert "long" in table and "FINISHED" in table and "acc" in table
    # The environment, as its help says (it printed none without --json).
    env = shown["env"]
    assert "environment" in table and f"{env['python']['version']} " in table
    assert env["os"]["platform"] in table and env["hostname"] in table
    assert f"│ {len(env['packages'])}: " in table and "numpy " in table


def test_runs_tag_untag_and_note(store, long_run, monkeypatch):
    # On a finished run: tags and notes stay editable.
    assert invoke(store, "runs", "tag", long_run[:8], "reviewed", "yes").stdout == \
        f"run {long_run}: reviewed = 'yes'\n"
    assert as_json(store, "runs", "tag", long_run, "owner", "ana") == \
        {"run_id": long_run, "key": "owner", "value": "ana"}
    assert as_json(store, "runs", "untag", long_run, "owner") == \
        {"run_id": long_run, "key": "owner", "value": None}
    assert "has no tag 'owner'" in invoke(store, "runs", "untag", long_run, "owner", code=1).stderr
    invoke(store, "runs", "note", long_run, "diverged **after** epoch 3")
    result = CliRunner().invoke(cli, ["--store", str(store), "runs", "note", long_run, "-"],
                                input="from\nstdin\n")
    assert result.exit_code == 0, result.output
    tags = cairn.Client(str(store)).get_run(long_run).tags
    assert tags["reviewed"] == "yes" and "owner" not in tags
    assert tags["cairn.note"] == "from\nstdin\n"
    # Bad input: a clear error, nothing written.
    assert invoke(store, "runs", "tag", long_run, "", "x", code=1).stderr.startswith("Error: ")
    assert "does not exist" in invoke(store, "runs", "tag", "0" * 32, "k", "v", code=1).stderr
    assert cairn.Client(str(store)).get_run(long_run).tags == tags


def test_runs_compare_side_by_side(store, long_run):
    a, b = demo_ids_by_acc(store)[:2]
    out = as_json(store, "runs", "compare", a, b, long_run)
    assert [r["id"] for r in out["runs"]] == [a, b, long_run]
    assert out["differing_params"] == ["lr", "seed"]
    table = invoke(store, "runs", "compare", a[:12], b).stdout
    assert "param.seed" in table and "metric.acc" in table


def test_runs_compare_across_seeds(store):
    out = as_json(store, "runs", "compare", "-e", "demo", "--across", "seed")
    assert out["across"] == "seed"
    groups = {g["params"]["lr"]: g for g in out["groups"]}
    assert set(groups) == {"0.1", "0.01"}
    for lr, mean, std in (("0.1", 0.84, 0.04), ("0.01", 0.72, (0.0014 / 2) ** 0.5)):
        g = groups[lr]
        assert g["n"] == 3 and g["seed"] == ["0", "1", "2"]
        assert g["metrics"]["acc"]["mean"] == pytest.approx(mean)
        assert g["metrics"]["acc"]["std"] == pytest.approx(std)  # sample std (n - 1)
        assert g["metrics"]["acc"]["n"] == 3
        losses = [1 - ACC[(lr, s)] for s in range(3)]
        assert g["metrics"]["loss"]["mean"] == pytest.approx(statistics.fmean(losses))
    assert "mean ± std across seed" in invoke(store, "runs", "compare", "-e", "demo",
                                              "--across", "seed").stdout
    # The significance tests the UI shows, per metric and pair of groups (scipy's numbers).
    scipy_stats = pytest.importorskip("scipy.stats")
    [t] = [t for t in out["tests"] if t["metric"] == "acc"]
    a = [ACC[(out["groups"][t["a"]]["params"]["lr"], s)] for s in range(3)]
    b = [ACC[(out["groups"][t["b"]]["params"]["lr"], s)] for s in range(3)]
    assert (t["n_a"], t["n_b"]) == (3, 3)
    assert t["diff"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert t["welch"]["p"] == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert t["mann_whitney"]["p"] == pytest.approx(scipy_stats.mannwhitneyu(a, b).pvalue)
    assert {x["metric"] for x in out["tests"]} == {"acc", "loss"}
    text = invoke(store, "runs", "compare", "-e", "demo", "--across", "seed").stdout
    assert "Welch p" in text and "Mann-Whitney p" in text
    assert f"{t['welch']['p']:.3g}" in text


def test_runs_compare_across_seeds_leaves_out_reruns_by_cairn_reproduce(store):
    """A rerun repeats its original's seed: counted, it would be a fourth "seed" of the same
    result and shrink the std."""
    from cairn.lineage import REPRODUCES_TAG

    client = cairn.Client(str(store))
    original = next(r for r in client.search_runs("demo") if r.name == "lr0.1-s0")
    rerun = client.create_run(original.experiment_id, name="lr0.1-s0-reproduced",
                              tags={REPRODUCES_TAG: original.id})
    client.log_batch(rerun.id, params=dict(original.params))
    client.log_metric(rerun.id, "acc", original.metrics["acc"])
    client.set_terminated(rerun.id)
    out = as_json(store, "runs", "compare", "-e", "demo", "--across", "seed")
    assert {g["params"]["lr"]: g["n"] for g in out["groups"]} == {"0.1": 3, "0.01": 3}
    assert out["reruns_left_out"] == [rerun.id]
    text = invoke(store, "runs", "compare", "-e", "demo", "--across", "seed").stdout
    assert "left out 1 rerun(s) by `cairn reproduce`" in text
    # Asked for by themselves, reruns are compared with each other.
    alone = as_json(store, "runs", "compare", rerun.id, "--across", "seed")
    assert alone["groups"][0]["n"] == 1 and alone["reruns_left_out"] == []


# -- artifacts ---------------------------------------------------------------------------------
def test_artifacts_ls_get_verify(store, long_run, tmp_path):
    entries = as_json(store, "artifacts", "ls", long_run)
    assert [e["path"] for e in entries] == ["model/config.json", "model/weights.bin", "notes.txt"]
    assert entries[1]["size"] == 2048
    assert [e["path"] for e in as_json(store, "artifacts", "ls", long_run, "model/")] == [
        "model/config.json", "model/weights.bin"]
    out = tmp_path / "out"
    invoke(store, "artifacts", "get", long_run, "model", "-d", out)
    assert (out / "model" / "weights.bin").read_bytes() == bytes(range(256)) * 8
    assert not (out / "notes.txt").exists()
    # The run's three files; the whole store holds them and what runs captured of the code.
    assert as_json(store, "artifacts", "verify", long_run) == \
        {"checked": 3, "corrupt": [], "missing": []}
    ok = as_json(store, "artifacts", "verify")
    assert ok["checked"] >= 3 and ok["corrupt"] == [] and ok["missing"] == []

    # Flip one byte of the stored weights (objects are read-only: chmod first).
    digest = entries[1]["digest"]
    obj = store / "objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[-1] ^= 0xFF
    obj.write_bytes(bytes(data))
    bad = invoke(store, "artifacts", "verify", code=1)
    assert "1 corrupt" in bad.stdout and f"corrupt {digest}" in bad.stdout
    assert invoke(store, "artifacts", "verify", long_run, "--json", code=1).stdout.count(digest) == 1
    err = invoke(store, "artifacts", "get", long_run, "model", "-d", tmp_path / "again", code=1).stderr
    assert err.startswith("Error: ") and "corrupt" in err
    assert not (tmp_path / "again" / "model" / "weights.bin").exists()


# -- doctor, reindex, db upgrade -------------------------------------------------------------
def test_doctor_clean_then_damaged_journal(store, long_run):
    clean = invoke(store, "doctor")
    assert "no damaged records" in clean.stdout
    assert as_json(store, "doctor")["damaged_records"] == []

    journal, = (store / "runs" / long_run / "journal").glob("*.cjl")
    data = bytearray(journal.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4] = bytes(b ^ 0xFF for b in data[mid:mid + 4])
    journal.write_bytes(bytes(data))
    bad = invoke(store, "doctor", code=1)
    assert "1 damaged journal record(s)" in bad.stdout and str(journal) in bad.stdout
    report = json.loads(invoke(store, "doctor", "--json", code=1).stdout)
    damage, = report["damaged_records"]
    assert damage["path"] == str(journal)
    assert damage["offset"] <= mid < damage["offset"] + damage["length"]
    assert damage["reason"]


def snapshot(store):
    """Everything derived from the journals that a user sees, through the CLI and the client."""
    client = cairn.Client(str(store))
    runs = sorted(as_json(store, "runs", "ls")["runs"], key=lambda r: r["id"])
    histories = {(r["id"], key): [(m.step, m.value) for m in client.get_metric_history(r["id"], key)]
                 for r in runs for key in r["metrics"]}
    shown = [as_json(store, "runs", "show", r["id"]) for r in runs]
    artifacts = {r["id"]: as_json(store, "artifacts", "ls", r["id"]) for r in runs}
    return runs, histories, shown, artifacts, as_json(store, "experiments", "ls")


def test_reindex_after_index_rows_are_lost(store):
    before = snapshot(store)
    with contextlib.closing(sqlite3.connect(store / "index.db")) as db:
        for table in ("runs", "params", "tags", "latest_metrics", "metric_segments", "artifacts"):
            db.execute(f"DELETE FROM {table}")
        db.commit()
    assert as_json(store, "runs", "ls")["runs"] == []
    out = invoke(store, "reindex").stdout
    assert "reindexed 7 run(s)" in out and "0 damaged" in out
    assert snapshot(store) == before
    again = as_json(store, "reindex")
    assert again["runs"] == 7 and again["records"] >= 7 and again["damaged"] == 0


def test_reindex_after_index_file_is_deleted(store):
    before = snapshot(store)
    open_store(str(store)).close()
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(store / name)
    invoke(store, "reindex")
    assert snapshot(store) == before


def test_db_upgrade(store, tmp_path):
    fresh = tmp_path / "fresh"
    assert f"database at revision {HEAD_REVISION}" in invoke(fresh, "db", "upgrade").stdout
    assert as_json(fresh, "runs", "ls")["runs"] == []
    before = as_json(store, "runs", "ls")
    assert HEAD_REVISION in invoke(store, "db", "upgrade").stdout  # at head: a no-op
    assert as_json(store, "runs", "ls") == before


def test_db_upgrade_migrates_an_old_index(tmp_path):
    from cairn.store.sql.migrate import upgrade

    if HEAD_REVISION == "0001_initial":
        pytest.skip("only one revision exists")
    old = tmp_path / "old"
    old.mkdir()
    upgrade(f"sqlite:///{old / 'index.db'}", "0001_initial")
    stale = LocalStore(old)
    with pytest.raises(cairn.SchemaOutOfDate, match="cairn db upgrade"):
        stale.open()
    stale.close()
    assert "0001_initial" in invoke(old, "runs", "ls", code=1).stderr
    try:
        assert HEAD_REVISION in invoke(old, "db", "upgrade").stdout
        assert as_json(old, "runs", "ls")["runs"] == []
    finally:
        close_store(str(old))


def test_out_of_date_schema_is_refused_with_advice(store):
    open_store(str(store)).close()
    with contextlib.closing(sqlite3.connect(store / "index.db")) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_future'")
        db.commit()
    err = invoke(store, "runs", "ls", code=1).stderr
    assert err.startswith("Error: ") and "cairn db upgrade" in err and "9999_future" in err
    err = invoke(store, "db", "upgrade", code=1).stderr
    assert err.startswith("Error: cannot upgrade") and "9999_future" in err


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["runs", "show", "0" * 32], ["runs", "show", "nope"],
                                  ["runs", "compare", "0" * 32], ["artifacts", "ls", "0" * 32],
                                  ["runs", "show", "fffff"]])
def test_unknown_run_is_one_clean_line(store, args):
    result = invoke(store, *args, code=1)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "does not exist" in result.stderr or "no run id starts with" in result.stderr


def test_id_prefixes(store):
    from cairn.entities import RecordBatch

    raw = open_store(str(store))
    exp = raw.get_experiment_by_name("demo")
    for i, run_id in enumerate(["ab12", "ab12ff", "ab3"]):
        raw.write(RecordBatch(run_id=run_id, writer_id=f"w{i}", seq=1, time=1, create={
            "experiment_id": exp.id, "name": f"short-{run_id}", "start_time": 1}))
    assert as_json(store, "runs", "show", "ab3")["name"] == "short-ab3"
    assert as_json(store, "runs", "show", "ab12")["name"] == "short-ab12"  # exact beats prefix
    assert as_json(store, "runs", "show", "ab12f")["name"] == "short-ab12ff"
    assert "ambiguous" in invoke(store, "runs", "show", "ab", code=1).stderr
    assert "does not exist" in invoke(store, "runs", "show", "ab'%", code=1).stderr


def test_bad_filter_is_a_message(store):
    result = invoke(store, "runs", "ls", "-f", "metrics.acc >", code=1)
    assert result.stderr.startswith("Error: Invalid filter") and "metrics.acc >" in result.stderr
    result = invoke(store, "runs", "ls", "-o", "metrics.acc SIDEWAYS", code=1)
    assert result.stderr.startswith("Error: ")
    result = invoke(store, "runs", "ls", "--page-token", "garbage", code=1)
    assert result.stderr.startswith("Error: ")


def test_local_only_commands_refuse_a_memory_store():
    try:
        for args in (["doctor"], ["reindex"], ["db", "upgrade"]):
            assert "local store" in invoke("memory://cli-test", *args, code=1).stderr
    finally:
        close_store("memory://cli-test")


# -- what tripped a new user (#17) -----------------------------------------------------------
def test_store_option_works_after_the_command_too(store):
    before = as_json(store, "runs", "ls", "-e", "demo")
    result = CliRunner().invoke(cli, ["runs", "ls", "-e", "demo", "--json", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == before
    # --uri is its other name; the one after the command wins over the one before it.
    result = CliRunner().invoke(cli, ["--store", "/nowhere/at/all", "experiments", "ls",
                                      "--uri", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert {e["name"] for e in json.loads(result.stdout)} >= {"demo", "other"}


def test_every_command_takes_store_after_its_name():
    from cairn.cli.main import _commands

    missing = [path for path, cmd in _commands(cli)
               if not any("--store" in p.opts for p in cmd.params)]
    assert missing == []


@pytest.mark.parametrize("args", [
    ["runs", "ls"], ["runs", "show", "0" * 32], ["runs", "compare", "0" * 32],
    ["experiments", "ls"], ["artifacts", "ls", "0" * 32], ["doctor"], ["models", "ls"],
    ["models", "show", "clf"], ["audit", "verify"], ["data", "ls"], ["keys", "ls"],
    ["lineage", "run:" + "0" * 32],
    # lifecycle commands change a store, but only one that is there
    ["gc", "--dry-run"], ["trash", "empty", "--yes"], ["trash", "ls"], ["admin", "erase-user", "bob",
                                                                           "--yes"],
    ["export", "out"], ["backup", "bk"],
    # changes to what must already be there: a typo must not leave an empty store behind
    ["runs", "delete", "0" * 32], ["runs", "restore", "0" * 32],
    ["runs", "rename", "0" * 32, "x"], ["runs", "tag", "0" * 32, "k", "v"],
    ["experiments", "delete", "demo"], ["experiments", "restore", "demo"],
    ["models", "delete", "clf", "1.0.0"], ["models", "restore", "clf", "1.0.0"],
    ["models", "alias", "clf", "champion", "1.0.0"],
    ["data", "delete", "ds@1"], ["data", "restore", "ds@1"]])
def test_a_read_of_a_store_that_is_not_there_is_an_error_and_creates_nothing(tmp_path, args,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a relative DEST ("out", "bk") would go
    missing = tmp_path / "mistyped" / "store"
    for argv in (["--store", str(missing), *args], [*args, "--store", str(missing)]):
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 1, (argv, result.output)
        assert result.stderr == f"Error: no Cairn store at {missing}: check --store (or " \
            "CAIRN_TRACKING_URI); a store is made by the first run logged to it\n"
        assert not (tmp_path / "mistyped").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_write_still_makes_a_new_store(tmp_path):
    new = tmp_path / "new-store"
    result = CliRunner().invoke(cli, ["experiments", "create", "first", "--store", str(new)])
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in as_json(new, "experiments", "ls")] == ["first"]


def test_runs_show_takes_an_environment_of_any_shape():
    """A run's env is JSON any client may have sent: odd shapes print, never a traceback."""
    from cairn.cli.runs import _environment_rows

    rows = dict(_environment_rows({"python": "3.11", "cpu": "x86", "os": ["linux"],
                                   "gpus": ["A100", {"index": 0, "name": "H100"}],
                                   "argv": "train.py --lr 1", "packages": ["numpy"]}))
    assert rows == {"gpu 0": "H100, ? MB", "argv": "train.py --lr 1"}
    assert _environment_rows({}) == []


def test_every_command_is_in_the_lazy_table_and_one_command_imports_only_its_module():
    """`cairn runs ls` imports the runs commands, not the server's, the UI's or the
    pipeline's: each command's module is imported when it is used."""
    import subprocess
    import sys

    from cairn.cli.main import LAZY

    # Listing imports them all, and lists them in the table's order whatever order earlier
    # lookups imported them in (docs/cli.md is generated from this list).
    assert list(cli.commands) == list(LAZY)
    assert [name for name, _ in cli.commands.items()] == list(LAZY)
    probe = ("import sys; from cairn.cli.main import cli; cli.commands.get('runs'); "
             "print(sorted(m for m in sys.modules if m.startswith('cairn.cli.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert eval(out) == ["cairn.cli.format", "cairn.cli.main", "cairn.cli.runs"]  # format: the runs tables

