"""Which experiment a run's creation record puts it in, and what that needs, on a server
with auth: the record's experiment id when the server has it (never the experiment its
name points at), else the experiment of its name (a run started offline, or brought by
`cairn sync`), else a new experiment (editor on all experiments).  A creation record for a
run that exists changes nothing, and makes no experiment."""

from __future__ import annotations

from .test_reserved_tags import ADMIN, API, _h, api  # noqa: F401 - the same server fixture


def _batch(run: str, writer: str, exp_id: str, exp_name: str) -> dict:
    return {"run_id": run, "writer_id": writer, "seq": 1, "time": 1,
            "create": {"experiment_id": exp_id, "experiment_name": exp_name, "name": "r",
                       "start_time": 1}}


def test_a_creation_lands_where_it_was_authorized(api):  # noqa: F811
    client, _alice = api
    admin = _h(ADMIN)
    a = client.post(f"{API}/experiments", headers=admin, json={"name": "mine"}).json()["id"]
    b = client.post(f"{API}/experiments", headers=admin, json={"name": "theirs"}).json()["id"]
    assert client.post(f"{API}/users", json={"name": "eve"}, headers=admin).status_code == 201
    eve = client.post(f"{API}/users/eve/tokens", json={"name": "t"}, headers=admin).json()["token"]
    r = client.put(f"{API}/roles", headers=admin, json={
        "user": "eve", "resource_type": "experiment", "resource_id": a, "role": "editor"})
    assert r.status_code == 200, r.text
    me = _h(eve)

    # Eve's own experiment by id, another's by name: the run is in hers.
    run1 = "1" * 32
    r = client.post(f"{API}/records", headers=me,
                    json={"batches": [_batch(run1, "w1", a, "theirs")]})
    assert r.json()["results"][0]["status"] == "applied", r.text
    assert client.get(f"{API}/runs/{run1}", headers=admin).json()["experiment_id"] == a

    # An unknown id with the name of an experiment she may not write: refused.
    run2 = "2" * 32
    r = client.post(f"{API}/records", headers=me,
                    json={"batches": [_batch(run2, "w2", "123456789012345678", "theirs")]})
    res = r.json()["results"][0]
    assert res["status"] == "rejected" and res["error"]["error_code"] == "PERMISSION_DENIED"
    assert client.get(f"{API}/runs/{run2}", headers=admin).status_code == 404

    # An unknown id with her experiment's name joins it.
    run3 = "3" * 32
    r = client.post(f"{API}/records", headers=me,
                    json={"batches": [_batch(run3, "w3", "223456789012345678", "mine")]})
    assert r.json()["results"][0]["status"] == "applied", r.text
    assert client.get(f"{API}/runs/{run3}", headers=admin).json()["experiment_id"] == a

    # A new name needs editor on all experiments.
    r = client.post(f"{API}/records", headers=me,
                    json={"batches": [_batch("4" * 32, "w4", "323456789012345678", "fresh")]})
    assert r.json()["results"][0]["error"]["error_code"] == "PERMISSION_DENIED"

    # A creation record for her existing run makes no experiment (it used to make any name).
    r = client.post(f"{API}/records", headers=me,
                    json={"batches": [_batch(run1, "w5", "423456789012345678", "squatted")]})
    assert r.json()["results"][0]["status"] == "applied", r.text
    names = {e["name"] for e in client.get(f"{API}/experiments", headers=admin).json()["experiments"]}
    assert "squatted" not in names and "fresh" not in names
    assert client.get(f"{API}/runs/{run1}", headers=admin).json()["experiment_id"] == a
    assert b != a
