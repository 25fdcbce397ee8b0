"""Two-sample tests for comparing groups of seeds: Welch's t test and Mann-Whitney U.

Plain ``math`` and numpy, because scipy is not a dependency of Cairn.  The numbers
match ``scipy.stats.ttest_ind(equal_var=False)`` and ``scipy.stats.mannwhitneyu``
(its default "auto" method: exact for small samples without ties, otherwise the
normal approximation with tie and continuity corrections); tests/ui checks that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np


def group_key(params: Mapping[str, Any], across: str | Iterable[str]) -> tuple:
    """The seed group a run with ``params`` belongs to: its params other than ``across``
    (a name or names), as sorted (key, value) pairs.  The one rule of
    ``cairn runs compare --across``, the web UI's seed comparison and ``cairn check``."""
    ignore = {across} if isinstance(across, str) else set(across)
    return tuple(sorted((k, v) for k, v in params.items() if k not in ignore))


@dataclass(frozen=True, slots=True)
class Outcome:
    statistic: float | None
    p_value: float | None
    effect: float | None  # Cohen's d (t test) or rank-biserial correlation (U test)
    method: str


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| >= |t|) of Student's t with ``df`` degrees."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t, by bisection on the tail."""
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) / 2.0 > 1.0 - q:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if t_sf2(mid, df) / 2.0 > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[np.isfinite(a)]


def welch(a, b) -> Outcome:
    """Welch's unequal-variance t test; effect size is Cohen's d with the pooled SD."""
    a, b = _clean(a), _clean(b)
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return Outcome(None, None, None, "welch: needs 2+ values per group")
    m1, m2 = float(a.mean()), float(b.mean())
    v1, v2 = float(a.var(ddof=1)), float(b.var(ddof=1))
    se2 = v1 / n1 + v2 / n2
    pooled = math.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    d = (m1 - m2) / pooled if pooled > 0 else None
    if se2 == 0:
        return Outcome(None, None, d, "welch: both groups are constant")
    t = (m1 - m2) / math.sqrt(se2)
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    return Outcome(t, t_sf2(t, df), d, "welch")


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many orderings of n1 + n2 distinct values give each U (0..n1*n2)."""
    # f[i][j] is the count array for sizes (i, j); f(i, j)[u] = f(i-1, j)[u-j] + f(i, j-1)[u]
    prev_row = [[1] for _ in range(n2 + 1)]  # i = 0: U is 0 whatever j
    for i in range(1, n1 + 1):
        row = [[1]]  # j = 0
        for j in range(1, n2 + 1):
            size = i * j + 1
            out = [0] * size
            left = prev_row[j]  # (i-1, j), shifted by j
            for u, c in enumerate(left):
                out[u + j] += c
            for u, c in enumerate(row[j - 1]):
                out[u] += c
            row.append(out)
        prev_row = row
    return tuple(prev_row[n2])


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def mann_whitney(a, b, alternative: str = "two-sided") -> Outcome:
    """Mann-Whitney U; effect size is the rank-biserial correlation (-1..1).

    ``alternative``: ``two-sided``, ``greater`` (``a`` tends above ``b``) or ``less``, as
    scipy's: a one-sided p-value is the one tail of U's distribution, not half the
    two-sided one (U is discrete, and the continuity correction points one way)."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    a, b = _clean(a), _clean(b)
    n1, n2 = len(a), len(b)
    if n1 < 1 or n2 < 1:
        return Outcome(None, None, None, "mann-whitney: needs values in both groups")
    both = np.concatenate([a, b])
    ranks = _rankdata(both)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    effect = 2.0 * u1 / (n1 * n2) - 1.0
    _, tie_counts = np.unique(both, return_counts=True)
    ties = bool((tie_counts > 1).any())
    if min(n1, n2) <= 8 and not ties:
        counts = _u_counts(n1, n2)
        total = float(sum(counts))
        if alternative == "two-sided":
            u = int(round(max(u1, n1 * n2 - u1)))
            p = 2.0 * sum(counts[u:]) / total  # P(U >= u), the larger tail's complement
        elif alternative == "greater":
            p = sum(counts[int(round(u1)):]) / total  # P(U >= u1)
        else:
            p = sum(counts[:int(round(u1)) + 1]) / total  # P(U <= u1)
        return Outcome(u1, min(1.0, p), effect, "mann-whitney exact")
    n = n1 + n2
    mu = n1 * n2 / 2.0
    tie_term = float(((tie_counts ** 3) - tie_counts).sum())
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return Outcome(u1, 1.0, effect, "mann-whitney: all values equal")
    if alternative == "two-sided":
        z = (max(u1, n1 * n2 - u1) - mu - 0.5) / sigma
        p = math.erfc(z / math.sqrt(2.0))  # two-sided normal tail: 2 * (1 - Phi(z))
    elif alternative == "greater":
        p = 0.5 * math.erfc((u1 - mu - 0.5) / sigma / math.sqrt(2.0))  # 1 - Phi(z)
    else:
        p = 0.5 * math.erfc(-(u1 - mu + 0.5) / sigma / math.sqrt(2.0))  # Phi(z)
    return Outcome(u1, min(1.0, p), effect, "mann-whitney normal")


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``values`` (runs x points): mean, lower and upper bound, n.

    The band is the t interval of the mean; a column with one finite value has no band
    (lower = upper = the value).
    """
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=0) / n
        dev = np.where(finite, values - mean, 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=0) / (n - 1))
    half = np.zeros(values.shape[1])
    for df in np.unique(n[n >= 2]):
        cols = n == df
        half[cols] = t_quantile(0.5 + level / 2.0, float(df - 1)) * sd[cols] / math.sqrt(df)
    return mean, mean - half, mean + half, n
