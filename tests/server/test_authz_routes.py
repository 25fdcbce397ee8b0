"""Every mounted route against the permissions table (``cairn.server.permissions``).

The routes come from the real app (``create_app`` with auth on), not from a list kept
here: a route without a table entry, or an entry without a route, fails
:func:`test_every_mounted_route_has_exactly_one_entry`.  Then every route is called by
every kind of caller — no token, a malformed header, a revoked and an expired token
(401 on every route that is not open), a user with no role, viewer, editor, approver
and admin on the experiment and model the request names, and a global admin (403
exactly when the table says the role is not enough).  Requests are minimal: what a
route needs to reach its permission check, nothing is asserted beyond 401/403.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn import clock
from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.server import permissions as P
from cairn.store.sql.auth import RANK, ROLES
from cairn.store.sql.store import SqlStore

API = "/api/v1"
ADMIN = "cairn_authz-routes-bootstrap-admin-token-01"
CONTENT = b"artifact bytes for the authz test"
OID = hashlib.sha256(CONTENT).hexdigest()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"
CALLERS = ("nobody", *ROLES, "root")  # ascending: refused callers come before allowed ones
BAD = {"no token": None, "malformed header": "Basic cm9vdDpyb290",
       "revoked token": "revoked", "expired token": "expired"}


def _app(store):
    # No audit log: it changes no answer here.
    return create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                     bootstrap_user="root", audit=False))


def test_every_mounted_route_has_exactly_one_entry(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'routes.db'}", ObjectStore.local(tmp_path / "o"))
    try:
        mounted = {(m, p) for m, p, _ in P.mounted_routes(_app(store))}
    finally:
        store.close()
    assert sorted(mounted - set(P.TABLE)) == [], "mounted routes missing from the table"
    assert sorted(set(P.TABLE) - mounted) == [], "table entries that name no route"


def test_docs_list_every_route_and_its_need():
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- permissions table: begin -->", "<!-- permissions table: end -->"
    assert begin in text and end in text
    current = text.split(begin)[1].split(end)[0].strip()
    assert current == P.markdown_table(), (
        "docs/server.md's table of routes is out of date with cairn.server.permissions: "
        "paste permissions.markdown_table() between its markers")


# -- the matrix ---------------------------------------------------------------------------
def _world(store):
    """The app with auth on, experiment E with run R and artifact a.txt, model M with two
    versions and a pending transition request, a logged model, data set DS, one user per
    role on E and M, and revoked and expired tokens."""
    from cairn.client import Client
    from cairn.registry.service import Registry

    app = _app(store)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    ctx = app.state.cairn
    ctx.start()
    root = {"authorization": f"Bearer {ADMIN}"}

    def ok(resp, *codes):
        assert resp.status_code in (codes or (200, 201)), resp.text
        return resp.json()

    e = ok(client.post(f"{API}/experiments", json={"name": "E"}, headers=root))["id"]
    r = ok(client.post(f"{API}/runs", json={"experiment_id": e}, headers=root))["id"]
    ok(client.put(f"{API}/objects/{OID}", content=CONTENT, headers=root))
    ok(client.post(f"{API}/runs/{r}/artifacts", headers=root,
                   json={"files": [{"path": "a.txt", "size": len(CONTENT), "digest": OID}]}))
    ok(client.post(f"{API}/runs/{r}/log", headers=root,
                   json={"metrics": [{"key": "m", "value": 1.0, "step": 0}]}))
    ok(client.post(f"{API}/datasets/DS/versions", headers=root,
                   json={"files": [{"path": "a.txt", "size": len(CONTENT), "digest": OID}]}))
    lm = ok(client.post("/api/2.0/mlflow/logged-models", headers=root,
                        json={"experiment_id": e, "source_run_id": r, "name": "lm"}))
    lm = lm["model"]["info"]["model_id"] if "info" in lm["model"] else lm["model"]["model_id"]
    cl = Client(store.uri, user="root")
    cl._store = store
    reg = Registry(cl)
    for _ in range(2):
        reg.register_model("M", {"weights": [1, 2, 3]}, flavor="pickle")
    reg.set_stage_policy("M", "production", approvals=1)
    gone = sorted({g for m, t in P.TABLE if (g := _gone(m, t))})
    for name in gone:  # one model for each route that renames or deletes one
        reg.register_model(name, {"weights": [1]}, flavor="pickle")
    db = ctx.auth_db
    tokens = {"root": ADMIN}
    for name in ("nobody", "target", *ROLES):
        db.create_user(name, created_by="test")
        tokens[name] = db.create_token(name, "t")[1]
    for role in ROLES:
        for rtype, rid in (("experiment", e), ("model", "M"), *(("model", g) for g in gone)):
            db.grant(role, rtype, rid, role, granted_by="test")
    revoked, tokens["revoked"] = db.create_token("viewer", "revoked")
    db.revoke_token(revoked.id)
    tokens["expired"] = db.create_token("viewer", "old", expires_at=clock.now_ms() - 1000)[1]
    target_token = db.list_tokens("target")[0].id
    # A pending request by the model's admin (not root): root may approve it.
    req = ok(client.post(f"{API}/models/M/requests", json={"version": "1.0.1", "stage":
                                                          "Production"},
                         headers={"authorization": f"Bearer {tokens['admin']}"}))["id"]
    values = {"experiment_id": e, "run_id": r, "key": "k", "oid": OID, "alias": "champion",
              "request_id": req, "key_id": "0123456789abcdef", "token_id": target_token,
              "model_id": lm, "tag_key": "k", "path": f"{e}/{r}/artifacts/a.txt"}
    return {"app": app, "client": client, "e": e, "r": r, "lm": lm, "tokens": tokens,
            "values": values}


def _request(w, method: str, template: str, seq: list[int]) -> tuple[str, dict]:
    """A URL and keyword arguments that reach the route's permission check."""
    e, r, v = w["e"], w["r"], w["values"]
    if template.startswith(f"{API}/models/") or template.startswith(f"{API}/ui/models/"):
        names = {"name": _gone(method, template) or "M", "version": "1.0.0"}
    elif "/datasets/" in template:
        names = {"name": "DS", "version": "1"}
    elif template.startswith(f"{API}/users/"):
        names = {"name": "target"}
    else:
        names = {}

    def fill(m: re.Match) -> str:
        key = m.group(1).split(":")[0]
        return str(names.get(key, v.get(key, "x")))

    url = re.sub(r"\{([^}]+)\}", fill, template)
    seq[0] += 1
    if any(template.startswith(p + "/") for p in P.MLFLOW_ARTIFACT_PREFIXES):
        if method == "PUT":
            return url.replace("a.txt", f"up-{seq[0]}.txt"), {"content": b"x"}
        return url, {"params": {"path": f"{e}/{r}/artifacts"}}
    if template.endswith("/upload-artifact"):  # its parameters are in the query string
        return url, {"params": {"run_uuid": r, "path": f"up-{seq[0]}.txt"}, "content": b"x"}
    if template.endswith("/artifacts/files"):
        return url, {"params": {"artifact_file_path": "MLmodel"}}
    if any(template.startswith(p + "/") for p in P.MLFLOW_PREFIXES):
        params = {"experiment_id": e, "run_id": r, "run_uuid": r, "name": "M", "key": "k",
                  "value": "v", "version": "1", "alias": "champion", "model_id": w["lm"],
                  "new_name": "E", "stage": "Staging", "metric_key": "m",
                  "experiment_name": "E", "source": f"runs:/{r}/a.txt", "path": "",
                  "status": "FINISHED", "timestamp": 0}
        if template.endswith("/log-metric"):
            params["value"] = 1.0
        if _gone(method, template):
            params.update(name=_gone(method, template), new_name=f"renamed-{seq[0]}")
        if method == "GET":
            return url, {"params": {**params, "experiment_ids": e, "run_ids": r}}
        return url, {"json": {**params, "experiment_ids": [e], "run_ids": [r],
                              "metrics": [{"key": "m", "value": 1, "timestamp": 0, "step": 0}],
                              "tags": [{"key": "k", "value": "v"}]}}
    bodies: dict[tuple[str, str], dict] = {
        ("POST", f"{API}/runs"): {"json": {"experiment_id": e}},
        ("POST", f"{API}/runs/{{run_id}}/log"): {"json": {"metrics": [{"key": "m", "value": 2}]}},
        ("POST", f"{API}/runs/{{run_id}}/end"): {"json": {"status": "FINISHED"}},
        ("PUT", f"{API}/runs/{{run_id}}/tags/{{key:path}}"): {"content": b"v"},
        ("POST", f"{API}/heartbeat"): {"json": {"run_ids": [r]}},
        ("POST", f"{API}/records"): {"json": {"batches": [
            {"run_id": r, "writer_id": f"authz-{seq[0]}", "seq": 1, "tags": {"x": "y"}}]}},
        ("POST", f"{API}/runs/{{run_id}}/artifacts"): {"json": {"files": [
            {"path": "a.txt", "size": len(CONTENT), "digest": OID}]}},
        ("GET", f"{API}/runs/{{run_id}}/artifacts/download"): {"params": {"path": "a.txt"}},
        ("GET", "/get-artifact"): {"params": {"path": "a.txt", "run_uuid": r}},
        ("GET", f"{API}/runs/{{run_id}}/metrics/history"): {"params": {"key": "m"}},
        ("GET", f"{API}/experiments/by-name"): {"params": {"name": "E"}},
        ("PATCH", f"{API}/experiments/{{experiment_id}}"): {"json": {"name": "E"}},
        ("PATCH", f"{API}/runs/{{run_id}}"): {"json": {"name": "R"}},
        ("POST", f"{API}/users/{{name}}/tokens"): {"json": {"name": "t"}},
        ("GET", f"{API}/tokens"): {"params": {"user": "target"}},
        ("GET", f"{API}/roles"): {"params": {"resource_type": "experiment", "resource_id": e}},
        ("PUT", f"{API}/roles"): {"json": {"user": "target", "resource_type": "experiment",
                                           "resource_id": e, "role": "viewer"}},
        ("POST", f"{API}/roles/revoke"): {"json": {"user": "target",
                                                   "resource_type": "experiment",
                                                   "resource_id": e}},
        ("POST", f"{API}/models/{{name}}/versions"): {"json": {"source": f"runs:/{r}/a.txt"}},
        ("POST", f"{API}/models/{{name}}/versions/{{version}}/stage"): {
            "json": {"stage": "Staging"}},
        ("POST", f"{API}/models/{{name}}/versions/{{version}}/signature"): {
            "json": {"key_id": "0123456789abcdef", "signature": "AAAA"}},
        ("POST", f"{API}/models/{{name}}/requests"): {
            "json": {"version": "1.0.0", "stage": "Staging"}},
        ("POST", f"{API}/models/requests/{{request_id}}/approve"): {"json": {"comment": "c"}},
        ("POST", f"{API}/models/requests/{{request_id}}/reject"): {"json": {"comment": "c"}},
        ("PUT", f"{API}/models/{{name}}/aliases/{{alias}}"): {"json": {"version": "1.0.0"}},
        ("POST", f"{API}/models/{{name}}/rollback"): {"json": {"stage": "production"}},
        ("POST", f"{API}/models/{{name}}/deployments"): {
            "json": {"version": "1.0.0", "event": "start", "deployment": f"authz-{seq[0]}"}},
        ("GET", f"{API}/models/{{name}}/at"): {"params": {"stage": "production", "time": 0}},
        ("PUT", f"{API}/models/{{name}}/policies"): {
            "json": {"stage": "production", "approvals": 1}},
        ("POST", f"{API}/models/{{name}}/rename"): {"json": {"new_name": f"renamed-{seq[0]}"}},
        ("POST", f"{API}/runs/{{run_id}}/inputs"): {"json": {"dataset": "DS@1"}},
        ("GET", f"{API}/ui/runs/{{run_id}}/series"): {"params": {"key": "m"}},
        ("POST", f"{API}/ui/compare/aggregate"): {"json": {"run_ids": [r], "metric": "m"}},
        ("GET", f"{API}/ui/keys"): {"params": {"kind": "params"}},
        ("POST", f"{API}/ui/runs"): {"json": {}},
        ("POST", f"{API}/runs/search"): {"json": {}},
    }
    return url, bodies.get((method, template), {})


