"""Importers of other systems' results (facelab.external): every format read from small
files the tests write in the documented layouts (no service is called), and every bad
input refused with the file and line (or JSON path), or counted with its reason."""

import json

import numpy as np
import pandas as pd
import pytest

from facelab import external as X
from facelab.core.validation import InputError


def _write(path, text):
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- scores CSV
def test_scores_csv_reads_scale_and_mated(tmp_path):
    f = _write(tmp_path / "s.csv", "probe,reference,score,mated\na,b,0.9,1\n\na,c,0.1,0\n")
    imp = X.read_scores(f, scale={"direction": "higher", "range": [-1, 1], "name": "cos"})
    assert imp.table["where"].tolist() == ["line 2", "line 4"]  # the blank line is counted
    assert imp.table["mated"].tolist() == [True, False]
    np.testing.assert_array_equal(imp.similarity, [0.9, 0.1])
    d = X.read_scores(_write(tmp_path / "d.csv", "probe,reference,score\na,b,0.2\n"),
                      scale={"direction": "lower", "low": 0, "high": 2})
    assert d.similarity[0] == -0.2 and d.table["mated"].isna().all()
    assert "distance" not in d.scale.describe() and "<= 0.2" in d.scale.describe(-0.2)


@pytest.mark.parametrize("body, message", [
    ("probe,ref,score\na,b,1\n", r"missing column\(s\) \['reference'\]"),
    ("probe,reference,score\na,b,0.5\na,c,abc\n", r"line 3: score 'abc' is not a number"),
    ("probe,reference,score\na,b,nan\n", r"line 2: score is empty or NaN \('nan'\)"),
    ("probe,reference,score\na,b,inf\n", r"line 2: score 'inf' is not finite"),
    ("probe,reference,score\na,b,1.5\n", r"line 2: score 1.5 is outside the declared range"),
    ("probe,reference,score\na,b,0.5\nb,a,0.4\n", r"line 3: duplicate pair .*first at line 2"),
    ("probe,reference,score\na,a,0.5\n", r"line 2: pair compares image 'a' with itself"),
    ("probe,reference,score,mated\na,b,0.5,maybe\n", r"line 2: mated 'maybe' is not"),
    ("probe,reference,score\na,b,0.5,9\n", r"line 2: 4 fields where the header has 3"),
])
def test_scores_csv_bad_input_names_file_and_line(tmp_path, body, message):
    f = _write(tmp_path / "bad.csv", body)
    with pytest.raises(InputError, match=message) as exc:
        X.read_scores(f, scale={"range": [-1, 1]})
    assert str(f) in str(exc.value)


def test_scores_csv_drop_counts_reasons(tmp_path):
    f = _write(tmp_path / "s.csv", "probe,reference,score\na,b,0.5\na,c,x\na,d,7\nb,a,0.1\n")
    imp = X.read_scores(f, scale={"range": [0, 1]}, errors="drop")
    assert imp.table["reference"].tolist() == ["b"]
    assert len(imp.drops) == 3
    assert set(imp.drops.table()["where"]) == {"line 3", "line 4", "line 5"}
    assert "3 entries dropped" in imp.summary()


# ----------------------------------------------------------------------------- bob
def test_bob_four_and_five_columns(tmp_path):
    five = _write(tmp_path / "dev.5col", "# comment\nid1 img1 id1 img2 0.8\n"
                                         "id1 img1 id2 img3 0.1\n")
    imp = X.read_bob_scores(five)
    assert imp.table["mated"].tolist() == [True, False]
    assert imp.table["probe"].tolist() == ["img2", "img3"]
    assert imp.table["reference"].tolist() == ["img1", "img1"]
    four = _write(tmp_path / "dev.4col", "id1 id1 img2 0.8\nid1 id2 img3 0.1\n")
    imp4 = X.read_bob_scores(four)
    assert (imp4.table["reference_is"] == "subject").all()
    assert imp4.table["probe_subject"].tolist() == ["id1", "id2"]
    with pytest.raises(InputError, match=r"line 2: 5 fields where the format has 4"):
        X.read_bob_scores(_write(tmp_path / "x.4col", "a a i 1\na b c d 2\n"))
    with pytest.raises(InputError, match=r"line 3: duplicate pair"):
        X.read_bob_scores(_write(tmp_path / "y.4col", "a a i 1\nb a j 2\na a i 3\n"))


