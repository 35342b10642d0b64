"""Verification (1:1) score files: facelab's CSV and bob.measure's 4- and 5-column files.

* CSV ``probe,reference,score[,mated]`` with a header line. ``mated`` (1/0, true/false,
  genuine/impostor) is optional: without it, whether a pair is mated comes from the
  manifest's subjects (:func:`facelab.studies.imported.scored_pairs`).
* bob.measure score files (Idiap's ``bob.measure.load.four_column`` and
  ``five_column``; https://www.idiap.ch/software/bob/docs/bob/bob.measure/stable/), one
  comparison per line, fields separated by white space, ``#`` comment lines:

  - 4 columns: ``claimed_id real_id test_label score``
  - 5 columns: ``claimed_id model_label real_id test_label score``

  A comparison is genuine when ``claimed_id == real_id``. The probe is ``test_label``;
  the reference is ``model_label`` (5 columns) or the enrolled model ``claimed_id``
  (4 columns, which name no reference image: the reference side is then the identity).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError, check_columns, check_unique
from facelab.external._common import ScoreScale, numbers, read_table, to_bool

__all__ = ["ImportedScores", "read_scores", "read_bob_scores", "write_scores",
           "write_bob_scores", "SCORE_COLUMNS"]

#: Columns of :attr:`ImportedScores.table`.
SCORE_COLUMNS = ("probe", "reference", "score", "mated", "probe_subject", "reference_is",
                 "where")


@dataclass
class ImportedScores:
    """Verification scores produced by another system, checked on the way in.

    Attributes
    ----------
    table : DataFrame
        :data:`SCORE_COLUMNS`: ``score`` on the file's own scale, ``mated`` (nullable
        bool: NA when the file does not say), ``probe_subject`` (the probe's identity when
        the file gives one, bob files), ``reference_is`` (``"image"`` or ``"subject"``)
        and ``where`` (the line or JSON document each pair came from).
    scale : ScoreScale
        Direction and documented range of ``score``.
    source : str
        The file or folder read.
    drops : Drops
        Entries left out, with reasons (with ``errors="drop"``, and failures to acquire
        reported by the system).
    system : str
        Name used in reports.
    default_threshold : float or None
        The system's own decision threshold, on ``scale`` (e.g. deepface's ``threshold``),
        with ``default_how`` saying where it comes from.
    censored_below : float or None
        Scores below this (on ``scale``) were not returned by the system (e.g.
        Rekognition's ``SimilarityThreshold``): such pairs carry the scale's lowest value
        and ``censored`` True, and no threshold below it can be evaluated.
    """

    table: pd.DataFrame
    scale: ScoreScale
    source: str
    drops: Drops = field(default_factory=Drops)
    system: str = ""
    default_threshold: float | None = None
    default_how: str = ""
    censored_below: float | None = None

    def __post_init__(self) -> None:
        if not self.system:
            self.system = Path(self.source).name or "imported scores"

    def __len__(self) -> int:
        return len(self.table)

    @property
    def similarity(self) -> np.ndarray:
        """Scores in facelab's convention (higher = more alike)."""
        return self.scale.to_similarity(self.table["score"].to_numpy(dtype=float))

    def summary(self) -> str:
        """One sentence for a report: comparisons, scale, mated/non-mated, censoring, drops.

        Returns
        -------
        str
        """
        n = len(self.table)
        mated = self.table["mated"]
        known = int(mated.notna().sum())
        text = (f"{self.system}: {n:,} comparisons read from {self.source} "
                f"({self.scale.describe()})")
        if known:
            text += f"; {int(mated.sum()):,} mated and {known - int(mated.sum()):,} non-mated " \
                    "as labelled in the file"
        if self.censored_below is not None:
            c = int(self.table.get("censored", pd.Series(dtype=bool)).sum())
            text += (f"; {c:,} pairs scored below {self.censored_below:g} were not returned "
                     "by the system")
        if len(self.drops):
            text += f". {self.drops.summary()}"
        return text + "."


def _finish(frame: pd.DataFrame, wheres: list[str], *, source: str, scale: ScoreScale,
            errors: str, drops: Drops, unordered: bool = True) -> pd.DataFrame:
    """Shared checks: numeric, finite, in range, not self-pairs, no duplicate pairs."""
    scores, keep = numbers(frame, "score", source=source, wheres=wheres, errors=errors,
                           drops=drops)
    keep &= scale.check(scores, source=source, wheres=wheres, errors=errors, drops=drops,
                        mask=keep)
    out = frame.assign(score=scores, where=wheres)
    self_pair = (out["probe"] == out["reference"]).to_numpy() & \
        (out["reference_is"] == "image").to_numpy()
    if self_pair.any():
        i = int(np.flatnonzero(self_pair & keep)[0]) if (self_pair & keep).any() else None
        if i is not None:
            if errors == "raise":
                raise InputError(source, f"pair compares image {out['probe'].iloc[i]!r} with "
                                         "itself", wheres[i])
            for j in np.flatnonzero(self_pair & keep):
                drops.add(wheres[j], "pair compares an image with itself", source)
            keep &= ~self_pair
    out = out[keep].reset_index(drop=True)
    kept_wheres = out["where"].tolist()
    if unordered:
        a, b = out["probe"].astype(str), out["reference"].astype(str)
        key = pd.DataFrame({"first": np.minimum(a, b), "second": np.maximum(a, b)})
    else:
        key = out[["probe", "reference"]]
    dup_keep = check_unique(key, list(key.columns), source=source, wheres=kept_wheres,
                            what="pair", errors=errors, drops=drops)
    out = out[dup_keep].reset_index(drop=True)
    if len(out) == 0:
        raise InputError(source, "no usable comparison in the file")
    return out[list(SCORE_COLUMNS)]


def read_scores(path: str | os.PathLike, *, scale: Any = None, errors: str = "raise",
                system: str = "", default_threshold: float | None = None,
                default_how: str = "") -> ImportedScores:
    """Read a CSV of verification scores ``probe,reference,score[,mated]``.

    Parameters
    ----------
    path
        The CSV file (header line required; extra columns are ignored).
    scale
        :class:`~facelab.external.ScoreScale` or mapping ``{direction: higher|lower,
        low, high, name}``: which way the score reads and its documented range.
    errors
        ``"raise"``: the first bad line stops the import with an
        :class:`~facelab.core.validation.InputError` naming the file and line. ``"drop"``: bad
        lines are left out and counted (:attr:`ImportedScores.drops`).
    system, default_threshold, default_how
        Name for reports; the system's own threshold on the file's scale and its source.


    Returns
    -------
    ImportedScores
        The checked pairs, the scale and the counted drops.

    Raises
    ------
    InputError
        Missing columns, non-numeric or non-finite scores, scores outside the declared
        range, a pair of an image with itself, duplicate pairs (in either order), or bad
        ``mated`` values (always), naming file and line.
    """
    scale = ScoreScale.parse(scale)
    src = str(path)
    frame, wheres = read_table(path)
    check_columns(frame, ["probe", "reference", "score"], source=src,
                  hint="Expected probe,reference,score[,mated].")
    drops = Drops(src)
    out = pd.DataFrame({"probe": frame["probe"].astype(str),
                        "reference": frame["reference"].astype(str),
                        "score": frame["score"], "reference_is": "image",
                        "probe_subject": pd.NA})
    if "mated" in frame.columns:
        out["mated"] = pd.array(to_bool(frame["mated"], source=src, column="mated",
                                        wheres=wheres), dtype="boolean")
    else:
        out["mated"] = pd.array([pd.NA] * len(out), dtype="boolean")
    empty = (out["probe"] == "") | (out["reference"] == "")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError(src, "empty probe or reference id", wheres[i])
    table = _finish(out, wheres, source=src, scale=scale, errors=errors, drops=drops)
    return ImportedScores(table, scale, src, drops, system=system,
                          default_threshold=default_threshold, default_how=default_how)


def read_bob_scores(path: str | os.PathLike, *, scale: Any = None, errors: str = "raise",
                    system: str = "") -> ImportedScores:
    """Read a bob.measure 4- or 5-column score file (layout detected from the first line).

    The probe is ``test_label``; the reference is ``model_label`` (5 columns) or the model
    ``claimed_id`` (4 columns: an identity, ``reference_is="subject"``). ``mated`` is
    ``claimed_id == real_id`` and ``probe_subject`` is ``real_id``. Same checks and
    ``errors`` policy as :func:`read_scores`; in 4-column files a probe is compared with a
    model at most once.

    Parameters
    ----------
    path : str or os.PathLike
        The score file (white-space separated, one comparison per line).
    scale : ScoreScale or mapping, optional
        Direction and documented range of the score (:meth:`ScoreScale.parse`).
    errors : {"raise", "drop"}
        Stop at the first bad line, or count it in ``drops``.
    system : str
        Name of the system shown in reports (default: the file name).

    Returns
    -------
    ImportedScores
        The checked pairs, the scale and the counted drops.

    Raises
    ------
    InputError
        Lines with a field count other than the file's layout (4 or 5), bad scores,
        duplicate comparisons, naming file and line.
    """
    scale = ScoreScale.parse(scale)
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(src, "file not found")
    first = None
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            s = line.strip()
            if s and not s.startswith("#"):
                first = s.split()
                break
    if first is None:
        raise InputError(src, "the file is empty")
    if len(first) == 4:
        names = ["claimed_id", "real_id", "test_label", "score"]
    elif len(first) == 5:
        names = ["claimed_id", "model_label", "real_id", "test_label", "score"]
    else:
        raise InputError(src, f"{len(first)} fields; bob.measure score files have 4 "
                              "(claimed_id real_id test_label score) or 5 (claimed_id "
                              "model_label real_id test_label score)")
    frame, wheres = read_table(path, sep=None, comment="#", names=names)
    five = len(names) == 5
    out = pd.DataFrame({
        "probe": frame["test_label"].astype(str),
        "reference": frame["model_label" if five else "claimed_id"].astype(str),
        "score": frame["score"],
        "mated": pd.array((frame["claimed_id"] == frame["real_id"]).to_numpy(),
                          dtype="boolean"),
        "probe_subject": frame["real_id"].astype(str),
        "reference_is": "image" if five else "subject",
    })
    drops = Drops(src)
    table = _finish(out, wheres, source=src, scale=scale, errors=errors, drops=drops,
                    unordered=five)
    return ImportedScores(table, scale, src, drops, system=system or p.name)


# ----------------------------------------------------------------------------- writers
def _pairs_for_export(scored: pd.DataFrame) -> pd.DataFrame:
    need = ["index_a", "index_b", "score", "same"]
    missing = [c for c in need if c not in scored.columns]
    if missing:
        raise ValueError(f"scored pairs need columns {need}; missing {missing}")
    return scored


def write_scores(scored: pd.DataFrame, path: str | os.PathLike, *, mated: bool = True,
                 transform=None) -> Path:
    """Write scored pairs as a ``probe,reference,score[,mated]`` CSV.

    Scores are written with ``repr`` precision, so reading them back gives the same floats.

    Parameters
    ----------
    scored : DataFrame
        :func:`facelab.studies.verification.score_pairs` output (``index_a``, ``index_b``,
        ``score``, ``same``).
    path : str or os.PathLike
        The CSV to write (folders are created).
    mated : bool
        Write the ``mated`` column (1/0).
    transform : callable, optional
        Maps facelab similarities onto the written scale (e.g. :func:`to_percent`).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    s = _pairs_for_export(scored)
    values = s["score"].to_numpy(dtype=float)
    values = transform(values) if transform is not None else values
    out = pd.DataFrame({"probe": s["index_a"].astype(str), "reference": s["index_b"].astype(str),
                        "score": [repr(float(v)) for v in values]})
    if mated:
        out["mated"] = s["same"].astype(bool).astype(int)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def write_bob_scores(scored: pd.DataFrame, path: str | os.PathLike, *, columns: int = 5
                     ) -> Path:
    """Write scored pairs as a bob.measure score file.

    5 columns: ``subject_b index_b subject_a index_a score``; 4 columns:
    ``subject_b subject_a index_a score`` (the model is the reference's identity, so each
    probe may meet each identity once). Ids may not contain white space. Layout: bob.measure
    documentation, "Score file formats".

    Parameters
    ----------
    scored : DataFrame
        :func:`facelab.studies.verification.score_pairs` output with subject columns.
    path : str or os.PathLike
        The file to write (folders are created).
    columns : {4, 5}
        The layout.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        For another column count, ids with white space, or (4 columns) a probe meeting one
        identity twice.
    """
    s = _pairs_for_export(scored)
    if columns not in (4, 5):
        raise ValueError(f"bob.measure score files have 4 or 5 columns; got {columns}")
    fields = {"claimed": s["subject_b"].astype(str), "model": s["index_b"].astype(str),
              "real": s["subject_a"].astype(str), "test": s["index_a"].astype(str)}
    for name, col in fields.items():
        if col.str.contains(r"\s").any():
            raise ValueError(f"bob score files split on white space: {name} ids contain some")
    if columns == 4:
        dup = pd.DataFrame({"m": fields["claimed"], "t": fields["test"]}).duplicated()
        if dup.any():
            raise ValueError(f"{int(dup.sum())} pairs compare a probe with an identity "
                             "already compared: a 4-column file holds one score per probe "
                             "and model; use columns=5")
    order = ["claimed", "model", "real", "test"] if columns == 5 else ["claimed", "real", "test"]
    lines = [" ".join([*(fields[k].iloc[i] for k in order), repr(float(v))])
             for i, v in enumerate(s["score"].to_numpy(dtype=float))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
