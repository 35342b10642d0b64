"""Dataset specs: registered names, your own CSV manifest, and errors that stop the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from _own_data import lfw_people_csv
from conftest import missing_data

from facelab.cli.audit import parse_audit_args
from facelab.data.resolve import (
    REQUIRED_ENV,
    DatasetSpecError,
    dataset_label,
    parse_dataset_spec,
    resolve_datasets,
)
from facelab.data.sampling import GROUP_AUDIT_SAMPLING, load_datasets
from facelab.report.runner import absolute_paths, required_datasets
from facelab.studies.expression import available_datasets
from facelab.studies.matching import load_manifests

COLUMNS = {"photo": "path", "person": "subject", "sex": "gender", "ethnicity": "race"}
RACE_MAP = {"white": "White", "black": "Black", "latino": "Latino", "east asian": "Asian",
            "south asian": "Indian"}


@pytest.fixture(scope="module")
def own_csv(data_root, tmp_path_factory):
    lfw = data_root / "lfw"
    if not (lfw / "lfw_race.json").is_file():
        missing_data("LFW with its label files is not under FACELAB_DATA")
    return lfw_people_csv(lfw, tmp_path_factory.mktemp("user") / "faces.csv")


def _spec(csv, data_root, **extra):
    return {"csv": str(csv), "columns": COLUMNS, "images_root": str(data_root / "lfw" / "lfw"),
            "race_map": RACE_MAP, **extra}


def test_parse_forms():
    assert parse_dataset_spec("fairface:val").label() == "fairface:val"
    r = parse_dataset_spec("csv:/data/faces.csv")
    assert r.is_csv and r.root == "/data/faces.csv" and r.key == "faces"
    assert parse_dataset_spec("/data/x/my.CSV").is_csv
    r = parse_dataset_spec({"csv": "/d/f.csv", "columns": {"person": "subject"},
                            "images_root": "photos", "name": "mine"})
    assert r.key == "mine" and r.options["images_root"] == "/d/photos"
    assert r.options["columns"] == {"person": "subject"}
    assert dataset_label({"dataset": "lfw"}) == "lfw"
    # built-in datasets the suite looks for skip quietly; others and explicit ones do not
    assert parse_dataset_spec("cfd", required=set()).optional
    assert not parse_dataset_spec("cfd", required={"cfd"}).optional
    assert not parse_dataset_spec("rafdb", required=set()).optional
    assert not parse_dataset_spec("cfd", strict=True, required=set()).optional


@pytest.mark.parametrize("spec, message", [
    ("nosuchset", "unknown dataset"),
    ({"csv": "a.csv", "colums": {}}, "unknown keys ['colums']"),
    ({"columns": {}}, "give 'csv: <file>'"),
    ({"csv": "a.csv", "columns": ["person"]}, "'columns' must map"),
    (3, "give a name"),
])
def test_bad_specs_say_why(spec, message):
    with pytest.raises(DatasetSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_dataset_spec(spec)


def test_missing_csv_stops_every_loader(tmp_path):
    missing = str(tmp_path / "my.csv")
    for spec in (missing, f"csv:{missing}", {"csv": missing}):
        with pytest.raises(DatasetSpecError, match="does not exist"):
            load_manifests([spec])
        with pytest.raises(DatasetSpecError, match="does not exist"):
            load_datasets([spec], **GROUP_AUDIT_SAMPLING)
        with pytest.raises(DatasetSpecError, match="does not exist"):
            available_datasets([spec])


def test_default_datasets_skip_quietly_unless_named(tmp_path, monkeypatch):
    empty = tmp_path / "data"
    empty.mkdir()
    loaded, notes = resolve_datasets(["cfd", "fairface"], root=empty,
                                     default_splits={"fairface": "val"})
    assert loaded == [] and not notes["found"].any()
    assert notes["note"].str.contains("skipping its rows").all()
    monkeypatch.setenv(REQUIRED_ENV, json.dumps(["cfd"]))
    with pytest.raises(DatasetSpecError, match="cannot be loaded"):
        resolve_datasets(["fairface", "cfd"], root=empty)
    with pytest.raises(DatasetSpecError, match="cannot be loaded"):
        resolve_datasets(["fairface"], root=empty, strict=True)


def test_csv_with_no_usable_row_is_an_error(tmp_path):
    csv = tmp_path / "faces.csv"
    csv.write_text("photo,person\nnothere.jpg,a\n../../etc/passwd,b\n")
    with pytest.raises(DatasetSpecError, match=r"no usable rows: .*file not found"):
        load_manifests([{"csv": str(csv), "columns": {"photo": "path", "person": "subject"}}])


def test_own_csv_loads_with_groups_and_counts_bad_rows(own_csv, data_root, tmp_path):
    df = pd.read_csv(own_csv)
    assert len(df) == 200 and df["person"].nunique() == 100
    broken = tmp_path / "faces.csv"
    extra = pd.DataFrame([{"photo": "Nobody/Nobody_0001.jpg", "person": "x", "sex": "F",
                           "ethnicity": "white"},
                          {"photo": "../../../etc/hosts", "person": "y", "sex": "M",
                           "ethnicity": "white"}])
    pd.concat([df, extra]).to_csv(broken, index=False)
    manifest, notes = load_manifests(["celeba", _spec(broken, data_root, name="mine")],
                                     limit=None)
    mine = manifest[manifest["source"] == "mine"]
    assert len(mine) == 200 and mine["subject"].nunique() == 100
    assert set(mine["group"]) >= {"White male", "White female", "Black male"}
    assert not (mine["group"] == "unlabelled").any()
    row = notes.table.set_index("dataset").loc["mine"]
    assert row["malformed"] == 2 and "file not found" in row["note"]
    assert "outside the dataset root" in row["note"]
    # the same spec in the detection / attribute loader and the expression loader
    manifests, _ = load_datasets([_spec(own_csv, data_root)], limit=50, **GROUP_AUDIT_SAMPLING)
    assert list(manifests) == ["faces"] and len(manifests["faces"]) == 50


def test_audit_cli_takes_specs_and_makes_paths_absolute(tmp_path, monkeypatch):
    params = tmp_path / "conf" / "params.yaml"
    params.parent.mkdir()
    params.write_text("datasets:\n  - {csv: faces.csv, columns: {person: subject}}\n"
                      "embedders: [sface, cards/mine.yaml]\n")
    monkeypatch.chdir(tmp_path)
    names, merged, _, _, _ = parse_audit_args(
        ["02", "-f", str(params), "-p", "genuine_dataset", "csv:rel/other.csv",
         "-p", "mated_dataset", "lfw"])
    assert names == ["02"]
    assert merged["datasets"][0]["csv"] == str(params.parent / "faces.csv")
    assert merged["embedders"][1] == str(params.parent / "cards" / "mine.yaml")
    assert merged["genuine_dataset"] == "csv:rel/other.csv"  # made absolute by run_audit
    assert absolute_paths(merged, tmp_path)["genuine_dataset"] == \
        f"csv:{tmp_path / 'rel' / 'other.csv'}"
    assert required_datasets({"datasets": ["cfd", "fairface:train", {"csv": "x.csv"}],
                              "limit": 3, "mated_dataset": "lfw"}) == ["cfd", "fairface", "lfw"]
    assert os.environ.get(REQUIRED_ENV) is None


def test_expression_loader_takes_a_csv(tmp_path, data_root):
    """04's loader: a CSV with an expression column, labelled by its name."""
    from facelab.train.data import expression_manifest

    src = data_root / "jaffe" / "jaffe"
    if not src.is_dir():
        missing_data("JAFFE not under FACELAB_DATA")
    files = sorted(src.glob("*.tiff"))[:12]
    csv = tmp_path / "expr.csv"
    pd.DataFrame({"file": [f.name for f in files],
                  "emotion": [f.name.split(".")[1][:2] for f in files]}).to_csv(csv, index=False)
    spec = {"csv": str(csv), "columns": {"file": "path", "emotion": "expression"},
            "images_root": str(src), "name": "my-expressions"}
    m = expression_manifest([spec])
    assert len(m) == 12 and m["expression"].notna().all()
    assert m.attrs["datasets"] == ["my-expressions"]
    assert Path(m["path"].iloc[0]).is_file()
