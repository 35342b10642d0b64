"""Run the audit notebooks with papermill into ``results/<run-id>/``.

Each run folder holds the executed notebook, an HTML export, ``metrics.json``, the
figures as PNG, ``provenance.json`` and ``model_card.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facelab.core.config import results_dir
from facelab.core.progress import progress_mode
from facelab.data.resolve import (
    DATASET_PARAMETERS,
    REQUIRED_ENV,
    DatasetSpecError,
    parse_dataset_spec,
)
from facelab.report.audits import (
    AUDITS,
    DEPENDS_ON,
    NEEDS_RESULTS_OF,
    RUN_FIRST,
    check_parameters,
    parameter_defaults,
    resolve_audits,
)
from facelab.report.datastatus import NEEDS_DATA
from facelab.report.record import new_run_dir, write_model_card, write_provenance
from facelab.report.runs_index import UNREADABLE, write_index
from facelab.report.uptodate import (
    audit_inputs,
    explained,
    has_own_files,
    inputs_digest,
    up_to_date_run,
)

__all__ = ["run_audit", "run_audits", "effective_parameters", "latest_up_to_date",
           "export_html", "absolute_paths", "required_datasets", "UP_TO_DATE"]

KERNEL_NAME = "facelab"
#: The kernel's own log at ERROR: ipykernel 7 warns "Kernel is running over TCP without
#: encryption" at every start (a local kernel on 127.0.0.1: nothing for the reader).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: Status row of an audit not executed because its last ``ok`` run has the same inputs
#: (:mod:`facelab.report.uptodate`).
UP_TO_DATE = "up to date"
#: Audits whose numbers depend on trained models under ``<results>/models`` (06 writes
#: them, 04 compares them with fer): their inputs include that folder.
USES_TRAINED_MODELS: tuple[str, ...] = ("04_expression_fear", "06_train_expression")


#: Parameter values taken as file paths: strings with these endings, or ``csv:<path>``.
PATH_SUFFIXES: tuple[str, ...] = (".csv", ".yaml", ".yml", ".onnx")
#: Keys of mapping values (dataset specs) that hold file paths.
PATH_KEYS: tuple[str, ...] = ("csv", "manifest", "root", "card")
#: Parameters naming results another system exported (``facelab.external``): a file or
#: folder path, or a mapping with a ``path``.
IMPORT_PARAMETERS: tuple[str, ...] = ("scores", "candidates", "predictions")


def absolute_paths(value: Any, base: str | os.PathLike) -> Any:
    """``value`` with relative file paths made absolute against ``base``.

    Notebooks run inside ``notebooks/`` (papermill's working directory), so a CSV manifest
    or model card named relative to where ``facelab audit`` was typed (or to the ``-f``
    parameters file) must be made absolute first. Paths are strings ending in
    :data:`PATH_SUFFIXES`, ``csv:<path>`` strings and the :data:`PATH_KEYS` of mappings
    (``images_root`` and a card's ``onnx`` stay relative to their CSV / card), in lists
    and mappings at any depth. The :data:`IMPORT_PARAMETERS` of a mapping (a path, or a
    mapping with a ``path``) are made absolute whatever their ending (files or folders).

    Parameters
    ----------
    value : Any
        A parameter value or a whole ``{name: value}`` mapping of parameters.
    base : str or os.PathLike
        The folder relative paths are taken from (``~`` is expanded first).

    Returns
    -------
    Any
        A copy with absolute, resolved path strings (a mapping becomes a ``dict``, lists
        and tuples keep their type); other values unchanged.
    """
    base = Path(base)
    if isinstance(value, Mapping):
        return {k: (_import_path(v, base) if k in IMPORT_PARAMETERS
                    else _absolute(v, base) if k in PATH_KEYS and isinstance(v, str)
                    else absolute_paths(v, base)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(absolute_paths(v, base) for v in value)
    if isinstance(value, str):
        head, sep, rest = value.partition(":")
        if sep and head.lower() in ("csv", "manifest") and rest:
            return f"{head}:{_absolute(rest, base)}"
        if value.lower().endswith(PATH_SUFFIXES):
            return _absolute(value, base)
    return value


def _import_path(spec: Any, base: Path) -> Any:
    """An import parameter (:data:`IMPORT_PARAMETERS`): a path, or a mapping whose
    ``path`` is one (files and folders of another system's results)."""
    if isinstance(spec, str | os.PathLike):
        return _absolute(str(spec), base)
    if isinstance(spec, Mapping) and isinstance(spec.get("path"), str):
        return {**spec, "path": _absolute(spec["path"], base)}
    return spec


def _absolute(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def required_datasets(parameters: Mapping[str, Any]) -> list[str]:
    """Registered dataset names given in the dataset parameters of ``parameters`` (the
    user's own): those must load, never skip quietly
    (:data:`facelab.data.resolve.REQUIRED_ENV`).

    Parameters
    ----------
    parameters : mapping of str to Any
        Notebook parameters; the keys of :data:`facelab.data.resolve.DATASET_PARAMETERS`
        are read (one spec or a list of specs each).

    Returns
    -------
    list of str
        Sorted registered dataset (adapter) names. CSV manifests and specs that do not
        parse are left out (the notebook reports the latter, with the reason).
    """
    names = set()
    for key in DATASET_PARAMETERS:
        value = parameters.get(key)
        specs = value if isinstance(value, list | tuple) else [value]
        for spec in specs:
            if spec is None:
                continue
            try:
                req = parse_dataset_spec(spec, required=set())
            except DatasetSpecError:
                continue  # the notebook reports it, with the reason
            if not req.is_csv:
                names.add(req.adapter)
    return sorted(names)



def effective_parameters(notebook: str | Path,
                         parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters a run of ``notebook`` gets: the suite's
    (:attr:`~facelab.report.audits.AuditSpec.suite_parameters`) updated with the user's,
    relative paths made absolute against the working directory (:func:`absolute_paths`).

    Parameters
    ----------
    notebook : str or pathlib.Path
        The notebook (its stem selects the :data:`~facelab.report.audits.AUDITS` entry;
        an unknown stem has no suite parameters).
    parameters : mapping of str to Any, optional
        The user's parameters.

    Returns
    -------
    dict of str to Any
        Suite parameters overridden by the user's (``output_dir`` is not set here).
    """
    spec = AUDITS.get(Path(notebook).stem)
    params = dict(spec.suite_parameters) if spec else {}
    params.update(absolute_paths(dict(parameters or {}), Path.cwd()))
    return params


def _inputs(notebook: Path, params: Mapping[str, Any]) -> dict[str, str]:
    # a parameter given at its notebook default is the same run as one left out
    full = {**parameter_defaults(notebook), **params}
    return audit_inputs(notebook, full, trained_models=notebook.stem in USES_TRAINED_MODELS)


def latest_up_to_date(notebook: str | Path, parameters: Mapping[str, Any] | None = None,
                      results_root: str | Path | None = None) -> Path | None:
    """The newest ``ok`` run folder of ``notebook`` under ``results_root`` whose inputs
    (:mod:`facelab.report.uptodate`) are those a run with ``parameters`` would have now,
    or ``None`` (also when ``parameters`` name files of the user's own: those always run).

    Parameters
    ----------
    notebook : str or pathlib.Path
        The audit notebook.
    parameters : mapping of str to Any, optional
        The user's parameters (:func:`effective_parameters` adds the suite's; a
        parameter given at its notebook default counts as left out).
    results_root : str or pathlib.Path, optional
        The results folder; :func:`facelab.core.config.results_dir` when omitted.

    Returns
    -------
    pathlib.Path or None
        The run folder, or None when no earlier run matches.
    """
    if has_own_files(parameters or {}, path_keys=PATH_KEYS, path_suffixes=PATH_SUFFIXES):
        return None
    notebook = Path(notebook)
    digest = inputs_digest(_inputs(notebook, effective_parameters(notebook, parameters)))
    return up_to_date_run(results_root or results_dir(), notebook.stem, digest)


def run_audit(notebook: str | Path, *, parameters: Mapping[str, Any] | None = None,
              results_root: str | Path | None = None, run_id: str | None = None,
              kernel_name: str = KERNEL_NAME, progress: bool = True,
              html: bool = True) -> Path:
    """Execute one notebook into its own run folder and complete the folder.

    The notebook runs with papermill in kernel ``kernel_name``, working directory the
    notebook's folder, with the :func:`effective_parameters` plus ``output_dir`` (the run
    folder). A failing notebook still gets its executed copy, its HTML report and
    ``provenance.json`` (status "failed", with the error), then the error is raised. A
    notebook stopped by :class:`facelab.report.datastatus.MissingDataError` gets status
    ``"needs data"``, its banner replaced by the plain message, and is not an error. A
    run that finishes also gets its inputs digest in ``provenance.json`` and
    ``model_card.md`` (for a notebook of :data:`~facelab.report.audits.AUDITS`).

    While the kernel runs, ``FACELAB_REQUIRED_DATASETS`` (:func:`required_datasets` of
    the user's parameters) is set, and ``FACELAB_PROGRESS=final``, ``FACELAB_RESULTS``
    (absolute) and ``MPLBACKEND=agg`` are set when unset; all four are restored after,
    so this process's environment is the same before and after.

    Parameters
    ----------
    notebook : str or pathlib.Path
        The audit notebook.
    parameters : mapping of str to Any, optional
        The user's parameters; relative paths are taken from the working directory.
    results_root : str or pathlib.Path, optional
        Where the run folder is made; :func:`facelab.core.config.results_dir` when
        omitted.
    run_id : str, optional
        Run folder name (an existing folder of that name is written into); when omitted
        a new folder from :func:`facelab.report.record.new_run_dir` (UTC time and audit
        name, never one another run uses).
    kernel_name : str
        Jupyter kernel to execute in (``"facelab"``).
    progress : bool
        Papermill's cell progress bar, shown only when facelab's progress mode is a bar
        or a widget (:func:`facelab.core.progress.progress_mode`).
    html : bool
        Also export the HTML report (:func:`export_html`).

    Returns
    -------
    pathlib.Path
        The run folder.

    Raises
    ------
    ValueError
        When the notebook's parameters cell is not valid Python
        (:func:`facelab.report.audits.parameter_defaults`), before any run folder is made.
    Exception
        Whatever papermill raised for a failed run (usually
        ``papermill.PapermillExecutionError``), after the run folder was completed; its
        ``facelab_run_dir`` attribute names the folder.
    """
    import papermill as pm

    notebook = Path(notebook)
    name = notebook.stem
    spec = AUDITS.get(name)
    defaults = parameter_defaults(notebook)  # a broken parameters cell stops here
    user = absolute_paths(dict(parameters or {}), Path.cwd())
    params = effective_parameters(notebook, parameters)
    root = Path(results_root or results_dir())
    if run_id:  # a name the caller chose (tests, reruns into one folder): reused
        run_dir = root / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
    else:  # never the folder of another run started in the same second
        run_dir = new_run_dir(root, name)
    params["output_dir"] = str(run_dir.resolve())
    out_nb = run_dir / notebook.name
    started = dt.datetime.now(dt.UTC)
    # papermill's cell bar only on a terminal; in the kernel (headless) every progress bar
    # prints one final line (facelab.core.progress)
    progress = progress and progress_mode() in ("bar", "widget")
    # the kernel inherits this process's environment: set what it needs, restore after
    saved = {k: os.environ.get(k) for k in _KERNEL_ENV}
    # the kernel runs inside notebooks/: give it an absolute results location
    os.environ.setdefault("FACELAB_RESULTS", str(Path(results_dir()).resolve()))
    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ.setdefault("FACELAB_PROGRESS", "final")
    # datasets the user named must load in the kernel
    os.environ[REQUIRED_ENV] = json.dumps(required_datasets(user))
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params,
                            kernel_name=kernel_name, language="python", progress_bar=progress,
                            cwd=str(notebook.parent), extra_arguments=KERNEL_ARGUMENTS)
    except Exception as exc:
        missing = _missing_data(exc)
        write_provenance(run_dir, notebook=name, parameters=params, started=started,
                         defaults=defaults,
                         finished=dt.datetime.now(dt.UTC),
                         status=NEEDS_DATA if missing else "failed",
                         error=None if missing else error_message(exc)[:2000],
                         missing_data=missing)
        if missing:
            _plain_stop_banner(out_nb, missing)
        if html and out_nb.exists():  # a failed run gets its report too, error included
            export_html(out_nb, run_dir / f"{name}.html")
        if not missing:
            exc.facelab_run_dir = str(run_dir)  # where the report of the failed run is
            raise
        return run_dir
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finished = dt.datetime.now(dt.UTC)
    # what the numbers depended on, taken after the run (06's model is then in place)
    inputs = _inputs(notebook, params)
    write_provenance(run_dir, notebook=name, parameters=params, started=started,
                     defaults=defaults, finished=finished, status="ok",
                     inputs=explained(inputs), inputs_digest=inputs_digest(inputs))
    if html:
        export_html(out_nb, run_dir / f"{name}.html")
    if spec:
        write_model_card(run_dir, title=spec.title, intended_use=spec.intended_use,
                         factors=spec.factors, evaluation_data=spec.evaluation_data,
                         ethical=spec.ethical, caveats=spec.caveats,
                         headline_metrics=spec.headline_metrics)
    return run_dir


#: Environment variables :func:`run_audit` sets for the kernel and restores after.
_KERNEL_ENV: tuple[str, ...] = ("FACELAB_RESULTS", "MPLBACKEND", "FACELAB_PROGRESS",
                                REQUIRED_ENV)

#: Environment variable giving the default number of audits run at once.
JOBS_ENV = "FACELAB_AUDIT_JOBS"


def _jobs(jobs: int | None) -> int:
    if jobs is None:
        value = os.environ.get(JOBS_ENV, "")
        if value and not value.isdigit():
            raise ValueError(f"{JOBS_ENV}={value!r}: give a whole number of audits to run "
                             "at once")
        jobs = int(value) if value else min(2, os.cpu_count() or 1)
    return max(1, int(jobs))


def _run_one(nb: Path, parameters, results_root, progress: bool = True,
             threads: int | None = None, force: bool = False) -> dict:
    """One audit as a status row (runs in a worker process when audits run in parallel);
    the row of an audit whose last ``ok`` run has the same inputs (and ``force`` is off)
    says :data:`UP_TO_DATE` and names that run's folder."""
    start = dt.datetime.now(dt.UTC)
    if threads:
        # the kernel inherits it: torch, OpenVINO (facelab's SFace) and BLAS share the cores
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        # a notebook whose parameters cell is not valid Python fails here, as its row
        run = None if force else latest_up_to_date(nb, parameters, results_root)
        if run is not None:
            return {"audit": nb.stem, "status": UP_TO_DATE, "run_dir": str(run),
                    "started": start.isoformat(),
                    "seconds": (dt.datetime.now(dt.UTC) - start).total_seconds()}
        run_dir = run_audit(nb, parameters=parameters, results_root=results_root,
                            progress=progress)
        return {"audit": nb.stem, "status": _run_status(run_dir), "run_dir": str(run_dir),
                "started": start.isoformat(),
                "seconds": (dt.datetime.now(dt.UTC) - start).total_seconds()}
    except Exception as exc:
        return {"audit": nb.stem, "status": "failed", "error": error_message(exc)[:500],
                "run_dir": getattr(exc, "facelab_run_dir", None), "started": start.isoformat(),
                "seconds": (dt.datetime.now(dt.UTC) - start).total_seconds(),
                "_exception": exc}


def run_audits(names: Sequence[str] | None = None, *,
               parameters: Mapping[str, Any] | None = None,
               results_root: str | Path | None = None, keep_going: bool = True,
               jobs: int | None = None, force: bool = False) -> list[dict]:
    """Run several audits; returns one status dict per notebook (never stops at the first
    failure when ``keep_going``), then rebuilds ``<results>/index.html`` (also when it
    stops at a failure).

    ``jobs`` audits run at once, each notebook in its own worker process and kernel
    (default ``$FACELAB_AUDIT_JOBS``, else ``min(2, CPU count)``); an audit listed in
    :data:`DEPENDS_ON` starts only after the audits it needs have finished, and each
    kernel gets ``OMP_NUM_THREADS = CPUs // jobs``. ``jobs=1`` runs them one after another
    in this process. Each row has the audit's start time (``started``, ISO 8601 UTC) and
    wall-clock ``seconds``.

    An audit whose newest ``ok`` run under ``results_root`` had exactly the same inputs
    (notebook, parameters, facelab's code, installed packages, data files, machine:
    :mod:`facelab.report.uptodate`) is not executed again: its row's status is
    ``"up to date"`` and ``run_dir`` names that run. ``force=True`` executes every audit;
    runs given files of their own (CSV manifests, score files, model cards) always execute.

    Parameters
    ----------
    names : sequence of str, optional
        Audit names (:func:`facelab.report.audits.resolve_audits`); every audit when
        omitted. They run in :data:`~facelab.report.audits.RUN_FIRST` order first.
    parameters : mapping of str to Any, optional
        The user's parameters, given to every audit.
    results_root : str or pathlib.Path, optional
        The results folder; :func:`facelab.core.config.results_dir` when omitted.
    keep_going : bool
        Run the other audits after a failure (default); False stops at the first failure
        (in parallel: starts no further audit) and raises it.
    jobs : int, optional
        Audits run at once (at least 1, at most the number of audits).
    force : bool
        Execute audits that are up to date too.

    Returns
    -------
    list of dict
        Per audit, in run order: ``audit``, ``status`` (``"ok"``, ``"needs data"``,
        ``"failed"``, ``"up to date"``, ``"skipped: <audit> failed"`` or
        ``"unreadable: provenance.json"``),
        ``run_dir`` (None when a run
        failed before its folder existed), ``started``, ``seconds`` and, for a failure,
        ``error`` (its message, at most 500 characters).

    Raises
    ------
    ValueError
        When a name matches no audit or several, or ``$FACELAB_AUDIT_JOBS`` is not a
        whole number.
    Exception
        With ``keep_going=False``, the first failed audit's error, after the index was
        rebuilt; its ``facelab_rows`` attribute holds the rows of the audits run so far
        (the failed one last in the order above).

    Notes
    -----
    An audit listed in :data:`NEEDS_RESULTS_OF` whose prerequisite failed (or was itself
    skipped) in the same call is not run: its row's status is ``"skipped: <audit>
    failed"``, with ``run_dir`` None and an ``error`` saying why. A prerequisite that is
    not among ``names`` is not checked (an earlier call's run of it is used). An audit
    that only waits for another (:data:`DEPENDS_ON`, e.g. 03 for 02's cache) runs anyway.
    """
    first = {stem: i for i, stem in enumerate(RUN_FIRST)}
    notebooks = sorted(resolve_audits(names), key=lambda p: first.get(p.stem, len(first)))
    check_parameters(notebooks, parameters or {})  # a misspelt name must not run a full audit
    jobs = min(_jobs(jobs), max(1, len(notebooks)))
    rows: list[dict] = []
    try:
        if jobs == 1:
            done: dict[str, dict] = {}
            for nb in notebooks:
                row = _skipped(nb, done) or _run_one(nb, parameters, results_root, force=force)
                exc = row.pop("_exception", None)
                rows.append(row)
                done[nb.stem] = row
                if exc is not None and not keep_going:
                    exc.facelab_rows = rows
                    raise exc
        else:
            rows = _run_parallel(notebooks, parameters, results_root, keep_going, jobs, force)
    finally:
        write_index(results_root or results_dir())  # results/index.html lists every run
    return rows


#: Start of the status of an audit not run because an audit whose results it uses
#: (:data:`~facelab.report.audits.NEEDS_RESULTS_OF`) failed in the same call.
SKIPPED = "skipped"


def _skipped(nb: Path, done: Mapping[str, dict]) -> dict | None:
    """The status row of ``nb`` when an audit it needs failed (or was skipped) earlier in
    the same call, else ``None`` (it runs)."""
    bad = [d for d in NEEDS_RESULTS_OF.get(nb.stem, ()) if d in done
           and (done[d]["status"] == "failed" or done[d]["status"].startswith(SKIPPED))]
    if not bad:
        return None
    return {"audit": nb.stem, "status": f"{SKIPPED}: {', '.join(bad)} failed", "run_dir": None,
            "started": dt.datetime.now(dt.UTC).isoformat(), "seconds": 0.0,
            "error": f"not run: it needs {', '.join(bad)}, which failed in this call"}


def _run_parallel(notebooks: list[Path], parameters, results_root, keep_going: bool,
                  jobs: int, force: bool = False) -> list[dict]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    names = {nb.stem for nb in notebooks}
    waiting = list(notebooks)
    done: dict[str, dict] = {}
    running: dict = {}
    failure = None
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        while waiting or running:
            ready = [nb for nb in waiting
                     if all(d in done or d not in names for d in DEPENDS_ON.get(nb.stem, ()))]
            skipped = False
            while ready and len(running) < jobs and failure is None:
                nb = ready.pop(0)
                waiting.remove(nb)
                row = _skipped(nb, done)
                if row is not None:  # an audit it needs failed: not run
                    done[nb.stem] = row
                    skipped = True
                    continue
                running[pool.submit(_run_one, nb, parameters, results_root, False,
                                    threads, force)] = nb
            if not running:
                if skipped:
                    continue  # audits waiting for the skipped one may be ready now
                break  # stopped after a failure (keep_going=False)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                nb = running.pop(fut)
                row = fut.result()
                exc = row.pop("_exception", None)
                done[nb.stem] = row
                if exc is not None and not keep_going and failure is None:
                    failure = exc
    rows = [done[nb.stem] for nb in notebooks if nb.stem in done]
    if failure is not None:
        failure.facelab_rows = rows
        raise failure
    return rows


def _run_status(run_dir: Path) -> str:
    """The status a run folder's provenance.json records ("ok", "needs data", ...);
    ``"unreadable: provenance.json"`` when it cannot be read or has no status."""
    import json

    try:
        return json.loads((Path(run_dir) / "provenance.json").read_text())["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{UNREADABLE}: provenance.json"


def error_message(exc: BaseException) -> str:
    """The error a reader needs from a failed run: for an error raised inside the notebook
    (papermill's ``PapermillExecutionError``) the notebook's own exception, ``"ValueError:
    needs at least 1,000 impostor comparisons ..."``, not papermill's traceback dump."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else str(ename)
    return f"{type(exc).__name__}: {exc}"


def _missing_data(exc: BaseException) -> str | None:
    """The plain message of a notebook stopped by
    :class:`facelab.report.datastatus.MissingDataError` (papermill re-raises it as
    ``PapermillExecutionError``), else ``None``."""
    if getattr(exc, "ename", None) == "MissingDataError":
        return str(getattr(exc, "evalue", "")) or "data missing"
    return None


def _plain_stop_banner(out_nb: Path, message: str) -> None:
    """Replace papermill's red "An Exception was encountered" banner of a run that stopped
    for missing data by the plain message."""
    import nbformat

    nb = nbformat.read(str(out_nb), as_version=4)
    banners = [c for c in nb.cells if c.cell_type == "markdown"
               and "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    for i, cell in enumerate(banners):  # the first opens the notebook, the next marks the cell
        cell.source = ("**This audit stopped: it needs data it could not find.**\n\n"
                       + "\n".join(f"    {line}" for line in message.splitlines())
                       if i == 0 else "**The audit stopped here** (missing data, see the top).")
    nbformat.write(nb, str(out_nb))


def export_html(notebook: str | Path, html_path: str | Path) -> Path:
    """Export an executed notebook to a self-contained HTML report: prose, tables, figures
    and outputs, code cells hidden (the executed ``.ipynb`` beside it keeps the code).

    Uses nbconvert's ``HTMLExporter`` with images embedded; a note that the code is hidden
    is inserted after the first cell when it is markdown (else at the top). The
    notebook file itself is not changed.

    Parameters
    ----------
    notebook : str or pathlib.Path
        An executed ``.ipynb``.
    html_path : str or pathlib.Path
        Where to write the page (overwritten).

    Returns
    -------
    pathlib.Path
        ``html_path``.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    note = nbformat.v4.new_markdown_cell(
        f"*Report view: the code is hidden. `{Path(notebook).name}` beside this page is the "
        "executed notebook with the code and every output.*")
    first = nb.cells[0] if nb.cells else None
    nb.cells.insert(1 if first is not None and first.cell_type == "markdown" else 0, note)
    with warnings.catch_warnings():
        # scrapbook's recorded values have no HTML form; they stay in the .ipynb
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        exporter = HTMLExporter(embed_images=True, exclude_input=True,
                                exclude_input_prompt=True, exclude_output_prompt=True)
        body, _ = exporter.from_notebook_node(nb)
    Path(html_path).write_text(body, encoding="utf-8")
    return Path(html_path)
