"""Search at scale: a 3-clause filter + order by a metric over N runs in the SQLite index.

Builds a fresh SQLite index (``tables.metadata.create_all``) with the benchmark's runs
(20 params, 10 metrics, 5 tags each, from ``_common.run_payload``), then times
``compile_query`` + execute + fetch for the benchmark filter, checking the answer
against the pure-Python evaluation.  Prints timings; asserts nothing about them.

    .venv/bin/python benchmarks/search_scale.py [--runs 10000] [--repeat 20] [--explain]
        [--analyze] [--covering] [--postgres URL]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from _common import SEARCH_FILTER, SEARCH_ORDER_BY, run_payload  # noqa: E402

from cairn.entities import Run, RunStatus  # noqa: E402
from cairn.search import (  # noqa: E402
    compile_query, matches, parse_filter, parse_order_by, sort_runs,
)
from cairn.store.sql import tables  # noqa: E402


def build_runs(n: int) -> list[Run]:
    runs = []
    for i in range(n):
        params, metrics, tags = run_payload(i)
        runs.append(Run(
            id=uuid.UUID(int=i * 7919 + 1).hex, name=f"run-{i:05d}", experiment_id="1",
            experiment="bench", status=RunStatus.FINISHED, start_time=1_700_000_000_000 + i,
            end_time=None, user="bench", params=params, metrics=metrics, tags=tags))
    return runs


def load(engine, runs: list[Run]) -> None:
    with engine.begin() as conn:
        conn.execute(tables.runs.insert(), [dict(
            id=r.id, experiment_id=r.experiment_id, name=r.name, status=r.status.value,
            start_time=r.start_time, end_time=r.end_time, user=r.user, lifecycle="active",
            env="{}") for r in runs])
        conn.execute(tables.params.insert(), [
            dict(run_id=r.id, key=k, value=v) for r in runs for k, v in r.params.items()])
        conn.execute(tables.tags.insert(), [
            dict(run_id=r.id, key=k, value=v) for r in runs for k, v in r.tags.items()])
        conn.execute(tables.latest_metrics.insert(), [
            dict(run_id=r.id, key=k, value=v, is_nan=int(math.isnan(v)), step=0, timestamp=0,
                 min=v, max=v, count=1) for r in runs for k, v in r.metrics.items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--explain", action="store_true", help="print the query plan")
    ap.add_argument("--analyze", action="store_true",
                    help="run ANALYZE after loading (the store does not)")
    ap.add_argument("--postgres", metavar="URL", help="use this PostgreSQL database instead")
    ap.add_argument("--covering", action="store_true",
                    help="add (key, value, run_id) indexes on params and tags (SQLite)")
    args = ap.parse_args()

    runs = build_runs(args.runs)
    flt, order = parse_filter(SEARCH_FILTER), parse_order_by([SEARCH_ORDER_BY])
    expected = [r.id for r in sort_runs([r for r in runs if matches(r, flt)], order)]

    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            schema = f"cairn_bench_{uuid.uuid4().hex[:8]}"
            base = create_engine(args.postgres)
            with base.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine = base.execution_options(schema_translate_map={None: schema})
        else:
            engine = create_engine(f"sqlite:///{tmp}/index.db")
        try:
            tables.metadata.create_all(engine)
            if args.covering and not args.postgres:
                with engine.begin() as conn:
                    for table in ("params", "tags"):
                        conn.execute(text(f"CREATE INDEX ix_{table}_key_value_run "
                                          f"ON {table} (key, value, run_id)"))
            t0 = time.perf_counter()
            load(engine, runs)
            if args.postgres:
                with engine.begin() as conn:
                    for table in ("runs", "params", "tags", "latest_metrics"):
                        conn.execute(text(f'ANALYZE "{schema}".{table}'))
            if args.analyze and not args.postgres:
                with engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            print(f"loaded {args.runs} runs in {time.perf_counter() - t0:.1f} s "
                  f"({engine.dialect.name})")

            with engine.connect() as conn:
                if args.explain:
                    stmt = compile_query(["1"], flt, order, tables)
                    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
                    sqlite = engine.dialect.name == "sqlite"
                    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
                    if args.postgres:  # text() does not see schema_translate_map
                        conn.execute(text(f'SET search_path TO "{schema}"'))
                    for row in conn.execute(text(prefix + sql)):
                        print("  ", *row)
                times, cpu = [], []
                for _ in range(args.repeat):
                    t0, c0 = time.perf_counter(), time.process_time()
                    stmt = compile_query(["1"], flt, order, tables)
                    ids = [row.id for row in conn.execute(stmt)]
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                    assert ids == expected, "wrong answer"
                first_page = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    stmt = compile_query(["1"], flt, order, tables, limit=100)
                    page = [row.id for row in conn.execute(stmt)]
                    first_page.append(time.perf_counter() - t0)
                    assert page == expected[:100], "wrong page"
        finally:
            if args.postgres:
                with base.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()

    print(f"filter:   {SEARCH_FILTER}\norder_by: {SEARCH_ORDER_BY}")
    print(f"matches:  {len(expected)} of {args.runs} runs")
    print(f"all matches: median {statistics.median(times) * 1e3:.1f} ms, "
          f"min {min(times) * 1e3:.1f} ms (this process's CPU: median "
          f"{statistics.median(cpu) * 1e3:.1f} ms; SQLite runs in-process)")
    print(f"first 100:   median {statistics.median(first_page) * 1e3:.1f} ms, "
          f"min {min(first_page) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
