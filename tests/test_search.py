"""The search grammar: parser, pure-Python evaluation, and SQL equal to brute force."""

from __future__ import annotations

import math
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from cairn.entities import Run, RunStatus
from cairn.errors import InvalidArgument, InvalidFilter
from cairn.search import (
    Clause, OrderKey, compile_query, decode_page_token, encode_page_token, format_filter,
    matches, parse_filter, parse_order_by, sort_runs,
)
from cairn.store.sql import tables

NAN, INF = float("nan"), float("inf")


def make_run(id: str = "r1", **kw: Any) -> Run:
    base: dict[str, Any] = dict(
        name=f"name-{id}", experiment_id="0", experiment="default", status=RunStatus.FINISHED,
        start_time=0, end_time=None, user="alice",
    )
    base.update(kw)
    return Run(id=id, **base)


# ---------------------------------------------------------------------------------------
# Parser

@pytest.mark.parametrize("text, clause", [
    ("metrics.acc > 0.9", Clause("metrics", "acc", ">", 0.9)),
    ("metrics.acc >= 1", Clause("metrics", "acc", ">=", 1.0)),
    ("metrics.acc < -1e-3", Clause("metrics", "acc", "<", -0.001)),
    ("metrics.acc <= .5", Clause("metrics", "acc", "<=", 0.5)),
    ("metrics.acc = 2.", Clause("metrics", "acc", "=", 2.0)),
    ("metrics.acc != 0", Clause("metrics", "acc", "!=", 0.0)),
    ("metric.acc IN (1, 2.5)", Clause("metrics", "acc", "IN", (1.0, 2.5))),
    ("metrics.acc not in (1,)", Clause("metrics", "acc", "NOT IN", (1.0,))),
    ("params.model = 'cnn'", Clause("params", "model", "=", "cnn")),
    ('params.model != "cnn"', Clause("params", "model", "!=", "cnn")),
    ("param.lr < 0.01", Clause("params", "lr", "<", 0.01)),
    ("parameters.lr = 1e-05", Clause("params", "lr", "=", 1e-05)),
    ("params.n IN (1, 2)", Clause("params", "n", "IN", (1.0, 2.0))),
    ("params.model LIKE 'c%'", Clause("params", "model", "LIKE", "c%")),
    ("params.model ilike '%N_'", Clause("params", "model", "ILIKE", "%N_")),
    ("params.model IN ('cnn', \"rnn\")", Clause("params", "model", "IN", ("cnn", "rnn"))),
    ("tags.team NOT IN ('a')", Clause("tags", "team", "NOT IN", ("a",))),
    ("tag.team IS NULL", Clause("tags", "team", "IS NULL")),
    ("tags.team is not null", Clause("tags", "team", "IS NOT NULL")),
    ("tags.mlflow.user = 'me'", Clause("tags", "mlflow.user", "=", "me")),
    ('tags."mlflow.user" = \'me\'', Clause("tags", "mlflow.user", "=", "me")),
    ("metrics.`val loss` < 1", Clause("metrics", "val loss", "<", 1.0)),
    ('metrics."val loss" < 1', Clause("metrics", "val loss", "<", 1.0)),
    ("`metrics`.`a``b` < 1", Clause("metrics", "a`b", "<", 1.0)),
    ("tags.x = 'it''s'", Clause("tags", "x", "=", "it's")),
    ("tags.x = 'it\\'s'", Clause("tags", "x", "=", "it's")),
    ('tags.x = "say ""hi"""', Clause("tags", "x", "=", 'say "hi"')),
    ("tags.x = 'C:\\data'", Clause("tags", "x", "=", "C:\\data")),
    ("tags.x = 'a\\\\'", Clause("tags", "x", "=", "a\\")),
    ("status = 'FAILED'", Clause("attributes", "status", "=", "FAILED")),
    ("attributes.status IN ('FAILED', 'KILLED')",
     Clause("attributes", "status", "IN", ("FAILED", "KILLED"))),
    ("attr.run_id = 'abc'", Clause("attributes", "run_id", "=", "abc")),
    ("run.id = 'abc'", Clause("attributes", "run_id", "=", "abc")),
    ("attributes.name LIKE 'x%'", Clause("attributes", "run_name", "LIKE", "x%")),
    ("attributes.`Run name` = 'x'", Clause("attributes", "run_name", "=", "x")),
    ("created > 5", Clause("attributes", "start_time", ">", 5)),
    ("start_time >= 1700000000000", Clause("attributes", "start_time", ">=", 1700000000000)),
    ("attributes.end_time IS NULL", Clause("attributes", "end_time", "IS NULL")),
    ("attributes.user_id = 'me'", Clause("attributes", "user", "=", "me")),
    ("attributes.parent_id = 'p'", Clause("attributes", "parent_id", "=", "p")),
    ("experiment_id IN ('1', '2')", Clause("attributes", "experiment_id", "IN", ("1", "2"))),
])
def test_parse_one_clause(text: str, clause: Clause) -> None:
    assert parse_filter(text) == (clause,)
    assert parse_filter(format_filter((clause,))) == (clause,)


