"""Every number from outside is checked where it enters: embeddings in verify and
Gallery, dataset labels outside what the dataset documents, and the validation helpers
themselves (clear errors naming where, or counted drops with reasons)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.core.validation import (
    Drops,
    InputError,
    check_embeddings,
    check_in_range,
    check_numeric,
    check_unique,
)
from facelab.data.datasets import MalformedEntriesWarning, load_dataset, malformed
from facelab.match.gallery import Gallery
from facelab.match.verification import verify


def _unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("bad, words", [
    (np.zeros(128, np.float32), "all zeros"),
    (np.full(128, np.nan, np.float32), "NaN"),
    (np.r_[np.ones(127), np.inf].astype(np.float32), "infinite"),
])
def test_verify_refuses_vectors_without_a_similarity(bad, words):
    e = _unit(0)
    with pytest.raises(InputError, match=f"embedding b: .*{words}"):
        verify(e, bad)
    with pytest.raises(InputError, match=f"embedding a: .*{words}"):
        verify(bad, e)
    assert verify(e, e).score == pytest.approx(1.0, abs=1e-6)  # good vectors still work


def test_gallery_refuses_or_counts_bad_templates_and_probes():
    good = np.stack([_unit(i) for i in range(3)])
    bad = good.copy()
    bad[1] = np.nan
    bad[2] = 0.0
    g = Gallery("sface", index="exact")
    with pytest.raises(InputError, match="enrolled embeddings, row 1: embedding contains"):
        g.enrol(bad, ["a", "b", "c"])
    assert len(g) == 0
    with pytest.warns(UserWarning, match="2 entries dropped"):
        report = g.enrol(bad, ["a", "b", "c"], errors="drop")
    assert report["enrolled"].tolist() == [True, False, False]
    assert "NaN" in report["reason"].iloc[1] and "all zeros" in report["reason"].iloc[2]
    assert len(g) == 1 and np.isfinite(g.embeddings_).all()
    with pytest.raises(InputError, match="probe embeddings, row 0: .*all zeros"):
        g.search(np.zeros((1, 128), np.float32))


def test_utkface_age_outside_documented_range_is_reported(tmp_path):
    root = tmp_path / "utk" / "UTKFace"
    root.mkdir(parents=True)
    for name in ("130_0_0_20170109150557335.jpg.chip.jpg", "116_1_0_20170109150557335.jpg.chip.jpg",
                 "30_0_1_20170109150557335.jpg.chip.jpg"):
        Image.new("RGB", (8, 8)).save(root / name, format="JPEG")
    with pytest.warns(MalformedEntriesWarning, match="1 malformed"):
        df = load_dataset("utkface", tmp_path / "utk")
    assert sorted(df["age"]) == [30.0, 116.0]
    bad = malformed(df)
    assert bad["entry"].str.startswith("UTKFace/130_0_0").all()
    assert "age 130 is outside the documented range 0-116" in bad["reason"].iloc[0]


def test_helpers_name_where_or_count_drops():
    wheres = [f"line {i + 2}" for i in range(4)]
    with pytest.raises(InputError, match=r"s.csv, line 3: score 'abc' is not a number"):
        check_numeric(["0.5", "abc", "", "inf"], source="s.csv", column="score", wheres=wheres)
    drops = Drops("s.csv")
    values, keep = check_numeric(["0.5", "abc", "", "inf"], source="s.csv", column="score",
                                 wheres=wheres, errors="drop", drops=drops)
    assert keep.tolist() == [True, False, False, False] and len(drops) == 3
    assert "3 entries dropped" in drops.summary()
    assert set(drops.table()["where"]) == {"line 3", "line 4", "line 5"}
    with pytest.raises(InputError, match=r"line 3: score 101 is outside the declared range "
                                         r"\[0, 100\]"):
        check_in_range(np.array([50.0, 101.0]), 0, 100, source="s.csv", column="score",
                       wheres=wheres[:2])
    frame = pd.DataFrame({"probe": ["a", "a", "b"], "reference": ["x", "x", "x"]})
    with pytest.raises(InputError, match=r"line 3: duplicate pair \('a', 'x'\) \(first at "
                                         r"line 2\)"):
        check_unique(frame, ["probe", "reference"], source="s.csv", wheres=wheres[:3],
                     what="pair")
    _, keep = check_embeddings(np.ones((2, 4)), dim=4)
    assert keep.all()
    with pytest.raises(InputError, match="shape"):
        check_embeddings(np.ones((2, 5)), dim=4)


def test_gallery_load_refuses_bad_stored_templates(tmp_path):
    g = Gallery("sface", index="exact")
    g.enrol(np.stack([_unit(1), _unit(2)]), ["a", "b"])
    path = g.save(tmp_path / "g.npz")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["embeddings"][1] = np.nan
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=r"g.npz: templates, row 1: embedding contains"):
        Gallery.load(path)
