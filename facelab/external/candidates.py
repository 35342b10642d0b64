"""1:N candidate lists: ``probe,rank,candidate,score``, one row per returned candidate.

The layout of an identification system's output in ISO/IEC 19795-1 terms (and of NIST
FRVT 1:N candidate lists): for each search (probe), the candidates the system returned,
best first. A probe that was searched and returned nothing is written as one row with
``rank``, ``candidate`` and ``score`` empty, so that it still counts as a search (a
non-mated search that returns nothing is a correct rejection; a mated one is a miss).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError, check_columns, check_unique
from facelab.external._common import ScoreScale, numbers, read_table

__all__ = ["ImportedCandidates", "read_candidates", "write_candidates", "CANDIDATE_COLUMNS",
           "check_candidate_table"]

#: Columns of :attr:`ImportedCandidates.table`.
CANDIDATE_COLUMNS = ("probe", "rank", "candidate", "score", "where")


@dataclass
class ImportedCandidates:
    """Candidate lists produced by another system, checked on the way in.

    Attributes
    ----------
    table : DataFrame
        :data:`CANDIDATE_COLUMNS`, one row per returned candidate (``rank`` 1 = best;
        ``score`` on the file's scale).
    probes : list of str
        Every search, including those that returned no candidate.
    scale : ScoreScale
    source : str
    drops : Drops
    system : str
    censored_below : float or None
        The system returned no candidate scoring below this (on ``scale``; e.g.
        Rekognition's ``FaceMatchThreshold``): thresholds below it cannot be evaluated.
    max_candidates : int or None
        The most candidates the system returned per search (``MaxFaces``), when known.
    """

    table: pd.DataFrame
    probes: list[str]
    scale: ScoreScale
    source: str
    drops: Drops = field(default_factory=Drops)
    system: str = ""
    censored_below: float | None = None
    max_candidates: int | None = None
    default_threshold: float | None = None
    default_how: str = ""

    def __post_init__(self) -> None:
        if not self.system:
            self.system = Path(self.source).name or "imported candidates"

    def summary(self) -> str:
        """One sentence for a report: searches, candidates, empty searches, censoring, drops.

        Returns
        -------
        str
        """
        n = len(self.probes)
        empty = n - self.table["probe"].nunique()
        text = (f"{self.system}: {n:,} searches and {len(self.table):,} candidates read from "
                f"{self.source} ({self.scale.describe()}); {empty:,} searches returned no "
                "candidate")
        if self.censored_below is not None:
            text += (f"; candidates scoring below {self.censored_below:g} were not returned "
                     "by the system")
        if len(self.drops):
            text += f". {self.drops.summary()}"
        return text + "."


def check_candidate_table(table: pd.DataFrame, *, source: str, scale: ScoreScale,
                          errors: str, drops: Drops) -> pd.DataFrame:
    """Checks shared by every candidate-list importer.

    Ranks are integers >= 1, scores are finite and in range, no probe lists a rank or a
    candidate twice, ranks run 1, 2, 3... and scores do not improve with rank.

    Parameters
    ----------
    table : DataFrame
        Columns ``probe``, ``rank``, ``candidate``, ``score`` (strings as read) and
        ``where`` (line of each row).
    source : str
        The file the table came from.
    scale : ScoreScale or mapping, optional
        The score's direction (``higher`` or ``lower`` = more alike) and range
        (:meth:`~facelab.external.ScoreScale.parse`).
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    drops : Drops
        Where dropped rows are counted.

    Returns
    -------
    DataFrame
        The kept rows, columns :data:`CANDIDATE_COLUMNS`, ``rank`` int, ``score`` float.

    Raises
    ------
    facelab.core.validation.InputError
        A bad value, named by its file and line/row (with ``errors="raise"``).
    """
    wheres = table["where"].tolist()
    ranks, keep = numbers(table, "rank", source=source, wheres=wheres, errors=errors,
                          drops=drops)
    bad_rank = keep & ((ranks < 1) | (ranks != np.round(ranks)))
    if bad_rank.any():
        i = int(np.flatnonzero(bad_rank)[0])
        raise InputError(source, f"rank {table['rank'].iloc[i]!r} is not an integer >= 1",
                         wheres[i])
    scores, k2 = numbers(table, "score", source=source, wheres=wheres, errors=errors,
                         drops=drops)
    keep &= k2
    keep &= scale.check(scores, source=source, wheres=wheres, errors=errors, drops=drops,
                        mask=keep)
    out = table.assign(rank=np.where(keep, ranks, 0).astype(int), score=scores)[keep]
    out = out.reset_index(drop=True)
    w = out["where"].tolist()
    k = check_unique(out, ["probe", "rank"], source=source, wheres=w, what="(probe, rank)",
                     errors=errors, drops=drops)
    out = out[k].reset_index(drop=True)
    w = out["where"].tolist()
    k = check_unique(out, ["probe", "candidate"], source=source, wheres=w,
                     what="(probe, candidate)", errors=errors, drops=drops)
    out = out[k].reset_index(drop=True)
    sim = scale.to_similarity(out["score"].to_numpy(dtype=float))
    out = out.assign(_sim=sim).sort_values(["probe", "rank"], kind="stable")
    for probe, part in out.groupby("probe", sort=False):
        r = part["rank"].to_numpy()
        if not np.array_equal(r, np.arange(1, len(r) + 1)):
            raise InputError(source, f"probe {probe!r} lists ranks {r.tolist()}; ranks must "
                                     "run 1, 2, 3, ...", part["where"].iloc[0])
        s = part["_sim"].to_numpy()
        worse = np.flatnonzero(np.diff(s) > 0)
        if len(worse):
            j = worse[0] + 1
            raise InputError(source, f"probe {probe!r}: rank {r[j]} scores better than rank "
                                     f"{r[j - 1]} ({scale.name} read "
                                     f"{'higher' if scale.direction == 'higher' else 'lower'}"
                                     " = more alike)", part["where"].iloc[j])
    return out.drop(columns="_sim").reset_index(drop=True)[list(CANDIDATE_COLUMNS)]


def read_candidates(path: str | os.PathLike, *, scale: Any = None, errors: str = "raise",
                    system: str = "", censored_below: float | None = None
                    ) -> ImportedCandidates:
    """Read a candidate-list CSV ``probe,rank,candidate,score``.

    Parameters
    ----------
    path
        CSV with a header line. A row with ``rank``, ``candidate`` and ``score`` all empty
        records a search that returned nothing.
    scale
        :class:`~facelab.external.ScoreScale` or mapping (direction and range).
    errors
        ``"raise"`` (stop at the first bad line, naming it) or ``"drop"`` (count it).
    censored_below
        The system's own cut-off, when it returned only candidates at or above it.
    system
        Name of the system shown in reports (default: the file name).

    Returns
    -------
    ImportedCandidates
        The checked candidate table, every probe, the scale and the counted drops.

    Raises
    ------
    InputError
        Missing columns, empty probe ids, non-integer ranks, bad scores, duplicate ranks or
        candidates within a probe, ranks that skip, scores that improve with rank.
    """
    scale = ScoreScale.parse(scale)
    src = str(path)
    frame, wheres = read_table(path)
    check_columns(frame, ["probe", "rank", "candidate", "score"], source=src,
                  hint="Expected probe,rank,candidate,score.")
    frame = frame.assign(where=wheres)
    if (frame["probe"].astype(str) == "").any():
        i = int(np.flatnonzero((frame["probe"] == "").to_numpy())[0])
        raise InputError(src, "empty probe id", wheres[i])
    probes = pd.unique(frame["probe"].astype(str)).tolist()
    blank = (frame[["rank", "candidate", "score"]] == "").all(axis=1).to_numpy()
    part = (frame[["rank", "candidate", "score"]] == "").any(axis=1).to_numpy() & ~blank
    if part.any():
        i = int(np.flatnonzero(part)[0])
        raise InputError(src, "rank, candidate and score must be all given or all empty "
                              "(a search that returned nothing)", wheres[i])
    drops = Drops(src)
    table = check_candidate_table(frame[~blank].reset_index(drop=True), source=src,
                                  scale=scale, errors=errors, drops=drops)
    return ImportedCandidates(table, probes, scale, src, drops, system=system,
                              censored_below=censored_below)


def write_candidates(results: pd.DataFrame, path: str | os.PathLike, *,
                     probes: list | None = None, transform=None) -> Path:
    """Write search results as a candidate-list CSV ``probe,rank,candidate,score``.

    Parameters
    ----------
    results : DataFrame
        ``probe, candidate_rank, subject, score``, as
        :meth:`facelab.match.gallery.Gallery.search` returns; rows with NaN score are left
        out.
    path : str or os.PathLike
        The CSV to write (folders are created).
    probes : list, optional
        Every search, so that those without a candidate get their empty row.
    transform : callable, optional
        Maps facelab similarities onto the written scale (e.g. :func:`to_percent`).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    res = results.dropna(subset=["score"])
    values = res["score"].to_numpy(dtype=float)
    values = transform(values) if transform is not None else values
    out = pd.DataFrame({"probe": res["probe"].astype(str),
                        "rank": res["candidate_rank"].astype(int).astype(str),
                        "candidate": res["subject"].astype(str),
                        "score": [repr(float(v)) for v in values]})
    if probes is not None:
        missing = [str(p) for p in probes if str(p) not in set(out["probe"])]
        out = pd.concat([out, pd.DataFrame({"probe": missing, "rank": "", "candidate": "",
                                            "score": ""})], ignore_index=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path
