"""The audits' numbers do not move when code moves (issue 11).

Each audit notebook is executed at its own default parameters (the parameters cell as
committed, only ``output_dir`` set) and its ``metrics.json`` is compared with the copy
recorded in ``tests/baselines/<stem>.metrics.json`` before the package was restructured
(main at a05ed84, the ANN results commit on top). One exception, on purpose: 06's
baseline was re-recorded at 516faad after its train/validation/test split moved from a
greedy subject split to scikit-learn's StratifiedGroupKFold (issue 11; the split sizes,
the trained model's accuracy and its cross-dataset rows moved, the fer rows did not).
A second, on purpose: 02's and 03's baselines were re-recorded at 13e54b4 (issue 16) when
dlib_resnet began to run as the OpenVINO port of dlib's network (embeddings within 6.4e-7
of dlib's): 142 and 74 scores and thresholds moved by at most 4.8e-7 (no count, rate or
interval moved), and the label-error lists hold the same pairs with scores moved as much.
A third: 01's baseline was re-recorded when MTCNN began to run one image at a time
(facenet-pytorch's batched detection moved boxes with the batch's make-up, so the recorded
values depended on which run had filled the cache): 14 median IoUs of detector pairs
with mtcnn moved (6 by 1e-3 to 8e-3, 8 by about 1e-8); every count stayed.
Numbers must agree to 1e-9 relative;
strings, counts and keys exactly. Run times, dates and paths are not compared. Sections
that list single images (error examples, label errors: file names and identity labels of
the shared datasets, which must not be copied into the repository) are kept only as a
SHA-256 of their JSON and their length, so they must come out identical.

The ``findings`` table changed schema on purpose (issue 11: one numeric
:class:`facelab.metrics.findings.Finding` record instead of two schemas, one with texts
such as ``"3/40"`` and ``"0.041-0.106"``). While a baseline still holds the old schema, its
findings are compared through the numbers they carry (:func:`_compare_findings`): same
rows in the same order, the same value, every number of the old texts carried by the new
record (as a numeric field, rounded to the decimals the text showed, or in its sentence),
the same sentence (the new one may add to it) and the same threshold description.

To record new baselines deliberately (after a change that is meant to move numbers):
``FACELAB_RECORD_BASELINES=1 pytest tests/test_audit_numbers_unchanged.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
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
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NEW_NUMERIC = ("value", "count", "n", "ci_low", "ci_high", "threshold", "reference_value")


def _old_schema(rows) -> bool:
    """A findings table written before the numeric Finding record (issue 11)."""
    return isinstance(rows, list) and any(
        isinstance(r, dict) and ("95% CI" in r or "how" in r or "embedder" in r
                                 or isinstance(r.get("count"), str)) for r in rows)


def _shown_equal(shown: str, x) -> bool:
    """``x`` (a number) prints as ``shown`` at the decimals ``shown`` has."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    target = float(shown.replace(",", ""))
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(x - target) <= 0.5 * 10 ** -decimals + 1e-12 or math.isclose(
        x, target, rel_tol=RTOL, abs_tol=1e-12)


def _same_value(old, new) -> bool:
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, bool):
        return float(old) == new
    return math.isclose(old, new, rel_tol=RTOL, abs_tol=1e-12) or (
        isinstance(old, float) and _shown_equal(repr(old), new) and len(repr(old)) <= 6)


def _compare_findings(now: list, old: list, where: str, problems: list[str]) -> None:
    """Compare a numeric findings table with one recorded in the old text schema."""
    if len(now) != len(old):
        problems.append(f"{where}: {len(now)} findings now, {len(old)} recorded")
    for i, (new, rec) in enumerate(zip(now, old, strict=False)):
        at = f"{where}[{i}]"
        if not new["finding"].startswith(rec["finding"]):
            problems.append(f"{at}: finding {new['finding']!r} now, {rec['finding']!r} recorded")
        if not _same_value(rec.get("value"), new.get("value")):
            problems.append(f"{at}.value: {new.get('value')!r} now, {rec.get('value')!r} recorded")
        for key in ("count", "n", "ci_low", "ci_high"):
            value = rec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) or (
                    value is None and key in rec and key in ("ci_low", "ci_high")):
                if not _same_value(value, new.get(key)):
                    problems.append(f"{at}.{key}: {new.get(key)!r} now, {value!r} recorded")
        how = next((rec[k] for k in ("threshold_how", "threshold", "how") if k in rec), None)
        if how is not None and how != new.get("threshold_how"):
            problems.append(f"{at}.threshold_how: {new.get('threshold_how')!r} now, "
                            f"{how!r} recorded")
        for key, new_key in (("embedder", "model"), ("operating_point", "operating_point")):
            if key in rec and (rec[key] or "") != new.get(new_key):
                problems.append(f"{at}.{new_key}: {new.get(new_key)!r} now, {rec[key]!r} recorded")
        numbers = [new.get(k) for k in _NEW_NUMERIC]
        for key in ("count", "95% CI"):
            text = rec.get(key)
            if not isinstance(text, str):
                continue
            fields = {"count": [("count", "n"), ("n",)], "95% CI": [("ci_low", "ci_high")]}
            exact = [f for f in fields[key] if len(_NUMBER.findall(text)) == len(f) and
                     re.fullmatch(r"(n=)?[\d,.]+(?:[-/][\d,.]+)?", text)]
            if exact:  # "k/n", "n=k", "lo-hi": each number in its own field
                for shown, name in zip(_NUMBER.findall(text), exact[0], strict=True):
                    if not _shown_equal(shown, new.get(name)):
                        problems.append(f"{at}.{name}: {new.get(name)!r} now, {key} {text!r} "
                                        "recorded")
                continue
            for shown in _NUMBER.findall(text):
                if not (any(_shown_equal(shown, x) for x in numbers)
                        or shown in new["finding"]):
                    problems.append(f"{at}: {key} {text!r} recorded: {shown} is not carried "
                                    "by the new record")


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
    old = json.loads(recorded.read_text())
    if _old_schema(old.get("findings")) and isinstance(now.get("findings"), list):
        _compare_findings(now.pop("findings"), old.pop("findings"), f"{stem}.findings",
                          problems)
    _compare(now, old, stem, problems)
    assert not problems, f"{len(problems)} values moved:\n" + "\n".join(problems[:40])