def _gone(method: str, template: str) -> str | None:
    """A route that takes its model away (renames or deletes it) acts on a model of its own,
    which holds the same roles as M: the routes after it still find M, and its admin still
    holds a role on the model it names."""
    if (method, template) in {("POST", f"{API}/models/{{name}}/rename"),
                              ("DELETE", f"{API}/models/{{name}}")} \
            or template.endswith(("/registered-models/rename", "/registered-models/delete")):
        return "G-" + hashlib.sha256(f"{method} {template}".encode()).hexdigest()[:8]
    return None


def _status(resp) -> int:
    """The status, with a records batch refused for its role, and a UI page's refusal
    (a 200 that carries it: the UI shows it), counted as 403."""
    if resp.status_code == 200 and resp.content and resp.headers.get(
            "content-type", "").startswith("application/json"):
        body = resp.json()
        if isinstance(body, dict) and body.get("status") == 403 \
                and resp.url.path.startswith(f"{API}/ui/"):
            return 403
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            for res in body["results"]:
                if res.get("status") == "rejected" and \
                        res.get("error", {}).get("error_code") == "PERMISSION_DENIED":
                    return 403
    return resp.status_code


def _forbidden(need: P.Need, caller: str) -> bool:
    """Whether the table says ``caller`` gets 403 (roles are held on E and M only)."""
    if caller == "root" or need.kind in ("open", "user"):
        return False
    rank = RANK.get(caller, 0)
    if need.kind in ("experiment", "model", "somewhere"):
        assert need.role is not None
        return rank < RANK[need.role]
    if need.kind == "grant":
        return rank < RANK["admin"]
    return True  # all, self (someone else's), admin: a global role or admin