@settings(max_examples=300, deadline=None)
@given(
    entity=st.sampled_from(["params", "tags"]),
    key=st.text(min_size=1),
    value=st.text() | st.tuples(st.text()) | st.tuples(st.text(), st.text()),
)
def test_any_key_and_string_round_trip(entity: str, key: str, value: Any) -> None:
    op = ("IN" if len(value) == 1 else "NOT IN") if isinstance(value, tuple) else "="
    clause = Clause(entity, key, op, value)
    assert parse_filter(format_filter((clause,))) == (clause,)
    order = OrderKey("metrics", key, False)
    assert parse_order_by([str(order)]) == (order,)


def test_parse_several_clauses_and_spacing() -> None:
    flt = parse_filter("  metrics.acc>0.9 and params.model='cnn'AND tags.team LIKE 'v%'\n")
    assert flt == (
        Clause("metrics", "acc", ">", 0.9),
        Clause("params", "model", "=", "cnn"),
        Clause("tags", "team", "LIKE", "v%"),
    )
    assert format_filter(flt) == (
        "metrics.acc > 0.9 AND params.model = 'cnn' AND tags.team LIKE 'v%'")


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_filter_is_everything(text: str | None) -> None:
    assert parse_filter(text) == ()
    assert matches(make_run(), parse_filter(text))


