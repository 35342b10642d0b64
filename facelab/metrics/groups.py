"""Disaggregation by group with counts, intervals, small-cell flags and disparities.

Three entry points, one result type (:class:`GroupedMetric`):

* :func:`rate_by_group` - a rate (share of rows where a boolean column is True) per cell.
  Binomial interval (Wilson or Clopper-Pearson) when rows are independent; a seeded
  bootstrap over **subjects** when a subject column is given (rows sharing a person are
  not independent), switching to Clopper-Pearson on the number of subjects when a cell
  has fewer than ``min_events`` events (a bootstrap of zero events is a useless [0, 0]).
* :func:`mean_by_group` - the mean of a numeric column per cell (e.g. absolute age
  error), seeded (subject) bootstrap interval.
* :func:`disaggregate` - any ``metric(y_true, y_pred)`` per cell through fairlearn's
  :class:`~fairlearn.metrics.MetricFrame`, with a seeded (subject) bootstrap interval.

:func:`demographic_differentials` implements the NIST FRVT Part 3 analysis: one global
threshold at a target FMR, FMR and FNMR per group at that threshold, the ratio to a
reference, and the cross-group impostor FMR matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from facelab.metrics.biometric import ThresholdChoice, threshold_at_fmr
from facelab.metrics.intervals import binomial_ci, bootstrap_ci, method_label

__all__ = [
    "GroupedMetric",
    "Differentials",
    "rate_by_group",
    "mean_by_group",
    "disaggregate",
    "demographic_differentials",
    "DEFAULT_MIN_COUNT",
]

#: Cells resting on fewer rows than this are flagged ``small_cell`` and left out of the
#: disparity summary.
DEFAULT_MIN_COUNT = 30

_MISSING_COLUMNS = "data is missing column(s) {missing}; has {have}"
_EMPTY = "no rows to disaggregate"
_BAD_INTERVAL = "interval must be one of {known}; got {got!r}"
_NOT_BOOL = "column {col!r} must be boolean (or 0/1); got values {vals}"
_BAD_REFERENCE = "reference group {ref!r} has no {what} comparisons; groups are {groups}"
_NEED_THRESHOLD = "give exactly one of threshold= or target_fmr="

Interval = Literal["auto", "wilson", "clopper-pearson", "bootstrap"]
_INTERVALS = ("auto", "wilson", "clopper-pearson", "bootstrap")


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class GroupedMetric:
    """A metric per group cell, overall, with intervals and small-cell flags.

    Attributes
    ----------
    name : str
        What was measured.
    by_group : DataFrame
        Indexed by the group column(s) (a MultiIndex for intersectional cells). Columns:
        ``value``, ``n`` (rows the value rests on), ``count`` (events, for rates),
        ``n_subjects`` (when a subject column was given), ``ci_low``, ``ci_high``,
        ``method`` and ``small_cell`` (``n < min_count``).
    overall : Series
        The same columns for all rows together.
    min_count : int
    confidence : float
    """

    name: str
    by_group: pd.DataFrame
    overall: pd.Series
    min_count: int = DEFAULT_MIN_COUNT
    confidence: float = 0.95
    notes: tuple[str, ...] = field(default_factory=tuple)

    def compared(self) -> pd.DataFrame:
        """Cells that are large enough to compare (``small_cell`` False, value defined).

        Returns
        -------
        DataFrame
            The rows of ``by_group`` that disparities are computed over.
        """
        bg = self.by_group
        return bg[~bg["small_cell"] & bg["value"].notna()]

    def ratio(self) -> float:
        """max / min of the compared cells' values (inf when the min is 0).

        Returns
        -------
        float
            The worst/best ratio (NaN when no cell can be compared or all are 0).
        """
        s = self.disparities()
        return float(s["ratio"])

    def difference(self) -> float:
        """max - min of the compared cells' values.

        Returns
        -------
        float
            In the metric's unit (NaN when no cell can be compared).
        """
        return float(self.disparities()["difference"])

    def disparities(self) -> pd.Series:
        """Summary disparities over cells that are not small.

        Returns
        -------
        pandas.Series
            Keys ``max``, ``min``, ``group_max``, ``group_min``, ``ratio`` (max/min),
            ``difference`` (max - min), ``n_cells``, ``n_compared``, ``excluded_small_cells``.
        """
        cmp = self.compared()
        out: dict[str, Any] = {
            "n_cells": len(self.by_group),
            "n_compared": len(cmp),
            "excluded_small_cells": [
                _label(i) for i in self.by_group.index[self.by_group["small_cell"]]
            ],
        }
        if len(cmp) == 0:
            out.update(
                max=math.nan, min=math.nan, group_max=None, group_min=None,
                ratio=math.nan, difference=math.nan,
            )
        else:
            vmax, vmin = float(cmp["value"].max()), float(cmp["value"].min())
            out.update(
                max=vmax,
                min=vmin,
                group_max=_label(cmp["value"].idxmax()),
                group_min=_label(cmp["value"].idxmin()),
                ratio=(vmax / vmin) if vmin > 0 else (math.nan if vmax == 0 else math.inf),
                difference=vmax - vmin,
            )
        return pd.Series(out, name=self.name)

    def table(self) -> pd.DataFrame:
        """``by_group`` with the overall row appended (index label "overall").

        Returns
        -------
        DataFrame
            Same columns as ``by_group``; one more row.
        """
        bg = self.by_group.reset_index()
        names = list(self.by_group.index.names)
        row = self.overall.to_dict()
        for col in names:
            row[col] = "overall"
        return pd.concat([bg, pd.DataFrame([row])], ignore_index=True).set_index(names)


def _label(index_value: Any) -> str:
    if isinstance(index_value, tuple):
        return " x ".join(str(v) for v in index_value)
    return str(index_value)


# ----------------------------------------------------------------------------- helpers
def _as_list(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _check_columns(data: pd.DataFrame, cols: Sequence[str | None]) -> None:
    missing = [c for c in cols if c is not None and c not in data.columns]
    if missing:
        raise ValueError(_MISSING_COLUMNS.format(missing=missing, have=list(data.columns)))
    if len(data) == 0:
        raise ValueError(_EMPTY)


def _bool_column(data: pd.DataFrame, col: str) -> np.ndarray:
    values = data[col]
    if values.dtype == bool:
        return values.to_numpy()
    uniq = pd.unique(values.dropna())
    if values.isna().any() or not set(uniq.tolist()) <= {0, 1}:
        raise ValueError(_NOT_BOOL.format(col=col, vals=uniq[:5].tolist()))
    return values.to_numpy().astype(bool)


def _cell_rng(seed: int | None, i: int) -> np.random.Generator:
    """An independent generator per cell: reproducible from ``(seed, i)``; ``seed=None``
    draws fresh entropy from the operating system (reruns differ)."""
    return np.random.default_rng(None if seed is None else [int(seed), i])


def _cluster_mean_ci(
    values: np.ndarray,
    clusters: np.ndarray | None,
    *,
    n_boot: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean, resampling clusters (vectorised)."""
    if clusters is None:
        sums, sizes = values.astype(float), np.ones(values.size)
    else:
        codes, uniq = pd.factorize(pd.Series(clusters), use_na_sentinel=False)
        sums = np.bincount(codes, weights=values.astype(float), minlength=len(uniq))
        sizes = np.bincount(codes, minlength=len(uniq)).astype(float)
    c = sums.size
    if c == 0:
        return (math.nan, math.nan)
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // c)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        drawn = rng.integers(0, c, size=(stop - start, c))
        stats[start:stop] = sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return (float(low), float(high))


