"""Papermill run of 03_one_to_many_search on a small, seeded gallery (60 images per
labelled dataset + CelebA identities, 60 non-mated probes) with assertions on what it
recorded."""

import numpy as np
import pandas as pd
import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow

POINTS = {"model default": "default", "permissive": 0.01, "strict": 0.0001}
PARAMS = {"limit": 60, "n_probes": 60, "operating_points": POINTS,
          "n_calibration_pairs": 100_000, "n_boot": 200}


def test_03_one_to_many_search(tmp_path, data_root):
    run, v = run_notebook("03_one_to_many_search", PARAMS, tmp_path, data_root)
    models = {"sface", "dlib_resnet"}
    assert v["probe_gallery_duplicate_files"] == 0

    thr = pd.DataFrame(v["operating_thresholds"])
    assert set(thr["embedder"]) == models
    for _m, part in thr.groupby("embedder"):
        p = part.set_index("operating_point")
        for name in ("permissive", "strict"):
            assert p.loc[name, "achieved_fmr"] <= POINTS[name]
        assert p.loc["strict", "threshold"] > p.loc["permissive", "threshold"]

    ops = v["operating_points"]
    assert set(ops) == models
    for points in ops.values():
        for r in points.values():
            assert r["non_mated_searches"] == 60
            assert 70 <= r["mated_searches"] <= 80  # one mated probe per CelebA identity
            assert r["fpir"] == pytest.approx(r["false_matches"] / r["non_mated_searches"])
            assert r["fpir_ci_low"] <= r["fpir"] <= r["fpir_ci_high"]
            assert 0 <= r["fnir_ci_low"] <= r["fnir"] <= r["fnir_ci_high"] <= 1
        assert points["strict"]["false_matches"] <= points["permissive"]["false_matches"]
        assert points["strict"]["fnir"] >= points["permissive"]["fnir"]

    comp = pd.DataFrame(v["false_match_composition"])
    cand = pd.DataFrame(v["false_candidate_composition"])
    for (m, point), part in comp.groupby(["embedder", "operating_point"]):
        r = ops[m][point]
        assert part["false_matches"].sum() == r["false_matches"]
        assert part["population"].sum() == r["non_mated_searches"]
        if r["false_matches"]:
            assert part["share"].sum() == pytest.approx(1.0)
        c = cand[(cand["embedder"] == m) & (cand["operating_point"] == point)]
        assert c["false_matches"].sum() == r["false_matches"]
        assert c["population"].sum() >= 200  # the enrolled gallery (3 x 60 + 80)

    size = pd.DataFrame(v["fpir_by_gallery_size_table"])
    for (m, point), part in size.groupby(["embedder", "operating_point"]):
        f = part.sort_values("gallery_size")["fpir"].to_numpy()
        assert np.all(np.diff(f) >= -1e-12)  # FPIR grows with the gallery
        assert f[-1] == pytest.approx(ops[m][point]["fpir"])  # the whole gallery

    findings = pd.DataFrame(v["findings"])
    assert set(findings["model"]) == models
    rates = findings[findings["metric"].isin(["FMR", "FNMR", "FPIR", "FNIR"])
                     & findings["n"].notna() & findings["count"].notna()]
    assert len(rates) and (rates["ci_low"].fillna(0) <= rates["value"]).all()  # numbers
    assert rates["value"].to_numpy() == pytest.approx((rates["count"] / rates["n"]).to_numpy())
    le = v["label_error_counts"]
    assert le["images excluded"] == le["images behind certain errors"]  # default policy
    assert findings["finding"].str.contains("label errors: images behind certain").any()
    assert findings["finding"].str.startswith("false matches").sum() == 2 * len(POINTS)
    assert (run / "figures" / "fpir_by_gallery_size.png").exists()

    # the ACLU-style gallery: every false candidate at the first point can be drawn
    ex = v["examples_false_candidates"]
    outcomes = pd.DataFrame(v["search_outcomes"])
    first = outcomes[outcomes["operating_point"] == next(iter(POINTS))]
    assert ex["enabled"] and ex["unreadable"] == 0
    assert ex["available"] == int(first["false_candidates"].sum())
    assert ex["shown"] == sum(min(6, int(c)) for c in first["false_candidates"])
    # headless explorer: FPIR at each operating point = the false matches recorded above
    table = pd.DataFrame(v["threshold_explorer"])
    pooled = table[(table["rate"] == "FPIR") & (table["group"] == "all groups")]
    for r in pooled.itertuples():
        assert r.count == ops[r.model][r.operating_point]["false_matches"]
        assert r.n == 60
    assert (run / "figures" / "threshold_explorer_sface.png").exists()
