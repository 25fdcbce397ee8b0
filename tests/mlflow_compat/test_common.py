"""The MLflow layer's request parsing, error mapping and filter grammar, without a server."""

from __future__ import annotations

import json
import math

import pytest

from cairn import errors
from cairn.server.mlflow import _filters
from cairn.server.mlflow._common import MlflowError, Params, dumps, mlflow_error


def test_query_strings_read_like_the_client_writes_them():
    p = Params.from_query_items([("order_by", "a"), ("order_by", "b DESC"), ("run_ids", "r1"),
                                 ("max_results", "25000"), ("archive", "True"),
                                 ("other", "FALSE"), ("value", "-Infinity")])
    assert p.texts("order_by") == ["a", "b DESC"]
    assert p.texts("run_ids") == ["r1"]  # one occurrence is a one-item list
    assert p.integer("max_results") == 25000
    assert p.boolean("archive") is True and p.boolean("other") is False
    assert p.number("value") == -math.inf
    assert p.items("absent") == [] and p.integer("absent", 7) == 7


def test_json_bodies():
    p = Params({"run_uuid": "r", "value": "NaN", "step": 3, "timestamp": "12", "flag": True})
    assert p.run_id() == "r"  # the legacy field alone is enough
    assert math.isnan(p.number("value")) and p.integer("step") == 3
    assert p.integer("timestamp") == 12  # protobuf JSON may send int64 as text
    assert Params({"run_id": "a", "run_uuid": "b"}).run_id() == "a"
    for bad in ({"name": 123}, {"name": ["x"]}):
        with pytest.raises(errors.InvalidArgument, match="Invalid value .* for parameter 'name'"):
            Params(bad).text("name")
    with pytest.raises(errors.InvalidArgument, match="Missing value for required parameter"):
        Params({}).text("name", required=True)
    with pytest.raises(errors.InvalidArgument):
        Params({"step": 1.5}).integer("step")
    with pytest.raises(errors.InvalidArgument):
        Params({"step": 1 << 63}).integer("step")
    with pytest.raises(errors.InvalidArgument):
        Params({"value": "lots"}).number("value")
    with pytest.raises(errors.InvalidArgument):
        Params({"flag": "yes"}).boolean("flag")


@pytest.mark.parametrize(("exc", "code", "status"), [
    (errors.NotFound("x"), "RESOURCE_DOES_NOT_EXIST", 404),
    (errors.AlreadyExists("x"), "RESOURCE_ALREADY_EXISTS", 400),
    (errors.InvalidArgument("x"), "INVALID_PARAMETER_VALUE", 400),
    (errors.InvalidFilter("x"), "INVALID_PARAMETER_VALUE", 400),
    (errors.RunFinished("x"), "INVALID_STATE", 400),
    (errors.PermissionDenied("x"), "PERMISSION_DENIED", 403),
    (errors.Unauthenticated("x"), "UNAUTHENTICATED", 401),
    (errors.StoreUnavailable("x"), "TEMPORARILY_UNAVAILABLE", 503),
    (MlflowError("INVALID_PARAMETER_VALUE", 400, "x"), "INVALID_PARAMETER_VALUE", 400),
])
def test_errors_take_mlflows_codes(exc, code, status):
    from mlflow.protos.databricks_pb2 import ErrorCode

    body, got = mlflow_error(exc)
    assert (body["error_code"], got) == (code, status)
    assert code in ErrorCode.keys()  # a name the client knows
    # Only a server that is unavailable answers 5xx (the client retries those for minutes).
    assert got < 500 or isinstance(exc, errors.StoreUnavailable)


def test_dumps_keeps_int64_exact_and_refuses_raw_nan():
    assert dumps({"t": (1 << 62) + 1}) == b'{"t":4611686018427387905}'
    with pytest.raises(ValueError):
        dumps({"v": math.nan})


ATTRS = {"name": "name", "creation_time": "creation_time"}


def test_filter_grammar():
    clauses = _filters.parse("name LIKE 'a%' and tags.`my key` != 'x' AND creation_time >= 5 "
                             "and tags.t IN ('a', \"b\") AND tags.u IS NOT NULL", ATTRS)
    assert [(c.entity, c.key, c.op, c.value) for c in clauses] == [
        ("attribute", "name", "LIKE", "a%"), ("tag", "my key", "!=", "x"),
        ("attribute", "creation_time", ">=", 5.0), ("tag", "t", "IN", ("a", "b")),
        ("tag", "u", "IS NOT NULL", None)]
    for bad in ("name", "name = ", "name = 'a' OR name = 'b'", "nope = 'a'", "name == 'a'",
                "tags.x IN 'a'"):
        with pytest.raises(errors.InvalidFilter):
            _filters.parse(bad, ATTRS)
    assert _filters.parse("", ATTRS) == [] and _filters.parse(None, ATTRS) == []


def test_filter_semantics():
    assert _filters.compare(None, "!=", "true")  # the client's prompt clause on untagged models
    assert not _filters.compare(None, "=", "x")
    assert _filters.like("Model_1", "mod%", case_insensitive=True)
    assert not _filters.like("Model_1", "mod%", case_insensitive=False)
    assert _filters.like("a.c", "a_c", False) and not _filters.like("a.c", "a%d", False)
    assert _filters.compare("10", ">", 9.0) and not _filters.compare("x", ">", 9.0)
    items = [{"n": "b", "t": 2}, {"n": "a", "t": None}, {"n": "c", "t": 1}]
    order = _filters.parse_order(["t DESC"], {"t": "t"})
    assert [i["n"] for i in _filters.sort(items, order, lambda i, k: i[k])] == ["b", "c", "a"]
    with pytest.raises(errors.InvalidFilter):
        _filters.parse_order(["t SIDEWAYS"], {"t": "t"})


def test_dumps_matches_the_json_module():
    # orjson answers most payloads; the json module the ones with null or huge integers.
    for payload in ({"runs": [{"a": 1.5, "b": "x\u00e9", "c": [1, 2]}]}, {"v": None},
                    {"s": "null"}, {"big": 1 << 70}, {1: "non-string key"}, {"i": math.inf}):
        try:
            expected = json.loads(json.dumps(payload, allow_nan=False))
        except ValueError:
            with pytest.raises(ValueError):
                dumps(payload)
            continue
        assert json.loads(dumps(payload)) == expected
