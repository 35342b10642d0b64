"""results/index.html: one page for all runs, rebuilt by every ``facelab audit``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from facelab.report.runner import run_audits
from facelab.report.runs_index import collect_runs, run_findings, write_index


def _notebook(path: Path, *, fail: bool = False, missing: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("output_dir = None\nseed = 0\nscale = 2.0\nlimit = 10")
    params.metadata["tags"] = ["parameters"]
    body = ("import matplotlib.pyplot as plt\nimport pandas as pd\n"
            "from facelab.report.record import Recorder\n"
            "rec = Recorder(output_dir)\n"
            "fig, ax = plt.subplots()\nax.plot([0, 1], [0, scale])\nrec.figure('line', fig)\n")
    if missing:
        body += ("from facelab.report.datastatus import require_data\n"
                 "require_data({}, needs='images of faces', datasets=['cfd'], recorder=rec)\n")
    if fail:
        body += "raise RuntimeError('boom')\n"
    body += ("from facelab.metrics.findings import Finding, findings_table\n"
             "rec.table('findings', findings_table([\n"
             "    Finding('FMR at the global threshold', 0.0123, metric='FMR', count=12,\n"
             "            n=975, ci_low=0.0071, ci_high=0.0214, threshold=0.44,\n"
             "            threshold_how='set at FMR<=0.01 on everyone'),\n"
             "    Finding('age MAE (years)', 6.25, metric='MAE (years)', n=100)]))\n")
    nb.cells = [nbformat.v4.new_markdown_cell("# toy"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


@pytest.fixture
def results(tmp_path, monkeypatch):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "91_toy.ipynb")
    _notebook(nbs / "92_broken.ipynb", fail=True)
    _notebook(nbs / "93_nodata.ipynb", missing=True)
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(nbs))
    out = tmp_path / "results"
    run_audits(["91"], parameters={"scale": 3.0}, results_root=out)
    run_audits(["92", "93"], results_root=out)  # each call rebuilds the index
    return out


def test_findings_rows_are_formatted_from_the_numbers():
    rows = run_findings({"findings": [
        {"model": "sface", "finding": "FMR", "value": 0.01, "count": 3, "n": 300,
         "ci_low": 0.003, "ci_high": 0.029, "threshold": 0.5, "threshold_how": "default",
         "index": 0},
        {"finding": "age MAE", "value": 6.5, "n": 40, "count": None}]})
    assert rows[0] == {"finding": "sface: FMR", "value": "0.01", "count": "3/300",
                       "interval": "0.003–0.029", "how": "0.5: default"}
    assert rows[1]["count"] == "n=40" and rows[1]["interval"] == ""


def test_findings_in_the_old_text_schema_fall_back_to_headline_metrics():
    assert run_findings({"findings": [
        {"finding": "FTA", "value": 0.1, "count": "4/40", "95% CI": "0.040-0.230"}]}) == []


@pytest.mark.slow
def test_index_lists_every_run_with_status_parameters_and_findings(results):
    index = results / "index.html"
    assert index.is_file()
    runs = collect_runs(results)
    assert sorted(r["audit"] for r in runs) == ["91_toy", "92_broken", "93_nodata"]
    by = {r["audit"]: r for r in runs}
    assert by["91_toy"]["status"] == "ok" and by["91_toy"]["changed"] == {"scale": 3.0}
    assert by["92_broken"]["status"] == "failed" and "boom" in by["92_broken"]["note"]
    assert by["93_nodata"]["status"] == "needs data"
    assert by["93_nodata"]["note"].startswith("This audit needs images of faces")
    soup = BeautifulSoup(index.read_text(), "html.parser")
    text = soup.get_text(" ")
    assert "scale=3.0" in text and "limit=" not in text  # only non-default parameters
    assert "0.0123" in text and "12/975" in text and "0.0071–0.0214" in text
    assert "age MAE (years) 6.25 n=100" in text
    links = [a["href"] for a in soup.find_all("a") if a["href"].endswith(".html")]
    assert len(set(links)) == 3
    for href in links:  # every run's report exists where the index points
        assert (results / href).is_file(), href


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_index_renders_in_headless_chromium(results, tmp_path):
    write_index(results)
    page = (results / "index.html").read_text()
    probe = page.replace("</body>", (
        "<script>window.addEventListener('load', () => {"
        "const imgs = [...document.images];"
        "const ok = imgs.filter(i => i.complete && i.naturalWidth > 100).length;"
        "const rows = document.querySelectorAll('body > table > tbody > tr').length;"
        "document.body.setAttribute('data-rendered', ok + '/' + imgs.length + ' rows ' + rows);"
        "});</script></body>"))
    probe_path = results / "probe.html"  # beside index.html: same relative image paths
    probe_path.write_text(probe)
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
         probe_path.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-rendered="(\d+)/(\d+) rows (\d+)"', out.stdout)
    assert m, out.stderr[-2000:]
    ok, total, rows = map(int, m.groups())
    assert (ok, total) == (3, 3), m.group(0)  # each run's first figure
    assert rows == 4  # header + three runs


def test_audits_run_in_parallel_and_wait_for_what_they_need(tmp_path, monkeypatch):
    import datetime as dt

    from facelab.report import runner as audit

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for name in ("94_first", "95_second", "96_needs_first"):
        _notebook(nbs / f"{name}.ipynb")
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(nbs))
    monkeypatch.setattr(audit, "DEPENDS_ON", {"96_needs_first": ("94_first",)})
    rows = run_audits(["94_first", "95", "96"], results_root=tmp_path / "results", jobs=2)
    assert [r["audit"] for r in rows] == ["94_first", "95_second", "96_needs_first"]
    assert [r["status"] for r in rows] == ["ok"] * 3
    start = {r["audit"]: dt.datetime.fromisoformat(r["started"]) for r in rows}
    end_94 = start["94_first"] + dt.timedelta(seconds=rows[0]["seconds"])
    assert start["96_needs_first"] >= end_94  # waited for 94
    assert start["95_second"] < end_94  # ran beside 94
    with pytest.raises(ValueError, match="FACELAB_AUDIT_JOBS"):
        monkeypatch.setenv("FACELAB_AUDIT_JOBS", "two")
        audit._jobs(None)


def test_tree_signature_sees_changed_added_and_removed_files(tmp_path):
    from facelab.report.uptodate import tree_signature

    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"12345")
    (root / ".hidden").write_text("editor state")
    first = tree_signature(root)
    assert tree_signature(root) == first
    (root / ".hidden").write_text("ignored: hidden files are not data")
    assert tree_signature(root) == first
    (root / "a" / "x.jpg").write_bytes(b"123456")  # changed
    changed = tree_signature(root)
    assert changed != first
    (root / "a" / "y.jpg").write_bytes(b"1")  # added
    added = tree_signature(root)
    assert added != changed
    (root / "a" / "y.jpg").unlink()  # removed
    assert tree_signature(root) == changed
    assert tree_signature(tmp_path / "missing") == tree_signature(tmp_path / "empty")


def test_own_files_in_parameters_always_run():
    from facelab.report.runner import PATH_KEYS, PATH_SUFFIXES
    from facelab.report.uptodate import has_own_files

    def own(params):
        return has_own_files(params, path_keys=PATH_KEYS, path_suffixes=PATH_SUFFIXES)

    assert own({"datasets": ["csv:/tmp/mine.csv"]})
    assert own({"datasets": [{"csv": "mine.csv", "images_root": "imgs"}]})
    assert own({"scores": "/tmp/scores.csv"})
    assert not own({"datasets": ["fairface:val", "cfd"], "limit": 100, "seed": 3})


@pytest.mark.slow
def test_an_audit_whose_inputs_did_not_change_is_not_run_again(tmp_path, monkeypatch):
    nbs, data = tmp_path / "nbs", tmp_path / "data"
    nbs.mkdir()
    data.mkdir()
    (data / "faces.csv").write_text("path\nface.jpg\n")
    _notebook(nbs / "97_toy.ipynb")
    _notebook(nbs / "98_broken.ipynb", fail=True)
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(nbs))
    monkeypatch.setenv("FACELAB_DATA", str(data))
    out = tmp_path / "results"

    def run(names=("97",), **kw):
        rows = run_audits(list(names), results_root=out, jobs=1, **kw)
        return [(r["status"], r["run_dir"]) for r in rows]

    (ok, first), (failed, _) = run(["97", "98"])
    assert (ok, failed) == ("ok", "failed")
    prov = json.loads((Path(first) / "provenance.json").read_text())
    assert set(prov["inputs"]) == {"notebook", "parameters", "code", "environment", "data",
                                   "machine"}
    assert all(len(v["sha256"]) == 64 and v["covers"] for v in prov["inputs"].values())
    again = run(["97", "98"])
    assert again[0] == ("up to date", first)  # same folder, not executed
    assert again[1][0] == "failed"  # a failed run is never reused
    forced = run(force=True)[0]
    assert forced[0] == "ok" and forced[1] != first
    assert run()[0] == ("up to date", forced[1])  # the newest matching run
    # a parameter given at the notebook's default is the same run as one left out
    assert run(parameters={"scale": 2.0})[0] == ("up to date", forced[1])
    other = run(parameters={"scale": 5.0})[0]  # another parameter value: a new run
    assert other[0] == "ok" and other[1] not in (first, forced[1])
    (data / "faces.csv").write_text("path\nface.jpg\nface2.jpg\n")  # the data changed
    changed = run()[0]
    assert changed[0] == "ok" and changed[1] not in (first, forced[1], other[1])
    assert run()[0] == ("up to date", changed[1])


def test_cli_mistyped_audit_name_is_one_line():
    from typer.testing import CliRunner

    from facelab.cli import app

    res = CliRunner().invoke(app, ["audit", "no-such-audit"])
    assert res.exit_code == 2
    assert "matches 0 notebooks" in res.output and "Traceback" not in res.output
