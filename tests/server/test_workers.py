"""`cairn server --workers 4` answers as one server (issue #15).

Four worker processes share one store: a local store directory, or PostgreSQL with an
object directory.  Each request here goes through a connection whose worker process is
looked up in the kernel's socket table (psutil: which worker holds the accepted socket),
so every check knows the worker it ran on, and the tests assert that all four served:

* same answers: what one worker wrote, every other reads at once; searches and counts
  are the same over 50+ fresh connections;
* same authorization: a role granted or removed, a token revoked, a user disabled through
  one worker holds on every worker within the 5 s docs/server.md promises, and an
  expired token is refused everywhere from the moment it expires;
* exactly-once delivery: 8 client processes log thousands of points each, one is killed
  with SIGKILL and its spool is sent again three times at once (acknowledgements reset),
  and one writer's batches are each sent through two workers at the same moment.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import subprocess
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from pg_fixtures import create_schema
from procs import reap_processes, spawn  # noqa: F401  (a fixture)
from serving import ProcessServer

pytestmark = [pytest.mark.slow]

WORKERS = 4
TOKEN = "cairn_workers-test-bootstrap-token-0123456789"
API = "/api/v1"
CACHE_S = 5.0  # docs/server.md: revoking a token or disabling a user, on every replica


def start_server(*args: str, log: Path, env: dict | None = None,
                 workers: int = WORKERS) -> ProcessServer:
    """``cairn server ARGS --workers N --auth``, its admin token TOKEN.

    The one place that says how the bootstrap token reaches the server: the
    CAIRN_BOOTSTRAP_TOKEN environment variable (never argv, where ps shows it).
    """
    srv = ProcessServer(*args, "--workers", str(workers), "--auth", log=log,
                        env={**(env or {}), "CAIRN_BOOTSTRAP_TOKEN": TOKEN})
    return srv.start()


def _tcp(proc: psutil.Process) -> list:
    """A process's TCP connections (``connections`` before psutil 6)."""
    get = getattr(proc, "net_connections", None) or proc.connections
    return get("tcp")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


_OPEN: list["Conn"] = []


@pytest.fixture(autouse=True)
def _close_connections():
    """Close every connection a test opened, also when it failed half-way."""
    yield
    while _OPEN:
        _OPEN.pop().close()


class Conn:
    """One keep-alive connection to the server, labelled with the worker that accepted it."""

    def __init__(self, cluster: "Cluster", token: str = TOKEN) -> None:
        self.cluster = cluster
        # httpx drops a connection idle for 5 s by default, and its next request lands on
        # any worker: on a loaded machine that moved a "connection to worker N" elsewhere.
        # The server keeps idle connections for 30 s; this client, a little less.
        self.http = httpx.Client(base_url=cluster.url, headers=bearer(token), timeout=60,
                                 limits=httpx.Limits(keepalive_expiry=25))
        self.port: int | None = None
        self.pid: int | None = None
        _OPEN.append(self)

    def request(self, method: str, path: str, token: str | None = None,
                **kw) -> httpx.Response:
        r = self.http.request(method, path, headers=bearer(token) if token else None, **kw)
        port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
        if port != self.port:  # new, or the server closed an idle one: whose is it now?
            self.port = port
            self.pid = self.cluster.owners().get(port) if self.pid is not None else None
        return r

    def json(self, method: str, path: str, expect: int = 200, **kw):
        r = self.request(method, path, **kw)
        assert r.status_code == expect, (self.pid, method, path, r.status_code, r.text)
        return r.json()

    def close(self) -> None:
        self.http.close()


