"""Round trip on real shared data: facelab's own SFace scores, candidate lists and
attribute predictions exported to every external format and imported back give exactly
the same audit numbers; ids that are not in the audit's manifest are refused or counted."""

import warnings

import numpy as np
import pandas as pd
import pytest

from facelab import external as X
from facelab.core.validation import InputError
from facelab.external.rekognition import to_percent
from facelab.studies import imported as I
from facelab.studies import search as S
from facelab.studies import verification as V
from facelab.studies.matching import extract_embeddings, load_manifests

DATASETS = ["celeba", "cfd", "fairface"]
RATE_COLS = ["source", "group", "fmr", "count", "n", "ci_low", "ci_high", "ratio"]


def _verification_numbers(scored, target_fmr=0.05):
    th = V.global_threshold(scored, target_fmr=target_fmr, reference_group="White male")
    fmr = V.fmr_by_group(scored, th, reference_group="White male", n_boot=100)
    fnmr = V.fnmr_overall(scored, th, n_boot=100)
    cross = I.cross_group_fmr_pairs(scored, th, source="cfd")
    return th, fmr[RATE_COLS], fnmr[["source", "rate", "value", "count", "n", "ci_low",
                                     "ci_high"]], cross


@pytest.mark.slow
def test_verification_scores_round_trip(tmp_path, data_root):
    manifest, _ = load_manifests(DATASETS, limit=100, seed=0, root=data_root)
    full, _ = load_manifests(DATASETS, limit=None, root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    pairs = V.verification_pairs(manifest, n_impostor_unlabelled=3000, seed=0)
    scored, _ = V.score_pairs(pairs, emb)
    assert (scored["kind"] == V.GENUINE).sum() >= 10
    th0, fmr0, fnmr0, cross0 = _verification_numbers(scored)

    X.write_scores(scored, tmp_path / "s.csv")
    X.write_scores(scored, tmp_path / "unlabelled.csv", mated=False)
    X.write_bob_scores(scored, tmp_path / "s.5col", columns=5)
    X.write_compare_faces(scored, tmp_path / "cf")
    X.write_deepface_verify(scored, tmp_path / "dv.json", threshold=1 - 0.363)
    specs = [str(tmp_path / "s.csv"), str(tmp_path / "unlabelled.csv"),
             {"path": str(tmp_path / "s.5col"), "format": "bob"},
             {"path": str(tmp_path / "cf" / "pairs.csv"), "format": "rekognition",
              "similarity_threshold": 0},
             str(tmp_path / "dv.json")]
    for spec in specs:
        imp = X.load_scores(spec)
        sc, drops = I.scored_pairs(imp, full)
        assert len(drops) == 0 and len(sc) == len(scored)
        th, fmr, fnmr, cross = _verification_numbers(sc)
        pd.testing.assert_frame_equal(fmr.reset_index(drop=True), fmr0.reset_index(drop=True))
        pd.testing.assert_frame_equal(fnmr, fnmr0)
        pd.testing.assert_frame_equal(cross, cross0)
        assert (th.n_false_matches, th.n_impostor) == (th0.n_false_matches, th0.n_impostor)
        native = imp.scale.from_similarity(th.threshold)
        back = {"higher": native, "lower": 1 - native}[imp.scale.direction]
        if imp.scale.name.startswith("Rekognition"):
            back = native / 50 - 1
        assert back == pytest.approx(th0.threshold, abs=1e-12)
        assert "on the file's scale" in I.on_file_scale(th, imp).how
    # the system's own threshold (deepface's) gives the FMR of facelab's default 0.363
    imp = X.load_scores(str(tmp_path / "dv.json"))
    sc, _ = I.scored_pairs(imp, full)
    d0, d1 = V.default_threshold("sface", scored), I.default_choice(imp, sc)
    assert (d1.n_false_matches, d1.n_impostor) == (d0.n_false_matches, d0.n_impostor)

    # bob 4-column files hold one score per probe and model: the labelled impostors
    within = scored[scored["kind"] == V.IMPOSTOR_WITHIN]
    X.write_bob_scores(within, tmp_path / "s.4col", columns=4)
    sc4, _ = I.scored_pairs(X.load_scores({"path": str(tmp_path / "s.4col"),
                                           "format": "bob"}), full)
    t = float(th0)
    f0 = V.fmr_by_group(within, t, n_boot=100)[RATE_COLS[:-1]]
    f4 = V.fmr_by_group(sc4, t, n_boot=100)[RATE_COLS[:-1]]
    pd.testing.assert_frame_equal(f4, f0)
    with pytest.raises(ValueError, match="use columns=5"):
        X.write_bob_scores(scored, tmp_path / "x.4col", columns=4)


def test_ids_are_checked_against_the_manifest(tmp_path, data_root):
    manifest, _ = load_manifests(["cfd", "celeba"], limit=None, root=data_root)
    cfd = manifest[manifest["source"] == "cfd"].index[:3].tolist()
    celeba = manifest[manifest["source"] == "celeba"]
    first = celeba["subject"].iloc[0]
    a, b = celeba.index[celeba["subject"] == first][:2]
    f = tmp_path / "s.csv"
    f.write_text(f"probe,reference,score\n{cfd[0]},{cfd[1]},0.1\n{a},{b},0.8\n"
                 f"nobody.jpg,{cfd[2]},0.2\n")
    imp = X.read_scores(f, scale={"range": [-1, 1]})
    with pytest.raises(InputError, match=r"s.csv, line 4: probe 'nobody.jpg' is not in the "
                                         "manifest"):
        I.scored_pairs(imp, manifest)
    sc, drops = I.scored_pairs(imp, manifest, errors="drop")
    assert len(sc) == 2 and len(drops) == 1 and drops.rows[0]["where"] == "line 4"
    assert sc["same"].tolist() == [False, True]  # from the manifest's subjects
    assert sc["kind"].tolist() == [I.IMPOSTOR_CROSS if sc["group_a"].iloc[0] !=
                                   sc["group_b"].iloc[0] else V.IMPOSTOR_WITHIN, V.GENUINE]
    # ids written the file-name way resolve too
    short = cfd[0].split(":", 1)[1]
    f.write_text(f"probe,reference,score,mated\n{short},{cfd[1]},0.1,0\n{a},{b},0.8,0\n")
    with pytest.raises(InputError, match=r"line 3: mated=False but the manifest gives "
                                         "subjects"):
        I.scored_pairs(X.read_scores(f), manifest)


@pytest.mark.slow
def test_candidate_lists_round_trip(tmp_path, data_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest, _ = S.search_sets(limit=40, n_probes=40, seed=0, root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    run = S.run_search(manifest, emb, k=5)
    calib = S.calibration_scores(manifest, emb, n_pairs=20_000)
    points = S.operating_thresholds(calib, {"default": "default", "permissive": 1e-2,
                                            "strict": 1e-3}, "sface")
    cols = ["false_matches", "non_mated_searches", "fpir", "fpir_ci_low", "misses",
            "mated_searches", "fnir", "false_candidates"]
    out0 = S.search_outcomes(run, points)[cols]
    probes = manifest[manifest["role"] == "probe"]
    comp0 = S.composition(S.false_match_table(run, probes, points["default"]))

    gal = manifest[manifest["role"] == "gallery"]
    path_of = dict(zip(gal["gallery_id"], gal["path"], strict=True))
    X.write_candidates(run.results, tmp_path / "c.csv", probes=run.probe_ids)
    X.write_search_faces(run.results, tmp_path / "rk", probes=run.probe_ids)
    X.write_deepface_find(run.results, tmp_path / "df", probes=run.probe_ids,
                          identity_of=path_of.get)
    cases = [(str(tmp_path / "c.csv"), lambda t: t),
             ({"path": str(tmp_path / "rk"), "format": "rekognition",
               "face_match_threshold": 0}, to_percent),
             ({"path": str(tmp_path / "df"), "format": "deepface"}, lambda t: 1 - t)]
    for spec, on_scale in cases:
        imp = X.load_candidates(spec)
        r = I.search_run(imp, manifest)
        fixed = I.fixed_thresholds(imp, {k: on_scale(v.threshold) for k, v in points.items()})
        pd.testing.assert_frame_equal(S.search_outcomes(r, fixed)[cols], out0)
        comp = S.composition(S.false_match_table(r, probes, fixed["default"]))
        pd.testing.assert_frame_equal(comp, comp0)

    # Rekognition only returns matches >= FaceMatchThreshold: searches come back empty,
    # thresholds at or above the cut-off give the same numbers, lower ones are refused
    floor = float(to_percent(points["permissive"].threshold))
    X.write_search_faces(run.results, tmp_path / "rk80", probes=run.probe_ids,
                         face_match_threshold=floor)
    imp = X.load_candidates({"path": str(tmp_path / "rk80"), "format": "rekognition",
                             "face_match_threshold": floor})
    r = I.search_run(imp, manifest)
    assert (r.results["score"] == -np.inf).sum() > 0
    keep = {k: to_percent(v.threshold) for k, v in points.items() if k != "default"}
    with pytest.warns(UserWarning, match="below the system's own cut-off"):
        fixed = I.fixed_thresholds(imp, {**keep, "too low": floor - 5})
    assert set(fixed) == set(keep)
    want = S.search_outcomes(run, {k: points[k] for k in keep})[cols].reset_index(drop=True)
    got = S.search_outcomes(r, fixed)[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
def test_predictions_round_trip(tmp_path, data_root):
    from facelab.data.datasets import load_dataset
    from facelab.data.sampling import balanced_sample
    from facelab.external.predictions import predictions_from_features
    from facelab.extraction.pipeline import extract
    from facelab.studies import attributes as A

    manifests = {name: balanced_sample(load_dataset(name, root=data_root, split=split), 60,
                                       ["race", "gender"], seed=0)
                 for name, split in (("fairface", "val"), ("cfd", None))}
    native = A.attribute_predictions(manifests, progress=False)
    by0 = {k: v.by_group for k, v in A.gender_error_by_group(native).items()}
    age0 = {k: v.by_group for k, v in A.age_error_by_group(native).items()}
    frames = []
    for name, m in manifests.items():
        feats = extract(m, heads=("attributes", "expression"), face_policy="largest",
                        progress=False)
        frames.append(predictions_from_features(feats, [f"{name}/{f}" for f in m["file"]]))
    table = pd.concat(frames, ignore_index=True)
    assert (table["face"] >= 0).sum() > 100
    X.write_predictions(table, tmp_path / "p.csv")
    X.write_detect_faces(table, tmp_path / "rk")
    X.write_deepface_analyze(table, tmp_path / "df")
    for spec, exact_age in ((str(tmp_path / "p.csv"), True),
                            ({"path": str(tmp_path / "rk"), "format": "rekognition"}, False),
                            ({"path": str(tmp_path / "df"), "format": "deepface"}, True)):
        imp = X.load_predictions(spec)
        preds = I.attribute_predictions(imp, manifests)
        assert (preds["status"] == "ok").sum() == (native["status"] == "ok").sum()
        by = {k: v.by_group for k, v in A.gender_error_by_group(preds).items()}
        for k in by0:
            pd.testing.assert_frame_equal(by[k], by0[k])
        age = {k: v.by_group for k, v in A.age_error_by_group(preds).items()}
        for k in age0:
            if exact_age:
                pd.testing.assert_frame_equal(age[k], age0[k])
            else:  # Rekognition's AgeRange is whole years: the midpoint is within 0.5
                assert np.allclose(age[k]["value"], age0[k]["value"], atol=0.5)
        got = imp.largest_face().set_index("image")["expression"].dropna()
        want = table[table["face"] >= 0].set_index("image")["expression"]
        assert (got.reindex(want.index) == want).all()
