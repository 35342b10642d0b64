"""Biometric rates: hand-computed cases, cross-checks with scikit-learn, interval coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from facelab.metrics.biometric import (
    det_curve,
    eer,
    fmr_at_threshold,
    fnir,
    fnir_curve,
    fnmr_at_threshold,
    fpir,
    fpir_curve,
    identification_by_gallery_size,
    roc_auc,
    roc_curve,
    threshold_at_fmr,
)
from facelab.metrics.intervals import binomial_ci, rate_estimate

IMP = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
GEN = np.array([0.55, 0.75, 0.85, 0.95, 1.2])


def test_threshold_at_fmr_hand_computed():
    # FMR(t) = #{imp >= t}/10; FMR <= 0.2 first holds at t = 0.9 (0.9 and 1.0 match)
    choice = threshold_at_fmr(IMP, 0.2, reference="toy")
    assert choice.threshold == 0.9
    assert choice.achieved_fmr == 0.2
    assert choice.n_false_matches == 2
    assert choice.n_impostor == 10
    assert choice.how.startswith("set at FMR<=0.2 on 10 impostor comparisons of toy")
    # 0.25 is not reachable exactly: still 2/10
    assert threshold_at_fmr(IMP, 0.25).threshold == 0.9
    assert threshold_at_fmr(IMP, 0.1).threshold == 1.0
    # smallest threshold: any lower observed score would exceed the target
    assert fmr_at_threshold(IMP, 0.8).rate > 0.2


def test_threshold_at_fmr_ties_at_top():
    scores = np.array([0.0] * 8 + [1.0, 1.0])
    choice = threshold_at_fmr(scores, 0.1)
    assert choice.n_false_matches == 0
    assert choice.threshold > 1.0
    assert fmr_at_threshold(scores, choice).count == 0


def test_threshold_at_fmr_too_few_impostors():
    with pytest.raises(ValueError, match=r"needs at least 1,000 impostor comparisons.*have 10"):
        threshold_at_fmr(IMP, 1e-3)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        threshold_at_fmr(IMP, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_fmr(np.array([0.1, np.nan]), 0.5)


def test_fmr_fnmr_at_threshold_exact():
    fmr = fmr_at_threshold(IMP, 0.75)
    assert (fmr.count, fmr.n, fmr.rate) == (3, 10, 0.3)
    fnmr = fnmr_at_threshold(GEN, 0.75)  # 0.55 < 0.75; 0.75 itself is a match
    assert (fnmr.count, fnmr.n, fnmr.rate) == (1, 5, 0.2)
    low, high = binomial_ci(3, 10)
    assert (fmr.ci_low, fmr.ci_high) == (low, high)
    assert str(fmr) == f"FMR 0.3000 (3/10; 95% CI {low:.4f}-{high:.4f}, Wilson)"


def test_rate_string_format_like_spec():
    est = rate_estimate(15, 12345, name="FMR")
    assert str(est) == "FMR 0.0012 (15/12,345; 95% CI 0.0007-0.0020, Wilson)"
    small = rate_estimate(3, 123456, name="FMR")
    assert str(small).startswith("FMR 0.000024 (3/123,456; 95% CI 0.000008-0.000071")
    zero = rate_estimate(0, 12345, name="FNMR")
    assert str(zero).startswith("FNMR 0.00000 (0/12,345; 95% CI 0.00000-0.00031")


def test_wilson_zero_events_known_value():
    # Wilson upper bound for 0/n at 95%: z^2 / (n + z^2)
    z = 1.959963984540054
    low, high = binomial_ci(0, 50)
    assert low == 0.0
    assert high == pytest.approx(z**2 / (50 + z**2), rel=1e-9)
    # Clopper-Pearson upper for 0/n: 1 - (alpha/2)^(1/n)
    _, cp_high = binomial_ci(0, 50, method="clopper-pearson")
    assert cp_high == pytest.approx(1 - 0.025 ** (1 / 50), rel=1e-9)


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_binomial_interval_coverage_by_simulation(method):
    rng = np.random.default_rng(12345)
    p, n, sims = 0.03, 400, 400
    counts = rng.binomial(n, p, size=sims)
    covered = 0
    for k in counts:
        low, high = binomial_ci(int(k), n, method=method)
        covered += low <= p <= high
    coverage = covered / sims
    assert 0.92 <= coverage <= 0.99, coverage


def test_det_curve_matches_sklearn():
    rng = np.random.default_rng(0)
    gen = np.round(rng.normal(2, 1, 300), 2)  # rounding makes ties
    imp = np.round(rng.normal(0, 1, 700), 2)
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    s = np.r_[gen, imp]
    fpr, fnr, thr = skm.det_curve(y, s)
    ours = det_curve(gen, imp, thresholds=thr)
    order = np.argsort(thr)
    np.testing.assert_allclose(ours["fmr"], fpr[order])
    np.testing.assert_allclose(ours["fnmr"], fnr[order])
    # the default grid contains every sklearn point too
    full = det_curve(gen, imp).set_index("threshold")
    np.testing.assert_allclose(full.loc[thr, "fmr"], fpr)


def test_roc_curve_and_auc_match_sklearn():
    rng = np.random.default_rng(1)
    gen = np.round(rng.normal(1, 1, 200), 1)
    imp = np.round(rng.normal(0, 1, 500), 1)
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    s = np.r_[gen, imp]
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thr)
    ours = roc_curve(gen, imp).set_index("threshold")
    np.testing.assert_allclose(ours.loc[thr[finite], "fmr"], fpr[finite])
    np.testing.assert_allclose(ours.loc[thr[finite], "tpr"], tpr[finite])
    assert roc_auc(gen, imp) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_eer_hand_computed():
    gen = np.array([0.4, 0.6, 0.7, 0.8, 0.9])
    imp = np.array([0.1, 0.2, 0.3, 0.5, 0.65])
    result = eer(gen, imp)
    # at t=0.6: FMR = 1/5 (0.65), FNMR = 1/5 (0.4)
    assert result.threshold == 0.6
    assert (result.fmr, result.fnmr, result.eer) == (0.2, 0.2, 0.2)


def _search_results() -> pd.DataFrame:
    rows = [
        # probe, rank, score, is_mate
        ("m1", 1, 0.9, True),
        ("m1", 2, 0.5, False),
        ("m2", 1, 0.8, False),
        ("m2", 2, 0.7, True),
        ("m3", 1, 0.6, False),
        ("m3", 2, 0.3, False),  # mate not returned at all
        ("m4", 1, 0.4, True),
    ]
    return pd.DataFrame(rows, columns=["probe", "candidate_rank", "score", "is_mate"])


def test_fnir_hand_computed():
    res = _search_results()
    assert fnir(res, 0.5, rank=1).count == 3  # m1 hit; m2 rank 2, m3 missing, m4 low
    assert fnir(res, 0.5, rank=1).rate == 0.75
    assert fnir(res, 0.5, rank=2).count == 2  # m1, m2 hit
    assert fnir(res, -math.inf, rank=1).count == 2  # m1, m4 hit at rank 1
    assert fnir(res, -math.inf, rank=2).count == 1  # only m3 misses
    # an extra mated search that returned nothing is a miss
    assert fnir(res, -math.inf, rank=2, probes=["m1", "m2", "m3", "m4", "m5"]).count == 2
    with pytest.raises(ValueError, match="rank"):
        fnir(res, 0.5, rank=0)
    curve = fnir_curve(res, thresholds=[-math.inf, 0.5], ranks=[1, 2])
    assert curve["n_miss"].tolist() == [2, 3, 1, 2]


def test_fpir_hand_computed():
    top = np.array([0.2, 0.5, 0.9, -np.inf])
    est = fpir(top, 0.5)
    assert (est.count, est.n, est.rate) == (2, 4, 0.5)
    res = pd.DataFrame(
        {"probe": ["a", "a", "b"], "candidate_rank": [1, 2, 1], "score": [0.7, 0.2, 0.4],
         "is_mate": False}
    )
    assert fpir(res, 0.5).count == 1
    curve = fpir_curve(top)
    assert curve["threshold"].tolist() == [0.2, 0.5, 0.9]
    assert curve["n_false_positive"].tolist() == [3, 2, 1]


def _score_matrix(seed: int, n_gallery: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(40):
        mated = p < 20
        for g in range(n_gallery):
            is_mate = mated and g == p
            rows.append((f"p{p}", g, rng.normal(2.0 if is_mate else 0.0, 1.0), is_mate))
    return pd.DataFrame(rows, columns=["probe", "gallery_id", "score", "is_mate"])


def test_identification_by_gallery_size_grows_and_is_seeded():
    scores = _score_matrix(3)
    a = identification_by_gallery_size(
        scores, gallery_sizes=[1, 10, 60], threshold=1.5, n_repeats=5, seed=7
    )
    b = identification_by_gallery_size(
        scores, gallery_sizes=[1, 10, 60], threshold=1.5, n_repeats=5, seed=7
    )
    pd.testing.assert_frame_equal(a, b)
    assert a["fpir"].is_monotonic_increasing
    assert a["fpir"].iloc[-1] > a["fpir"].iloc[0]
    # at full size the draw is the whole gallery: equals the direct computation
    top = scores[~scores["is_mate"] & (scores["probe"].str[1:].astype(int) >= 20)]
    direct = fpir(top.groupby("probe")["score"].max().to_numpy(), 1.5).rate
    assert a["fpir"].iloc[-1] == pytest.approx(direct)
    assert (a["n_mated"] == 20).all() and (a["n_nonmated"] == 20).all()
    with pytest.raises(ValueError, match="larger than"):
        identification_by_gallery_size(scores, gallery_sizes=[61], threshold=1.5)