@pytest.mark.parametrize("text, position, expected", [
    ("metrics.acc >", 13, "expected a value after 'metrics.acc >'"),
    ("metrics.acc >> 1", 13, "expected a value"),
    ("metrics.acc 1", 12, "expected a comparison operator after 'metrics.acc'"),
    ("metrics.acc == 1", 12, "'==' is not an operator"),
    ("metrics.acc <> 1", 12, "write '!=' for 'not equal'"),
    ("metrics.acc = 'x'", 14, "expected a number for metrics.acc"),
    ("metrics.acc LIKE 'x'", 12, "LIKE applies to strings"),
    ("params.lr < '0.1'", 10, "write an unquoted number"),
    ("params.lr LIKE 1", 15, "expected a quoted pattern"),
    ("tags.team = 1", 12, "expected a quoted string for tags.team"),
    ("tags.team > 'a'", 10, "expected a string comparison for tags.team"),
    ("tags.team = vision", 12, "strings must be quoted"),
    ("tags.team = NULL", 12, "IS NULL"),
    ("tags.team = 'vision", 12, "a closing '"),
    ("tags.team IN 'a'", 13, "a parenthesised list"),
    ("tags.team IN ()", 14, "expected a value in the list"),
    ("tags.team IN ('a' 'b')", 18, "',' or ')'"),
    ("tags.team IN ('a', 1)", 13, "values of one type"),
    ("tags.team NOT LIKE 'a'", 14, "NOT is only supported as NOT IN"),
    ("tags.team IS 'a'", 13, "NULL or NOT NULL after IS"),
    ("foo.bar = 1", 0, "an entity type (metrics, params, tags or attributes)"),
    ("datasets.name = 'x'", 0, "an entity type"),
    ("colour = 'red'", 0, "an attribute name"),
    ("attributes.artifact_uri = 'x'", 11, "an attribute name"),
    ("metrics = 1", 7, "'.' and a key name"),
    ("metrics. > 1", 8, "a key name after 'metrics.'"),
    ("metrics.`a > 1", 8, "a closing `"),
    ("metrics.a > 1 or metrics.b < 2", 14, "OR is not supported"),
    ("metrics.a > 1 metrics.b < 2", 14, "expected AND or the end of the filter"),
    ("metrics.a > 1 AND", 17, "expected an identifier"),
    ("(metrics.a > 1)", 0, "expected an identifier"),
    ("metrics.a > 1e999", 12, "within the range of a 64-bit float"),
    ("metrics.a > 1abc", 12, "quote strings"),
    ("start_time > '5'", 13, "expected a number for attributes.start_time"),
    ("status > 'A'", 7, "expected a string comparison for attributes.status"),
])
def test_filter_errors_point_at_the_problem(text: str, position: int, expected: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    err = info.value
    assert expected in err.message
    assert err.details["position"] == position
    assert f"position {position}" in err.message
    caret_line = err.message.splitlines()[-1]
    assert caret_line == "  " + " " * position + "^"
    assert err.http_status == 400 and isinstance(err, InvalidArgument)


def test_filter_must_be_text() -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(3)  # type: ignore[arg-type]


def test_parse_order_by() -> None:
    assert parse_order_by(["metrics.acc DESC", "params.lr", "attributes.start_time ASC",
                           "start_time", "tags.`a b` desc", "name asc, metric.x"]) == (
        OrderKey("metrics", "acc", False),
        OrderKey("params", "lr", True),
        OrderKey("attributes", "start_time", True),
        OrderKey("attributes", "start_time", True),
        OrderKey("tags", "a b", False),
        OrderKey("attributes", "run_name", True),
        OrderKey("metrics", "x", True),
    )
    assert parse_order_by(None) == parse_order_by([]) == parse_order_by([""]) == ()
    assert parse_order_by("metrics.acc DESC") == (OrderKey("metrics", "acc", False),)
    assert str(OrderKey("tags", "a b", False)) == "tags.`a b` DESC"


@pytest.mark.parametrize("item, message", [
    ("metrics.acc DOWN", "expected ASC, DESC, ',' or the end of the item"),
    ("bogus DESC", "an attribute name"),
    ("metrics.", "a key name"),
])
def test_order_by_errors(item: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match="Invalid order_by item") as info:
        parse_order_by([item])
    assert message in info.value.message


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    for offset in (0, 1, 1000, 123456789):
        token = encode_page_token(offset)
        assert decode_page_token(token) == offset
    assert decode_page_token(None) == decode_page_token("") == 0
    for bad in ("not base64!", "e30=", encode_page_token(0)[:-2], "WzFd",
                "eyJvZmZzZXQiOiAtMX0=", "eyJvZmZzZXQiOiB0cnVlfQ==", "eyJvZmZzZXQiOiAiMSJ9"):
        with pytest.raises(InvalidArgument, match="Invalid page token"):
            decode_page_token(bad)


# ---------------------------------------------------------------------------------------
# Pure-Python semantics

def test_missing_keys_never_match_not_even_not_equal() -> None:
    run = make_run(metrics={"acc": 0.5}, params={"lr": "0.1"}, tags={"team": "a"})
    for text in ("metrics.loss != 1", "params.opt != 'x'", "tags.owner NOT IN ('x')",
                 "attributes.end_time != 5", "attributes.parent_id != 'p'"):
        assert not matches(run, parse_filter(text)), text
    assert matches(run, parse_filter("tags.owner IS NULL and tags.team IS NOT NULL"))
    assert matches(run, parse_filter("attributes.end_time IS NULL"))


def test_nan_never_matches_and_infinity_compares() -> None:
    run = make_run(metrics={"a": NAN, "b": INF, "c": -INF})
    for op in ("=", "!=", "<", "<=", ">", ">="):
        assert not matches(run, parse_filter(f"metrics.a {op} 0")), op
    assert not matches(run, parse_filter("metrics.a NOT IN (0)"))
    assert matches(run, parse_filter("metrics.a IS NOT NULL"))
    assert matches(run, parse_filter("metrics.b > 1e308 and metrics.c < -1e308"))


def test_params_compare_numerically_with_numbers() -> None:
    run = make_run(params={"lr": "1e-3", "n": "32", "name": "resnet", "v": "1.2.3"})
    assert matches(run, parse_filter("params.lr < 0.01 and params.lr = 0.001 and params.n > 4"))
    assert matches(run, parse_filter("params.n IN (16, 32) and params.n = '32'"))
    assert not matches(run, parse_filter("params.n = '32.0'"))  # strings compare as strings
    assert matches(run, parse_filter("params.n = 32.0"))
    for text in ("params.name > 0", "params.name != 0", "params.v < 10", "params.v NOT IN (1)"):
        assert not matches(run, parse_filter(text)), text


def test_like_and_ilike() -> None:
    run = make_run(tags={"t": "Hello_World%", "u": "Ärger"})
    assert matches(run, parse_filter("tags.t LIKE 'Hello%'"))
    assert not matches(run, parse_filter("tags.t LIKE 'hello%'"))
    assert matches(run, parse_filter("tags.t ILIKE 'hello%'"))
    assert matches(run, parse_filter("tags.t LIKE 'Hello_World_'"))
    assert matches(run, parse_filter("tags.t LIKE '%o_W%'"))
    assert not matches(run, parse_filter("tags.t LIKE 'Hello'"))  # anchored
    assert matches(run, parse_filter("tags.t LIKE '%'"))
    assert matches(run, parse_filter("tags.u ILIKE 'Ä%'"))
    assert not matches(run, parse_filter("tags.u ILIKE 'ä%'"))  # ILIKE folds ASCII letters only
    assert matches(run, parse_filter("tags.t LIKE 'Hello.World%'")) is False  # '.' is literal


def test_attributes() -> None:
    run = make_run("abc", name="my run", status=RunStatus.FAILED, start_time=10, end_time=20,
                   user="bob", parent_id="p1", experiment_id="7")
    assert matches(run, parse_filter(
        "run_id = 'abc' and name LIKE 'my%' and status = 'FAILED' and start_time > 5 "
        "and end_time <= 20 and user = 'bob' and parent_id = 'p1' and experiment_id = '7'"))
    assert not matches(run, parse_filter("status IN ('FINISHED', 'KILLED')"))


def test_sort_missing_last_both_ways_with_tie_breakers() -> None:
    runs = [
        make_run("a", metrics={"m": 1.0}, start_time=1),
        make_run("b", metrics={"m": NAN}, start_time=1),
        make_run("c", start_time=1),
        make_run("d", metrics={"m": 2.0}, start_time=1),
        make_run("e", metrics={"m": 1.0}, start_time=2),
        make_run("f", metrics={"m": 1.0}, start_time=1),
    ]
    ids = lambda order: [r.id for r in sort_runs(runs, parse_order_by(order))]  # noqa: E731
    assert ids(["metrics.m"]) == ["e", "a", "f", "d", "b", "c"]
    assert ids(["metrics.m DESC"]) == ["d", "e", "a", "f", "b", "c"]
    assert ids([]) == ["e", "a", "b", "c", "d", "f"]
    assert ids(["start_time", "run_id DESC"]) == ["f", "d", "c", "b", "a", "e"]


# ---------------------------------------------------------------------------------------
# SQL equals brute force

def _insert(conn: Connection, runs: list[Run]) -> None:
    for table in (tables.latest_metrics, tables.params, tables.tags, tables.runs):
        conn.execute(table.delete())
    if not runs:
        return
    conn.execute(tables.runs.insert(), [dict(
        id=r.id, experiment_id=r.experiment_id, name=r.name, status=r.status.value,
        start_time=r.start_time, end_time=r.end_time, parent_id=r.parent_id, user=r.user,
        lifecycle=r.lifecycle, env="{}") for r in runs])
    params = [dict(run_id=r.id, key=k, value=v) for r in runs for k, v in r.params.items()]
    tags = [dict(run_id=r.id, key=k, value=v) for r in runs for k, v in r.tags.items()]
    metrics = [dict(run_id=r.id, key=k, value=None if math.isnan(v) else v,
                    is_nan=int(math.isnan(v)), step=0, timestamp=0, min=None, max=None, count=1)
               for r in runs for k, v in r.metrics.items()]
    for table, rows in ((tables.params, params), (tables.tags, tags),
                        (tables.latest_metrics, metrics)):
        if rows:
            conn.execute(table.insert(), rows)


def _brute(runs: list[Run], experiment_ids: list[str] | None, flt: Any, order: Any) -> list[str]:
    chosen = [r for r in runs if r.lifecycle == "active" and matches(r, flt)
              and (experiment_ids is None or r.experiment_id in experiment_ids)]
    return [r.id for r in sort_runs(chosen, order)]


@pytest.fixture(scope="module")
def sqlite_engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    tables.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(pg_database: str) -> Iterator[Engine]:  # noqa: F811  (the imported fixture)
    """The index tables in a fresh schema of the session's PostgreSQL test database."""
    url = create_schema(pg_database).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    tables.metadata.create_all(engine)
    yield engine
    engine.dispose()


METRIC_KEYS = ["acc", "loss", "val loss"]
PARAM_KEYS = ["lr", "model", "n"]
TAG_KEYS = ["team", "mlflow.user", "note"]
STRINGS = ["", "a", "A", "ab", "Ab", "aB", "a_b", "a%b", "x*y", "[q]", "a?", "ä", "Ä", "it's",
           "a\\b", "a.b", "cnn", "vision", "b", "0.5"]
# Numeric texts, some not numbers: each is exact in binary or canonical, so every backend
# converts it the same way (see docs/search.md on SQLite's text-to-real conversion).
NUMERIC_TEXTS = ["0", "1", "-1", "0.5", "1e-05", "1E3", ".5", "1.", "+2", "0.001", "10", "007",
                 "1e9999", "-0.0", "2.5e-3", "32", "1e12345", "1.2.3", "1e", "e5", " 1", "nan",
                 "inf", "0x10", "1_0", "\u0661", "1e+2", "-.25", "1 ", "\t1", "1\n", "1e00001",
                 "1e0001", "9007199254740993", "1e-9999", "+.5E+3"]
NUMBERS = [0.0, 0.5, 1.0, -1.0, 1e-05, 2.0, 10.0, 0.001, 32.0, 1000.0, 1e300, -0.25, 100.0]
METRIC_VALUES = NUMBERS + [NAN, INF, -INF, -0.0]

run_ids = st.text(alphabet="abAB019_", min_size=1, max_size=3)
metric_values = st.one_of(st.sampled_from(METRIC_VALUES), st.floats())

runs_strategy = st.lists(st.builds(
    Run,
    id=run_ids,
    name=st.sampled_from(STRINGS),
    experiment_id=st.sampled_from(["0", "1"]),
    experiment=st.just("e"),
    status=st.sampled_from(list(RunStatus)),
    start_time=st.integers(0, 3),
    end_time=st.none() | st.integers(0, 5),
    user=st.sampled_from(["alice", "Alice", "bob", ""]),
    parent_id=st.none() | st.sampled_from(["a", "b", "A"]),
    params=st.dictionaries(st.sampled_from(PARAM_KEYS),
                           st.sampled_from(NUMERIC_TEXTS + STRINGS), min_size=1, max_size=3),
    metrics=st.dictionaries(st.sampled_from(METRIC_KEYS), metric_values, min_size=1, max_size=3),
    tags=st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(STRINGS),
                         min_size=1, max_size=3),
    lifecycle=st.sampled_from(["active", "active", "active", "deleted"]),
), min_size=1, max_size=12, unique_by=lambda r: r.id)

