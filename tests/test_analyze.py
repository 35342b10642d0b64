"""facelab.analyze, pose, quality, drawing and the `facelab analyze` command."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import typer
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from facelab.core.io import ImageError
from facelab.core.types import APPEARANCE_NOTE, LANDMARK_NAMES, Face
from facelab.extraction.analysis import SCHEMA_VERSION, FaceAnalysis, analyze
from facelab.face.align import ARCFACE_TEMPLATE_112
from facelab.face.pose import estimate_pose, face_pose
from facelab.face.quality import face_quality
from facelab.models.registry import create_model
from facelab.viz.draw import draw_analyses, label_text

KEYS = ["face_index", "box", "confidence", "landmarks", "pose", "quality", "emotions",
        "gender", "age", "models", "note", "schema_version"]
SEVEN = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


@pytest.fixture(scope="module")
def records(astronaut):
    return analyze(astronaut, expression=None, attributes=None)


# ---- analyze, detection only ----------------------------------------------------------

def test_one_record_for_the_astronaut(records):
    assert len(records) == 1
    r = records[0]
    assert isinstance(r, FaceAnalysis)
    assert 170 < (r.box[0] + r.box[2]) / 2 < 280 and 55 < (r.box[1] + r.box[3]) / 2 < 185
    assert 0.5 < r.confidence <= 1.0
    assert r.landmarks.shape == (5, 2)
    assert r.emotions is None and r.gender is None and r.age is None
    assert r.note == APPEARANCE_NOTE
    assert abs(r.pose["yaw"]) < 15 and abs(r.pose["roll"]) < 10 and abs(r.pose["pitch"]) < 25
    assert 0 <= r.quality["brightness"] <= 100 and 0 <= r.quality["sharpness"] <= 100


def test_schema_is_stable_and_json_round_trips(records):
    d = records[0].to_dict()
    assert list(d) == KEYS
    assert d["schema_version"] == SCHEMA_VERSION
    assert list(d["landmarks"]) == list(LANDMARK_NAMES)
    assert set(d["pose"]) == {"yaw", "pitch", "roll"}
    assert set(d["quality"]) == {"brightness", "sharpness"}
    assert d["models"] == {"detector": "yunet", "expression": None, "attributes": None}
    assert json.loads(records[0].to_json()) == d


def test_accepts_paths_and_reports_bad_input(tmp_path, astronaut):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    assert len(analyze(path, expression=None, attributes=None)) == 1
    with pytest.raises(ImageError, match="file not found"):
        analyze(tmp_path / "missing.jpg", expression=None, attributes=None)


def test_no_face_and_min_score(astronaut):
    blank = np.full((200, 200, 3), 90, np.uint8)
    assert analyze(blank, expression=None, attributes=None) == []
    assert analyze(astronaut, expression=None, attributes=None, min_score=1.01) == []


@pytest.mark.parametrize("detector", ["mtcnn", "haar", "dlib-hog", "blazeface"])
def test_other_detectors(astronaut, detector):
    recs = analyze(astronaut, detector=detector, expression=None, attributes=None,
                   min_score=0.6)
    assert recs and recs[0].models["detector"] == detector
    has_landmarks = recs[0].landmarks is not None
    assert (recs[0].pose is not None) == has_landmarks
    assert has_landmarks == (detector in ("mtcnn", "blazeface"))


def test_accepts_a_model_instance(astronaut):
    det = create_model("mtcnn", score_threshold=0.95)
    recs = analyze(astronaut, detector=det, expression=None, attributes=None)
    assert recs[0].models["detector"] == "mtcnn"


# ---- the full path (expression + attribute models) -------------------------------------

def test_full_analysis(astronaut):
    """Needs the registered 'fer-mini-xception' and 'age-gender' models."""
    recs = analyze(astronaut)
    assert len(recs) == 1
    d = recs[0].to_dict()
    emotions = d["emotions"]
    assert {e["type"] for e in emotions} == SEVEN
    conf = [e["confidence"] for e in emotions]
    assert conf == sorted(conf, reverse=True) and abs(sum(conf) - 1) < 0.01
    assert d["gender"]["value"] in ("female", "male")
    assert 0.5 <= d["gender"]["confidence"] <= 1
    assert 0 <= d["age"]["low"] <= d["age"]["estimate"] <= d["age"]["high"] <= 120
    assert d["models"] == {"detector": "yunet", "expression": "fer-mini-xception",
                           "attributes": "age-gender"}
    assert d["note"] == APPEARANCE_NOTE
    assert json.loads(recs[0].to_json()) == d


def test_expression_only(astronaut):
    recs = analyze(astronaut, attributes=None)
    assert {e["type"] for e in recs[0].emotions} == SEVEN
    assert recs[0].top_emotion == recs[0].emotions[0]["type"]


# ---- pose -----------------------------------------------------------------------------

def _generic_face(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The pose model's generic 3D face, rotated and projected (weak perspective)."""
    pts3 = np.column_stack([ARCFACE_TEMPLATE_112 - ARCFACE_TEMPLATE_112[2],
                            [15.3, 15.3, 0.0, 14.2, 14.2]])
    rot = Rotation.from_euler("ZYX", [roll, -yaw, -pitch], degrees=True).as_matrix()
    p = pts3 @ rot.T + [0, 0, 5000]
    return p[:, :2] / p[:, 2:] * 5000 + 300


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (0, -15, 0), (0, 0, 12),
                                    (-30, 10, -8)])
