"""Error galleries on real shared images: thumbnail sizes and boxes, seeded selection,
pairs, unreadable images, the off switch, and nothing written to disk."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from facelab.viz.examples import (  # noqa: E402
    THUMBNAIL_SIZE,
    error_gallery,
    missed_face_examples,
    record_gallery,
    select_examples,
    thumbnail,
)

GREEN = np.array([0, 200, 0])


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cfd_faces(data_root) -> pd.DataFrame:
    """24 CFD photos (400 px) with the box YuNet finds in each, and a race x gender group."""
    from facelab.core.io import load_image
    from facelab.data.datasets import load_dataset
    from facelab.models.registry import create_model

    cfd = load_dataset("cfd", root=data_root)
    cfd = cfd[cfd["expression"] == "neutral"].sort_values("file").iloc[::25].head(24)
    detector = create_model("yunet")
    boxes = []
    for path in cfd["path"]:
        faces = detector.detect(load_image(path))
        boxes.append([float(v) for v in max(faces, key=lambda f: f.area).box] if faces else None)
    out = cfd.assign(box=boxes, group=cfd["race"] + " " + cfd["gender"])
    out["caption"] = out["group"] + "\n" + out["subject"]
    assert out["box"].notna().sum() >= 20  # YuNet finds nearly every CFD face
    return out.reset_index(drop=True)


def test_thumbnail_is_small_cut_around_the_face_and_draws_the_box(cfd_faces):
    from facelab.core.io import load_image

    row = cfd_faces[cfd_faces["box"].notna()].iloc[0]
    full = load_image(row["path"])
    assert max(full.shape[:2]) > THUMBNAIL_SIZE  # the source is larger: it is shrunk
    t = thumbnail(row["path"], row["box"])
    assert t.dtype == np.uint8 and t.ndim == 3 and t.shape[2] == 3
    assert max(t.shape[:2]) == THUMBNAIL_SIZE
    assert (np.abs(t.astype(int) - GREEN).sum(axis=2) == 0).sum() > 4 * 20  # box outline
    whole = thumbnail(row["path"], None)
    assert max(whole.shape[:2]) == THUMBNAIL_SIZE
    assert whole.shape[0] / whole.shape[1] == pytest.approx(full.shape[0] / full.shape[1],
                                                            abs=0.02)
    assert (np.abs(whole.astype(int) - GREEN).sum(axis=2) == 0).sum() < 10  # no box drawn
    small = thumbnail(row["path"], row["box"], size=48)
    assert max(small.shape[:2]) == 48


def test_thumbnail_never_enlarges_a_small_image(data_root):
    path = next((data_root / "fer2013" / "test" / "fear").glob("*.jpg"))
    t = thumbnail(path, None)
    assert t.shape[:2] == (48, 48)


def test_gallery_shape_sizes_and_captions(cfd_faces):
    g = error_gallery(cfd_faces, rows="gender", by="group", n=5, seed=0, title="test")
    assert g.available == len(cfd_faces)
    assert len(g.examples) == 10  # 5 per gender
    assert list(pd.unique(g.examples["gender"])) == list(pd.unique(cfd_faces["gender"]))
    assert (g.examples["status"] == "shown").all() and g.unreadable == 0
    assert len(g.thumbnails) == 10
    for thumbs in g.thumbnails:
        assert len(thumbs) == 1
        assert all(max(t.shape[:2]) <= THUMBNAIL_SIZE for t in thumbs)
    axes = g.figure.axes
    assert len(axes) == 10  # a 2 x 5 grid, every cell used
    labels = [ax.get_xlabel() for ax in axes]
    assert set(labels) == set(g.examples["caption"])
    assert sum(len(ax.images) for ax in axes) == 10


def test_selection_is_seeded_spread_over_groups_and_ordered_on_request(cfd_faces):
    a = select_examples(cfd_faces, n=6, by="group", seed=3)
    b = select_examples(cfd_faces.copy(), n=6, by="group", seed=3)
    assert a.index.tolist() == b.index.tolist()
    others = {tuple(select_examples(cfd_faces, n=6, by="group", seed=s).index)
              for s in range(5)}
    assert len(others) > 1  # the seed matters
    # round robin: no group gets a second example before every group has one
    counts = a["group"].value_counts()
    assert counts.max() - counts.min() <= 1 or counts.min() == \
        cfd_faces["group"].value_counts().reindex(counts.index).min()
    scored = cfd_faces.assign(score=np.arange(len(cfd_faces)) % 7)
    top = select_examples(scored, n=4, order="score", seed=0)
    assert top["score"].tolist() == sorted(scored["score"], reverse=True)[:4]
    low = select_examples(scored, n=4, order="score", ascending=True, seed=0)
    assert low["score"].tolist() == sorted(scored["score"])[:4]
    g1 = error_gallery(cfd_faces, n=6, seed=3)
    g2 = error_gallery(cfd_faces, n=6, seed=3)
    assert g1.examples.index.tolist() == g2.examples.index.tolist()
    for t1, t2 in zip(g1.thumbnails, g2.thumbnails, strict=True):
        assert np.array_equal(t1[0], t2[0])


def test_pairs_side_by_side_and_unreadable_images_are_said(cfd_faces, tmp_path):
    a, b = cfd_faces.iloc[:4], cfd_faces.iloc[4:8]
    pairs = pd.DataFrame({"path": a["path"].to_numpy(), "box": a["box"].to_numpy(),
                          "path_b": b["path"].to_numpy(), "box_b": b["box"].to_numpy(),
                          "group": "g", "caption": ["p0", "p1", "p2", "p3"]})
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    pairs.loc[3, "path_b"] = str(bad)
    g = error_gallery(pairs, n=4, by=None, seed=0)
    assert len(g.examples) == 4
    assert [len(t) for t in g.thumbnails].count(2) == 3
    assert g.unreadable == 1
    assert g.examples.loc[3, "status"].startswith("unreadable")
    shapes = {ax.images[0].get_array().shape[:2] for ax in g.figure.axes}
    assert shapes == {(THUMBNAIL_SIZE, 2 * THUMBNAIL_SIZE + 4)}


def test_off_switch_reads_nothing_and_nothing_is_written(cfd_faces, tmp_path, monkeypatch):
    import facelab.core.io

    def refuse(*a, **k):
        raise AssertionError("an image was read with show_examples off")

    monkeypatch.setattr(facelab.core.io, "load_image", refuse)
    monkeypatch.setattr("facelab.viz.examples.load_image", refuse)
    assert error_gallery(cfd_faces, n=4, enabled=False) is None
    monkeypatch.undo()

    from facelab.report.record import Recorder

    run = tmp_path / "run"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rec = Recorder(run, glue=False)
    record_gallery(rec, "examples_test", error_gallery(cfd_faces, n=3, seed=0))
    record_gallery(rec, "examples_off", error_gallery(cfd_faces, n=3, enabled=False))
    assert os.listdir(elsewhere) == []
    assert [p.name for p in (run / "figures").iterdir()] == ["examples_test.png"]
    assert rec.metrics["examples_test"] == {"enabled": True, "available": len(cfd_faces),
                                            "shown": 3, "unreadable": 0}
    assert rec.metrics["examples_off"]["enabled"] is False


def test_empty_and_bad_inputs(cfd_faces):
    g = error_gallery(cfd_faces.iloc[:0], n=4)
    assert g.available == 0 and len(g.examples) == 0 and g.figure is not None
    with pytest.raises(ValueError, match="at most 96"):
        error_gallery(cfd_faces, size=128)
    with pytest.raises(ValueError, match="path"):
        error_gallery(cfd_faces.drop(columns=["path"]))
    with pytest.raises(ValueError, match="no column"):
        select_examples(cfd_faces, rows="nope")


def test_missed_faces_take_another_detectors_box(cfd_faces):
    manifest = cfd_faces.set_index(pd.Index([f"cfd:{f}" for f in cfd_faces["file"]]))
    rows = []
    for i, (idx, r) in enumerate(manifest.iterrows()):
        for det in ("a", "b"):
            missed = det == "a" and i % 3 == 0 or (det == "b" and i % 5 == 0)
            rows.append({"dataset": "cfd", "image": idx, "detector": det, "found": not missed,
                         "fta": missed, "reason": "no face detected" if missed else "",
                         "box": None if missed else r["box"], "race": r["race"],
                         "gender": r["gender"]})
    records = pd.DataFrame(rows)
    ex = missed_face_examples(records, {"cfd": manifest})
    assert len(ex) == int(records["fta"].sum())
    both = ex["caption"].str.contains("no detector found it")
    # images both detectors missed appear once per detector, with no box
    assert both.sum() == 2 * sum(1 for i in range(len(manifest)) if i % 15 == 0)
    assert ex.loc[both, "box"].isna().all()
    assert (ex.loc[~both, "box_note"] == "other").all()
    assert ex["path"].map(os.path.exists).all()
    g = error_gallery(ex, rows="detector", n=3, seed=0)
    assert set(g.examples["detector"]) == {"a", "b"}
    orange = np.array([255, 140, 0])
    drawn = [t[0] for t, note in zip(g.thumbnails, g.examples["box_note"], strict=True)
             if note == "other"]
    assert drawn and all((np.abs(t.astype(int) - orange).sum(axis=2) == 0).sum() > 40
                         for t in drawn)