# ----------------------------------------------------------------------------- candidates
def test_candidates_csv(tmp_path):
    f = _write(tmp_path / "c.csv", "probe,rank,candidate,score\np1,1,g1,0.9\np1,2,g2,0.5\n"
                                   "p2,,,\n")
    imp = X.read_candidates(f)
    assert imp.probes == ["p1", "p2"] and len(imp.table) == 2
    assert "1 searches returned no candidate" in imp.summary()
    for body, message in [
        ("probe,rank,candidate,score\np,1,a,0.9\np,3,b,0.5\n", r"ranks must run 1, 2, 3"),
        ("probe,rank,candidate,score\np,1,a,0.5\np,2,b,0.9\n", r"line 3: .*rank 2 scores "
                                                               r"better than rank 1"),
        ("probe,rank,candidate,score\np,1,a,0.9\np,2,a,0.5\n", r"line 3: duplicate \(probe, "
                                                               r"candidate\)"),
        ("probe,rank,candidate,score\np,0,a,0.9\n", r"line 2: rank '0' is not an integer"),
        ("probe,rank,candidate,score\np,1,,0.9\n", r"line 2: rank, candidate and score"),
    ]:
        with pytest.raises(InputError, match=message):
            X.read_candidates(_write(tmp_path / "bad.csv", body))


# ----------------------------------------------------------------------------- Rekognition
def _face(**over):
    face = {"BoundingBox": {"Width": 0.4, "Height": 0.5, "Left": 0.3, "Top": 0.2},
            "Confidence": 99.5,
            "Gender": {"Value": "Female", "Confidence": 93.0},
            "AgeRange": {"Low": 24, "High": 32},
            "Emotions": [{"Type": "CALM", "Confidence": 60.0},
                         {"Type": "FEAR", "Confidence": 30.0},
                         {"Type": "HAPPY", "Confidence": 10.0}],
            "Landmarks": [], "Pose": {"Roll": 0, "Yaw": 0, "Pitch": 0}}
    face.update(over)
    return face


def test_rekognition_detect_faces(tmp_path):
    (tmp_path / "a.jpg.json").write_text(json.dumps({"FaceDetails": [_face()]}))
    (tmp_path / "b.jpg.json").write_text(json.dumps({"FaceDetails": []}))
    imp = X.read_detect_faces(tmp_path)
    t = imp.table.set_index("image")
    a = t.loc["a.jpg"]
    assert a["gender"] == "female" and a["gender_confidence"] == pytest.approx(0.93)
    assert a["p_female"] == pytest.approx(0.93)
    assert (a["age_low"], a["age_high"], a["age"]) == (24, 32, 28)
    assert a["expression"] == "neutral"  # CALM, the top type
    assert a["p_fear"] == pytest.approx(0.30) and a["box_width"] == pytest.approx(0.4)
    assert t.loc["b.jpg", "face"] == -1  # no face found: recorded, not missing
    assert "no face found in 1 images" in imp.summary()
    bad = tmp_path / "bad"
    bad.mkdir()
    for face, message in [
        (_face(Gender={"Value": "Unknown", "Confidence": 50}), r"FaceDetails\[0\].Gender."
                                                                r"Value: Gender.Value 'Unknown'"),
        (_face(Confidence=120), r"FaceDetails\[0\].Confidence: 120 is outside"),
        (_face(Emotions=[{"Type": "SCARED", "Confidence": 1}]), r"Emotions\[0\].Type"),
        (_face(AgeRange={"Low": 40, "High": 30}), r"AgeRange.Low 40 > High 30"),
        (_face(BoundingBox={"Width": 0.4, "Height": 0.5, "Left": 0.3}), r"missing field 'Top'"),
    ]:
        (bad / "x.json").write_text(json.dumps({"FaceDetails": [face]}))
        with pytest.raises(InputError, match=message):
            X.read_detect_faces(bad)
    (bad / "x.json").write_text(json.dumps({"__type": "InvalidImageFormatException",
                                            "Message": "Request has invalid image format"}))
    with pytest.raises(InputError, match="InvalidImageFormatException"):
        X.read_detect_faces(bad)
    (bad / "y.json").write_text(json.dumps({"FaceDetails": [_face()]}))
    imp = X.read_detect_faces(bad, errors="drop")
    assert len(imp.drops) == 1 and imp.table["image"].tolist() == ["y"]


