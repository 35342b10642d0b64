"""Every audit notebook runs top to bottom with papermill on small parameters, and the
values it recorded (scrapbook glue) are checked, not its printed text."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import scrapbook as sb

from facelab.audit import notebooks_dir, run_audit

pytestmark = pytest.mark.slow

Check = Callable[[dict], None]

# notebook stem -> (small parameters, assertions on recorded values)
CASES: dict[str, tuple[dict, Check]] = {}


def case(stem: str, **params):
    def decorate(check: Check) -> Check:
        CASES[stem] = (params, check)
        return check
    return decorate


def _executed(stem: str, params: dict, tmp_path: Path, data_root: Path) -> tuple[Path, dict]:
    nb = notebooks_dir() / f"{stem}.ipynb"
    assert nb.exists(), f"{nb} missing"
    os.environ["MPLBACKEND"] = "agg"
    os.environ["FACELAB_DATA"] = str(data_root)
    run = run_audit(nb, parameters=params, results_root=tmp_path, run_id=stem,
                    progress=False)
    scraps = sb.read_notebook(str(run / nb.name)).scraps
    return run, {name: scrap.data for name, scrap in scraps.items()}


@pytest.mark.parametrize("stem", sorted(CASES))
def test_notebook_runs_and_records(stem, tmp_path, data_root):
    params, check = CASES[stem]
    run, values = _executed(stem, params, tmp_path, data_root)
    for name in ("provenance.json", "metrics.json", f"{stem}.html", "model_card.md"):
        assert (run / name).exists(), name
    assert list((run / "figures").glob("*.png")), "no figure recorded"
    check(values)


def test_every_notebook_has_a_case_and_a_parameters_cell():
    import nbformat

    stems = sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    assert stems, "no notebooks"
    assert sorted(CASES) == stems
    for stem in stems:
        nb = nbformat.read(str(notebooks_dir() / f"{stem}.ipynb"), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, stem
        assert "output_dir" in tagged[0].source and "seed" in tagged[0].source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
            f"{stem}: commit notebooks without outputs"
