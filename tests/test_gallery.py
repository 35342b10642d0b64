"""Gallery: enrolment, exact and approximate search, persistence without pickle."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest

from facelab.match.gallery import SEARCH_RESULT_COLUMNS, Gallery
from facelab.match.index import FaissIndex, exact_search, recall_at_k, synthetic_embeddings


@pytest.fixture(scope="module")
def synthetic():
    gallery, ids, queries, qids = synthetic_embeddings(2_000, 50, templates_per_id=4, seed=3)
    return gallery, ids, queries, qids


def test_search_top1_is_enrolled_identity(synthetic):
    gallery, ids, queries, qids = synthetic
    g = Gallery("sface", index="exact")
    report = g.enrol(gallery, [f"id{i}" for i in ids])
    assert report["enrolled"].all() and len(g) == 2_000 and len(g.subjects) == 500
    res = g.search(queries, k=5)
    assert list(res.columns) == list(SEARCH_RESULT_COLUMNS)
    top1 = res[res["candidate_rank"] == 1]
    assert (top1["subject"].to_numpy() == np.array([f"id{i}" for i in qids])).all()
    # k distinct subjects per probe, best first
    for _, grp in res.groupby("probe"):
        assert grp["subject"].nunique() == 5 and grp["score"].is_monotonic_decreasing
    assert res.attrs["threshold_how"].startswith("model default")


def test_subject_score_is_its_best_template():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 128)).astype(np.float32)
    g = Gallery("sface", index="exact")
    g.enrol(x, ["a", "a", "a", "b", "b", "c"])
    res = g.search(x[1:2], k=3)
    assert res["subject"].tolist()[0] == "a" and res["template"].iloc[0] == 1
    assert res["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(res["subject"]) == ["a", "b", "c"]


def test_save_load_roundtrip_identical(tmp_path, synthetic):
    gallery, ids, queries, _ = synthetic
    for model in ("sface", "dlib_resnet"):
        g = Gallery(model, index="exact")
        g.enrol(gallery, [f"id{i}" for i in ids])
        path = g.save(tmp_path / f"{model}.npz")
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as data:
            assert all(data[n].dtype != object for n in data.files)
            assert "embeddings.npy" in zf.namelist()
        g2 = Gallery.load(path)
        assert g2.model_name == model and len(g2) == len(g)
        np.testing.assert_array_equal(g2.embeddings_, g.embeddings_)
        pd.testing.assert_frame_equal(g.search(queries, k=5), g2.search(queries, k=5))


def test_threshold_flags_and_errors(synthetic):
    gallery, ids, queries, _ = synthetic
    g = Gallery("sface", index="exact")
    with pytest.raises(ValueError, match="empty"):
        g.search(queries, k=1)
    g.enrol(gallery, [f"id{i}" for i in ids])
    res = g.search(queries, k=3, threshold=0.9)
    assert (res["above_threshold"] == (res["score"] >= 0.9)).all()
    assert "given by the user" in res.attrs["threshold_how"]
    with pytest.raises(ValueError, match="not both"):
        g.search(queries, threshold=0.5, target_fmr=1e-3, reference=np.zeros(5000))
    with pytest.raises(ValueError, match="k must be"):
        g.search(queries, k=0)
    with pytest.raises(ValueError, match="subject ids"):
        g.enrol(gallery[:3], ["a", "b"])
    with pytest.raises(ValueError, match="index must be"):
        Gallery("sface", index="lsh")


def test_images_enrol_and_failures_are_records(astronaut):
    from skimage import data

    other = cv2.resize((data.lfw_subset()[2] * 255).astype(np.uint8), (200, 200))
    g = Gallery("sface")
    report = g.enrol([astronaut, other, np.zeros((80, 80, 3), np.uint8)],
                     ["astro", "lfw2", "blank"])
    assert report["enrolled"].tolist() == [True, True, False]
    assert "no face" in report["reason"].iloc[2]
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    res = g.search([flipped, np.zeros((80, 80, 3), np.uint8)], k=2, probe_ids=["p1", "p2"])
    p1 = res[res["probe"] == "p1"]
    assert p1["subject"].tolist() == ["astro", "lfw2"] and p1["above_threshold"].tolist() == [
        True, False]
    p2 = res[res["probe"] == "p2"]
    assert len(p2) == 1 and np.isnan(p2["score"].iloc[0]) and "no face" in p2["error"].iloc[0]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_search_matches_brute_force(metric):
    rng = np.random.default_rng(5)
    g = rng.normal(size=(3_001, 128)).astype(np.float32)
    q = rng.normal(size=(7, 128)).astype(np.float32)
    s, i = exact_search(g, q, 10, metric=metric, query_batch=3, block_bytes=4 * 3 * 500)
    if metric == "cosine":
        gn, qn = g / np.linalg.norm(g, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1,
                                                                                  keepdims=True)
        full = qn @ gn.T
    else:
        full = 1 - np.linalg.norm(q[:, None].astype(np.float64) - g[None], axis=2)
    want = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(i, want)
    np.testing.assert_allclose(s, np.take_along_axis(full, want, 1), rtol=1e-4, atol=1e-4)


def test_ivf_recall_at_10_on_20k_synthetic():
    """Approximate search finds >= 95% of the exact top-10 (20k seeded vectors)."""
    gallery, _, queries, _ = synthetic_embeddings(20_000, 200, seed=0)
    _, exact = exact_search(gallery, queries, 10)
    index = FaissIndex(128, kind="ivf", nprobe=32, seed=0).build(gallery)
    _, approx = index.search(queries, 10)
    assert recall_at_k(approx, exact) >= 0.95


def test_gallery_auto_index_and_ivf_search(synthetic):
    gallery, ids, queries, qids = synthetic
    g = Gallery("sface", index="auto")
    g.enrol(gallery, [f"id{i}" for i in ids])
    assert g.index_kind == "exact"  # below APPROX_FROM templates
    gi = Gallery("sface", index="ivf", index_options={"nprobe": 16})
    gi.enrol(gallery, [f"id{i}" for i in ids])
    top1 = gi.search(queries, k=1)
    assert (top1["subject"].to_numpy() == np.array([f"id{i}" for i in qids])).mean() >= 0.95
    assert top1.attrs["index"] == "ivf"


def test_hnsw_index_small():
    gallery, _, queries, _ = synthetic_embeddings(3_000, 50, seed=1)
    _, exact = exact_search(gallery, queries, 10)
    index = FaissIndex(128, kind="hnsw", hnsw_m=16, ef_construction=40, ef_search=64)
    _, approx = index.build(gallery).search(queries, 10)
    assert recall_at_k(approx, exact) >= 0.9
    ed = FaissIndex(128, metric="euclidean", kind="ivf", nprobe=8).build(gallery)
    s, i = ed.search(queries[:3], 1)
    es, ei = exact_search(gallery, queries[:3], 1, metric="euclidean")
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, atol=1e-4)


@pytest.mark.parametrize("kind", ["ivfpq", "ivf", "hnsw"])
def test_saved_index_is_loaded_without_a_rebuild(tmp_path, synthetic, monkeypatch, kind):
    gallery, ids, queries, _ = synthetic
    g = Gallery("sface", index=kind)
    g.enrol(gallery, [f"id{i}" for i in ids])
    before = g.search(queries, k=5)
    path = g.save(tmp_path / "g.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["ann_index"].dtype == np.uint8 and int(data["format_version"]) == 2
    built = []
    monkeypatch.setattr(FaissIndex, "build", lambda self, v: built.append(1) or self)
    g2 = Gallery.load(path, index=kind)
    assert g2._ann is not None and g2._ann.kind == kind and g2._ann.ntotal_ == len(g)
    pd.testing.assert_frame_equal(g2.search(queries, k=5), before)
    assert built == []  # searched with the stored index
    monkeypatch.undo()
    # another index kind, or templates that do not match the stored index: rebuilt
    assert Gallery.load(path, index="exact")._ann is None
    with np.load(path, allow_pickle=False) as data:
        arrays = {n: data[n] for n in data.files}
    arrays["embeddings"] = arrays["embeddings"][::-1].copy()
    np.savez(tmp_path / "tampered.npz", **arrays)
    assert Gallery.load(tmp_path / "tampered.npz", index=kind)._ann is None


def test_gallery_format_1_files_still_load(tmp_path, synthetic):
    gallery, ids, queries, _ = synthetic
    g = Gallery("sface", index="exact")
    g.enrol(gallery[:100], [f"id{i}" for i in ids[:100]])
    np.savez(tmp_path / "v1.npz", embeddings=g.embeddings_, subjects=g.subjects_,
             sources=g.sources_, model=np.array("sface"), metric=np.array("cosine"),
             format_version=np.array(1))
    g1 = Gallery.load(tmp_path / "v1.npz", index="exact")
    pd.testing.assert_frame_equal(g1.search(queries, k=3), g.search(queries, k=3))