class Cluster:
    """A running ``cairn server --workers 4`` and the pids of its worker processes."""

    def __init__(self, kind: str, srv: ProcessServer, store: Path | None) -> None:
        self.kind = kind
        self.srv = srv
        self.url = srv.url
        self.store = store  # the local store directory (None on PostgreSQL)
        self.pids: set[int] = set()

    def owners(self) -> dict[int, int]:
        """Client port -> pid of the worker process holding the accepted connection."""
        assert self.srv.proc is not None
        table: dict[int, int] = {}
        for child in psutil.Process(self.srv.proc.pid).children():
            try:
                conns = _tcp(child)
            except psutil.Error:
                continue
            for c in conns:
                if c.raddr and c.laddr.port == self.srv.port and c.status == psutil.CONN_ESTABLISHED:
                    table[c.raddr.port] = child.pid
        return table

    def connect(self, n: int, token: str = TOKEN) -> list[Conn]:
        """``n`` fresh connections, each with the pid of the worker it landed on."""
        conns = [Conn(self, token) for _ in range(n)]
        for c in conns:
            c.request("GET", "/health")
        table = self.owners()
        for c in conns:
            c.pid = table[c.port]
        return conns

    def one_per_worker(self, token: str = TOKEN, tries: int = 400) -> dict[int, Conn]:
        """A connection to each worker process (fresh connections until all four answered)."""
        found: dict[int, Conn] = {}
        made = 0
        while len(found) < WORKERS:
            assert made < tries, f"{made} connections reached only workers {sorted(found)}"
            for c in self.connect(8, token):
                made += 1
                if c.pid in found:
                    c.close()
                else:
                    found[c.pid] = c
        return found


