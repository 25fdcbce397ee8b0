"""Drift of one column: a reference sample against a current one, with NumPy and SciPy only.

Methods (score, and when the column drifted)::

    ks             two-sample Kolmogorov-Smirnov test       p-value   p < 0.05
    wasserstein    Wasserstein-1 distance / reference std   distance  >= 0.1
    chisquare      chi-squared goodness of fit              p-value   p < 0.05
    jensenshannon  Jensen-Shannon distance (natural log)    distance  >= 0.1
    psi            population stability index               index     >= 0.2

The default follows Evidently: a *numerical* column (numbers with more than 5 distinct
values in the reference) gets ``ks`` when the reference has at most 1,000 values, else
``wasserstein``; a *categorical* one (text, booleans, or numbers with at most 5 distinct
values) gets ``chisquare``, else ``jensenshannon``.

Missing values: NaN, None and +-inf are dropped from both samples before any method runs,
and counted (:attr:`ColumnDrift.missing` is the current sample's share of them).  A sample
left empty gets no verdict (``drifted`` None) rather than a made-up one.

A reference is prepared once (:func:`prepare`: sorted values, standard deviation, bins, or
category counts) and compared with many windows; every step is a whole-array NumPy
operation (a sort, a merge of two sorted arrays, a cumulative sum, a bincount), so a million
current values take tens of milliseconds per column.  Categorical current
values come in as integer codes against the reference's categories (:func:`encode`):
``0..K-1`` a reference category, ``K`` a category the reference never had, ``-1`` missing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidArgument

NUMERICAL, CATEGORICAL = "numerical", "categorical"
METHODS = ("ks", "wasserstein", "chisquare", "jensenshannon", "psi")
#: method -> default threshold
THRESHOLDS: Mapping[str, float] = {"ks": 0.05, "wasserstein": 0.1, "chisquare": 0.05,
                                   "jensenshannon": 0.1, "psi": 0.2}
#: methods whose score is a p-value: drift when it is *below* the threshold
P_VALUES = frozenset({"ks", "chisquare"})
#: methods that need categories (the others work on numbers; jensenshannon and psi on both)
CATEGORICAL_ONLY = frozenset({"chisquare"})
NUMERICAL_ONLY = frozenset({"ks", "wasserstein"})
SMALL_REFERENCE = 1_000   # at most this many reference values: a test, not a distance
FEW_UNIQUE = 5            # numbers with at most this many distinct values are categories
MIN_STD = 0.001           # wasserstein's normaliser never goes below this (Evidently's floor)
PSI_EPSILON = 1e-4        # an empty bin's share in PSI (whose log would otherwise be infinite)
_EXACT_KS = 10_000        # scipy's ks_2samp 'auto': exact p-values while both samples are this small


@dataclass(frozen=True, slots=True)
class Reference:
    """One column of the reference, prepared for any number of comparisons."""

    kind: str                         # NUMERICAL or CATEGORICAL
    rows: int                         # values, missing ones included
    values: np.ndarray                # numerical: the finite values, sorted; categorical: counts per category
    categories: tuple[Any, ...] = ()  # categorical: the categories, in the order of ``values``
    std: float = 0.0                  # numerical: population standard deviation (ddof=0)
    edges: np.ndarray | None = None   # numerical: inner bin edges for jensenshannon and psi

    @property
    def count(self) -> int:
        """Values that are not missing."""
        return int(self.values.size if self.kind == NUMERICAL else self.values.sum())

    def default_method(self) -> str:
        small = self.count <= SMALL_REFERENCE
        if self.kind == NUMERICAL:
            return "ks" if small else "wasserstein"
        return "chisquare" if small else "jensenshannon"


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The verdict on one column in one window."""

    column: str
    kind: str
    method: str
    threshold: float
    score: float | None       # None: no verdict (see ``note``)
    drifted: bool | None
    reference_rows: int       # values compared (missing ones dropped)
    current_rows: int
    missing: float            # share of the current window's values that were missing
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "method": self.method,
                "threshold": self.threshold, "score": self.score, "drifted": self.drifted,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "missing": self.missing, **({"note": self.note} if self.note else {})}


# -- preparing ------------------------------------------------------------------------------

