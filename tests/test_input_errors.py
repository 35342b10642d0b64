"""Values entering from outside are checked where they enter: one clear line naming the
option or file, never a traceback or a quiet fallback (issue 16's list of odd places)."""

from __future__ import annotations

import json
import os

import nbformat
import pandas as pd
import pytest
from conftest import missing_data
from typer.testing import CliRunner

from facelab.cli import app


def _two_faces(data_root):
    """Two real images of the shared data (UTKFace chips: one face each)."""
    files = sorted((data_root / "utkface").rglob("*.jpg"))[:2]
    if len(files) < 2:
        missing_data(f"no UTKFace images under {data_root}")  # fails in CI
    return files


def test_data_check_unknown_dataset_lists_the_known_ones(data_root):
    res = CliRunner().invoke(app, ["data", "check", "--root", str(data_root), "-d", "NOSUCH"])
    assert res.exit_code == 2, res.output
    assert "unknown dataset 'NOSUCH'" in res.output and "lfw" in res.output
    assert "--dataset" in res.output and "Traceback" not in res.output
    assert not isinstance(res.exception, ValueError)


@pytest.mark.parametrize("command", ["verify", "search"])
def test_unknown_model_is_one_line_like_analyze(command, data_root, tmp_path):
    a, b = _two_faces(data_root)
    if command == "verify":
        args = ["verify", str(a), str(b), "--model", "NOSUCH"]
    else:
        (tmp_path / "gallery" / "someone").mkdir(parents=True)
        (tmp_path / "gallery" / "someone" / a.name).symlink_to(a)
        args = ["search", str(b), "--gallery", str(tmp_path / "gallery"), "--model", "NOSUCH"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "error: unknown model 'NOSUCH'" in res.output and "sface" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["analyze", str(a), "--detector", "NOSUCH"])
    assert res.exit_code == 1 and "error: unknown model 'NOSUCH'" in res.output


@pytest.mark.parametrize("content", [None, "0.1\nnot-a-number\n", "# only a comment\n",
                                     "0.1\nnan\n"])
def test_bad_reference_file_names_the_file(content, data_root, tmp_path):
    a, b = _two_faces(data_root)
    ref = tmp_path / "impostors.csv"
    if content is not None:
        ref.write_text(content)
    res = CliRunner().invoke(app, ["verify", str(a), str(b), "--target-fmr", "0.01",
                                   "--reference", str(ref)])
    assert res.exit_code == 2, res.output
    assert "--reference" in res.output and "impostors.csv" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("command", ["verify", "search"])
def test_target_fmr_and_reference_come_together(command, data_root, tmp_path):
    a, b = _two_faces(data_root)
    ref = tmp_path / "impostors.csv"
    ref.write_text("0.1\n0.2\n")
    args = ["verify", str(a), str(b)] if command == "verify" else \
        ["search", str(a), "--gallery", str(tmp_path)]
    res = CliRunner().invoke(app, [*args, "--target-fmr", "0.01"])
    assert res.exit_code == 2 and "--target-fmr needs --reference" in \
        " ".join(res.output.split()), res.output
    res = CliRunner().invoke(app, [*args, "--reference", str(ref)])
    assert res.exit_code == 2 and "only used with --target-fmr" in \
        " ".join(res.output.split()), res.output


def test_label_error_lines_takes_no_unused_name():
    import inspect

    from facelab.cli.data import label_error_lines

    assert "name" not in inspect.signature(label_error_lines).parameters


def test_malformed_lines_count_reasons_with_an_example():
    from facelab.cli.data import malformed_lines

    df = pd.DataFrame({"file": ["a.jpg"]})
    assert malformed_lines(df) == []
    df.attrs["malformed"] = [{"entry": "x.txt", "reason": "not <Name>_<NNNN>.jpg"},
                             {"entry": "y.txt", "reason": "not <Name>_<NNNN>.jpg"}]
    lines = malformed_lines(df)
    assert lines[0] == "  malformed entries skipped: 2"
    assert lines[1] == "    2 x not <Name>_<NNNN>.jpg (e.g. x.txt)"


def test_plot_messages_name_missing_and_given_columns():
    from facelab.viz.plots import plot_det, plot_group_rates

    table = pd.DataFrame({"value": [0.1], "ci_high": [0.2], "n": [10]}, index=["a"])
    with pytest.raises(ValueError, match=r"missing \['ci_low'\]; the table has \['value', "
                                         r"'ci_high', 'n'\]"):
        plot_group_rates(table)
    with pytest.raises(ValueError, match=r"curve 'sface'.*missing \['fnmr'\]; the table has "
                                         r"\['threshold', 'fmr'\]"):
        plot_det({"sface": pd.DataFrame({"threshold": [0.5], "fmr": [0.1]})})


