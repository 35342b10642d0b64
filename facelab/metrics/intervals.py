"""Confidence intervals for rates: binomial (Wilson, Clopper-Pearson) and seeded bootstrap.

A rate is a count of events over a number of trials. :class:`RateEstimate` carries all
three numbers (rate, count, n) with the interval, so no rate is ever shown without the
count it rests on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import binomtest

__all__ = [
    "RateEstimate",
    "BinomialMethod",
    "binomial_ci",
    "rate_estimate",
    "format_rate",
    "bootstrap_ci",
    "cluster_bootstrap_indices",
    "METHOD_LABELS",
    "method_label",
]

BinomialMethod = Literal["wilson", "clopper-pearson"]

#: The name each binomial interval method is shown under in tables and reports.
METHOD_LABELS: dict[str, str] = {"wilson": "Wilson", "clopper-pearson": "Clopper-Pearson"}
_SCIPY_METHOD = {"wilson": "wilson", "clopper-pearson": "exact"}

_BAD_METHOD = "method must be one of {known}; got {got!r}"
_BAD_CONFIDENCE = "confidence must be strictly between 0 and 1; got {got!r}"
_BAD_COUNT = "need 0 <= count <= n; got count={count}, n={n}"


def method_label(method: str) -> str:
    """The display name of a binomial interval method (``"wilson"`` -> ``"Wilson"``).

    Parameters
    ----------
    method : {"wilson", "clopper-pearson"}
        A :data:`BinomialMethod`.

    Returns
    -------
    str
        Its name in tables and reports (:data:`METHOD_LABELS`).

    Raises
    ------
    ValueError
        If ``method`` is not a known binomial method.
    """
    try:
        return METHOD_LABELS[method]
    except KeyError:
        raise ValueError(_BAD_METHOD.format(known=sorted(METHOD_LABELS), got=method)) from None


def _decimals(reference: float) -> int:
    """Four decimals, or enough for two significant digits of a value below 1e-3."""
    if not math.isfinite(reference) or reference == 0 or abs(reference) >= 1e-3:
        return 4
    return int(-math.floor(math.log10(abs(reference)))) + 1


def format_rate(value: float, decimals: int | None = None) -> str:
    """Format a rate with four decimals, or two significant digits below 1e-3.

    So small FMRs do not print as 0.0000.

    Parameters
    ----------
    value : float
        The rate in [0, 1] (NaN or None print as ``"nan"``).
    decimals : int, optional
        Fixed number of decimals instead of the rule above.

    Returns
    -------
    str
        E.g. ``"0.0123"``, ``"0.00042"``.
    """
    if value is None or not math.isfinite(value):
        return "nan"
    d = _decimals(value) if decimals is None else decimals
    return f"{value:.{d}f}"


@dataclass(frozen=True)
class RateEstimate:
    """A rate with the count it rests on and a confidence interval.

    Attributes
    ----------
    rate : float
        ``count / n`` (NaN when ``n == 0``).
    count : int
        Number of events (false matches, false non-matches, errors, ...).
    n : int
        Number of trials (comparisons, searches, images).
    ci_low, ci_high : float
        Interval bounds at ``confidence``.
    method : str
        How the interval was computed ("Wilson", "Clopper-Pearson", "bootstrap ...").
    name : str
        What the rate is ("FMR", "FNMR", "FPIR", ...).
    confidence : float
        Coverage of the interval, 0.95 by default.
    threshold : float or None
        The decision threshold the rate was measured at, when there is one.
    """

    rate: float
    count: int
    n: int
    ci_low: float
    ci_high: float
    method: str
    name: str = "rate"
    confidence: float = 0.95
    threshold: float | None = None

    def __str__(self) -> str:
        pct = f"{self.confidence * 100:g}%"
        d = _decimals(self.rate if self.rate else self.ci_high)
        low, high = format_rate(self.ci_low, d), format_rate(self.ci_high, d)
        return (
            f"{self.name} {format_rate(self.rate, d)} ({self.count:,}/{self.n:,}; "
            f"{pct} CI {low}-{high}, {self.method})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for ``metrics.json`` and DataFrames).

        Returns
        -------
        dict
            ``rate``, ``count``, ``n``, ``ci_low``, ``ci_high``, ``method``, ``name``,
            ``confidence``, ``threshold``.
        """
        return asdict(self)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(_BAD_CONFIDENCE.format(got=confidence))


