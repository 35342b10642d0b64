"""Dataset *specs*: the one place every audit turns "which data" into manifests.

Wherever an audit takes dataset names it takes a spec, one of:

* a registered dataset, optionally with a split: ``"fairface:val"``, ``"cfd"``,
  ``{dataset: lfw, root: /data/lfw}``;
* your own CSV manifest, as a path (``"/data/faces.csv"``, ``"csv:/data/faces.csv"``) or a
  mapping read by :func:`facelab.load_dataset("csv") <facelab.data.datasets.load_dataset>`::

      {csv: /data/faces.csv, columns: {person: subject, sex: gender, path: path},
       images_root: /data/photos, name: myfaces}

  ``columns`` maps *your* column names onto the manifest schema (``path``, ``subject``,
  ``gender``, ``race``, ``age``, ``age_bin``, ``expression``, ``split``); ``images_root``
  (default: the CSV's folder; a relative one starts from the CSV's folder) is where
  relative image paths start and what they must stay inside; ``name`` labels the dataset
  in tables and figures (default: the CSV's file stem). Malformed rows are counted with
  their reasons (:func:`facelab.data.datasets.malformed`).

A dataset that cannot be loaded stops the run with the reason
(:class:`DatasetSpecError`), except the built-in datasets the suite looks for by default
(:data:`SUITE_DATASETS`): ``make audit`` runs on whatever shared data exist, so those are
skipped with a note when absent, unless the user named them explicitly (``facelab audit
-p``/``-f`` sets :data:`REQUIRED_ENV` for the notebook kernel) or ``strict=True``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from facelab.core.config import DataRootError, data_root
from facelab.data.datasets import dataset_spec, load_dataset, malformed

__all__ = ["DatasetRequest", "DatasetSpecError", "SUITE_DATASETS", "REQUIRED_ENV",
           "DATASET_PARAMETERS", "parse_dataset_spec", "load_request", "resolve_datasets",
           "dataset_label", "required_dataset_names", "malformed_clause"]

#: Built-in datasets the audits look for by default (``make audit``): skipped with a note
#: when they are not under the data root. Anything else named must load.
SUITE_DATASETS: frozenset[str] = frozenset(
    {"fairface", "utkface", "cfd", "celeba", "lfw", "fer2013", "ckplus48", "jaffe"})
#: Environment variable (JSON list of registered dataset names) naming datasets the user
#: asked for explicitly: those never skip quietly. Set by :func:`facelab.report.runner.run_audit`.
REQUIRED_ENV = "FACELAB_REQUIRED_DATASETS"
#: Notebook parameters that hold dataset specs (one spec or a list of them).
DATASET_PARAMETERS: tuple[str, ...] = (
    "datasets", "genuine_dataset", "identity_datasets", "gallery_datasets", "probe_datasets",
    "mated_dataset", "degradation_dataset", "group_datasets", "stability_datasets",
    "brightness_dataset", "compare_datasets", "data")

_CSV_KEYS = ("csv", "manifest")
_CSV_OPTIONS = ("columns", "images_root", "name", "split", "race_map", "expression_map",
                "allow_outside_root")
_REGISTERED_OPTIONS = ("dataset", "split", "root", "name")


class DatasetSpecError(ValueError):
    """A dataset spec is malformed, or the dataset it names cannot be loaded.

    ``reason`` holds the cause without the spec (for notes)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message

    def _render_traceback_(self) -> list[str]:
        # IPython (the audit notebooks) shows these lines instead of a traceback
        return ["DatasetSpecError: a dataset named for this audit cannot be used.", "",
                *str(self).splitlines()]


