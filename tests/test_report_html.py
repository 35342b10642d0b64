"""The run HTML is a report: no progress-bar lines, no stderr blocks other than real warnings,
code hidden (the executed notebook beside it keeps the code); the executed notebook of a
headless run holds one final line per progress bar, not one line per update."""

from __future__ import annotations

import re

import nbformat
import pytest
from bs4 import BeautifulSoup

from facelab.report.audits import notebooks_dir
from facelab.report.runner import run_audit

#: A tqdm text bar, in any of its forms ("  2%|▏  | 64/4000 [00:01<...", "12.3it/s]").
PROGRESS_LINE = re.compile(r"\d+%\|[^\n]*\||\d+/\d+ \[\d\d:\d\d|\d(?:it|img|B)/s\]")
#: A real warning as Python's warnings module prints it ("file.py:12: UserWarning: ...").
REAL_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ", re.MULTILINE)


def report_problems(html: str) -> list[str]:
    """What makes an HTML run report unreadable: progress-bar lines anywhere, stderr blocks
    that are not real warnings, visible code cells."""
    soup = BeautifulSoup(html, "html.parser")
    problems = []
    for block in soup.select('[data-mime-type="application/vnd.jupyter.stderr"]'):
        text = block.get_text()
        if not REAL_WARNING.search(text):
            problems.append(f"stderr block that is not a warning: {text[:300]!r}")
    for out in soup.select(".jp-OutputArea-output"):
        text = out.get_text()
        if PROGRESS_LINE.search(text):
            problems.append(f"progress-bar line: {text[:300]!r}")
    if soup.select(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor"):
        problems.append("code cells are shown")
    return problems


def _noisy_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("output_dir = None\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A noisy notebook"), params,
        nbformat.v4.new_code_cell(
            "from facelab.core.progress import tqdm\n"
            "total = 0\n"
            "for i in tqdm(range(3000), desc='facelab.extract [local]', unit='img',\n"
            "              mininterval=0):\n"
            "    total += i\n"
            "print('total', total)"),
        nbformat.v4.new_code_cell(  # ai-edge-litert prints its XNNPACK INFO line here
            "from facelab.models.registry import create_model\n"
            "model = create_model('blazeface-full')\n"
            "print('detector ready')"),
        nbformat.v4.new_code_cell(
            "import warnings\n"
            "warnings.warn('a real warning the reader must see', UserWarning)"),
    ]
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_report_has_no_progress_lines_or_noise_but_keeps_real_warnings(tmp_path):
    nb = tmp_path / "97_noisy.ipynb"
    _noisy_notebook(nb)
    run = run_audit(nb, results_root=tmp_path / "results", run_id="r", progress=False)
    html = (run / "97_noisy.html").read_text()
    assert report_problems(html) == []
    assert "a real warning the reader must see" in html
    assert "XNNPACK" not in html and "IProgress" not in html
    assert "detector ready" in html and "total 4498500" in html
    # the executed notebook keeps the code and one final line for the bar
    executed = nbformat.read(str(run / "97_noisy.ipynb"), as_version=4)
    assert any("from facelab.core.progress import tqdm" in c.source for c in executed.cells)
    streams = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
               if o.output_type == "stream"]
    bar_lines = [ln for o in streams for ln in o.text.splitlines()
                 if ln.startswith("facelab.extract")]
    assert bar_lines == ["facelab.extract [local]: 3,000/3,000 img in 00:00"]


def test_report_problems_catches_the_noise():
    bad = ('<div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">'
           '<pre>facelab.extract [local]:   2%|▏         | 64/4000 [00:01&lt;01:10, 56.0img/s]'
           '</pre></div>'
           '<div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">'
           '<pre>INFO: Created TensorFlow Lite XNNPACK delegate for CPU.</pre></div>')
    problems = report_problems(bad)
    assert len(problems) == 3  # two non-warning stderr blocks, one progress line
    ok = ('<div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">'
          '<pre>/x/y.py:3: UserWarning: something real\n  warnings.warn(</pre></div>')
    assert report_problems(ok) == []


@pytest.mark.slow
def test_an_audit_report_is_clean(tmp_path, data_root):
    """A real audit (01, two detectors incl. BlazeFace, the pipeline's progress bars)."""
    params = {"limit": 12, "datasets": ["cfd"], "detectors": ["yunet", "blazeface"],
              "slow_limit": 6, "degradation_limit": 6, "degradation_slow_limit": 3,
              "severities": {"downscale": [0.5]}, "min_count": 3}
    stem = "01_detection_reliability"
    run = run_audit(notebooks_dir() / f"{stem}.ipynb", parameters=params,
                    results_root=tmp_path, run_id=stem, progress=False)
    html = (run / f"{stem}.html").read_text()
    assert report_problems(html) == []
    assert "data:image/png;base64," in html  # the figures are in the report


def test_progress_mode_outside_a_kernel(monkeypatch):
    from facelab.core.progress import progress_mode, tqdm

    monkeypatch.delenv("FACELAB_PROGRESS", raising=False)
    assert progress_mode() == "final"  # pytest captures stderr: not a terminal
    monkeypatch.setenv("FACELAB_PROGRESS", "off")
    assert progress_mode() == "off"
    assert list(tqdm(range(3))) == [0, 1, 2]


@pytest.mark.slow
def test_progress_is_one_live_widget_in_jupyterlab(tmp_path, monkeypatch):
    """A kernel started by JupyterLab (jupyter_server sets JPY_SESSION_NAME) gets one
    ipywidgets bar per loop and no text lines."""
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from facelab.core.progress import progress_mode, tqdm\n"
        "print(progress_mode())\n"
        "for _ in tqdm(range(2000), desc='loop', mininterval=0):\n    pass")]
    src, out = tmp_path / "w.ipynb", tmp_path / "w-out.ipynb"
    nbformat.write(nb, str(src))
    monkeypatch.setenv("JPY_SESSION_NAME", str(src))
    monkeypatch.delenv("FACELAB_PROGRESS", raising=False)
    pm.execute_notebook(str(src), str(out), kernel_name="facelab", progress_bar=False)
    outputs = nbformat.read(str(out), as_version=4).cells[0].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json"
               in o.get("data", {})]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(widgets) == 1
    assert streams == "widget\n"
