"""Run one audit notebook with papermill on small parameters and read what it recorded.

Each notebook has its own ``tests/test_nb_<stem>.py`` that calls :func:`run_notebook` and
asserts on the recorded values (scrapbook glue), never on printed text.
"""

from __future__ import annotations

import os
from pathlib import Path

import scrapbook as sb

from facelab.report.audits import notebooks_dir
from facelab.report.runner import run_audit


def run_notebook(stem: str, params: dict, tmp_path: Path, data_root: Path) -> tuple[Path, dict]:
    """Execute ``notebooks/<stem>.ipynb`` into ``tmp_path/<stem>``; return the run folder and
    ``{name: value}`` of everything the notebook glued. Checks the run folder is complete."""
    nb = notebooks_dir() / f"{stem}.ipynb"
    assert nb.exists(), f"{nb} missing"
    os.environ["MPLBACKEND"] = "agg"
    os.environ["FACELAB_DATA"] = str(data_root)
    run = run_audit(nb, parameters=params, results_root=tmp_path, run_id=stem, progress=False)
    for name in ("provenance.json", "metrics.json", f"{stem}.html", "model_card.md"):
        assert (run / name).exists(), name
    assert list((run / "figures").glob("*.png")), "the notebook recorded no figure"
    scraps = sb.read_notebook(str(run / nb.name)).scraps
    return run, {name: scrap.data for name, scrap in scraps.items()}
