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
    """``"line 12"``, ``"row 3"`` or a JSON path, for :class:`InputError` and drops."""
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
        self.rows.append({"source": source or self.source, "where": where_, "reason": reason})

    def extend(self, other: Drops) -> None:
        self.rows.extend(other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> pd.DataFrame:
        """One row per dropped entry: ``source, where, reason``."""
        return pd.DataFrame(self.rows, columns=["source", "where", "reason"])

    def summary(self) -> str:
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
    """Why a 1-D embedding cannot be compared ("" when it can): NaN, infinite values or an
    all-zero vector (no direction: its cosine similarity is undefined, and a silent 0.0
    score would look like a real comparison)."""
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
    vector
        Array-like of numbers, shape ``(dim,)``.
    dim
        Required length (the model's embedding size), or None for any.
    name
        How the error names the vector (``"embedding a"``).
    model
        Model name quoted in the size error.

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

    Returns
    -------
    matrix, keep
        ``(n, dim)`` float32 and a bool mask of usable rows (all True with
        ``errors="raise"``; with ``errors="drop"`` bad rows are counted in ``drops``).

    Raises
    ------
    InputError
        Wrong shape, or (``errors="raise"``) the first bad row, named by its number.
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
    """Raise :class:`InputError` naming the missing columns (and the ones present)."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        extra = f" {hint}" if hint else ""
        raise InputError(source, f"missing column(s) {missing}; the file has "
                                 f"{list(map(str, frame.columns))}.{extra}")


def check_numeric(values: Sequence[Any] | pd.Series, *, source: str, column: str,
                  wheres: Sequence[str], errors: str = "raise", drops: Drops | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers; empty, non-numeric and non-finite entries raise or are dropped.

    Returns
    -------
    values, keep
        ``float64`` array (NaN where dropped) and the keep mask.
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
    """Values outside ``[low, high]`` (inclusive) raise or are dropped; returns keep mask.
    ``documented`` says where the range comes from (quoted in the message)."""
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
    """Repeated keys (second and later occurrences) raise or are dropped; returns the keep
    mask. The message names the line of the first occurrence too."""
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
    """Ids not in ``known`` raise or are dropped; returns the keep mask."""
    _check_errors(errors)
    known_set = known if isinstance(known, set | frozenset | pd.Index) else set(known)
    bad = np.array([i not in known_set for i in ids], dtype=bool)
    reasons = [f"{column} {i!r} is not in {known_name}" for i in ids]
    return _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)


def check_choice(values: Sequence[Any], allowed: Iterable[Any], *, source: str, column: str,
                 wheres: Sequence[str], errors: str = "raise",
                 drops: Drops | None = None) -> np.ndarray:
    """Values outside the documented vocabulary raise or are dropped; keep mask."""
    allowed = list(allowed)
    bad = np.array([v not in allowed for v in values], dtype=bool)
    reasons = [f"{column} {v!r} is not one of {allowed}" for v in values]
    return _fail_or_drop(bad, reasons, wheres, source=source, errors=errors, drops=drops)
