"""Micro-batching: concurrent requests share one predict, and each gets exactly what its own
predict would have answered; versions and input shapes are never mixed; a request that makes
the model raise fails alone."""

import asyncio
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.serving.app import ScoringApp
from cairn.serving.batching import MicroBatcher, shape_key
from cairn.serving.holder import ModelHolder, Served, load_version, predictor
from serving import ThreadedServer

from .conftest import COLUMNS, fit, make_frame
from .models import Proba, Raises, Tagged


def served(model):
    """A Served around ``model`` (the batcher needs only its identity and predict)."""
    return Served(None, model, predictor(model, "test model"))


def requests(n, rows=(1, 2, 3), seed=1):
    """``n`` data frames of 1 to 3 rows in the signature's columns and dtypes."""
    rng = np.random.RandomState(seed)
    return [pd.DataFrame(rng.randn(rows[i % len(rows)], 3), columns=COLUMNS) for i in range(n)]


async def gather(batcher, pairs):
    """Every (served, inputs) through the batcher at once; exceptions returned, not raised."""
    return await asyncio.gather(*(batcher.predict(s, x) for s, x in pairs),
                                return_exceptions=True)


class Recorder:
    """Wraps a model and records each batch it is given (its rows, columns and dtypes)."""

    def __init__(self, predict, delay=0.0):
        self._predict = predict
        self.delay = delay
        self.seen = []
        self.lock = threading.Lock()

    def predict(self, x):
        with self.lock:
            self.seen.append(x)
        time.sleep(self.delay)
        return self._predict(x)


# -- answers are exact ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["forest", "logreg"])
def test_each_request_gets_exactly_its_unbatched_prediction(kind):
    model = fit(make_frame(), kind)
    labels, proba = served(model), served(Proba(model))
    xs = requests(80)
    batcher = MicroBatcher(max_batch=16)
    got = asyncio.run(gather(batcher, [(labels, x) for x in xs] + [(proba, x) for x in xs]))
    for x, answer in zip(xs, got[:80]):
        assert isinstance(answer, np.ndarray) and np.array_equal(answer, model.predict(x))
    for x, answer in zip(xs, got[80:]):
        if kind == "forest":  # a forest's sums are row by row: bit for bit the same
            assert np.array_equal(answer, model.predict_proba(x))
        else:
            # A linear model's matrix product goes through BLAS, whose summation order can
            # depend on the number of rows: the last bit of a probability may differ.
            np.testing.assert_allclose(answer, model.predict_proba(x), rtol=0, atol=1e-15)
    stats = batcher.stats()
    assert stats["batches"] >= 2 and stats["mean_batch_size"] > 1
    assert stats["largest_batch"] <= 16 and stats["fallbacks"] == 0 and stats["pending"] == 0
    assert not batcher._groups  # nothing (no old version) is held once all is answered


def test_arrays_are_batched_by_dtype_and_trailing_shape():
    rec = Recorder(lambda x: x.reshape(len(x), -1).sum(axis=1))
    s = served(rec)
    rng = np.random.RandomState(2)
    xs = [rng.randn(2, 3), rng.randn(1, 3), rng.randn(1, 3).astype(np.float32),
          rng.randn(3, 3, 1), rng.randn(1, 3), rng.randn(2, 4), rng.randn(1, 3, 1)] * 3
    got = asyncio.run(gather(MicroBatcher(), [(s, x) for x in xs]))
    for x, answer in zip(xs, got):
        assert np.array_equal(answer, rec._predict(x)) and answer.dtype == x.dtype
    for batch in rec.seen:  # one dtype and trailing shape per predict
        assert any(batch.dtype == x.dtype and batch.shape[1:] == x.shape[1:] for x in xs)
    assert max(len(b) for b in rec.seen) > 3


@pytest.mark.parametrize("out", ["list", "tuple", "series", "frame", "2d"])
def test_outputs_of_each_type_are_split_by_rows(out):
    def predict(x):
        values = (x["amount"] * 10).round(6)
        if out == "list":
            return values.tolist()
        if out == "tuple":
            return tuple(values.tolist())
        if out == "series":
            return pd.Series(values.to_numpy(), name="p")
        if out == "frame":
            return pd.DataFrame({"p": values.to_numpy(), "q": x["age"].to_numpy()})
        return np.stack([values.to_numpy(), x["age"].to_numpy()], axis=1)

    rec = Recorder(predict)
    xs = requests(30)
    got = asyncio.run(gather(MicroBatcher(), [(s, x) for s in [served(rec)] for x in xs]))
    assert max(len(b) for b in rec.seen) > 3
    for x, answer in zip(xs, got):
        want = predict(x)
        assert type(answer) is type(want)
        if out == "series":
            pd.testing.assert_series_equal(answer, want, check_index_type=True)
        elif out == "frame":
            pd.testing.assert_frame_equal(answer, want, check_index_type=True)
        elif out == "2d":
            assert np.array_equal(answer, want)
        else:
            assert answer == want