def test_rekognition_compare_faces(tmp_path):
    resp = tmp_path / "r"
    resp.mkdir()
    src = {"BoundingBox": {"Width": 0.5, "Height": 0.5, "Left": 0.2, "Top": 0.2},
           "Confidence": 99.9}
    docs = {"m.json": {"SourceImageFace": src, "FaceMatches": [
                {"Similarity": 99.1, "Face": src}, {"Similarity": 85.0, "Face": src}],
                "UnmatchedFaces": []},
            "u.json": {"SourceImageFace": src, "FaceMatches": [], "UnmatchedFaces": [src]},
            "n.json": {"SourceImageFace": src, "FaceMatches": [], "UnmatchedFaces": []}}
    for name, doc in docs.items():
        (resp / name).write_text(json.dumps(doc))
    index = _write(tmp_path / "pairs.csv", "probe,reference,response\na,b,r/m.json\n"
                                           "a,c,r/u.json\na,d,r/n.json\n")
    with pytest.raises(InputError, match=r"u.json, FaceMatches: no FaceMatches"):
        X.read_compare_faces(index)
    imp = X.read_compare_faces(index, censored="keep")
    assert imp.table["score"].tolist() == [99.1, 0.0]  # best match; censored at the floor
    assert imp.table["censored"].tolist() == [False, True] and imp.censored_below == 80
    assert len(imp.drops) == 1 and "no face found in the target" in imp.drops.rows[0]["reason"]
    assert imp.default_threshold == 80


def test_rekognition_search_faces(tmp_path):
    def match(sim, ext):
        return {"Similarity": sim, "Face": {"FaceId": "f", "ExternalImageId": ext,
                                            "Confidence": 99.0}}
    (tmp_path / "p1.json").write_text(json.dumps({"FaceMatches": [
        match(85.0, "g2"), match(99.2, "g1"), match(90.0, "g1")]}))
    (tmp_path / "p2.json").write_text(json.dumps({"FaceMatches": []}))
    imp = X.read_search_faces(tmp_path)
    t = imp.table
    assert t["candidate"].tolist() == ["g1", "g2"] and t["rank"].tolist() == [1, 2]
    assert imp.probes == ["p1", "p2"] and imp.censored_below == 80
    assert "another indexed face of 'g1'" in imp.drops.rows[0]["reason"]
    (tmp_path / "p3.json").write_text(json.dumps({"FaceMatches": [match(70.0, "g3")]}))
    with pytest.raises(InputError, match=r"p3.json, FaceMatches\[0\].Similarity: Similarity "
                                         r"70 is below the declared FaceMatchThreshold 80"):
        X.read_search_faces(tmp_path)
    (tmp_path / "p3.json").write_text(json.dumps({"FaceMatches": [{"Similarity": 90.0,
                                                                   "Face": {"FaceId": "x"}}]}))
    with pytest.raises(InputError, match=r"missing field 'ExternalImageId'"):
        X.read_search_faces(tmp_path)