@dataclass(frozen=True)
class DatasetRequest:
    """One parsed dataset spec.

    Attributes
    ----------
    key : str
        Registered dataset name, or the CSV's label (``name`` or the file stem).
    adapter : str
        The :func:`facelab.load_dataset` adapter (``"csv"`` for manifests).
    split : str or None
        The split asked for (``None``: the adapter's default, if any).
    root : str or None
        The dataset folder, or the CSV file.
    options : dict
        Further adapter options (``columns``, ``images_root``, ...).
    spec : object
        The spec as given (for messages).
    optional : bool
        Skipped with a note (instead of an error) when it cannot be loaded.
    """

    key: str
    adapter: str
    split: str | None = None
    root: str | None = None
    options: dict = field(default_factory=dict)
    spec: Any = None
    optional: bool = False

    @property
    def is_csv(self) -> bool:
        return self.adapter == "csv"

    def label(self, split: str | None = None) -> str:
        """The label of this dataset's rows in tables and figures.

        Parameters
        ----------
        split : str or None
            The split loaded (``None``: :attr:`split`, the one asked for).

        Returns
        -------
        str
            ``key`` or ``key:split`` (a CSV manifest is always ``key``).
        """
        split = split if split is not None else self.split
        return f"{self.key}:{split}" if split and not self.is_csv else self.key


def required_dataset_names() -> set[str]:
    """Registered dataset names the user named explicitly (from :data:`REQUIRED_ENV`).

    Returns
    -------
    set of str
        Lower-cased names; empty when the variable is unset or not a JSON list.
    """
    raw = os.environ.get(REQUIRED_ENV, "")
    if not raw:
        return set()
    try:
        return {str(n).lower() for n in json.loads(raw)}
    except ValueError:
        return set()


def _csv_request(spec: Any, csv: str, options: Mapping[str, Any]) -> DatasetRequest:
    path = Path(str(csv)).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    opts = {k: v for k, v in options.items() if k not in ("name", "split")}
    if opts.get("images_root") is not None:
        ir = Path(str(opts["images_root"])).expanduser()
        opts["images_root"] = str(ir if ir.is_absolute() else path.parent / ir)
    if "columns" in opts:
        cols = opts["columns"]
        if not isinstance(cols, Mapping):
            raise DatasetSpecError(f"dataset {spec!r}: 'columns' must map your CSV columns "
                                   f"onto schema columns, e.g. {{person: subject}}; got {cols!r}")
        opts["columns"] = {str(k): str(v) for k, v in cols.items()}
    name = options.get("name") or path.stem
    split = options.get("split")
    return DatasetRequest(key=str(name), adapter="csv", split=str(split) if split else None,
                          root=str(path), options=opts, spec=spec, optional=False)


