"""Audit run folders: what a notebook records, and everything needed to trust and repeat it.

Inside a notebook, a :class:`Recorder` saves figures (PNG), tables (CSV) and metrics
(``metrics.json``) into the run folder and glues them in scrapbook's format so tests can
assert on recorded values. After the run, :func:`write_provenance` and :func:`write_model_card`
complete the folder (see :mod:`facelab.report.runner`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.provenance import git_commit, manifest_hash, package_versions
from facelab.models.registry import model_spec, weights_checksums

__all__ = ["Recorder", "write_provenance", "write_model_card",
           "to_jsonable", "new_run_id", "new_run_dir", "glue_scrap"]

RECORD_FILE = "recorded.json"  # models and manifests a notebook used, for provenance


def new_run_id(label: str) -> str:
    """A sortable run folder name from the UTC time: ``20261122-031500-<label>``.

    Unique only to the second: :func:`new_run_dir` makes the folder without ever reusing
    one.

    Parameters
    ----------
    label : str
        The audit's name.

    Returns
    -------
    str
        ``<YYYYmmdd-HHMMSS UTC>-<label>``.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{label}"


def new_run_dir(root: str | Path, label: str) -> Path:
    """Create a new, empty run folder ``<root>/<new_run_id(label)>``.

    Two runs of one audit started in the same second (two terminals, a retry) must not
    write into one folder: when the name is taken, the time gets ``.02``, ``.03``, ...
    (``20261122-031500.02-<label>``: still sorted by start, still ``*-<label>``). The
    folder is made with ``exist_ok=False``, so two processes never get the same one.

    Parameters
    ----------
    root : str or pathlib.Path
        The results folder (created when missing).
    label : str
        The audit's name.

    Returns
    -------
    pathlib.Path
        The folder, just created.

    Raises
    ------
    FileExistsError
        When the 99 names of this second (``base``, ``.02`` ... ``.99``) are all taken.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = new_run_id(label)
    stamp = base[:-len(label) - 1]
    for n in range(1, 100):
        path = root / (base if n == 1 else f"{stamp}.{n:02d}-{label}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root}: no free run folder name for {base}")


def to_jsonable(value: Any) -> Any:
    """Convert numpy/pandas values (and dataclasses with ``to_dict``) to JSON types.

    Parameters
    ----------
    value
        Any value: a DataFrame (becomes a list of row dicts, index included as a column),
        Series or mapping (dict with ``str`` keys), list/tuple/set/array (list), numpy
        scalar, an object with ``to_dict()`` or a dataclass, or a plain JSON value.

    Returns
    -------
    object
        ``dict``, ``list``, ``bool``, ``int``, ``float``, ``str`` or ``None``: NaN and
        infinite floats, ``pd.NA`` and ``pd.NaT`` become ``None``; anything else
        unknown becomes its ``str``.
    """
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(r) for r in value.reset_index().to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not math.isfinite(float(value)) else float(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(value))
    if value is None or isinstance(value, str | int):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)



class Recorder:
    """Collects a notebook's outputs into its run folder.

    Parameters
    ----------
    output_dir
        The run folder (``results/<run-id>``); created if missing. ``None`` keeps
        everything in memory (figures are still shown), for interactive exploration.
    glue
        Also record values as scrapbook scraps (:func:`glue_scrap`, for tests that read
        executed notebooks with ``scrapbook.read_notebook``).
    """

    def __init__(self, output_dir: str | os.PathLike | None, *, glue: bool = True):
        self.output_dir = Path(output_dir) if output_dir else None
        self.glue_enabled = glue
        self.metrics: dict[str, Any] = {}
        self.models: dict[str, dict] = {}
        self.manifests: dict[str, dict] = {}
        if self.output_dir:
            (self.output_dir / "figures").mkdir(parents=True, exist_ok=True)
            (self.output_dir / "tables").mkdir(parents=True, exist_ok=True)
            existing = self.output_dir / "metrics.json"
            if existing.exists():
                self.metrics = json.loads(existing.read_text())

    def _glue(self, name: str, value: Any, encoder: str = "json") -> None:
        if not self.glue_enabled:
            return
        glue_scrap(name, value, encoder)

    def metric(self, name: str, value: Any) -> Any:
        """Record a number, dict or table under ``name`` in metrics.json (and glue it).

        Parameters
        ----------
        name
            Key in ``metrics.json`` (and scrap name).
        value
            The value; stored as :func:`to_jsonable` makes it. An existing key is
            overwritten.

        Returns
        -------
        object
            ``value`` unchanged, for display.
        """
        jsonable = to_jsonable(value)
        self.metrics[name] = jsonable
        self._glue(name, jsonable)
        self._flush()
        return value

    def table(self, name: str, frame: pd.DataFrame, *, metric: bool = True) -> pd.DataFrame:
        """Save a table as ``tables/<name>.csv`` (index included) and record it.

        Parameters
        ----------
        name
            File stem and metrics key.
        frame
            The table.
        metric
            Also record it in metrics.json through :meth:`metric` (rows as dicts).

        Returns
        -------
        pandas.DataFrame
            ``frame`` unchanged, for display.
        """
        if self.output_dir:
            frame.to_csv(self.output_dir / "tables" / f"{name}.csv", index=True)
        if metric:
            self.metric(name, frame)
        return frame

    def figure(self, name: str, fig: Any, *, dpi: int = 110) -> None:
        """Save a matplotlib figure as ``figures/<name>.png`` and show it (embedded as PNG,
        so HTML exports carry it whatever the backend); the figure is then closed.

        Parameters
        ----------
        name
            File stem; the file name is listed under ``_figures`` in metrics.json.
        fig
            A matplotlib ``Figure`` or ``Axes`` (its figure is saved).
        dpi
            Resolution of the PNG, in dots per inch (``bbox_inches="tight"``).
        """
        import io

        import matplotlib.pyplot as plt

        fig = getattr(fig, "figure", fig)  # accept Axes too
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        png = buf.getvalue()
        if self.output_dir:
            path = self.output_dir / "figures" / f"{name}.png"
            path.write_bytes(png)
            self.metrics.setdefault("_figures", [])
            if path.name not in self.metrics["_figures"]:
                self.metrics["_figures"].append(path.name)
            self._flush()
        _display_png(png)
        plt.close(fig)

    def model(self, name: str, *, role: str | None = None, **details: Any) -> None:
        """Note a model this audit used (for provenance and the model card).

        The entry holds the registry's description, package, weights, licence and output
        (:func:`facelab.models.registry.model_spec`) and the weights' SHA-256
        (``"unavailable: <reason>"`` when they cannot be read); it is written to
        ``recorded.json``.

        Parameters
        ----------
        name
            Registered model name (an unknown name raises
            :class:`facelab.models.registry.ModelError`).
        role
            What the model did in this audit (default: its kind).
        **details
            Further fields (e.g. ``training_data``, shown in the model card), stored as
            :func:`to_jsonable` makes them.
        """
        spec = model_spec(name)
        entry = {"kind": spec.kind, "description": spec.description, "package": spec.package,
                 "weights": list(spec.weights), "licence": spec.licence,
                 "output": spec.output, "role": role or spec.kind}
        try:
            entry["weights_sha256"] = weights_checksums(name)
        except Exception as exc:  # noqa: BLE001 - record, never fail the audit for this
            entry["weights_sha256"] = f"unavailable: {exc}"
        entry.update(to_jsonable(details))
        self.models[name] = entry
        self._flush()

    def manifest(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Note a manifest this audit used: its hash and row count go into provenance.

        Parameters
        ----------
        name
            Name of the manifest in ``recorded.json``.
        frame
            The manifest; hashed with :func:`facelab.core.provenance.manifest_hash`.

        Returns
        -------
        pandas.DataFrame
            ``frame`` unchanged.
        """
        self.manifests[name] = {"rows": int(len(frame)), "sha256": manifest_hash(frame)}
        self._flush()
        return frame

    def _flush(self) -> None:
        if not self.output_dir:
            return
        _atomic_write(self.output_dir / "metrics.json", json.dumps(self.metrics, indent=2))
        record = {"models": self.models, "manifests": self.manifests}
        _atomic_write(self.output_dir / RECORD_FILE, json.dumps(record, indent=2))