def _last(key: tuple[str, str]) -> bool:
    """Routes that delete, end or disable run after the rest (restores after deletes)."""
    method, path = key
    return method == "DELETE" or bool(re.search(r"delete|restore|disable|/end$|rollback|"
                                                r"revoke|approve|reject", path))


def _matrix(store) -> list[str]:
    w = _world(store)
    try:  # in this thread's event loop: the test client's hop to its own thread per
        # request was most of the time
        return asyncio.run(_calls(w))
    finally:
        w["client"].__exit__(None, None, None)


async def _calls(w) -> list[str]:
    tokens = w["tokens"]
    seq = [0]
    failures: list[str] = []
    routes = sorted(P.TABLE.items(), key=lambda kv: _last(kv[0]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=w["app"]),
                                 base_url="http://testserver") as c:
        for (method, template), need in routes:
            url, kwargs = _request(w, method, template, seq)
            for label, token in BAD.items():
                header = (None if token is None else token if token.startswith("Basic")
                          else f"Bearer {tokens[token]}")
                resp = await c.request(method, url, headers={"authorization": header}
                                       if header else {}, **kwargs)
                bad = resp.status_code == 401
                if bad == (need.kind == "open"):
                    failures.append(f"{method} {template} with {label}: {resp.status_code} "
                                    f"{resp.text[:200]}")
            for caller in CALLERS:
                if (method, template) in _ONCE and caller != "root" \
                        and not _forbidden(need, caller):
                    continue
                url, kwargs = _request(w, method, template, seq)
                resp = await c.request(method, url, headers={
                    "authorization": f"Bearer {tokens[caller]}"}, **kwargs)
                status = _status(resp)
                # 503 is an answer (the UI's pages in a checkout without its build); 500 a bug
                if status in (401, 500) or (status == 403) != _forbidden(need, caller):
                    failures.append(f"{method} {template} as {caller} ({need.describe()}): "
                                    f"{status} {resp.text[:200]}")
    return failures


# Routes that change what later callers would find (one approval decides the request):
# only the refused callers and the global admin call them.
_ONCE = {("POST", f"{API}/models/requests/{{request_id}}/approve")}


def test_every_route_with_every_caller_sqlite(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'authz.db'}", ObjectStore.local(tmp_path / "o"))
    try:
        failures = _matrix(store)
    finally:
        store.close()
    assert not failures, f"{len(failures)} route/caller answers disagree with the table:\n" + \
        "\n".join(failures)


@pytest.mark.postgres
def test_every_route_with_every_caller_postgres(tmp_path, pg_url):
    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "o"))
    try:
        failures = _matrix(store)
    finally:
        store.close()
    assert not failures, f"{len(failures)} route/caller answers disagree with the table:\n" + \
        "\n".join(failures)
