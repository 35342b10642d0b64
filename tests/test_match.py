"""verify(): decisions, threshold provenance, errors, the CLI, and CelebA quality (slow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

import facelab
from facelab.match.verification import NoFaceError, Verification, resolve_threshold, verify


@pytest.fixture(scope="module")
def other_face() -> np.ndarray:
    from skimage import data

    crop = (data.lfw_subset()[1] * 255).astype(np.uint8)
    return cv2.resize(crop, (200, 200), interpolation=cv2.INTER_CUBIC)


def test_verify_images_same_and_different(astronaut, other_face):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    same = facelab.verify(astronaut, flipped)
    assert isinstance(same, Verification)
    assert same.same and same.decision == "match" and same.score > 0.8
    assert same.threshold == pytest.approx(0.363) and same.threshold_how.startswith("model default")
    assert same.faces[0] is not None and same.faces[0].detector == "yunet"
    diff = verify(astronaut, other_face)
    assert not diff.same and diff.score < diff.threshold
    d = diff.to_dict()
    assert d["decision"] == "non-match" and d["model"] == "sface"


def test_verify_dlib_and_embeddings(astronaut):
    small = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    v = verify(astronaut, small, model="dlib_resnet")
    assert v.same and v.metric == "euclidean" and v.threshold == pytest.approx(0.4)
    emb, _ = facelab.match.verification.embed_largest(astronaut)
    v2 = verify(emb, emb)
    assert v2.score == pytest.approx(1.0, abs=1e-5) and v2.faces == (None, None)
    with pytest.raises(ValueError, match="128-d"):
        verify(emb[:64], emb[:64])


def test_threshold_provenance_and_errors():
    t, how, choice = resolve_threshold("sface", threshold=0.5)
    assert t == 0.5 and "given by the user" in how and choice is None
    rng = np.random.default_rng(0)
    impostors = rng.normal(0.0, 0.1, 10_000)
    t, how, choice = resolve_threshold("sface", target_fmr=1e-3, reference=impostors)
    assert choice.n_impostor == 10_000 and "FMR<=0.001" in how
    assert np.mean(impostors >= t) <= 1e-3
    with pytest.raises(ValueError, match="not both"):
        resolve_threshold("sface", threshold=0.5, target_fmr=1e-3, reference=impostors)
    with pytest.raises(ValueError, match="reference"):
        resolve_threshold("sface", target_fmr=1e-3)
    with pytest.raises(ValueError, match="impostor"):  # 100 scores cannot resolve 1e-3
        resolve_threshold("sface", target_fmr=1e-3, reference=impostors[:100])


def test_verify_target_fmr(astronaut):
    rng = np.random.default_rng(0)
    emb, _ = facelab.match.verification.embed_largest(astronaut)
    v = verify(emb, emb, target_fmr=0.01, reference=rng.normal(0, 0.1, 1000))
    assert v.target_fmr == 0.01 and "FMR<=0.01" in v.threshold_how
    assert v.threshold_choice is not None and v.threshold == v.threshold_choice.threshold


def test_faceless_image_raises_naming_it(tmp_path, astronaut):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 120, 3), 127, np.uint8))
    with pytest.raises(NoFaceError, match="blank.png"):
        verify(astronaut, str(blank))


def test_cli_verify_and_search(tmp_path, astronaut, other_face):
    from typer.testing import CliRunner

    from facelab.cli import app

    (tmp_path / "gal" / "astro").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "gal" / "astro" / "a.png"), astronaut[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "gal" / "lfw1.png"), other_face)  # grey
    probe = tmp_path / "probe.png"
    cv2.imwrite(str(probe), np.ascontiguousarray(astronaut[:, ::-1, ::-1]))
    runner = CliRunner()
    res = runner.invoke(app, ["verify", str(tmp_path / "gal" / "astro" / "a.png"), str(probe),
                              "--threshold", "0.5"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("match:") and "given by the user" in res.output
    res = runner.invoke(app, ["search", "--gallery", str(tmp_path / "gal"), str(probe),
                              "--k", "2", "--csv"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if ln.endswith(",") or ln.count(",") >= 6]
    assert lines[0].startswith("probe,candidate_rank,subject")
    assert lines[1].split(",")[1:3] == ["1", "astro"]
    assert lines[2].split(",")[1:3] == ["2", "lfw1"]


def _eval_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_verification.py"
    spec = importlib.util.spec_from_file_location("eval_verification", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_celeba_sface_auc_subset(data_root):
    """SFace on a seeded subset of 20 CelebA identities: ROC AUC >= 0.9."""
    ev = _eval_module()
    ids = ev.read_celeba(data_root, n_identities=20, seed=0)
    images, faces, fails = ev.detect_all(ids["path"].tolist())
    genuine, impostor = ev.celeba_pairs(ids["identity"].to_numpy(), 20_000, seed=0)
    emb = ev.embed_detected("sface", images, faces)
    q = ev.celeba_quality("sface", emb, genuine, impostor)
    n_noface = int((fails["reason"] != "").sum())
    assert n_noface < 0.05 * len(ids)  # failures to acquire are counted, and few
    assert q["n_genuine"] + q["genuine_not_comparable"] == len(genuine)
    assert q["auc"] >= 0.9, q