PATTERNS = ["%", "_", "a%", "%b", "A%", "a_b", "%.%", "x*y", "[q]", "a?", "%'%", "ä", "Ä%",
            "a\\b", "", "%a%b%", "__"]
STRING_OPS = ["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"]
NUMBER_OPS = ["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "IS NULL", "IS NOT NULL"]


@st.composite
def clauses(draw: Any) -> Clause:
    entity = draw(st.sampled_from(["metrics", "params", "tags", "attributes"]))
    if entity == "attributes":
        key = draw(st.sampled_from(["run_id", "run_name", "status", "user", "experiment_id",
                                    "parent_id", "start_time", "end_time"]))
        numeric = key in ("start_time", "end_time")
        pool = st.integers(-1, 6) if numeric else st.sampled_from(
            STRINGS + ["FAILED", "FINISHED", "RUNNING", "alice", "0", "1", "a", "b", "A"])
    elif entity == "metrics":
        key, numeric = draw(st.sampled_from(METRIC_KEYS * 3 + ["absent"])), True
        pool = st.sampled_from(NUMBERS) | st.floats(allow_nan=False, allow_infinity=False)
    elif entity == "params":
        key, numeric = draw(st.sampled_from(PARAM_KEYS * 3 + ["absent"])), draw(st.booleans())
        pool = st.sampled_from(NUMBERS) if numeric else st.sampled_from(NUMERIC_TEXTS + STRINGS)
    else:
        key, numeric = draw(st.sampled_from(TAG_KEYS * 3 + ["absent"])), False
        pool = st.sampled_from(STRINGS)
    op = draw(st.sampled_from(NUMBER_OPS if numeric else STRING_OPS))
    if op in ("IS NULL", "IS NOT NULL"):
        value = None
    elif op in ("LIKE", "ILIKE"):
        value = draw(st.sampled_from(PATTERNS + STRINGS))
    elif op in ("IN", "NOT IN"):
        value = tuple(draw(st.lists(pool, min_size=1, max_size=3)))
    else:
        value = draw(pool)
    if entity in ("metrics", "params") and numeric and value is not None:
        value = tuple(map(float, value)) if isinstance(value, tuple) else float(value)
    return Clause(entity, key, op, value)


order_keys = st.builds(
    OrderKey,
    entity=st.sampled_from(["metrics", "params", "tags", "attributes"]),
    key=st.sampled_from(METRIC_KEYS + PARAM_KEYS + TAG_KEYS),
    ascending=st.booleans(),
).map(lambda k: k if k.entity != "attributes" else OrderKey(
    "attributes", {"acc": "start_time", "loss": "end_time", "val loss": "run_name", "lr": "status",
                   "model": "user", "n": "parent_id", "team": "run_id", "mlflow.user":
                   "experiment_id", "note": "end_time"}[k.key], k.ascending))

queries = st.tuples(
    st.sampled_from([None, None, ["0", "1"], ["0"], ["9"], []]),
    st.lists(clauses(), max_size=2).map(tuple),
    st.lists(order_keys, max_size=3).map(tuple),
)


def _check_equivalence(engine: Engine, runs: list[Run], query_list: list[Any]) -> None:
    with engine.begin() as conn:
        _insert(conn, runs)
    with engine.connect() as conn:
        for experiment_ids, flt, order in query_list:
            # The text form parses back to the same values (grammar round trip).
            assert parse_filter(format_filter(flt)) == flt
            assert parse_order_by([str(k) for k in order]) == order
            expected = _brute(runs, experiment_ids, flt, order)
            stmt = compile_query(experiment_ids, flt, order, tables)
            got = [row.id for row in conn.execute(stmt)]
            assert got == expected, (format_filter(flt), [str(k) for k in order])
            if len(expected) > 2:  # a page in the middle
                page = compile_query(experiment_ids, flt, order, tables, limit=2, offset=1)
                assert [row.id for row in conn.execute(page)] == expected[1:3]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=runs_strategy, query_list=st.lists(queries, min_size=1, max_size=6))
