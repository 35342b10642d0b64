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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.datastatus import NEEDS_DATA

__all__ = ["AuditSpec", "AUDITS", "notebooks_dir", "resolve_audits", "run_audit", "run_audits",
           "export_html", "absolute_paths", "required_datasets"]

KERNEL_NAME = "facelab"
#: The kernel's own log at ERROR: ipykernel 7 warns "Kernel is running over TCP without
#: encryption" at every start (a local kernel on 127.0.0.1: nothing for the reader).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: Audits that produce something others use run first when several are run together
#: (06 trains the expression model that 04 compares with the fer model).
RUN_FIRST: tuple[str, ...] = ("06_train_expression",)


@dataclass(frozen=True)
class AuditSpec:
    """One audit notebook and the fixed text of its model card."""

    name: str
    title: str
    intended_use: str
    factors: str
    evaluation_data: str
    ethical: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    headline_metrics: tuple[str, ...] = ()
    suite_parameters: Mapping[str, Any] = field(default_factory=dict)


_APPEARANCE = ("Expression and gender outputs describe how a face looks in one image, not "
               "a person's inner emotional state or gender identity.")
_RESEARCH = ("Research datasets with research-only terms; labels (race, gender, expression) "
             "were assigned by dataset creators or annotators and are coarse, contested "
             "categories.")

AUDITS: dict[str, AuditSpec] = {s.name: s for s in [
    AuditSpec(
        "00_tour", "facelab tour (detection, analysis, verification, search)",
        "A guided first look at one photo: not an evaluation.",
        "None: a single image.", "scikit-image's astronaut photo and a few shared-data faces.",
        ethical=(_APPEARANCE,), headline_metrics=("n_faces", "verification")),
    AuditSpec(
        "01_detection_reliability", "Face detectors: failure to acquire by group",
        "Comparing face detectors' failure-to-acquire rates across demographic groups and "
        "image degradations before deployment.",
        "Race x gender as labelled in FairFace, UTKFace and CFD; image degradations.",
        "FairFace val, UTKFace, CFD (shared data; see data/README.md).",
        ethical=(_RESEARCH,),
        caveats=("Failure to acquire on curated face crops understates in-the-wild rates.",),
        headline_metrics=("fta_overall", "fta_disparity"),
        suite_parameters={"limit": None, "slow_limit": 600, "degradation_limit": 600,
                          "degradation_slow_limit": 120, "min_count": 30}),
    AuditSpec(
        "02_verification_demographics", "1:1 verification: demographic differentials",
        "Measuring false match and false non-match rates by group at one global threshold "
        "(NIST FRVT Part 3 style).",
        "Groups from dataset labels; impostor pairs within and across groups; genuine pairs "
        "by group where a dataset has identities and labels.",
        "CelebA identities (genuine and impostor pairs), CFD and FairFace (impostor pairs), "
        "LFW (genuine and impostor pairs by gender and by race).",
        ethical=(_RESEARCH, "A single global threshold yields different error rates per "
                 "group; the operator chooses who bears the errors."),
        caveats=("FairFace and CFD have one image per person: only impostor (FMR) analysis "
                 "is possible there.",
                 "LFW is news photos of public figures; its gender lists and MICA race "
                 "labels are third-party annotations, and most race cells are small.",),
        headline_metrics=("threshold", "fmr_by_group", "fnmr_overall",
                          "fnmr_by_group_identity", "nist_comparison"),
        suite_parameters={"limit": None}),
    AuditSpec(
        "03_one_to_many_search", "1:N search: false matches at permissive and strict "
        "thresholds (the ACLU test, rebuilt)",
        "Estimating how often a gallery search returns an innocent person and who those "
        "people are, at permissive and strict operating points.",
        "Gallery size, threshold, demographic group of probes and false candidates.",
        "Galleries and probes built from the shared data (see the notebook).",
        ethical=(_RESEARCH, "False matches in 1:N search can direct suspicion at innocent "
                 "people; human review is not a guarantee."),
        headline_metrics=("operating_points", "fpir_by_gallery_size"),
        suite_parameters={"limit": None, "n_probes": 2000}),
    AuditSpec(
        "04_expression_fear", "Expression classification, with fear singled out",
        "Measuring how accurately expression classifiers label posed and in-the-wild "
        "expressions, and how often they assign 'fear' to faces labelled otherwise.",
        "Expression label, dataset, race x gender where labelled.",
        "FER2013 PrivateTest, CK+48, JAFFE, CFD expressions.",
        ethical=(_APPEARANCE, "Facial configurations are not reliable, specific signals of "
                 "emotion (Barrett et al. 2019); 'fear' detection must not be used to infer "
                 "a person's state or intent."),
        headline_metrics=("accuracy", "fear_recall", "fear_false_assignment"),
        suite_parameters={"limit": None, "robustness_limit": 120}),
    AuditSpec(
        "05_attribute_audit", "Gender and age estimation by race x gender (Gender Shades "
        "style)",
        "Measuring gender-classification error and age error by intersectional group.",
        "Race x gender (dataset labels); skin type x gender (ITA measured from the pixels, "
        "lighter/darker); age.",
        "FairFace val, UTKFace, CFD; CelebA and LFW for the skin-tone stability check.",
        ethical=(_APPEARANCE, _RESEARCH, "Binary gender labels exclude non-binary people."),
        caveats=("Skin type is the ITA of one photo (facelab.skin): it moves with exposure "
                 "and white balance and is unstable across one person's photos (measured in "
                 "the notebook and docs/models.md); lighter/darker at 28 degrees only "
                 "approximates Fitzpatrick I-III vs IV-VI.",),
        headline_metrics=("gender_error_overall", "worst_best_ratio", "age_mae_overall",
                          "worst_best_ratio_skin_type", "skin_tone_one_class"),
        suite_parameters={"limit": None, "min_count": 30, "stability_limit": None,
                          "brightness_faces": 300}),
    AuditSpec(
        "06_train_expression", "An expression model trained by facelab",
        "Training a small expression classifier from scratch for comparison with the fer "
        "model in the other audits.",
        "Expression label; dataset.",
        "FER2013 PrivateTest folder release and CK+48 (subject-disjoint splits).",
        ethical=(_APPEARANCE,),
        headline_metrics=("val_accuracy", "test_accuracy", "test_fear_recall"),
        suite_parameters={"limit": None, "epochs": 30, "compare_limit": 300}),
]}


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
    and mappings at any depth.
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
    (:data:`facelab.datasets.resolve.REQUIRED_ENV`)."""
    from facelab.datasets.resolve import DATASET_PARAMETERS, DatasetSpecError, parse_dataset_spec

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


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (``$FACELAB_NOTEBOOKS`` overrides)."""
    value = os.environ.get("FACELAB_NOTEBOOKS")
    return Path(value) if value else Path(__file__).resolve().parents[1] / "notebooks"