def _finish(
    name: str,
    rows: list[dict[str, Any]],
    keys: list[Hashable],
    by: list[str],
    overall: dict[str, Any],
    min_count: int,
    confidence: float,
) -> GroupedMetric:
    if len(by) == 1:
        index = pd.Index([k[0] for k in keys], name=by[0])
    else:
        index = pd.MultiIndex.from_tuples(keys, names=by)
    table = pd.DataFrame(rows, index=index)
    table["small_cell"] = table["n"] < min_count
    overall_s = pd.Series({**overall, "small_cell": overall["n"] < min_count}, name="overall")
    return GroupedMetric(
        name=name, by_group=table, overall=overall_s, min_count=min_count, confidence=confidence
    )


def _groups(data: pd.DataFrame, by: list[str]):
    return data.groupby(by, sort=True, observed=True, dropna=False)


# ----------------------------------------------------------------------------- rates
def _rate_row(
    events: np.ndarray,
    subjects: np.ndarray | None,
    *,
    interval: str,
    min_events: int,
    n_boot: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    n, k = events.size, int(events.sum())
    row: dict[str, Any] = {"value": k / n if n else math.nan, "n": n, "count": k}
    n_subj = None
    if subjects is not None:
        n_subj = int(pd.Series(subjects).nunique())
        row["n_subjects"] = n_subj
    method = interval
    if interval == "auto":
        if subjects is None:
            method = "wilson"
        else:
            method = "bootstrap" if min(k, n - k) >= min_events else "clopper-pearson-subjects"
    if method == "bootstrap":
        low, high = _cluster_mean_ci(
            events, subjects, n_boot=n_boot, confidence=confidence, rng=rng
        )
        label = f"bootstrap ({'subjects' if subjects is not None else 'rows'}, {n_boot})"
    elif method == "clopper-pearson-subjects":
        # few events and clustered rows: exact interval on the number of subjects, a
        # conservative effective sample size
        n_eff = max(1, n_subj or n)
        k_eff = round(k * n_eff / n)
        low, high = binomial_ci(k_eff, n_eff, confidence=confidence, method="clopper-pearson")
        label = f"Clopper-Pearson (few events; n_eff={n_eff:,} subjects)"
    else:
        low, high = binomial_ci(k, n, confidence=confidence, method=method)  # type: ignore[arg-type]
        label = method_label(method)
    row.update(ci_low=low, ci_high=high, method=label)
    return row


def rate_by_group(
    data: pd.DataFrame,
    *,
    event: str,
    by: str | Sequence[str],
    subject: str | None = None,
    name: str | None = None,
    interval: Interval = "auto",
    min_count: int = DEFAULT_MIN_COUNT,
    min_events: int = 5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """A rate per group cell: the share of rows where boolean column ``event`` is True.

    Parameters
    ----------
    data : DataFrame
        One row per trial (comparison, image, ...).
    event : str
        Boolean (or 0/1) column: True when the event (error, false match, ...) happened.
    by : str or list of str
        Group column(s); several columns give intersectional cells (race x gender).
    subject : str, optional
        Identity column. When given, rows of one subject are resampled together.
    interval : {"auto", "wilson", "clopper-pearson", "bootstrap"}
        ``"auto"``: Wilson without ``subject``; with ``subject``, a subject bootstrap when
        the cell has at least ``min_events`` events and non-events, else Clopper-Pearson
        on the number of subjects.
    name : str, optional
        What the rate is called in tables (default: ``event``).
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    min_events : int
        Fewest events and non-events a cell needs for the ``"auto"`` subject bootstrap.
    n_boot, confidence
        Bootstrap resamples and interval coverage (strictly between 0 and 1).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell: rate, ``n``, ``count``, interval, ``small_cell``; the overall
        rate; disparities over cells with at least ``min_count`` rows.

    Raises
    ------
    ValueError
        For an unknown ``interval``, a missing column, or an event column that is not
        boolean or 0/1.
    """
    if interval not in _INTERVALS:
        raise ValueError(_BAD_INTERVAL.format(known=_INTERVALS, got=interval))
    by_cols = _as_list(by)
    _check_columns(data, [event, subject, *by_cols])
    events_all = _bool_column(data, event)
    subj_all = data[subject].to_numpy() if subject else None
    opts = dict(interval=interval, min_events=min_events, n_boot=n_boot, confidence=confidence)
    rows, keys = [], []
    for i, (key, idx) in enumerate(_groups(data, by_cols).indices.items()):
        keys.append(key if isinstance(key, tuple) else (key,))
        rows.append(
            _rate_row(
                events_all[idx],
                None if subj_all is None else subj_all[idx],
                rng=_cell_rng(seed, i + 1),
                **opts,
            )
        )
    overall = _rate_row(events_all, subj_all, rng=_cell_rng(seed, 0), **opts)
    return _finish(name or event, rows, keys, by_cols, overall, min_count, confidence)


def mean_by_group(
    data: pd.DataFrame,
    *,
    value: str,
    by: str | Sequence[str],
    subject: str | None = None,
    name: str | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """The mean of numeric column ``value`` per cell (e.g. absolute age error in years).

    With a seeded percentile bootstrap interval (over subjects when ``subject`` is given).
    Rows with a missing value are dropped (and not counted in ``n``).

    Parameters
    ----------
    data : DataFrame
        One row per item.
    value : str
        Numeric column to average.
    by : str or sequence of str
        Group column(s); several give intersectional cells (race x gender).
    subject : str, optional
        Identity column: rows of one subject are resampled together.
    name : str, optional
        What the metric is called in tables.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1.
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell: mean, ``n``, interval, ``small_cell``; the overall mean.

    Raises
    ------
    ValueError
        For a missing column or no rows.
    """
    by_cols = _as_list(by)
    _check_columns(data, [value, subject, *by_cols])
    data = data[data[value].notna()]
    vals_all = data[value].to_numpy(dtype=float)
    subj_all = data[subject].to_numpy() if subject else None

    def row(idx: np.ndarray | slice, rng: np.random.Generator) -> dict[str, Any]:
        vals = vals_all[idx]
        subj = None if subj_all is None else subj_all[idx]
        low, high = _cluster_mean_ci(
            vals, subj, n_boot=n_boot, confidence=confidence, rng=rng
        )
        out: dict[str, Any] = {"value": float(vals.mean()) if vals.size else math.nan,
                               "n": int(vals.size)}
        if subj is not None:
            out["n_subjects"] = int(pd.Series(subj).nunique())
        unit = "subjects" if subj is not None else "rows"
        out.update(ci_low=low, ci_high=high, method=f"bootstrap ({unit}, {n_boot})")
        return out

    rows, keys = [], []
    for i, (key, idx) in enumerate(_groups(data, by_cols).indices.items()):
        keys.append(key if isinstance(key, tuple) else (key,))
        rows.append(row(idx, _cell_rng(seed, i + 1)))
    overall = row(slice(None), _cell_rng(seed, 0))
    return _finish(name or f"mean {value}", rows, keys, by_cols, overall, min_count, confidence)


def disaggregate(
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    y_pred: Sequence[Any] | np.ndarray | pd.Series,
    *,
    metric: Callable[[Any, Any], float],
    sensitive_features: pd.Series | pd.DataFrame,
    subjects: Sequence[Any] | np.ndarray | pd.Series | None = None,
    name: str | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
    resampled_metric: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], float]]
    | None = None,
) -> GroupedMetric:
    """Any ``metric(y_true, y_pred)`` per cell (fairlearn ``MetricFrame``), with intervals.

    Point values come from :class:`fairlearn.metrics.MetricFrame`; intervals from a seeded
    percentile bootstrap within each cell, resampling ``subjects`` (when given) rather
    than rows.

    Parameters
    ----------
    y_true, y_pred : sequence, numpy.ndarray or pandas.Series
        ``(n,)`` values passed to ``metric``.
    metric : callable
        ``metric(y_true, y_pred) -> float``, e.g.
        :func:`~facelab.metrics.classification.cohen_kappa`.
    sensitive_features : pandas.Series or DataFrame
        ``(n,)`` group of each row; a DataFrame's columns form intersectional cells.
    subjects : sequence, numpy.ndarray or pandas.Series, optional
        ``(n,)`` identity of each row, resampled together.
    name : str, optional
        What the metric is called in tables.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1.
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).
    resampled_metric : callable, optional
        ``resampled_metric(y_true_cell, y_pred_cell)`` returns ``f(rows)`` equal to
        ``metric(y_true_cell[rows], y_pred_cell[rows])``, a faster path for the bootstrap
        resamples (e.g. :func:`~facelab.metrics.classification.kappa_resampler`); by
        default ``metric`` is called on each resample.

    Returns
    -------
    GroupedMetric
        One row per cell: value, ``n``, interval, ``small_cell``; the overall value.

    Raises
    ------
    ValueError
        For empty input or lengths that differ.
    """
    from fairlearn.metrics import MetricFrame

    feats = (
        sensitive_features.to_frame()
        if isinstance(sensitive_features, pd.Series)
        else pd.DataFrame(sensitive_features)
    ).reset_index(drop=True)
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if len(feats) == 0:
        raise ValueError(_EMPTY)
    mf = MetricFrame(metrics=metric, y_true=yt, y_pred=yp, sensitive_features=feats)
    by_cols = [str(c) for c in feats.columns]
    subj_all = None if subjects is None else np.asarray(subjects)
    unit = "subjects" if subj_all is not None else "rows"

    def row(idx: np.ndarray, value: float, rng: np.random.Generator) -> dict[str, Any]:
        subj = None if subj_all is None else subj_all[idx]
        yt_cell, yp_cell = yt[idx], yp[idx]
        fast = None if resampled_metric is None else resampled_metric(yt_cell, yp_cell)

        def stat(sample: np.ndarray) -> float:
            try:
                if fast is not None:
                    return float(fast(sample))
                return float(metric(yt_cell[sample], yp_cell[sample]))
            except ValueError:
                return math.nan

        low, high = bootstrap_ci(
            stat, len(idx), clusters=subj, n_boot=n_boot, confidence=confidence,
            seed=rng,
        )
        out: dict[str, Any] = {"value": float(value), "n": int(len(idx))}
        if subj is not None:
            out["n_subjects"] = int(pd.Series(subj).nunique())
        out.update(ci_low=low, ci_high=high, method=f"bootstrap ({unit}, {n_boot})")
        return out

    by_group = mf.by_group
    rows, keys = [], []
    for i, (key, idx) in enumerate(_groups(feats, by_cols).indices.items()):
        k = key if isinstance(key, tuple) else (key,)
        keys.append(k)
        value = by_group.loc[k if len(k) > 1 else k[0]]
        rows.append(row(idx, value, _cell_rng(seed, i + 1)))
    overall = row(np.arange(len(feats)), mf.overall, _cell_rng(seed, 0))
    label = name or getattr(metric, "__name__", "metric")
    return _finish(label, rows, keys, by_cols, overall, min_count, confidence)


