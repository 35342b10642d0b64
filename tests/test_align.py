"""Five-point alignment: crops put the landmarks where the template says."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from facelab.core.types import Face
from facelab.face.align import (
    ARCFACE_TEMPLATE_112,
    align_face,
    align_faces,
    box_crop,
    dlib_chip,
    dlib_chips,
    dlib_chips_sizes,
    template_points,
)
from facelab.models.registry import create_model


@pytest.fixture(scope="module")
def yunet():
    return create_model("yunet")


@pytest.fixture(scope="module")
def mtcnn():
    return create_model("mtcnn")


@pytest.fixture(scope="module")
def face(yunet, astronaut):
    return yunet.detect(astronaut)[0]


def test_template_scales_and_margin():
    np.testing.assert_allclose(template_points(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(template_points(224), ARCFACE_TEMPLATE_112 * 2)
    pts = template_points(112, margin=0.5)
    spread = np.linalg.norm(pts - 56, axis=1)
    np.testing.assert_allclose(spread, np.linalg.norm(ARCFACE_TEMPLATE_112 - 56, axis=1) / 1.5)


def test_landmarks_land_on_template(face, astronaut):
    """The warp used by align_face maps the detected landmarks onto the template (a
    similarity cannot fit five points of a smiling face exactly: residual under 5% of the
    crop, centroid exact)."""
    for size, margin in [(112, 0.0), (64, 0.2), (224, 0.5)]:
        dst = template_points(size, margin)
        tform = SimilarityTransform.from_estimate(face.landmarks.astype(np.float64), dst)
        moved = tform(face.landmarks.astype(np.float64))
        assert np.abs(moved - dst).max() < 0.05 * size
        np.testing.assert_allclose(moved.mean(axis=0), dst.mean(axis=0), atol=1e-6 * size)
        # the eyes are (nearly) level in the crop
        assert abs(moved[0, 1] - moved[1, 1]) < 0.04 * size


def test_redetected_eyes_at_template(mtcnn, face, astronaut):
    """Detect again inside the aligned crop: the eyes are where the template puts them."""
    size, margin = 224, 0.6
    crop = align_face(astronaut, face, size, margin=margin)
    found = mtcnn.detect(crop)
    assert found, "no face re-detected in the aligned crop"
    eyes = found[0].landmarks[:2]
    target = template_points(size, margin)[:2]
    assert np.abs(eyes - target).max() < 0.04 * size, (eyes, target)


def test_alignment_undoes_rotation(mtcnn, astronaut):
    """Rotate the photo by 25 degrees: the aligned crop still has level eyes."""
    import cv2

    m = cv2.getRotationMatrix2D((224, 120), 25, 1.0)
    rotated = cv2.warpAffine(astronaut, m, astronaut.shape[1::-1])
    face = mtcnn.detect(rotated)[0]
    eye_vec = face.landmarks[1] - face.landmarks[0]
    assert abs(np.degrees(np.arctan2(eye_vec[1], eye_vec[0]))) > 15
    crop = align_face(rotated, face, 224, margin=0.6)
    again = mtcnn.detect(crop)[0].landmarks
    vec = again[1] - again[0]
    assert abs(np.degrees(np.arctan2(vec[1], vec[0]))) < 5


@pytest.mark.parametrize("size,grey,shape", [
    (112, False, (112, 112, 3)), (64, True, (64, 64)), (150, False, (150, 150, 3)),
])
def test_shapes(face, astronaut, size, grey, shape):
    crop = align_face(astronaut, face, size, grey=grey)
    assert crop.shape == shape and crop.dtype == np.uint8
    stack = align_faces(astronaut, [face, face], size, grey=grey)
    assert stack.shape == (2, *shape)
    np.testing.assert_array_equal(stack[0], crop)
    assert align_faces(astronaut, [], size, grey=grey).shape == (0, *shape)


def test_grey_matches_rgb_converted(face, astronaut):
    import cv2

    rgb = align_face(astronaut, face, 64)
    np.testing.assert_array_equal(align_face(astronaut, face, 64, grey=True),
                                  cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_box_fallback_without_landmarks(face, astronaut):
    boxed = Face(box=face.box, score=face.score, landmarks=None)
    crop = align_face(astronaut, boxed, 112)
    np.testing.assert_array_equal(crop, box_crop(astronaut, boxed, 112))


def test_box_fallback_for_degenerate_landmarks(face, astronaut):
    bad = Face(box=face.box, score=face.score, landmarks=np.full((5, 2), 200.0))
    np.testing.assert_array_equal(align_face(astronaut, bad, 112),
                                  box_crop(astronaut, bad, 112))


def test_box_crop_is_centred_square():
    """A white square on black, boxed exactly: the crop is white inside, black outside."""
    img = np.zeros((200, 300, 3), np.uint8)
    img[50:110, 100:160] = 255
    face = Face(box=[100, 50, 160, 110], score=1.0)
    crop = box_crop(img, face, 60)
    assert crop[5:55, 5:55].min() == 255
    wide = box_crop(img, face, 120, margin=1.0)  # twice the side: the square fills the middle
    assert wide[35:85, 35:85].min() == 255
    assert wide[:20].max() == 0 and wide[:, :20].max() == 0


def test_dlib_chip(mtcnn, face, astronaut):
    chip = dlib_chip(astronaut, face)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert dlib_chips(astronaut, [face, face]).shape == (2, 150, 150, 3)
    assert dlib_chips(astronaut, []).shape == (0, 150, 150, 3)
    # several sizes from one shape prediction: the same pixels as one size at a time
    small, large = dlib_chips_sizes(astronaut, [face, face], (32, 64), 0.4)
    np.testing.assert_array_equal(small, dlib_chips(astronaut, [face, face], 32, 0.4))
    np.testing.assert_array_equal(large, dlib_chips(astronaut, [face, face], 64, 0.4))
    assert dlib_chips_sizes(astronaut, [], (32, 64))[1].shape == (0, 64, 64, 3)
    found = mtcnn.detect(np.pad(chip, ((50, 50), (50, 50), (0, 0)), mode="edge"))
    assert found
    eye_vec = found[0].landmarks[1] - found[0].landmarks[0]
    assert abs(np.degrees(np.arctan2(eye_vec[1], eye_vec[0]))) < 5