@pytest.fixture(scope="module",
                params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request, tmp_path_factory):
    """``cairn server --workers 4 --auth`` over a local store, then over PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"workers-{request.param}")
    if request.param == "local":
        store = tmp / "store"
        srv = start_server(log=tmp / "server.log", env={"CAIRN_TRACKING_URI": str(store)})
    else:
        store = None
        db = create_schema(request.getfixturevalue("pg_database"))
        srv = start_server("--db", db, "--objects", str(tmp / "objects"), log=tmp / "server.log")
    try:
        cl = Cluster(request.param, srv, store)
        conns = cl.one_per_worker()  # every worker started and accepts connections
        cl.pids = set(conns)
        for c in conns.values():
            c.close()
        workers = [p for p in psutil.Process(srv.proc.pid).children()
                   if "spawn_main" in " ".join(p.cmdline())]
        assert cl.pids == {p.pid for p in workers} and len(cl.pids) == WORKERS
        yield cl
    finally:
        srv.stop()


def _experiment(conn: Conn, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return conn.json("POST", f"{API}/experiments", 201, json={"name": name})["id"]


# -- same answers ----------------------------------------------------------------------
def test_a_write_through_one_worker_is_read_by_every_other_at_once(cluster):
    conns = cluster.one_per_worker()
    exp = _experiment(next(iter(conns.values())), "ryw")
    for pid, w in conns.items():
        run = w.json("POST", f"{API}/runs", 201,
                     json={"experiment_id": exp, "params": {"by": str(pid)}})["id"]
        w.json("POST", f"{API}/runs/{run}/log", json={
            "metrics": [{"key": "m", "value": s / 2, "step": s} for s in range(25)],
            "tags": {"t": "1"}})
        w.request("PUT", f"{API}/runs/{run}/tags/k", content=b"v").raise_for_status()
        for other in conns.values():  # the next request, on any worker, sees all of it
            got = other.json("GET", f"{API}/runs/{run}")
            assert got["params"] == {"by": str(pid)}, (other.pid, got)
            assert got["tags"]["t"] == "1" and got["tags"]["k"] == "v", (other.pid, got)
            assert got["metric_summaries"]["m"]["count"] == 25, (other.pid, got)
            h = other.json("GET", f"{API}/runs/{run}/metrics/history", params={"key": "m"})
            assert h["steps"] == list(range(25)), (other.pid, h["count"])
            found = other.json("POST", f"{API}/runs/search", json={
                "experiment_ids": [exp], "filter": f"params.by = '{pid}'"})["runs"]
            assert [r["id"] for r in found] == [run], (other.pid, found)
        w.json("POST", f"{API}/runs/{run}/end", json={"status": "FINISHED"})
        for other in conns.values():
            assert other.json("GET", f"{API}/runs/{run}")["status"] == "FINISHED", other.pid
    # An experiment made through one worker is found by name through the others.
    for pid, w in conns.items():
        name = f"made-by-{pid}-{uuid.uuid4().hex[:6]}"
        made = w.json("POST", f"{API}/experiments", 201, json={"name": name})
        for other in conns.values():
            got = other.json("GET", f"{API}/experiments/by-name", params={"name": name})
            assert got["id"] == made["id"], other.pid
    assert {c.pid for c in conns.values()} == cluster.pids
    for c in conns.values():
        c.close()


RUNS = 16
QUERIES = [
    {"filter": "", "order_by": ["params.i"]},
    {"filter": "metrics.m > 3 and params.i != '05'", "order_by": ["metrics.m DESC", "params.i"]},
    {"filter": "attributes.status = 'FINISHED'", "order_by": ["params.i DESC"]},
    {"filter": "tags.group = 'b'", "order_by": ["params.i"], "max_results": 5},
]


def test_fifty_fresh_connections_get_the_same_search_answers(cluster):
    setup = cluster.one_per_worker()
    ws = list(setup.values())
    exp = _experiment(ws[0], "search")
    for i in range(RUNS):  # made round-robin through the four workers
        w = ws[i % WORKERS]
        run = w.json("POST", f"{API}/runs", 201, json={
            "experiment_id": exp, "params": {"i": f"{i:02d}"},
            "tags": {"group": "ab"[i % 2]}})["id"]
        w.json("POST", f"{API}/runs/{run}/log", json={
            "metrics": [{"key": "m", "value": float(i % 7), "step": s} for s in range(3)]})
        if i % 3 == 0:
            w.json("POST", f"{API}/runs/{run}/end", json={"status": "FINISHED"})
    for c in ws:
        c.close()

    def answers(c: Conn) -> list:
        out = []
        for q in QUERIES:
            page = c.json("POST", f"{API}/runs/search", json={"experiment_ids": [exp], **q})
            out.append([(r["params"]["i"], r["status"], r["metrics"].get("m"))
                        for r in page["runs"]])
        exps = c.json("GET", f"{API}/experiments")["experiments"]
        out.append(sorted(e["name"] for e in exps))
        return out

    expected = None
    seen: Counter[int] = Counter()
    made = 0
    while made < 50 or set(seen) != cluster.pids:  # 50, and more until all four answered
        assert made < 250, f"{made} connections reached only workers {dict(seen)}"
        for c in cluster.connect(10):
            made += 1
            got = answers(c)
            seen[c.pid] += 1
            c.close()
            if expected is None:
                expected = got
            assert got == expected, (c.pid, got, expected)
    # The answers are the right ones, not only the same ones.
    assert [i for i, _s, _m in expected[0]] == [f"{i:02d}" for i in range(RUNS)]
    assert [i for i, _s, _m in expected[1]] == sorted(
        (f"{i:02d}" for i in range(RUNS) if i % 7 > 3 and i != 5),
        key=lambda s: (-(int(s) % 7), s))
    assert [i for i, _s, _m in expected[2]] == [f"{i:02d}" for i in range(15, -1, -3)]
    assert [i for i, _s, _m in expected[3]] == ["01", "03", "05", "07", "09"]


# -- same authorization -------------------------------------------------------------------
def test_role_and_token_changes_through_one_worker_hold_on_all_within_the_cache_time(cluster):
    """docs/server.md: revoking a token or disabling a user takes effect on every replica
    within 5 seconds (a role granted or removed too: identities are cached with their
    roles); an expired token is refused from the moment it expires."""
    conns = cluster.one_per_worker()
    ws = list(conns.values())
    admin = ws[0]
    exp = _experiment(admin, "auth")
    run = admin.json("POST", f"{API}/runs", 201, json={"experiment_id": exp})["id"]
    tag = uuid.uuid4().hex[:6]
    users = {k: f"{k}-{tag}" for k in ("grant", "revoke", "disable", "unbind", "expire")}
    expires = int(time.time() * 1000) + 4000  # while the others wait for the cache time
    secrets, token_ids = {}, {}
    for k, name in users.items():
        admin.json("POST", f"{API}/users", 201, json={"name": name})
        made = admin.json("POST", f"{API}/users/{name}/tokens", 201, json={
            "name": "t", **({"expires_at": expires} if k == "expire" else {})})
        secrets[k], token_ids[k] = made["token"], made["id"]
        if k != "grant":
            admin.json("PUT", f"{API}/roles", json={"user": name, "resource_type": "experiment",
                                                    "resource_id": exp, "role": "viewer"})
    before = {"grant": 403, "revoke": 200, "disable": 200, "unbind": 200, "expire": 200}
    after = {"grant": 200, "revoke": 401, "disable": 401, "unbind": 403, "expire": 401}

    def answers(c: Conn) -> dict[str, int]:
        out = {}
        for k in users:
            sent = time.time() * 1000
            out[k] = c.request("GET", f"{API}/runs/{run}", token=secrets[k]).status_code
            if k == "expire":  # no cache time: good until it expires, refused after
                if sent > expires:
                    assert out[k] == 401, (c.pid, "accepted an expired token")
                elif time.time() * 1000 < expires:
                    assert out[k] == 200, (c.pid, out[k])
                out.pop(k)
        return out

    for c in ws:  # every worker now holds each identity, with its old rights, in its cache
        assert answers(c) == {k: v for k, v in before.items() if k != "expire"}, c.pid
    changer = ws[1]
    changer.json("PUT", f"{API}/roles", json={"user": users["grant"], "resource_type": "experiment",
                                              "resource_id": exp, "role": "viewer"})
    changer.json("DELETE", f"{API}/tokens/{token_ids['revoke']}")
    changer.json("POST", f"{API}/users/{users['disable']}/disable")
    changer.json("POST", f"{API}/roles/revoke", json={
        "user": users["unbind"], "resource_type": "experiment", "resource_id": exp})
    deadline = time.monotonic() + CACHE_S  # each change committed before its answer came
    changed = {k: v for k, v in after.items() if k != "expire"}
    assert answers(changer) == changed  # the worker that made the changes forgot its cache
    old_seen: dict[tuple[int, str], float] = {}
    new_seen: set[tuple[int, str]] = set()
    while time.monotonic() < deadline - 0.3:  # meanwhile: old or new, and new stays new
        for c in ws:
            for k, code in answers(c).items():
                assert code in (before[k], after[k]), (c.pid, k, code)
                if code == after[k]:
                    new_seen.add((c.pid, k))
                else:
                    assert (c.pid, k) not in new_seen, f"worker {c.pid} went back for {k}"
                    old_seen[(c.pid, k)] = CACHE_S - (deadline - time.monotonic())
        time.sleep(0.3)
    time.sleep(max(0.0, deadline - time.monotonic(), expires / 1000 - time.time() + 0.05))
    for _ in range(2):  # the documented bound has passed: every worker, every change
        for c in ws:
            assert answers(c) == changed, (c.pid, answers(c))
    assert {c.pid for c in ws} == cluster.pids
    # Not asserted (the cache may or may not still hold an entry): how long workers other
    # than the changer served the old answer, shown with -rA / on failure.
    print(f"{cluster.kind}: old answers after the change, seconds: "
          f"{ {f'{pid}/{k}': round(s, 2) for (pid, k), s in old_seen.items()} }")
    for c in ws:
        c.close()


# -- exactly-once delivery ------------------------------------------------------------------
STEPS = 1000  # two metrics: 2000 points a client
CLIENT = textwrap.dedent("""
    import sys, time, cairn
    steps, pause, victim = int(sys.argv[2]), float(sys.argv[4]), sys.argv[5] == "victim"
    cairn.set_experiment(sys.argv[3])
    with cairn.start_run(name=sys.argv[1]) as run:
        print("run", run.id, flush=True)
        for step in range(steps):
            cairn.log_metric("a", step * 0.5, step=step)
            cairn.log_metric("b", -step, step=step)
            if step % 25 == 24:
                time.sleep(pause if step > steps // 2 else 0.01)
            if step == steps // 2:
                cairn.flush()
                print("half", step + 1, flush=True)
                if victim:
                    sys.stdin.readline()  # until the test is ready to kill it
""")


def _client(cluster: Cluster, name: str, exp: str, token: str, spool: Path,
            victim: bool = False) -> subprocess.Popen:
    """A training process logging STEPS steps of metrics a and b.  A victim stops after the
    first half (flushed) until a line on its stdin, then logs slowly (about 2 s)."""
    env = {"CAIRN_TRACKING_TOKEN": token, "CAIRN_SPOOL_DIR": str(spool),
           "CAIRN_FLUSH_INTERVAL": "0.05", "CAIRN_CAPTURE_ENV": "0",
           "CAIRN_SPOOL_DRAIN_TIMEOUT": "60"}
    return spawn(cluster.url, CLIENT, name, STEPS, exp, 0.1 if victim else 0.01,
                 "victim" if victim else "-", env=env, stdin=victim)


def _line(p: subprocess.Popen, prefix: str) -> str:
    line = p.stdout.readline()
    assert line.startswith(prefix), (line, p.stderr.read() if p.poll() is not None else "")
    return line[len(prefix):].strip()


def _client_workers(cluster: Cluster, procs: list[subprocess.Popen]) -> set[int]:
    """The worker processes that hold the clients' connections now."""
    owners = cluster.owners()
    held = set()
    for p in procs:
        try:
            for c in _tcp(psutil.Process(p.pid)):
                if c.raddr and c.raddr.port == cluster.srv.port and c.laddr.port in owners:
                    held.add(owners[c.laddr.port])
        except psutil.Error:
            continue
    return held


def _history(conn: Conn, run: str, key: str) -> dict:
    return conn.json("GET", f"{API}/runs/{run}/metrics/history", params={"key": key})


def test_eight_clients_and_resent_spools_deliver_every_point_once(cluster, tmp_path):
    admin = cluster.connect(1)[0]
    trainer = f"trainer-{uuid.uuid4().hex[:6]}"
    admin.json("POST", f"{API}/users", 201, json={"name": trainer})
    admin.json("PUT", f"{API}/roles", json={"user": trainer, "resource_type": "global",
                                            "role": "editor"})
    token = admin.json("POST", f"{API}/users/{trainer}/tokens", 201, json={})["token"]
    exp = f"exactly-once-{uuid.uuid4().hex[:6]}"
    admin.close()
    spools = [tmp_path / f"spool-{i}" for i in range(8)]
    # c0, the victim, dies in the middle of its (slow) second half.
    procs = [_client(cluster, f"c{i}", exp, token, spools[i], victim=i == 0) for i in range(8)]
    runs = [_line(p, "run ") for p in procs]
    serving = _client_workers(cluster, procs)
    victim = procs[0]
    half = int(_line(victim, "half "))
    victim.stdin.write("go\n")
    victim.stdin.flush()
    time.sleep(0.3)
    assert victim.poll() is None, victim.communicate()
    victim.kill()  # SIGKILL mid-run: whatever its spool holds unacknowledged is sent below
    victim.communicate(timeout=10)
    for p in procs[1:]:
        serving |= _client_workers(cluster, [p]) if p.poll() is None else set()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    # The victim's spool, sent three times at once: as it is, and twice more from copies
    # whose acknowledgements are gone (a client killed after the server applied a batch
    # but before it wrote the ack sends it again): every batch reaches the server 2-3
    # times through several connections.
    journals = list((spools[0]).rglob("*.cjl"))
    assert journals, "the killed client left no spool"
    spooled_steps = set()
    from cairn.store import journal as jlib

    for j in journals:
        for e in jlib.read(j):
            assert isinstance(e, jlib.Entry), e
            for key, (steps, _ts, _vals) in e.batch.metrics.items():
                spooled_steps.update((key, int(s)) for s in steps)
    copies = []
    for n in (1, 2):
        copy = tmp_path / f"spool-0-copy{n}"
        shutil.copytree(spools[0], copy)
        for ack in copy.rglob("*.ack"):
            ack.unlink()
        copies.append(copy)
    syncs = [spawn(cluster.url, "from cairn.cli.main import main; main()",
                   "--store", cluster.url, "sync", "--json",
                   env={"CAIRN_TRACKING_TOKEN": token, "CAIRN_SPOOL_DIR": str(s)})
             for s in (spools[0], *copies)]
    for s in syncs:
        out, err = s.communicate(timeout=120)
        assert s.returncode == 0, (out, err)
        assert '"pending_writers": 0' in out, out

    readers = list(cluster.one_per_worker().values())
    for i, run in enumerate(runs):
        for c in readers:
            got = c.json("GET", f"{API}/runs/{run}")
            for key, scale in (("a", 0.5), ("b", -1.0)):
                h = _history(c, run, key)
                n = STEPS if i else len(h["steps"])
                assert h["steps"] == list(range(n)), (c.pid, run, key, h["count"])
                assert h["values"] == [s * scale for s in range(n)], (c.pid, run, key)
                assert got["metric_summaries"][key]["count"] == n, (c.pid, run, key)
                if i == 0:  # everything that reached the spool, nothing more, once
                    assert n >= half and {(key, s) for s in range(n)} == {
                        x for x in spooled_steps if x[0] == key}, (key, n, half)
            assert got["status"] == ("RUNNING" if i == 0 else "FINISHED"), (c.pid, got)
    for c in readers:
        c.close()
    if cluster.store is not None:
        _check_local_journals(cluster.store, runs)
    # Which worker accepts a client's connection is the kernel's choice: on a busy machine
    # one worker can take all eight (a fresh-clone run saw it), so it is reported, not
    # asserted. Batches of one writer raced through two chosen workers are asserted in
    # test_one_writers_batches_each_sent_through_two_workers_at_once.
    print(f"{cluster.kind}: the 8 clients were served by {len(serving)} of {WORKERS} workers")


def test_one_writers_batches_each_sent_through_two_workers_at_once(cluster):
    conns = cluster.one_per_worker()
    pids = sorted(conns)
    ws = list(conns.values())
    exp_id = _experiment(ws[0], "twice")
    run, writer, per = f"twice-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:8]}", 50
    exp = ws[0].json("GET", f"{API}/experiments/{exp_id}")

    def batch(seq: int) -> dict:
        steps = list(range((seq - 1) * per, seq * per))
        b: dict = {"run_id": run, "writer_id": writer, "seq": seq, "time": seq,
                   "metrics": {"m": {"steps": steps, "timestamps": steps,
                                     "values": [s * 0.25 for s in steps]}}}
        if seq == 1:
            b["create"] = {"experiment_id": exp_id, "experiment_name": exp["name"],
                           "name": "twice", "user": "admin", "start_time": 1}
        return b

    rounds = 40
    statuses: list[list[str]] = []
    gate = threading.Barrier(2)

    def send(c: Conn, seq: int) -> str:
        gate.wait()
        res = c.json("POST", f"{API}/records", json={"batches": [batch(seq)]})["results"]
        return res[0]["status"]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for seq in range(1, rounds + 1):
            # Two workers each time, a different pair every round.
            a, b = conns[pids[seq % WORKERS]], conns[pids[(seq + 1 + seq // WORKERS) % WORKERS]]
            if a is b:
                b = conns[pids[(seq + 2) % WORKERS]]
            futs = [pool.submit(send, a, seq), pool.submit(send, b, seq)]
            statuses.append(sorted(f.result() for f in futs))
    for c in ws:
        h = _history(c, run, "m")
        assert h["steps"] == list(range(rounds * per)), (c.pid, h["count"])
        assert h["values"] == [s * 0.25 for s in range(rounds * per)], c.pid
    for c in ws:
        c.close()
    if cluster.store is not None:
        _check_local_journals(cluster.store, [run])
    # Each batch: once applied, and the other copy answered as a duplicate.
    assert all(s == ["applied", "duplicate"] for s in statuses), statuses


def _check_local_journals(root: Path, runs: list[str]) -> None:
    """Each run's journals, appended by several worker processes, read back whole, and the
    index's offset for each writer is where its journal ends (where recovery starts)."""
    from cairn.store import journal as jlib
    from cairn.store.sql.index import SqlIndex

    index = SqlIndex(f"sqlite:///{root / 'index.db'}")
    try:
        offsets = index.all_writer_offsets()
    finally:
        index.close()
    for run in runs:
        journals = sorted((root / "runs" / run / "journal").glob("*.cjl"))
        assert journals, run
        for j in journals:
            items = list(jlib.read(j))
            damage = [d for d in items if not isinstance(d, jlib.Entry)]
            assert not damage, damage
            seqs = [e.batch.seq for e in items]
            assert seqs == list(range(1, len(items) + 1)), (j.name, seqs)
            assert offsets.get(j.stem) == j.stat().st_size, (
                f"the index says {j.name} of run {run} ends at {offsets.get(j.stem)}; "
                f"it ends at {j.stat().st_size}")