def test_pose_recovers_generic_face(angles):
    pose = estimate_pose(_generic_face(*angles))
    np.testing.assert_allclose([pose.yaw, pose.pitch, pose.roll], angles, atol=1.5)


def test_pose_rotation_and_mirror_on_real_landmarks(records):
    lm = records[0].landmarks.astype(np.float64)
    base = estimate_pose(lm)
    theta = np.radians(20)  # clockwise in image coordinates (y down)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    turned = estimate_pose((lm - lm.mean(0)) @ rot.T + lm.mean(0))
    assert turned.roll - base.roll == pytest.approx(20, abs=1e-6)
    assert turned.yaw == pytest.approx(base.yaw, abs=1e-6)
    mirrored = lm.copy()
    mirrored[:, 0] = 512 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # left/right swap names in a mirror
    m = estimate_pose(mirrored)
    assert m.yaw == pytest.approx(-base.yaw, abs=1e-6)
    assert m.roll == pytest.approx(-base.roll, abs=1e-6)
    assert m.pitch == pytest.approx(base.pitch, abs=1e-6)


def test_pose_tracks_a_rotated_photo(astronaut):
    """MTCNN's landmarks on the astronaut rotated 20 degrees clockwise: roll follows."""
    det = create_model("mtcnn")
    base = face_pose(det.detect(astronaut)[0])
    m = cv2.getRotationMatrix2D((224, 120), -20, 1.0)  # negative = clockwise
    turned = face_pose(det.detect(cv2.warpAffine(astronaut, m, (512, 512)))[0])
    assert turned.roll - base.roll == pytest.approx(20, abs=4)


def test_pose_degenerate():
    assert estimate_pose(np.zeros((5, 2))) is None
    assert face_pose(Face(box=[0, 0, 10, 10], score=1.0)) is None


# ---- quality --------------------------------------------------------------------------

def test_quality_orders_blur_and_light(records, astronaut):
    face = Face(box=records[0].box, score=1.0)
    q = face_quality(astronaut, face)
    blurred = face_quality(cv2.GaussianBlur(astronaut, (0, 0), 3), face)
    dark = face_quality((astronaut * 0.4).astype(np.uint8), face)
    assert blurred.sharpness < q.sharpness - 20
    assert dark.brightness == pytest.approx(q.brightness * 0.4, abs=1.0)
    white = face_quality(np.full((100, 100, 3), 255, np.uint8),
                         Face(box=[10, 10, 90, 90], score=1))
    assert white.brightness == pytest.approx(100) and white.sharpness == pytest.approx(0)


# ---- drawing and the command ----------------------------------------------------------

def test_draw(records, astronaut):
    out = draw_analyses(astronaut, records)
    assert out.shape == astronaut.shape and not np.shares_memory(out, astronaut)
    x1, y1, x2, y2 = (int(round(v)) for v in records[0].box)
    assert (out[(y1 + y2) // 2, x1] == (0, 200, 0)).all()
    changed = (out != astronaut).any(axis=2)
    assert changed[y1 - 25:y1, x1:x2].any()  # the caption above the box
    assert label_text(records[0]).startswith("#0 ")


@pytest.fixture(scope="module")
def cli():
    from facelab.cli import analyze as cmd

    app = typer.Typer()
    cmd.register(app)

    @app.callback()
    def _root() -> None:
        """test root"""

    return app


def test_cli_json_and_annotated_image(cli, tmp_path, astronaut):
    src = tmp_path / "astronaut.png"
    cv2.imwrite(str(src), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out" / "annotated.png"
    res = CliRunner().invoke(cli, ["analyze", str(src), "--json", "--out", str(out),
                                   "--expression", "none", "--attributes", "none"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data) == 1 and list(data[0]) == KEYS
    drawn = cv2.imread(str(out))
    assert drawn.shape == astronaut.shape


def test_cli_text_and_errors(cli, tmp_path, astronaut):
    src = tmp_path / "astronaut.png"
    cv2.imwrite(str(src), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(cli, ["analyze", str(src), "--detector", "mtcnn",
                                   "--expression", "none", "--attributes", "none"])
    assert res.exit_code == 0 and "1 face(s)" in res.stdout and "pose" in res.stdout
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nope.jpg")])
    assert res.exit_code == 1 and "file not found" in res.output
    res = CliRunner().invoke(cli, ["analyze", str(src), "--detector", "nope"])
    assert res.exit_code == 1 and "yunet" in res.output


def test_public_api_callable_after_submodule_import(astronaut):
    """``facelab.analyze`` stays the function after the submodules are imported (the
    module is ``facelab.extraction.analysis``, so importing it cannot shadow the function)."""
    import facelab
    import facelab.viz.draw  # noqa: F401  (imports facelab.extraction.analysis)

    recs = facelab.analyze(astronaut, expression=None, attributes=None)
    assert len(recs) == 1 and isinstance(recs[0], facelab.FaceAnalysis)


def test_registered_in_the_facelab_command(tmp_path, astronaut):
    from facelab.cli import app

    src = tmp_path / "astronaut.png"
    cv2.imwrite(str(src), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(app, ["analyze", str(src), "--json", "--expression", "none",
                                   "--attributes", "none"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["models"]["detector"] == "yunet"
