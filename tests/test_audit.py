"""The papermill runner: a run folder with everything needed to trust and repeat it."""

from __future__ import annotations

import json
import shutil
import subprocess

import nbformat
import pandas as pd
import pytest
import scrapbook as sb

from facelab.core.provenance import manifest_hash
from facelab.report.audits import resolve_audits
from facelab.report.record import Recorder, to_jsonable
from facelab.report.runner import error_message, export_html, run_audit


def _tiny_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("output_dir = None\nseed = 0\nscale = 2.0")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n"
        "from facelab.report.record import Recorder\n"
        "rec = Recorder(output_dir)\n"
        "rec.model('yunet', role='detector')\n"
        "rec.manifest('toy', pd.DataFrame({'path': ['a', 'b'], 'label': [1, 2]}))\n"
        "rec.metric('scaled', scale * 21)\n"
        "rec.metric('label', 'a string')\n"
        "rec.metric('nested', {'a': [1, None, 2.5], 'b': {'c': 'd'}})\n"
        "import sys\n"
        "rec.metric('kernel_imported', sorted({'scrapbook', 'papermill', 'nbformat'}\n"
        "                                     & set(sys.modules)))\n"
        "rec.table('tbl', pd.DataFrame({'group': ['x', 'y'], 'rate': [0.1, 0.2]}))\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([0, 1], [0, scale])\n"
        "rec.figure('line', fig)\n")
    nb.cells = [params, body]
    nbformat.write(nb, str(path))


@pytest.fixture
def tiny_nb(tmp_path):
    path = tmp_path / "nbs" / "99_tiny.ipynb"
    path.parent.mkdir()
    _tiny_notebook(path)
    return path


@pytest.mark.slow
def test_run_audit_writes_a_complete_run_folder(tiny_nb, tmp_path):
    run = run_audit(tiny_nb, parameters={"scale": 3.0}, results_root=tmp_path / "results",
                    progress=False)
    names = {p.name for p in run.iterdir()}
    assert {"99_tiny.ipynb", "99_tiny.html", "metrics.json", "provenance.json",
            "figures", "tables"} <= names
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["scaled"] == 63.0
    assert metrics["tbl"][1]["rate"] == 0.2
    assert (run / "figures" / "line.png").stat().st_size > 1000
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["parameters"]["scale"] == 3.0
    assert prov["seed"] == 0  # the notebook's own default, not passed in
    assert "seed" not in prov["parameters"]  # given ones only; every value the run used:
    assert prov["parameters_used"] == {"output_dir": str(run.resolve()), "seed": 0,
                                       "scale": 3.0}
    assert len(prov["models"]["yunet"]["weights_sha256"]) == 1
    assert prov["manifests"]["toy"]["rows"] == 2
    assert prov["packages"]["numpy"] != "not installed"
    scraps = sb.read_notebook(str(run / "99_tiny.ipynb")).scraps
    assert scraps["scaled"].data == 63.0
    assert scraps["label"].data == "a string"
    assert scraps["nested"].data == {"a": [1, None, 2.5], "b": {"c": "d"}}
    assert scraps["tbl"].data == metrics["tbl"]
    assert scraps["kernel_imported"].data == []  # glue no longer imports them (issue 16)


@pytest.mark.slow
def test_failing_notebook_still_records_provenance(tmp_path):
    path = tmp_path / "98_broken.ipynb"
    nb = nbformat.v4.new_notebook()  # no kernelspec: the runner names the language itself
    params = nbformat.v4.new_code_cell("output_dir = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    nbformat.write(nb, str(path))
    with pytest.raises(Exception, match="boom") as raised:
        run_audit(path, results_root=tmp_path / "r", run_id="x", progress=False)
    prov = json.loads((tmp_path / "r" / "x" / "provenance.json").read_text())
    # the notebook's own error, not papermill's traceback dump
    assert prov["status"] == "failed" and prov["error"] == "RuntimeError: boom"
    assert error_message(raised.value) == "RuntimeError: boom"
    assert raised.value.facelab_run_dir == str(tmp_path / "r" / "x")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_html_report_figures_render_in_headless_chromium(tiny_nb, tmp_path):
    run = run_audit(tiny_nb, results_root=tmp_path / "results", run_id="r", progress=False)
    html = (run / "99_tiny.html").read_text()
    probe = html.replace("</body>", (
        "<script>window.addEventListener('load', () => {"
        "const imgs = [...document.images];"
        "const ok = imgs.filter(i => i.complete && i.naturalWidth > 100).length;"
        "document.body.setAttribute('data-rendered', ok + '/' + imgs.length);});"
        "</script></body>"))
    page = tmp_path / "probe.html"
    page.write_text(probe)
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert 'data-rendered="1/1"' in out.stdout, out.stderr[-2000:]


def test_recorder_in_memory_and_json_conversion():
    rec = Recorder(None, glue=False)
    rec.metric("x", {"a": pd.NA if False else float("nan"), "b": [1, 2]})
    assert rec.metrics["x"] == {"a": None, "b": [1, 2]}
    frame = pd.DataFrame({"g": ["a"], "v": [0.5]}).set_index("g")
    assert to_jsonable(frame) == [{"g": "a", "v": 0.5}]


def test_manifest_hash_ignores_row_order_but_not_content():
    a = pd.DataFrame({"path": ["x", "y"], "label": ["1", "2"]})
    assert manifest_hash(a) == manifest_hash(a.iloc[::-1])
    b = a.assign(label=["1", "3"])
    assert manifest_hash(a) != manifest_hash(b)


def test_resolve_audits_names_and_errors(tmp_path, monkeypatch):
    for stem in ("00_tour", "02_verification_demographics"):
        (tmp_path / f"{stem}.ipynb").write_text("{}")
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(tmp_path))
    assert [p.stem for p in resolve_audits(["02"])] == ["02_verification_demographics"]
    assert [p.stem for p in resolve_audits(["tour"])] == ["00_tour"]
    assert len(resolve_audits()) == 2
    with pytest.raises(ValueError, match="known: 00_tour"):
        resolve_audits(["nothing"])


def test_export_html_embeds_images(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
           "RU5ErkJggg==")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    nb.cells = [cell]
    src = tmp_path / "n.ipynb"
    nbformat.write(nb, str(src))
    html = export_html(src, tmp_path / "n.html").read_text()
    assert "data:image/png;base64," in html
