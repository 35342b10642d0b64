"""Recorder glue writes scrapbook's own display bundle without importing scrapbook."""

from __future__ import annotations

import IPython
import IPython.display
import numpy as np
import pandas as pd
import pytest
import scrapbook as sb

from facelab.report.record import Recorder, glue_scrap, to_jsonable

VALUES = {
    "float": 63.0,
    "int": 7,
    "bool": True,
    "text": "a string",
    "json_looking_text": "[1, 2]",
    "dict": {"fmr": 0.001, "ci": [0.0005, 0.002], "n": 1234, "missing": None},
    "list": [1, 2.5, None, "x"],
    "empty": {},
    "table": to_jsonable(pd.DataFrame({"group": ["x", "y"], "rate": [0.1, np.nan]})),
    "none": None,
}


@pytest.fixture
def captured(monkeypatch):
    calls = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display",
                        lambda *objs, **kw: calls.append((objs, kw)))
    return calls


@pytest.mark.filterwarnings("ignore:No kernel detected")
@pytest.mark.parametrize("name", sorted(VALUES))
def test_glue_bundle_equals_scrapbook_glue(name, captured):
    value = VALUES[name]
    encoder = "text" if isinstance(value, str) else "json"
    try:
        sb.glue(name, value, encoder=encoder)
    except Exception:  # noqa: BLE001 - scrapbook refuses None; then nothing is emitted
        pass
    theirs = list(captured)
    captured.clear()
    glue_scrap(name, value)
    assert captured == theirs
    assert (len(theirs) == 0) == (value is None)


def test_recorder_glues_what_it_records(captured, tmp_path):
    rec = Recorder(tmp_path)
    rec.metric("rate", np.float64(0.25))
    rec.table("tbl", pd.DataFrame({"group": ["a"], "n": [np.int64(3)]}))
    (bundle,), kw = captured[0]
    assert bundle == {"application/scrapbook.scrap.json+json":
                      {"name": "rate", "data": 0.25, "encoder": "json", "version": 1}}
    assert kw == {"metadata": {"scrapbook": {"name": "rate", "data": True, "display": False}},
                  "raw": True}
    assert captured[1][0][0]["application/scrapbook.scrap.json+json"]["data"] == \
        rec.metrics["tbl"]


def test_no_kernel_no_output(monkeypatch, capsys):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    glue_scrap("x", 1.0)
    assert capsys.readouterr().out == ""


def test_two_runs_started_in_one_second_get_two_folders(tmp_path, monkeypatch):
    from facelab.report import record

    monkeypatch.setattr(record, "new_run_id", lambda label: f"20261201-000000-{label}")
    first = record.new_run_dir(tmp_path / "results", "02_verification")
    second = record.new_run_dir(tmp_path / "results", "02_verification")
    third = record.new_run_dir(tmp_path / "results", "02_verification")
    assert first.name == "20261201-000000-02_verification"
    assert second.name == "20261201-000000.02-02_verification"
    assert third.name == "20261201-000000.03-02_verification"
    assert all(p.is_dir() and not any(p.iterdir()) for p in (first, second, third))
    # newest last when sorted, and found as runs of the audit (uptodate's glob)
    later = "20261201-000001-02_verification"
    assert sorted([later, third.name, first.name, second.name]) == \
        [first.name, second.name, third.name, later]
    assert len(list((tmp_path / "results").glob("*-02_verification"))) == 3