def test_torch_tensor_outputs_are_split_by_rows():
    torch = pytest.importorskip("torch")
    rec = Recorder(lambda x: torch.as_tensor(x) * 2)
    xs = [np.full((i % 3 + 1, 2), float(i)) for i in range(20)]
    got = asyncio.run(gather(MicroBatcher(), [(s, x) for s in [served(rec)] for x in xs]))
    assert max(len(b) for b in rec.seen) > 3
    for x, answer in zip(xs, got):
        assert isinstance(answer, torch.Tensor) and torch.equal(answer, torch.as_tensor(x) * 2)


# -- what is never merged -----------------------------------------------------------------

def test_a_batch_never_mixes_versions():
    class Version:
        """Refuses rows sent to another version (each row carries the version it was sent to)."""

        def __init__(self, tag):
            self.tag = tag

        def predict(self, x):
            time.sleep(0.002)
            assert (x["version"] == self.tag).all(), "rows of another version"
            return [f"{self.tag}:{v}" for v in x["n"]]

    v1, v2 = served(Version(1)), served(Version(2))
    pairs = []
    for i in range(120):
        s, tag = (v1, 1) if i % 3 else (v2, 2)  # interleaved, as during a switch
        pairs.append((s, pd.DataFrame({"version": [tag], "n": [i]})))
    got = asyncio.run(gather(MicroBatcher(), pairs))
    assert got == [[f"{x['version'][0]}:{x['n'][0]}"] for _, x in pairs]


def test_column_order_and_dtypes_are_not_merged():
    rec = Recorder(lambda x: [f"{list(x.columns)}:{list(map(str, x.dtypes))}"] * len(x))
    s = served(rec)
    base = pd.DataFrame({"a": [1.0], "b": [2.0]})
    kinds = [base, base[["b", "a"]], base.astype({"a": "int64"}),
             base.astype({"a": "float32"}), base.rename(columns={"b": "c"})]
    xs = [kinds[i % len(kinds)] for i in range(50)]
    got = asyncio.run(gather(MicroBatcher(), [(s, x) for x in xs]))
    assert got == [rec._predict(x) for x in xs]
    for batch in rec.seen:  # each predict saw one layout, and it was one a request had
        assert any(list(batch.columns) == list(k.columns) and
                   list(batch.dtypes) == list(k.dtypes) for k in kinds)
    assert max(len(b) for b in rec.seen) > 1
    assert len({shape_key(k) for k in kinds}) == len(kinds)


def test_frames_with_their_own_index_get_the_same_answers():
    model = fit(make_frame())
    keep = Recorder(lambda x: pd.Series(model.predict(x[COLUMNS]), index=x.index))
    fresh = Recorder(lambda x: pd.Series(model.predict(x[COLUMNS])))
    xs = requests(40)
    for i, x in enumerate(xs):
        if i % 2:
            x.index = pd.Index([100 + 10 * i + k for k in range(len(x))])
    for rec in (keep, fresh):
        got = asyncio.run(gather(MicroBatcher(), [(s, x) for s in [served(rec)] for x in xs]))
        for x, answer in zip(xs, got):
            pd.testing.assert_series_equal(answer, rec._predict(x), check_index_type=True)
    # numpy answers do not depend on the index: batched whatever it is.
    labels = Recorder(model.predict)
    got = asyncio.run(gather(MicroBatcher(), [(s, x) for s in [served(labels)] for x in xs]))
    assert all(np.array_equal(a, model.predict(x)) for a, x in zip(got, xs))
    assert max(len(b) for b in labels.seen) > 3
    assert all(isinstance(b.index, pd.RangeIndex) for b in labels.seen)


def test_dicts_and_empty_inputs_go_alone_and_oversized_requests_go_alone():
    sizes = []
    rec = Recorder(lambda x: [0] * (len(x) if not isinstance(x, dict) else len(x["a"])))
    s = served(rec)
    big = pd.DataFrame(np.zeros((10, 3)), columns=COLUMNS)
    pairs = [(s, {"a": np.zeros(2)}), (s, pd.DataFrame(columns=COLUMNS, dtype=float)),
             (s, big)] + [(s, x) for x in requests(20, rows=(1,))]
    batcher = MicroBatcher(max_batch=4, on_batch=lambda _s, n: sizes.append(n))
    got = asyncio.run(gather(batcher, pairs))
    assert got == [[0, 0], [], [0] * 10] + [[0]] * 20
    assert max(len(b) for b in rec.seen) == 10  # the oversized request went alone
    assert sorted(sizes)[-1] == 10 and all(n <= 4 for n in sorted(sizes)[:-1])
    stats = batcher.stats()
    assert stats["direct"] == 3 and stats["largest_batch"] <= 4 and stats["rows"] == 20