def _display_png(png: bytes) -> None:
    """Show a PNG in the notebook whatever the matplotlib backend (agg under papermill)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=png, format="png"))


# scrapbook 0.5's glue format (scrapbook/api.py ``glue``, scrapbook/scraps.py
# ``scrap_to_payload``, scrapbook/schemas/scrap.v1.json), written here so a kernel does not
# import scrapbook -> papermill -> nbformat (~2-5 s per notebook) only to emit one display
# bundle; ``scrapbook.read_notebook`` reads these outputs back (tests/test_record_glue.py
# checks the bundle equals scrapbook.glue's own for every kind of value a Recorder glues).
SCRAP_MIMETYPE = "application/scrapbook.scrap.{encoder}+json"
SCRAP_VERSION = 1
_SCRAP_DATA_TYPES = (dict, list, bool, str, int, float)  # scrap.v1.json "data" types


def glue_scrap(name: str, value: Any, encoder: str = "json") -> None:
    """Record ``value`` under ``name`` as a scrapbook scrap in the running kernel.

    Emits the same display output as ``scrapbook.glue(name, value, encoder=...)`` for
    JSON values (``encoder="json"``; a ``str`` is stored with the ``"text"`` encoder so it
    is not parsed as JSON), so ``scrapbook.read_notebook(path).scraps[name].data`` reads
    it back. Outside an IPython kernel there is nothing to glue to: nothing happens. A
    value scrapbook's schema refuses (``None`` at the top level) is skipped, as
    scrapbook's validation error was.

    Parameters
    ----------
    name
        Scrap name.
    value
        A JSON value (output of :func:`to_jsonable`).
    encoder
        ``"json"`` (default) or ``"text"``.
    """
    if isinstance(value, str):
        encoder = "text"
    if encoder not in ("json", "text") or not isinstance(value, _SCRAP_DATA_TYPES):
        return
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    payload = {"name": name, "data": value, "encoder": encoder, "version": SCRAP_VERSION}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    display({SCRAP_MIMETYPE.format(encoder=encoder): payload}, metadata=metadata, raw=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_provenance(run_dir: str | Path, *, notebook: str, parameters: Mapping[str, Any],
                     started: dt.datetime, finished: dt.datetime, status: str,
                     error: str | None = None, missing_data: str | None = None,
                     defaults: Mapping[str, Any] | None = None,
                     inputs: Mapping[str, Any] | None = None,
                     inputs_digest: str | None = None) -> dict:
    """Write ``provenance.json`` into the run folder.

    It holds the parameters, git commit, package versions, model weight checksums and
    manifest hashes (from ``recorded.json``, written by :class:`Recorder`), the seed,
    start/end time, wall time, ``FACELAB_DATA`` and the outcome. The file is written
    atomically (temporary file and rename).

    Parameters
    ----------
    run_dir
        The run folder.
    notebook
        The notebook that ran.
    parameters
        The parameters given to the run (only those).
    started, finished
        Start and end times (``wall_seconds`` is their difference, 2 decimals).
    status
        ``"ok"``, ``"failed"`` (with ``error``) or ``"needs data"`` (with
        ``missing_data``).
    error
        The failure, when ``status`` is ``"failed"``.
    missing_data
        What was missing and how to get it, when ``status`` is ``"needs data"``.
    defaults
        The notebook's own parameter values: the seed recorded is the one the run used
        (given, else default), and ``parameters_used`` holds every parameter's value in
        the run (the defaults updated with ``parameters``).
    inputs, inputs_digest
        The run's inputs and their digest (:mod:`facelab.report.uptodate`), so a later
        ``facelab audit`` can reuse an ``ok`` run whose inputs are unchanged.

    Returns
    -------
    dict
        The provenance record written.
    """
    run_dir = Path(run_dir)
    recorded = _read_json(run_dir / RECORD_FILE)
    prov = {
        "notebook": notebook,
        "status": status,
        "error": error,
        "missing_data": missing_data,
        "parameters": to_jsonable(dict(parameters)),
        # what the run used: the notebook's defaults, updated with the parameters given
        "parameters_used": to_jsonable({**dict(defaults or {}), **dict(parameters)}),
        "seed": to_jsonable(parameters.get("seed", (defaults or {}).get("seed"))),
        "git_commit": git_commit(),
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "wall_seconds": round((finished - started).total_seconds(), 2),
        "packages": package_versions(),
        "models": {k: {"weights_sha256": v.get("weights_sha256"), "package": v.get("package")}
                   for k, v in recorded.get("models", {}).items()},
        "manifests": recorded.get("manifests", {}),
        "data_root": os.environ.get("FACELAB_DATA"),
        "inputs": dict(inputs) if inputs else None,
        "inputs_digest": inputs_digest,
    }
    _atomic_write(run_dir / "provenance.json", json.dumps(prov, indent=2))
    return prov


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


MODEL_CARD_SECTIONS = (
    "Model details", "Intended use", "Factors", "Metrics", "Evaluation data",
    "Training data", "Quantitative analyses", "Ethical considerations",
    "Caveats and recommendations",
)


def write_model_card(run_dir: str | Path, *, title: str, intended_use: str,
                     factors: str, evaluation_data: str,
                     ethical: Iterable[str] = (), caveats: Iterable[str] = (),
                     headline_metrics: Iterable[str] = ()) -> Path:
    """Write ``model_card.md`` for the models a run audited, filled from what it measured.

    The sections are those of Mitchell et al. 2019, "Model Cards for Model Reporting"
    (:data:`MODEL_CARD_SECTIONS`); models and manifests come from ``recorded.json``,
    numbers and figures from ``metrics.json``, the commit from ``provenance.json``.

    Parameters
    ----------
    run_dir
        The run folder.
    title
        Title of the card.
    intended_use, factors, evaluation_data
        Text of these sections.
    ethical, caveats
        Bullet points of the ethical considerations and of the caveats and
        recommendations (``"(none recorded)"`` when empty).
    headline_metrics
        Keys of ``metrics.json`` listed under Quantitative analyses (values cut to 400
        characters; keys absent from the metrics are skipped).

    Returns
    -------
    pathlib.Path
        The card's file.
    """
    run_dir = Path(run_dir)
    recorded = _read_json(run_dir / RECORD_FILE)
    metrics = _read_json(run_dir / "metrics.json")
    prov = _read_json(run_dir / "provenance.json")
    lines = [f"# Model card: {title}", "",
             f"Generated by facelab from run `{run_dir.name}` "
             f"(commit {prov.get('git_commit') or 'unknown'}). Numbers below were measured "
             "in this run; see metrics.json and the executed notebook.", ""]
    lines += ["## Model details", ""]
    models = recorded.get("models", {})
    if not models:
        lines.append("No model was recorded by this run.")
    for name, m in models.items():
        lines.append(f"- **{name}** ({m.get('role')}): {m.get('description')}. Output: "
                     f"{m.get('output')}. Weights: `{m.get('package')}` "
                     f"{', '.join(m.get('weights', []))}; licence: {m.get('licence')}.")
        if m.get("training_data"):
            lines.append(f"  Training data: {m['training_data']}.")
    lines += ["", "## Intended use", "", intended_use, "",
              "## Factors", "", factors, "",
              "## Metrics", "",
              "Rates follow ISO/IEC 19795-1 (FMR, FNMR, FPIR, FNIR) for matching; accuracy, "
              "per-class recall and error rates for classifiers. Every rate is reported with "
              "its count and a 95% confidence interval (Wilson for proportions, subject-level "
              "bootstrap where identities repeat); thresholds state how they were set.", "",
              "## Evaluation data", "", evaluation_data, ""]
    mans = recorded.get("manifests", {})
    for name, m in mans.items():
        lines.append(f"- `{name}`: {m['rows']} rows, sha256 {m['sha256'][:16]}...")
    lines += ["", "## Training data", ""]
    trained = [m["training_data"] for m in models.values() if m.get("training_data")]
    lines.append("; ".join(trained) if trained else
                 "Not documented by the weights' publishers beyond what the model list says; "
                 "facelab did not train these models.")
    lines += ["", "## Quantitative analyses", ""]
    heads = list(headline_metrics)
    for key in heads:
        if key in metrics:
            lines.append(f"- `{key}`: {_short(metrics[key])}")
    figs = metrics.get("_figures", [])
    if figs:
        lines.append("")
        lines += [f"![{f}](figures/{f})" for f in figs]
    lines += ["", "## Ethical considerations", ""]
    lines += [f"- {e}" for e in ethical] or ["- (none recorded)"]
    lines += ["", "## Caveats and recommendations", ""]
    lines += [f"- {c}" for c in caveats] or ["- (none recorded)"]
    path = run_dir / "model_card.md"
    _atomic_write(path, "\n".join(lines) + "\n")
    return path


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + " ..."
