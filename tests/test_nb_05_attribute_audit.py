"""05_attribute_audit: gender error by race x gender with intervals and the worst/best ratio,
error direction, age MAE and calibration are recorded."""

import math

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow


def test_05_attribute_audit(tmp_path, data_root):
    params = {"limit": 60, "datasets": ["fairface", "utkface", "cfd"], "min_count": 5,
              "stability_limit": 60, "brightness_faces": 8}
    run, values = run_notebook("05_attribute_audit", params, tmp_path, data_root)
    assert values["n_images"] == {"fairface": 60, "utkface": 60, "cfd": 60}
    acq = {r["dataset"]: r for r in values["acquisition"]}
    for ds, r in acq.items():
        assert r["evaluated"] + r["not_evaluated"] == r["images"] == 60
        assert r["evaluated"] >= 45, f"{ds}: too few faces scored"
    summary = {r["dataset"]: r for r in values["gender_error_summary"]}
    assert set(summary) == {"fairface", "utkface", "cfd"}
    for ds, r in summary.items():
        assert r["n"] == acq[ds]["evaluated"] and 0 <= r["errors"] <= r["n"]
        assert 0 <= r["ci_low"] <= r["error"] <= r["ci_high"] <= 1
        assert r["error"] < 0.5, f"{ds}: a gender model should beat chance"
        assert r["ratio"] is None or r["ratio"] >= 1  # None: inf / undefined in JSON
        if r["worst_cell"] is not None:
            assert r["worst_error"] >= r["best_error"]
    # cells add up to the scored faces; every estimate inside its interval
    for ds in summary:
        cells = [c for c in values["gender_error_by_group"]
                 if c["dataset"] == ds and c["race"] != "overall"]
        assert sum(c["n"] for c in cells) == summary[ds]["n"]
        assert sum(c["count"] for c in cells) == summary[ds]["errors"]
        for c in cells:
            assert c["ci_low"] <= c["value"] <= c["ci_high"]
    # error direction: women labelled men + men labelled women = all errors
    for r in values["error_direction"]:
        if r["scope"] == "dataset":
            assert r["female_as_male"] + r["male_as_female"] == summary[r["dataset"]]["errors"]
    # age: UTKFace in years and FairFace bins; CFD has no ages
    mae = values["age_mae_overall"]
    assert set(mae) == {"fairface", "utkface"}
    assert 0 < mae["utkface"] < 25 and 0 <= mae["fairface"] < 25
    for r in values["calibration"]:
        assert 0 <= r["ece"] <= 1 and not math.isnan(r["ece"])
    assert any(f["finding"].startswith("worst/best ratio") for f in values["findings"])
    # skin type x gender (issue 15): faces not measured are counted, the rest fill the cells
    cov = {r["dataset"]: r for r in values["skin_tone_coverage"]}
    skin = {r["dataset"]: r for r in values["gender_error_summary_skin_type"]}
    for ds, r in cov.items():
        assert r["measured"] + r["not_measured"] == r["scored"] == summary[ds]["n"]
        assert r["lighter"] + r["darker"] == r["measured"] == skin[ds]["n"]
    assert cov["cfd"]["not_measured"] <= 3  # studio colour portraits
    for ds in skin:
        cells = [c for c in values["gender_error_by_skin_type"]
                 if c["dataset"] == ds and c["skin_tone"] != "overall"]
        assert {(c["skin_tone"], c["gender"]) for c in cells} <= {
            (t, g) for t in ("lighter", "darker") for g in ("female", "male")}
        assert sum(c["count"] for c in cells) == skin[ds]["errors"]
    grouping = {(r["dataset"], r["grouping"]) for r in values["grouping_comparison"]}
    assert ("cfd", "skin type x gender") in grouping and ("cfd", "race x gender") in grouping
    # measured limits: stability per person, brightness, ITA category vs race labels
    for r in values["skin_tone_stability"]:
        assert r["people"] >= 2 and 0 <= r["one_class_ci_low"] <= r["one_class"] <= 1
    bright = values["skin_tone_brightness"]
    assert [r["brightness_factor"] for r in bright] == [0.5, 0.3, 0.15]
    assert all(r["measured"] + r["not_measured"] == r["faces"] for r in bright)
    assert bright[0]["delta_median"] < 0  # darker photo, lower ITA
    races = {(r["dataset"], r["race"]) for r in values["ita_category_by_race"]}
    assert ("cfd", "Black") in races and ("cfd", "White") in races
    # the gallery of misgendered faces draws from every error, at most 4 per cell
    ex = values["examples_gender_errors"]
    assert ex["enabled"] and ex["unreadable"] == 0
    assert ex["available"] == sum(r["errors"] for r in summary.values())
    assert 0 < ex["shown"] <= ex["available"]
    assert (run / "figures" / "examples_gender_errors.png").exists()
    # the HTML export embeds every figure, the gallery included (no file links)
    html = (run / "05_attribute_audit.html").read_text()
    assert "The misgendered faces" in html
    assert html.count("data:image/png;base64") >= len(list((run / "figures").glob("*.png")))


def test_05_show_examples_off(tmp_path, data_root):
    """show_examples=False: no gallery is drawn, recorded or embedded."""
    params = {"limit": 20, "datasets": ["cfd"], "min_count": 5, "show_examples": False}
    run, values = run_notebook("05_attribute_audit", params, tmp_path, data_root)
    assert values["examples_gender_errors"]["enabled"] is False
    assert not list((run / "figures").glob("examples_*"))