# -- failures stay with their request -----------------------------------------------------

def test_a_request_that_makes_the_model_raise_fails_alone():
    model = fit(make_frame())
    s = served(Raises(model))
    xs = requests(60)
    for x in xs[5::7]:
        x.loc[0, "amount"] = 500.0  # Raises refuses amounts over 100
    batcher = MicroBatcher()
    got = asyncio.run(gather(batcher, [(s, x) for x in xs]))
    for x, answer in zip(xs, got):
        if (x["amount"] > 100).any():
            assert isinstance(answer, ValueError) and "amount out of range" in str(answer)
        else:
            assert np.array_equal(answer, model.predict(x))
    assert batcher.stats()["fallbacks"] >= 1


def test_a_model_that_is_not_row_wise_is_predicted_request_by_request():
    def total(x):  # one answer for the whole input, not one per row
        return float(x["amount"].sum())

    def first(x):  # one entry, whatever the rows
        return [float(x["amount"].iloc[0])]

    for fn in (total, first):
        rec = Recorder(fn)
        xs = requests(30)
        batcher = MicroBatcher()
        got = asyncio.run(gather(batcher, [(s, x) for s in [served(rec)] for x in xs]))
        assert got == [fn(x) for x in xs]
        assert batcher.stats()["fallbacks"] >= 1


# -- when batches go ----------------------------------------------------------------------

def test_an_idle_model_predicts_at_once_whatever_max_wait():
    s = served(Tagged("a"))
    batcher = MicroBatcher(max_wait_ms=5000)

    async def one_by_one():
        for _ in range(5):
            await batcher.predict(s, pd.DataFrame({"x": [1.0]}))

    started = time.perf_counter()
    asyncio.run(one_by_one())
    assert time.perf_counter() - started < 2.5  # each alone: not held for 5 s
    assert batcher.stats()["batches"] == 5


def test_requests_arriving_during_a_predict_form_the_next_batch():
    rec = Recorder(lambda x: [0] * len(x), delay=0.05)
    s = served(rec)
    batcher = MicroBatcher(max_batch=64, max_wait_ms=5000)
    asyncio.run(gather(batcher, [(s, x) for x in requests(33, rows=(1,))]))
    assert [len(b) for b in rec.seen] == [1, 32]  # the first at once, the rest together


def test_a_slow_batch_holds_later_requests_at_most_max_wait():
    rec = Recorder(lambda x: [0] * len(x))
    slow = [0.6, 0.0]

    def predict(x):
        time.sleep(slow.pop(0) if slow else 0.0)
        return [0] * len(x)

    rec._predict = predict
    s = served(rec)
    batcher = MicroBatcher(max_wait_ms=20, max_in_flight=2)

    async def scenario():
        first = asyncio.ensure_future(batcher.predict(s, pd.DataFrame({"x": [1.0]})))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await batcher.predict(s, pd.DataFrame({"x": [2.0]}))
        second = time.perf_counter() - started
        await first
        return second

    assert asyncio.run(scenario()) < 0.4  # went beside the slow one, not after it


def test_max_batch_limits_rows_per_predict():
    rec = Recorder(lambda x: [0] * len(x), delay=0.01)
    xs = requests(100, rows=(1, 2, 3))
    asyncio.run(gather(MicroBatcher(max_batch=7), [(s, x) for s in [served(rec)] for x in xs]))
    assert max(len(b) for b in rec.seen) <= 7
    assert sum(len(b) for b in rec.seen) == sum(len(x) for x in xs)


# -- callbacks, cancellation, shutdown ---------------------------------------------------------

def test_on_batch_sees_every_predict_and_its_failure_fails_no_request():
    seen = []

    def on_batch(s, rows):
        seen.append((s, rows))
        raise RuntimeError("metrics are down")

    s = served(Tagged("a"))
    batcher = MicroBatcher(on_batch=on_batch)
    xs = requests(20)
    got = asyncio.run(gather(batcher, [(s, x) for x in xs]))
    assert got == [["a"] * len(x) for x in xs]
    assert sum(rows for _, rows in seen) == sum(len(x) for x in xs) and all(x is s for x, _ in seen)
    assert len(seen) == batcher.stats()["batches"]


