"""Dataset adapters: counts on the shared data match its README; formats not in the shared
data are read from small files written here; malformed entries are reported, not dropped."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.data.datasets import (
    COLUMNS,
    EXPRESSIONS,
    DatasetNotFoundError,
    MalformedEntriesWarning,
    find_datasets,
    list_datasets,
    load_dataset,
    load_pairs,
    malformed,
)


def _load(name, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MalformedEntriesWarning)
        return load_dataset(name, root, **kw)


def _check_schema(df: pd.DataFrame) -> None:
    assert tuple(df.columns[:len(COLUMNS)]) == COLUMNS
    assert df["expression"].dropna().isin(EXPRESSIONS).all()
    assert df["gender"].dropna().isin(["female", "male"]).all()
    assert df["path"].str.startswith("/").all()


# ------------------------------------------------------------------ shared data

def test_fairface_counts(data_root):
    df = _load("fairface", data_root)
    _check_schema(df)
    assert df["split"].value_counts().to_dict() == {"val": 4000, "train": 2000}
    val = df[df["split"] == "val"]
    assert val["race_original"].value_counts().to_dict() == {
        "White": 776, "East Asian": 587, "Latino_Hispanic": 580, "Black": 577,
        "Southeast Asian": 536, "Indian": 534, "Middle Eastern": 410}
    assert val["gender"].value_counts().to_dict() == {"male": 2111, "female": 1889}
    assert (val["race"] == "Asian").sum() == 587 + 536
    assert df["subject"].isna().all() and df["age"].isna().all()
    assert set(df["age_bin"]) <= {"0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59",
                                  "60-69", "more than 70"}
    assert len(load_dataset("fairface", data_root, split="val")) == 4000
    assert len(load_dataset("fairface", data_root / "fairface", split="train")) == 2000
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("fairface", data_root, split="test")


def test_utkface_reports_the_two_malformed_names(data_root):
    with pytest.warns(MalformedEntriesWarning, match="2 malformed"):
        df = load_dataset("utkface", data_root)
    _check_schema(df)
    bad = malformed(df)
    assert len(df) == 3000 and len(bad) == 2 and len(df) + len(bad) == 3002
    assert bad["reason"].str.contains("lacks").all()
    assert df["age"].between(0, 120).all()
    block = df.groupby(["gender", "race_original"]).size()
    assert (block >= 200).all()  # the balanced block of 200 per gender x race
    assert df["age_bin"].notna().all()


def test_cfd_counts(data_root):
    df = _load("cfd", data_root)
    _check_schema(df)
    assert len(df) == 823
    assert df["expression"].value_counts().to_dict() == {
        "neutral": 691, "happy": 71, "angry": 34, "fear": 27}
    assert df["expression_original"].isin(["HC", "HO"]).sum() == 71
    fear_races = set(df.loc[df["expression"] == "fear", "race_original"])
    assert fear_races == {"B", "W"}
    assert df["subject"].str.match(r"^[ABILMW][FM]-\d+$").all()
    first = df.iloc[0]
    assert first["path"].endswith(f"{first['subject']}/{first['file'].split('/')[-1]}")


def test_celeba_identities(data_root):
    df = _load("celeba", data_root)
    _check_schema(df)
    assert len(df) == 1642 and df["subject"].nunique() == 80
    assert df.attrs["absent"] == 0


def test_fer2013_folder_counts(data_root):
    df = _load("fer2013", data_root)
    _check_schema(df)
    assert len(df) == 3589
    assert df["expression"].value_counts().to_dict() == {
        "happy": 879, "neutral": 626, "sad": 594, "fear": 528, "angry": 491, "surprise": 416,
        "disgust": 55}
    assert set(df["usage"]) == {"PrivateTest"} and set(df["split"]) == {"test"}


def test_ckplus48_counts_and_subjects(data_root):
    df = _load("ck+48", data_root)
    _check_schema(df)
    assert len(df) == 981
    assert df["expression_original"].value_counts().to_dict() == {
        "surprise": 249, "happy": 207, "disgust": 177, "anger": 135, "sadness": 84, "fear": 75,
        "contempt": 54}
    assert df["subject"].str.match(r"^S\d{3}$").all()
    assert (df.groupby("sequence").size() == 3).all()


def test_jaffe_counts(data_root):
    df = _load("jaffe", data_root)
    _check_schema(df)
    assert len(df) == 213 and (df["expression"] == "fear").sum() == 32
    assert df["subject"].nunique() == 10 and (df["gender"] == "female").all()


def test_deepface_pairs(data_root):
    df = _load("deepface_pairs", data_root)
    pairs = load_pairs("deepface_pairs", data_root)
    assert len(df) == 64
    assert len(pairs) == 528 and pairs["same"].sum() == 140 and (~pairs["same"]).sum() == 388
    assert (df.loc[pairs["index_a"], "path"].to_numpy() == pairs["path_a"].to_numpy()).all()


def test_find_datasets_and_listing(data_root):
    found = find_datasets(data_root).set_index("dataset")
    assert list(found.columns[:2]) == ["images", "path"]
    assert found.loc["utkface", "images"] == 3000 and found.loc["utkface", "malformed"] == 2
    assert found.loc["cfd", "images"] == 823
    names = set(list_datasets()["dataset"])
    assert {"fairface", "utkface", "cfd", "celeba", "fer2013", "ckplus48", "jaffe", "lfw",
            "rafdb", "deepface_pairs", "csv"} <= names


def test_data_check_command(data_root):
    import typer
    from typer.testing import CliRunner

    from facelab.cli import data

    app = typer.Typer()
    app.callback()(lambda: None)
    data.register(app)
    result = CliRunner().invoke(app, ["data", "check", "--root", str(data_root)])
    assert result.exit_code == 0, result.output
    assert "expression: angry 34, fear 27, happy 71, neutral 691" in result.output
    assert "malformed entries skipped: 2" in result.output
    assert "pairs: 528 (140 same, 388 different)" in result.output


# ------------------------------------------------------------------ formats written here

def _img(path, size=(8, 8), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)


def test_unknown_dataset_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="known datasets"):
        load_dataset("nope", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="fairface"):
        load_dataset("fairface", tmp_path)


def test_lfw_images_and_pairs(tmp_path):
    root = tmp_path / "data"
    people = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1}
    for name, n in people.items():
        for k in range(1, n + 1):
            _img(root / "lfw" / name / f"{name}_{k:04d}.jpg")
    (root / "lfw" / "pairs.txt").write_text(
        "2 1\nAnn_A 1 2\nAnn_A 1 Bob_B 1\nBob_B 1 2\nBob_B 2 Cid_C 1\n")
    df = load_dataset("lfw", root)
    assert len(df) == 6 and df["subject"].value_counts().to_dict() == people
    pairs = load_pairs("lfw", root)
    assert pairs["same"].tolist() == [True, False, True, False]
    assert pairs["fold"].tolist() == [0, 0, 1, 1]
    assert pairs["subject_a"].tolist() == ["Ann_A", "Ann_A", "Bob_B", "Bob_B"]
    assert pairs["subject_b"].tolist() == ["Ann_A", "Bob_B", "Bob_B", "Cid_C"]
    # a pair naming a missing image is reported, not dropped silently
    (root / "lfw" / "pairs.txt").write_text("1 1\nAnn_A 1 9\nAnn_A 1 Bob_B 1\n")
    with pytest.warns(MalformedEntriesWarning):
        pairs = load_pairs("lfw", root / "lfw")
    assert len(pairs) == 1 and "Ann_A_0009" in malformed(pairs)["reason"].iloc[0]


def test_fer2013_csv_release(tmp_path, tmp_cache):
    rng = np.random.default_rng(0)
    rows = []
    for i, (emo, usage) in enumerate([(0, "Training"), (2, "PublicTest"), (6, "PrivateTest"),
                                      (2, "PrivateTest")]):
        pix = rng.integers(0, 256, 48 * 48)
        if i == 1:
            pix[5] = 0
        rows.append({"emotion": emo, "pixels": " ".join(map(str, pix)), "Usage": usage})
    rows.append({"emotion": 3, "pixels": "1 2 3", "Usage": "Training"})  # malformed
    root = tmp_path / "fer2013"
    root.mkdir()
    pd.DataFrame(rows).to_csv(root / "fer2013.csv", index=False)
    with pytest.warns(MalformedEntriesWarning, match="1 malformed"):
        df = load_dataset("fer2013", root)
    assert df["expression"].tolist() == ["angry", "fear", "neutral", "fear"]
    assert df["split"].tolist() == ["train", "val", "test", "test"]
    assert not str(df["path"].iloc[0]).startswith(str(root))  # nothing written to the data
    assert str(df["path"].iloc[0]).startswith(str(tmp_cache))
    img = np.asarray(Image.open(df["path"].iloc[2]))
    want = np.array(rows[2]["pixels"].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(img, want)
    with pytest.warns(MalformedEntriesWarning):
        raw = load_dataset("fer2013", root, split="test", materialize=False)
    assert len(raw) == 2 and raw["path"].isna().all()
    np.testing.assert_array_equal(raw["pixels"].iloc[0], want)


def test_rafdb_basic(tmp_path):
    root = tmp_path / "rafdb"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 2\ntrain_00002.jpg 4\ntest_0001.jpg 7\ntest_0002.jpg 9\n"
        "test_0003.jpg 1\n")
    for stem in ("train_00001", "train_00002", "test_0001", "test_0002"):
        _img(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
    with pytest.warns(MalformedEntriesWarning, match="2 malformed"):
        df = load_dataset("rafdb", tmp_path)
    assert df["expression"].tolist() == ["fear", "happy", "neutral"]
    assert df["split"].tolist() == ["train", "train", "test"]
    reasons = malformed(df)["reason"].tolist()
    assert any("1-7" in r for r in reasons) and "file not found" in reasons


def test_celeba_attributes_and_partition(tmp_path):
    root = tmp_path / "celeba"
    for k in range(1, 4):
        _img(root / "img_align_celeba" / f"{k:06d}.jpg")
    (root / "identity_CelebA.txt").write_text(
        "000001.jpg 7\n000002.jpg 7\n000003.jpg 9\n000004.jpg 9\n")
    (root / "list_attr_celeba.txt").write_text(
        "4\nSmiling Male Eyeglasses\n000001.jpg -1  1 -1\n000002.jpg 1 1 -1\n"
        "000003.jpg 1 -1 1\n000004.jpg 1 -1 1\n")
    (root / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n000004.jpg 2\n")
    df = load_dataset("celeba", root)
    assert df["subject"].tolist() == ["7", "7", "9"]
    assert df["gender"].tolist() == ["male", "male", "female"]
    assert df["attr_Smiling"].tolist() == [False, True, True]
    assert df["split"].tolist() == ["train", "val", "test"]
    assert df.attrs["absent"] == 1  # listed, not on disk: a partial copy, not an error


def test_generic_csv_manifest(tmp_path):
    _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png")
    (tmp_path / "outside.png").write_bytes(b"x")
    csv = tmp_path / "imgs" / "labels.csv"
    pd.DataFrame({
        "filename": ["a.png", "b.png", "../outside.png", "missing.png"],
        "person": ["p1", "p2", "p3", "p4"], "sex": ["F", "man", "f", "M"],
        "ethnicity": ["black", "White", "x", "asian"], "emotion": ["Anger", "happiness",
                                                                   "fearful", "calm"],
        "years": ["31", "40", "?", "12"], "site": ["A", "B", "C", "D"],
    }).to_csv(csv, index=False)
    cols = {"filename": "path", "person": "subject", "sex": "gender", "ethnicity": "race",
            "emotion": "expression", "years": "age"}
    with pytest.warns(MalformedEntriesWarning):
        df = load_dataset("csv", csv, columns=cols, dataset="mine")
    assert df["dataset"].unique().tolist() == ["mine"]
    assert df["subject"].tolist() == ["p1", "p2"]
    assert df["gender"].tolist() == ["female", "male"]
    assert df["race"].tolist() == ["Black", "White"]
    assert df["race_original"].tolist() == ["black", "White"]
    assert df["expression"].tolist() == ["angry", "happy"]
    assert df["age"].tolist() == [31.0, 40.0] and df["age_bin"].tolist() == ["30-39", "40-49"]
    assert df["site"].tolist() == ["A", "B"]
    reasons = " ".join(malformed(df)["reason"])
    assert "outside the dataset root" in reasons and "file not found" in reasons
    with pytest.warns(MalformedEntriesWarning):
        allowed = load_dataset("csv", csv, columns=cols, allow_outside_root=True)
    assert "p3" in allowed["subject"].tolist()
    with pytest.raises(ValueError, match="not found"):
        load_dataset("csv", csv, columns={"nope": "path"})


def test_fairface_label_paths_must_stay_inside(tmp_path):
    root = tmp_path / "fairface"
    _img(root / "val" / "1.jpg")
    _img(tmp_path / "secret.jpg")
    (root / "fairface_label_val.csv").write_text(
        "file,age,gender,race,service_test\nval/1.jpg,3-9,Male,Indian,TRUE\n"
        "../secret.jpg,3-9,Male,Indian,TRUE\nval/1.jpg,3-9,Male,Martian,TRUE\n")
    with pytest.warns(MalformedEntriesWarning, match="2 malformed"):
        df = load_dataset("fairface", tmp_path)
    assert len(df) == 1 and df["race"].iloc[0] == "Indian"
    assert df.iloc[0]["service_test"]


def test_concat_of_manifests_keeps_working(tmp_path):
    root = tmp_path / "utk" / "UTKFace"
    _img(root / "20_0_1_20170101.jpg.chip.jpg")
    _img(root / "20_1_20170101.jpg.chip.jpg")
    with pytest.warns(MalformedEntriesWarning):
        a = load_dataset("utkface", tmp_path / "utk")
    both = pd.concat([a, a])
    assert len(both) == 2 and a["race"].tolist() == ["Black"]


def test_lfw_gender_and_race_labels_written_files(tmp_path):
    from facelab.data.datasets.lfw import label_report

    root = tmp_path / "lfw"
    people = {"Ann_A": 2, "Bob_B": 2, "Cid_C": 1, "Dee_D": 2, "Eve_E": 1}
    for name, n in people.items():
        for k in range(1, n + 1):
            _img(root / "lfw" / name / f"{name}_{k:04d}.jpg")
    (root / "male_names.txt").write_text(
        "Bob_B_0001.jpg\nBob_B_0002.jpg\nCid_C_0001.jpg\nDee_D_0001.jpg\nGhost_0001.jpg\n"
        "not a file name\n")
    (root / "female_names.txt").write_text(
        "Ann_A_0001.jpg\nAnn_A_0002.jpg\nCid_C_0001.jpg\nDee_D_0002.jpg\n")
    (root / "lfw_race.json").write_text(
        '{"Ann_A": "african", "Bob_B": "african,caucasian", "Cid_C": "eastasian",'
        ' "Dee_D": "martian", "Nobody": "latino"}')
    with pytest.warns(MalformedEntriesWarning):
        df = load_dataset("lfw", root)
    assert "not a file name" in malformed(df)["reason"].iloc[0]
    g = df.set_index("file")["gender"]
    assert g["lfw/Ann_A/Ann_A_0001.jpg"] == "female" and g["lfw/Bob_B/Bob_B_0002.jpg"] == "male"
    assert pd.isna(g["lfw/Cid_C/Cid_C_0001.jpg"])  # in both lists
    assert pd.isna(g["lfw/Eve_E/Eve_E_0001.jpg"])  # in neither
    assert g.filter(like="Dee_D").isna().all()  # a person labelled both ways
    orig = df.set_index("file")["gender_original"]
    assert orig["lfw/Cid_C/Cid_C_0001.jpg"] == "both"
    race = df.drop_duplicates("subject").set_index("subject")
    assert race.loc["Ann_A", "race"] == "Black"
    assert race.loc["Bob_B", "race"] == "Other"  # combination: explicit, counted
    assert race.loc["Bob_B", "race_original"] == "african,caucasian"
    assert race.loc["Cid_C", "race"] == "Asian"
    assert pd.isna(race.loc["Dee_D", "race"]) and pd.isna(race.loc["Eve_E", "race"])
    rep = label_report(df).set_index("case")["count"]
    assert rep.filter(like="both gender lists").item() == 1
    assert rep.filter(like="neither gender list").item() == 1
    assert rep.filter(like="different genders").item() == 1
    assert rep.filter(like="not on disk").item() == 1
    assert rep.filter(like="joined by commas").item() == 1
    assert rep.filter(like="outside the MICA").item() == 1
    assert rep.filter(like="without images").item() == 1
    assert rep.filter(like="without a race").item() == 1
    # combinations can be left missing instead
    with pytest.warns(MalformedEntriesWarning):
        df2 = load_dataset("lfw", root, race_combined=None)
    assert df2.loc[df2["subject"] == "Bob_B", "race"].isna().all()


def test_lfw_labels_on_shared_data(data_root):
    from facelab.data.datasets.lfw import label_report

    df = load_dataset("lfw", data_root)
    assert len(df) == 7701 and df["subject"].nunique() == 4281
    counts = df["gender_original"].value_counts()
    # README: 5,765 male and 1,934 female images; the 2 images in both lists lose theirs
    assert counts["male"] + counts["both"] == 5765 and counts["female"] + counts["both"] == 1934
    assert counts["both"] == 2
    assert df["gender"].isna().sum() == 2 + 4  # both lists + neither list
    person = df.drop_duplicates("subject")
    assert person["race_original"].notna().sum() == 723
    races = person["race_original"].value_counts()
    assert (races["caucasian"], races["african"], races["latino"], races["eastasian"],
            races["asianindian"]) == (565, 45, 16, 10, 7)
    rep = label_report(df).set_index("case")["count"]
    assert rep.filter(like="joined by commas").item() == person["race_original"].str.contains(
        ",").sum()
    n = df.groupby("subject").size()
    g = df.groupby("subject")["gender"].first()
    several = g[n >= 2].value_counts()
    assert 1100 <= several["male"] <= 1200 and 380 <= several["female"] <= 440
