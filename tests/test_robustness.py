"""Perturbation suite and robustness rates."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.perturb.robustness import PERTURBATIONS, list_perturbations, occlusion_box, perturb


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    from facelab.models.registry import create_model

    faces = create_model("yunet").detect(astronaut)
    assert faces
    return max(faces, key=lambda f: f.area)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_every_perturbation_keeps_dtype_and_shape(name, astronaut, astronaut_face):
    for level in range(1, len(PERTURBATIONS[name].params) + 1):
        out = perturb(astronaut, name, level, landmarks=astronaut_face.landmarks, seed=1)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        if name == "downscale":
            factor = PERTURBATIONS[name].params[level - 1]
            assert out.shape[:2] == (round(512 * factor), round(512 * factor))
        else:
            assert out.shape == astronaut.shape
        if name == "none":
            assert np.array_equal(out, astronaut)
        else:
            assert not np.array_equal(out, astronaut), (name, level)
        again = perturb(astronaut, name, level, landmarks=astronaut_face.landmarks, seed=1)
        assert np.array_equal(out, again)  # deterministic with a seed
    assert np.array_equal(perturb(astronaut, name, 0), astronaut)  # level 0 = unchanged


def test_noise_depends_on_the_seed_and_grows_with_level(astronaut):
    a, b = perturb(astronaut, "noise", 2, seed=0), perturb(astronaut, "noise", 2, seed=1)
    assert not np.array_equal(a, b)
    err = [np.abs(perturb(astronaut, "noise", lv).astype(int) - astronaut).mean()
           for lv in (1, 2, 3)]
    assert err[0] < err[1] < err[2]


def test_blur_and_jpeg_lose_more_detail_at_higher_levels(astronaut):
    def detail(img):
        return np.abs(np.diff(img.astype(float), axis=1)).mean()

    for name in ("blur", "jpeg"):
        d = [detail(perturb(astronaut, name, lv)) for lv in (1, 2, 3)]
        assert d[0] > d[1] > d[2], name


def test_occlusion_covers_its_landmarks_only(astronaut, astronaut_face):
    lm = astronaut_face.landmarks
    eyes = perturb(astronaut, "occlude_eyes", 1, landmarks=lm)
    mouth = perturb(astronaut, "occlude_mouth", 1, landmarks=lm)
    for x, y in lm[:2]:
        assert (eyes[int(y), int(x)] == 0).all() and (astronaut[int(y), int(x)] != 0).any()
        assert np.array_equal(mouth[int(y), int(x)], astronaut[int(y), int(x)])
    for x, y in lm[3:]:
        assert (mouth[int(y), int(x)] == 0).all()
        assert np.array_equal(eyes[int(y), int(x)], astronaut[int(y), int(x)])
    box = occlusion_box(lm, "eyes", 0.25)
    changed = np.argwhere((eyes != astronaut).any(axis=2))
    assert changed[:, 1].min() >= np.floor(box[0]) and changed[:, 1].max() <= np.ceil(box[2])
    assert changed[:, 0].min() >= np.floor(box[1]) and changed[:, 0].max() <= np.ceil(box[3])
    with pytest.raises(ValueError, match="landmarks"):
        perturb(astronaut, "occlude_mouth", 1)


def test_suite_table_lists_three_levels_per_perturbation():
    table = list_perturbations()
    counts = table.groupby("perturbation").size()
    assert counts.drop("none").eq(3).all() and counts["none"] == 1


@pytest.mark.slow
def test_robustness_table_on_cfd(data_root):
    from facelab.data.datasets import load_dataset
    from facelab.models.registry import model_spec
    from facelab.perturb.robustness import TASKS, robustness_table
    from facelab.viz.expression import plot_robustness

    tasks = list(TASKS)
    try:
        model_spec("age-gender")
    except LookupError:
        tasks.remove("gender")  # attribute model not registered in this checkout
    cfd = load_dataset("cfd", root=data_root)
    table = robustness_table(cfd, ["none", "blur", "occlude_eyes", "downscale"], tasks=tasks,
                             levels=[3], limit=10, seed=0, progress=False)
    overall = table[table["group_col"] == "all"].set_index(["perturbation", "task"])
    assert set(overall.index.get_level_values("task")) == set(tasks)
    assert (overall["n"] + overall["excluded"] == 10).all()
    # the control changes nothing
    none = overall.loc["none"]
    assert (none["changed"] == 0).all() and (none["n"] > 0).all()
    # heavy blur and covered eyes change more than nothing
    assert overall.loc["blur", "changed"].sum() > 0
    assert overall.loc["occlude_eyes", "changed"].sum() > 0
    # intervals bracket the rates
    rated = table.dropna(subset=["rate"])
    assert ((rated["ci_low"] <= rated["rate"]) & (rated["rate"] <= rated["ci_high"])).all()
    # groups split the same images
    for col in ("race", "gender"):
        by = table[(table["group_col"] == col)].groupby(["perturbation", "task"])["n"].sum()
        assert by.equals(overall["n"].sort_index().rename_axis(by.index.names)
                         .reindex(by.index))
    fig = plot_robustness(table, group_col="gender")
    assert len(fig.axes) >= len(tasks) * 3
