"""Label errors (facelab.data.label_errors): byte-identical files under different identities are
certain errors, impostor pairs at a near-duplicate score are likely ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facelab.data import label_errors as L
from facelab.studies.matching import Embeddings


def test_celeba_byte_identical_images_under_two_identities(data_root):
    from facelab.data.datasets import load_dataset

    df = load_dataset("celeba", data_root)
    ident = L.identical_images(df)
    cert = ident[ident["kind"] == "certain"]
    pair = cert[cert["file"].isin(["img_celeba/019673.jpg", "img_celeba/021423.jpg"])]
    assert len(pair) == 2 and pair["sha256"].nunique() == 1
    assert set(pair["subject"]) == {"7320", "7312"}
    assert set(L.certain_error_images(ident)) >= set(pair["index"])
    counts = L.summary(ident)
    assert counts["images behind certain errors"] >= 2


def test_identical_files_written_by_the_test(tmp_path):
    files = {"a.jpg": b"one", "b.jpg": b"one", "c.jpg": b"two", "d.jpg": b"two",
             "e.jpg": b"three", "f.jpg": b"one"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    man = pd.DataFrame({"file": list(files), "path": [str(tmp_path / f) for f in files],
                        "subject": ["p1", "p2", "p3", "p3", "p4", pd.NA]})
    ident = L.identical_images(man)
    g = ident.set_index("file")
    assert g.loc["a.jpg", "kind"] == "certain" and g.loc["a.jpg", "n_copies"] == 3
    assert g.loc["f.jpg", "n_identities"] == 3  # no subject: its own person
    assert g.loc["c.jpg", "kind"] == "same identity"
    assert "e.jpg" not in g.index
    assert sorted(L.certain_error_images(ident)) == [0, 1, 5]
    # an unreadable file is not hashed (None), never matched
    assert L.file_hashes([tmp_path / "missing.jpg"]) == [None]


def _emb(index, vectors):
    feats = pd.DataFrame({"status": "ok", "reason": ""}, index=index)
    return Embeddings(model="sface", features=feats, matrix=vectors.astype(np.float32),
                      ok=np.ones(len(index), bool))


def test_flag_pairs_policies_and_likely_errors():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 16))
    v[4] = v[0] + 0.01 * rng.normal(size=16)  # a near-duplicate of image 0, another person
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    man = pd.DataFrame({"file": [f"f{i}" for i in range(5)], "source": "s",
                        "subject": ["A", "A", "B", "C", "D"]}, index=list("vwxyz"))
    emb = _emb(man.index, v)
    found = L.likely_errors(man, emb, 0.95, block=2)
    assert found[["index_a", "index_b"]].values.tolist() == [["v", "z"]]
    assert found["score"].iloc[0] >= 0.95
    scored = pd.DataFrame({"index_a": ["v", "v", "w", "x"], "index_b": ["w", "z", "x", "y"],
                           "same": [True, False, False, False],
                           "score": [0.5, 0.99, 0.1, 0.2]})
    flagged = L.flag_pairs(scored, ["x"], 0.95)
    assert flagged["label_error"].tolist() == ["", "likely", "certain", "certain"]
    kept, counts = L.apply_policy(flagged)
    assert counts == {"certain": 2, "likely": 1, "excluded": 2} and len(kept) == 2
    kept, counts = L.apply_policy(flagged, "exclude all")
    assert counts["excluded"] == 3 and kept["label_error"].tolist() == [""]
    kept, counts = L.apply_policy(flagged, "keep")
    assert counts["excluded"] == 0 and len(kept) == 4
    with pytest.raises(ValueError, match="must be one of"):
        L.apply_policy(flagged, "drop")
    assert L.near_duplicate_level("sface") == L.NEAR_DUPLICATE["sface"]
    with pytest.raises(ValueError, match="no default near-duplicate level"):
        L.near_duplicate_level("my_model")


def test_data_check_lists_the_celeba_label_error(data_root):
    from typer.testing import CliRunner

    from facelab.cli import app

    out = CliRunner().invoke(app, ["data", "check", "-d", "celeba", "--root", str(data_root)])
    assert out.exit_code == 0, out.output
    assert "label errors, certain" in out.output
    assert "img_celeba/019673.jpg [7320] == img_celeba/021423.jpg [7312]" in out.output


def test_search_screen_drops_certain_images_and_lists_likely_pairs():
    from facelab.studies import search as S

    rng = np.random.default_rng(2)
    v = rng.normal(size=(5, 16))
    v[3] = v[2] + 0.01 * rng.normal(size=16)  # near-duplicate of row 2, another identity
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    man = pd.DataFrame({"file": [f"f{i}" for i in range(5)], "source": "s",
                        "role": ["gallery", "gallery", "gallery", "probe", "probe"],
                        "subject": ["A", "B", "C", pd.NA, pd.NA]}, index=list("vwxyz"))
    feats = pd.DataFrame({"status": "ok", "reason": "",
                          "image_sha256": ["h1", "h2", "h3", "h4", "h1"]}, index=man.index)
    emb = Embeddings(model="sface", features=feats, matrix=v.astype(np.float32),
                     ok=np.ones(5, bool))
    kept, listed, counts = S.screen_label_errors(man, {"sface": emb})
    assert list(kept.index) == ["w", "x", "y"]  # v and z are the same file, two people
    assert counts["images behind certain errors"] == 2 and counts["images excluded"] == 2
    likely = listed[listed["kind"] == "likely"]
    assert likely[["index_a", "index_b"]].values.tolist() == [["x", "y"]]
    kept, _, counts = S.screen_label_errors(man, {"sface": emb}, policy="exclude all")
    assert list(kept.index) == ["w"]
    kept, _, counts = S.screen_label_errors(man, {"sface": emb}, policy="keep")
    assert len(kept) == 5 and counts["images excluded"] == 0
