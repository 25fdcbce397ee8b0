"""The statistics of cairn.monitoring.drift against SciPy's own, on real samples."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from cairn.errors import InvalidArgument
from cairn.monitoring import drift as D

RNG = np.random.default_rng(42)


@pytest.mark.parametrize("n,m,shift", [(50, 40, 0.0), (800, 3000, 0.3), (900, 20_000, 0.0),
                                       (5000, 200_000, 0.05), (12_000, 11_000, 0.0)])
def test_ks_is_scipys(n, m, shift):
    a, b = RNG.normal(size=n), RNG.normal(shift, 1, size=m)
    d, p = D.ks(np.sort(a), np.sort(b))
    want = stats.ks_2samp(a, b)
    assert d == pytest.approx(want.statistic, abs=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)


def test_ks_with_ties_is_scipys():
    a = RNG.integers(0, 30, 700).astype(float)
    b = RNG.integers(0, 31, 25_000).astype(float)
    d, p = D.ks(np.sort(a), np.sort(b))
    want = stats.ks_2samp(a, b)
    assert (d, p) == (pytest.approx(want.statistic, abs=1e-12), pytest.approx(want.pvalue))


@pytest.mark.parametrize("dist", ["normal", "integers", "lognormal"])
def test_wasserstein_is_scipys(dist):
    make = {"normal": lambda n, s: RNG.normal(s, 1, n),
            "integers": lambda n, s: RNG.integers(0, 50 + int(s * 10), n).astype(float),
            "lognormal": lambda n, s: RNG.lognormal(s, 1, n)}[dist]
    a, b = make(20_000, 0.0), make(70_000, 0.5)
    got = D.wasserstein(np.sort(a), np.sort(b))
    assert got == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_chisquare_is_scipys():
    ref, cur = np.array([300, 200, 100, 50]), np.array([40, 35, 20, 5])
    expected = ref * cur.sum() / ref.sum()
    assert D.chisquare(ref, cur) == pytest.approx(stats.chisquare(cur, expected).pvalue, rel=1e-12)


def test_chisquare_new_category_is_drift_and_one_category_is_not():
    assert D.chisquare(np.array([10, 10, 0]), np.array([5, 5, 1])) == 0.0
    assert D.chisquare(np.array([10]), np.array([7])) == 1.0


def test_jensenshannon_is_scipys():
    p, q = np.array([5, 0, 3, 2]), np.array([1, 4, 0, 5])
    assert D.jensenshannon(p, q) == pytest.approx(scipy_js(p / p.sum(), q / q.sum()), rel=1e-12)
    assert D.jensenshannon(p, p * 3) == 0.0
    assert D.jensenshannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(math.sqrt(math.log(2)))


def test_psi_by_hand():
    p, q = np.array([50, 30, 20]), np.array([30, 30, 40])
    pp, qq = p / 100, q / 100
    assert D.psi(p, q) == pytest.approx(float(np.sum((qq - pp) * np.log(qq / pp))))
    # an empty bin counts as 1e-4, not as an infinite log
    assert math.isfinite(D.psi(np.array([10, 0]), np.array([5, 5])))


def test_compare_numerical_defaults_and_normalisation():
    ref = RNG.normal(10, 4, 5000)
    cur = RNG.normal(11, 4, 3000)
    r = D.prepare(ref)
    assert (r.kind, r.default_method(), r.std) == ("numerical", "wasserstein", pytest.approx(np.std(ref)))
    got = D.compare(r, cur, column="x")
    want = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert got.score == pytest.approx(want) and got.drifted is bool(want >= 0.1)
    small = D.prepare(ref[:1000])
    assert small.default_method() == "ks"
    res = D.compare(small, cur)
    assert res.score == pytest.approx(stats.ks_2samp(ref[:1000], cur).pvalue) and res.drifted


def test_constant_reference_uses_the_floor():
    r = D.prepare(np.full(2000, 3.0).tolist() + [3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert r.kind == "numerical"  # 6 distinct values: numbers
    res = D.compare(r, np.full(100, 3.0), method="wasserstein")
    assert res.score == pytest.approx(stats.wasserstein_distance(
        np.concatenate([np.full(2001, 3.0), [4, 5, 6, 7, 8]]), np.full(100, 3.0)) / max(r.std, 0.001))


def test_numeric_histograms_for_js_and_psi_match_scipy():
    ref, cur = RNG.normal(0, 1, 4000), RNG.normal(0.5, 1, 3000)
    r = D.prepare(ref)
    edges = np.concatenate([[-np.inf], r.edges, [np.inf]])
    rc, cc = np.histogram(ref, edges)[0], np.histogram(cur, edges)[0]
    assert len(rc) == math.ceil(math.log2(4000)) + 1  # Sturges' rule, quantile bins
    js = D.compare(r, cur, method="jensenshannon")
    assert js.score == pytest.approx(scipy_js(rc / rc.sum(), cc / cc.sum()))
    psi = D.compare(r, cur, method="psi")
    assert psi.score == pytest.approx(D.psi(rc, cc)) and psi.drifted and psi.threshold == 0.2


def test_categorical_rule_and_methods():
    few = RNG.integers(0, 5, 3000).astype(float)        # 5 distinct numbers: categories
    assert D.prepare(few).kind == "categorical"
    assert D.prepare(RNG.integers(0, 6, 3000)).kind == "numerical"
    assert D.prepare(np.array([True, False] * 10)).kind == "categorical"
    words = np.array(["a", "b", "c"], object)[RNG.integers(0, 3, 600)]
    r = D.prepare(words)
    assert (r.kind, r.default_method(), r.categories) == ("categorical", "chisquare", ("a", "b", "c"))
    cur = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, object)
    res = D.compare(r, cur)
    want = stats.chisquare([50, 30, 20], r.values * 100 / r.values.sum()).pvalue
    assert res.score == pytest.approx(want) and res.drifted is bool(want < 0.05)
    big = D.prepare(np.concatenate([words, words]))
    assert big.default_method() == "jensenshannon"
    js = D.compare(big, cur)
    assert js.score == pytest.approx(scipy_js(big.values / big.values.sum(), np.array([.5, .3, .2])))


def test_unseen_categories_and_missing_values():
    r = D.prepare(np.array(["a", "b"] * 700, object))
    cur = np.array(["a", "b", "zebra", None, float("nan")] * 20, object)
    res = D.compare(r, cur)
    assert res.method == "jensenshannon" and res.current_rows == 60 and res.missing == 0.4
    # the unseen category is a bin of its own, where the reference has nothing
    assert res.score == pytest.approx(scipy_js([0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]))
    chi = D.compare(r, cur, method="chisquare")
    assert chi.score == 0.0 and chi.drifted


def test_numbers_missing_are_dropped_and_counted():
    r = D.prepare(RNG.normal(size=1500).tolist() + [np.nan, np.inf])
    assert r.count == 1500 and r.rows == 1502
    cur = np.concatenate([RNG.normal(size=90), [np.nan] * 5, [np.inf, -np.inf] * 2, [np.nan]])
    res = D.compare(r, cur)
    assert res.current_rows == 90 and res.missing == pytest.approx(10 / 100)
    assert res.score == pytest.approx(stats.wasserstein_distance(r.values, cur[:90]) / r.std)


def test_no_values_gives_no_verdict():
    r = D.prepare(RNG.normal(size=100))
    res = D.compare(r, np.full(7, np.nan))
    assert (res.score, res.drifted, res.missing, res.note) == (None, None, 1.0, "no values")
    empty = D.compare(r, np.array([], float))
    assert empty.drifted is None and empty.missing == 0.0


@pytest.mark.parametrize("method,kind,message", [
    ("kss", None, "unknown drift method 'kss'"),
    ("ks", "categorical", "ks compares numbers"),
    ("wasserstein", "categorical", "wasserstein compares numbers"),
    ("chisquare", "numerical", "chisquare compares categories"),
])
def test_bad_methods(method, kind, message):
    with pytest.raises(InvalidArgument, match=message):
        D.check_method(method, kind, "amount")


@pytest.mark.parametrize("value", ["x", "nan", "-1", "inf", True, None])
def test_bad_thresholds(value):
    with pytest.raises(InvalidArgument, match="threshold"):
        D.check_threshold(value)


def test_p_value_thresholds_stay_below_one():
    with pytest.raises(InvalidArgument, match="p-value"):
        D.check_threshold(2, "ks")
    assert D.check_threshold("0.01", "ks") == 0.01


def test_a_column_must_be_one_dimensional():
    with pytest.raises(InvalidArgument, match="1-D"):
        D.prepare(np.zeros((3, 2)))


def test_mixed_kinds_compare_as_text():
    r = D.prepare(np.array([1, "1", "a", 2.5] * 300, object))
    assert r.kind == "categorical" and r.categories == ("1", "2.5", "a")
    res = D.compare(r, np.array(["a", 1, 2.5, "zz"] * 10, object))
    codes = D.encode(r, np.array(["a", 1, 2.5, "zz", None], object))
    assert codes.tolist() == [2, 0, 1, 3, -1]
    assert res.current_rows == 40 and res.drifted


def test_nullable_pandas_columns_are_numbers():
    import pandas as pd

    from cairn.monitoring.reference import _frame_columns

    cols = _frame_columns(pd.DataFrame({"n": pd.array([1, None, 3] * 10, dtype="Int64"),
                                        "b": [True, False, True] * 10,
                                        "s": pd.array(["x", None, "y"] * 10, dtype="string")}),
                          "t@1")
    assert cols["n"].dtype == np.float64 and np.isnan(cols["n"][1])
    assert cols["b"].dtype == bool
    assert cols["s"].dtype == object and cols["s"][1] is None
    assert D.prepare(cols["n"]).kind == "categorical"   # 2 distinct values
    assert D.prepare(cols["s"]).categories == ("x", "y")
