"""Checks for every number that enters facelab from outside, in one place.

Modelled on scikit-learn's ``sklearn/utils/validation.py`` (``check_array``,
``check_consistent_length``, ``_assert_all_finite``): small functions that either return
the validated value or raise one error type, :class:`InputError`, whose message names
*where* the bad value came from (a file and its line, a JSON path, a row, an argument).
Callers that prefer to go on record the entry in an :class:`Drops` report (a counted drop
with its reason) instead of raising; nothing is ever dropped or zeroed silently.

Used by :func:`facelab.match.verification.verify`, :class:`facelab.match.gallery.Gallery`
(embeddings given by the user), the dataset adapters (label values outside what a
dataset documents) and every importer of :mod:`facelab.external` (score files, candidate
lists, JSON responses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["InputError", "Drops", "where", "embedding_problem", "check_embedding",
           "check_embeddings", "check_columns", "check_numeric", "check_in_range",
           "check_unique", "check_known", "check_choice", "ERRORS"]

#: What to do with a bad entry: stop with an :class:`InputError`, or drop it and count it.
ERRORS = ("raise", "drop")


class InputError(ValueError):
    """A value from outside facelab failed a check.

    Attributes
    ----------
    source : str
        The file, argument or object the value came from.
    where : str
        Line, row or JSON path inside ``source`` (may be empty).
    problem : str
        What is wrong, in plain words.
    """

    def __init__(self, source: str, problem: str, where: str = ""):
        self.source, self.where, self.problem = str(source), str(where), problem
        at = f"{self.source}, {self.where}" if self.where else self.source
        super().__init__(f"{at}: {problem}")


def where(*, line: int | None = None, row: Any = None, path: str | None = None) -> str:
    """``"line 12"``, ``"row 3"`` or a JSON path, for :class:`InputError` and drops.

    Parameters
    ----------
    line : int, optional
        1-based line of a text file (wins over the others).
    row : any, optional
        Row number or label of a table.
    path : str, optional
        JSON path such as ``"$.FaceMatches[3].Similarity"``.

    Returns
    -------
    str
        The location, or ``""`` when none is given.
    """
    if line is not None:
        return f"line {line}"
    if path is not None:
        return str(path)
    if row is not None:
        return f"row {row}"
    return ""


@dataclass
class Drops:
    """Entries left out on import, each with where it was and why (a counted drop).

    ``len(drops)`` is the count; :meth:`table` lists them; :meth:`summary` is the one
    sentence a report shows (``"3 entries dropped: 2 x duplicate pair; 1 x ..."``).
    """

    source: str = ""
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, where_: str, reason: str, source: str | None = None) -> None:
        """Count one dropped entry.

        Parameters
        ----------
        where_ : str
            Where it was (:func:`where`).
        reason : str
            Why it was dropped, in plain words.
        source : str, optional
            The file it came from (default: this report's ``source``).
        """
        self.rows.append({"source": source or self.source, "where": where_, "reason": reason})

    def extend(self, other: Drops) -> None:
        """Add every entry of another report to this one.

        Parameters
        ----------
        other : Drops
            The report to append.
        """
        self.rows.extend(other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> pd.DataFrame:
        """One row per dropped entry.

        Returns
        -------
        pandas.DataFrame
            Columns ``source``, ``where``, ``reason``.
        """
        return pd.DataFrame(self.rows, columns=["source", "where", "reason"])

    def summary(self) -> str:
        """The one sentence a report shows about the drops.

        Returns
        -------
        str
            ``"<source>: N entries dropped (2 x reason; 1 x reason)."`` or
            ``"<source>: nothing dropped."``.
        """
        if not self.rows:
            return f"{self.source or 'input'}: nothing dropped."
        counts = pd.Series([r["reason"] for r in self.rows]).value_counts()
        parts = "; ".join(f"{n} x {r}" for r, n in counts.items())
        return f"{self.source or 'input'}: {len(self.rows):,} entries dropped ({parts})."


def _check_errors(errors: str) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}; got {errors!r}")


def _fail_or_drop(bad: np.ndarray, reasons: Sequence[str], wheres: Sequence[str], *,
                  source: str, errors: str, drops: Drops | None) -> np.ndarray:
    """Raise for the first bad entry, or record every bad entry in ``drops``; returns the
    keep mask."""
    bad = np.asarray(bad, dtype=bool)
    if not bad.any():
        return ~bad
    idx = np.flatnonzero(bad)
    if errors == "raise":
        i = idx[0]
        more = f" ({len(idx) - 1:,} more such entries)" if len(idx) > 1 else ""
        raise InputError(source, reasons[i] + more, wheres[i])
    if drops is None:
        raise ValueError("errors='drop' needs a Drops report to count the drops in")
    for i in idx:
        drops.add(wheres[i], reasons[i], source)
    return ~bad


# ----------------------------------------------------------------------------- embeddings
def embedding_problem(vector: np.ndarray) -> str:
    """Why a 1-D embedding cannot be compared (``""`` when it can).

    NaN, infinite values or an all-zero vector (no direction: its cosine similarity is
    undefined, and a silent 0.0 score would look like a real comparison).

    Parameters
    ----------
    vector : numpy.ndarray
        ``(dim,)`` float embedding.

    Returns
    -------
    str
        The problem in plain words, or ``""``.
    """
    v = np.asarray(vector)
    if np.isnan(v).any():
        return f"contains {int(np.isnan(v).sum())} NaN value(s)"
    if np.isinf(v).any():
        return f"contains {int(np.isinf(v).sum())} infinite value(s)"
    if not np.any(v):
        return "is all zeros (no face was embedded)"
    return ""


def check_embedding(vector: Any, *, dim: int | None = None, name: str = "embedding",
                    model: str = "") -> np.ndarray:
    """A usable 1-D ``float32`` embedding, or :class:`InputError`.

    Parameters
    ----------
    vector : array-like
        Numbers, shape ``(dim,)``.
    dim : int, optional
        Required length (the model's embedding size, e.g. 128), or None for any.
    name : str
        How the error names the vector (``"embedding a"``).
    model : str
        Model name quoted in the size error.

    Returns
    -------
    numpy.ndarray
        ``(dim,)`` float32.

    Raises
    ------
    InputError
        Wrong shape, non-numeric, NaN, infinite or all-zero values.
    """
    try:
        v = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(name, f"is not numeric ({exc})") from None
    if v.ndim != 1 or (dim is not None and v.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "1-D"
        of = f" for model {model!r}" if model else ""
        raise InputError(name, f"has shape {v.shape}; expected {want}{of}")
    problem = embedding_problem(v)
    if problem:
        raise InputError(name, problem)
    return v


def check_embeddings(matrix: Any, *, dim: int | None = None, name: str = "embeddings",
                     errors: str = "raise", drops: Drops | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a 2-D embedding matrix checked like :func:`check_embedding`.

    Parameters
    ----------
    matrix : array-like
        ``(n, dim)`` numbers (one ``(dim,)`` vector is read as one row).
    dim : int, optional
        Required row length, or None for any.
    name : str
        How the error names the matrix (``"probe embeddings"``).
    errors : {"raise", "drop"}
        Stop at the first bad row, or count bad rows in ``drops``.
    drops : Drops, optional
        The report bad rows are counted in (required with ``errors="drop"``).

    Returns
    -------
    matrix : numpy.ndarray
        ``(n, dim)`` float32.
    keep : numpy.ndarray
        ``(n,)`` bool mask of usable rows (all True with ``errors="raise"``).

    Raises
    ------
    InputError
        Wrong shape, or (``errors="raise"``) the first bad row, named by its number.
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    _check_errors(errors)
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim == 1 and dim is not None and m.shape[0] == dim:
        m = m[None]
    if m.ndim != 2 or (dim is not None and m.shape[1] != dim):
        raise InputError(name, f"has shape {m.shape}; expected (n, {dim if dim else 'dim'})")
    problems = [embedding_problem(row) for row in m]
    bad = np.array([p != "" for p in problems], dtype=bool)
    keep = _fail_or_drop(bad, [f"embedding {p}" for p in problems],
                         [where(row=i) for i in range(len(m))], source=name, errors=errors,
                         drops=drops)
    return m, keep


# ----------------------------------------------------------------------------- tables
def check_columns(frame: pd.DataFrame, required: Iterable[str], *, source: str,
                  hint: str = "") -> None:
    """Check that a table has the columns a reader needs.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read.
    required : iterable of str
        Column names that must be present.
    source : str
        The file it came from (named in the error).
    hint : str
        A sentence appended to the error (e.g. how to map columns).

    Raises
    ------
    InputError
        Naming the missing columns and the ones present.
    """
    missing = [c for c in required if c not in frame.columns]
    if missing:
        extra = f" {hint}" if hint else ""
        raise InputError(source, f"missing column(s) {missing}; the file has "
                                 f"{list(map(str, frame.columns))}.{extra}")


def check_numeric(values: Sequence[Any] | pd.Series, *, source: str, column: str,
                  wheres: Sequence[str], errors: str = "raise", drops: Drops | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers; empty, non-numeric and non-finite entries raise or are dropped.

    Parameters
    ----------
    values : sequence or pandas.Series
        Raw entries (strings or numbers) of one column.
    source : str
        The file or argument the values came from (named in the error).
    column : str
        Column or field name (named in the error).
    wheres : sequence of str
        Where each entry sits in ``source`` (:func:`where`: ``"line 12"``, ``"row 3"``).
    errors : {"raise", "drop"}
        Stop at the first bad entry, or count every bad entry in ``drops``.
    drops : Drops, optional
        The report bad entries are counted in (required with ``errors="drop"``).

    Returns
    -------
    values : numpy.ndarray
        ``float64`` (NaN where dropped).
    keep : numpy.ndarray
        Bool keep mask.

    Raises
    ------
    InputError
        With ``errors="raise"``: the first bad entry, named by ``source`` and its
        ``wheres`` entry (and how many more there are).
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    _check_errors(errors)
    raw = pd.Series(list(values), dtype=object)
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    reasons = []
    for r, x in zip(raw, num, strict=True):
        if math.isnan(x) and (r is None or str(r).strip() in ("", "nan", "NaN", "None")):
            reasons.append(f"{column} is empty or NaN ({r!r})")
        elif math.isnan(x) and not isinstance(r, float):
            reasons.append(f"{column} {r!r} is not a number")
        elif not math.isfinite(x):
            reasons.append(f"{column} {r!r} is not finite")
        else:
            reasons.append("")
    bad = np.array([s != "" for s in reasons], dtype=bool)
    keep = _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)
    return num, keep


def check_in_range(values: np.ndarray, low: float, high: float, *, source: str,
                   column: str, wheres: Sequence[str], errors: str = "raise",
                   drops: Drops | None = None, documented: str = "", mask=None) -> np.ndarray:
    """Values outside ``[low, high]`` (inclusive) raise or are dropped.

    Parameters
    ----------
    values : numpy.ndarray
        Numbers (already parsed, e.g. by :func:`check_numeric`).
    low, high : float
        The declared range, in the column's unit (e.g. years for age).
    source : str
        The file or argument the values came from (named in the error).
    column : str
        Column or field name (named in the error).
    wheres : sequence of str
        Where each entry sits in ``source`` (:func:`where`: ``"line 12"``, ``"row 3"``).
    errors : {"raise", "drop"}
        Stop at the first bad entry, or count every bad entry in ``drops``.
    drops : Drops, optional
        The report bad entries are counted in (required with ``errors="drop"``).
    documented : str
        Where the range comes from (quoted in the message), e.g. a dataset's paper.
    mask : array-like of bool, optional
        Check only these entries (e.g. rows that parsed).

    Returns
    -------
    numpy.ndarray
        Bool keep mask.

    Raises
    ------
    InputError
        With ``errors="raise"``: the first bad entry, named by ``source`` and its
        ``wheres`` entry (and how many more there are).
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    _check_errors(errors)
    v = np.asarray(values, dtype=float)
    bad = (v < low) | (v > high)
    if mask is not None:
        bad &= np.asarray(mask, dtype=bool)
    src = f" ({documented})" if documented else ""
    reasons = [f"{column} {x:g} is outside the declared range [{low:g}, {high:g}]{src}"
               for x in v]
    return _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)


def check_unique(frame: pd.DataFrame, key: Sequence[str], *, source: str,
                 wheres: Sequence[str], what: str = "entry", errors: str = "raise",
                 drops: Drops | None = None) -> np.ndarray:
    """Repeated keys (second and later occurrences) raise or are dropped.

    The message names the line of the first occurrence too.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    key : sequence of str
        Columns that together must be unique.
    source : str
        The file the table came from.
    wheres : sequence of str
        Where each row sits in ``source``.
    what : str
        What a row is, for the message (``"pair"``).
    errors : {"raise", "drop"}
        Stop at the first repeat, or count repeats in ``drops``.
    drops : Drops, optional
        The report repeats are counted in (required with ``errors="drop"``).

    Returns
    -------
    numpy.ndarray
        Bool keep mask (first occurrences kept).

    Raises
    ------
    InputError
        With ``errors="raise"``: the first bad entry, named by ``source`` and its
        ``wheres`` entry (and how many more there are).
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    _check_errors(errors)
    dup = frame.duplicated(list(key), keep="first").to_numpy()
    if not dup.any():
        return ~dup
    first = {}
    keys = list(frame[list(key)].itertuples(index=False, name=None))
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    reasons = [f"duplicate {what} {keys[i]} (first at {wheres[first[keys[i]]]})" if d else ""
               for i, d in enumerate(dup)]
    return _fail_or_drop(dup, reasons, wheres, source=source, errors=errors, drops=drops)


def check_known(ids: Sequence[Any], known: Iterable[Any] | pd.Index, *, source: str,
                column: str, wheres: Sequence[str], errors: str = "raise",
                drops: Drops | None = None, known_name: str = "the manifest") -> np.ndarray:
    """Ids not in ``known`` raise or are dropped.

    Parameters
    ----------
    ids : sequence
        Ids as read (e.g. image or subject ids of a score file).
    known : iterable or pandas.Index
        The ids that exist (e.g. a manifest's).
    source : str
        The file or argument the values came from (named in the error).
    column : str
        Column or field name (named in the error).
    wheres : sequence of str
        Where each entry sits in ``source`` (:func:`where`: ``"line 12"``, ``"row 3"``).
    errors : {"raise", "drop"}
        Stop at the first bad entry, or count every bad entry in ``drops``.
    drops : Drops, optional
        The report bad entries are counted in (required with ``errors="drop"``).
    known_name : str
        What ``known`` is, for the message.

    Returns
    -------
    numpy.ndarray
        Bool keep mask.

    Raises
    ------
    InputError
        With ``errors="raise"``: the first bad entry, named by ``source`` and its
        ``wheres`` entry (and how many more there are).
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    _check_errors(errors)
    known_set = known if isinstance(known, set | frozenset | pd.Index) else set(known)
    bad = np.array([i not in known_set for i in ids], dtype=bool)
    reasons = [f"{column} {i!r} is not in {known_name}" for i in ids]
    return _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)


def check_choice(values: Sequence[Any], allowed: Iterable[Any], *, source: str, column: str,
                 wheres: Sequence[str], errors: str = "raise",
                 drops: Drops | None = None) -> np.ndarray:
    """Values outside the documented vocabulary raise or are dropped.

    Parameters
    ----------
    values : sequence
        Entries as read.
    allowed : iterable
        The documented vocabulary (e.g. a dataset's label names).
    source : str
        The file or argument the values came from (named in the error).
    column : str
        Column or field name (named in the error).
    wheres : sequence of str
        Where each entry sits in ``source`` (:func:`where`: ``"line 12"``, ``"row 3"``).
    errors : {"raise", "drop"}
        Stop at the first bad entry, or count every bad entry in ``drops``.
    drops : Drops, optional
        The report bad entries are counted in (required with ``errors="drop"``).

    Returns
    -------
    numpy.ndarray
        Bool keep mask.

    Raises
    ------
    InputError
        With ``errors="raise"``: the first bad entry, named by ``source`` and its
        ``wheres`` entry (and how many more there are).
    ValueError
        For an unknown ``errors`` value, or ``errors="drop"`` without ``drops``.
    """
    allowed = list(allowed)
    bad = np.array([v not in allowed for v in values], dtype=bool)
    reasons = [f"{column} {v!r} is not one of {allowed}" for v in values]
    return _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)
