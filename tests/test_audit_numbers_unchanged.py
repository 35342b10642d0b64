"""The audits' numbers do not move when code moves (issue 11).

Each audit notebook is executed at its own default parameters (the parameters cell as
committed, only ``output_dir`` set) and its ``metrics.json`` is compared with the copy
recorded in ``tests/baselines/<stem>.metrics.json`` before the package was restructured
(main at a05ed84, the ANN results commit on top). Numbers must agree to 1e-9 relative;
strings, counts and keys exactly. Run times, dates and paths are not compared. Sections
that list single images (error examples, label errors: file names and identity labels of
the shared datasets, which must not be copied into the repository) are kept only as a
SHA-256 of their JSON and their length, so they must come out identical.

To record new baselines deliberately (after a change that is meant to move numbers):
``FACELAB_RECORD_BASELINES=1 pytest tests/test_audit_numbers_unchanged.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BASELINES = Path(__file__).parent / "baselines"
# 06 writes the model 04 evaluates when both run in one results folder: 06 goes first
ORDER = ["00_tour", "01_detection_reliability", "02_verification_demographics",
         "03_one_to_many_search", "06_train_expression", "04_expression_fear",
         "05_attribute_audit"]
# values that legitimately differ between runs of the same code
VOLATILE = {"seconds", "elapsed", "elapsed_s", "started", "finished", "created", "date",
            "output_dir", "path", "run_id", "duration", "wall_seconds", "train_seconds"}
# sections naming single images of the datasets: compared through a digest


def _is_per_image(key: str) -> bool:
    return key.startswith("examples_") or key in {"label_errors",
                                                  "probe_gallery_duplicate_files"}


def _digested(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if _is_per_image(key) and isinstance(value, (list, dict)):
            text = json.dumps(value, sort_keys=True, allow_nan=True)
            value = {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                     "items": len(value)}
        out[key] = value
    return out
RTOL = 1e-9


def _compare(a, b, where: str, problems: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            problems.append(f"{where}: keys {sorted(set(a) ^ set(b))} differ")
        for k in set(a) & set(b):
            if k not in VOLATILE:
                _compare(a[k], b[k], f"{where}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{where}: {len(a)} items now, {len(b)} recorded")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _compare(x, y, f"{where}[{i}]", problems)
    elif isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if a != b:
            problems.append(f"{where}: {a!r} now, {b!r} recorded")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return
        if not math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-12):
            problems.append(f"{where}: {a!r} now, {b!r} recorded")
    elif a != b:
        problems.append(f"{where}: {a!r} now, {b!r} recorded")


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory, data_root):
    import papermill as pm

    from facelab.report.audits import notebooks_dir

    out = tmp_path_factory.mktemp("default_runs")
    env = {"FACELAB_RESULTS": str(out / "results"), "MPLBACKEND": "agg",
           "FACELAB_DATA": str(data_root)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for stem in ORDER:
            run = out / stem
            run.mkdir()
            pm.execute_notebook(str(notebooks_dir() / f"{stem}.ipynb"),
                                str(run / f"{stem}.ipynb"),
                                parameters={"output_dir": str(run)},
                                kernel_name="facelab", progress_bar=False,
                                cwd=str(notebooks_dir()))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


@pytest.mark.parametrize("stem", ORDER)
def test_default_metrics_unchanged(stem, default_runs):
    now = _digested(json.loads((default_runs / stem / "metrics.json").read_text()))
    recorded = BASELINES / f"{stem}.metrics.json"
    if os.environ.get("FACELAB_RECORD_BASELINES") == "1":
        recorded.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    if not recorded.exists():
        pytest.fail(f"no baseline {recorded}: record it with FACELAB_RECORD_BASELINES=1")
    problems: list[str] = []
    _compare(now, json.loads(recorded.read_text()), stem, problems)
    assert not problems, f"{len(problems)} values moved:\n" + "\n".join(problems[:40])
