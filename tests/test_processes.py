"""Real processes: many writers at once, signals and crashes."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import cairn
from cairn import RunStatus

from procs import reap_processes, spawn, wait_for_line  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow




def test_sixteen_processes_log_to_one_store_without_losing_anything(store_dir):
    n_proc, n_points = 16, 3000
    code = """
        import sys, cairn
        i = int(sys.argv[1])
        cairn.set_experiment("parallel")
        with cairn.start_run(name=f"proc-{i}", params={"i": i}):
            for step in range(%d):
                cairn.log_metric("loss", i + step / 1e4, step=step)
                if step %% 500 == 0:
                    cairn.set_tag("progress", str(step))
        print("done")
    """ % n_points
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(i)],
                              env={**os.environ, "CAIRN_TRACKING_URI": str(store_dir),
                                   "CAIRN_FLUSH_INTERVAL": "0.05"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n_proc)]
    # Every process is waited for (and its pipes closed) before any assertion: one that
    # failed must not leave fifteen others running into the next test.
    errs = [p.communicate(timeout=120)[1] for p in procs]
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    client = cairn.Client(str(store_dir))
    runs = client.search_runs("parallel", max_results=100)
    assert len(runs) == n_proc
    for r in runs:
        assert r.status is RunStatus.FINISHED
        i = int(r.params["i"])
        h = client.get_metric_history(r.id, "loss")
        assert len(h) == n_points
        assert h.steps.tolist() == list(range(n_points))
        assert h.values[-1] == pytest.approx(i + (n_points - 1) / 1e4)


LONG_RUN = """
    import time, cairn
    with cairn.start_run(name="victim") as run:
        print("run", run.id, flush=True)
        i = 0
        while True:
            cairn.log_metric("m", i, step=i)
            i += 1
            if i == 200:
                cairn.flush()
                print("flushed", i, flush=True)
            time.sleep(0.001)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_flush_then_mark_killed(store_dir, sig):
    p = spawn(store_dir, LONG_RUN)
    run_id = wait_for_line(p, "run ")
    wait_for_line(p, "flushed ")
    time.sleep(0.5)
    p.send_signal(sig)
    p.wait(timeout=30)
    run = cairn.Client(str(store_dir)).get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.end_time is not None
    n = len(cairn.Client(str(store_dir)).get_metric_history(run_id, "m"))
    assert n >= 200  # everything logged before the signal was flushed, not only the explicit flush


def test_sigkill_loses_at_most_the_last_flush_interval(store_dir):
    p = spawn(store_dir, LONG_RUN, env={"CAIRN_HEARTBEAT_INTERVAL": "0.2"})
    run_id = wait_for_line(p, "run ")
    wait_for_line(p, "flushed ")
    time.sleep(1.5)  # several background flushes happen
    p.kill()
    p.wait(timeout=10)
    client = cairn.Client(str(store_dir))
    n = len(client.get_metric_history(run_id, "m"))
    assert n > 200  # the background flushes after the explicit one are durable
    os.environ["CAIRN_HEARTBEAT_TIMEOUT"] = "1"
    try:
        time.sleep(1.2)
        run = client.get_run(run_id)
        assert run.status is RunStatus.KILLED  # presumed dead once the heartbeat is stale
        assert len(client.get_metric_history(run_id, "m")) == n
    finally:
        del os.environ["CAIRN_HEARTBEAT_TIMEOUT"]


def test_uncaught_exception_in_script_marks_failed(store_dir):
    p = spawn(store_dir, """
        import cairn
        run = cairn.start_run(name="no-with")
        print("run", run.id, flush=True)
        cairn.log_metric("m", 1.0)
        raise SystemExit(1) if False else ValueError("bad data")
    """)
    run_id = wait_for_line(p, "run ")
    p.wait(timeout=30)
    run = cairn.Client(str(store_dir)).get_run(run_id)
    assert run.status is RunStatus.FAILED and run.metrics == {"m": 1.0}


def test_script_without_with_block_finishes_at_exit(store_dir):
    p = spawn(store_dir, """
        import cairn
        run = cairn.start_run()
        print("run", run.id, flush=True)
        cairn.log_metric("m", 2.0)
    """)
    run_id = wait_for_line(p, "run ")
    assert p.wait(timeout=30) == 0
    run = cairn.Client(str(store_dir)).get_run(run_id)
    assert run.status is RunStatus.FINISHED and run.metrics == {"m": 2.0}