def test_sqlite_query_equals_brute_force(sqlite_engine: Engine, runs: list[Run],
                                         query_list: list[Any]) -> None:
    _check_equivalence(sqlite_engine, runs, query_list)


@pytest.mark.postgres
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=runs_strategy, query_list=st.lists(queries, min_size=1, max_size=6))
def test_postgres_query_equals_brute_force(postgres_engine: Engine, runs: list[Run],
                                           query_list: list[Any]) -> None:
    _check_equivalence(postgres_engine, runs, query_list)


def test_sql_handles_huge_and_odd_numeric_params(sqlite_engine: Engine) -> None:
    runs = [make_run(f"r{i}", params={"x": v}) for i, v in enumerate(
        ["1e9999", "-1e-9999", "9" * 900, "1" + "0" * 1000, "1e99999", "12abc", "1.5"])]
    with sqlite_engine.begin() as conn:
        _insert(conn, runs)
    with sqlite_engine.connect() as conn:
        for text_ in ("params.x > 1", "params.x < 1", "params.x = 1.5", "params.x != 0"):
            flt = parse_filter(text_)
            got = [row.id for row in conn.execute(compile_query(None, flt, (), tables))]
            assert got == _brute(runs, None, flt, ()), text_


def test_sql_selects_active_runs_of_given_experiments(sqlite_engine: Engine) -> None:
    runs = [make_run("a", experiment_id="1"), make_run("b", experiment_id="2"),
            make_run("c", experiment_id="1", lifecycle="deleted")]
    with sqlite_engine.begin() as conn:
        _insert(conn, runs)
    with sqlite_engine.connect() as conn:
        def ids(*args: Any, **kw: Any) -> list[str]:
            return [row.id for row in conn.execute(compile_query(*args, **kw))]
        assert ids(["1"], (), (), tables) == ["a"]
        assert ids(None, (), (), tables) == ["a", "b"]
        assert ids([], (), (), tables) == []
        assert ids(["1"], (), (), tables, lifecycle=None) == ["a", "c"]
        assert ids(["1"], (), (), tables, lifecycle="deleted") == ["c"]