def binomial_ci(
    count: int, n: int, *, confidence: float = 0.95, method: BinomialMethod = "wilson"
) -> tuple[float, float]:
    """Binomial confidence interval for ``count`` events in ``n`` trials.

    Parameters
    ----------
    count : int
        Events (e.g. false matches), ``0 <= count <= n``.
    n : int
        Trials (e.g. impostor comparisons).
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval: Wilson score (Wilson 1927; good coverage with few events) or
        Clopper-Pearson (exact, conservative), both from ``scipy.stats.binomtest``.

    Returns
    -------
    low, high : float
        The interval bounds in [0, 1]; ``(nan, nan)`` when ``n == 0``.

    Raises
    ------
    ValueError
        For an unknown method, a confidence outside (0, 1), or ``count`` outside [0, n].
    """
    if method not in _SCIPY_METHOD:
        raise ValueError(_BAD_METHOD.format(known=sorted(_SCIPY_METHOD), got=method))
    _check_confidence(confidence)
    count, n = int(count), int(n)
    if n == 0:
        return (math.nan, math.nan)
    if not 0 <= count <= n:
        raise ValueError(_BAD_COUNT.format(count=count, n=n))
    ci = binomtest(count, n).proportion_ci(
        confidence_level=confidence, method=_SCIPY_METHOD[method]
    )
    return (float(ci.low), float(ci.high))


def rate_estimate(
    count: int,
    n: int,
    *,
    name: str = "rate",
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
    threshold: float | None = None,
) -> RateEstimate:
    """A :class:`RateEstimate` for ``count`` events in ``n`` trials with a binomial interval.

    Parameters
    ----------
    count : int
        Events, ``0 <= count <= n``.
    n : int
        Trials; ``n == 0`` gives a NaN rate and interval.
    name : str
        ISO/IEC 19795-1 name of the rate (``"FMR"``, ``"FNMR"``, ``"FPIR"``, ``"FNIR"``).
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval: Wilson score (Wilson 1927; good coverage with few events) or
        Clopper-Pearson (exact, conservative), both from ``scipy.stats.binomtest``.
    threshold : float, optional
        The similarity threshold the rate was measured at.

    Returns
    -------
    RateEstimate
        ``rate = count / n`` with its count, n and interval.

    Raises
    ------
    ValueError
        As :func:`binomial_ci`.
    """
    low, high = binomial_ci(count, n, confidence=confidence, method=method)
    rate = count / n if n else math.nan
    return RateEstimate(
        rate=float(rate),
        count=int(count),
        n=int(n),
        ci_low=low,
        ci_high=high,
        method=method_label(method),
        name=name,
        confidence=confidence,
        threshold=None if threshold is None else float(threshold),
    )


def cluster_bootstrap_indices(
    clusters: Sequence[Any] | np.ndarray | pd.Series | None,
    n_rows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Row indices of one bootstrap resample.

    Without ``clusters``, rows are drawn with replacement. With ``clusters`` (one label per
    row, e.g. the subject id), whole clusters are drawn with replacement and all their rows
    kept, so rows sharing a person stay together (the bootstrap for hierarchical data:
    Davison & Hinkley 1997, *Bootstrap Methods and their Application*, chapter 3).

    Parameters
    ----------
    clusters : sequence, numpy.ndarray or pandas.Series, optional
        ``(n_rows,)`` cluster label of each row, or None for independent rows.
    n_rows : int
        Number of rows.
    rng : numpy.random.Generator
        The generator drawing the resample.

    Returns
    -------
    numpy.ndarray
        Integer row indices (``n_rows`` of them without clusters; with clusters the count
        varies with the clusters drawn).
    """
    if clusters is None:
        return rng.integers(0, n_rows, size=n_rows)
    codes, uniques = pd.factorize(pd.Series(clusters), use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    drawn = rng.integers(0, len(uniques), size=len(uniques))
    pieces = [order[starts[c] : starts[c + 1]] for c in drawn]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=int)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_rows: int,
    *,
    clusters: Sequence[Any] | np.ndarray | pd.Series | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(row_indices)``.

    Resamples on which the statistic is undefined (NaN) are dropped.

    Parameters
    ----------
    statistic : callable
        Receives an integer index array into the data (one resample) and returns a number.
    n_rows : int
        Number of rows in the data.
    clusters : sequence, numpy.ndarray or pandas.Series, optional
        ``(n_rows,)`` cluster (subject) of each row: the resampling unit is the cluster, not
        the row (see :func:`cluster_bootstrap_indices`).
    n_boot : int
        Number of resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    seed : int, numpy.random.Generator or None
        Seeds the resampling: the same seed gives the same interval. ``None`` draws fresh
        entropy from the operating system (numpy's ``default_rng(None)``): reruns differ.

    Returns
    -------
    low, high : float
        Percentiles ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` of the resampled
        statistic; ``(nan, nan)`` when no resample gives a finite value.

    Raises
    ------
    ValueError
        For a confidence outside (0, 1).
    """
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        values[b] = statistic(cluster_bootstrap_indices(clusters, n_rows, rng))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return (float(low), float(high))