def test_example_tables_check_every_column_they_use():
    from facelab.viz.examples import expression_examples, gender_examples

    preds = pd.DataFrame({"model": ["m"], "status": ["evaluated"], "true": ["fear"],
                          "pred": ["sad"], "path": ["x.jpg"], "file": ["x.jpg"]})
    with pytest.raises(ValueError, match=r"expression_examples.*missing \['test_dataset'\]"):
        expression_examples(preds)
    assert len(expression_examples(preds.assign(test_dataset="jaffe"))) == 1
    g = pd.DataFrame({"path": ["x.jpg"], "status": ["ok"], "gender": ["female"],
                      "pred_gender": ["male"], "pred_p_female": [0.2], "gender_error": [True]})
    with pytest.raises(ValueError, match=r"gender_examples.*missing \['dataset'\]"):
        gender_examples(g)
    assert gender_examples(g.assign(dataset="utkface"))["pred_p_female"].tolist() == [0.2]


def _notebook(path, params="output_dir = None\nscale = 2.0", body="x = scale * 2\n"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# toy"), cell, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


def test_broken_parameters_cell_names_notebook_and_line(tmp_path):
    from facelab.report.audits import parameter_defaults

    nb = tmp_path / "90_bad.ipynb"
    _notebook(nb, params="output_dir = None\nscale = (2.0\n")
    with pytest.raises(ValueError, match=r"90_bad.ipynb: the parameters cell \(cell 2\) is "
                                         r"not valid Python: line 2"):
        parameter_defaults(nb)


def test_unreadable_run_files_are_shown_as_unreadable(tmp_path):
    from facelab.report.runs_index import collect_runs, write_index

    for name, prov, metrics in [("a", "{not json", None),
                                ("b", json.dumps({"notebook": "91_toy", "status": "ok",
                                                  "started": "2026-01-01"}), "[1, 2"),
                                ("c", json.dumps({"notebook": "91_toy", "status": "failed",
                                                  "started": "2026-01-02"}), None)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "provenance.json").write_text(prov)
        if metrics is not None:
            (tmp_path / name / "metrics.json").write_text(metrics)
    by = {r["run"]: r for r in collect_runs(tmp_path)}
    assert by["a"]["status"] == "unreadable: provenance.json"
    assert by["a"]["note"].startswith("provenance.json: JSONDecodeError")
    assert by["b"]["status"] == "unreadable: metrics.json"
    assert by["c"]["status"] == "failed"  # a failed run has no metrics.json: not a problem
    assert "unreadable: provenance.json" in write_index(tmp_path).read_text()
    from facelab.report.runner import _run_status

    assert _run_status(tmp_path / "a") == "unreadable: provenance.json"


ENV_KEYS = ("MPLBACKEND", "FACELAB_RESULTS", "FACELAB_PROGRESS", "FACELAB_REQUIRED_DATASETS")


@pytest.mark.slow
def test_failed_prerequisite_skips_dependent_audit_and_index_is_rebuilt(tmp_path,
                                                                        monkeypatch):
    from facelab.report import runner
    from facelab.report.runner import run_audits

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "95_broken.ipynb", body="raise RuntimeError('boom')\n")
    _notebook(nbs / "96_needs_broken.ipynb")
    _notebook(nbs / "97_other.ipynb")
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(nbs))
    # 96 uses 95's results, 97 only waits for 95 (as 03 waits for 02's cache)
    monkeypatch.setattr(runner, "DEPENDS_ON", {"96_needs_broken": ("95_broken",),
                                               "97_other": ("95_broken",)})
    monkeypatch.setattr(runner, "NEEDS_RESULTS_OF", {"96_needs_broken": ("95_broken",)})
    monkeypatch.setattr(runner, "RUN_FIRST", ("95_broken",))
    for key in ENV_KEYS:  # run_audit sets these when unset: it must unset them again
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "results"

    rows = run_audits(["95", "96", "97"], results_root=out, jobs=1)
    assert [r["status"] for r in rows] == ["failed", "skipped: 95_broken failed", "ok"]
    assert rows[1]["run_dir"] is None and "95_broken" in rows[1]["error"]
    assert {k: os.environ.get(k) for k in ENV_KEYS} == dict.fromkeys(ENV_KEYS)
    assert not any(p.name.startswith("96_") for p in out.iterdir())  # never executed

    (out / "index.html").unlink()
    with pytest.raises(Exception, match="boom") as info:
        run_audits(["95", "96"], results_root=out, jobs=1, keep_going=False)
    assert (out / "index.html").is_file()  # rebuilt although the call stopped
    assert [r["audit"] for r in info.value.facelab_rows] == ["95_broken"]

    # the CLI, audits in parallel: the dependent is skipped, the other one runs
    monkeypatch.setenv("FACELAB_AUDIT_JOBS", "2")
    res = CliRunner().invoke(app, ["audit", "95", "96", "97", "--results", str(out)])
    assert res.exit_code == 1, res.output
    assert "skipped: 95_broken failed 96_needs_broken" in " ".join(res.output.split())
    assert "ok" in res.output and "97_other" in res.output
    res = CliRunner().invoke(app, ["audit", "95", "97", "--results", str(out),
                                   "--stop-on-failure", "--force"])
    assert res.exit_code == 1 and "stopped at the first failure" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


