"""Which datasets are here, which audits they feed, and a plain stop when an audit lacks data.

- :func:`dataset_status` / :func:`status_lines`: the few lines ``facelab audit`` (and so
  ``make audit``) prints first: datasets found under the data root and the audits they
  feed, datasets missing and the one command that gets each (``facelab data fetch NAME``
  downloads it or says where to request it).
- :func:`require_data`: called by every audit notebook right after it loads its data.
  When nothing usable was found (no data root, missing datasets, or datasets without the
  labels the audit needs) it records the reason in the run folder and stops the notebook
  with :class:`MissingDataError`, whose message is shown as plain text, never as a Python
  traceback. :func:`facelab.report.runner.run_audit` gives such a run the status ``needs data``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from facelab.core.config import DataRootError, data_root
from facelab.data.datasets import DatasetNotFoundError, dataset_spec, dataset_specs, resolve_root
from facelab.data.fetch import how_to_get, load_sources
from facelab.report.audits import parameter_defaults, resolve_audits

__all__ = ["MissingDataError", "require_data", "dataset_status", "status_lines",
           "audits_by_dataset", "data_root_problem", "present_datasets", "NEEDS_DATA"]

#: Status of a run that stopped because its data was missing (provenance.json, index).
NEEDS_DATA = "needs data"


class MissingDataError(RuntimeError):
    """An audit cannot run: the data it needs is not there. The message says what is
    missing and how to get it; notebooks show it as plain text (no traceback)."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows exactly these lines in place of a traceback
        return ["MissingDataError: this audit needs data it could not find.", "",
                *str(self).splitlines()]


def data_root_problem(root: str | os.PathLike | None = None) -> str | None:
    """Why there is no usable data root (``None`` when there is one).

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data root to check; ``$FACELAB_DATA`` (:func:`facelab.core.config.data_root`)
        when omitted.

    Returns
    -------
    str or None
        The :class:`facelab.core.config.DataRootError` message, or None.
    """
    try:
        data_root(root)
    except DataRootError as exc:
        return str(exc)
    return None


def present_datasets(names: Sequence[Any], root: str | os.PathLike | None = None) -> list[str]:
    """The dataset names among ``names`` whose folder is found under the data root in its
    native layout (a quick layout check; each missing one is printed as a sentence).

    Parameters
    ----------
    names : sequence
        Dataset specs as the notebooks' parameters give them (``"fairface"`` or
        ``"fairface:val"``: the part before ``:`` is the dataset name). Entries that are
        not strings are skipped without a message.
    root : str or os.PathLike, optional
        The data root; ``$FACELAB_DATA`` when omitted.

    Returns
    -------
    list of str
        The specs (as given, suffix kept) whose dataset folder was found, in order.
        Unknown names and folders not found are printed and left out.
    """
    problem = data_root_problem(root)
    present = []
    for spec in names:
        name = _dataset_name(spec)
        if name is None:
            continue
        if problem:
            print(f"{name}: not found ({problem}).")
            continue
        try:
            resolve_root(dataset_spec(name), root)
            present.append(str(spec))
        except (DatasetNotFoundError, ValueError, OSError) as exc:
            print(f"{name}: not found ({exc}).")
    return present


def _has_rows(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, pd.DataFrame):
        return len(value) > 0
    if isinstance(value, Mapping):
        return any(_has_rows(v) for v in value.values())
    if isinstance(value, bool):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str):
        return len(value) > 0
    return bool(value)


def _labelled(frame: pd.DataFrame, labels: Sequence[str]) -> list[str]:
    """The label columns of ``labels`` that ``frame`` lacks (absent or all empty)."""
    return [c for c in labels if c not in frame.columns or not frame[c].notna().any()]


def _dataset_name(spec: Any) -> str | None:
    if isinstance(spec, str):
        return spec.split(":", 1)[0]
    return None


def require_data(found: Any, *, needs: str, datasets: Sequence[Any] = (),
                 labels: Sequence[str] = (), recorder: Any = None) -> Any:
    """Stop the audit with a plain message when ``found`` holds no usable data.

    Parameters
    ----------
    found
        What the notebook loaded: ``{name: manifest}``, one manifest, a list of dataset
        names, or a bool.
    needs
        What the audit needs, in words ("face images with race and gender labels").
    datasets
        The datasets the audit looked for (its parameter), for the "how to get them" lines.
    labels
        Label columns every manifest must have (non-empty). With ``{name: manifest}``, the
        manifests lacking them are dropped (and said so); the rest is returned.
    recorder
        The notebook's :class:`facelab.report.record.Recorder`: the message goes into the run
        folder's ``metrics.json`` (``missing_data``) before the notebook stops.

    Returns
    -------
    The usable part of ``found`` (``found`` itself unless manifests were dropped).

    Raises
    ------
    MissingDataError
        When nothing usable is left; its message names what is missing and how to get it.
    """
    unlabelled: dict[str, list[str]] = {}
    if labels and isinstance(found, Mapping):
        kept = {}
        for name, frame in found.items():
            lacking = _labelled(frame, labels) if isinstance(frame, pd.DataFrame) else []
            if lacking:
                unlabelled[str(name)] = lacking
                print(f"{name}: no {' or '.join(lacking)} labels; not used by this audit.")
            else:
                kept[name] = frame
        found = kept
    elif labels and isinstance(found, pd.DataFrame) and len(found):
        lacking = _labelled(found, labels)
        if lacking:
            unlabelled["the loaded data"] = lacking
            found = found.iloc[0:0]
    if _has_rows(found):
        return found
    message = missing_message(needs, datasets, unlabelled=unlabelled)
    if recorder is not None:
        recorder.metric("missing_data", message)
    raise MissingDataError(message)


