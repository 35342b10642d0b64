"""Skin tone (ITA): synthetic patches of known CIE L*a*b* give the expected angle and
category, faces without enough skin are flagged (not guessed), and the ``skin_tone`` head
runs through ``facelab.extract`` on real images with a cache that makes reruns identical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import missing_data
from skimage.color import lab2rgb

from facelab.core.types import Face
from facelab.face.align import ARCFACE_TEMPLATE_112
from facelab.face.skin import (
    ITA_CATEGORIES,
    SKIN_COLUMNS,
    ita_category,
    ita_from_lab,
    lighter_darker,
    measure_skin_tone,
    region_masks,
    skin_mask,
)

SCALE = 2.0  # the synthetic face is the ArcFace template at twice its size


def _face() -> Face:
    lm = (ARCFACE_TEMPLATE_112 * SCALE).astype(np.float32)
    return Face(box=np.array([0, 0, 224, 224], np.float32), score=1.0, landmarks=lm)


def _patch(L: float, a: float, b: float) -> np.ndarray:
    """A 224 x 224 image of one colour given in CIE L*a*b* (D65), as sRGB uint8."""
    rgb = lab2rgb(np.array([[[L, a, b]]], np.float64))
    pixel = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return np.broadcast_to(pixel, (224, 224, 3)).copy()


# (L*, a*, b*) inside each Chardon category; the expected ITA is atan((L - 50) / b).
PATCHES = [
    ((75.0, 8.0, 12.0), "very light", "lighter"),
    ((70.0, 10.0, 20.0), "light", "lighter"),
    ((65.0, 12.0, 20.0), "intermediate", "lighter"),
    ((58.0, 12.0, 22.0), "tan", "darker"),
    ((45.0, 12.0, 20.0), "brown", "darker"),
    ((30.0, 12.0, 15.0), "dark", "darker"),
]


@pytest.mark.parametrize(("lab", "category", "tone"), PATCHES)
def test_known_lab_patch_gives_expected_ita_and_category(lab, category, tone):
    L, a, b = lab
    out = measure_skin_tone(_patch(L, a, b), _face())
    expected = np.degrees(np.arctan((L - 50) / b))
    assert out["flag"] == ""
    assert out["ita"] == pytest.approx(expected, abs=1.0)  # uint8 quantisation only
    assert out["L"] == pytest.approx(L, abs=0.5) and out["b"] == pytest.approx(b, abs=0.6)
    assert out["category"] == category and out["tone"] == tone
    assert out["n_pixels"] == out["region_pixels"] > 3 * 300  # three regions, all skin
    assert set(out) == set(SKIN_COLUMNS)


def test_every_category_is_covered_by_the_patches():
    assert sorted(c for _, c, _ in PATCHES) == sorted(ITA_CATEGORIES)


def test_ita_formula_and_bin_edges():
    L, b = np.array([70.0, 40.0, 50.0]), np.array([20.0, 10.0, 15.0])
    np.testing.assert_allclose(ita_from_lab(L, b), np.degrees(np.arctan((L - 50) / b)))
    assert float(ita_from_lab(60, -5)) > 90  # b* <= 0: outside the defined range
    edges = [55.0, 55.01, 41.0, 41.01, 28.0, 28.01, 10.0, 10.01, -30.0, -29.99]
    assert ita_category(edges).tolist() == [
        "light", "very light", "intermediate", "light", "tan", "intermediate", "brown",
        "tan", "dark", "brown"]
    assert lighter_darker([28.0, 28.01, np.nan]).tolist() == ["darker", "lighter", None]
    assert ita_category(np.nan).item() is None and ita_category(120.0).item() is None
    assert ita_category(45.0).item() == "light"


def test_skin_filter_accepts_light_and_dark_skin_rejects_grey_and_blue():
    px = np.array([[208, 179, 163], [95, 63, 48], [128, 128, 128], [60, 90, 200],
                   [0, 0, 0], [255, 230, 220]], np.uint8)
    assert skin_mask(px).tolist() == [True, True, False, False, False, False]
    with pytest.raises(ValueError, match="uint8 RGB"):
        skin_mask(px.astype(np.float32))


@pytest.mark.parametrize("colour", [(128, 128, 128), (40, 80, 200)], ids=["grey", "blue"])
def test_face_without_skin_pixels_is_flagged_not_guessed(colour):
    image = np.broadcast_to(np.array(colour, np.uint8), (224, 224, 3)).copy()
    out = measure_skin_tone(image, _face())
    assert out["flag"].startswith("too few skin pixels")
    assert out["n_pixels"] == 0 and out["region_pixels"] > 0
    assert np.isnan(out["ita"]) and out["category"] is None and out["tone"] is None


def test_mostly_covered_face_is_flagged_and_no_landmarks_is_flagged():
    image = _patch(65.0, 12.0, 20.0)
    masks = region_masks(image.shape, _face().landmarks)
    region = np.logical_or.reduce(list(masks.values()))
    ys, xs = np.nonzero(region)
    keep = np.zeros(region.shape, bool)
    keep[ys[:40], xs[:40]] = True  # only 40 skin pixels left inside the regions
    image[region & ~keep] = (128, 128, 128)
    out = measure_skin_tone(image, _face())
    assert out["n_pixels"] == 40 and "too few skin pixels" in out["flag"]
    assert out["tone"] is None
    bare = Face(box=np.array([0, 0, 224, 224], np.float32), score=1.0, landmarks=None)
    assert measure_skin_tone(image, bare)["flag"] == "no landmarks to place the skin regions"


def test_regions_avoid_eyes_and_mouth():
    lm = _face().landmarks
    masks = region_masks((224, 224, 3), lm)
    region = np.logical_or.reduce(list(masks.values()))
    r = 0.1 * np.linalg.norm(lm[1] - lm[0])  # a disc around each eye and mouth corner
    yy, xx = np.mgrid[:224, :224]
    for x, y in lm[[0, 1, 3, 4]]:
        assert not region[(xx - x) ** 2 + (yy - y) ** 2 <= r ** 2].any()


def test_skin_tone_head_through_extract_is_cached(data_root, tmp_path):
    from facelab.data.datasets import load_dataset
    from facelab.extraction.pipeline import extract

    cfd = load_dataset("cfd", root=data_root)
    manifest = pd.concat([cfd[cfd["race"] == r].head(2) for r in ("Black", "White")])
    first = extract(manifest, heads=("skin_tone",), cache=tmp_path / "c", progress=False)
    assert first.attrs["computed"]["skin_tone"] == 4
    assert (first["status"] == "ok").all() and (first["skin_flag"] == "").all()
    assert first["skin_n_pixels"].min() > 1000  # studio portraits: large skin regions
    assert first["skin_category"].isin(ITA_CATEGORIES).all()
    assert first["skin_tone"].isin(["lighter", "darker"]).all()
    assert (first["skin_ita"].between(-90, 90)).all()
    # CFD's Black targets measure darker than its White targets on every pair here
    black = first.loc[first["race"] == "Black", "skin_ita"]
    white = first.loc[first["race"] == "White", "skin_ita"]
    assert black.max() < white.min()
    again = extract(manifest, heads=("skin_tone",), cache=tmp_path / "c", progress=False)
    assert again.attrs["computed"]["skin_tone"] == 0
    assert again.attrs["from_cache"]["skin_tone"] == 4
    cols = [c for c in first.columns if c.startswith("skin_")]
    pd.testing.assert_frame_equal(first[cols], again[cols])


def test_load_manifests_groups_by_measured_skin_tone(data_root):
    from facelab.studies.matching import UNLABELLED, load_manifests

    manifest, notes = load_manifests(["cfd"], limit=24, seed=0, root=data_root,
                                     by=["skin_tone", "gender"])
    assert len(manifest) == 24
    measured = manifest["skin_tone"].notna()
    expected = manifest["skin_tone"].astype(str) + " " + manifest["gender"].astype(str)
    assert (manifest.loc[measured, "group"] == expected[measured]).all()
    assert (manifest.loc[~measured, "group"] == UNLABELLED).all()
    assert set(manifest.loc[measured, "group"]) <= {"lighter female", "lighter male",
                                                    "darker female", "darker male"}
    assert f"Skin tone measured on {int(measured.sum())} of 24 images" in notes.sentences()[0]


def test_subject_sample_of_people_with_several_images():
    from facelab.data.sampling import subject_sample

    df = pd.DataFrame({"subject": list("aaabbcddde") + [None], "x": range(11)})
    out = subject_sample(df, 5, seed=0, min_images=2)
    sizes = out["subject"].value_counts()
    assert (sizes >= 2).all() and len(out) <= 5
    assert (sizes == df["subject"].value_counts()[sizes.index]).all()  # whole people
    assert set(subject_sample(df, None, min_images=2)["subject"]) == {"a", "b", "d"}
    with pytest.raises(ValueError, match="min_images"):
        subject_sample(df, 5, min_images=0)


def test_stability_and_race_tables_count_what_they_say():
    from facelab.studies.skin_tone import ita_by_race, stability_summary

    images = pd.DataFrame({
        "dataset": "x", "subject": list("aabbbcc"),
        "skin_tone": ["lighter", "lighter", "lighter", "darker", None, "darker", None],
        "skin_category": ["light", "light", "intermediate", "tan", None, "brown", None],
        "skin_ita": [50.0, 45.0, 30.0, 20.0, np.nan, 0.0, np.nan],
        "race": ["A", "A", "B", "B", "B", None, None]})
    row = stability_summary(images).iloc[0]
    # a: 2 images, one class; b: 2 measured images, two classes; c: 1 measured -> out
    assert row["people"] == 2 and row["one_class_count"] == "1/2"
    assert row["one_category_count"] == "1/2" and row["images_of_these_people"] == 4
    assert row["ita_range_median"] == pytest.approx((5.0 + 10.0) / 2)
    assert row["pairs"] == 2 and row["pair_agreement"] == 0.5  # a agrees, b does not
    assert row["chance_agreement"] == pytest.approx((3 / 5) ** 2 + (2 / 5) ** 2)
    tab = ita_by_race(images).set_index("race")
    assert tab.loc["A", "light"] == 2 and tab.loc["A", "lighter"] == 2
    assert tab.loc["B", "not measured"] == 1 and tab.loc["B", "images"] == 3
    assert tab.loc["B", "lighter"] == 1 and tab.loc["B", "darker"] == 1


def test_brightness_lowers_ita_on_real_faces(data_root):
    from facelab.data.datasets import load_dataset
    from facelab.studies.skin_tone import brightness_sensitivity, brightness_summary

    cfd = load_dataset("cfd", root=data_root)
    manifest = cfd[cfd["race"] == "White"].head(3)
    shifts = brightness_sensitivity(manifest, n=None, factors=(0.9, 0.5))
    assert len(shifts) == 6 and set(shifts["level"]) == {0, 1}  # 0.5 is the suite's level 1
    summary = brightness_summary(shifts).set_index("brightness_factor")
    assert summary.loc[0.5, "delta_median"] < summary.loc[0.9, "delta_median"] < 0


@pytest.mark.slow
def test_fmr_and_fnmr_by_skin_tone_on_lfw(data_root):
    """02's identity groupings take ["skin_tone"] like any other column (LFW, SFace)."""
    from facelab.studies import verification as V
    from facelab.studies.matching import extract_embeddings, load_manifests

    manifest, _ = load_manifests(["lfw"], limit=80, seed=0, root=data_root,
                                 by=["gender", "skin_tone"], whole_subjects=True)
    assert manifest["skin_tone"].notna().mean() > 0.9
    emb = {"sface": extract_embeddings(manifest, "sface", progress=False)}
    rates = V.identity_group_rates(manifest, emb, {"sface": 0.363},
                                   groupings=[["skin_tone"]], n_boot=100, seed=0)
    fnmr = rates.fnmr.set_index("group")
    assert set(fnmr.index) <= {"lighter", "darker", "all groups"} and len(fnmr) >= 2
    cells = fnmr.drop(index="all groups")
    assert cells["n"].sum() == fnmr.loc["all groups", "n"]
    assert ((cells["ci_low"] <= cells["fnmr"]) & (cells["fnmr"] <= cells["ci_high"])).all()
    assert set(rates.fmr["group"]) <= {"lighter", "darker", "all groups"}


def test_stability_leaves_out_a_dataset_without_people_and_says_so(data_root):
    from facelab.studies.skin_tone import stability_by_person

    if not (data_root / "utkface").is_dir():
        missing_data("UTKFace is not under FACELAB_DATA")
    images, notes = stability_by_person(["utkface"], limit=20, root=data_root)
    assert images.empty
    assert notes == ["utkface: no person with two or more images (subject ids), left out of "
                     "the stability check."]