# ----------------------------------------------------------------------------- deepface
def test_deepface_verify_find_analyze(tmp_path):
    rec = {"img1_path": "a.jpg", "img2_path": "b.jpg", "verified": True, "distance": 0.3,
           "threshold": 0.593, "model": "SFace", "detector_backend": "opencv",
           "similarity_metric": "cosine", "facial_areas": {}, "time": 0.1}
    f = tmp_path / "v.json"
    f.write_text(json.dumps([rec, {**rec, "img2_path": "c.jpg", "distance": 0.9,
                                   "verified": False}]))
    imp = X.read_deepface_verify(f)
    assert imp.scale.direction == "lower" and imp.default_threshold == 0.593
    np.testing.assert_array_equal(imp.similarity, [-0.3, -0.9])
    f.write_text(json.dumps([{**rec, "verified": False}]))
    with pytest.raises(InputError, match=r"\[0\]: verified=False but distance 0.3 <="):
        X.read_deepface_verify(f)
    f.write_text(json.dumps([{**rec, "distance": 2.5, "verified": False}]))
    with pytest.raises(InputError, match="outside the declared range"):
        X.read_deepface_verify(f)

    frames = {"p1": [pd.DataFrame({"identity": ["db/x.jpg", "db/y.jpg"],
                                   "distance": [0.4, 0.2], "threshold": [0.593, 0.593]}),
                     pd.DataFrame({"identity": ["db/z.jpg"], "distance": [0.1]})],
              "p2": pd.DataFrame(columns=["identity", "distance"])}
    cand = X.read_deepface_find(frames, model="SFace")
    assert cand.table["candidate"].tolist() == ["db/y.jpg", "db/x.jpg"]  # ascending distance
    assert cand.probes == ["p1", "p2"] and len(cand.drops) == 1
    assert cand.default_threshold == 0.593

    face = {"region": {"x": 10, "y": 20, "w": 50, "h": 60}, "face_confidence": 0.97,
            "age": 31, "dominant_gender": "Woman", "gender": {"Woman": 88.0, "Man": 12.0},
            "dominant_emotion": "fear",
            "emotion": {"angry": 1.0, "disgust": 0.0, "fear": 70.0, "happy": 4.0, "sad": 5.0,
                        "surprise": 10.0, "neutral": 10.0}}
    pred = X.read_deepface_analyze({"a.jpg": [face], "b.jpg": []})
    a = pred.table.set_index("image").loc["a.jpg"]
    assert (a["box_x2"], a["box_y2"]) == (60, 80) and a["gender"] == "female"
    assert a["gender_confidence"] == pytest.approx(0.88) and a["expression"] == "fear"
    with pytest.raises(InputError, match=r"dominant_gender 'Other'"):
        X.read_deepface_analyze({"a.jpg": [{**face, "dominant_gender": "Other"}]})


def test_predictions_csv(tmp_path):
    f = _write(tmp_path / "p.csv", "image,face,box_x1,box_y1,box_x2,box_y2,detection_score,"
                                   "gender,gender_confidence,age_low,age_high,expression,p_fear\n"
                                   "a.jpg,0,1,2,30,40,0.99,F,0.8,20,29,fear,0.7\n"
                                   "b.jpg,,,,,,,,,,,,\n")
    imp = X.read_predictions(f)
    t = imp.table.set_index("image")
    assert t.loc["a.jpg", "gender"] == "female"
    assert t.loc["a.jpg", "age"] == 24.5 and t.loc["b.jpg", "face"] == -1
    for row, message in [("a.jpg,0,1,2,30,40,1.5,male,0.8,20,29,fear,0.7", "detection_score"),
                         ("a.jpg,0,1,2,30,40,0.9,robot,0.8,20,29,fear,0.7", "gender 'robot'"),
                         ("a.jpg,0,31,2,30,40,0.9,male,0.8,20,29,fear,0.7", "box_x2 must be"),
                         ("a.jpg,0,1,2,30,40,0.9,male,0.8,29,20,fear,0.7", "age_low is above")]:
        bad = _write(tmp_path / "bad.csv", f.read_text().splitlines()[0] + "\n" + row + "\n")
        with pytest.raises(InputError, match=rf"bad.csv, line 2: .*{message}"):
            X.read_predictions(bad)


def test_import_parameters_are_made_absolute(tmp_path):
    from facelab.report.runner import absolute_paths

    out = absolute_paths({"scores": "s.csv", "candidates": {"path": "responses",
                                                            "format": "rekognition"},
                          "predictions": None, "limit": 3}, tmp_path)
    assert out["scores"] == str(tmp_path / "s.csv")
    assert out["candidates"] == {"path": str(tmp_path / "responses"), "format": "rekognition"}
    assert out["predictions"] is None and out["limit"] == 3


def test_audit_parameters_read_exponent_floats():
    from facelab.cli.audit import parse_audit_args

    _, params, _, _, _ = parse_audit_args(["02", "-p", "target_fmr", "1e-3", "-p", "name",
                                        "e5", "-p", "limit", "200"])
    assert params == {"target_fmr": 0.001, "name": "e5", "limit": 200}
