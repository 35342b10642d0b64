"""One record for a headline finding, and the one table every audit's findings become.

Every audit notebook ends with a findings table: one row per headline number, with the
count it rests on, its confidence interval and how the threshold behind it was set.
:class:`Finding` is that row, with **numeric** fields only for numbers (``count``, ``n``,
``ci_low``, ``ci_high``, ``threshold``, ``reference_value``; ``None`` where a field does
not apply, never a text such as ``"3/40"``), :func:`findings_table` turns a list of them
into the table a notebook records (``Recorder.table("findings", ...)``, so the
``findings`` key of ``metrics.json`` holds these fields), and :func:`display_findings`
formats that table for reading (``"k/n"``, ``"[lo, hi]"``) from the numbers at display
time. :func:`findings_from_records` reads the recorded rows back (the runs page,
:mod:`facelab.report.runs_index`).

Why here, on the ``metrics`` floor: the studies (:mod:`facelab.studies`) build findings
and the report (:mod:`facelab.report`) renders them; the studies may only import floors
below them, so the record lives below both, next to the rates and intervals it carries
(:mod:`facelab.metrics.intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

__all__ = ["Finding", "FINDING_COLUMNS", "findings_table", "findings_from_records",
           "display_findings"]

_NUMERIC = ("value", "count", "n", "ci_low", "ci_high", "threshold", "reference_value")


def _number(value: Any, name: str) -> float | None:
    """``value`` as a float, or ``None`` when missing (None, NaN, pandas NA).

    Raises
    ------
    TypeError
        If ``value`` is a text (a finding's numbers are numbers, not ``"3/40"``).
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, str):
        raise TypeError(f"Finding.{name} must be a number or None, got the text {value!r}")
    out = float(value)
    return None if math.isnan(out) else out


