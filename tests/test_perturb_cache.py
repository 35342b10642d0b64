"""Perturbed images go through the cached extraction pipeline (issue 11 / 16): a warm
rerun of the robustness records runs no model, a changed severity is recomputed, the cache
token of a perturbation covers everything its pixels depend on, and the one IoU is
torchvision's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from facelab.models.registry import get_model
from facelab.perturb import perturbations as P
from facelab.perturb.perturbations import PerturbedImage, perturb
from facelab.perturb.redetect import IOU_SAME_FACE, box_iou, paired_box_iou
from facelab.perturb.robustness import robustness_records


@pytest.fixture
def model_calls(monkeypatch):
    """Counts calls of the shared detector and expression model (the instances the
    pipeline takes from :func:`facelab.models.registry.get_model`)."""
    calls = {"detect": 0, "expression": 0}
    det, expr = get_model("yunet", "detector"), get_model("fer-mini-xception", "expression")

    def counting(obj, method, key):
        orig = getattr(obj, method)

        def wrapper(*args, **kwargs):
            calls[key] += 1
            return orig(*args, **kwargs)
        monkeypatch.setattr(obj, method, wrapper)

    counting(det, "detect_batch", "detect")
    counting(det, "detect", "detect")
    counting(expr, "predict_crops", "expression")
    return calls


def _run(face_files, levels):
    return robustness_records(face_files, ["none", "blur", "occlude_eyes"],
                              tasks=("detection", "expression"), levels=levels, seed=3,
                              progress=False)


def test_warm_rerun_reads_the_cache_and_a_new_severity_is_computed(face_files, tmp_cache,
                                                                    model_calls):
    cold = _run(face_files, [1])
    assert model_calls["detect"] > 0 and model_calls["expression"] > 0
    assert (cold["task"] == "acquire").sum() == 1  # the grey image: no clean face
    done = cold[cold["task"] != "acquire"]
    assert len(done) == 2 * 3 and done["changed"].notna().all()
    assert not done.loc[done["perturbation"] == "none", "changed"].any()  # the control

    model_calls.update(detect=0, expression=0)
    warm = _run(face_files, [1])
    assert model_calls == {"detect": 0, "expression": 0}  # every output from the cache
    pd.testing.assert_frame_equal(warm, cold)

    harder = _run(face_files, [3])  # a changed severity never reuses the level-1 entries
    assert model_calls["detect"] > 0 and model_calls["expression"] > 0
    blur = harder[(harder["perturbation"] == "blur")]
    assert set(blur["param"]) == {P.PERTURBATIONS["blur"].params[2]}


def test_perturbed_image_is_perturb_and_its_token_covers_what_the_pixels_depend_on(
        astronaut, monkeypatch):
    lm = get_model("yunet", "detector").detect(astronaut)[0].landmarks
    for name in ("noise", "occlude_mouth", "downscale"):
        recipe = PerturbedImage(name, P.PERTURBATIONS[name].params[1], seed=5, landmarks=lm)
        assert np.array_equal(recipe(astronaut),
                              perturb(astronaut, name, 2, landmarks=lm, seed=5))
    base = PerturbedImage("noise", 16.0, seed=5, landmarks=lm)
    others = [PerturbedImage("noise", 32.0, seed=5, landmarks=lm),
              PerturbedImage("noise", 16.0, seed=6, landmarks=lm),
              PerturbedImage("noise", 16.0, seed=5, landmarks=lm + 1),
              PerturbedImage("blur", 16.0, seed=5, landmarks=lm)]
    tokens = {base.cache_token, *(o.cache_token for o in others)}
    assert len(tokens) == 5
    assert PerturbedImage("noise", 16.0, seed=5, landmarks=lm).cache_token == base.cache_token
    # a changed implementation changes the token
    monkeypatch.setattr(P, "PERTURBATION_CODE_VERSION", P.PERTURBATION_CODE_VERSION + 1)
    monkeypatch.setattr(P, "_CODE_DIGESTS", {})
    assert PerturbedImage("noise", 16.0, seed=5, landmarks=lm).cache_token != base.cache_token


def test_box_iou_is_torchvision_on_real_detector_boxes(astronaut):
    a = np.stack([f.box for f in get_model("yunet", "detector").detect(astronaut)])
    b = np.stack([f.box for f in get_model("haar", "detector").detect(astronaut)])
    b = np.concatenate([b, a + 7.5, a + 40.0, a * 0.5])  # shifted / shrunk: partial overlaps
    ours = box_iou(a, b)
    theirs = tv_box_iou(torch.from_numpy(a.astype(np.float64)),
                        torch.from_numpy(b.astype(np.float64))).numpy()
    assert ours.shape == (len(a), len(b))
    np.testing.assert_array_equal(ours, theirs)
    assert ((ours > 0) & (ours < IOU_SAME_FACE)).any() and (ours >= IOU_SAME_FACE).any()
    assert ours.max() <= 1
    assert box_iou(a[0], b[-1]) == pytest.approx(theirs[0, -1], abs=0)
    assert box_iou(a[0], a[0]) == 1.0 and np.isnan(box_iou(None, a[0]))


def test_paired_box_iou_is_the_diagonal_of_box_iou_bit_for_bit(astronaut):
    """The agreement table's row-wise IoU equals torchvision's matrix IoU exactly."""
    a = np.stack([f.box for f in get_model("yunet", "detector").detect(astronaut)])
    b = np.stack([f.box for f in get_model("haar", "detector").detect(astronaut)])
    rows = np.concatenate([a, b, a + 7.5, a * 0.5, a[:, [2, 3, 0, 1]]])  # incl. empty boxes
    other = np.concatenate([a + 3.25, b * 1.1, a, a, a])
    ours = paired_box_iou(rows, other)
    theirs = np.diag(box_iou(rows, other))
    np.testing.assert_array_equal(ours, theirs)
    assert ((ours > 0) & (ours < 1)).any() and (ours == 0).any()
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        paired_box_iou(rows, other[:-1])
