"""The verbs of facelab.api (``facelab.detect``, ``represent``, ``verify``, ``analyze``,
``search``/``find``, ``extract``, ``load_dataset``, ``audit``) on real images and data."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

import facelab
from facelab.core.types import Face


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def lfw(data_root):
    frame = facelab.load_dataset("lfw", data_root)
    counts = frame.subject.value_counts()
    people = [s for s in counts.index if counts[s] >= 2][:3]
    return frame, people


def _photos(frame, subject, n=2):
    return frame[frame.subject == subject].path.tolist()[:n]


def test_import_is_lazy():
    code = ("import sys, facelab; heavy = [m for m in ('numpy', 'pandas', 'cv2', "
            "'onnxruntime', 'facelab.api') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_verbs_are_the_facade_and_documented():
    for verb in ("detect", "represent", "verify", "analyze", "search", "find", "extract",
                 "load_dataset", "audit"):
        fn = getattr(facelab, verb)
        assert fn.__module__ == "facelab.api", verb
        doc = fn.__doc__ or ""
        for section in ("Parameters\n", "Returns\n", "Raises\n", "Examples\n"):
            assert section in doc, (verb, section)
    assert facelab.find is facelab.search
    importlib.import_module("facelab.extraction.cache")  # the floor facelab/extraction/

    assert callable(facelab.extract) and facelab.extract.__module__ == "facelab.api"


def test_detect_finds_the_astronauts_one_face(astronaut):
    faces = facelab.detect(astronaut)
    assert len(faces) == 1 and isinstance(faces[0], Face)
    x1, y1, x2, y2 = faces[0].box
    # Eileen Collins' face is in the upper middle of the 512 x 512 photo
    assert 120 < (x1 + x2) / 2 < 300 and 40 < (y1 + y2) / 2 < 200
    assert faces[0].landmarks.shape == (5, 2) and faces[0].detector == "yunet"
    assert facelab.detect(astronaut, min_score=1.01) == []
    assert facelab.detect(np.full((200, 200, 3), 127, np.uint8)) == []
    with pytest.raises(facelab.ImageError):
        facelab.detect("/no/such/photo.jpg")


def test_represent_same_face_twice_and_given_faces(astronaut):
    rep = facelab.represent(astronaut)
    assert isinstance(rep, facelab.Representation)
    assert rep.embeddings.shape == (1, 128) and rep.embeddings.dtype == np.float32
    assert rep.model == "sface" and rep.metric == "cosine"
    assert rep.threshold == pytest.approx(0.363)
    again = facelab.represent(astronaut.copy(), rep.faces)
    assert _cos(rep.embeddings[0], again.embeddings[0]) == pytest.approx(1.0, abs=1e-6)
    none = facelab.represent(np.full((200, 200, 3), 127, np.uint8))
    assert none.embeddings.shape == (0, 128) and none.faces == []
    dlib = facelab.represent(astronaut, rep.faces, model="dlib_resnet")
    assert dlib.embeddings.shape == (1, 128) and dlib.metric == "euclidean"


def test_represent_two_people_below_threshold_one_person_above(lfw):
    frame, people = lfw
    a1, a2 = _photos(frame, people[0])
    (b1,) = _photos(frame, people[1], 1)
    e = {p: facelab.represent(p).embeddings for p in (a1, a2, b1)}
    assert all(len(v) >= 1 for v in e.values())
    # LFW photos are centred on their subject: the first (highest score) face is theirs
    mated, nonmated = _cos(e[a1][0], e[a2][0]), _cos(e[a1][0], e[b1][0])
    assert nonmated < 0.363 <= mated
    # embeddings from represent go straight into verify
    v = facelab.verify(e[a1][0], e[b1][0])
    assert not v.same and v.score == pytest.approx(nonmated, abs=1e-5)


def test_verify_and_analyze_delegate(astronaut):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    assert facelab.verify(astronaut, flipped).same
    recs = facelab.analyze(astronaut, expression=None)
    assert len(recs) == 1 and recs[0].gender["value"] in ("female", "male")
    assert recs[0].emotions is None


def test_search_finds_the_mate_in_a_gallery_and_on_disk(lfw, tmp_path):
    frame, people = lfw
    enrol = [_photos(frame, s)[0] for s in people]
    probe = _photos(frame, people[1])[1]
    g = facelab.Gallery()
    g.enrol(enrol, people)
    hits = facelab.search([probe], g, k=2)
    assert hits.iloc[0].subject == people[1] and bool(hits.iloc[0].above_threshold)
    assert len(hits) == 2 and "threshold_how" in hits.attrs
    path = g.save(tmp_path / "g.npz")
    again = facelab.find([probe], path, k=1)
    assert again.iloc[0].subject == people[1]
    assert again.iloc[0].score == pytest.approx(hits.iloc[0].score, abs=1e-5)


def test_extract_and_load_dataset(lfw, tmp_path):
    frame, people = lfw
    subset = frame[frame.subject.isin(people[:2])].head(4)
    feats = facelab.extract(subset, cache=tmp_path / "cache", progress=False)
    emb = facelab.stack_embeddings(feats)
    assert emb.shape == (4, 128) and emb.dtype == np.float32
    rep = facelab.represent(subset.path.iloc[0]).embeddings[0]
    assert _cos(emb[0], rep) > 0.99  # same image, same largest face and model
    with pytest.raises(ValueError, match="unknown|not a registered|known"):
        facelab.load_dataset("no-such-dataset")


def test_audit_unknown_name_raises():
    with pytest.raises(ValueError, match="matches 0 notebooks"):
        facelab.audit("no-such-audit")


@pytest.mark.slow
def test_audit_runs_a_notebook(tmp_path, monkeypatch):
    from test_audit import _tiny_notebook

    (tmp_path / "nbs").mkdir()
    _tiny_notebook(tmp_path / "nbs" / "99_tiny.ipynb")
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(tmp_path / "nbs"))
    run = facelab.audit("tiny", {"scale": 3.0}, results_root=tmp_path / "results")
    import json

    assert json.loads((run / "metrics.json").read_text())["scaled"] == 63.0
    # the runs page is rebuilt after every audit, however it was started
    assert "99_tiny" in (tmp_path / "results" / "index.html").read_text()
    # force=False reuses it: same inputs (a parameter at its default counts as left out)
    assert facelab.audit("tiny", {"scale": 3.0}, results_root=tmp_path / "results",
                         force=False) == run
    again = facelab.audit("tiny", {"scale": 3.0}, results_root=tmp_path / "results")
    assert again != run  # the default force=True always executes