def resolve_audits(names: Sequence[str] | None = None) -> list[Path]:
    """Notebook paths for audit names (``02``, ``02_verification_demographics`` or a
    unique substring such as ``verification``); all notebooks when ``names`` is empty."""
    available = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    out = []
    for name in names:
        hits = [p for p in available if p.stem == name or p.stem.startswith(f"{name}_")
                or name in p.stem]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in available)
            raise ValueError(f"audit {name!r} matches {len(hits)} notebooks; known: {known}")
        out.append(hits[0])
    return out


def run_audit(notebook: str | Path, *, parameters: Mapping[str, Any] | None = None,
              results_root: str | Path | None = None, run_id: str | None = None,
              kernel_name: str = KERNEL_NAME, progress: bool = True,
              html: bool = True) -> Path:
    """Execute one notebook into its own run folder and complete the folder.

    Returns the run folder. A failing notebook still gets its executed copy and
    ``provenance.json`` (status "failed", with the error), then the error is raised.
    """
    import papermill as pm

    from facelab.config import results_dir
    from facelab.report import new_run_id, write_model_card, write_provenance

    notebook = Path(notebook)
    name = notebook.stem
    spec = AUDITS.get(name)
    params = dict(spec.suite_parameters) if spec else {}
    user = absolute_paths(dict(parameters or {}), Path.cwd())
    params.update(user)
    run_dir = Path(results_root or results_dir()) / (run_id or new_run_id(name))
    run_dir.mkdir(parents=True, exist_ok=True)
    params["output_dir"] = str(run_dir.resolve())
    # the kernel runs inside notebooks/: give it absolute results and cache locations
    os.environ.setdefault("FACELAB_RESULTS", str(Path(results_dir()).resolve()))
    out_nb = run_dir / notebook.name
    started = dt.datetime.now(dt.UTC)
    env_backend = os.environ.setdefault("MPLBACKEND", "agg")
    from facelab.datasets.resolve import REQUIRED_ENV

    before = os.environ.get(REQUIRED_ENV)
    # datasets the user named must load in the kernel (which inherits this environment)
    os.environ[REQUIRED_ENV] = json.dumps(required_datasets(user))
    from facelab.progress import progress_mode

    # papermill's cell bar only on a terminal; in the kernel (headless) every progress bar
    # prints one final line (facelab.progress)
    progress = progress and progress_mode() in ("bar", "widget")
    progress_before = os.environ.get("FACELAB_PROGRESS")
    os.environ.setdefault("FACELAB_PROGRESS", "final")
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params,
                            kernel_name=kernel_name, language="python", progress_bar=progress,
                            cwd=str(notebook.parent), extra_arguments=KERNEL_ARGUMENTS)
    except Exception as exc:
        missing = _missing_data(exc)
        write_provenance(run_dir, notebook=name, parameters=params, started=started,
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
        del env_backend
        if progress_before is None:
            os.environ.pop("FACELAB_PROGRESS", None)
        if before is None:
            os.environ.pop(REQUIRED_ENV, None)
        else:
            os.environ[REQUIRED_ENV] = before
    write_provenance(run_dir, notebook=name, parameters=params, started=started,
                     finished=dt.datetime.now(dt.UTC), status="ok")
    if html:
        export_html(out_nb, run_dir / f"{name}.html")
    if spec:
        write_model_card(run_dir, title=spec.title, intended_use=spec.intended_use,
                         factors=spec.factors, evaluation_data=spec.evaluation_data,
                         ethical=spec.ethical, caveats=spec.caveats,
                         headline_metrics=spec.headline_metrics)
    return run_dir


#: Audits that must wait for others when audits run in parallel (04 reads the model 06
#: trains).
DEPENDS_ON: dict[str, tuple[str, ...]] = {"04_expression_fear": ("06_train_expression",)}
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
             threads: int | None = None) -> dict:
    """One audit as a status row (runs in a worker process when audits run in parallel)."""
    if threads:
        # the kernel inherits it: torch, OpenVINO (facelab's SFace) and BLAS share the cores
        os.environ["OMP_NUM_THREADS"] = str(threads)
    start = dt.datetime.now(dt.UTC)
    try:
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
               jobs: int | None = None) -> list[dict]:
    """Run several audits; returns one status dict per notebook (never stops at the first
    failure when ``keep_going``), then rebuilds ``<results>/index.html``.

    ``jobs`` audits run at once, each notebook in its own worker process and kernel
    (default ``$FACELAB_AUDIT_JOBS``, else ``min(2, CPU count)``); an audit listed in
    :data:`DEPENDS_ON` starts only after the audits it needs have finished, and each
    kernel gets ``OMP_NUM_THREADS = CPUs // jobs``. ``jobs=1`` runs them one after another
    in this process. Each row has the audit's start time (``started``, ISO 8601 UTC) and
    wall-clock ``seconds``.
    """
    notebooks = sorted(resolve_audits(names), key=lambda p: p.stem not in RUN_FIRST)
    jobs = min(_jobs(jobs), max(1, len(notebooks)))
    rows: list[dict] = []
    if jobs == 1:
        for nb in notebooks:
            row = _run_one(nb, parameters, results_root)
            exc = row.pop("_exception", None)
            rows.append(row)
            if exc is not None and not keep_going:
                raise exc
    else:
        rows = _run_parallel(notebooks, parameters, results_root, keep_going, jobs)
    from facelab.config import results_dir
    from facelab.runs_index import write_index

    write_index(results_root or results_dir())  # results/index.html lists every run
    return rows


