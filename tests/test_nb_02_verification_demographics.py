"""Papermill run of 02_verification_demographics on a small, seeded subset (90 images per
dataset, target FMR 1e-2) with assertions on what it recorded."""

import pandas as pd
import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow

PARAMS = {"limit": 90, "target_fmr": 0.01, "n_boot": 200, "n_impostor_unlabelled": 20_000}
# LFW (identities and labels) is sampled as whole people: 90 images, FNMR by gender and race


def _within_ci(df: pd.DataFrame, value: str, low: str = "ci_low", high: str = "ci_high"):
    d = df.dropna(subset=[value])
    assert ((d[low] <= d[value] + 1e-12) & (d[value] <= d[high] + 1e-12)).all()
    assert ((d[low] >= 0) & (d[high] <= 1)).all()


def test_02_verification_demographics(tmp_path, data_root):
    run, v = run_notebook("02_verification_demographics", PARAMS, tmp_path, data_root)
    models = {"sface", "dlib_resnet"}

    thr = v["threshold"]
    assert set(thr) == models
    for t in thr.values():
        assert t["target_fmr"] == 0.01
        assert 0 <= t["achieved_fmr"] <= 0.01
        assert t["n_false_matches"] == round(t["achieved_fmr"] * t["n_impostor"])
        assert t["n_impostor"] >= 100
        assert "impostor comparisons" in t["how"]

    fta = pd.DataFrame(v["failure_to_acquire"])
    assert (fta.groupby("embedder")["images"].sum() == 270).all()  # 3 datasets x 90
    assert fta["fta"].between(0, 0.2).all()

    pairs = pd.DataFrame(v["pair_counts"]).set_index(["source", "kind"])
    assert pairs.loc[("celeba", "genuine")].min() > 0

    fmr = pd.DataFrame(v["fmr_by_group"])
    _within_ci(fmr, "fmr")
    cross = pd.DataFrame(v["cross_group_fmr"])
    for (m, source), part in fmr.groupby(["embedder", "source"]):
        groups = part[part["group"] != "all groups"]
        every = part[part["group"] == "all groups"].iloc[0]
        assert len(groups) == 12  # 6 races x 2 genders in FairFace (coarse) and CFD
        assert every["n"] == groups["n"].sum() and every["count"] == groups["count"].sum()
        # the heatmap is groups x groups, and its diagonal is the within-group FMR on the
        # same (all) pairs
        c = cross[(cross["embedder"] == m) & (cross["source"] == source)]
        assert len(c) == len(groups) ** 2
        diag = c[c["group_a"] == c["group_b"]].set_index("group_a")
        g = groups.set_index("group")
        assert (diag.loc[g.index, "n"] == g["n"]).all()
        assert (diag.loc[g.index, "count"] == g["count"]).all()
        ref = g.loc["White male", "fmr"]
        if ref > 0:
            assert g["ratio"].to_numpy() == pytest.approx((g["fmr"] / ref).to_numpy())
    _within_ci(cross, "fmr")

    gender = pd.DataFrame(v["fmr_by_gender"])
    _within_ci(gender, "fmr")
    for (m, source), part in gender.groupby(["embedder", "source"]):
        every = fmr[(fmr["embedder"] == m) & (fmr["source"] == source)
                    & (fmr["group"] == "all groups")].iloc[0]
        assert set(part["gender"]) == {"female", "male"}
        assert part["n"].sum() == every["n"] and part["count"].sum() == every["count"]

    fnmr = v["fnmr_overall"]
    assert set(fnmr) == models
    n_gen = int(pairs.loc[("celeba", "genuine")].iloc[0])
    for r in fnmr.values():
        assert 0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1
        assert r["n"] == n_gen and r["n_subjects"] <= 80

    same_cross = pd.DataFrame(v["same_vs_cross_group"])
    assert set(same_cross["pairs"]) == {"same group", "different groups"}

    # LFW: identities and labels, so FNMR by group next to FMR by group
    fnmr_g = pd.DataFrame(v["fnmr_by_group_identity"])
    fmr_g = pd.DataFrame(v["fmr_by_group_identity"])
    _within_ci(fnmr_g, "fnmr")
    _within_ci(fmr_g, "fmr")
    counts = pd.DataFrame(v["identity_pair_counts"])
    for m in models:
        gender = fnmr_g[(fnmr_g["embedder"] == m) & (fnmr_g["grouping"] == "gender")
                        & (fnmr_g["source"] == "lfw")].set_index("group")
        assert {"female", "male", "all groups"} <= set(gender.index)
        assert gender.loc["all groups", "n"] == gender.loc[["female", "male"], "n"].sum()
        assert gender.loc["all groups", "count"] == gender.loc[["female", "male"], "count"].sum()
        n_gen = counts[(counts["embedder"] == m) & (counts["grouping"] == "gender")
                       & (counts["kind"] == "genuine")]["pairs"].sum()
        assert gender.loc["all groups", "n"] == n_gen > 0
        assert (gender["ratio_to"] == "male").all()
        assert (gender["threshold"] == thr[m]["threshold"]).all()  # the one global threshold
    comparison = pd.DataFrame(v["differential_comparison"])
    assert set(comparison["larger"]) <= {"FMR", "FNMR", "equal", "undefined"}
    assert len(v["nist_comparison"]) >= 1
    assert (run / "figures" / "det_by_group_identity.png").exists()

    le = v["label_error_counts"]
    assert set(le) == models
    for c in le.values():
        assert c["excluded"] == c["certain"]  # default policy: exclude certain, keep likely
    findings = pd.DataFrame(v["findings"])
    assert findings["finding"].str.contains("gender · lfw: FNMR of female").any()
    assert findings["finding"].str.contains("label errors: images byte-identical").any()
    assert set(findings["model"]) == models
    rates = findings[findings["metric"].isin(["FMR", "FNMR", "FPIR", "FNIR"])
                     & findings["n"].notna() & findings["count"].notna()]
    assert len(rates) and (rates["ci_low"].fillna(0) <= rates["value"]).all()  # numbers
    assert rates["value"].to_numpy() == pytest.approx((rates["count"] / rates["n"]).to_numpy())
    assert findings["finding"].str.contains("global threshold").any()
    assert findings["finding"].str.contains("FNMR on celeba").any()
    assert (run / "figures" / "cross_group_fmr_sface.png").exists()
    assert (run / "figures" / "det_by_group.png").exists()

    # error galleries: every impostor (and genuine) pair scored is a candidate, 6 shown each
    is_genuine = pairs.index.get_level_values("kind") == "genuine"
    for kind, genuine in (("impostor", False), ("genuine", True)):
        ex = v[f"examples_{kind}_pairs"]
        assert ex["enabled"] and ex["unreadable"] == 0
        assert ex["available"] == int(pairs.loc[is_genuine == genuine, sorted(models)].sum().sum())
        assert ex["shown"] == 6 * len(models)
        assert (run / "figures" / f"examples_{kind}_pairs.png").exists()
    # headless operating-point explorer: three points per embedder, the same counts as the
    # FMR-by-group table at the global threshold
    ops = pd.DataFrame(v["threshold_explorer"])
    assert ops.groupby("model")["operating_point"].nunique().eq(3).all()
    for m in models:
        glob = ops[(ops["model"] == m) & ops["operating_point"].str.startswith("global")]
        assert glob["threshold"].eq(thr[m]["threshold"]).all()
        for r in fmr[(fmr["embedder"] == m) & (fmr["group"] == "all groups")].itertuples():
            mine = glob[(glob["rate"] == "FMR") & (glob["source"] == r.source)
                        & (glob["group"] == "all groups")]
            assert int(mine["count"].iloc[0]) == r.count and int(mine["n"].iloc[0]) == r.n
        assert (run / "figures" / f"threshold_explorer_{m}.png").exists()