def parse_dataset_spec(spec: Any, *, strict: bool = False,
                       required: set[str] | None = None) -> DatasetRequest:
    """Parse one dataset spec (see the module docstring) without loading anything.

    Parameters
    ----------
    spec
        ``"name"``, ``"name:split"``, ``"path/to.csv"``, ``"csv:path/to.csv"``, a mapping
        with ``csv`` (a manifest) or ``dataset`` (a registered name), or a
        :class:`DatasetRequest`.
    strict
        Never optional: any dataset that cannot be loaded is an error.
    required
        Registered names that must load (default: :func:`required_dataset_names`).

    Returns
    -------
    DatasetRequest
        The parsed spec (``optional`` for a built-in suite dataset nobody asked for by
        name, unless ``strict``).

    Raises
    ------
    DatasetSpecError
        Unknown dataset names (listing the known ones), unknown keys in a mapping, a
        mapping with neither ``csv`` nor ``dataset``.
    """
    if isinstance(spec, DatasetRequest):
        return spec
    required = required_dataset_names() if required is None else required
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if isinstance(spec, Mapping):
        keys = set(spec)
        csv_keys = keys & set(_CSV_KEYS)
        if csv_keys:
            unknown = keys - set(_CSV_KEYS) - set(_CSV_OPTIONS)
            if unknown:
                raise DatasetSpecError(f"dataset {dict(spec)!r}: unknown keys {sorted(unknown)}; "
                                       f"a CSV spec takes csv and {', '.join(_CSV_OPTIONS)}")
            return _csv_request(spec, spec[csv_keys.pop()],
                                {k: v for k, v in spec.items() if k not in _CSV_KEYS})
        if "dataset" not in keys:
            raise DatasetSpecError(f"dataset {dict(spec)!r}: give 'csv: <file>' for your own "
                                   "manifest or 'dataset: <name>' for a registered dataset")
        unknown = keys - set(_REGISTERED_OPTIONS)
        if unknown:
            raise DatasetSpecError(f"dataset {dict(spec)!r}: unknown keys {sorted(unknown)}; "
                                   f"a registered dataset takes {', '.join(_REGISTERED_OPTIONS)}")
        name, split, root = str(spec["dataset"]), spec.get("split"), spec.get("root")
        if dataset_spec_safe(name) == "csv":
            if root is None:
                raise DatasetSpecError(f"dataset {dict(spec)!r}: a csv dataset needs "
                                       "'csv: <file>'")
            return _csv_request(spec, root, {k: v for k, v in spec.items()
                                             if k in _CSV_OPTIONS})
    elif isinstance(spec, str):
        text = spec.strip()
        head, sep, rest = text.partition(":")
        if sep and head.lower() in ("csv", *_CSV_KEYS) and rest:
            return _csv_request(spec, rest, {})
        if text.lower().endswith(".csv"):
            return _csv_request(spec, text, {})
        name, split, root = head, (rest or None), None
    else:
        raise DatasetSpecError(f"dataset spec {spec!r} ({type(spec).__name__}): give a name "
                               "such as 'fairface:val', a CSV path, or a mapping "
                               "{csv: <file>, columns: {...}}")
    try:
        registered = dataset_spec(name).name
    except ValueError as exc:
        raise DatasetSpecError(f"dataset {spec!r}: {exc}. For your own images give a CSV "
                               "path ending in .csv or {csv: <file>, columns: {...}}") from None
    if registered == "csv":
        raise DatasetSpecError(f"dataset {spec!r}: name the CSV file, e.g. 'csv:/data/faces.csv'")
    optional = (not strict and registered in SUITE_DATASETS and root is None
                and registered not in required)
    label = str(spec["name"]) if isinstance(spec, Mapping) and spec.get("name") else registered
    return DatasetRequest(key=label, adapter=registered, split=str(split) if split else None,
                          root=str(root) if root is not None else None, spec=spec,
                          optional=optional)


def dataset_spec_safe(name: str) -> str | None:
    """Registered adapter name for ``name`` (alias-aware), or ``None`` if unknown."""
    try:
        return dataset_spec(name).name
    except ValueError:
        return None


def dataset_label(spec: Any) -> str:
    """The label a spec's rows carry in tables.

    Parameters
    ----------
    spec
        A dataset spec (:func:`parse_dataset_spec`).

    Returns
    -------
    str
        ``"fairface:val"``, ``"cfd"``, the CSV's ``name`` or file stem.

    Raises
    ------
    DatasetSpecError
        The spec is malformed or names an unknown dataset.
    """
    return parse_dataset_spec(spec, strict=True, required=set()).label()


def load_request(request: DatasetRequest, *, root: str | os.PathLike | None = None,
                 split: str | None = None) -> pd.DataFrame:
    """Load one parsed spec with :func:`facelab.load_dataset` (all its checks).

    Malformed-entry warnings are not repeated here: the entries are in
    ``df.attrs["malformed"]``.

    Parameters
    ----------
    request : DatasetRequest
        From :func:`parse_dataset_spec`.
    root : path or None
        Data root for registered datasets without their own ``root`` (default
        ``$FACELAB_DATA``).
    split : str or None
        Overrides the request's split.

    Returns
    -------
    pandas.DataFrame
        The manifest, one row per usable image (:data:`facelab.data.schema.COLUMNS`).

    Raises
    ------
    DatasetSpecError
        The dataset cannot be found or read, or it has no usable row; the message names
        the spec and the reason.
    """
    split = split if split is not None else request.split
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if request.is_csv:
                if not Path(request.root).is_file():
                    raise FileNotFoundError(f"CSV manifest {request.root} does not exist")
                options = dict(request.options)
                df = load_dataset("csv", request.root, split=split, dataset=request.key,
                                  **options)
            else:
                base = request.root if request.root is not None else data_root(root)
                df = load_dataset(request.adapter, base, split=split)
    except DataRootError as exc:
        raise DatasetSpecError(f"dataset {request.spec!r}: no data root ({exc})",
                               f"no data root ({exc})") from None
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise DatasetSpecError(f"dataset {request.spec!r} cannot be loaded: {exc}",
                               str(exc)) from None
    if len(df) == 0:
        bad = malformed(df)
        why = "; ".join(f"{n} x {r}" for r, n in bad["reason"].value_counts().items()) \
            if len(bad) else "the file lists no image"
        where = f" (first: {bad['entry'].iloc[0]})" if len(bad) else ""
        raise DatasetSpecError(f"dataset {request.spec!r} has no usable rows: {why}{where}")
    return df


