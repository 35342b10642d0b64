"""facelab.data.sampling: the one balanced_sample, subject_sample and the one multi-dataset
loader (load_datasets), on synthetic tables and on the shared datasets."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import missing_data

from facelab.data.datasets import load_dataset
from facelab.data.sampling import (
    GROUP_AUDIT_SAMPLING,
    balanced_sample,
    load_datasets,
    subject_sample,
)


def _cells(n_per_cell: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (race, gender), n in n_per_cell.items():
        rows += [{"race": race, "gender": gender, "path": f"{race}_{gender}_{i}.jpg"}
                 for i in range(n)]
    return pd.DataFrame(rows)


def _fairface(data_root) -> pd.DataFrame:
    if not (data_root / "fairface").is_dir():
        missing_data("FairFace is not under FACELAB_DATA")
    return load_dataset("fairface", root=data_root, split="val")


# ----------------------------------------------------------------------------- synthetic
def test_round_robin_drop_is_balanced_nested_and_seeded():
    df = _cells({("A", "female"): 50, ("A", "male"): 5, ("B", "female"): 50,
                 ("B", "male"): 50})
    df.loc[3, "race"] = pd.NA
    opts = {"by": ["race", "gender"], "missing": "drop", "order": "round-robin"}
    s = balanced_sample(df, 40, seed=1, **opts)
    counts = s.groupby(["race", "gender"]).size()
    assert len(s) == 40 and s.index.is_unique
    assert counts[("A", "male")] == 5  # exhausted, the others fill up evenly
    assert counts.drop(("A", "male")).max() - counts.drop(("A", "male")).min() <= 1
    assert s["race"].notna().all()
    small = balanced_sample(df, 12, seed=1, **opts)
    assert list(small.index) == list(s.index[:12])  # a prefix of the larger sample
    assert list(balanced_sample(df, 40, seed=1, **opts).index) == list(s.index)
    assert list(balanced_sample(df, 40, seed=2, **opts).index) != list(s.index)
    everything = balanced_sample(df, None, seed=0, **opts)
    assert len(everything) == len(df) - 1 and 3 not in everything.index


def test_missing_labels_form_their_own_cell_and_order_is_kept():
    df = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 8 + ["c"] * 20 + [None] * 6})
    out = balanced_sample(df, 24, ["g"], seed=3)
    assert out["g"].fillna("NA").value_counts().to_dict() == {"a": 6, "b": 6, "c": 6, "NA": 6}
    assert out.index.equals(balanced_sample(df, 24, ["g"], seed=3).index)
    assert not out.index.equals(balanced_sample(df, 24, ["g"], seed=4).index)
    assert list(out.index) == sorted(out.index)  # original order kept
    # small cells are kept whole, the rest is spread over the large ones
    out = balanced_sample(df, 46, ["g"], seed=0)
    assert out["g"].fillna("NA").value_counts().to_dict() == {"a": 16, "c": 16, "b": 8,
                                                              "NA": 6}
    assert balanced_sample(df, None, ["g"]) is df
    assert len(balanced_sample(df, 0, ["g"])) == 0


def test_shuffle_conventions_pick_different_rows_of_one_seed():
    df = pd.DataFrame({"g": ["a", "b"] * 100})
    rows = balanced_sample(df, 20, ["g"], seed=0, shuffle="rows")
    keys = balanced_sample(df, 20, ["g"], seed=0, shuffle="keys")
    assert rows["g"].value_counts().to_dict() == keys["g"].value_counts().to_dict()
    assert not rows.index.equals(keys.index)


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": -1}, "limit must be >= 0"),
    ({"limit": 3, "missing": "keep"}, "missing must be one of"),
    ({"limit": 3, "order": "sorted"}, "order must be one of"),
    ({"limit": 3, "shuffle": "both"}, "shuffle must be one of"),
])
def test_bad_arguments_say_why(kwargs, message):
    with pytest.raises(ValueError, match=message):
        balanced_sample(pd.DataFrame({"g": list("abc")}), by=["g"], **kwargs)


def test_subject_sample_keeps_whole_people():
    df = pd.DataFrame({"subject": ["p1"] * 4 + ["p2"] * 3 + ["p3"] * 2 + ["p4", "p5", None],
                       "g": ["x"] * 4 + ["y"] * 3 + ["x"] * 2 + ["y", "x", "y"]})
    out = subject_sample(df, 6, ["g"], seed=0)
    assert len(out) <= 6 and out["subject"].notna().all()
    kept = out["subject"].value_counts()
    assert (kept == df["subject"].value_counts()[kept.index]).all()  # nobody cut in two
    assert out.index.equals(subject_sample(df, 6, ["g"], seed=0).index)
    assert subject_sample(df, None) is df


# ----------------------------------------------------------------------------- real data
def test_balanced_sample_on_fairface(data_root):
    df = _fairface(data_root)
    with_gaps = df.copy()
    gaps = with_gaps.index[::10]
    with_gaps.loc[gaps, "race"] = pd.NA
    by = ["race", "gender"]
    s = balanced_sample(with_gaps, 280, by, seed=0, missing="drop", order="round-robin")
    assert len(s) == 280 and not s.index.isin(gaps).any()
    counts = s.groupby(by).size()
    available = with_gaps.dropna(subset=by).groupby(by).size()
    assert len(counts) == len(available) >= 10  # every race x gender cell is sampled
    # every cell holds the same number of images, except cells that ran out
    full = counts[counts < available[counts.index]]
    assert full.max() - full.min() <= 1
    assert (counts[counts == available[counts.index]] <= full.max()).all()
    # the first rows of the round robin are balanced too (slow detectors run on them)
    head = s.head(2 * len(available)).groupby(by).size()
    assert head.min() == head.max() == 2
    # missing labels as their own cells (NA x female, NA x male), as large as the others
    kept = balanced_sample(with_gaps, 280, by, seed=0)
    per_cell = kept.assign(race=kept["race"].fillna("NA")).groupby(by).size()
    assert len(per_cell) == len(available) + 2
    assert per_cell.max() - per_cell.min() <= 1  # no cell of FairFace val runs out here
    assert per_cell[("NA", "female")] >= 280 // len(per_cell)
    assert list(kept.index) == sorted(kept.index)
    assert balanced_sample(with_gaps, 280, by, seed=0).index.equals(kept.index)
    assert not balanced_sample(with_gaps, 280, by, seed=1).index.equals(kept.index)


def test_load_datasets_group_audit_options(data_root):
    _fairface(data_root)
    manifests, notes = load_datasets(["fairface", "cfd"], limit=60, seed=0, root=data_root,
                                     **GROUP_AUDIT_SAMPLING)
    assert list(manifests) == ["fairface", "cfd"]  # labelled as named
    ff = manifests["fairface"]
    assert len(ff) == 60 and ff.attrs["images_available"] == len(_fairface(data_root))
    assert (ff["split"] == "val").all()  # FairFace's val split by default
    assert ff.attrs["balanced_over"] == ["race", "gender"]
    assert ff["race"].notna().all() and ff["gender"].notna().all()
    table = notes.table.set_index("dataset")
    assert table.loc["fairface", "used"] == 60 and table.loc["fairface", "found"]
    assert "60 of" in table.loc["fairface", "note"]
    # same call, same rows
    again, _ = load_datasets(["fairface", "cfd"], limit=60, seed=0, root=data_root,
                             **GROUP_AUDIT_SAMPLING)
    assert all(again[k].index.equals(v.index) for k, v in manifests.items())


def test_load_datasets_skips_absent_suite_dataset_with_a_note(tmp_path):
    (tmp_path / "data").mkdir()
    manifests, notes = load_datasets(["cfd"], root=tmp_path / "data")
    assert manifests == {} and notes.missing == ["cfd"]
    assert "skipping its rows" in notes.sentences()[0]


def test_load_datasets_require_counts_what_it_leaves_out(data_root):
    if not (data_root / "cfd").is_dir():
        missing_data("CFD is not under FACELAB_DATA")
    full = load_dataset("cfd", root=data_root)
    manifests, notes = load_datasets(["cfd"], root=data_root, require="expression")
    cfd = manifests["cfd"]
    assert cfd["expression"].notna().all()
    assert len(cfd) == full["expression"].notna().sum()
    n_out = int(full["expression"].isna().sum())
    if n_out:
        assert f"{n_out:,} without expression left out" in notes.sentences()[0]
    with pytest.raises(KeyError, match="no column"):
        load_datasets(["cfd"], root=data_root, require="no_such_column")
