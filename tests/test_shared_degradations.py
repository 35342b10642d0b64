"""Degraded images computed once for every detector (issue 16, notebook 01 cold path):
each detector receives the same degraded arrays the plain recipe gives, the cache keys do
not change (a warm cache stays valid), and the study's tables do not depend on the block
of images degraded at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facelab.core.io import load_image
from facelab.extraction.cache import ColumnarCache
from facelab.models.registry import get_model
from facelab.perturb.perturbations import PerturbedImage
from facelab.perturb.redetect import SharedDegradations, clean_detections, redetect
from facelab.studies import detection as D

STEPS = [("blur", 0.02), ("downscale", 0.25), ("jpeg", 10), ("brightness", 0.25)]
DETECTORS = ("yunet", "haar", "blazeface")


def _fairface(data_root, n: int) -> pd.DataFrame:
    paths = sorted((data_root / "fairface" / "val").glob("*.jpg"))[:n]
    if len(paths) < n:
        pytest.fail(f"FairFace val images missing under {data_root}")
    return pd.DataFrame({"path": [str(p) for p in paths], "race": ["x"] * n,
                         "gender": ["y"] * n})


def _use_cache(monkeypatch, path) -> ColumnarCache:
    monkeypatch.setenv("FACELAB_CACHE", str(path))
    return ColumnarCache(path / "features")


def test_every_detector_receives_the_recipes_arrays_computed_once(data_root, tmp_path,
                                                                  monkeypatch):
    manifest = _fairface(data_root, 4)
    received: dict[str, list[np.ndarray]] = {d: [] for d in DETECTORS}
    for det in DETECTORS:
        model = get_model(det, "detector")
        orig = model.detect_batch

        def capture(images, _orig=orig, _det=det):
            received[_det].extend(np.array(im, copy=True) for im in images)
            return _orig(images)
        monkeypatch.setattr(model, "detect_batch", capture)

    def run(shared, cache_dir):
        _use_cache(monkeypatch, cache_dir)
        out = {}
        for det in DETECTORS:
            clean = clean_detections(manifest, det)
            received[det].clear()  # keep what the degraded images gave
            out[det] = redetect(manifest, clean, STEPS, det, seed=3, shared=shared)
        return out

    shared = SharedDegradations()
    together = run(shared, tmp_path / "shared")
    n = len(manifest) * len(STEPS)
    assert shared.computed == n and shared.reused == (len(DETECTORS) - 1) * n
    expected = [PerturbedImage(name, param, seed=3 + i)(load_image(p))
                for i, p in enumerate(manifest["path"]) for name, param in STEPS]
    for det in DETECTORS:
        assert len(received[det]) == n
        for got, want in zip(received[det], expected, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)

    # the per-detector path (each detector degrades its own copies): same tables, same keys
    alone = run(None, tmp_path / "alone")
    for det in DETECTORS:
        pd.testing.assert_frame_equal(together[det], alone[det], check_exact=True)
    keys_shared = ColumnarCache(tmp_path / "shared" / "features").keys()
    keys_alone = ColumnarCache(tmp_path / "alone" / "features").keys()
    assert keys_shared == keys_alone and len(keys_shared) >= len(DETECTORS) * n

    # warm: every detection read from the cache, nothing degraded
    warm_shared = SharedDegradations()
    warm = run(warm_shared, tmp_path / "shared")
    assert warm_shared.computed == 0 and warm_shared.reused == 0
    for det in DETECTORS:
        pd.testing.assert_frame_equal(warm[det], together[det], check_exact=True)


def test_degradation_records_do_not_depend_on_the_block(data_root, tmp_path, monkeypatch):
    manifest = _fairface(data_root, 5)
    severities = {"blur": [0.02], "downscale": [0.25], "jpeg": [10]}
    tables = []
    for block in (2, 100):  # image blocks of 2 (three blocks) vs one block
        _use_cache(monkeypatch, tmp_path / f"block{block}")
        tables.append(D.degradation_records(manifest, ["yunet", "haar"], severities=severities,
                                            slow_limit=3, slow=["haar"], seed=1, block=block))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert tables[0].attrs == tables[1].attrs
    # haar (slow here) ran on the first 3 images only, yunet on all 5, every level
    counts = tables[0][tables[0]["perturbation"] == "blur"].groupby("detector").size()
    assert counts.to_dict() == {"haar": 3 * 2, "yunet": 5 * 2}
    with pytest.raises(ValueError, match="block"):
        D.degradation_records(manifest, ["yunet"], severities=severities, block=0)
