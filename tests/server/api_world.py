"""Helpers for the registry, data set and lineage API tests: stores, users per role, uploads."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys

import pytest
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.store.sql.auth import ROLES

API = "/api/v1"
ADMIN_TOKEN = "cairn_bootstrap-admin-token-for-api-tests-01"
RANK = {"nobody": 0, "viewer": 1, "editor": 2, "approver": 3, "admin": 4}
USERS = list(RANK)


def open_store(kind: str, tmp_path, request):
    """The server's store: the local default (a directory) or PostgreSQL with objects on disk."""
    if kind == "local":
        from cairn.store.local import LocalStore

        return LocalStore(tmp_path / "store")
    from cairn.store.sql.store import SqlStore

    return SqlStore(request.getfixturevalue("pg_url"), ObjectStore.local(tmp_path / "objects"))


STORES = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]


def settle_audit(api) -> None:
    """Write the queued audit events now.

    The first event of an empty audit log has no head row to lock, so on PostgreSQL the
    server's queued writer and a registry mutation appending at the same moment can
    both claim event #1 (a known race, reported); once the chain has a head they queue.
    """
    api.app.state.cairn.flush_audit()


def registry_client(store, user: str = "root"):
    """A Python Client bound to the server's own store (what a local user would open)."""
    from cairn.client import Client

    client = Client(store.uri, user=user)
    client._store = store
    return client


def upload(api, content: bytes, path: str, headers=None) -> dict:
    """PUT one object and return its file entry."""
    oid = hashlib.sha256(content).hexdigest()
    r = api.put(f"{API}/objects/{oid}", content=content, headers=headers or {})
    assert r.status_code == 200, r.text
    return {"path": path, "size": len(content), "digest": oid}


def tiny_sklearn_model():
    """A real fitted estimator and the inputs it was fitted on."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9], [0.1, 0.0], [0.9, 1.0]])
    y = np.array([0, 1, 0, 1, 0, 1])
    return LogisticRegression().fit(X, y), X


def log_model_files(api, run_id: str, model, headers=None, prefix: str = "model") -> list[dict]:
    """Log ``model`` the way cairn.autolog does (model.pkl + cairn_model.json) through REST."""
    kind = type(model)
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {"flavor": "sklearn", "class": f"{kind.__module__}.{kind.__qualname__}",
            "framework_version": "1.0", "python": sys.version.split()[0],
            "files": ["model.pkl"]}
    files = [upload(api, data, f"{prefix}/model.pkl", headers),
             upload(api, json.dumps(meta).encode(), f"{prefix}/cairn_model.json", headers)]
    r = api.post(f"{API}/runs/{run_id}/artifacts", json={"files": files}, headers=headers or {})
    assert r.status_code == 200, r.text
    return files


def add_dataset(api, name: str, files: dict[str, bytes], headers=None, **fields) -> dict:
    """Upload the files' objects and POST the tree: a new data set version."""
    entries = [upload(api, content, path, headers) for path, content in files.items()]
    r = api.post(f"{API}/datasets/{name}/versions", json={"files": entries, **fields},
                 headers=headers or {})
    assert r.status_code in (200, 201), r.text
    return r.json()


class World:
    """A server with auth on: experiments E and F, model M and N, one user per role.

    Each role user holds that role on experiment E and on model M, nothing on F or N.
    """

    def __init__(self, store) -> None:
        self.store = store
        self.app = create_app(store, settings=ServerSettings(
            auth=True, bootstrap_token=ADMIN_TOKEN, bootstrap_user="root", token_cache_s=0))
        self.api = TestClient(self.app, raise_server_exceptions=False)
        self.admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        self.tokens: dict[str, str] = {"root": ADMIN_TOKEN}  # root: a global admin

    def __enter__(self) -> "World":
        self.api.__enter__()
        self.app.state.cairn.start()
        a = self.admin
        self.e = self.post("/experiments", {"name": "E"})["id"]
        settle_audit(self.api)
        self.f = self.post("/experiments", {"name": "F"})["id"]
        self.run_e = self.post("/runs", {"experiment_id": self.e})["id"]
        self.run_f = self.post("/runs", {"experiment_id": self.f})["id"]
        for name in ("M", "N"):
            self.post("/models", {"name": name})
        for role in (None, *ROLES):
            name = role or "nobody"
            self.post("/users", {"name": name})
            self.tokens[name] = self.post(f"/users/{name}/tokens", {"name": "t"})["token"]
            for rtype, rid in (("experiment", self.e), ("model", "M")) if role else ():
                r = self.api.put(f"{API}/roles", headers=a, json={
                    "user": name, "resource_type": rtype, "resource_id": rid, "role": role})
                assert r.status_code == 200, r.text
        return self

    def __exit__(self, *exc) -> None:
        self.api.__exit__(*exc)

    def post(self, path: str, body: dict) -> dict:
        r = self.api.post(API + path, json=body, headers=self.admin)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def headers(self, user: str | None) -> dict:
        return {"authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def call(self, user: str | None, method: str, path: str, **kw):
        return getattr(self.api, method)(API + path, headers=self.headers(user), **kw)

    def audit(self, action: str) -> list[dict]:
        self.app.state.cairn.flush_audit()
        r = self.api.get(f"{API}/audit", params={"action": action, "limit": 1000},
                         headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["events"]