def is_categorical(values: np.ndarray) -> bool:
    """Evidently's rule: text, booleans and objects are categories; numbers are when they
    have at most :data:`FEW_UNIQUE` distinct (finite) values."""
    if values.dtype.kind not in "iuf":
        return True
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    return np.unique(finite).size <= FEW_UNIQUE


def prepare(values: Any, kind: str | None = None) -> Reference:
    """A reference column from a 1-D array (numbers, booleans, text or objects; None and NaN
    are missing).  ``kind`` forces NUMERICAL or CATEGORICAL; by default :func:`is_categorical`."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidArgument(f"a column must be 1-D, got shape {list(arr.shape)}")
    if kind is None:
        kind = CATEGORICAL if is_categorical(arr) else NUMERICAL
    if kind == NUMERICAL:
        x = numbers(arr, "the reference")
        x = np.sort(x[np.isfinite(x)])
        std = float(x.std()) if x.size else 0.0
        return Reference(NUMERICAL, int(arr.size), x, std=std, edges=_edges(x))
    if kind != CATEGORICAL:
        raise InvalidArgument(f"kind must be {NUMERICAL!r} or {CATEGORICAL!r}, got {kind!r}")
    keep = ~missing_mask(arr)
    cats, counts = np.unique(_keys(arr[keep]), return_counts=True)
    return Reference(CATEGORICAL, int(arr.size), counts.astype(np.int64),
                     categories=tuple(c.item() if hasattr(c, "item") else c for c in cats))


def numbers(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` as float64 (None as NaN), or InvalidArgument naming ``what``."""
    if arr.dtype.kind in "iufb":
        return arr.astype(np.float64, copy=False)
    try:
        return np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64) \
            if arr.dtype == object else arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} holds values that are not numbers, so it cannot be "
                              "compared as a numerical column") from None


def missing_mask(arr: np.ndarray) -> np.ndarray:
    """True where a value is missing: None, NaN or +-inf (whole-array comparisons, also for
    arrays of objects)."""
    if arr.dtype.kind == "f":
        return ~np.isfinite(arr)
    if arr.dtype.kind != "O":
        return np.zeros(arr.shape, bool)
    with np.errstate(invalid="ignore"):
        return np.asarray((arr == None) | (arr != arr) | (arr == np.inf)  # noqa: E711
                          | (arr == -np.inf), bool)


def _keys(arr: np.ndarray) -> np.ndarray:
    """Values that sort together: objects of kinds that do not compare (text and numbers in
    one column) as their text."""
    if arr.dtype != object:
        return arr
    try:
        np.unique(arr)
    except TypeError:
        return arr.astype(str).astype(object)
    return arr


def encode(ref: Reference, values: Any) -> np.ndarray:
    """Current categorical values as codes against ``ref``'s categories: ``0..K-1``, ``K``
    for a category the reference does not have, ``-1`` for a missing value."""
    arr = np.asarray(values)
    k = len(ref.categories)
    codes = np.full(arr.shape, k, np.int64)
    miss = missing_mask(arr)
    codes[miss] = -1
    if k:
        keep = ~miss
        vals = arr[keep]
        if vals.dtype.kind in "iufb" and all(isinstance(c, (int, float, bool, np.number))
                                             for c in ref.categories):
            vals = vals.astype(np.float64)  # 1 and 1.0 are one category; 0.5 stays 0.5
            cats = np.asarray(ref.categories, np.float64)
        else:
            cats = np.asarray(ref.categories, dtype=vals.dtype if vals.dtype != object else object)
        try:
            pos = np.clip(np.searchsorted(cats, vals), 0, k - 1)
            hit = cats[pos] == vals
        except TypeError:  # kinds that do not compare (text against numbers): as text
            vals = vals.astype(str).astype(object)
            cats = np.asarray([str(c) for c in ref.categories], object)
            order = np.argsort(cats)
            pos = np.clip(np.searchsorted(cats[order], vals), 0, k - 1)
            hit = cats[order][pos] == vals
            pos = order[pos]
        codes[keep] = np.where(np.asarray(hit, bool), pos, k)
    return codes


