"""Classification audits: exact values on small cases, cross-checks with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import cohen_kappa_score, precision_score, recall_score

from facelab.metrics.classification import (
    accuracy,
    accuracy_by_group,
    age_error,
    age_mae_by_group,
    agreement_by_group,
    calibration,
    cohen_kappa,
    confusion_matrix,
    label_rate_by_group,
    per_class_metrics,
)
from facelab.metrics.intervals import binomial_ci

TRUE = np.array(["fear", "fear", "happy", "happy", "neutral", "neutral", "neutral", "sad"])
PRED = np.array(["fear", "sad", "happy", "fear", "neutral", "fear", "neutral", "sad"])
GROUP = np.array(["A", "A", "A", "A", "B", "B", "B", "B"])


def test_confusion_matrix_exact():
    cm = confusion_matrix(TRUE, PRED)
    assert list(cm.index) == ["fear", "happy", "neutral", "sad"]
    assert cm.loc["fear", "fear"] == 1 and cm.loc["fear", "sad"] == 1
    assert cm.loc["neutral", "fear"] == 1 and cm.loc["neutral", "neutral"] == 2
    assert cm.to_numpy().sum() == 8
    rec = confusion_matrix(TRUE, PRED, normalize="true")
    assert rec.loc["neutral", "neutral"] == pytest.approx(2 / 3)


def test_accuracy_and_per_class_exact():
    acc = accuracy(TRUE, PRED)
    assert (acc.count, acc.n, acc.rate) == (5, 8, 0.625)
    assert (acc.ci_low, acc.ci_high) == binomial_ci(5, 8)
    pc = per_class_metrics(TRUE, PRED)
    assert pc.loc["fear", "recall"] == 0.5 and pc.loc["fear", "precision"] == pytest.approx(1 / 3)
    assert pc.loc["fear", "n_predicted"] == 3 and pc.loc["fear", "support"] == 2
    labels = list(pc.index)
    np.testing.assert_allclose(
        pc["recall"], recall_score(TRUE, PRED, labels=labels, average=None)
    )
    np.testing.assert_allclose(
        pc["precision"], precision_score(TRUE, PRED, labels=labels, average=None)
    )


def test_label_rate_by_group_fear_given_to_others():
    df = pd.DataFrame({"true": TRUE, "pred": PRED, "group": GROUP})
    g = label_rate_by_group(df, true="true", pred="pred", by="group", min_count=1)
    # A: non-fear faces happy, happy -> one called fear: 1/2; B: 4 non-fear, 1 called fear
    assert g.by_group.loc["A", "value"] == 0.5 and g.by_group.loc["A", "n"] == 2
    assert g.by_group.loc["B", "value"] == 0.25 and g.by_group.loc["B", "n"] == 4
    assert g.overall["count"] == 2 and g.overall["n"] == 6
    assert g.disparities()["ratio"] == 2.0
    acc = accuracy_by_group(df, true="true", pred="pred", by="group", min_count=1)
    assert acc.by_group["value"].tolist() == [0.5, 0.75]


def test_calibration_hand_computed_and_matches_sklearn():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.6, 0.7])
    cal = calibration(y, p, n_bins=2)
    # bin [0, .5]: conf .1, acc 0; bin (.5, 1]: conf .7333, acc .6667
    assert cal.ece == pytest.approx(0.25 * 0.1 + 0.75 * (0.7333333333 - 0.6666666667))
    assert cal.table["n"].tolist() == [1, 3]
    rng = np.random.default_rng(0)
    prob = rng.random(2000)
    truth = rng.random(2000) < prob**1.5
    cal = calibration(truth, prob, n_bins=10)
    frac, mean_pred = calibration_curve(truth, prob, n_bins=10)
    np.testing.assert_allclose(cal.table["accuracy"], frac)
    np.testing.assert_allclose(cal.table["confidence"], mean_pred)


def test_calibration_top_label_multiclass():
    probs = pd.DataFrame(
        [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]],
        columns=["fear", "happy", "sad"],
    )
    truth = ["fear", "fear", "fear", "sad"]
    cal = calibration(truth, probs, n_bins=5)
    # confidences .8, .6, .5, .6 ; correct 1, 0, 1, 1
    # bins: (.4,.6]: .6,.5,.6 -> acc 2/3 conf .5667 ; (.6,.8]: .8 -> acc 1
    assert cal.kind == "top-label"
    assert cal.ece == pytest.approx(0.75 * abs(2 / 3 - 1.7 / 3) + 0.25 * 0.2)
    with pytest.raises(ValueError, match="needs labels"):
        calibration(truth, probs.to_numpy())


def test_agreement_kappa_by_group_and_seed():
    rng = np.random.default_rng(0)
    n = 300
    a = rng.choice(["fear", "happy", "neutral"], n)
    b = np.where(rng.random(n) < 0.7, a, rng.choice(["fear", "happy", "neutral"], n))
    df = pd.DataFrame({"a": a, "b": b, "g": rng.choice(["x", "y"], n),
                       "subject": rng.integers(0, 60, n)})
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    r1 = agreement_by_group(df, a="a", b="b", by="g", subject="subject", n_boot=100,
                            seed=4)
    r2 = agreement_by_group(df, a="a", b="b", by="g", subject="subject", n_boot=100,
                            seed=4)
    pd.testing.assert_frame_equal(r1.by_group, r2.by_group)
    sub = df[df["g"] == "y"]
    assert r1.by_group.loc["y", "value"] == pytest.approx(cohen_kappa_score(sub["a"], sub["b"]))
    assert r1.by_group.loc["y", "ci_low"] < r1.by_group.loc["y", "value"]


def test_age_error_bins_and_mae_by_group():
    err = age_error(["20-29", "more than 70", "3-9", 5, "0-2"], [25, 65, 12, 7.5, np.nan])
    np.testing.assert_array_equal(err[:4], [0, 5, 3, 2.5])
    assert np.isnan(err[4])
    with pytest.raises(ValueError, match="cannot read age bin"):
        age_error(["adult"], [30])
    df = pd.DataFrame({"true": [20, 30, 40, 50], "pred": [22, 30, 35, np.nan],
                       "g": ["a", "a", "b", "b"]})
    m = age_mae_by_group(df, true="true", pred="pred", by="g", min_count=2, n_boot=200)
    assert m.by_group.loc["a", "value"] == 1.0
    assert m.by_group.loc["b", "value"] == 5.0 and m.by_group.loc["b", "n"] == 1
    assert m.by_group["small_cell"].tolist() == [False, True]
    assert m.overall["value"] == pytest.approx(7 / 3)
