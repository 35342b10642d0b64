"""Disaggregation by group: exact values, small cells, seeds, coverage, NIST-style differentials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from facelab.metrics.biometric import fmr_at_threshold
from facelab.metrics.groups import (
    demographic_differentials,
    disaggregate,
    mean_by_group,
    rate_by_group,
)
from facelab.metrics.intervals import binomial_ci


def _toy() -> pd.DataFrame:
    # race x gender; errors: A/F 1 of 4, A/M 0 of 2, B/F 3 of 4
    return pd.DataFrame(
        {
            "race": ["A"] * 6 + ["B"] * 4,
            "gender": ["F", "F", "F", "F", "M", "M", "F", "F", "F", "F"],
            "error": [1, 0, 0, 0, 0, 0, 1, 1, 1, 0],
            "abs_err": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 0.0, 0.0, 2.0, 2.0],
        }
    )


def test_rate_by_group_exact_values_and_wilson():
    g = rate_by_group(_toy(), event="error", by=["race", "gender"], min_count=3)
    bg = g.by_group
    assert list(bg.index) == [("A", "F"), ("A", "M"), ("B", "F")]
    assert bg["value"].tolist() == [0.25, 0.0, 0.75]
    assert bg["count"].tolist() == [1, 0, 3]
    assert bg["n"].tolist() == [4, 2, 4]
    assert bg["small_cell"].tolist() == [False, True, False]
    assert (bg.loc[("A", "F"), "ci_low"], bg.loc[("A", "F"), "ci_high"]) == binomial_ci(1, 4)
    assert bg["method"].unique().tolist() == ["Wilson"]
    assert g.overall["value"] == 0.4 and g.overall["n"] == 10
    # the small A x M cell (value 0) is excluded: ratio is 0.75 / 0.25, not infinite
    d = g.disparities()
    assert d["ratio"] == pytest.approx(3.0)
    assert d["difference"] == pytest.approx(0.5)
    assert d["group_max"] == "B x F" and d["group_min"] == "A x F"
    assert d["excluded_small_cells"] == ["A x M"]
    assert g.table().loc[("overall", "overall"), "value"] == 0.4


def test_rate_by_group_rejects_non_boolean_and_missing():
    df = _toy().assign(error=2)
    with pytest.raises(ValueError, match="must be boolean"):
        rate_by_group(df, event="error", by="race")
    with pytest.raises(ValueError, match="missing column"):
        rate_by_group(_toy(), event="error", by="age")


def test_mean_by_group_exact_and_seeded():
    kw = dict(value="abs_err", by="race", n_boot=300, min_count=1)
    a = mean_by_group(_toy(), seed=5, **kw)
    b = mean_by_group(_toy(), seed=5, **kw)
    c = mean_by_group(_toy(), seed=6, **kw)
    assert a.by_group["value"].tolist() == [22 / 6, 1.0]
    pd.testing.assert_frame_equal(a.by_group, b.by_group)
    assert not a.by_group["ci_low"].equals(c.by_group["ci_low"])
    assert (a.by_group["ci_low"] <= a.by_group["value"]).all()
    assert (a.by_group["value"] <= a.by_group["ci_high"]).all()


def test_disaggregate_uses_metricframe_values_and_seeds():
    rng = np.random.default_rng(0)
    n = 400
    feats = pd.DataFrame({"race": rng.choice(["A", "B"], n), "gender": rng.choice(["F", "M"], n)})
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    subj = rng.integers(0, 80, n)
    kw = dict(metric=accuracy_score, sensitive_features=feats, subjects=subj, n_boot=100)
    a = disaggregate(y, p, seed=1, **kw)
    b = disaggregate(y, p, seed=1, **kw)
    pd.testing.assert_frame_equal(a.by_group, b.by_group)
    mask = (feats["race"] == "B") & (feats["gender"] == "M")
    assert a.by_group.loc[("B", "M"), "value"] == accuracy_score(y[mask], p[mask])
    assert a.overall["value"] == accuracy_score(y, p)
    assert a.by_group.loc[("B", "M"), "n_subjects"] == len(set(subj[mask]))


def _clustered(rng: np.random.Generator, n_subjects: int = 150, per: int = 10) -> pd.DataFrame:
    p = rng.beta(1.0, 9.0, size=n_subjects)  # true rate 0.1, strong within-subject correlation
    events = rng.random((n_subjects, per)) < p[:, None]
    return pd.DataFrame(
        {"subject": np.repeat(np.arange(n_subjects), per), "event": events.ravel(), "g": "all"}
    )


def test_subject_bootstrap_coverage_by_simulation():
    """A 95% subject-bootstrap interval covers the true rate in ~95% of simulations; the
    row-level Wilson interval, which wrongly treats rows as independent, under-covers."""
    rng = np.random.default_rng(2024)
    sims, true_rate = 400, 0.1
    boot_cover = wilson_cover = 0
    for s in range(sims):
        df = _clustered(rng)
        boot = rate_by_group(df, event="event", by="g", subject="subject", n_boot=300,
                             seed=s).overall
        boot_cover += boot["ci_low"] <= true_rate <= boot["ci_high"]
        low, high = binomial_ci(int(df["event"].sum()), len(df))  # rows as independent
        wilson_cover += low <= true_rate <= high
    assert boot.loc["method"].startswith("bootstrap (subjects")
    print(f"coverage: subject bootstrap {boot_cover / sims:.3f}, Wilson {wilson_cover / sims:.3f}")
    assert 0.92 <= boot_cover / sims <= 0.98, boot_cover / sims
    assert wilson_cover / sims < 0.90, wilson_cover / sims


def test_few_events_with_subjects_falls_back_to_exact_interval():
    df = pd.DataFrame({"g": "x", "subject": np.repeat(np.arange(20), 5), "event": False})
    r = rate_by_group(df, event="event", by="g", subject="subject").by_group.iloc[0]
    assert r["value"] == 0 and r["ci_low"] == 0
    assert r["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 20))  # n_eff = 20 subjects
    assert "Clopper-Pearson" in r["method"]


def _pairs(seed: int = 0, n: int = 20000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["A", "B", "C"], 300)
    a = rng.integers(0, 300, n)
    same = rng.random(n) < 0.1
    b = np.where(same, a, rng.integers(0, 300, n))
    ga, gb = groups[a], groups[b]
    imp_shift = np.where((ga == gb) & (ga == "B"), 0.7, 0.0)
    score = np.where(same, rng.normal(3, 1, n), rng.normal(0, 1, n) + imp_shift)
    return pd.DataFrame(
        {"score": score, "same": same, "group_a": ga, "group_b": gb, "subject_a": a,
         "subject_b": b}
    )


def test_demographic_differentials_consistent_with_direct_computation():
    pairs = _pairs()
    d = demographic_differentials(pairs, target_fmr=1e-2, reference_group="A")
    t = d.threshold.threshold
    assert d.threshold.how.startswith("set at FMR<=0.01 on")
    assert "group A" in d.threshold.how
    bg = d.by_group
    for g in ["A", "B", "C"]:
        imp = pairs[~pairs["same"] & (pairs["group_a"] == g) & (pairs["group_b"] == g)]
        direct = fmr_at_threshold(imp["score"], t)
        assert bg.loc[g, "fmr_count"] == direct.count and bg.loc[g, "fmr_n"] == direct.n
        gen = pairs[pairs["same"] & (pairs["group_a"] == g)]
        assert bg.loc[g, "fnmr_count"] == int((gen["score"] < t).sum())
    assert bg.loc["A", "fmr_ratio"] == 1.0
    assert bg.loc["A", "fmr"] <= 1e-2
    assert bg.loc["B", "fmr_ratio"] > 2  # the shifted group's impostors match more often
    m = d.fmr_matrix
    assert list(m.index) == ["A", "B", "C"] and list(m.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)  # symmetric by default
    assert m.loc["B", "B"] == pytest.approx(bg.loc["B", "fmr"])
    # cross cell A-B: unordered pairs counted in both directions
    ab = pairs[~pairs["same"] & (
        ((pairs["group_a"] == "A") & (pairs["group_b"] == "B"))
        | ((pairs["group_a"] == "B") & (pairs["group_b"] == "A"))
    )]
    assert d.n_matrix.loc["A", "B"] == len(ab)
    assert d.count_matrix.loc["A", "B"] == int((ab["score"] >= t).sum())


def test_demographic_differentials_seeded_and_errors():
    pairs = _pairs(1)
    a = demographic_differentials(pairs, target_fmr=1e-2, seed=3)
    b = demographic_differentials(pairs, target_fmr=1e-2, seed=3)
    pd.testing.assert_frame_equal(a.by_group, b.by_group)
    assert a.reference == "everyone"
    with pytest.raises(ValueError, match="exactly one"):
        demographic_differentials(pairs)
    with pytest.raises(ValueError, match="needs at least"):
        demographic_differentials(pairs, target_fmr=1e-6)
    with pytest.raises(ValueError, match="reference group 'Z'"):
        demographic_differentials(pairs, target_fmr=1e-2, reference_group="Z")
    fixed = demographic_differentials(pairs, threshold=2.0)
    assert "given as 2" in fixed.threshold.how
    assert math.isnan(fixed.threshold.target_fmr)


def test_differentials_without_genuine_pairs_report_fmr_and_missing_fnmr():
    import numpy as np
    import pandas as pd

    from facelab.metrics.groups import demographic_differentials

    rng = np.random.default_rng(0)
    n = 4000
    ga = rng.choice(["x", "y"], n)
    pairs = pd.DataFrame({"score": rng.normal(0, 1, n), "same": False, "group_a": ga,
                          "group_b": ga})
    res = demographic_differentials(pairs, target_fmr=1e-2)
    assert res.fnmr is None
    assert res.by_group["fnmr"].isna().all()
    assert res.by_group["fmr"].between(0, 0.05).all()
    assert res.threshold.achieved_fmr <= 1e-2
