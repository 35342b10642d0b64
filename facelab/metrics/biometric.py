"""Biometric error rates with ISO/IEC 19795-1 names: FMR, FNMR, DET/ROC, EER, FPIR, FNIR.

Conventions used everywhere in this module
------------------------------------------
* A **score** is a similarity: higher means more alike. (Turn a distance into a score by
  negating it.)
* A comparison is declared a **match when score >= threshold**.
* **Genuine** (mated) comparisons are of the same person; **impostor** (non-mated)
  comparisons are of different people.
* FMR(t)  = #{impostor scores >= t} / #impostor comparisons   (false match rate)
* FNMR(t) = #{genuine scores  <  t} / #genuine comparisons    (false non-match rate)

1:N identification (search) inputs
----------------------------------
A **search-results** DataFrame holds one row per returned candidate, with columns

``probe``           id of the search (one probe image searched against the gallery),
``candidate_rank``  1 for the best-scoring candidate, 2 for the next, ...,
``score``           similarity of probe and candidate,
``is_mate``         True when the candidate is the probe's own identity.

A **mated search** is one whose probe identity is enrolled in the gallery; a **non-mated
search** is one whose identity is not.

* FPIR(t)    = #{non-mated searches returning a candidate with score >= t} / #non-mated
  searches  (false positive identification rate; grows with gallery size N)
* FNIR(t, R) = #{mated searches whose mate is not returned at rank <= R with score >= t}
  / #mated searches  (false negative identification rate)

Scores must be finite numbers: drop comparisons that failed (no face found, bad image)
before calling these functions and report them as failures to acquire. For FPIR, a
search that returned no candidate at all has top score ``-inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facelab.metrics.intervals import (
    BinomialMethod,
    RateEstimate,
    format_rate,
    rate_estimate,
)

__all__ = [
    "RateEstimate",
    "ThresholdChoice",
    "EqualErrorRate",
    "threshold_at_fmr",
    "fmr_at_threshold",
    "fnmr_at_threshold",
    "det_curve",
    "roc_curve",
    "eer",
    "roc_auc",
    "SEARCH_COLUMNS",
    "fpir",
    "fnir",
    "fpir_curve",
    "fnir_curve",
    "identification_by_gallery_size",
]

SEARCH_COLUMNS = ("probe", "candidate_rank", "score", "is_mate")

_EMPTY_SCORES = "{what} scores are empty: no {what} comparisons to measure"
_NONFINITE_SCORES = (
    "{what} scores contain {k} NaN/inf value(s): drop failed comparisons first and report "
    "them as failures to acquire"
)
_BAD_TARGET = "target_fmr must be strictly between 0 and 1; got {got!r}"
_TOO_FEW_IMPOSTORS = (
    "needs at least {need:,} impostor comparisons to resolve FMR={target:g}; you have {have:,}"
)
_MISSING_COLUMNS = "search results need columns {need}; missing {missing}"
_BAD_RANK = "rank must be an integer >= 1; got {got!r}"
_NO_BOTH = "need both genuine and impostor scores; got {n_gen} genuine and {n_imp} impostor"
_BAD_GALLERY_SIZE = "gallery size {n} is larger than the {have} gallery entries available"


# ----------------------------------------------------------------------------- helpers
def _scores(values: ArrayLike, what: str, *, allow_neg_inf: bool = False) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    bad = np.isnan(arr) | (np.isinf(arr) if not allow_neg_inf else np.isposinf(arr))
    if bad.any():
        raise ValueError(_NONFINITE_SCORES.format(what=what, k=int(bad.sum())))
    return arr


def _nonempty(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.size == 0:
        raise ValueError(_EMPTY_SCORES.format(what=what))
    return arr


def _count_at_or_above(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{s >= t} for each t, given ascending ``sorted_scores``."""
    return sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="left")