def test_parameters_are_checked_before_anything_runs(tmp_path, monkeypatch):
    """papermill only warns about a name the notebook lacks and runs on with the default:
    a misspelt ``-p limt 40`` would run the full audit; a wrong kind fails minutes in."""
    import facelab
    from facelab.report.audits import check_parameters

    a, b = tmp_path / "91_a.ipynb", tmp_path / "92_b.ipynb"
    _notebook(a, params="output_dir = None\nlimit = 20\nfast = False\nlabel = 'x'\n"
                        "models = [m for m in ('a', 'b')]")
    _notebook(b, params="output_dir = None\nlimit = 20\nrate = 0.5")
    check_parameters([a, b], {"limit": None, "rate": 1, "fast": True, "label": 3,
                              "models": ["a"]})  # each known to one of them: fine
    for params, message in [
        ({"limt": 40}, r"unknown parameter 'limt' for 91_a; its parameters: fast, label, "
                       r"limit, models$"),
        ({"limit": "many"}, r"'limit' of 91_a must be a number \(or null\) \(its default is "
                            r"20\), got 'many'"),
        ({"limit": True}, r"'limit' of 91_a must be a number"),
        ({"fast": "yes"}, r"'fast' of 91_a must be true or false"),
        ({"output_dir": "x"}, r"unknown parameter 'output_dir'"),  # the runner's own
    ]:
        with pytest.raises(ValueError, match=message):
            check_parameters([a], params)
    with pytest.raises(ValueError, match=r"'rate' of 92_b must be a number"):
        check_parameters([a, b], {"rate": "half"})

    # the CLI and facelab.audit stop before any run folder is made
    monkeypatch.setenv("FACELAB_NOTEBOOKS", str(tmp_path))
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["audit", "91", "-p", "limt", "40", "--results", str(out)])
    assert res.exit_code == 2 and "unknown parameter 'limt' for 91_a" in \
        " ".join(res.output.split())
    res = CliRunner().invoke(app, ["audit", "91", "-p", "limit", "notanumber",
                                   "--results", str(out)])
    assert res.exit_code == 2 and "must be a number" in res.output
    with pytest.raises(ValueError, match="unknown parameter 'nosuch'"):
        facelab.audit("91", {"nosuch": 3}, results_root=out)
    assert not out.exists() or not any(out.iterdir())


def test_the_suite_parameters_are_parameters_of_their_notebooks():
    from facelab.report.audits import AUDITS, check_parameters, resolve_audits

    for notebook in resolve_audits(None):
        check_parameters([notebook], dict(AUDITS[notebook.stem].suite_parameters))


def test_empty_index_and_recall_inputs_are_clear_errors():
    import numpy as np

    from facelab.match.index import FaissIndex, recall_at_k

    with pytest.raises(ValueError, match="0 vectors"):
        FaissIndex(dim=8).build(np.zeros((0, 8), np.float32))
    with pytest.raises(ValueError, match="at least one query"):
        recall_at_k(np.zeros((0, 3), int), np.zeros((0, 3), int))
    with pytest.raises(ValueError, match="queries"):
        recall_at_k(np.zeros((2, 3), int), np.zeros((3, 3), int))
    assert recall_at_k(np.array([[0, 1, -1]]), np.array([[1, 2]])) == 0.5


def test_a_numpy_seed_is_written_to_provenance(tmp_path):
    import datetime as dt

    import numpy as np

    from facelab.report.record import write_provenance

    now = dt.datetime.now(dt.UTC)
    prov = write_provenance(tmp_path, notebook="x", parameters={"seed": np.int64(7)},
                            started=now, finished=now, status="ok")
    assert json.loads((tmp_path / "provenance.json").read_text())["seed"] == 7 == prov["seed"]
