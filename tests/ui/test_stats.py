"""The compare page's statistics agree with scipy's (scipy is only a test dependency here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as ss

from cairn import stats

CASES = [(3, 3, False), (5, 4, False), (2, 2, False), (8, 12, False), (10, 12, False),
         (5, 5, True), (30, 25, True), (4, 9, True)]


@pytest.mark.parametrize("n1,n2,ties", CASES)
def test_welch_and_mann_whitney_match_scipy(n1, n2, ties):
    rng = np.random.default_rng(n1 * 100 + n2)
    a, b = rng.normal(0, 1, n1), rng.normal(0.7, 2, n2)
    if ties:
        a, b = np.round(a), np.round(b)
    w, ref = stats.welch(a, b), ss.ttest_ind(a, b, equal_var=False)
    assert w.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert w.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    u, ref_u = stats.mann_whitney(a, b), ss.mannwhitneyu(a, b)
    assert u.statistic == pytest.approx(ref_u.statistic)
    assert u.p_value == pytest.approx(ref_u.pvalue, rel=1e-9)
    assert u.method.endswith("normal" if ties or min(n1, n2) > 8 else "exact")


def test_effect_sizes():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    assert stats.welch(a, b).effect == pytest.approx(-3.0)  # (2 - 5) / pooled sd 1
    assert stats.mann_whitney(a, b).effect == -1.0  # every b above every a
    assert stats.mann_whitney(b, a).effect == 1.0


def test_too_few_or_constant_values_give_no_p_value_rather_than_nonsense():
    assert stats.welch([1.0], [2.0, 3.0]).p_value is None
    flat = stats.welch([1.0, 1.0], [2.0, 2.0])
    assert flat.p_value is None and "constant" in flat.method
    assert stats.mann_whitney([], [1.0]).p_value is None
    assert stats.mann_whitney([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    # NaN values (a diverged seed) are left out, not propagated.
    assert stats.welch([1.0, 2.0, float("nan")], [3.0, 4.0]).p_value == pytest.approx(
        ss.ttest_ind([1.0, 2.0], [3.0, 4.0], equal_var=False).pvalue)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 200])
def test_t_quantiles(df):
    assert stats.t_quantile(0.975, df) == pytest.approx(ss.t.ppf(0.975, df), rel=1e-9)


def test_mean_band_is_the_t_interval_per_column():
    values = np.array([[1.0, 2.0, np.nan], [3.0, 2.0, 5.0], [2.0, 2.0, np.nan]])
    mean, lo, hi, n = stats.mean_ci(values)
    assert mean.tolist() == [2.0, 2.0, 5.0]
    assert n.tolist() == [3, 3, 1]
    half = ss.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert lo[0] == pytest.approx(2.0 - half) and hi[0] == pytest.approx(2.0 + half)
    assert lo[1] == hi[1] == 2.0  # no spread, no band
    assert lo[2] == hi[2] == 5.0  # one run: no band
