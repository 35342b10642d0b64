"""Is an audit's last run still up to date? ``make``'s rule applied to audit runs.

A run folder is reused instead of executing the notebook again only when everything its
numbers can depend on is the same as when it ran (:func:`audit_inputs`):

- the notebook file (SHA-256 of its bytes);
- the effective parameters (the suite's and the user's, as JSON);
- facelab's own source (SHA-256 over every file of the installed ``facelab`` package);
- the installed distributions (every ``name==version`` in the environment) and Python;
- the data: the relative path, size and modification time of every file under
  ``$FACELAB_DATA`` (the signature ``make`` and rsync use; a changed, added or removed
  image changes it);
- for the audits that use them, trained models under ``<results>/models`` (06 writes,
  04 reads), the same way;
- the machine: CPU architecture and count (thread counts can change float summation).

Runs given a file or folder of their own (a CSV manifest, an imported score file, a model
card) always execute: facelab cannot tell what such a file refers to. A run is reused only
when its ``provenance.json`` says ``ok``, records the same digest and its executed
notebook and ``metrics.json`` are still there. ``facelab audit --force`` runs regardless.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from facelab.core.config import trained_models_dir

__all__ = ["audit_inputs", "inputs_digest", "explained", "COVERS", "tree_signature",
           "up_to_date_run", "has_own_files"]

#: Parameters that never change an audit's numbers (where its files go).
NOT_INPUTS: tuple[str, ...] = ("output_dir",)


def tree_signature(root: str | os.PathLike) -> str:
    """SHA-256 over the relative path, size and modification time (ns) of every file
    under ``root`` (sorted; hidden files and ``__pycache__`` left out).

    Parameters
    ----------
    root : str or os.PathLike
        A folder; a missing folder has the signature of an empty one.

    Returns
    -------
    str
        64 lowercase hex characters.

    Notes
    -----
    Contents are not read (7,700 LFW images are stat-ed in well under a second): a file
    rewritten with the same size within the same nanosecond would go unseen, as with
    ``make``.
    """
    h = hashlib.sha256()
    for rel, st in sorted(_walk(Path(root))):
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            yield path.relative_to(root).as_posix(), path.stat()


def _source_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _environment_digest() -> str:
    dists = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in md.distributions()
                    if d.metadata["Name"]})
    return hashlib.sha256("\n".join([platform.python_version(), *dists]).encode()).hexdigest()


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text if isinstance(text, bytes) else text.encode()).hexdigest()


def audit_inputs(notebook: str | os.PathLike, parameters: Mapping[str, Any], *,
                 trained_models: bool = False) -> dict[str, str]:
    """Digests of everything an audit run's numbers can depend on, one per component.

    Parameters
    ----------
    notebook : str or os.PathLike
        The audit notebook (``notebooks/NN_name.ipynb``).
    parameters : mapping
        The run's effective parameters (suite defaults updated with the user's); the
        entries of :data:`NOT_INPUTS` are left out.
    trained_models : bool
        Whether the audit reads (or writes) trained models under ``<results>/models``:
        then their files are an input too.

    Returns
    -------
    dict of str to str
        ``notebook``, ``parameters``, ``code``, ``environment``, ``data``, ``machine`` and,
        with ``trained_models``, ``models``: each a 64-hex SHA-256 (``data`` is
        ``"unset"`` without ``$FACELAB_DATA``).

    Raises
    ------
    OSError
        If the notebook cannot be read.
    """
    import facelab

    params = {k: v for k, v in parameters.items() if k not in NOT_INPUTS}
    data = os.environ.get("FACELAB_DATA")
    inputs = {
        "notebook": _sha(Path(notebook).read_bytes()),
        "parameters": _sha(json.dumps(params, sort_keys=True, default=str)),
        "code": _source_digest(Path(facelab.__file__).resolve().parent),
        "environment": _environment_digest(),
        "data": (_sha(str(Path(data).resolve()) + "\n" + tree_signature(data))
                 if data else "unset"),
        "machine": _sha(f"{platform.machine()} {platform.processor()} {os.cpu_count()}"),
    }
    if trained_models:
        inputs["models"] = tree_signature(trained_models_dir())
    return inputs


#: What each component of :func:`audit_inputs` covers (written beside the digests in
#: ``provenance.json``).
COVERS: dict[str, str] = {
    "notebook": "the bytes of the audit notebook file",
    "parameters": "every parameter of the run as JSON: the notebook's defaults, the suite's "
                  "and the user's (output_dir left out)",
    "code": "every file of the installed facelab package",
    "environment": "the Python version and every installed distribution's name==version",
    "data": "the data root's path and the relative path, size and modification time of "
            "every file under it ($FACELAB_DATA)",
    "models": "the relative path, size and modification time of every file under "
              "<results>/models (trained models)",
    "machine": "CPU architecture, processor name and CPU count",
}


def explained(inputs: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``{component: {"sha256": digest, "covers": what it covers}}`` for provenance.

    Parameters
    ----------
    inputs : mapping of str to str
        :func:`audit_inputs` output.

    Returns
    -------
    dict
        One entry per component, with its :data:`COVERS` text.
    """
    return {k: {"sha256": v, "covers": COVERS.get(k, "")} for k, v in inputs.items()}