def malformed_clause(df: pd.DataFrame) -> str:
    """The malformed entries a loader skipped, as a clause for a note.

    Parameters
    ----------
    df : pandas.DataFrame
        A manifest from :func:`facelab.load_dataset` (its ``attrs["malformed"]``).

    Returns
    -------
    str
        ``" (3 malformed entries skipped: 2 x file not found; ...)"`` or ``""``.
    """
    bad = malformed(df)
    if not len(bad):
        return ""
    reasons = "; ".join(f"{n} x {r}" for r, n in bad["reason"].value_counts().items())
    return f" ({len(bad)} malformed entries skipped: {reasons})"


def resolve_datasets(specs: Sequence[Any] | Any, *, root: str | os.PathLike | None = None,
                     default_splits: Mapping[str, str] | None = None, strict: bool = False
                     ) -> tuple[list[tuple[DatasetRequest, str | None, pd.DataFrame]],
                                pd.DataFrame]:
    """Load every dataset of ``specs``: the one resolver the audits share.

    Parameters
    ----------
    specs
        One spec or a list of them (see :func:`parse_dataset_spec`); ``None`` is none.
    root
        Data root for registered datasets (default ``$FACELAB_DATA``).
    default_splits
        Split of a registered dataset named without one (e.g. ``{"fairface": "val"}``).
    strict
        Never skip: every dataset that cannot be loaded raises.

    Returns
    -------
    loaded, notes
        ``loaded``: ``(request, split, manifest)`` per dataset that loaded, in order.
        ``notes``: one row per spec with ``dataset`` (label), ``found``, ``images``,
        ``malformed`` (entries skipped while reading) and ``note`` (a plain sentence).

    Raises
    ------
    DatasetSpecError
        A spec is malformed, two specs share a label, or a dataset that is not optional
        cannot be loaded.
    """
    if specs is None:
        specs = []
    elif isinstance(specs, str | Mapping | DatasetRequest | os.PathLike):
        specs = [specs]
    splits = dict(default_splits or {})
    required = required_dataset_names()
    loaded, rows, seen = [], [], {}
    for spec in specs:
        req = parse_dataset_spec(spec, strict=strict, required=required)
        split = req.split or (None if req.is_csv else splits.get(req.adapter))
        label = req.label(split)
        if label in seen:
            raise DatasetSpecError(f"datasets {seen[label]!r} and {spec!r} are both labelled "
                                   f"{label!r}: give one of them a different 'name'")
        seen[label] = spec
        try:
            df = load_request(req, root=root, split=split)
        except DatasetSpecError as exc:
            if not req.optional:
                raise
            rows.append({"dataset": label, "found": False, "images": 0, "malformed": 0,
                         "note": f"{label} not found or unreadable, skipping its rows "
                                 f"({exc.reason})."})
            continue
        rows.append({"dataset": label, "found": True, "images": len(df),
                     "malformed": len(malformed(df)),
                     "note": f"{label}: {len(df):,} images{malformed_clause(df)}."})
        loaded.append((req, split, df))
    notes = pd.DataFrame(rows, columns=["dataset", "found", "images", "malformed", "note"])
    return loaded, notes