def _run_parallel(notebooks: list[Path], parameters, results_root, keep_going: bool,
                  jobs: int) -> list[dict]:
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
            while ready and len(running) < jobs and failure is None:
                nb = ready.pop(0)
                waiting.remove(nb)
                running[pool.submit(_run_one, nb, parameters, results_root, False,
                                    threads)] = nb
            if not running:
                break  # stopped after a failure (keep_going=False)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                nb = running.pop(fut)
                row = fut.result()
                exc = row.pop("_exception", None)
                done[nb.stem] = row
                if exc is not None and not keep_going and failure is None:
                    failure = exc
    if failure is not None:
        raise failure
    return [done[nb.stem] for nb in notebooks if nb.stem in done]


def _run_status(run_dir: Path) -> str:
    """The status a run folder's provenance.json records ("ok", "needs data", ...)."""
    import json

    try:
        return json.loads((Path(run_dir) / "provenance.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def error_message(exc: BaseException) -> str:
    """The error a reader needs from a failed run: for an error raised inside the notebook
    (papermill's ``PapermillExecutionError``) the notebook's own exception, ``"ValueError:
    needs at least 1,000 impostor comparisons ..."``, not papermill's traceback dump."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else str(ename)
    return f"{type(exc).__name__}: {exc}"


def _missing_data(exc: BaseException) -> str | None:
    """The plain message of a notebook stopped by :class:`facelab.datastatus.MissingDataError`
    (papermill re-raises it as ``PapermillExecutionError``), else ``None``."""
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
    and outputs, code cells hidden (the executed ``.ipynb`` beside it keeps the code)."""
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
