"""01_detection_reliability: FTA by group for every detector, agreement and degradation are
recorded with counts and intervals."""

import math

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow

DETECTORS = ["yunet", "haar", "mtcnn"]


def test_01_detection_reliability(tmp_path, data_root):
    params = {"limit": 24, "datasets": ["fairface", "cfd"], "detectors": DETECTORS,
              "slow_limit": 12, "degradation_limit": 12, "degradation_slow_limit": 6,
              "severities": {"downscale": [0.5, 0.2], "brightness": [0.3, 0.05]},
              "min_count": 5}
    run, values = run_notebook("01_detection_reliability", params, tmp_path, data_root)
    assert values["n_images"] == {"fairface": 24, "cfd": 24}
    # every detector on every dataset, rates in [0, 1] with the estimate inside its CI
    summary = values["fta_summary"]
    assert {(r["dataset"], r["detector"]) for r in summary} == {
        (d, m) for d in ("fairface", "cfd") for m in DETECTORS}
    for r in summary:
        assert r["n"] == (12 if r["detector"] == "mtcnn" else 24)
        assert 0 <= r["fta_count"] <= r["n"]
        assert 0 <= r["ci_low"] <= r["fta"] <= r["ci_high"] <= 1
        assert math.isclose(r["fta"], r["fta_count"] / r["n"])
        if r["ratio"] is not None:
            assert r["ratio"] >= 1
    # group cells add up to the sample, for every dataset and detector
    cells = values["fta_by_group"]
    for r in summary:
        mine = [c for c in cells if c["dataset"] == r["dataset"] and c["detector"] == r["detector"]]
        assert sum(c["n"] for c in mine) == r["n"]
        assert sum(c["count"] for c in mine) == r["fta_count"]
        for c in mine:
            assert c["ci_low"] <= c["value"] <= c["ci_high"]
            assert c["small_cell"] == (c["n"] < 5)
    # the studio portraits of CFD are found by the default detector
    assert values["fta_overall"]["cfd/yunet"] <= 0.1
    # agreement: every pair per dataset, counts add up
    agree = values["agreement"]
    assert len(agree) == 2 * 3
    for a in agree:
        assert a["both"] + a["only_a"] + a["only_b"] + a["neither"] == a["n"]
        assert a["ci_low"] <= a["agreement"] <= a["ci_high"]
    # degradation: clean level plus two severities per perturbation and detector
    curves = values["degradation_curves"]
    assert {c["level"] for c in curves} == {0, 1, 2}
    assert {c["detector"] for c in curves} == set(DETECTORS)
    for c in curves:
        assert 0 <= c["value"] <= 1 and c["n"] == (6 if c["detector"] == "mtcnn" else 12)
    # darkening to 5% brightness loses at least as many faces as 30% for YuNet
    yb = {c["level"]: c["value"] for c in curves
          if c["detector"] == "yunet" and c["perturbation"] == "brightness"}
    assert yb[2] >= yb[1] and yb[2] >= yb[0]
    assert any(f["finding"].startswith("FTA fairface, yunet") for f in values["findings"])
    # the gallery of missed faces draws from every miss, at most 8 per detector
    ex = values["examples_missed_faces"]
    assert ex["enabled"] and ex["unreadable"] == 0
    assert ex["available"] == sum(r["fta_count"] for r in summary)
    assert min(ex["available"], 1) <= ex["shown"] <= 8 * len(DETECTORS)
    assert (run / "figures" / "examples_missed_faces.png").exists()
