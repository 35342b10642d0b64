"""A new user's audit, end to end through ``facelab audit`` with no code written: their own
CSV of photos (two per person, gender and ethnicity columns, in a folder outside the
repository) and their own ONNX embedder described by a model card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _own_data import lfw_people_csv
from _own_model import TinyEmbedder, export, write_card
from conftest import missing_data


@pytest.mark.slow
def test_02_on_your_own_csv_and_model_card(data_root, tmp_path):
    lfw = data_root / "lfw"
    if not (lfw / "lfw_race.json").is_file():
        missing_data("LFW with its label files is not under FACELAB_DATA")
    user = tmp_path / "my_audit"  # the user's folder, outside the repository
    lfw_people_csv(lfw, user / "faces.csv", people=100, per_person=2)
    export(TinyEmbedder(seed=7), (1, 3, 64, 64), user / "acme.onnx")
    write_card(user / "acme.yaml", name="acme-embedder", kind="embedder", onnx="acme.onnx",
               input_size=64, colour="rgb", mean=127.5, std=128.0, crop="arcface",
               similarity="cosine", threshold=0.5, threshold_source="ACME documentation")
    spec = ("[{csv: faces.csv, name: myfaces, images_root: " + str(lfw / "lfw")
            + ", columns: {photo: path, person: subject, sex: gender, ethnicity: race},"
            " race_map: {white: White, black: Black, latino: Latino, east asian: Asian,"
            " south asian: Indian}}]")
    cli = Path(sys.executable).with_name("facelab")
    run = subprocess.run(
        [str(cli), "audit", "02_verification_demographics", "-p", "datasets", spec,
         "-p", "embedders", "[sface, acme.yaml]", "-p", "limit", "200", "-p", "n_boot", "200",
         "--results", str(user / "results"), "--stop-on-failure"],
        cwd=user, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = next(p for p in (user / "results").iterdir() if p.is_dir())
    metrics = json.loads((folder / "metrics.json").read_text())
    fmr = [r for r in metrics["fmr_by_group"] if r["source"] == "myfaces"]
    assert {r["embedder"] for r in fmr} == {"sface", "acme-embedder"}
    groups = {r["group"] for r in fmr if r["embedder"] == "sface"}
    assert {"White male", "White female", "Black male"} <= groups
    for r in fmr:
        assert r["n"] > 0 and 0 <= r["fmr"] <= 1 and r["ci_low"] <= r["fmr"] <= r["ci_high"]
    # two photos per person and group labels: FNMR by group at the same global threshold
    fnmr = [r for r in metrics["fnmr_by_group"] if r["source"] == "myfaces"]
    assert {r["embedder"] for r in fnmr} == {"sface", "acme-embedder"}
    sface = {r["group"]: r for r in fnmr if r["embedder"] == "sface"}
    assert sface["White male"]["n"] == 28 and sface["White female"]["n"] == 28
    assert sface["Black male"]["n"] == 17
    for r in fnmr:
        assert 0 <= r["fnmr"] <= 1 and r["ci_low"] <= r["fnmr"] <= r["ci_high"]
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["parameters"]["datasets"][0]["csv"] == str(user / "faces.csv")
    assert "acme-embedder" in json.dumps(prov)


@pytest.mark.slow
def test_a_named_csv_that_cannot_load_stops_the_audit(tmp_path):
    cli = Path(sys.executable).with_name("facelab")
    run = subprocess.run(
        [str(cli), "audit", "02_verification_demographics", "-p", "datasets",
         "[no_such_folder/my.csv]", "-p", "embedders", "[sface]", "-p", "limit", "5",
         "--results", str(tmp_path / "results")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 1
    folder = next(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["status"] == "failed"
    assert "DatasetSpecError" in prov["error"] and "does not exist" in prov["error"]
    assert str(tmp_path / "no_such_folder" / "my.csv") in prov["error"]
    # the terminal shows the reason itself, not the tail of papermill's traceback
    assert "DatasetSpecError" in run.stdout and "does not exist" in run.stdout, run.stdout


@pytest.mark.slow
def test_03_with_your_own_csv_as_the_mated_set(data_root, tmp_path):
    """``-f params.yaml`` with a CSV path relative to the file: one photo per person is
    enrolled, the other is a mated probe; FNIR and FPIR come out by group."""
    lfw = data_root / "lfw"
    if not (lfw / "lfw_race.json").is_file():
        missing_data("LFW with its label files is not under FACELAB_DATA")
    user = tmp_path / "my_audit"
    lfw_people_csv(lfw, user / "data" / "faces.csv", people=100, per_person=2)
    export(TinyEmbedder(seed=7), (1, 3, 64, 64), user / "acme.onnx")
    write_card(user / "acme.yaml", name="acme-embedder", kind="embedder", onnx="acme.onnx",
               input_size=64, mean=127.5, std=128.0, threshold=0.5,
               threshold_source="ACME documentation")
    (user / "params.yaml").write_text(
        "mated_dataset:\n  csv: data/faces.csv\n  name: myfaces\n"
        f"  images_root: {lfw / 'lfw'}\n"
        "  columns: {photo: path, person: subject, sex: gender, ethnicity: race}\n"
        "  race_map: {white: White, black: Black, latino: Latino, east asian: Asian,"
        " south asian: Indian}\n"
        "embedders: [sface, acme.yaml]\nlimit: 150\nn_probes: 100\nn_calibration_pairs: 20000\n"
        "n_boot: 100\n")
    cli = Path(sys.executable).with_name("facelab")
    run = subprocess.run(
        [str(cli), "audit", "03", "-f", "my_audit/params.yaml", "--results", str(user / "results"),
         "--stop-on-failure"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = next(p for p in (user / "results").iterdir() if p.is_dir())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {r["embedder"] for r in metrics["search_outcomes_by_group"]} == {"sface",
                                                                          "acme-embedder"}
    by = [r for r in metrics["search_outcomes_by_group"]
          if r["operating_point"] == "permissive" and r["embedder"] == "sface"]
    mated = {r["group"]: r["mated_searches"] for r in by if r.get("mated_searches")}
    assert mated["White"] == 56 and mated["Black"] == 24  # one probe per person
    whole = {r["operating_point"]: r for r in metrics["search_outcomes"]
             if r["embedder"] == "sface"}["permissive"]
    assert sum(r.get("misses") or 0 for r in by) == whole["misses"]
    assert sum(mated.values()) == whole["mated_searches"] == 100