# ----------------------------------------------------------------------------- NIST-style
@dataclass(frozen=True)
class Differentials:
    """Demographic differentials at one global threshold (NIST FRVT Part 3 style).

    Attributes
    ----------
    threshold : ThresholdChoice
        The one threshold used for every group, and how it was set.
    by_group : DataFrame
        Index: group. Columns ``fmr``, ``fmr_count``, ``fmr_n``, ``fmr_ci_low``,
        ``fmr_ci_high``, ``fmr_method``, ``fmr_ratio``, ``fmr_small_cell`` and the same
        for ``fnmr``. FMR uses same-group impostor pairs (both people in the group),
        FNMR genuine pairs of the group. Ratios are to the reference group's rate (or to
        the rate over everyone when there is no reference group). Without genuine pairs
        the FNMR columns are missing values and ``fnmr`` is None.
    cross : DataFrame
        Long form of the cross-group impostor FMR: ``group_a`` (probe), ``group_b``
        (candidate), ``fmr``, ``count``, ``n``, ``ci_low``, ``ci_high``.
    reference : str
    """

    threshold: ThresholdChoice
    by_group: pd.DataFrame
    cross: pd.DataFrame
    reference: str
    fmr: GroupedMetric
    fnmr: GroupedMetric | None

    @property
    def fmr_matrix(self) -> pd.DataFrame:
        """Cross-group impostor FMR: rows probe group, columns candidate group."""
        return self.cross.pivot(index="group_a", columns="group_b", values="fmr")

    @property
    def count_matrix(self) -> pd.DataFrame:
        """False matches behind each cell of :attr:`fmr_matrix`."""
        return self.cross.pivot(index="group_a", columns="group_b", values="count")

    @property
    def n_matrix(self) -> pd.DataFrame:
        """Impostor comparisons behind each cell of :attr:`fmr_matrix`."""
        return self.cross.pivot(index="group_a", columns="group_b", values="n")


