"""Pairs and gallery/probe builders: exact counts, seeded, demographic-matched impostors."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest

from facelab.data.protocols import gallery_probe_split, genuine_pairs, impostor_pairs, make_pairs


@pytest.fixture
def manifest() -> pd.DataFrame:
    # 12 subjects with 1..4 images, gender by subject, two races; a row without subject
    rows = []
    for s in range(12):
        for k in range(1 + s % 4):
            rows.append({"path": f"/x/{s}_{k}.jpg", "subject": f"s{s}",
                         "gender": "female" if s % 2 else "male",
                         "race": "Black" if s < 6 else "White"})
    rows.append({"path": "/x/anon.jpg", "subject": None, "gender": "male", "race": "White"})
    df = pd.DataFrame(rows)
    df["subject"] = df["subject"].astype("string")
    df.index = [f"r{i}" for i in range(len(df))]  # non-default labels must be respected
    return df


def test_all_pairs_counts(manifest):
    known = manifest.dropna(subset=["subject"])
    sizes = known.groupby("subject").size()
    n_gen = sum(comb(int(n), 2) for n in sizes)
    n_imp = comb(len(known), 2) - n_gen
    pairs = make_pairs(manifest)
    assert pairs["same"].sum() == n_gen and (~pairs["same"]).sum() == n_imp
    assert (pairs.loc[pairs["same"], "subject_a"] == pairs.loc[pairs["same"], "subject_b"]).all()
    assert (pairs.loc[~pairs["same"], "subject_a"] != pairs.loc[~pairs["same"],
                                                               "subject_b"]).all()
    assert not pairs.duplicated(["index_a", "index_b"]).any()
    assert (manifest.loc[pairs["index_a"], "path"].to_numpy() == pairs["path_a"].to_numpy()).all()
    # each file its own person when the subject is missing
    distinct = make_pairs(manifest, missing="distinct")
    assert (~distinct["same"]).sum() == n_imp + len(known)


def test_sampling_is_seeded(manifest):
    a = make_pairs(manifest, n_genuine=5, n_impostor=20, seed=7)
    b = make_pairs(manifest, n_genuine=5, n_impostor=20, seed=7)
    c = make_pairs(manifest, n_genuine=5, n_impostor=20, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert a["same"].sum() == 5 and (~a["same"]).sum() == 20
    assert not a.equals(c)
    assert not a.duplicated(["index_a", "index_b"]).any()


def test_impostors_within_group(manifest):
    pairs = impostor_pairs(manifest, within=["gender", "race"], group_cols=["gender", "race"])
    assert (pairs["gender_a"] == pairs["gender_b"]).all()
    assert (pairs["race_a"] == pairs["race_b"]).all()
    known = manifest.dropna(subset=["subject"])
    expected = 0
    for _, g in known.groupby(["gender", "race"]):
        sizes = g.groupby("subject").size()
        expected += comb(len(g), 2) - sum(comb(int(n), 2) for n in sizes)
    assert len(pairs) == expected
    sampled = make_pairs(manifest, n_impostor=15, impostors_within="gender", seed=1)
    imp = sampled[~sampled["same"]]
    assert len(imp) == 15 and (imp["gender_a"] == imp["gender_b"]).all()


def test_rejection_sampling_on_a_large_manifest():
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"path": [f"/p/{i}" for i in range(n)],
                       "subject": pd.array(rng.integers(0, 800, n).astype(str), "string")})
    pairs = impostor_pairs(df, n=5000, seed=3)
    assert len(pairs) == 5000 and not pairs.duplicated(["index_a", "index_b"]).any()
    assert (pairs["subject_a"] != pairs["subject_b"]).all()
    assert (pairs["index_a"] < pairs["index_b"]).all()
    assert len(genuine_pairs(df, n=100, seed=1)) == 100


def test_gallery_probe_split(manifest):
    gallery, probes = gallery_probe_split(manifest, nonmated_fraction=0.5, seed=2)
    mated, non = probes[probes["mated"]], probes[~probes["mated"]]
    enrolled = set(gallery["subject"])
    assert set(mated["subject"]) <= enrolled
    assert not set(non["subject"]) & enrolled  # non-mated subjects are never in the gallery
    assert not set(gallery.index) & set(probes.index)
    eligible = (manifest.groupby("subject").size() > 1).sum()
    assert len(set(non["subject"])) == round(0.5 * eligible)
    assert gallery.groupby("subject").size().max() == 1
    again = gallery_probe_split(manifest, nonmated_fraction=0.5, seed=2)
    pd.testing.assert_frame_equal(probes, again[1])
    g2, p2 = gallery_probe_split(manifest, seed=2, distractors=False, gallery_per_subject=2)
    assert (g2.groupby("subject").size() == 2).all()


def test_celeba_protocols(data_root):
    from facelab.data.datasets import load_dataset

    m = load_dataset("celeba", data_root)
    pairs = make_pairs(m, n_genuine=1000, n_impostor=1000, seed=0)
    assert pairs["same"].sum() == 1000
    gallery, probes = gallery_probe_split(m, seed=0)
    assert gallery["subject"].nunique() == 40 and probes["subject"].nunique() == 80


def test_rejection_sampler_gives_distinct_valid_pairs_reproducibly():
    from facelab.data.protocols import _reject_sample

    codes = np.random.default_rng(0).integers(0, 300, size=2000)
    a, b = _reject_sample(codes, 50_000, np.random.default_rng(7))
    assert len(a) == 50_000 and (a < b).all() and (codes[a] != codes[b]).all()
    keys = a * len(codes) + b
    assert (np.diff(keys) > 0).all()  # sorted by (a, b), no pair twice
    a2, b2 = _reject_sample(codes, 50_000, np.random.default_rng(7))
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