def inputs_digest(inputs: Mapping[str, str]) -> str:
    """One SHA-256 over the components of :func:`audit_inputs` (sorted by name).

    Parameters
    ----------
    inputs : mapping of str to str
        The components.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    return _sha(json.dumps(dict(sorted(inputs.items()))))


def has_own_files(user_parameters: Mapping[str, Any], *, path_keys: tuple[str, ...],
                  path_suffixes: tuple[str, ...]) -> bool:
    """Whether the user's parameters name files or folders of their own (a CSV manifest,
    a score file, a model card): such runs always execute.

    Parameters
    ----------
    user_parameters : mapping
        The parameters the user gave (not the suite's).
    path_keys, path_suffixes : tuple of str
        Mapping keys holding paths, and string endings that make a value a path (the
        runner's :data:`~facelab.report.runner.PATH_KEYS` and ``PATH_SUFFIXES``).

    Returns
    -------
    bool
    """
    def walk(value: Any, key: str | None = None) -> bool:
        if isinstance(value, Mapping):
            return any(walk(v, k) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(walk(v) for v in value)
        if isinstance(value, str):
            head, sep, rest = value.partition(":")
            return (key in path_keys or value.lower().endswith(path_suffixes)
                    or bool(sep and head.lower() in ("csv", "manifest") and rest)
                    or os.path.sep in value and Path(value).expanduser().exists())
        return False

    return any(walk(v, k) for k, v in user_parameters.items())


def up_to_date_run(results_root: str | os.PathLike, notebook: str,
                   digest: str) -> Path | None:
    """The newest run folder of ``notebook`` under ``results_root`` that finished ``ok``
    with inputs digest ``digest`` and still has its executed notebook and ``metrics.json``.

    Parameters
    ----------
    results_root : str or os.PathLike
        The results folder holding run folders.
    notebook : str
        The audit's name (notebook stem, e.g. ``"02_verification_demographics"``).
    digest : str
        :func:`inputs_digest` of the run about to start.

    Returns
    -------
    pathlib.Path or None
        The run folder, or ``None`` when no run matches (the audit must execute).
    """
    root = Path(results_root)
    if not root.is_dir():
        return None
    for run in sorted(root.glob(f"*-{notebook}"), reverse=True):  # run ids start with time
        try:
            prov = json.loads((run / "provenance.json").read_text())
        except (OSError, ValueError):
            continue
        if (prov.get("status") == "ok" and prov.get("inputs_digest") == digest
                and (run / f"{notebook}.ipynb").is_file()
                and (run / "metrics.json").is_file()):
            return run
    return None
