"""Standard benchmark protocols: the LFW View 2 10-fold verification accuracy.

The LFW protocol (Huang et al. 2007, "unrestricted, labeled outside data" setting as
reported by OpenCV zoo and dlib) splits the 6,000 pairs of ``pairs.txt`` into 10 folds of
300 same-person and 300 different-person pairs. For each fold the decision threshold is
the one that maximises accuracy on the **other nine** folds; it is applied to the held-out
fold. The result is the mean accuracy over the 10 folds with its standard deviation (and
the standard error, ``std / sqrt(10)``, which LFW's own results page reports).

facelab adds the same comparisons as ISO/IEC 19795-1 numbers on all 6,000 pairs: the area
under the ROC curve and the TAR (1 - FNMR) at FMR = 1e-3, each with a seeded subject
bootstrap interval.

Failures to acquire (no face found in an image) are handled by ``failures``:

* ``"error"`` (default): a pair with such an image counts as **wrong** in the accuracy,
  whatever its label, and gets the lowest score for AUC and TAR (a non-match decision, as
  in ISO/IEC 19795-1's generalised rates);
* ``"exclude"``: such pairs are left out of everything.

Either way their number is reported. Embeddings come from the cached pipeline
(:func:`facelab.extract`), so a rerun reads them back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from facelab.data.datasets import MalformedEntriesWarning, load_dataset, load_pairs
from facelab.metrics.biometric import ThresholdChoice, det_curve, roc_auc, threshold_at_fmr
from facelab.metrics.intervals import bootstrap_ci
from facelab.studies.matching import extract_embeddings

__all__ = ["best_accuracy_threshold", "kfold_accuracy", "FoldAccuracy", "LFWResult",
           "lfw_view2", "score_pair_table", "FAILURE_POLICIES", "PUBLISHED_LFW"]

FAILURE_POLICIES = ("error", "exclude")

#: Published LFW accuracies of facelab's embedders (for side-by-side comparison).
PUBLISHED_LFW: dict[str, list[dict[str, Any]]] = {
    "sface": [
        {"variant": "fp32", "accuracy": 0.9940,
         "source": "OpenCV zoo face_recognition_sface README (LFW, fp32 model)"},
        {"variant": "int8", "accuracy": 0.9932,
         "source": "OpenCV zoo face_recognition_sface README (LFW, int8 model)"},
    ],
    "dlib_resnet": [
        {"variant": "dlib_face_recognition_resnet_model_v1", "accuracy": 0.9938,
         "source": "dlib model documentation / dlib.net blog (LFW, mean accuracy "
                   "0.9938 +- 0.0027)"},
    ],
}


def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold maximising accuracy (``match = score >= t``) on labelled pairs.

    Candidates are the observed scores plus one above the highest (everything rejected);
    when several give the same best accuracy the middle one of them (in score order) is
    taken, so the choice does not lean to either end of a plateau.

    Parameters
    ----------
    scores : ndarray of float, shape (n,)
        Similarities (higher = more alike); ``-inf`` allowed (always rejected).
    same : ndarray of bool, shape (n,)
        True for same-person pairs.

    Returns
    -------
    threshold, accuracy : float, float
    """
    scores = np.asarray(scores, dtype=float)
    same = np.asarray(same, dtype=bool)
    if scores.size == 0 or not same.any() or same.all():
        raise ValueError("need both same-person and different-person pairs to choose a "
                         f"threshold; got {int(same.sum())} and {int((~same).sum())}")
    finite = scores[np.isfinite(scores)]
    top = np.nextafter(finite.max(), np.inf) if finite.size else 0.0
    cands = np.unique(np.concatenate([finite, [top]]))
    gen = np.sort(scores[same])
    imp = np.sort(scores[~same])
    accepted_gen = gen.size - np.searchsorted(gen, cands, side="left")
    rejected_imp = np.searchsorted(imp, cands, side="left")
    acc = (accepted_gen + rejected_imp) / scores.size
    best = np.flatnonzero(acc == acc.max())
    i = int(best[len(best) // 2])
    return float(cands[i]), float(acc[i])


@dataclass(frozen=True)
class FoldAccuracy:
    """10-fold accuracy with thresholds chosen on the other folds.

    Attributes
    ----------
    folds : DataFrame
        One row per fold: ``fold, threshold, train_accuracy, accuracy, correct, n,
        n_failed_pairs``.
    mean, std, sem : float
        Mean of the fold accuracies, their standard deviation (``ddof=1``) and standard
        error (``std / sqrt(k)``).
    """

    folds: pd.DataFrame
    mean: float
    std: float
    sem: float

    def __str__(self) -> str:
        return (f"{100 * self.mean:.2f}% +- {100 * self.std:.2f} (std over "
                f"{len(self.folds)} folds; standard error {100 * self.sem:.2f})")


def kfold_accuracy(scores: Sequence[float] | np.ndarray, same: Sequence[bool] | np.ndarray,
                   folds: Sequence[int] | np.ndarray, *,
                   failed: Sequence[bool] | np.ndarray | None = None) -> FoldAccuracy:
    """Cross-validated verification accuracy (the LFW View 2 protocol).

    For each fold ``k`` the threshold is :func:`best_accuracy_threshold` on the pairs of
    every other fold, then applied to fold ``k``.

    Parameters
    ----------
    scores : array of float, shape (n,)
        Pair similarities. Pairs marked ``failed`` may hold any value (they are not used
        to choose thresholds).
    same : array of bool, shape (n,)
    folds : array of int, shape (n,)
        Fold of each pair (at least 2 distinct folds).
    failed : array of bool, shape (n,), optional
        Pairs with an image without a face: counted as wrong in their fold's accuracy and
        left out of threshold choice.

    Returns
    -------
    FoldAccuracy
    """
    scores = np.asarray(scores, dtype=float)
    same = np.asarray(same, dtype=bool)
    folds = np.asarray(folds)
    failed = np.zeros(scores.size, bool) if failed is None else np.asarray(failed, bool)
    if not (scores.size == same.size == folds.size == failed.size):
        raise ValueError("scores, same, folds and failed must have one value per pair")
    if np.isnan(scores[~failed]).any():
        raise ValueError("scores of pairs not marked failed contain NaN")
    names = np.unique(folds)
    if names.size < 2:
        raise ValueError(f"need at least 2 folds; got {names.tolist()}")
    rows = []
    for k in names:
        test = folds == k
        train = ~test & ~failed
        t, train_acc = best_accuracy_threshold(scores[train], same[train])
        ok = test & ~failed
        correct = int(((scores[ok] >= t) == same[ok]).sum())
        n = int(test.sum())
        rows.append({"fold": k, "threshold": t, "train_accuracy": train_acc,
                     "accuracy": correct / n, "correct": correct, "n": n,
                     "n_failed_pairs": int((test & failed).sum())})
    table = pd.DataFrame(rows)
    acc = table["accuracy"].to_numpy()
    std = float(acc.std(ddof=1))
    return FoldAccuracy(folds=table, mean=float(acc.mean()), std=std,
                        sem=std / math.sqrt(acc.size))


@dataclass
class LFWResult:
    """The LFW View 2 protocol for one embedder (see :func:`lfw_view2`)."""

    model: str
    detector: str
    accuracy: FoldAccuracy
    auc: float
    auc_ci: tuple[float, float]
    tar: float
    tar_ci: tuple[float, float]
    tar_threshold: ThresholdChoice
    target_fmr: float
    failures: str
    n_pairs: int
    n_images: int
    n_failed_images: int
    n_failed_pairs: int
    n_boot: int
    n_malformed_pairs: int
    pairs: pd.DataFrame = field(repr=False)
    published: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Every number as plain JSON-able values."""
        return {
            "model": self.model, "detector": self.detector,
            "accuracy_mean": self.accuracy.mean, "accuracy_std": self.accuracy.std,
            "accuracy_sem": self.accuracy.sem,
            "fold_accuracy": self.accuracy.folds["accuracy"].tolist(),
            "fold_threshold": self.accuracy.folds["threshold"].tolist(),
            "auc": self.auc, "auc_ci": list(self.auc_ci),
            "target_fmr": self.target_fmr, "tar": self.tar, "tar_ci": list(self.tar_ci),
            "tar_threshold": self.tar_threshold.threshold,
            "tar_threshold_how": self.tar_threshold.how,
            "failures": self.failures, "n_pairs": self.n_pairs, "n_images": self.n_images,
            "n_failed_images": self.n_failed_images, "n_failed_pairs": self.n_failed_pairs,
            "n_boot": self.n_boot, "n_malformed_pairs": self.n_malformed_pairs,
            "published": self.published,
        }

    def lines(self) -> list[str]:
        """A short human-readable report."""
        k = len(self.accuracy.folds)
        out = [
            f"LFW View 2 ({self.n_pairs:,} pairs, {k} folds), {self.model} on {self.detector} "
            f"faces",
            f"  accuracy: {self.accuracy} ; threshold chosen on the other {k - 1} folds, "
            "applied to each held-out fold",
            f"  AUC (all pairs): {self.auc:.5f} [95% CI {self.auc_ci[0]:.5f}, "
            f"{self.auc_ci[1]:.5f}]",
            f"  TAR at FMR={self.target_fmr:g}: {self.tar:.4f} [95% CI {self.tar_ci[0]:.4f}, "
            f"{self.tar_ci[1]:.4f}] at threshold {self.tar_threshold.threshold:.4f} "
            f"({self.tar_threshold.how})",
            f"  failures to acquire: {self.n_failed_images} of {self.n_images:,} images, "
            f"{self.n_failed_pairs} pairs ({self.failures!r}: "
            + ("counted as errors" if self.failures == "error" else "left out") + ")",
            f"  intervals: subject bootstrap, {self.n_boot} resamples",
        ]
        if self.n_malformed_pairs:
            out.append(f"  WARNING: {self.n_malformed_pairs} lines of the pairs file could not "
                       "be read and were skipped (facelab.data.datasets.malformed(pairs))")
        for p in self.published:
            diff = 100 * (self.accuracy.mean - p["accuracy"])
            out.append(f"  published ({p['variant']}): {100 * p['accuracy']:.2f}% "
                       f"[{p['source']}]; difference {diff:+.2f} points")
        return out


def score_pair_table(pairs: pd.DataFrame, embeddings) -> pd.DataFrame:
    """``pairs`` (``index_a``, ``index_b`` into the embeddings' manifest) with ``score`` and
    ``failed`` (an image without an embedding; its score is NaN)."""
    pa = embeddings.positions(pairs["index_a"])
    pb = embeddings.positions(pairs["index_b"])
    if (pa < 0).any() or (pb < 0).any():
        raise ValueError("pairs name images that are not in the embeddings' manifest")
    ok = embeddings.ok[pa] & embeddings.ok[pb]
    scores = np.full(len(pairs), np.nan)
    if ok.any():
        scores[ok] = embeddings.similarity(embeddings.matrix[pa[ok]],
                                           embeddings.matrix[pb[ok]])
    return pairs.assign(score=scores, failed=~ok)


def _tar_at(scores: np.ndarray, same: np.ndarray, target_fmr: float) -> tuple[float, Any]:
    choice = threshold_at_fmr(scores[~same], target_fmr, reference="all LFW impostor pairs")
    return float(np.mean(scores[same] >= choice.threshold)), choice


def lfw_view2(model: str = "sface", *, detector: str = "yunet",
              root: str | os.PathLike | None = None, pairs_file: str = "pairs.txt",
              failures: str = "error", target_fmr: float = 1e-3, n_boot: int = 1000,
              seed: int = 0, progress: bool = True, batch_size: int = 32) -> LFWResult:
    """The standard LFW View 2 protocol for one embedder.

    Parameters
    ----------
    model
        Registered embedder (``"sface"``, ``"dlib_resnet"``).
    detector
        Detector whose largest face is embedded (``"yunet"``).
    root
        LFW folder or data root (default: ``FACELAB_DATA``'s ``lfw``).
    pairs_file
        The View 2 pairs file (10 folds of 300 + 300 pairs).
    failures
        ``"error"`` or ``"exclude"``: how pairs with an image without a face count (see
        the module docstring).
    target_fmr
        FMR of the TAR operating point, set on all impostor pairs (3,000 on LFW, so the
        default 1e-3 rests on 3 false matches: read its interval).
    n_boot, seed
        Subject-bootstrap resamples (clustered on the first person of each pair) for the
        AUC and TAR intervals; the TAR threshold is re-set in every resample.

    Returns
    -------
    LFWResult

    Raises
    ------
    ValueError
        Unknown ``failures`` policy, or a pairs file without folds.
    """
    import warnings

    if failures not in FAILURE_POLICIES:
        raise ValueError(f"failures must be one of {FAILURE_POLICIES}; got {failures!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MalformedEntriesWarning)
        manifest = load_dataset("lfw", root, labels=False)
    pairs = load_pairs("lfw", root, manifest=manifest, pairs_file=pairs_file)
    n_malformed = len(pairs.attrs.get("malformed", []))
    if pairs["fold"].isna().any():
        raise ValueError(f"{pairs_file}: pairs without a fold")
    used = manifest.loc[pd.unique(np.concatenate([pairs["index_a"], pairs["index_b"]]))]
    emb = extract_embeddings(used, model, detector=detector, progress=progress,
                             batch_size=batch_size)
    scored = score_pair_table(pairs, emb)
    if failures == "exclude":
        scored = scored[~scored["failed"]].reset_index(drop=True)
    same = scored["same"].to_numpy(bool)
    failed = scored["failed"].to_numpy(bool)
    acc = kfold_accuracy(scored["score"].to_numpy(float), same,
                         scored["fold"].to_numpy(int), failed=failed)
    # AUC / TAR: a failed pair is a non-match decision (lowest score)
    finite = scored["score"].to_numpy(float)
    low = np.nanmin(finite) - 1.0 if np.isfinite(finite).any() else -1.0
    s = np.where(failed, low, finite)
    auc = roc_auc(s[same], s[~same])
    tar, choice = _tar_at(s, same, target_fmr)
    clusters = scored["subject_a"].astype(str).to_numpy()

    def auc_stat(idx: np.ndarray) -> float:
        g, i = same[idx], ~same[idx]
        return roc_auc(s[idx][g], s[idx][i]) if g.any() and i.any() else math.nan

    def tar_stat(idx: np.ndarray) -> float:
        ss, g = s[idx], same[idx]
        if (~g).sum() * target_fmr < 1 or not g.any():
            return math.nan
        return _tar_at(ss, g, target_fmr)[0]

    auc_ci = bootstrap_ci(auc_stat, len(s), clusters=clusters, n_boot=n_boot,
                          seed=seed)
    tar_ci = bootstrap_ci(tar_stat, len(s), clusters=clusters, n_boot=n_boot,
                          seed=seed + 1)
    return LFWResult(
        model=model, detector=detector, accuracy=acc, auc=auc, auc_ci=auc_ci, tar=tar,
        tar_ci=tar_ci, tar_threshold=choice, target_fmr=target_fmr, failures=failures,
        n_pairs=len(scored), n_images=len(used), n_failed_images=int((~emb.ok).sum()),
        n_failed_pairs=int(failed.sum()) if failures == "error"
        else int(score_pair_table(pairs, emb)["failed"].sum()),
        n_boot=n_boot, n_malformed_pairs=n_malformed, pairs=scored,
        published=PUBLISHED_LFW.get(model, []))


def det_of(result: LFWResult) -> pd.DataFrame:
    """DET curve of an :class:`LFWResult`'s scored pairs (failed pairs excluded)."""
    p = result.pairs[~result.pairs["failed"]]
    return det_curve(p.loc[p["same"], "score"], p.loc[~p["same"], "score"])
