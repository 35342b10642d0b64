"""One numeric Finding record and the table every audit notebook records (issue 11)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from facelab.metrics.findings import (
    FINDING_COLUMNS,
    Finding,
    display_findings,
    findings_from_records,
    findings_table,
)
from facelab.metrics.intervals import binomial_ci, method_label
from facelab.report.record import Recorder
from facelab.report.runs_index import run_findings


def _fmr() -> Finding:
    low, high = binomial_ci(3, 40, method="wilson")
    return Finding("FMR of women at the global threshold", 3 / 40, metric="FMR",
                   model="sface", dataset="cfd", group="female", count=np.int64(3), n=40,
                   ci_low=low, ci_high=high, ci_method=method_label("wilson"),
                   threshold=np.float32(0.44), threshold_how="set at FMR<=0.001 on men")


def test_fields_are_numbers_and_texts_are_refused():
    f = _fmr()
    for name in ("value", "count", "n", "ci_low", "ci_high", "threshold"):
        assert isinstance(getattr(f, name), float), name
    assert f.reference_value is None and f.ci_method == "Wilson"
    with pytest.raises(TypeError, match="count"):
        Finding("FTA", 0.1, count="4/40")
    with pytest.raises(ValueError, match="sentence"):
        Finding("", 0.1)
    assert Finding("hit", True).value == 1.0
    assert Finding("nan", float("nan"), n=pd.NA).value is None


def test_table_has_one_schema_and_numeric_columns():
    table = findings_table([_fmr(), Finding("age MAE (years), utkface", 6.2, n=120,
                                            metric="MAE (years)")])
    assert tuple(table.columns) == FINDING_COLUMNS
    for name in ("value", "count", "n", "ci_low", "ci_high", "threshold", "reference_value"):
        assert table[name].dtype == np.float64
    assert math.isnan(table.loc[1, "count"]) and table.loc[1, "model"] == ""
    with pytest.raises(TypeError):
        findings_table([{"finding": "x"}])
    shown = display_findings(table)
    assert shown.loc[0, "count"] == "3/40" and shown.loc[1, "count"] == "n=120"
    lo, hi = binomial_ci(3, 40, method="wilson")
    assert shown.loc[0, "95% CI"] == f"[{lo:.3f}, {hi:.3f}] Wilson"
    assert shown.loc[1, "95% CI"] == ""
    ratio = findings_table([Finding("worst/best", math.inf, reference_value=0.0)])
    assert display_findings(ratio).loc[0, "value"] == "inf"
    assert shown.loc[0, "threshold"].startswith("0.440: set at FMR")


def test_recorded_table_round_trips_through_metrics_json_and_the_runs_page(tmp_path):
    rec = Recorder(tmp_path, glue=False)
    table = findings_table([_fmr(), Finding("worst/best ratio", math.inf, group="a",
                                            reference="b", reference_value=0.0)])
    rec.table("findings", table)
    rows = json.loads((tmp_path / "metrics.json").read_text())["findings"]
    assert rows[0]["count"] == 3 and rows[0]["n"] == 40 and rows[0]["value"] == 0.075
    assert rows[1]["value"] is None  # inf is not JSON: stored as null
    back = findings_from_records(rows)
    assert back[0] == _fmr()
    page = run_findings({"findings": rows})
    assert page[0]["count"] == "3/40" and page[0]["finding"] == (
        "sface: FMR of women at the global threshold")
    assert page[0]["interval"].count("–") == 1
    with pytest.raises(TypeError, match="row 0"):
        findings_from_records([{"finding": "FTA", "count": "4/40"}])
