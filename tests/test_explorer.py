"""The operating-point explorer: its callback logic as plain functions on real scores
(the same counts as the notebooks' own functions), the widget built with ipywidgets and
driven through its sliders, and the headless static view."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from facelab.metrics.biometric import threshold_at_fmr  # noqa: E402
from facelab.metrics.intervals import binomial_ci  # noqa: E402
from facelab.viz.explorer import (  # noqa: E402
    RateCells,
    interactive_frontend,
    reference_scores,
    search_cells,
    search_explorer,
    threshold_for_fmr,
    verification_cells,
    verification_explorer,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def verification(data_root):
    """Real SFace scores of CelebA genuine/impostor pairs and CFD within-group impostors."""
    from facelab.studies import verification as V
    from facelab.studies.matching import extract_embeddings, load_manifests

    manifest, _ = load_manifests(["celeba", "cfd"], limit=120, seed=0, root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    pairs = V.verification_pairs(manifest, n_impostor_unlabelled=5000, seed=0)
    scored, _ = V.score_pairs(pairs, emb)
    target = 0.01
    thr = V.global_threshold(scored, target_fmr=target, reference_group=None)
    return {"scored": scored, "threshold": thr, "default": V.default_threshold("sface", scored),
            "target": target}


@pytest.fixture(scope="module")
def search(data_root):
    """A real 1:N search: 40 images per labelled dataset enrolled, 30 non-mated probes and
    one mated probe per CelebA identity."""
    from facelab.studies import search as S
    from facelab.studies.matching import extract_embeddings

    manifest, _ = S.search_sets(gallery_datasets=["fairface:val", "cfd"],
                                probe_datasets=["fairface:train"], limit=40, n_probes=30,
                                seed=0, root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    run = S.run_search(manifest, emb, k=5)
    calib = S.calibration_scores(manifest, emb, n_pairs=20_000, seed=0)
    choices = S.operating_thresholds(calib, {"model default": "default", "permissive": 1e-2,
                                             "strict": 1e-3}, "sface")
    return {"run": run, "choices": choices}


def test_threshold_for_fmr_is_threshold_at_fmr():
    rng = np.random.default_rng(0)
    for scores in (rng.normal(size=5000), np.round(rng.normal(size=3000), 1),
                   np.repeat([0.1, 0.2, 0.9], [500, 400, 100])):
        s = np.sort(scores)
        for target in (0.5, 0.1, 0.03, 0.01, 1e-3, 1 / len(s)):
            ref = threshold_at_fmr(scores, target)
            t, k, n = threshold_for_fmr(s, target)
            assert t == ref.threshold and k == ref.n_false_matches and n == ref.n_impostor
    with pytest.raises(ValueError, match="needs at least"):
        threshold_for_fmr(np.sort(rng.normal(size=99)), 1e-3)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        threshold_for_fmr(np.arange(10.0), 0)


def test_verification_rates_match_the_notebook_functions(verification):
    from facelab.studies import verification as V

    scored = verification["scored"]
    cells = verification_cells(scored)
    for t in (float(verification["threshold"]), float(verification["default"]), 0.5):
        table = cells.at(t)
        fmr = V.fmr_by_group(scored, t, n_boot=50)
        cfd = table[(table["rate"] == "FMR") & (table["source"] == "cfd")].set_index("group")
        ref = fmr[fmr["source"] == "cfd"].set_index("group")
        assert set(cfd.index) == set(ref.index)
        assert (cfd["count"] == ref.loc[cfd.index, "count"]).all()
        assert (cfd["n"] == ref.loc[cfd.index, "n"]).all()
        fnmr = V.fnmr_overall(scored, t, n_boot=50).set_index("rate")
        gen = table[table["rate"] == "FNMR"].iloc[0]
        assert gen["count"] == fnmr.loc["FNMR", "count"] and gen["n"] == fnmr.loc["FNMR", "n"]
        imp = table[(table["rate"] == "FMR") & (table["source"] == "celeba")].iloc[0]
        assert imp["count"] == fnmr.loc["FMR", "count"]
        for r in table.sample(5, random_state=0).itertuples():
            low, high = binomial_ci(int(r.count), int(r.n))
            assert r.ci_low == pytest.approx(low, abs=1e-9)
            assert r.ci_high == pytest.approx(high, abs=1e-9)
    # raising the threshold never adds a false match nor removes a false non-match
    lo, hi = cells.at(0.3), cells.at(0.6)
    fm = lo["rate"] == "FMR"
    assert (hi.loc[fm, "count"] <= lo.loc[fm, "count"]).all()
    assert (hi.loc[~fm, "count"] >= lo.loc[~fm, "count"]).all()


def test_reference_scores_follow_the_global_threshold_rule(verification):
    scored, target = verification["scored"], verification["target"]
    ref, name = reference_scores(scored, None, target)
    t, _, _ = threshold_for_fmr(ref, target)
    assert t == float(verification["threshold"]) and "every group" in name
    small, name = reference_scores(scored, "Black female", 1e-6)  # too few: falls back
    assert "every group" in name and small.size == ref.size


def test_search_rates_match_search_outcomes(search):
    from facelab.studies import search as S

    run, choices = search["run"], search["choices"]
    outcomes = S.search_outcomes(run, choices).set_index("operating_point")
    cells = search_cells(run)
    for name, choice in choices.items():
        table = cells.at(float(choice))
        pooled = table[table["group"] == "all groups"].set_index("rate")
        fpir = table[table["rate"] == "FPIR"]
        o = outcomes.loc[name]
        assert pooled.loc["FPIR", "count"] == o["false_matches"]
        assert pooled.loc["FPIR", "n"] == o["non_mated_searches"] == 30
        assert fpir.loc[fpir["group"] != "all groups", "n"].sum() == 30
        assert pooled.loc["false candidates", "count"] == o["false_candidates"]
        fnir = table[table["rate"] == "FNIR"].iloc[0]  # CelebA probes: one group
        assert fnir["count"] == o["misses"] and fnir["n"] == o["mated_searches"]


def test_widget_updates_in_place_from_its_sliders(verification):
    pytest.importorskip("ipywidgets")
    v = verification
    ex = verification_explorer({"sface": v["scored"]}, {"sface": v["threshold"]},
                               {"sface": v["default"]}, target_fmr=v["target"],
                               reference_group=None)
    w = ex.widget()
    assert len(ex.timings) == 1  # the first view
    first = ex._rates.value
    assert first.count("<svg") == len(ex.last_table)  # one bar per group and rate
    ex.set_threshold(0.55)
    assert ex.last_table["threshold"].iloc[0] == pytest.approx(0.55, abs=ex._thr.step)
    assert ex._rates.value != first
    expected = ex.table("sface", ex._thr.value)
    pd.testing.assert_frame_equal(ex.last_table, expected)
    ex.set_target_fmr(0.05)
    t, how = ex.threshold_for_fmr("sface", ex._fmr.value)
    assert ex._thr.value == pytest.approx(t, abs=ex._thr.step)
    assert "set at FMR&lt;=" in ex._how.value
    assert "FNMR" in ex._rates.value and "all groups" in ex._rates.value
    assert len(ex.timings) == 3
    assert all(tm["compute"] < 0.1 and tm["total"] < 0.5 for tm in ex.timings)
    assert w.children[-1] is ex._rates


def test_search_widget_and_static_view(search, tmp_path):
    pytest.importorskip("ipywidgets")
    from facelab.report.record import Recorder

    ex = search_explorer({"sface": search["run"]}, {"sface": search["choices"]})
    ex.widget()
    assert ex._fmr.layout.display == "none"  # no reference pairs: threshold slider only
    ex.set_threshold(float(search["choices"]["strict"]))
    assert set(ex.last_table["rate"]) == {"FPIR", "FNIR", "false candidates"}
    rec = Recorder(tmp_path / "run", glue=False)
    table = ex.show(rec, mode="static")
    assert (tmp_path / "run" / "figures" / "threshold_explorer_sface.png").exists()
    assert list(pd.unique(table["operating_point"])) == list(search["choices"])
    assert "threshold_explorer" in rec.metrics


def test_headless_by_default(monkeypatch):
    monkeypatch.delenv("FACELAB_EXPLORER", raising=False)
    assert interactive_frontend() is False  # pytest is not a notebook front end
    monkeypatch.setenv("FACELAB_EXPLORER", "widget")
    assert interactive_frontend() is True
    monkeypatch.setenv("FACELAB_EXPLORER", "static")
    assert interactive_frontend() is False


def test_verification_static_view_has_three_points(verification):
    v = verification
    ex = verification_explorer({"sface": v["scored"]}, {"sface": v["threshold"]},
                               {"sface": v["default"]}, target_fmr=v["target"],
                               reference_group=None)
    points = ex.points["sface"]
    assert len(points) == 3
    assert points["model default"] == float(v["default"])
    assert points[f"global (FMR {v['target']:g})"] == float(v["threshold"])
    table = ex.show(None, mode="static")
    assert table.groupby("operating_point").ngroups == 3
    assert isinstance(RateCells([]).at(0.5), pd.DataFrame)