def _count_below(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{s < t} for each t, given ascending ``sorted_scores``."""
    return np.searchsorted(sorted_scores, thresholds, side="left")


# ----------------------------------------------------------------------------- 1:1
@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold and how it was set.

    Attributes
    ----------
    threshold : float
        Declare a match when ``score >= threshold``.
    target_fmr : float
        The FMR the threshold was set for.
    achieved_fmr : float
        FMR on the impostor scores it was set on (<= ``target_fmr``).
    n_impostor : int
        Number of impostor comparisons used.
    n_false_matches : int
        Impostor comparisons scoring at or above the threshold.
    how : str
        One sentence for reports, e.g. "set at FMR<=0.001 on 12,345 impostor comparisons
        of everyone (achieved FMR 0.0010, 12/12,345)".
    reference : str
        The population the impostor scores came from.
    """

    threshold: float
    target_fmr: float
    achieved_fmr: float
    n_impostor: int
    n_false_matches: int
    how: str
    reference: str = "everyone"

    def __float__(self) -> float:
        return float(self.threshold)

    def __str__(self) -> str:
        return f"threshold {self.threshold:.6g} ({self.how})"


def threshold_at_fmr(
    impostor_scores: ArrayLike,
    target_fmr: float,
    *,
    reference: str = "everyone",
) -> ThresholdChoice:
    """The smallest threshold whose false match rate is at most ``target_fmr``.

    The threshold is placed on an observed impostor score: it is the smallest observed
    score ``t`` with ``#{s >= t} / n <= target_fmr`` (every threshold between the next
    lower observed score and ``t`` gives the same FMR on these data). When ties at the top
    make every observed score exceed the target, the threshold is set just above the
    highest impostor score (achieved FMR 0).

    Parameters
    ----------
    impostor_scores : array-like
        Similarity scores of impostor (non-mated) comparisons; higher = more alike.
    target_fmr : float
        Target false match rate, in (0, 1).
    reference : str
        Name of the population the scores come from, used in ``how``.

    Returns
    -------
    ThresholdChoice

    Raises
    ------
    ValueError
        If ``target_fmr < 1 / n_impostor``: the data cannot resolve such a small rate.
    """
    if not 0 < target_fmr < 1:
        raise ValueError(_BAD_TARGET.format(got=target_fmr))
    scores = np.sort(_nonempty(_scores(impostor_scores, "impostor"), "impostor"))
    n = scores.size
    if target_fmr * n < 1 - 1e-9:
        need = math.ceil(1 / target_fmr - 1e-9)
        raise ValueError(_TOO_FEW_IMPOSTORS.format(need=need, target=target_fmr, have=n))
    candidates = np.unique(scores)
    counts = _count_at_or_above(scores, candidates)
    ok = counts <= target_fmr * n * (1 + 1e-12)
    if ok.any():
        i = int(np.argmax(ok))  # counts are non-increasing: first ok is the smallest t
        threshold, k = float(candidates[i]), int(counts[i])
    else:
        threshold, k = float(np.nextafter(scores[-1], np.inf)), 0
    achieved = k / n
    how = (
        f"set at FMR<={target_fmr:g} on {n:,} impostor comparisons of {reference} "
        f"(achieved FMR {format_rate(achieved)}, {k:,}/{n:,})"
    )
    return ThresholdChoice(
        threshold=threshold,
        target_fmr=float(target_fmr),
        achieved_fmr=achieved,
        n_impostor=n,
        n_false_matches=k,
        how=how,
        reference=reference,
    )


def fmr_at_threshold(
    impostor_scores: ArrayLike,
    threshold: float | ThresholdChoice,
    *,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> RateEstimate:
    """False match rate: share of impostor comparisons with ``score >= threshold``.

    The interval is binomial (``"wilson"`` by default, ``"clopper-pearson"`` for an exact,
    conservative one). It treats comparisons as independent; when one person appears in
    many comparisons use :func:`facelab.metrics.groups.rate_by_group` with a subject
    column for a subject bootstrap.

    Parameters
    ----------
    impostor_scores : array-like
        ``(n,)`` finite similarities of non-mated comparisons.
    threshold : float or ThresholdChoice
        Similarity threshold; ``score >= threshold`` is a match.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    RateEstimate
        FMR (ISO/IEC 19795-1) with count, n and interval.

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    t = float(threshold)
    scores = _scores(impostor_scores, "impostor")
    k = int(np.count_nonzero(scores >= t))
    return rate_estimate(
        k, scores.size, name="FMR", confidence=confidence, method=method, threshold=t
    )


def fnmr_at_threshold(
    genuine_scores: ArrayLike,
    threshold: float | ThresholdChoice,
    *,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> RateEstimate:
    """False non-match rate: share of genuine comparisons with ``score < threshold``.

    Parameters
    ----------
    genuine_scores : array-like
        ``(n,)`` finite similarities of mated comparisons.
    threshold : float or ThresholdChoice
        Similarity threshold; ``score >= threshold`` is a match.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    RateEstimate
        FNMR (ISO/IEC 19795-1) with count, n and interval.

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    t = float(threshold)
    scores = _scores(genuine_scores, "genuine")
    k = int(np.count_nonzero(scores < t))
    return rate_estimate(
        k, scores.size, name="FNMR", confidence=confidence, method=method, threshold=t
    )


def det_curve(
    genuine_scores: ArrayLike,
    impostor_scores: ArrayLike,
    *,
    thresholds: ArrayLike | None = None,
) -> pd.DataFrame:
    """FMR and FNMR as functions of the threshold (the DET curve).

    Parameters
    ----------
    genuine_scores, impostor_scores : array-like
        ``(n_genuine,)`` and ``(n_impostor,)`` finite similarities of mated and non-mated
        comparisons.
    thresholds : array-like, optional
        Where to evaluate; by default every distinct observed score (ascending).

    Returns
    -------
    DataFrame
        Columns ``threshold``, ``fmr``, ``fnmr``, ``n_false_match``, ``n_false_nonmatch``,
        ``n_impostor``, ``n_genuine``; one row per threshold, ascending.

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    gen = np.sort(_nonempty(_scores(genuine_scores, "genuine"), "genuine"))
    imp = np.sort(_nonempty(_scores(impostor_scores, "impostor"), "impostor"))
    if thresholds is None:
        ts = np.unique(np.concatenate([gen, imp]))
    else:
        ts = np.sort(np.asarray(thresholds, dtype=float).ravel())
    fm = _count_at_or_above(imp, ts)
    fnm = _count_below(gen, ts)
    return pd.DataFrame(
        {
            "threshold": ts,
            "fmr": fm / imp.size,
            "fnmr": fnm / gen.size,
            "n_false_match": fm.astype(int),
            "n_false_nonmatch": fnm.astype(int),
            "n_impostor": imp.size,
            "n_genuine": gen.size,
        }
    )


def roc_curve(
    genuine_scores: ArrayLike,
    impostor_scores: ArrayLike,
    *,
    thresholds: ArrayLike | None = None,
) -> pd.DataFrame:
    """The ROC curve: ``fmr`` (false positive rate) and ``tpr = 1 - fnmr`` per threshold.

    Parameters
    ----------
    genuine_scores, impostor_scores : array-like
        ``(n_genuine,)`` and ``(n_impostor,)`` finite similarities of mated and non-mated
        comparisons.
    thresholds : array-like, optional
        Where to evaluate; by default every distinct observed score.

    Returns
    -------
    DataFrame
        Columns ``threshold``, ``fmr``, ``tpr``, ``fnmr``, ``n_impostor``, ``n_genuine``;
        ascending threshold (so descending fmr and tpr).

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    det = det_curve(genuine_scores, impostor_scores, thresholds=thresholds)
    return pd.DataFrame(
        {
            "threshold": det["threshold"],
            "fmr": det["fmr"],
            "tpr": 1.0 - det["fnmr"],
            "fnmr": det["fnmr"],
            "n_impostor": det["n_impostor"],
            "n_genuine": det["n_genuine"],
        }
    )


@dataclass(frozen=True)
class EqualErrorRate:
    """Equal error rate: where FMR and FNMR cross.

    ``eer`` is the mean of FMR and FNMR at ``threshold``, the observed threshold that
    minimises ``|FMR - FNMR|`` (ties: the lowest such threshold).
    """

    eer: float
    threshold: float
    fmr: float
    fnmr: float
    n_genuine: int
    n_impostor: int

    def __float__(self) -> float:
        return float(self.eer)

    def __str__(self) -> str:
        return (
            f"EER {format_rate(self.eer)} at threshold {self.threshold:.6g} "
            f"(FMR {format_rate(self.fmr)}, FNMR {format_rate(self.fnmr)}; "
            f"{self.n_genuine:,} genuine, {self.n_impostor:,} impostor)"
        )


def eer(genuine_scores: ArrayLike, impostor_scores: ArrayLike) -> EqualErrorRate:
    """Equal error rate and the threshold it occurs at (see :class:`EqualErrorRate`).

    Parameters
    ----------
    genuine_scores, impostor_scores : array-like
        ``(n_genuine,)`` and ``(n_impostor,)`` finite similarities of mated and non-mated
        comparisons.

    Returns
    -------
    EqualErrorRate
        At the observed threshold where ``|FMR - FNMR|`` is smallest: ``eer`` is their mean.

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    det = det_curve(genuine_scores, impostor_scores)
    gap = (det["fmr"] - det["fnmr"]).abs().to_numpy()
    i = int(np.argmin(gap))
    row = det.iloc[i]
    return EqualErrorRate(
        eer=float((row["fmr"] + row["fnmr"]) / 2),
        threshold=float(row["threshold"]),
        fmr=float(row["fmr"]),
        fnmr=float(row["fnmr"]),
        n_genuine=int(row["n_genuine"]),
        n_impostor=int(row["n_impostor"]),
    )


def roc_auc(genuine_scores: ArrayLike, impostor_scores: ArrayLike) -> float:
    """Area under the ROC curve: P(genuine score > impostor score) + 0.5 P(tie).

    Computed as the Mann-Whitney U statistic over both sample sizes (average ranks for
    ties, ``scipy.stats.rankdata``).

    Parameters
    ----------
    genuine_scores, impostor_scores : array-like
        ``(n_genuine,)`` and ``(n_impostor,)`` finite similarities of mated and non-mated
        comparisons.

    Returns
    -------
    float
        In [0, 1]; 0.5 is chance.

    Raises
    ------
    ValueError
        When scores are empty or contain NaN or infinite values (drop failed comparisons
        first and report them as failures to acquire).
    """
    from scipy.stats import rankdata

    gen = _nonempty(_scores(genuine_scores, "genuine"), "genuine")
    imp = _nonempty(_scores(impostor_scores, "impostor"), "impostor")
    ranks = rankdata(np.concatenate([gen, imp]))  # average ranks for ties
    u = ranks[: gen.size].sum() - gen.size * (gen.size + 1) / 2
    return float(u / (gen.size * imp.size))


# ----------------------------------------------------------------------------- 1:N
def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SEARCH_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(_MISSING_COLUMNS.format(need=list(SEARCH_COLUMNS), missing=missing))
    _scores(results["score"].to_numpy(), "search")
    return results


def _check_rank(rank: Any) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
        raise ValueError(_BAD_RANK.format(got=rank))
    return int(rank)


def _top_scores(nonmated: ArrayLike | pd.DataFrame | pd.Series) -> np.ndarray:
    if isinstance(nonmated, pd.DataFrame):
        _check_results(nonmated)
        return nonmated.groupby("probe", sort=True)["score"].max().to_numpy(dtype=float)
    return _scores(nonmated, "non-mated top", allow_neg_inf=True)


def fpir(
    nonmated_top_scores: ArrayLike | pd.DataFrame,
    threshold: float | ThresholdChoice,
    *,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> RateEstimate:
    """False positive identification rate at ``threshold``.

    Parameters
    ----------
    nonmated_top_scores : array-like or DataFrame
        One top (rank-1) score per non-mated search (``-inf`` for a search that returned
        no candidate), or the search-results DataFrame of the non-mated searches (columns
        :data:`SEARCH_COLUMNS`; the top score per probe is taken).
    threshold : float or ThresholdChoice
        Similarity threshold a candidate must reach to be returned.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    RateEstimate
        ``count`` = non-mated searches returning any candidate with score >= threshold,
        ``n`` = non-mated searches.

    Raises
    ------
    ValueError
        For NaN scores or a results table without the columns :data:`SEARCH_COLUMNS`.
    """
    t = float(threshold)
    top = _top_scores(nonmated_top_scores)
    k = int(np.count_nonzero(top >= t))
    return rate_estimate(
        k, top.size, name="FPIR", confidence=confidence, method=method, threshold=t
    )


def _mate_ranks_and_scores(
    mated_results: pd.DataFrame, probes: Sequence[Any] | None
) -> tuple[pd.DataFrame, int]:
    res = _check_results(mated_results)
    mates = res.loc[res["is_mate"].astype(bool), ["probe", "candidate_rank", "score"]]
    if probes is None:
        probe_ids = pd.unique(res["probe"])
    else:
        probe_ids = pd.unique(pd.Series(list(probes)))
    mates = mates[mates["probe"].isin(probe_ids)]
    return mates, len(probe_ids)


def fnir(
    mated_results: pd.DataFrame,
    threshold: float | ThresholdChoice,
    *,
    rank: int = 1,
    probes: Sequence[Any] | None = None,
    confidence: float = 0.95,
    method: BinomialMethod = "wilson",
) -> RateEstimate:
    """False negative identification rate at ``threshold`` and ``rank``.

    A mated search is a miss unless a row with ``is_mate`` has ``candidate_rank <= rank``
    and ``score >= threshold``.

    Parameters
    ----------
    mated_results : DataFrame
        Search results of mated searches (columns :data:`SEARCH_COLUMNS`).
    threshold : float or ThresholdChoice
        Use ``-inf`` for rank-only identification (1 - CMC at ``rank``).
    rank : int
        Largest candidate rank that counts (1 = top candidate only).
    probes : sequence, optional
        Every mated search's probe id. Give it when some searches returned no row at all
        (they count as misses); by default the probes present in ``mated_results``.
    confidence : float
        Interval coverage, strictly between 0 and 1 (default 0.95).
    method : {"wilson", "clopper-pearson"}
        Binomial interval (:func:`facelab.metrics.intervals.binomial_ci`).

    Returns
    -------
    RateEstimate
        ``count`` = missed mated searches, ``n`` = mated searches.

    Raises
    ------
    ValueError
        For missing columns or a rank below 1.
    """
    t = float(threshold)
    r = _check_rank(rank)
    mates, n = _mate_ranks_and_scores(mated_results, probes)
    hit = mates[(mates["candidate_rank"] <= r) & (mates["score"] >= t)]["probe"].nunique()
    return rate_estimate(
        n - int(hit), n, name="FNIR", confidence=confidence, method=method, threshold=t
    )


def fpir_curve(
    nonmated_top_scores: ArrayLike | pd.DataFrame,
    *,
    thresholds: ArrayLike | None = None,
) -> pd.DataFrame:
    """FPIR as a function of the threshold.

    Parameters
    ----------
    nonmated_top_scores : array-like or DataFrame
        As for :func:`fpir`.
    thresholds : array-like, optional
        Where to evaluate (default: every distinct finite top score).

    Returns
    -------
    DataFrame
        Columns ``threshold``, ``fpir``, ``n_false_positive``, ``n_searches``; ascending
        threshold.

    Raises
    ------
    ValueError
        For no searches, NaN scores or missing columns.
    """
    top = np.sort(_top_scores(nonmated_top_scores))
    _nonempty(top, "non-mated top")
    ts = (
        np.unique(top[np.isfinite(top)])
        if thresholds is None
        else np.sort(np.asarray(thresholds, dtype=float).ravel())
    )
    k = _count_at_or_above(top, ts)
    return pd.DataFrame(
        {"threshold": ts, "fpir": k / top.size, "n_false_positive": k, "n_searches": top.size}
    )


def fnir_curve(
    mated_results: pd.DataFrame,
    *,
    thresholds: ArrayLike | None = None,
    ranks: Sequence[int] = (1,),
    probes: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """FNIR as a function of threshold and rank.

    Parameters
    ----------
    mated_results : DataFrame
        Search results of mated searches (columns :data:`SEARCH_COLUMNS`).
    thresholds : array-like, optional
        Where to evaluate (default: every distinct mate score). ``[-inf]`` gives FNIR by
        rank alone (1 - CMC).
    ranks : sequence of int
        The ranks R to evaluate, each >= 1.
    probes : sequence, optional
        Every mated search's probe id (as for :func:`fnir`).

    Returns
    -------
    DataFrame
        Long table with columns ``rank``, ``threshold``, ``fnir``, ``n_miss``,
        ``n_searches``: one row per (rank, threshold).

    Raises
    ------
    ValueError
        For no mated search, missing columns or a rank below 1.
    """
    mates, n = _mate_ranks_and_scores(mated_results, probes)
    if n == 0:
        raise ValueError(_EMPTY_SCORES.format(what="mated search"))
    ts = (
        np.unique(mates["score"].to_numpy(dtype=float))
        if thresholds is None
        else np.sort(np.asarray(thresholds, dtype=float).ravel())
    )
    frames = []
    for r in ranks:
        r = _check_rank(r)
        # best mate score within rank r, one per probe that has one
        best = np.sort(
            mates[mates["candidate_rank"] <= r].groupby("probe")["score"].max().to_numpy()
        )
        hits = _count_at_or_above(best, ts)
        frames.append(
            pd.DataFrame(
                {
                    "rank": r,
                    "threshold": ts,
                    "fnir": (n - hits) / n,
                    "n_miss": n - hits,
                    "n_searches": n,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def identification_by_gallery_size(
    scores: pd.DataFrame,
    *,
    gallery_sizes: Sequence[int],
    threshold: float | ThresholdChoice,
    rank: int = 1,
    n_repeats: int = 10,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """FPIR and FNIR as functions of gallery size N, by seeded gallery subsampling.

    Parameters
    ----------
    scores : DataFrame
        Every probe scored against every gallery entry: columns ``probe``, ``gallery_id``,
        ``score``, ``is_mate`` (one row per probe x gallery entry). A probe with an
        ``is_mate`` row is a mated search; a probe without one is non-mated.
    gallery_sizes : sequence of int
        The N to simulate. For each repeat and each search, a gallery of N entries is
        drawn at random: the mate plus N - 1 non-mates for a mated search, N non-mates
        for a non-mated search. Candidates are ranked by score within that gallery.
    threshold, rank
        Operating point for FPIR (threshold) and FNIR (threshold and rank).
    n_repeats : int
        Independent gallery draws per N.
    seed : int or None
        Seeds the gallery draws: the same seed gives the same table. ``None`` draws fresh
        entropy from the operating system (reruns differ).
    confidence : float
        Coverage of the percentile range over repeats, strictly between 0 and 1.

    Returns
    -------
    DataFrame
        One row per gallery size: ``gallery_size``, ``fpir``, ``fpir_ci_low``,
        ``fpir_ci_high``, ``fnir``, ``fnir_ci_low``, ``fnir_ci_high``,
        ``n_nonmated``, ``n_mated``, ``n_repeats``. Rates are means over repeats; the
        interval is the percentile range of the repeats at ``confidence`` (gallery-draw
        variability).

    Raises
    ------
    ValueError
        For missing columns, NaN scores, a rank below 1, or a gallery size below 1 or
        above the number of gallery entries scored per probe.
    """
    need = ("probe", "gallery_id", "score", "is_mate")
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise ValueError(_MISSING_COLUMNS.format(need=list(need), missing=missing))
    t = float(threshold)
    r = _check_rank(rank)
    df = scores[list(need)].reset_index(drop=True).copy()
    _scores(df["score"].to_numpy(), "search")
    df["is_mate"] = df["is_mate"].astype(bool)
    mated_probe = df.groupby("probe")["is_mate"].transform("any").to_numpy()
    n_entries = df.groupby("probe")["gallery_id"].transform("nunique").to_numpy()
    probe_codes = pd.factorize(df["probe"])[0]
    is_mate = df["is_mate"].to_numpy()
    score = df["score"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    rows = []
    for size in gallery_sizes:
        size = int(size)
        if size < 1 or size > int(n_entries.min()):
            raise ValueError(_BAD_GALLERY_SIZE.format(n=size, have=int(n_entries.min())))
        fpirs, fnirs = [], []
        for _ in range(n_repeats):
            key = rng.random(len(df))
            key[is_mate] = -1.0  # the mate is always enrolled
            order = np.lexsort((key, probe_codes))
            pos = np.empty(len(df), dtype=int)
            sorted_codes = probe_codes[order]
            starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
            pos[order] = np.arange(len(df)) - starts
            keep = pos < size
            sub = pd.DataFrame(
                {"probe": probe_codes[keep], "score": score[keep], "is_mate": is_mate[keep]}
            )
            sub["candidate_rank"] = (
                sub.groupby("probe")["score"].rank(method="first", ascending=False).astype(int)
            )
            mated = mated_probe[keep]
            non = sub[~mated]
            if len(non):
                fpirs.append(fpir(non, t).rate)
            mat = sub[mated]
            if len(mat):
                fnirs.append(fnir(mat, t, rank=r).rate)
        row: dict[str, float | int] = {"gallery_size": size}
        for name, vals in (("fpir", fpirs), ("fnir", fnirs)):
            arr = np.asarray(vals, dtype=float)
            row[name] = float(arr.mean()) if arr.size else math.nan
            lo, hi = np.quantile(arr, [alpha, 1 - alpha]) if arr.size else (math.nan,) * 2
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = float(lo), float(hi)
        row["n_nonmated"] = int(pd.Series(probe_codes[~mated_probe]).nunique())
        row["n_mated"] = int(pd.Series(probe_codes[mated_probe]).nunique())
        row["n_repeats"] = n_repeats
        rows.append(row)
    return pd.DataFrame(rows)
