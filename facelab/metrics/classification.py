"""Classification audits: confusion, per-class rates, one label's false-positive rate by
group, calibration, agreement between models, age error by group.

Expression and gender outputs describe **appearance**, not inner state or identity: a
"fear" label means the face looks like the training data's fear faces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facelab.metrics.groups import (
    DEFAULT_MIN_COUNT,
    GroupedMetric,
    Interval,
    disaggregate,
    mean_by_group,
    rate_by_group,
)
from facelab.metrics.intervals import (
    BinomialMethod,
    RateEstimate,
    binomial_ci,
    method_label,
    rate_estimate,
)

__all__ = [
    "confusion_matrix",
    "accuracy",
    "per_class_metrics",
    "accuracy_by_group",
    "label_rate_by_group",
    "Calibration",
    "calibration",
    "cohen_kappa",
    "kappa_resampler",
    "agreement_by_group",
    "age_error",
    "age_mae_by_group",
]

_LENGTH_MISMATCH = "y_true and y_pred have different lengths: {a} and {b}"
_PROB_SHAPE = "y_prob must be 1-d (binary) or 2-d (n, n_classes); got shape {shape}"
_PROB_LABELS = "2-d y_prob needs labels (or a DataFrame whose columns are the labels)"
_BAD_BIN = "cannot read age bin {value!r}: expected 'lo-hi', 'more than N' or a number"


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(y_true), np.asarray(y_pred)
    if a.shape[0] != b.shape[0]:
        raise ValueError(_LENGTH_MISMATCH.format(a=a.shape[0], b=b.shape[0]))
    return a, b


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[Any] | None = None,
    normalize: str | None = None,
) -> pd.DataFrame:
    """Confusion matrix as a DataFrame: rows true label, columns predicted label.

    Parameters
    ----------
    y_true, y_pred : array-like
        ``(n,)`` true and predicted labels (same length).
    labels : sequence, optional
        Row and column order (default: every label seen, sorted as strings).
    normalize : {None, "true", "pred", "all"}
        None (counts), ``"true"`` (rows sum to 1: recall on the diagonal), ``"pred"`` or
        ``"all"``, as in ``sklearn.metrics.confusion_matrix``.

    Returns
    -------
    DataFrame
        ``(n_labels, n_labels)``; index ``true``, columns ``predicted``.

    Raises
    ------
    ValueError
        When the two label arrays differ in length.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion

    a, b = _pair(y_true, y_pred)
    if labels is None:
        labels = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    cm = sk_confusion(a, b, labels=list(labels), normalize=normalize)
    return pd.DataFrame(
        cm,
        index=pd.Index(list(labels), name="true"),
        columns=pd.Index(list(labels), name="predicted"),
    )


def accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> RateEstimate:
    """Share of correct predictions, with its count and a binomial interval.

    Parameters
    ----------
    y_true, y_pred : array-like
        ``(n,)`` true and predicted labels (same length).
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    RateEstimate
        ``count`` correct of ``n``.

    Raises
    ------
    ValueError
        When the two label arrays differ in length.
    """
    a, b = _pair(y_true, y_pred)
    return rate_estimate(
        int((a == b).sum()), a.size, name="accuracy", confidence=confidence, method=method
    )


