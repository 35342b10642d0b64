"""A fresh machine: every audit, run with no data at all (or on a dataset without the labels
it needs), ends with a plain message saying what is missing, in the notebook, the HTML
report and the run folder; never a Python traceback. The tour still runs, on
scikit-image's bundled photos."""

from __future__ import annotations

import json

import nbformat
import pytest

from facelab.report.audits import AUDITS, notebooks_dir
from facelab.report.datastatus import NEEDS_DATA, status_lines
from facelab.report.runner import run_audit
from facelab.report.runs_index import collect_runs

SMALL = {"00_tour": {"limit": 3}, "06_train_expression": {"epochs": 1, "limit": 10}}
TRACEBACK_MARKS = ("Traceback (most recent call last)", "---> ", "KeyError")


def _outputs(nb_path):
    nb = nbformat.read(str(nb_path), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _no_traceback(run, stem):
    for out in _outputs(run / f"{stem}.ipynb"):
        text = "\n".join(out.get("traceback", [])) + str(out.get("text", ""))
        for mark in TRACEBACK_MARKS:
            assert mark not in text, f"{stem}: {mark!r} in an output:\n{text[:1500]}"
    html = (run / f"{stem}.html").read_text()
    assert "Traceback (most recent call last)" not in html


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(AUDITS))
def test_every_audit_without_data_ends_with_a_plain_message(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("FACELAB_RESULTS", str(tmp_path / "results"))
    run = run_audit(notebooks_dir() / f"{stem}.ipynb", parameters={"limit": 5, **SMALL.get(
        stem, {})}, results_root=tmp_path / "results", run_id=stem, progress=False)
    prov = json.loads((run / "provenance.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    _no_traceback(run, stem)
    if stem == "00_tour":  # the tour needs no dataset
        assert prov["status"] == "ok", prov
        assert metrics["n_faces"] == 1
        html = (run / f"{stem}.html").read_text()
        assert "bundled photos" in html
        return
    assert prov["status"] == NEEDS_DATA and prov["error"] is None, prov
    message = prov["missing_data"]
    assert message.startswith("This audit needs ") and "no-such-folder" in message
    assert "How to get them" in message
    assert metrics["missing_data"] == message  # the run folder says the same
    html = (run / f"{stem}.html").read_text()
    assert "This audit stopped: it needs data it could not find" in html
    errors = [o for o in _outputs(run / f"{stem}.ipynb") if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "MissingDataError"
    assert errors[0].traceback[2] == message.splitlines()[0]
    # the index lists the run with its status and the message
    [row] = collect_runs(tmp_path / "results")
    assert row["status"] == NEEDS_DATA and row["note"] == message


@pytest.mark.slow
def test_audit_on_a_dataset_without_the_labels_it_needs(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("FACELAB_DATA", str(data_root))
    stem = "05_attribute_audit"
    run = run_audit(notebooks_dir() / f"{stem}.ipynb",
                    parameters={"limit": 5, "datasets": ["celeba"]},
                    results_root=tmp_path, run_id="x", progress=False)
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["status"] == NEEDS_DATA
    assert "celeba was found but has no race or gender labels" in prov["missing_data"]
    _no_traceback(run, stem)


def test_status_lines_say_what_is_missing_and_how_to_get_it(tmp_path, data_root):
    lines = status_lines(tmp_path / "nothing-here")
    text = "\n".join(lines)
    assert "does not exist" in lines[0]
    assert "00_tour runs on scikit-image's bundled photos" in text
    assert f"`facelab data fetch lfw --root {(tmp_path / 'nothing-here').resolve()}` " \
           "downloads it" in text
    assert "`facelab data fetch cfd` says where to request it" in text
    found = "\n".join(status_lines(data_root))
    assert "fairface (01/02/03/05)" in found and "lfw" in found
