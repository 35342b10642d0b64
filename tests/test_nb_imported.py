"""The audit notebooks run on results another system exported (no model run by the
notebook): 02 on an imported verification score file, 03 on imported Rekognition
SearchFacesByImage responses at the ACLU thresholds 80 and 99 (0-100 scale). The files are
facelab's own SFace outputs exported to those formats, so the notebook's numbers can be
checked against the study functions run directly."""

import warnings

import pandas as pd
import pytest
from nbrun import run_notebook

from facelab import external as X
from facelab.studies import imported as I
from facelab.studies import search as S
from facelab.studies import verification as V
from facelab.studies.matching import extract_embeddings, load_manifests

pytestmark = pytest.mark.slow


def test_02_on_imported_scores(tmp_path, data_root):
    manifest, _ = load_manifests(["celeba", "fairface", "cfd"], limit=90, seed=0,
                                 root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    pairs = V.verification_pairs(manifest, n_impostor_unlabelled=5000, seed=0)
    scored, _ = V.score_pairs(pairs, emb)
    path = X.write_scores(scored, tmp_path / "other_system.csv", mated=False,
                          transform=lambda s: 1.0 - s)  # written as a cosine distance
    spec = {"path": str(path), "scale": {"direction": "lower", "low": 0, "high": 2,
                                         "name": "cosine distance"}}
    run, v = run_notebook("02_verification_demographics",
                          {"scores": spec, "target_fmr": 0.01, "n_boot": 200}, tmp_path,
                          data_root)
    name = "other_system.csv (imported)"
    thr = v["threshold"][name]
    ref = V.global_threshold(scored, target_fmr=0.01, reference_group="White male")
    assert (thr["n_false_matches"], thr["n_impostor"]) == (ref.n_false_matches, ref.n_impostor)
    assert "on the file's scale: cosine distance <=" in thr["how"]
    fmr = pd.DataFrame(v["fmr_by_group"])
    want = V.fmr_by_group(scored, ref, reference_group="White male", n_boot=200, seed=0)
    got = fmr.drop(columns="embedder").set_index(["source", "group"])
    want = want.set_index(["source", "group"])
    assert (got.loc[want.index, "count"] == want["count"]).all()
    assert (got.loc[want.index, "n"] == want["n"]).all()
    fnmr = v["fnmr_overall"][name]
    want_fnmr = V.fnmr_overall(scored, ref, n_boot=200).iloc[0]
    assert (fnmr["count"], fnmr["n"]) == (want_fnmr["count"], want_fnmr["n"])
    assert len(pd.DataFrame(v["cross_group_fmr"])) > 0
    assert (run / "figures" / "det_by_group.png").exists()


def test_03_on_imported_rekognition_at_80_and_99(tmp_path, data_root):
    params = {"limit": 60, "n_probes": 60, "seed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest, _ = S.search_sets(limit=60, n_probes=60, seed=0, root=data_root)
    emb = extract_embeddings(manifest, "sface", progress=False)
    run0 = S.run_search(manifest, emb, k=5)
    folder = X.write_search_faces(run0.results, tmp_path / "responses",
                                  probes=run0.probe_ids, face_match_threshold=80.0)
    spec = {"path": str(folder), "format": "rekognition", "face_match_threshold": 80}
    run, v = run_notebook("03_one_to_many_search",
                          {**params, "candidates": spec, "n_boot": 200}, tmp_path, data_root)
    name = "Rekognition SearchFacesByImage (imported)"
    thr = pd.DataFrame(v["operating_thresholds"]).set_index("operating_point")
    assert set(thr.index) == {"service default 80 (ACLU test)", "law-enforcement guidance 99"}
    assert thr["how"].str.contains(r"Rekognition Similarity \(percent\) >= 80").any()
    assert thr["how"].str.contains("range 0 to 100").all()
    ops = v["operating_points"][name]
    imp = X.load_candidates(spec)
    direct = S.search_outcomes(I.search_run(imp, manifest),
                               I.fixed_thresholds(imp, {"a": 80, "b": 99}))
    native = S.search_outcomes(run0, {
        "a": S.ThresholdChoice(float(80 / 50 - 1), float("nan"), float("nan"), 0, 0, "x"),
        "b": S.ThresholdChoice(float(99 / 50 - 1), float("nan"), float("nan"), 0, 0, "x")})
    for key, point in (("a", "service default 80 (ACLU test)"),
                       ("b", "law-enforcement guidance 99")):
        r = ops[point]
        d = direct.set_index("operating_point").loc[key]
        n = native.set_index("operating_point").loc[key]
        assert r["false_matches"] == d["false_matches"] == n["false_matches"]
        assert r["non_mated_searches"] == n["non_mated_searches"] == 60
        assert r["misses"] == n["misses"] and r["mated_searches"] == n["mated_searches"]
    assert ops["law-enforcement guidance 99"]["false_matches"] <= \
        ops["service default 80 (ACLU test)"]["false_matches"]
    assert v["fpir_by_gallery_size_table"] == [] or len(v["fpir_by_gallery_size_table"]) == 0
    assert (run / "figures" / "threshold_tradeoff.png").exists()


def test_05_on_imported_rekognition_detect_faces(tmp_path, data_root):
    from facelab.data.sampling import GROUP_AUDIT_SAMPLING, load_datasets
    from facelab.external.predictions import predictions_from_features
    from facelab.extraction.pipeline import extract
    from facelab.studies import attributes as A

    params = {"limit": 60, "datasets": ["fairface", "cfd"], "min_count": 5,
              "stability_limit": 60, "brightness_faces": 8}
    manifests, _ = load_datasets(params["datasets"], limit=60, seed=0, **GROUP_AUDIT_SAMPLING)
    frames = []
    for name, m in manifests.items():
        feats = extract(m, heads=("attributes", "expression"), face_policy="largest",
                        progress=False)
        frames.append(predictions_from_features(feats, [f"{name}/{f}" for f in m["file"]]))
    folder = X.write_detect_faces(pd.concat(frames, ignore_index=True), tmp_path / "rk")
    spec = {"path": str(folder), "format": "rekognition"}
    run, v = run_notebook("05_attribute_audit", {**params, "predictions": spec}, tmp_path,
                          data_root)
    native = A.error_summary(A.gender_error_by_group(
        A.attribute_predictions(manifests, progress=False), min_count=5))
    got = pd.DataFrame(v["gender_error_summary"]).set_index("dataset")
    want = native.set_index("dataset")
    assert (got.loc[want.index, "errors"] == want["errors"]).all()
    assert (got.loc[want.index, "n"] == want["n"]).all()
    assert (run / "figures" / "gender_error_by_group.png").exists()
