"""Unit tests of facelab.studies.detection and facelab.studies.attributes (no dataset)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from facelab.studies import attributes as A
from facelab.studies import detection as D


def test_box_iou_known_values():
    assert D.box_iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 10])) == 1.0
    assert D.box_iou(np.array([0, 0, 10, 10]), np.array([20, 20, 30, 30])) == 0.0
    assert math.isclose(D.box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])), 1 / 3)
    assert math.isnan(D.box_iou(None, np.array([0, 0, 1, 1])))


def _records() -> pd.DataFrame:
    """Two detectors on 40 images: 'a' misses 8 of group B, 'b' misses 2 of group A."""
    rows = []
    for i in range(40):
        race = "A" if i < 20 else "B"
        for det, miss in (("a", 20 <= i < 28), ("b", i < 2)):
            rows.append({"dataset": "toy", "image": i, "detector": det, "race": race,
                         "gender": "female" if i % 2 else "male", "found": not miss,
                         "fta": miss, "reason": "no face detected" if miss else pd.NA,
                         "box": None if miss else np.array([0, 0, 10, 10 + (det == "b")])})
    return pd.DataFrame(rows)


def test_fta_summary_and_groups_count_every_image():
    rec = _records()
    summary = D.fta_summary(rec, by=["race"], min_count=10).set_index("detector")
    assert summary.loc["a", "fta_count"] == 8 and summary.loc["a", "n"] == 40
    assert summary.loc["a", "ci_low"] < 0.2 < summary.loc["a", "ci_high"]
    assert summary.loc["a", "worst_cell"] == "B" and summary.loc["a", "best_cell"] == "A"
    assert summary.loc["a", "ratio"] == math.inf  # group A has no failure
    assert math.isclose(summary.loc["b", "ratio"], math.inf)
    cells = D.fta_by_group(rec, min_count=10)
    assert cells.groupby("detector")["n"].sum().to_dict() == {"a": 40, "b": 40}
    assert (cells["n"] == 10).all() and not cells["small_cell"].any()
    reasons = D.fta_reasons(rec)
    assert reasons.set_index("detector")["count"].to_dict() == {"a": 8, "b": 2}


def test_detector_agreement_counts_and_kappa():
    agree = D.detector_agreement(_records()).iloc[0]
    assert (agree["both"], agree["only_a"], agree["only_b"], agree["neither"]) == (30, 2, 8, 0)
    assert agree["n"] == 40 and math.isclose(agree["agreement"], 30 / 40)
    assert agree["ci_low"] < 0.75 < agree["ci_high"]
    assert -1 <= agree["kappa"] < 0.5
    assert math.isclose(agree["median_iou"], 100 / 110)
    assert agree["same_face"] == 1.0


def test_detection_records_real_detector(face_files, tmp_cache):
    rec = D.detection_records({"toy": face_files}, ["yunet"], progress=False)
    assert list(rec["found"]) == [True, False]
    assert list(rec["fta"]) == [False, True]
    assert rec.loc[1, "reason"] == "no face detected"
    assert rec.loc[0, "n_faces"] >= 1 and 0 < rec.loc[0, "score"] <= 1
    x1, y1, x2, y2 = rec.loc[0, "box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512


def test_degradation_records_real_detector(face_files, tmp_cache):
    rec = D.degradation_records(face_files, ["yunet"],
                                severities={"brightness": [0.5, 0.01], "downscale": [0.5]})
    assert len(rec) == 2 * (1 + 2) + 2 * (1 + 1)
    bright = rec[rec["perturbation"] == "brightness"]
    astro = bright[bright["image"] == 0].set_index("level")
    assert bool(astro.loc[0, "found"]) and not bool(astro.loc[0, "lost"])
    assert bool(astro.loc[2, "fta"])  # 1% brightness: nothing left to detect
    assert rec.loc[rec["image"] == 1, "lost"].isna().all()  # no clean face, nothing to lose
    curves = D.degradation_curves(rec)
    assert set(curves["level"]) == {0, 1, 2}
    assert (curves["ci_low"] <= curves["value"]).all()
    assert (curves["value"] <= curves["ci_high"]).all()
    with pytest.raises(ValueError, match="not usable"):
        D.degradation_records(face_files, ["yunet"], severities={"occlude_eyes": [0.3]})


def _preds() -> pd.DataFrame:
    """Per race x gender, 40 images; errors: Black women 10, White men 1, others 2."""
    rng = np.random.default_rng(0)
    rows = []
    errors = {("Black", "female"): 10, ("Black", "male"): 2, ("White", "female"): 2,
              ("White", "male"): 1}
    for (race, gender), k in errors.items():
        other = "male" if gender == "female" else "female"
        for i in range(40):
            pred = other if i < k else gender
            p_female = rng.uniform(0.6, 1) if pred == "female" else rng.uniform(0, 0.4)
            rows.append({"dataset": "toy", "race": race, "gender": gender, "status": "ok",
                         "reason": pd.NA, "pred_gender": pred, "pred_p_female": p_female,
                         "pred_age": 30.0, "age": 25.0 + (race == "Black") * 10,
                         "age_bin": pd.NA})
    rows.append({"dataset": "toy", "race": "White", "gender": "male", "status": "failed",
                 "reason": "no face detected", "pred_gender": pd.NA, "pred_p_female": np.nan,
                 "pred_age": np.nan, "age": 40.0, "age_bin": pd.NA})
    df = pd.DataFrame(rows)
    ok = A._evaluated_mask(df)
    err = pd.array([pd.NA] * len(df), dtype="boolean")
    err[ok] = (df.loc[ok, "pred_gender"] != df.loc[ok, "gender"]).to_numpy(bool)
    return df.assign(gender_error=err)


def test_gender_error_summary_ratio_and_direction():
    preds = _preds()
    assert len(A.evaluable(preds)) == 160
    acq = A.acquisition_summary(preds).iloc[0]
    assert (acq["images"], acq["evaluated"], acq["not_evaluated"]) == (161, 160, 1)
    metrics = A.gender_error_by_group(preds, min_count=30)
    summary = A.error_summary(metrics).iloc[0]
    assert (summary["errors"], summary["n"]) == (15, 160)
    assert summary["worst_cell"] == "Black x female" and summary["worst_count"] == "10/40"
    assert summary["best_cell"] == "White x male" and math.isclose(summary["ratio"], 10.0)
    bg = metrics["toy"].by_group
    assert ((bg["ci_low"] <= bg["value"]) & (bg["value"] <= bg["ci_high"])).all()
    d = A.error_direction(preds).set_index(["dataset", "race"])
    assert d.loc[("toy", "Black"), "female_as_male"] == 10
    assert d.loc[("toy", "all"), "male_as_female"] == 3
    assert math.isclose(d.loc[("toy", "all"), "share_of_errors_women_as_men"], 12 / 15)


def test_age_error_and_calibration():
    preds = _preds()
    age = A.age_error_by_group(preds, by=["race"], min_count=30)["toy"]
    assert math.isclose(age.by_group.loc["Black", "value"], 5.0)
    assert math.isclose(age.by_group.loc["White", "value"], 5.0)
    assert "age" in age.name
    binned = preds.assign(age=np.nan, age_bin="20-29")
    age_b = A.age_error_by_group(binned, by=["race"])["toy"]
    assert math.isclose(float(age_b.overall["value"]), 1.0)  # 30 is 1 year above 20-29
    summary, table = A.gender_calibration(preds)
    assert summary.iloc[0]["n"] == 160 and 0 <= summary.iloc[0]["ece"] <= 1
    assert table["n"].sum() == 160
