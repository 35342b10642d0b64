"""Notebook hygiene: each audit notebook has one parameters cell, is committed without
outputs, and has its own papermill test (``tests/test_nb_<stem>.py``)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from facelab.report.audits import AUDITS, notebooks_dir

TESTS = Path(__file__).resolve().parent


def test_every_notebook_is_thin_parameterized_and_tested():
    stems = sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    assert stems, "no notebooks"
    for stem in stems:
        assert (TESTS / f"test_nb_{stem}.py").exists(), f"no papermill test for {stem}"
        assert stem in AUDITS, f"{stem} has no model-card entry in facelab.report.audits.AUDITS"
        nb = nbformat.read(str(notebooks_dir() / f"{stem}.ipynb"), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{stem}: exactly one cell tagged 'parameters'"
        for name in ("output_dir", "seed"):
            assert name in tagged[0].source, f"{stem}: parameter {name} missing"
        assert nb.cells[0].cell_type == "markdown", f"{stem}: open with prose"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
            f"{stem}: commit notebooks without outputs"
        assert nb.metadata.get("kernelspec", {}).get("name") == "facelab", stem