def demographic_differentials(
    pairs: pd.DataFrame,
    *,
    target_fmr: float | None = None,
    threshold: float | ThresholdChoice | None = None,
    reference_group: Any | None = None,
    symmetric: bool = True,
    interval: Interval = "auto",
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Differentials:
    """FMR and FNMR by group at one global threshold, and the cross-group FMR matrix.

    Parameters
    ----------
    pairs : DataFrame
        One row per comparison with columns ``score`` (higher = more alike), ``same``
        (True for genuine pairs), ``group_a``, ``group_b`` and optionally ``subject_a``,
        ``subject_b`` (identities; enable the subject bootstrap, clustered on
        ``subject_a``).
    target_fmr : float, optional
        Set the threshold with :func:`~facelab.metrics.biometric.threshold_at_fmr` on the
        impostor pairs of ``reference_group`` (same-group pairs) or, when it is None, on
        every impostor pair.
    threshold : float or ThresholdChoice, optional
        Use this threshold instead (give exactly one of ``threshold`` and ``target_fmr``).
    reference_group : optional
        The group whose rates the ratios are taken to; None = everyone.
    symmetric : bool
        Pairs are unordered: count a cross-group impostor pair in both (a, b) and (b, a)
        cells of the matrix, so the matrix is symmetric.
    interval : {"auto", "wilson", "clopper-pearson", "bootstrap"}
        Interval of each group's rate, as in :func:`rate_by_group`.
    min_count : int
        Groups with fewer comparisons are flagged ``small_cell``.
    n_boot, confidence
        Bootstrap resamples and interval coverage (strictly between 0 and 1).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    Differentials
        ``fmr`` and ``fnmr`` (:class:`GroupedMetric` per group), the cross-group FMR
        matrix with its counts, and the :class:`ThresholdChoice` saying how the one global
        threshold was set (NIST FRVT Part 3, NISTIR 8280, uses the same design).

    Raises
    ------
    ValueError
        Unless exactly one of ``threshold`` and ``target_fmr`` is given; for missing
        columns; for a ``reference_group`` without impostor pairs.
    """
    if (target_fmr is None) == (threshold is None):
        raise ValueError(_NEED_THRESHOLD)
    need = ["score", "same", "group_a", "group_b"]
    _check_columns(pairs, need)
    df = pairs.copy()
    df["same"] = _bool_column(df, "same")
    has_subj = "subject_a" in df.columns
    imp = df[~df["same"]]
    groups = sorted(pd.unique(pd.concat([df["group_a"], df["group_b"]])).tolist(), key=str)
    same_group_imp = imp[imp["group_a"] == imp["group_b"]]
    ref_label = "everyone" if reference_group is None else f"group {reference_group}"

    if target_fmr is not None:
        if reference_group is None:
            ref_scores = imp["score"]
        else:
            ref_scores = same_group_imp.loc[same_group_imp["group_a"] == reference_group, "score"]
            if len(ref_scores) == 0:
                raise ValueError(
                    _BAD_REFERENCE.format(ref=reference_group, what="impostor", groups=groups)
                )
        choice = threshold_at_fmr(ref_scores, target_fmr, reference=ref_label)
    elif isinstance(threshold, ThresholdChoice):
        choice = threshold
    else:
        t = float(threshold)  # type: ignore[arg-type]
        n_imp = len(imp)
        k = int((imp["score"] >= t).sum())
        choice = ThresholdChoice(
            threshold=t,
            target_fmr=math.nan,
            achieved_fmr=k / n_imp if n_imp else math.nan,
            n_impostor=n_imp,
            n_false_matches=k,
            how=f"given as {t:g} by the caller (not set from data here)",
            reference=ref_label,
        )
    t = float(choice.threshold)
    df["match"] = df["score"] >= t
    df["false_match"] = ~df["same"] & df["match"]
    df["false_nonmatch"] = df["same"] & ~df["match"]
    subj = "subject_a" if has_subj else None
    opts = dict(
        subject=subj, interval=interval, min_count=min_count, n_boot=n_boot,
        confidence=confidence, seed=seed,
    )
    sg = df[~df["same"] & (df["group_a"] == df["group_b"])]
    fmr = rate_by_group(sg.rename(columns={"group_a": "group"}), event="false_match",
                        by="group", name="FMR", **opts)
    # Without genuine pairs (one image per person, e.g. FairFace or CFD) FNMR is not
    # measurable: it is reported as missing, and FMR is still computed.
    fnmr = (rate_by_group(df[df["same"]].rename(columns={"group_a": "group"}),
                          event="false_nonmatch", by="group", name="FNMR", **opts)
            if df["same"].any() else None)
    overall_fmr = rate_by_group(df[~df["same"]].assign(group="everyone"),
                                event="false_match", by="group", name="FMR", **opts)

    def block(gm: GroupedMetric | None, prefix: str, ref_value: float) -> pd.DataFrame:
        if gm is None:
            cols = ["value", "count", "n", "ci_low", "ci_high", "method", "small_cell"]
            bg = pd.DataFrame(math.nan, index=pd.Index(groups), columns=cols)
        else:
            bg = gm.by_group.reindex(groups)
        out = pd.DataFrame(index=pd.Index(groups, name="group"))
        out[prefix] = bg["value"]
        out[f"{prefix}_count"] = bg["count"]
        out[f"{prefix}_n"] = bg["n"]
        out[f"{prefix}_ci_low"] = bg["ci_low"]
        out[f"{prefix}_ci_high"] = bg["ci_high"]
        out[f"{prefix}_method"] = bg["method"]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{prefix}_ratio"] = bg["value"] / ref_value if ref_value else math.nan
        out[f"{prefix}_small_cell"] = bg["small_cell"].fillna(True).astype(bool)
        return out

    if reference_group is None:
        ref_fmr = float(overall_fmr.overall["value"])
        ref_fnmr = float(fnmr.overall["value"]) if fnmr is not None else math.nan
    else:
        if reference_group not in fmr.by_group.index:
            raise ValueError(
                _BAD_REFERENCE.format(ref=reference_group, what="impostor", groups=groups)
            )
        ref_fmr = float(fmr.by_group.loc[reference_group, "value"])
        ref_fnmr = (
            float(fnmr.by_group.loc[reference_group, "value"])
            if fnmr is not None and reference_group in fnmr.by_group.index
            else math.nan
        )
    by_group = pd.concat([block(fmr, "fmr", ref_fmr), block(fnmr, "fnmr", ref_fnmr)], axis=1)

    cross_src = df[~df["same"]][["group_a", "group_b", "false_match"]]
    if symmetric:
        swapped = cross_src[cross_src["group_a"] != cross_src["group_b"]].rename(
            columns={"group_a": "group_b", "group_b": "group_a"}
        )
        cross_src = pd.concat([cross_src, swapped], ignore_index=True)
    agg = cross_src.groupby(["group_a", "group_b"], observed=True)["false_match"].agg(
        ["sum", "size"]
    )
    full = pd.MultiIndex.from_product([groups, groups], names=["group_a", "group_b"])
    agg = agg.reindex(full, fill_value=0)
    cross_rows = []
    for (a, b), (k, n) in agg.iterrows():
        low, high = binomial_ci(int(k), int(n), confidence=confidence)
        cross_rows.append(
            {"group_a": a, "group_b": b, "fmr": k / n if n else math.nan, "count": int(k),
             "n": int(n), "ci_low": low, "ci_high": high}
        )
    cross = pd.DataFrame(cross_rows)
    return Differentials(
        threshold=choice, by_group=by_group, cross=cross, reference=ref_label,
        fmr=fmr, fnmr=fnmr,
    )