def per_class_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[Any] | None = None,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> pd.DataFrame:
    """Recall and precision per class, each with its counts and a binomial interval.

    Parameters
    ----------
    y_true, y_pred : array-like
        ``(n,)`` true and predicted labels (same length).
    labels : sequence, optional
        Classes to report (default: every label seen, sorted as strings).
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    DataFrame
        Indexed by label with columns ``support`` (true count), ``n_predicted``,
        ``n_correct``, ``recall``, ``recall_ci_low``, ``recall_ci_high``, ``precision``,
        ``precision_ci_low``, ``precision_ci_high``, ``method``. NaN rate for a class never
        seen (recall) or never predicted (precision).

    Raises
    ------
    ValueError
        When the two label arrays differ in length.
    """
    a, b = _pair(y_true, y_pred)
    if labels is None:
        labels = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    rows = []
    for lab in labels:
        support = int((a == lab).sum())
        n_pred = int((b == lab).sum())
        correct = int(((a == lab) & (b == lab)).sum())
        r_lo, r_hi = binomial_ci(correct, support, confidence=confidence, method=method)
        p_lo, p_hi = binomial_ci(correct, n_pred, confidence=confidence, method=method)
        rows.append(
            {
                "support": support,
                "n_predicted": n_pred,
                "n_correct": correct,
                "recall": correct / support if support else math.nan,
                "recall_ci_low": r_lo,
                "recall_ci_high": r_hi,
                "precision": correct / n_pred if n_pred else math.nan,
                "precision_ci_low": p_lo,
                "precision_ci_high": p_hi,
                "method": method_label(method),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(list(labels), name="label"))


def accuracy_by_group(
    data: pd.DataFrame,
    *,
    true: str,
    pred: str,
    by: str | Sequence[str],
    subject: str | None = None,
    interval: Interval = "auto",
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """Accuracy per group cell (see :func:`facelab.metrics.groups.rate_by_group`).

    Parameters
    ----------
    data : DataFrame
        One row per prediction.
    true, pred : str
        Columns of true and predicted labels.
    interval : {"auto", "wilson", "clopper-pearson", "bootstrap"}
        As in :func:`facelab.metrics.groups.rate_by_group`.
    by : str or sequence of str
        Group column(s); several give intersectional cells (race x gender).
    subject : str, optional
        Identity column: rows of one subject are resampled together.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell with value, counts and interval, the overall value, and the
        worst/best ratio and difference over cells with at least ``min_count`` rows.
    """
    df = data.assign(_correct=data[true].to_numpy() == data[pred].to_numpy())
    return rate_by_group(
        df, event="_correct", by=by, subject=subject, name="accuracy", interval=interval,
        min_count=min_count, n_boot=n_boot, confidence=confidence, seed=seed,
    )


def label_rate_by_group(
    data: pd.DataFrame,
    *,
    true: str,
    pred: str,
    by: str | Sequence[str],
    label: Any = "fear",
    subject: str | None = None,
    interval: Interval = "auto",
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """How often faces labelled otherwise are given ``label`` (fear by default), per group.

    Rows whose true label is ``label`` are left out; the rate is
    #{pred == label} / #{true != label} in each cell (the label's false positive rate).
    Expression labels describe how a face looks, not a person's inner state.

    Parameters
    ----------
    data : DataFrame
        One row per prediction.
    true, pred : str
        Columns of true and predicted labels.
    label : any
        The label whose false positive rate is measured.
    interval : {"auto", "wilson", "clopper-pearson", "bootstrap"}
        As in :func:`facelab.metrics.groups.rate_by_group`.
    by : str or sequence of str
        Group column(s); several give intersectional cells (race x gender).
    subject : str, optional
        Identity column: rows of one subject are resampled together.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell with value, counts and interval, the overall value, and the
        worst/best ratio and difference over cells with at least ``min_count`` rows.
    """
    df = data[data[true] != label]
    df = df.assign(_given=df[pred].to_numpy() == label)
    return rate_by_group(
        df, event="_given", by=by, subject=subject, name=f"rate of '{label}' given to others",
        interval=interval, min_count=min_count, n_boot=n_boot, confidence=confidence,
        seed=seed,
    )


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and its reliability table.

    ``table`` has one row per non-empty bin: ``bin``, ``low``, ``high``, ``n``,
    ``confidence`` (mean predicted probability), ``accuracy`` (observed frequency),
    ``gap`` (accuracy - confidence), ``ci_low``, ``ci_high`` (Wilson on accuracy).
    ``ece`` = sum over bins of n_b / N * |accuracy_b - confidence_b|.
    """

    ece: float
    table: pd.DataFrame
    n: int
    n_bins: int
    kind: str

    def __float__(self) -> float:
        return float(self.ece)


def calibration(
    y_true: ArrayLike,
    y_prob: ArrayLike | pd.DataFrame,
    *,
    labels: Sequence[Any] | None = None,
    n_bins: int = 10,
    confidence: float = 0.95,
) -> Calibration:
    """Calibration of predicted probabilities: ECE and reliability table (equal-width bins).

    Parameters
    ----------
    y_true : array-like
        Binary case: 0/1 (or bool) outcomes. Multi-class case: true labels.
    y_prob : array-like or DataFrame
        Binary case: 1-d probability of the positive outcome. Multi-class case: 2-d
        (n, n_classes) probabilities; the **top-label** calibration is measured
        (confidence = max probability, correct = argmax equals the true label).
    labels : sequence, optional
        Class labels of the 2-d columns (taken from the DataFrame columns if omitted).
    n_bins : int
        Equal-width probability bins over [0, 1] (Guo et al. 2017, "On Calibration of
        Modern Neural Networks": expected calibration error).
    confidence : float
        Coverage of each bin's binomial (Wilson) interval on its accuracy.

    Returns
    -------
    Calibration
        ``ece`` (expected calibration error), ``table`` (one row per non-empty bin:
        ``bin``, ``low``, ``high``, ``n``, ``confidence``, ``accuracy``, ``gap``,
        ``ci_low``, ``ci_high``), ``n``, ``n_bins`` and ``kind``.

    Raises
    ------
    ValueError
        For 2-d probabilities without labels, probabilities of more than 2 dimensions,
        or lengths that differ.
    """
    prob = y_prob.to_numpy(dtype=float) if isinstance(y_prob, pd.DataFrame) else np.asarray(
        y_prob, dtype=float
    )
    truth = np.asarray(y_true)
    if prob.ndim == 1:
        conf, outcome, kind = prob, truth.astype(float), "binary"
    elif prob.ndim == 2:
        if labels is None:
            if not isinstance(y_prob, pd.DataFrame):
                raise ValueError(_PROB_LABELS)
            labels = list(y_prob.columns)
        lab = np.asarray(list(labels), dtype=object)
        conf = prob.max(axis=1)
        outcome = (lab[prob.argmax(axis=1)] == truth.astype(object)).astype(float)
        kind = "top-label"
    else:
        raise ValueError(_PROB_SHAPE.format(shape=prob.shape))
    if conf.shape[0] != outcome.shape[0]:
        raise ValueError(_LENGTH_MISMATCH.format(a=outcome.shape[0], b=conf.shape[0]))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bins (low, high], the first one [0, high]
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    n = conf.size
    ece = 0.0
    for b in range(n_bins):
        mask = idx == b
        nb = int(mask.sum())
        if nb == 0:
            continue
        acc, mean_conf = float(outcome[mask].mean()), float(conf[mask].mean())
        lo, hi = binomial_ci(int(outcome[mask].sum()), nb, confidence=confidence)
        ece += nb / n * abs(acc - mean_conf)
        rows.append(
            {"bin": b, "low": edges[b], "high": edges[b + 1], "n": nb, "confidence": mean_conf,
             "accuracy": acc, "gap": acc - mean_conf, "ci_low": lo, "ci_high": hi}
        )
    return Calibration(ece=float(ece), table=pd.DataFrame(rows), n=n, n_bins=n_bins, kind=kind)


def cohen_kappa(pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    """Cohen's kappa between two models' labels (1 = perfect agreement, 0 = chance).

    Cohen 1960; computed by ``sklearn.metrics.cohen_kappa_score``.

    Parameters
    ----------
    pred_a, pred_b : array-like
        ``(n,)`` labels given by two models to the same items.

    Returns
    -------
    float
        Kappa in [-1, 1].

    Raises
    ------
    ValueError
        When the two label arrays differ in length.
    """
    from sklearn.metrics import cohen_kappa_score

    a, b = _pair(pred_a, pred_b)
    return float(cohen_kappa_score(a, b))


def kappa_resampler(pred_a: ArrayLike, pred_b: ArrayLike) -> Callable[[np.ndarray], float]:
    """``f(rows) == cohen_kappa(pred_a[rows], pred_b[rows])`` for many resamples, fast.

    The labels are coded once; each call counts the resample's confusion matrix with
    ``numpy.bincount`` over the labels it contains (sorted, as scikit-learn's
    ``unique_labels``) and applies the arithmetic of ``sklearn.metrics.cohen_kappa_score``
    (scikit-learn 1.8, unweighted) to it in the same order, so the result is
    bit-identical (tests/test_kappa_fast.py compares both on real predictions), without
    scikit-learn's input validation per resample (issue 16: 6-9 s of notebook 04's
    bootstrap). NaN where scikit-learn returns its undefined value (one label in common).
    Labels that are not all strings or all integers/booleans fall back to
    :func:`cohen_kappa` on each resample.

    Parameters
    ----------
    pred_a, pred_b : array-like
        ``(n,)`` labels given by two models to the same items.

    Returns
    -------
    callable
        Takes ``(m,)`` integer row indices (one resample), returns kappa (float).

    Raises
    ------
    ValueError
        When the two label arrays differ in length.
    """
    a, b = _pair(pred_a, pred_b)
    both = np.concatenate([a, b])
    if not (both.dtype.kind in "iub" or both.dtype.kind == "U"
            or (both.dtype.kind == "O" and all(isinstance(v, str) for v in both))):
        return lambda rows: cohen_kappa(a[rows], b[rows])
    if both.dtype.kind == "O":
        both = both.astype(str)
    labels, codes = np.unique(both, return_inverse=True)
    k = len(labels)
    pair_codes = codes[: len(a)] * k + codes[len(a):]

    def kappa(rows: np.ndarray) -> float:
        counts = np.bincount(pair_codes[rows], minlength=k * k).reshape(k, k)
        present = counts.any(axis=0) | counts.any(axis=1)
        confusion = counts[np.ix_(present, present)].astype(np.float64)
        n_classes = confusion.shape[0]
        sum0 = np.sum(confusion, axis=0)
        sum1 = np.sum(confusion, axis=1)
        denominator = np.sum(sum0)
        if denominator == 0:
            return math.nan
        expected = np.outer(sum0, sum1) / denominator
        w_mat = np.ones([n_classes, n_classes], dtype=np.float64)
        np.fill_diagonal(w_mat, 0)
        numerator = np.sum(w_mat * confusion)
        denominator = np.sum(w_mat * expected)
        if denominator == 0:
            return math.nan
        return float(1 - numerator / denominator)

    return kappa


def agreement_by_group(
    data: pd.DataFrame,
    *,
    a: str,
    b: str,
    by: str | Sequence[str],
    subject: str | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """Cohen's kappa between label columns ``a`` and ``b`` per group.

    Point values from fairlearn's ``MetricFrame``, with a seeded bootstrap interval (over
    subjects when given).

    Parameters
    ----------
    data : DataFrame
        One row per item labelled by both models.
    a, b : str
        The two label columns.
    by : str or sequence of str
        Group column(s); several give intersectional cells (race x gender).
    subject : str, optional
        Identity column: rows of one subject are resampled together.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell with value, counts and interval, the overall value, and the
        worst/best ratio and difference over cells with at least ``min_count`` rows.
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    return disaggregate(
        data[a].to_numpy(), data[b].to_numpy(), metric=cohen_kappa,
        resampled_metric=kappa_resampler, sensitive_features=data[by_cols].reset_index(drop=True),
        subjects=None if subject is None else data[subject].to_numpy(),
        name="Cohen's kappa", min_count=min_count, n_boot=n_boot, confidence=confidence,
        seed=seed,
    )


_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$")
_MORE = re.compile(r"^\s*more than\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def _bin_bounds(value: Any) -> tuple[float, float]:
    if isinstance(value, int | float | np.integer | np.floating):
        return (float(value), float(value))
    text = str(value)
    if m := _RANGE.match(text):
        return (float(m.group(1)), float(m.group(2)))
    if m := _MORE.match(text):
        return (float(m.group(1)), math.inf)
    try:
        v = float(text)
    except ValueError:
        raise ValueError(_BAD_BIN.format(value=value)) from None
    return (v, v)


def age_error(true_age: ArrayLike, pred_age: ArrayLike) -> np.ndarray:
    """Absolute age error in years.

    ``true_age`` may be numbers or bins such as FairFace's "20-29" or "more than 70": the
    error is then the distance from the prediction to the bin (0 inside it). Missing
    predictions give NaN.

    Parameters
    ----------
    true_age : array-like
        ``(n,)`` true ages in years, or age-bin labels.
    pred_age : array-like
        ``(n,)`` predicted (apparent) ages in years.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 absolute error in years.

    Raises
    ------
    ValueError
        For an age bin that is not a number, ``"a-b"`` or ``"more than a"``, or arrays of
        different lengths.
    """
    t, p = _pair(true_age, pred_age)
    bounds = np.array([_bin_bounds(v) for v in t], dtype=float).reshape(-1, 2)
    pred = p.astype(float)
    below = np.clip(bounds[:, 0] - pred, 0, None)
    above = np.clip(pred - bounds[:, 1], 0, None)
    return below + above


def age_mae_by_group(
    data: pd.DataFrame,
    *,
    true: str,
    pred: str,
    by: str | Sequence[str],
    subject: str | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroupedMetric:
    """Mean absolute age error per group with a seeded bootstrap interval.

    See :func:`age_error` for binned truths. Rows without a prediction are left out.
    Predicted ages are apparent ages (how old a face looks).

    Parameters
    ----------
    data : DataFrame
        One row per face.
    true, pred : str
        Columns of true ages (years or bins) and predicted ages (years).
    by : str or sequence of str
        Group column(s); several give intersectional cells (race x gender).
    subject : str, optional
        Identity column: rows of one subject are resampled together.
    min_count : int
        Cells with fewer rows are flagged ``small_cell`` and left out of disparities.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    seed : int or None
        Seeds the bootstrap (each cell its own generator from ``(seed, cell)``): the same
        seed gives the same intervals; ``None`` draws fresh entropy (reruns differ).

    Returns
    -------
    GroupedMetric
        One row per cell with value, counts and interval, the overall value, and the
        worst/best ratio and difference over cells with at least ``min_count`` rows.
    """
    df = data.assign(_abs_error=age_error(data[true].to_numpy(), data[pred].to_numpy()))
    return mean_by_group(
        df, value="_abs_error", by=by, subject=subject, name="age MAE (years)",
        min_count=min_count, n_boot=n_boot, confidence=confidence, seed=seed,
    )