def test_a_caller_that_goes_away_does_not_disturb_the_others():
    rec = Recorder(lambda x: [float(v) for v in x["x"]], delay=0.05)
    s = served(rec)
    batcher = MicroBatcher(max_wait_ms=5000)  # the waiting ones wait for the first

    async def scenario():
        tasks = [asyncio.ensure_future(batcher.predict(s, pd.DataFrame({"x": [float(i)]})))
                 for i in range(10)]
        await asyncio.sleep(0.01)
        tasks[0].cancel()  # in flight
        tasks[5].cancel()  # waiting
        return await asyncio.gather(*tasks, return_exceptions=True)

    got = asyncio.run(scenario())
    assert isinstance(got[0], asyncio.CancelledError) and isinstance(got[5],
                                                                     asyncio.CancelledError)
    assert [g for i, g in enumerate(got) if i not in (0, 5)] == \
        [[float(i)] for i in range(10) if i not in (0, 5)]
    assert sum(len(b) for b in rec.seen) == 9  # the one cancelled while waiting never ran


@pytest.mark.parametrize("drain", [True, False])
def test_close_drains_or_cancels_what_is_waiting(drain):
    rec = Recorder(lambda x: [0] * len(x), delay=0.05)
    s = served(rec)
    batcher = MicroBatcher(max_wait_ms=5000)

    async def scenario():
        tasks = [asyncio.ensure_future(batcher.predict(s, pd.DataFrame({"x": [1.0]})))
                 for _ in range(5)]
        await asyncio.sleep(0.01)
        await batcher.close(drain=drain)
        got = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.predict(s, pd.DataFrame({"x": [1.0]}))
        return got

    got = asyncio.run(scenario())
    assert got[0] == [0]  # in flight: always finished
    if drain:
        assert got[1:] == [[0]] * 4
    else:
        assert all(isinstance(g, asyncio.CancelledError) for g in got[1:])
    assert batcher.stats()["pending"] == 0


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_batch": 2.5},
                                    {"max_wait_ms": -1}, {"max_wait_ms": float("nan")},
                                    {"max_in_flight": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MicroBatcher(**kwargs)


# -- over HTTP ------------------------------------------------------------------------------

def test_32_concurrent_clients_over_http_each_get_their_own_answer(registry, tracking):
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_frame()
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    mv = cairn.Client(str(tracking)).register_model("forest", model, input_example=X[:5])
    batcher = MicroBatcher(max_batch=64, max_wait_ms=2)
    app = ScoringApp(ModelHolder(load_version(registry, mv)), batcher=batcher)
    rows = np.random.RandomState(3).randn(32 * 8, 3)
    want = [model.predict(pd.DataFrame(rows[i:i + 1], columns=COLUMNS)).tolist()
            for i in range(len(rows))]
    got: dict[int, tuple[int, object]] = {}
    start = threading.Barrier(32)

    def client(c, base):
        with httpx.Client(base_url=base, timeout=30) as http:
            start.wait()
            for i in range(c * 8, c * 8 + 8):
                r = http.post("/invocations", json={"dataframe_split": {
                    "columns": COLUMNS, "data": [rows[i].tolist()]}})
                got[i] = (r.status_code, r.json())

    with ThreadedServer(app) as base:
        threads = [threading.Thread(target=client, args=(c, base)) for c in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        status = httpx.get(base + "/v1/status").json()
    assert [got.get(i) for i in range(len(rows))] == \
        [(200, {"predictions": want[i]}) for i in range(len(rows))]
    stats = batcher.stats()
    assert stats["requests"] == len(rows) and stats["largest_batch"] > 1
    assert stats["batches"] < len(rows)  # some requests shared a predict
    assert status["batching"]["requests"] == len(rows)


def test_over_http_a_request_that_makes_the_model_raise_gets_the_only_500(registry, tracking):
    X, y = make_frame()
    model = fit((X, y))
    mv = cairn.Client(str(tracking)).register_model("flaky", Raises(model), input_example=X[:5],
                                                    flavor="pickle")
    batcher = MicroBatcher()
    app = ScoringApp(ModelHolder(load_version(registry, mv)), batcher=batcher)
    rows = np.random.RandomState(4).randn(32 * 4, 3)
    rows[7::16, 0] = 500.0  # Raises refuses amounts over 100
    got: dict[int, int] = {}
    start = threading.Barrier(32)

    def client(c, base):
        with httpx.Client(base_url=base, timeout=30) as http:
            start.wait()
            for i in range(c * 4, c * 4 + 4):
                r = http.post("/invocations", json={"dataframe_split": {
                    "columns": COLUMNS, "data": [rows[i].tolist()]}})
                got[i] = r.status_code if r.status_code != 200 else r.json()["predictions"]

    with ThreadedServer(app) as base:
        threads = [threading.Thread(target=client, args=(c, base)) for c in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert [got.get(i) for i in range(len(rows))] == \
        [500 if rows[i, 0] > 100 else
         model.predict(pd.DataFrame(rows[i:i + 1], columns=COLUMNS)).tolist()
         for i in range(len(rows))]
