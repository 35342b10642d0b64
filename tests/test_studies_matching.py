"""Unit tests of the matching studies (facelab.studies.verification / .search / ._matching)
on synthetic embeddings: every number is checked against a brute-force recount."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from facelab.metrics.biometric import identification_by_gallery_size, threshold_at_fmr
from facelab.studies import search as S
from facelab.studies import verification as V
from facelab.studies.matching import UNLABELLED, Embeddings, group_labels


def _unit(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _embeddings(index: pd.Index, matrix: np.ndarray, ok: np.ndarray | None = None) -> Embeddings:
    ok = np.ones(len(index), bool) if ok is None else ok
    m = matrix.copy()
    m[~ok] = np.nan
    feats = pd.DataFrame({"status": np.where(ok, "ok", "failed"),
                          "reason": np.where(ok, "", "no face detected"),
                          "image_sha256": [f"h{i}" for i in range(len(index))]}, index=index)
    return Embeddings(model="sface", features=feats, matrix=m, ok=ok)


def test_group_labels_mark_missing_as_unlabelled():
    df = pd.DataFrame({"race": ["Black", None, "White"], "gender": ["female", "male", None]},
                      dtype="string")
    assert group_labels(df, ["race", "gender"]).tolist() == ["Black female", UNLABELLED,
                                                             UNLABELLED]


# ----------------------------------------------------------------------------- verification
@pytest.fixture
def verification_setup():
    rng = np.random.default_rng(0)
    rows = []
    for g, n in (("A x", 12), ("B x", 9)):
        for i in range(n):
            race, gender = g.split()
            rows.append({"source": "lab", "race": race, "gender": gender, "subject": pd.NA,
                         "group": g, "file": f"{g}{i}"})
    for s in range(6):
        for i in range(4):
            rows.append({"source": "ids", "race": pd.NA, "gender": pd.NA, "subject": f"s{s}",
                         "group": UNLABELLED, "file": f"s{s}_{i}"})
    man = pd.DataFrame(rows)
    man.index = pd.Index([f"{r.source}:{r.file}" for r in man.itertuples()])
    centres = _unit(rng, 6)
    vec = _unit(rng, len(man))
    ids = man["subject"].astype("string")
    for s in range(6):  # genuine images close to their identity's centre
        sel = (ids == f"s{s}").fillna(False).to_numpy()
        vec[sel] = centres[s] + 0.3 * vec[sel]
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ok = np.ones(len(man), bool)
    ok[3] = False  # one failure to acquire
    return man, _embeddings(man.index, vec, ok)


def test_pairs_scores_and_fmr_by_group_match_brute_force(verification_setup):
    man, emb = verification_setup
    pairs = V.verification_pairs(man, by=["race", "gender"], n_impostor_unlabelled=None)
    kinds = pairs.groupby("kind").size().to_dict()
    assert kinds[V.GENUINE] == 6 * 6  # C(4, 2) per identity
    assert kinds[V.IMPOSTOR_UNLABELLED] == 24 * 23 // 2 - 36
    assert kinds[V.IMPOSTOR_WITHIN] == 12 * 11 // 2 + 9 * 8 // 2
    within = pairs[pairs["kind"] == V.IMPOSTOR_WITHIN]
    assert (within["group_a"] == within["group_b"]).all()
    assert within["subject_a"].str.startswith("lab:").all()  # no identity -> one per file

    scored, dropped = V.score_pairs(pairs, emb)
    failed = man.index[3]
    assert dropped == int(((pairs["index_a"] == failed) | (pairs["index_b"] == failed)).sum())
    row = scored.iloc[0]
    a, b = emb.positions([row["index_a"], row["index_b"]])
    assert row["score"] == pytest.approx(float(emb.matrix[a] @ emb.matrix[b]), abs=1e-6)

    choice = V.global_threshold(scored, target_fmr=0.05, reference_group=None)
    imp = scored.loc[scored["kind"] == V.IMPOSTOR_WITHIN, "score"]
    assert choice.achieved_fmr <= 0.05
    assert choice.threshold == threshold_at_fmr(imp, 0.05).threshold

    fmr = V.fmr_by_group(scored, choice, reference_group="A x", n_boot=200)
    for g in ("A x", "B x"):
        r = fmr[fmr["group"] == g].iloc[0]
        cell = scored[(scored["kind"] == V.IMPOSTOR_WITHIN) & (scored["group_a"] == g)]
        assert r["n"] == len(cell)
        assert r["count"] == int((cell["score"] >= choice.threshold).sum())
        assert r["ci_low"] <= r["fmr"] <= r["ci_high"]
    ref = fmr.set_index("group")
    if ref.loc["A x", "fmr"] > 0:
        assert ref.loc["B x", "ratio"] == pytest.approx(ref.loc["B x", "fmr"]
                                                        / ref.loc["A x", "fmr"])
    assert ref.loc["all groups", "n"] == ref.loc["A x", "n"] + ref.loc["B x", "n"]

    fnmr = V.fnmr_overall(scored, choice, n_boot=200)
    fn = fnmr[fnmr["rate"] == "FNMR"].iloc[0]
    gen = scored[scored["kind"] == V.GENUINE]
    assert fn["n"] == len(gen) and fn["count"] == int((gen["score"] < choice.threshold).sum())
    assert 0 <= fn["ci_low"] <= fn["value"] <= fn["ci_high"] <= 1

    findings = V.verification_findings(thresholds={"sface": choice}, fmr_tables={"sface": fmr},
                                       fnmr_tables={"sface": fnmr})
    assert {"finding", "value", "count", "n", "ci_low", "ci_high", "threshold_how"} <= set(
        findings.columns)
    assert len(findings) >= 5


def test_global_threshold_falls_back_to_everyone_and_says_so(verification_setup):
    man, emb = verification_setup
    scored, _ = V.score_pairs(V.verification_pairs(man, by=["race", "gender"]), emb)
    choice = V.global_threshold(scored, target_fmr=0.02, reference_group="B x")  # 36 pairs
    assert "fewer than the 50 needed" in choice.how
    assert choice.n_impostor == int((scored["kind"] == V.IMPOSTOR_WITHIN).sum())
    with pytest.raises(ValueError, match="needs at least"):
        V.global_threshold(scored, target_fmr=1e-4)


def test_cross_group_fmr_counts_every_pair_once(verification_setup):
    man, emb = verification_setup
    t = 0.1
    cross = V.cross_group_fmr(man, emb, t, source="lab", block=5)
    mat = V.fmr_matrix(cross)
    assert mat.shape == (2, 2) and (mat.to_numpy() == mat.to_numpy().T).all()
    lab = man[man["source"] == "lab"]
    pos = emb.positions(lab.index)
    keep = emb.ok[pos]
    pos, groups = pos[keep], lab["group"].to_numpy()[keep]
    counts: dict = {}
    for i, j in itertools.combinations(range(len(pos)), 2):
        key = tuple(sorted((groups[i], groups[j])))
        k, n = counts.get(key, (0, 0))
        counts[key] = (k + int(emb.matrix[pos[i]] @ emb.matrix[pos[j]] >= t), n + 1)
    for (ga, gb), (k, n) in counts.items():
        r = cross[(cross["group_a"] == ga) & (cross["group_b"] == gb)].iloc[0]
        assert (r["count"], r["n"]) == (k, n)
    sc = V.same_vs_cross_group(cross)
    assert sc["n"].sum() == len(pos) * (len(pos) - 1) // 2


# ----------------------------------------------------------------------------- search
def test_expected_fpir_is_exact():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 8))
    t = 0.5
    for n in (1, 3, 8):
        want = []
        for row in scores:
            subsets = list(itertools.combinations(range(8), n))
            want.append(np.mean([row[list(c)].max() >= t for c in subsets]))
        assert np.allclose(S.expected_fpir(scores, t, n), want)
    assert (S.expected_fpir(np.zeros((2, 5)), 1.0, 5) == 0).all()
    with pytest.raises(ValueError):
        S.expected_fpir(scores, t, 9)


@pytest.fixture
def search_setup():
    rng = np.random.default_rng(2)
    n_gal, n_non, n_mated = 60, 30, 10
    gal_vec = _unit(rng, n_gal)
    non_vec = _unit(rng, n_non)
    mated_vec = gal_vec[:n_mated] + 0.25 * _unit(rng, n_mated)
    mated_vec /= np.linalg.norm(mated_vec, axis=1, keepdims=True)
    races = np.array(["White", "Black", "Asian"])
    rows = []
    for i in range(n_gal):
        rows.append({"role": "gallery", "mated": False, "gallery_id": f"g{i}", "mate_id": pd.NA,
                     "race": races[i % 3], "source": "gal"})
    for i in range(n_non):
        rows.append({"role": "probe", "mated": False, "gallery_id": pd.NA, "mate_id": pd.NA,
                     "race": races[i % 3], "source": "prb"})
    for i in range(n_mated):
        rows.append({"role": "probe", "mated": True, "gallery_id": pd.NA, "mate_id": f"g{i}",
                     "race": pd.NA, "source": "ids"})
    man = pd.DataFrame(rows)
    man["group"] = man["race"].fillna(UNLABELLED)
    man.index = pd.Index([f"img{i}" for i in range(len(man))])
    emb = _embeddings(man.index, np.vstack([gal_vec, non_vec, mated_vec]))
    return man, emb


def test_search_counts_add_up(search_setup):
    man, emb = search_setup
    calib = S.calibration_scores(man, emb, n_pairs=500, seed=0)
    assert len(calib) == 500
    choices = S.operating_thresholds(calib, {"permissive": 0.05, "strict": 0.01,
                                             "default": "default"}, "sface")
    assert choices["permissive"].achieved_fmr <= 0.05
    assert choices["strict"].threshold >= choices["permissive"].threshold
    assert choices["default"].threshold == pytest.approx(0.363)

    run = S.run_search(man, emb, k=3)
    assert run.scores.shape == (40, 60)
    top = run.results[run.results["candidate_rank"] == 1].set_index("probe")["score"]
    best = pd.Series(run.scores.max(axis=1), index=run.probe_ids)
    assert np.allclose(top.reindex(best.index), best, atol=1e-5)
    mates = run.results[run.results["is_mate"]]
    assert mates["mated"].all()

    out = S.search_outcomes(run, choices).set_index("operating_point")
    probes = man[man["role"] == "probe"]
    non_best = best[~probes.loc[best.index, "mated"].to_numpy()]
    for name, c in choices.items():
        r = out.loc[name]
        assert r["non_mated_searches"] == 30 and r["mated_searches"] == 10
        assert r["false_matches"] == int((non_best >= c.threshold).sum())
        assert r["fpir"] == pytest.approx(r["false_matches"] / 30)
        assert r["fpir_ci_low"] <= r["fpir"] <= r["fpir_ci_high"]
        fm = S.false_match_table(run, probes, c)
        comp = S.composition(fm)
        assert comp["false_matches"].sum() == r["false_matches"]
        assert comp["population"].sum() == 30
        if r["false_matches"]:
            assert comp["share"].sum() == pytest.approx(1.0)
            assert ((comp["share_ci_low"] <= comp["share"])
                    & (comp["share"] <= comp["share_ci_high"])).all()
        assert (comp["fpir"] == comp["false_matches"] / comp["population"]).all()
        cand = S.composition(fm, column="candidate_group",
                             population=man.loc[man["role"] == "gallery", "group"])
        assert cand["false_matches"].sum() == r["false_matches"]
        assert cand["population"].sum() == 60
        sh = S.share_outside(fm, column="probe_race").set_index("among")
        assert sh.loc["searches", "count"] == 20 and sh.loc["searches", "n"] == 30
        assert sh.loc["false matches", "n"] == r["false_matches"]
    assert out.loc["strict", "false_matches"] <= out.loc["permissive", "false_matches"]
    assert out.loc["strict", "fnir"] >= out.loc["permissive", "fnir"]

    size = S.fpir_by_gallery_size(run, choices, gallery_sizes=[5, 20, 60], n_boot=100)
    for name, part in size.groupby("operating_point"):
        assert part["fpir"].is_monotonic_increasing
        assert part["fpir"].iloc[-1] == pytest.approx(out.loc[name, "fpir"])  # whole gallery
        assert ((part["ci_low"] <= part["fpir"] + 1e-12)
                & (part["fpir"] <= part["ci_high"] + 1e-12)).all()


def test_outcomes_by_group_add_up_to_the_whole(search_setup):
    """Mated probes with group labels (a dataset with identities and labels) give FNIR
    by group; every group's counts add up to the overall outcome."""
    man, emb = search_setup
    man = man.copy()
    mated = man.index[man["mated"].to_numpy(bool)]
    man.loc[mated, "group"] = ["White", "Black"] * (len(mated) // 2)
    calib = S.calibration_scores(man, emb, n_pairs=500, seed=0)
    choices = S.operating_thresholds(calib, {"permissive": 0.05, "strict": 0.01}, "sface")
    run = S.run_search(man, emb, k=3)
    whole = S.search_outcomes(run, choices).set_index("operating_point")
    by = S.outcomes_by_group(run, choices)
    assert set(by["group"]) == {"White", "Black", "Asian"}
    for name, part in by.groupby("operating_point"):
        for col in ("non_mated_searches", "false_matches", "mated_searches", "misses"):
            assert part[col].fillna(0).sum() == whole.loc[name, col]
        assert part.set_index("group").loc["White", "mated_searches"] == 5
        assert part["mated_searches"].isna().sum() == 1  # Asian: no mated probe
        ok = part.dropna(subset=["fnir"])
        assert ((ok["fnir_ci_low"] <= ok["fnir"]) & (ok["fnir"] <= ok["fnir_ci_high"])).all()


def test_fpir_by_gallery_size_agrees_with_gallery_sampling(search_setup):
    man, emb = search_setup
    run = S.run_search(man, emb, k=1)
    choices = {"t": S.operating_thresholds(np.linspace(-1, 1, 1000), {"t": 0.1}, "sface")["t"]}
    exact = S.fpir_by_gallery_size(run, choices, gallery_sizes=[10, 30], n_boot=50)
    non = ~run.results.groupby("probe")["mated"].first().reindex(run.probe_ids).to_numpy()
    sc = run.scores[non]
    long = pd.DataFrame({"probe": np.repeat(run.probe_ids[non], sc.shape[1]),
                         "gallery_id": np.tile(run.gallery_ids, sc.shape[0]),
                         "score": sc.ravel(), "is_mate": False})
    sampled = identification_by_gallery_size(long, gallery_sizes=[10, 30],
                                             threshold=choices["t"], n_repeats=400)
    assert np.allclose(exact["fpir"], sampled["fpir"], atol=0.02)


def test_unresolvable_operating_point_is_skipped_with_a_warning():
    calib = np.linspace(-1, 1, 500)
    with pytest.warns(UserWarning, match="'strict' skipped"):
        out = S.operating_thresholds(calib, {"permissive": 0.01, "strict": 1e-4}, "sface")
    assert list(out) == ["permissive"] and out["permissive"].n_false_matches == 5
    with pytest.raises(ValueError, match="needs at least 10,000"):
        S.operating_thresholds(calib, {"strict": 1e-4}, "sface", skip_unresolvable=False)


# ----------------------------------------------------------------------------- FNMR by group
@pytest.fixture
def identity_setup():
    """A dataset with identities AND labels: 3 women and 4 men (4 images each), one
    woman's last image labelled male (a mixed-label person), plus a one-image man."""
    rng = np.random.default_rng(1)
    rows = []
    people = [(f"f{i}", "female") for i in range(3)] + [(f"m{i}", "male") for i in range(4)]
    for subj, gender in people:
        for k in range(4):
            g = "male" if (subj == "f0" and k == 3) else gender
            rows.append({"source": "idlab", "subject": subj, "gender": g, "race": "White",
                         "file": f"{subj}_{k}"})
    rows.append({"source": "idlab", "subject": "solo", "gender": "male", "race": pd.NA,
                 "file": "solo_0"})
    man = pd.DataFrame(rows)
    man.index = pd.Index([f"idlab:{f}" for f in man["file"]])
    man["group"] = group_labels(man, ["gender"])
    centres = _unit(rng, len(people))
    vec = _unit(rng, len(man))
    for j, (subj, _) in enumerate(people):
        sel = (man["subject"] == subj).to_numpy()
        vec[sel] = centres[j] + (0.9 if subj.startswith("f") else 0.4) * vec[sel]
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return man, _embeddings(man.index, vec)


def test_fnmr_by_group_counts_genuine_pairs_of_each_group(identity_setup):
    man, emb = identity_setup
    pairs = V.verification_pairs(man, by=["gender"])
    gen = pairs[pairs["kind"] == V.GENUINE]
    # f0 has 3 female + 1 male image: its 3 mixed pairs are left out and counted
    assert pairs.attrs["genuine_mixed_groups"] == {"idlab": 3}
    assert len(gen) == 7 * 6 - 3
    assert (gen["group_a"] == gen["group_b"]).all()
    scored, dropped = V.score_pairs(pairs, emb)
    assert dropped == 0
    t = float(np.median(scored.loc[scored["kind"] == V.GENUINE, "score"]))
    tables = V.group_rates(scored, t, reference_group="male", n_boot=100)
    fnmr = tables["fnmr"].set_index("group")
    for g in ("female", "male"):
        cell = gen[gen["group_a"] == g]
        sc = scored[(scored["kind"] == V.GENUINE) & (scored["group_a"] == g)]
        assert fnmr.loc[g, "n"] == len(cell) == len(sc)
        assert fnmr.loc[g, "count"] == int((sc["score"] < t).sum())
        assert fnmr.loc[g, "n_subjects"] == sc["subject_a"].nunique()
        assert fnmr.loc[g, "ci_low"] <= fnmr.loc[g, "fnmr"] <= fnmr.loc[g, "ci_high"]
    assert fnmr.loc["all groups", "n"] == len(gen)
    assert fnmr.loc["female", "ratio"] == pytest.approx(fnmr.loc["female", "fnmr"]
                                                        / fnmr.loc["male", "fnmr"])
    assert (fnmr["ratio_to"] == "male").all()
    # the FMR table of the same call is the fmr_by_group table
    assert tables["fmr"].equals(V.fmr_by_group(scored, t, reference_group="male", n_boot=100))
    # DET per group uses the group's own genuine pairs
    det = V.det_by_group(scored, source="idlab")
    assert set(det) == {"female", "male"}
    for g, n in (("female", 15), ("male", 24)):
        steps = det[g]["fnmr"].to_numpy() * n
        assert np.allclose(steps, np.round(steps))  # FNMR in steps of 1 / that group's pairs


def test_identity_group_rates_and_nist_comparison(identity_setup):
    man, emb = identity_setup
    t = 0.3
    res = V.identity_group_rates(man, {"sface": emb}, {"sface": t},
                                 groupings=[["gender"], ["race", "gender"]], n_boot=100,
                                 min_count=5)
    assert set(res.fnmr["grouping"]) == {"gender", "race x gender"}
    g = res.fnmr[(res.fnmr["grouping"] == "gender") & (res.fnmr["group"] != "all groups")]
    assert set(g["group"]) == {"female", "male"}
    # the one-image man has no race: he is left out of race x gender, kept in gender
    c = res.counts.set_index(["grouping", "kind"])["pairs"]
    assert c[("gender", V.IMPOSTOR_WITHIN)] > c[("race x gender", V.IMPOSTOR_WITHIN)]
    comp = V.differential_comparison(res.fmr, res.fnmr)
    assert len(comp) == 2  # female and male compared in both groupings
    assert set(comp["larger"]) <= {"FMR", "FNMR", "equal", "undefined"}
    sentences = V.nist_comparison(comp)
    assert len(sentences) == len(comp)
    for r, text in zip(comp.itertuples(), sentences, strict=True):
        if r.larger == "FMR":
            assert "as NIST IR 8280 found" in text
        elif r.larger == "FNMR":
            assert "unlike NIST IR 8280" in text
    findings = V.verification_findings(thresholds={"sface": threshold_at_fmr(
        res.scored[("sface", "gender")].query("kind == @V.IMPOSTOR_WITHIN")["score"], 0.2)},
        fmr_tables={}, fnmr_tables={}, identity=res)
    assert findings["finding"].str.contains("gender · idlab: FNMR of female").any()


@pytest.mark.parametrize("model", ["dlib_resnet", "sface"])
def test_pairs_at_least_is_the_thresholded_matrix_bit_for_bit(model):
    """The screened search returns exactly the pairs, and the float32 scores, of the full
    matrix path: near-duplicates, pairs just around the level and none above it."""
    rng = np.random.default_rng(3)
    base = rng.normal(scale=0.09, size=(300, 128))  # dlib-like: distances around 0.6-1.3
    near = base[:60] + rng.normal(scale=0.01, size=(60, 128))  # near-duplicates
    vectors = np.vstack([base, near]).astype(np.float32)
    emb = _embeddings(pd.RangeIndex(len(vectors)), vectors)
    emb.model = model
    full = emb.similarity(vectors, vectors[::-1], matrix=True)
    for level in (float(np.quantile(full, 0.999)), float(np.quantile(full, 0.9)),
                  float(full.max()) + 0.01):
        i, j, score = emb.pairs_at_least(vectors, vectors[::-1], level, block=97)
        ei, ej = np.nonzero(full >= level)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(j, ej)
        assert score.dtype == np.float32
        np.testing.assert_array_equal(score, full[ei, ej])


@pytest.mark.parametrize("model", ["dlib_resnet", "sface"])
def test_pair_scores_equal_similarity_bit_for_bit(model):
    """Issue 16: rows converted/normalised once per embedder give the same float32 scores
    as similarity() on the gathered rows (across block edges, with failed rows)."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(scale=0.09, size=(400, 128)).astype(np.float32)
    ok = rng.random(400) > 0.05
    emb = _embeddings(pd.RangeIndex(400), vectors, ok)
    emb.model = model
    pa, pb = rng.integers(0, 400, 5000), rng.integers(0, 400, 5000)
    expected = emb.similarity(emb.matrix[pa], emb.matrix[pb])
    got = emb.pair_scores(pa, pb, chunk=333)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)  # NaN where a row failed, as before
    emb.model = "dlib_resnet" if model == "sface" else "sface"  # the cache follows the model
    np.testing.assert_array_equal(emb.pair_scores(pa, pb),
                                  emb.similarity(emb.matrix[pa], emb.matrix[pb]))