def _edges(sorted_values: np.ndarray) -> np.ndarray:
    """Inner edges of the bins jensenshannon and psi use on numbers: quantiles of the
    reference, as many bins as Sturges' rule gives (1 + log2 n), the outer bins open."""
    n = sorted_values.size
    if n == 0:
        return np.empty(0)
    bins = int(math.ceil(math.log2(n))) + 1 if n > 1 else 1
    q = np.quantile(sorted_values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(q)


# -- the methods, on prepared samples ------------------------------------------------------

def ks(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample Kolmogorov-Smirnov test; as
    ``scipy.stats.ks_2samp`` (exact p-value while both samples have at most 10,000 values,
    Smirnov's asymptotic one above)."""
    n, m = ref_sorted.size, cur_sorted.size
    merged, from_ref = _merge(ref_sorted, cur_sorted)
    fr = np.cumsum(from_ref) / n
    fc = np.cumsum(~from_ref) / m
    last = np.empty(merged.size, bool)  # the last of equal values: where both CDFs are whole
    last[:-1] = merged[1:] != merged[:-1]
    last[-1] = True
    d = float(np.max(np.abs(fr - fc)[last]))
    if max(n, m) <= _EXACT_KS:
        from scipy.stats import ks_2samp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy falls back to asymp itself
            return d, float(ks_2samp(ref_sorted, cur_sorted, method="exact").pvalue)
    from scipy.stats import kstwo

    big, small = max(n, m), min(n, m)
    en = big * small / (big + small)
    return d, float(min(1.0, max(0.0, kstwo.sf(d, round(en)))))


def wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """The Wasserstein-1 distance between the two samples (``scipy.stats.wasserstein_distance``)."""
    n, m = ref_sorted.size, cur_sorted.size
    merged, from_ref = _merge(ref_sorted, cur_sorted)
    # Between merged[i] and merged[i + 1] the reference's CDF is refs/n and the current's
    # (i + 1 - refs)/m, where refs counts the reference values among merged[:i + 1].
    refs = np.cumsum(from_ref[:-1], dtype=np.float64)
    seen = np.arange(1, merged.size, dtype=np.float64)
    gap = refs * (1.0 / n + 1.0 / m) - seen / m
    return float(np.dot(np.abs(gap), np.diff(merged)))


def _merge(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted arrays as one sorted array, and which of its values came from ``a``
    (linear work: each value of ``a`` lands after the values of ``b`` not above it)."""
    where = np.searchsorted(b, a, side="right") + np.arange(a.size)
    from_a = np.zeros(a.size + b.size, bool)
    from_a[where] = True
    merged = np.empty(a.size + b.size, np.float64)
    merged[where] = a
    merged[~from_a] = b
    return merged, from_a


def chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """p-value of the chi-squared test of the current counts against the reference's
    proportions (``scipy.stats.chisquare(cur, ref * cur.sum() / ref.sum())``).  A category
    the reference never had makes the statistic infinite: p = 0."""
    ref = np.asarray(ref_counts, np.float64)
    cur = np.asarray(cur_counts, np.float64)
    expected = ref * (cur.sum() / ref.sum())
    if np.any((expected == 0) & (cur > 0)):
        return 0.0
    seen = expected > 0
    if seen.sum() < 2:
        return 1.0  # one category in both: nothing can differ
    stat = float(np.sum((cur[seen] - expected[seen]) ** 2 / expected[seen]))
    from scipy.stats import chi2

    return float(chi2.sf(stat, cur.size - 1))


def jensenshannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between the two histograms' proportions, as
    ``scipy.spatial.distance.jensenshannon``: 0 for the same, sqrt(ln 2) at most."""
    p = np.asarray(ref_counts, np.float64)
    q = np.asarray(cur_counts, np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(math.sqrt(max(0.0, (kl_p.sum() + kl_q.sum()) / 2)))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over the bins'
    proportions, an empty bin counted as :data:`PSI_EPSILON`."""
    p = np.asarray(ref_counts, np.float64)
    q = np.asarray(cur_counts, np.float64)
    p = np.maximum(p / p.sum(), PSI_EPSILON)
    q = np.maximum(q / q.sum(), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def histogram(edges: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Counts of sorted values in the bins ``edges`` bound (``(-inf, e0), [e0, e1), ...,
    [ek, inf)``)."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate([[0], cuts, [sorted_values.size]]))


# -- one column ----------------------------------------------------------------------------

def check_method(method: str, kind: str | None = None, column: str = "") -> str:
    if method not in METHODS:
        raise InvalidArgument(f"unknown drift method {method!r}; use one of {', '.join(METHODS)}")
    where = f" for column {column!r}" if column else ""
    if kind == CATEGORICAL and method in NUMERICAL_ONLY:
        raise InvalidArgument(f"{method} compares numbers; it cannot be used{where}, which is "
                              "categorical (use chisquare, jensenshannon or psi)")
    if kind == NUMERICAL and method in CATEGORICAL_ONLY:
        raise InvalidArgument(f"{method} compares categories; it cannot be used{where}, which "
                              "is numerical (use ks, wasserstein, jensenshannon or psi)")
    return method


def check_threshold(value: Any, method: str | None = None, column: str = "") -> float:
    where = f" for column {column!r}" if column else ""
    if isinstance(value, bool):
        raise InvalidArgument(f"drift threshold{where} must be a number, got {value!r}")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"drift threshold{where} must be a number, got {value!r}") from None
    if not math.isfinite(t) or t < 0:
        raise InvalidArgument(f"drift threshold{where} must be a finite number >= 0, got {value!r}")
    if method in P_VALUES and t > 1:
        raise InvalidArgument(f"{method}'s threshold{where} is a p-value: between 0 and 1, got "
                              f"{value!r}")
    return t


def compare(ref: Reference, current: Any, *, column: str = "", method: str | None = None,
            threshold: float | None = None, coded: bool = False) -> ColumnDrift:
    """The drift of ``current`` (a 1-D array of values) from ``ref``; ``coded``: for a
    categorical reference, ``current`` holds :func:`encode`'s codes, not values."""
    method = check_method(method or ref.default_method(), ref.kind, column)
    threshold = THRESHOLDS[method] if threshold is None else check_threshold(threshold, method,
                                                                             column)
    arr = np.asarray(current)
    total = int(arr.size)

    def verdict(score: float | None, cur_n: int, missing_n: int, note: str = "") -> ColumnDrift:
        drifted = None if score is None else bool(
            score < threshold if method in P_VALUES else score >= threshold)
        return ColumnDrift(column, ref.kind, method, threshold, score, drifted, ref.count,
                           cur_n, missing_n / total if total else 0.0, note)

    if ref.kind == NUMERICAL:
        x = numbers(arr, f"column {column!r}" if column else "the current sample")
        finite = np.isfinite(x)
        cur = x[finite]  # a copy, sorted in place
        cur.sort()
        missing_n = total - cur.size
        if ref.count == 0 or cur.size == 0:
            return verdict(None, int(cur.size), missing_n,
                           "no values in the reference" if ref.count == 0 else "no values")
        if method == "ks":
            score = ks(ref.values, cur)[1]
        elif method == "wasserstein":
            score = wasserstein(ref.values, cur) / max(ref.std, MIN_STD)
        else:
            assert ref.edges is not None
            rc, cc = histogram(ref.edges, ref.values), histogram(ref.edges, cur)
            score = jensenshannon(rc, cc) if method == "jensenshannon" else psi(rc, cc)
        return verdict(float(score), int(cur.size), missing_n)

    codes = arr.astype(np.int64, copy=False) if coded else encode(ref, arr)
    k = len(ref.categories)
    counts = np.bincount(codes[codes >= 0], minlength=k + 1)
    cur_n = int(counts.sum())
    missing_n = total - cur_n
    if ref.count == 0 or cur_n == 0:
        return verdict(None, cur_n, missing_n,
                       "no values in the reference" if ref.count == 0 else "no values")
    # A bin for categories the reference never had, only when the window has some.
    ref_counts, cur_counts = (np.append(ref.values, 0), counts) if counts[k] else \
        (ref.values, counts[:k])
    if method == "chisquare":
        score = chisquare(ref_counts, cur_counts)
    elif method == "jensenshannon":
        score = jensenshannon(ref_counts, cur_counts)
    else:
        score = psi(ref_counts, cur_counts)
    return verdict(float(score), cur_n, missing_n)