def missing_message(needs: str, datasets: Sequence[Any] = (), *,
                    unlabelled: Mapping[str, Sequence[str]] | None = None) -> str:
    """The plain text of :class:`MissingDataError`: what is needed, what was found, and
    one "how to get it" line per dataset."""
    names = [n for n in (_dataset_name(d) for d in datasets) if n]
    names = list(dict.fromkeys(names))
    lines = [f"This audit needs {needs}"
             + (f", from at least one of: {', '.join(names)}." if names else ".")]
    problem = data_root_problem()
    if problem:
        lines.append(f"There is no data: {problem}.")
    else:
        lines.append(f"Data root: {data_root()}.")
    for name, lacking in (unlabelled or {}).items():
        lines.append(f"{name} was found but has no {' or '.join(lacking)} labels.")
    wanted = [n for n in names if n not in (unlabelled or {})]
    if wanted:
        sources = load_sources()
        lines.append("How to get them (then run the audit again):")
        lines += [f"  {n}: {how_to_get(n, sources)}" for n in wanted]
    lines.append("`facelab data status` lists every dataset facelab finds and what each "
                 "audit needs.")
    return "\n".join(lines)



def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def audits_by_dataset(notebooks: Sequence[Path] | None = None) -> dict[str, list[str]]:
    """``{dataset: [audit stems]}``: the datasets each audit notebook reads by default,
    taken from the dataset names in its ``parameters`` cell.

    Parameters
    ----------
    notebooks : sequence of pathlib.Path, optional
        The notebooks to read; every audit notebook (:func:`resolve_audits`) when omitted.

    Returns
    -------
    dict of str to list of str
        Every registered dataset with a folder layout, sorted by name, mapped to the
        notebook stems that name it in a parameter default (empty list when none does).
    """
    known = {s.name for s in dataset_specs() if s.folder}
    uses: dict[str, list[str]] = {name: [] for name in sorted(known)}
    for nb in notebooks if notebooks is not None else resolve_audits():
        for value in parameter_defaults(nb).values():
            for text in _strings(value):
                name = text.split(":", 1)[0]
                if name in known and nb.stem not in uses[name]:
                    uses[name].append(nb.stem)
    return uses


def dataset_status(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per supported dataset: ``dataset, found, path, audits, get`` (``get``: the
    command or request that obtains it). Only folder layouts are checked: fast.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data root; ``$FACELAB_DATA`` when omitted. Without a usable root every
        dataset is reported as not found.

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``found`` (bool), ``path`` (the dataset folder, ``""`` when
        not found), ``audits`` (list of notebook stems, :func:`audits_by_dataset`),
        ``get`` (:func:`facelab.data.fetch.how_to_get`) and ``fetchable`` (bool: facelab
        can download it); datasets without a folder layout are left out.
    """
    base = None if data_root_problem(root) else data_root(root)
    uses = audits_by_dataset()
    sources = load_sources()
    rows = []
    for spec in dataset_specs():
        if spec.folder is None:
            continue
        path = None
        if base is not None:
            try:
                path = resolve_root(spec, base)
            except (DatasetNotFoundError, OSError):
                path = None
        rows.append({"dataset": spec.name, "found": path is not None,
                     "path": str(path) if path else "", "audits": uses.get(spec.name, []),
                     "get": how_to_get(spec.name, sources),
                     "fetchable": spec.name in sources and sources[spec.name].fetchable})
    return pd.DataFrame(rows, columns=["dataset", "found", "path", "audits", "get",
                                       "fetchable"])


def _short(stems: Sequence[str], sep: str = ", ") -> str:
    return sep.join(s.split("_", 1)[0] for s in stems) if stems else "none by default"


def status_lines(root: str | os.PathLike | None = None) -> list[str]:
    """The few lines printed before the audits run: data root, datasets found and the
    audits they feed, datasets missing with the command that gets each.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data root; ``$FACELAB_DATA`` when omitted.

    Returns
    -------
    list of str
        Lines to print (no trailing newlines), missing datasets that facelab can
        download listed first.
    """
    problem = data_root_problem(root)
    status = dataset_status(root)
    lines = [f"data: {problem}" if problem else f"data root: {data_root(root)}"]
    target = root if root is not None else os.environ.get("FACELAB_DATA")
    where = f" --root {Path(target).expanduser().resolve()}" if target else " --root DIR"
    found = status[status["found"]]
    missing = status[~status["found"]]
    if len(found):
        import textwrap

        text = ", ".join(f"{r.dataset} ({_short(r.audits, '/')})" for r in found.itertuples())
        lines += textwrap.wrap(text, width=96, initial_indent="  found (audits it feeds): ",
                               subsequent_indent="    ")
    else:
        lines.append("  found:   no dataset. 00_tour runs on scikit-image's bundled photos; "
                     "the other audits need data.")
    if len(missing):
        width = max(len(n) for n in missing["dataset"])
        uses = [f"audits {_short(a)}" if a else "no audit by default" for a in missing["audits"]]
        wide = max(len(u) for u in uses)
        lines.append("  missing:")
        order = missing.assign(uses=uses).sort_values("fetchable", ascending=False,
                                                      kind="stable")
        for r in order.itertuples():
            how = (f"`facelab data fetch {r.dataset}{where}` downloads it" if r.fetchable
                   else f"`facelab data fetch {r.dataset}` says where to request it")
            lines.append(f"    {r.dataset:<{width}}  {r.uses:<{wide}}  {how}")
        if not target:
            lines.append("  (then point FACELAB_DATA at DIR so the audits find it)")
    return lines