@dataclass(frozen=True)
class Finding:
    """One headline number of an audit, with what it rests on.

    Attributes
    ----------
    finding : str
        The sentence a reader sees ("FTA fairface, yunet").
    value : float or None
        The number: a rate in [0, 1], a ratio, a count, a score or years (see ``metric``).
        Booleans are stored as 1.0 / 0.0.
    metric : str
        What ``value`` is, with ISO/IEC 19795-1 names where they apply: ``"FMR"``,
        ``"FNMR"``, ``"FPIR"``, ``"FNIR"``, ``"FTA"``, ``"error rate"``, ``"FMR ratio"``,
        ``"share"``, ``"MAE (years)"``, ``"ECE"``, ``"threshold"``, ``"count"``, ...
    model : str
        The system measured (detector, embedder, expression or attribute model), or "".
    dataset : str
        The dataset label the number comes from, or "".
    group : str
        The demographic group or cell ("Black x female"), or "" for everyone.
    count, n : float or None
        Events and trials behind a rate (``value == count / n``); ``n`` alone for a mean
        over ``n`` items; ``None`` when the value is not a proportion.
    ci_low, ci_high : float or None
        The 95% confidence interval, or ``None`` when none was computed.
    ci_method : str
        How the interval was computed ("Wilson", "bootstrap over people, 1000", ...).
    threshold : float or None
        The decision threshold behind the number (similarity, score), when there is one.
    threshold_how : str
        How that threshold (or operating point) was set, in words.
    operating_point : str
        The named operating point ("model default", "FMR 1e-3"), or "".
    reference : str
        For a differential: the group compared against (``value`` is then a ratio).
    reference_value : float or None
        For a differential: the reference group's own value.
    """

    finding: str
    value: float | None = None
    metric: str = ""
    model: str = ""
    dataset: str = ""
    group: str = ""
    count: float | None = None
    n: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str = ""
    threshold: float | None = None
    threshold_how: str = ""
    operating_point: str = ""
    reference: str = ""
    reference_value: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.finding, str) or not self.finding:
            raise ValueError(f"Finding.finding must be a non-empty sentence, got "
                             f"{self.finding!r}")
        for name in _NUMERIC:
            object.__setattr__(self, name, _number(getattr(self, name), name))
        for f in fields(self):
            if f.name not in _NUMERIC and f.name != "finding":
                value = getattr(self, f.name)
                object.__setattr__(self, f.name, "" if value is None else str(value))

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict.

        Returns
        -------
        dict
            Field name -> plain Python value (``None`` for a missing number).
        """
        return asdict(self)


#: The columns of a findings table, in order (the fields of :class:`Finding`).
FINDING_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Finding))


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """The findings table every audit records and shows.

    Parameters
    ----------
    findings : iterable of Finding
        The audit's findings, in the order they should be read.

    Returns
    -------
    pandas.DataFrame
        One row per finding, columns :data:`FINDING_COLUMNS`; numeric columns are
        ``float64`` with NaN where a field does not apply (``metrics.json`` stores NaN
        as ``null``), text columns ``""``.

    Raises
    ------
    TypeError
        If an item is not a :class:`Finding`.
    """
    rows = []
    for item in findings:
        if not isinstance(item, Finding):
            raise TypeError(f"findings_table takes Finding records, got {type(item).__name__}")
        rows.append(item.to_dict())
    table = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    for name in _NUMERIC:
        table[name] = pd.to_numeric(table[name], errors="raise").astype("float64")
    return table


def findings_from_records(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[Finding]:
    """Read a recorded findings table back into :class:`Finding` records.

    Parameters
    ----------
    rows : iterable of mapping, or pandas.DataFrame
        The ``findings`` entry of a run's ``metrics.json`` (a list of dicts, extra keys
        such as ``index`` ignored), or a table from :func:`findings_table`.

    Returns
    -------
    list of Finding

    Raises
    ------
    ValueError
        If a row has no ``finding`` sentence.
    TypeError
        If a numeric field holds text (a table written before the numeric schema, e.g.
        ``"count": "3/40"``); the message names the row.
    """
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    names = set(FINDING_COLUMNS)
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(Finding(**{k: v for k, v in row.items() if k in names}))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"findings row {i}: {exc}") from None
    return out


def _fmt(value: float, decimals: int) -> str:
    if not math.isfinite(value):
        return str(value)  # "inf": a ratio over a group without events
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{decimals}f}" if abs(value) >= 10 ** -decimals or value == 0 \
        else f"{value:.2g}"


def display_findings(table: pd.DataFrame, *, decimals: int = 3) -> pd.DataFrame:
    """The findings table for reading: count as ``"k/n"``, the interval as ``"[lo, hi]"``.

    Parameters
    ----------
    table : pandas.DataFrame
        A table from :func:`findings_table`.
    decimals : int
        Decimals of the value and interval bounds (smaller values get two significant
        digits, so an FMR of 1e-4 does not print as 0.000).

    Returns
    -------
    pandas.DataFrame
        Columns ``finding``, ``model``, ``value``, ``count``, ``95% CI``, ``threshold``:
        text, formatted from the numeric fields (the recorded table keeps the numbers).
    """
    def num(x: float) -> str:
        return "" if pd.isna(x) else _fmt(float(x), decimals)

    out = pd.DataFrame(index=table.index)
    out["finding"] = table["finding"]
    if (table["model"] != "").any():
        out["model"] = table["model"]
    out["value"] = table["value"].map(num)
    out["count"] = [f"{num(k)}/{num(n)}" if pd.notna(k) and pd.notna(n)
                    else (f"n={num(n)}" if pd.notna(n) else num(k))
                    for k, n in zip(table["count"], table["n"], strict=True)]
    out["95% CI"] = [f"[{num(lo)}, {num(hi)}]" + (f" {m}" if m else "")
                     if pd.notna(lo) and pd.notna(hi) else ""
                     for lo, hi, m in zip(table["ci_low"], table["ci_high"],
                                          table["ci_method"], strict=True)]
    how = [" ".join(p for p in (f"{num(t)}:" if pd.notna(t) else "", h) if p)
           for t, h in zip(table["threshold"], table["threshold_how"], strict=True)]
    out["threshold"] = [h.rstrip(":") for h in how]
    return out
