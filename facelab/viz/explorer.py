"""Operating-point explorer: move the threshold and watch every group's error rates.

The audits ``02_verification_demographics`` and ``03_one_to_many_search`` compute every
score once. This module keeps those scores sorted per group (:class:`RateCells`) so the
error rates at *any* threshold are a binary search away: no model runs, no score is
recomputed. In JupyterLab :meth:`OperatingPointExplorer.show` displays an ipywidgets
slider on the threshold (and, in ``02``, on the target FMR, on a log scale) that redraws
the rates by group in place; run headless (papermill, nbval, an HTML export) it draws a
static figure at three operating points instead.

The callback logic is plain functions and methods (:meth:`RateCells.at`,
:func:`threshold_for_fmr`, :meth:`OperatingPointExplorer.table`), tested without a
browser.

Intervals here are binomial (Wilson, 95%), treating comparisons as independent: for 1:1
impostor pairs they are narrower than the subject-clustered intervals of the notebooks'
tables, and say so in the figure. For 1:N searches every probe is a different person, so
Wilson is the interval the notebook uses too.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facelab.studies.verification import GENUINE, IMPOSTOR_WITHIN

__all__ = [
    "RateCell", "RateCells", "threshold_for_fmr", "verification_cells", "search_cells",
    "reference_scores", "verification_points", "interactive_frontend", "plot_rates",
    "rates_html",
    "OperatingPointExplorer", "verification_explorer", "search_explorer",
]

def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


#: Rates drawn on a log axis.
_LOG_RATES = ("FMR", "FPIR")
_ALL = "all groups"


# ----------------------------------------------------------------------------- counting
@dataclass(frozen=True)
class RateCell:
    """One group's scores, sorted, and which side of the threshold is an error.

    Attributes
    ----------
    rate : str
        ``"FMR"``, ``"FNMR"``, ``"FPIR"``, ``"FNIR"`` or ``"false candidates"``.
    source : str
        Dataset (or population) the scores come from.
    group : str
        Group label (``"all groups"`` for the pooled cell).
    scores : ndarray
        ``(n,)`` float64, ascending.
    error_at_or_above : bool
        True when ``score >= threshold`` is the error (false match, false positive,
        false candidate); False when ``score < threshold`` is (false non-match, miss).
    """

    rate: str
    source: str
    group: str
    scores: np.ndarray
    error_at_or_above: bool

    def count(self, threshold: float) -> int:
        """Errors at ``threshold``: one binary search.

        Parameters
        ----------
        threshold : float
            Decision threshold, in the scores' units (a similarity).

        Returns
        -------
        int
            Scores ``>= threshold`` when :attr:`error_at_or_above`, else scores
            ``< threshold``.
        """
        i = int(np.searchsorted(self.scores, threshold, side="left"))
        return self.scores.size - i if self.error_at_or_above else i


def _wilson(k: np.ndarray, n: np.ndarray, z: float = 1.959963984540054
            ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval, vectorised (the same numbers as
    :func:`facelab.metrics.intervals.binomial_ci` with ``method="wilson"``)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == n, 1.0, high)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


class RateCells:
    """Sorted scores per (rate, source, group): error counts and rates at any threshold.

    Parameters
    ----------
    cells
        The cells; the order is kept in every table.
    """

    def __init__(self, cells: Sequence[RateCell]):
        self.cells = list(cells)
        self._n = np.array([c.scores.size for c in self.cells], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def score_range(self) -> tuple[float, float]:
        """Lowest and highest score of every cell (finite scores only)."""
        finite = [c.scores[np.isfinite(c.scores)] for c in self.cells]
        finite = [f for f in finite if f.size]
        if not finite:
            return (0.0, 1.0)
        return (float(min(f[0] for f in finite)), float(max(f[-1] for f in finite)))

    def at(self, threshold: float) -> pd.DataFrame:
        """Every cell's error count and rate at ``threshold``, with a 95% Wilson interval.

        The interval is Wilson's score interval (Wilson 1927), vectorised; it gives the
        same numbers as :func:`facelab.metrics.intervals.binomial_ci`.

        Parameters
        ----------
        threshold : float
            Decision threshold, in the scores' units.

        Returns
        -------
        DataFrame
            ``rate, source, group, count, n, value, ci_low, ci_high, threshold``, one row
            per cell in order; ``value`` and the interval are NaN for an empty cell.
        """
        t = float(threshold)
        k = np.array([c.count(t) for c in self.cells], dtype=np.int64)
        low, high = _wilson(k, self._n)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(self._n > 0, k / np.maximum(self._n, 1), np.nan)
        return pd.DataFrame({
            "rate": [c.rate for c in self.cells], "source": [c.source for c in self.cells],
            "group": [c.group for c in self.cells], "count": k, "n": self._n,
            "value": value, "ci_low": low, "ci_high": high, "threshold": t})

    def at_points(self, points: Mapping[str, float]) -> pd.DataFrame:
        """:meth:`at` for each named threshold, stacked with an ``operating_point`` column.

        Parameters
        ----------
        points : mapping of str to float
            ``{operating point name: threshold}``.

        Returns
        -------
        DataFrame
            The :meth:`at` tables one after the other (``operating_point`` last); an
            empty table with :meth:`at`'s columns when ``points`` is empty.
        """
        frames = [self.at(t).assign(operating_point=name) for name, t in points.items()]
        return pd.concat(frames, ignore_index=True) if frames else self.at(0.0).iloc[:0]


def _cells(frame: pd.DataFrame, *, rate: str, source_col: str, group_col: str,
           score_col: str, error_at_or_above: bool, pooled: bool = True) -> list[RateCell]:
    out = []
    for source, part in frame.groupby(source_col, sort=True):
        groups = list(part.groupby(group_col, sort=True))
        for group, g in groups:
            out.append(RateCell(rate, str(source), str(group),
                                np.sort(g[score_col].to_numpy(np.float64)), error_at_or_above))
        if pooled and len(groups) > 1:
            out.append(RateCell(rate, str(source), _ALL,
                                np.sort(part[score_col].to_numpy(np.float64)),
                                error_at_or_above))
    return out


def threshold_for_fmr(sorted_scores: np.ndarray, target_fmr: float) -> tuple[float, int, int]:
    """The smallest observed score ``t`` with ``#{s >= t} / n <= target_fmr``, on
    impostor scores already sorted ascending, in O(log n).

    The same rule and result as :func:`facelab.metrics.biometric.threshold_at_fmr` (which
    sorts and scans every distinct score: too slow for a slider on millions of scores).

    Parameters
    ----------
    sorted_scores : numpy.ndarray
        ``(n,)`` impostor similarity scores, ascending (not checked).
    target_fmr : float
        Largest false match rate allowed, in (0, 1).

    Returns
    -------
    threshold : float
        The threshold (just above the highest score when no observed score qualifies).
    false_matches : int
        Scores ``>= threshold``.
    n : int
        Scores in all.

    Raises
    ------
    ValueError
        When ``target_fmr`` is outside (0, 1) or smaller than 1 / n (not resolvable).
    """
    s = np.asarray(sorted_scores, dtype=np.float64)
    n = s.size
    if not 0 < target_fmr < 1:
        raise ValueError(f"target FMR must be in (0, 1); got {target_fmr}")
    if n == 0 or target_fmr * n < 1 - 1e-9:
        need = math.ceil(1 / target_fmr - 1e-9)
        raise ValueError(f"FMR={target_fmr:g} needs at least {need:,} impostor comparisons; "
                         f"have {n:,}")
    kmax = math.floor(target_fmr * n * (1 + 1e-12))
    j = n - kmax
    t = s[j] if j < n else np.nextafter(s[-1], np.inf)
    if j < n and n - int(np.searchsorted(s, t, side="left")) > kmax:
        r = int(np.searchsorted(s, t, side="right"))
        t = s[r] if r < n else np.nextafter(s[-1], np.inf)
    k = n - int(np.searchsorted(s, t, side="left"))
    return float(t), k, n


# ----------------------------------------------------------------------------- 02 and 03
def verification_cells(scored: pd.DataFrame) -> RateCells:
    """Cells of one embedder's scored pairs (``02``): FMR of the impostor pairs and FNMR of
    the genuine pairs, per dataset and group (pairs whose two people are in different
    groups form a ``"<a> / <b>"`` cell), plus an ``"all groups"`` cell per dataset.

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`facelab.studies.verification.score_pairs` output (``kind``, ``source``,
        ``group_a``, ``group_b``, ``score``); every pair that is not genuine counts as an
        impostor pair.

    Returns
    -------
    RateCells
        ``FMR`` cells (error: score >= threshold) then ``FNMR`` cells (error: score <
        threshold), each sorted by source then group, with an ``"all groups"`` cell after
        the groups of a source that has more than one.

    Raises
    ------
    ValueError
        When a column named above is missing.
    """
    need = {"kind", "source", "group_a", "group_b", "score"}
    if missing := need - set(scored.columns):
        raise ValueError(f"scored pairs need columns {sorted(need)}; missing {sorted(missing)}")
    ga, gb = scored["group_a"].astype(str), scored["group_b"].astype(str)
    frame = scored.assign(cell=np.where(ga == gb, ga, ga + " / " + gb))
    gen = frame["kind"] == GENUINE
    cells = _cells(frame[~gen], rate="FMR", source_col="source", group_col="cell",
                   score_col="score", error_at_or_above=True)
    cells += _cells(frame[gen], rate="FNMR", source_col="source", group_col="cell",
                    score_col="score", error_at_or_above=False)
    return RateCells(cells)


def reference_scores(scored: pd.DataFrame, reference_group: str | None,
                     target_fmr: float | None = None) -> tuple[np.ndarray, str]:
    """The impostor scores a global threshold is set on, sorted, and their name: the
    reference group's within-group impostor pairs (pooled over datasets), or every
    group's when ``reference_group`` is None or too small for ``target_fmr`` (the rule of
    :func:`facelab.studies.verification.global_threshold`).

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`facelab.studies.verification.score_pairs` output; only rows of kind
        ``IMPOSTOR_WITHIN`` (both people in the same group) are used.
    reference_group : str or None
        The group whose within-group impostor pairs set the threshold.
    target_fmr : float, optional
        The FMR the threshold will be set at: the reference group needs at least
        ``ceil(1 / target_fmr)`` pairs (without it, one pair is enough).

    Returns
    -------
    scores : numpy.ndarray
        ``(n,)`` float64 impostor scores, ascending.
    name : str
        Which pairs they are, e.g. ``"group White (within-group pairs)"`` or
        ``"every group (within-group pairs)"``.
    """
    within = scored[scored["kind"] == IMPOSTOR_WITHIN]
    if reference_group is not None:
        ref = within.loc[within["group_a"] == reference_group, "score"].to_numpy(np.float64)
        need = 1 if target_fmr is None else math.ceil(1 / target_fmr - 1e-9)
        if ref.size >= need:
            return np.sort(ref), f"group {reference_group} (within-group pairs)"
    return np.sort(within["score"].to_numpy(np.float64)), "every group (within-group pairs)"


def verification_points(scored: pd.DataFrame, global_choice, default_choice, *,
                        target_fmr: float, reference_group: str | None) -> dict[str, float]:
    """Three operating points for the static view of ``02``: the model's default
    threshold, the global threshold (``target_fmr``), and a ten times stricter one
    (FMR ``target_fmr / 10`` on the same reference pairs) or, when the data cannot
    resolve it, a ten times looser one. Without a default (``default_choice`` None, e.g.
    imported scores that declare none) both the stricter and the looser one, where the
    data resolve them.

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`facelab.studies.verification.score_pairs` output.
    global_choice : float or facelab.metrics.biometric.ThresholdChoice
        The global threshold the notebook set at ``target_fmr``.
    default_choice : float or facelab.metrics.biometric.ThresholdChoice or None
        The model's default threshold (from its model card), or None.
    target_fmr : float
        FMR the global threshold was set at, in (0, 1).
    reference_group : str or None
        Reference group of the global threshold (:func:`reference_scores`).

    Returns
    -------
    dict of str to float
        ``{name: threshold}``, at most three points, in the order default, global,
        stricter, looser (the last two named ``"FMR <target>"``).
    """
    ref, _ = reference_scores(scored, reference_group, target_fmr)
    points = {} if default_choice is None else {"model default": float(default_choice)}
    points[f"global (FMR {target_fmr:g})"] = float(global_choice)
    for factor in (0.1, 10.0):
        target = target_fmr * factor
        if len(points) < 3 and 0 < target < 1 and ref.size and target * ref.size >= 1 - 1e-9:
            points[f"FMR {target:g}"] = threshold_for_fmr(ref, target)[0]
    return points


def search_cells(run) -> RateCells:
    """Cells of one embedder's searches (``03``), per probe group:

    * ``FPIR``: non-mated searches whose best candidate scores >= threshold;
    * ``FNIR``: mated searches whose mate is not the rank-1 candidate with a score >=
      threshold (rank-1 FNIR, as :func:`facelab.studies.search.search_outcomes`);
    * ``false candidates``: candidates returned for non-mated searches at or above the
      threshold, out of every candidate returned (``k`` per search).

    Parameters
    ----------
    run : facelab.studies.search.SearchRun
        Its ``results`` have one row per returned candidate (``probe``, ``mated``,
        ``score``, ``probe_group``, ``candidate_rank``, ``is_mate``); a search that
        returned nothing is one row scored ``-inf``.

    Returns
    -------
    RateCells
        ``FPIR`` cells, ``FNIR`` cells (only when there are mated searches; a mated
        search without a rank-1 mate scores ``-inf``, an error at any threshold) and
        ``false candidates`` cells, by probe group (sorted), with an ``"all groups"``
        cell when there is more than one group.
    """
    res = run.results
    non, mat = res[~res["mated"]], res[res["mated"]]
    cells: list[RateCell] = []
    # best score per search; a search that returned nothing (imported lists) is one row
    # scored -inf: it counts as a search, never as a false match
    top = non.groupby("probe", sort=True).agg(score=("score", "max"),
                                              probe_group=("probe_group", "first"))
    cells += _cells(top.assign(src="non-mated searches"), rate="FPIR", source_col="src",
                    group_col="probe_group", score_col="score", error_at_or_above=True)
    if len(mat):
        hit = mat[(mat["candidate_rank"] == 1) & mat["is_mate"].astype(bool)]
        hit = hit.groupby("probe")["score"].max()
        probes = mat.drop_duplicates("probe")[["probe", "probe_group"]]
        mate_score = hit.reindex(probes["probe"]).to_numpy(np.float64)
        probes = probes.assign(mate_score=np.nan_to_num(mate_score, nan=-np.inf),
                               src="mated searches")
        cells += _cells(probes, rate="FNIR", source_col="src", group_col="probe_group",
                        score_col="mate_score", error_at_or_above=False)
    returned = non[np.isfinite(non["score"].to_numpy(np.float64))]
    cells += _cells(returned.assign(src="candidates of non-mated searches"),
                    rate="false candidates", source_col="src", group_col="probe_group",
                    score_col="score", error_at_or_above=True)
    return RateCells(cells)


# ----------------------------------------------------------------------------- figures
def plot_rates(table: pd.DataFrame, *, title: str = "", note: str = ""):
    """Rates by group at one or several operating points: one panel per rate, one line
    per ``source · group``, one marker per operating point with its 95% interval (log
    axis for FMR and FPIR; a zero is drawn hollow at the left edge).

    Parameters
    ----------
    table : pandas.DataFrame
        :meth:`RateCells.at` or :meth:`RateCells.at_points` output.
    title : str
        Figure title (``"error rates by group"`` when empty).
    note : str
        Said under the title (how the intervals were computed); a note on hollow markers
        is added when a rate is 0.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per rate (5.2 inches wide each).
    """
    import matplotlib.pyplot as plt

    rates = list(pd.unique(table["rate"]))
    points = list(pd.unique(table["operating_point"])) if "operating_point" in table \
        else [None]
    sizes = [table[table["rate"] == r].groupby(["source", "group"], sort=False).ngroups
             for r in rates] or [1]
    fig, axes = plt.subplots(1, max(1, len(rates)), squeeze=False,
                             figsize=(5.2 * max(1, len(rates)), 0.26 * max(sizes) + 2.0))
    width = 0.6 / max(1, len(points))
    for ax, rate in zip(axes[0], rates, strict=False):
        part = table[table["rate"] == rate]
        keys = list(dict.fromkeys(zip(part["source"], part["group"], strict=True)))
        y_of = {k: i for i, k in enumerate(keys)}
        log = rate in _LOG_RATES
        positive = part.loc[part["value"] > 0, "value"]
        floor = float(positive.min()) / 3 if len(positive) else 1e-4
        for j, point in enumerate(points):
            sub = part if point is None else part[part["operating_point"] == point]
            y = np.array([y_of[k] for k in zip(sub["source"], sub["group"], strict=True)])
            y = y + (j - (len(points) - 1) / 2) * width
            v = sub["value"].to_numpy(float)
            zero = v == 0
            shown = np.where(zero & log, floor, v)
            lo = np.clip(shown - sub["ci_low"].to_numpy(float), 0, None)
            hi = np.clip(sub["ci_high"].to_numpy(float) - shown, 0, None)
            color = f"C{j}"
            thr = sub["threshold"].iloc[0] if len(sub) else math.nan
            label = f"{point}: {thr:.3f}" if point is not None else f"threshold {thr:.3f}"
            ax.errorbar(shown[~zero], y[~zero], xerr=[lo[~zero], hi[~zero]], fmt="o",
                        ms=4, color=color, ecolor=color, elinewidth=1, capsize=2,
                        label=label)
            if zero.any():
                ax.plot(shown[zero], y[zero], "o", mfc="none", ms=4, color=color,
                        label="_zero")
        several = len(set(part["source"])) > 1
        ax.set_yticks(range(len(keys)), [f"{s} · {g}" if several else str(g)
                                         for s, g in keys], fontsize=7)
        ax.set_ylim(len(keys) - 0.5, -0.5)  # first cell on top
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(rate + (" (share of returned candidates)" if rate == "false candidates"
                              else ""))
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.set_title(rate if several or not keys else f"{rate}: {keys[0][0]}", fontsize=9)
    for ax in axes[0][len(rates):]:
        ax.axis("off")
    head = title or "error rates by group"
    if (table["value"] == 0).any():
        note = (note + "; " if note else "") + "hollow marker: no error (0 on a log axis)"
    fig.suptitle(head + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    return fig


def _bar_svg(v: float, lo: float, hi: float, x, *, width: int = 240, height: int = 12,
             color: str = "#4c72b0") -> str:
    """One row's bar (the rate) and whisker (its interval) as a small inline SVG."""
    if not np.isfinite(v):
        return ""
    xv, xl, xh = x(v), x(lo if np.isfinite(lo) else v), x(hi if np.isfinite(hi) else v)
    mid = height / 2
    return (f'<svg width="{width}" height="{height}" style="vertical-align:middle">'
            f'<rect x="0" y="2" width="{xv:.1f}" height="{height - 4}" fill="{color}"/>'
            f'<line x1="{xl:.1f}" x2="{xh:.1f}" y1="{mid}" y2="{mid}" stroke="black"/>'
            f'<line x1="{xl:.1f}" x2="{xl:.1f}" y1="2" y2="{height - 2}" stroke="black"/>'
            f'<line x1="{xh:.1f}" x2="{xh:.1f}" y1="2" y2="{height - 2}" stroke="black"/>'
            "</svg>")


def rates_html(table: pd.DataFrame, *, width: int = 240) -> str:
    """A rates table (:meth:`RateCells.at`) as HTML with an inline bar and 95% interval
    whisker per row, one block per rate (log axis for FMR and FPIR, from the smallest
    non-zero value's decade to 1; linear from 0 otherwise). Built as text in a few
    milliseconds, so a slider can redraw it on every move.

    Parameters
    ----------
    table : pandas.DataFrame
        :meth:`RateCells.at` output (``rate, source, group, count, n, value, ci_low,
        ci_high``).
    width : int
        Width of each row's bar in pixels.

    Returns
    -------
    str
        An HTML ``<table>``: per row the label, ``count/n``, the rate with its interval
        (``n/a`` for an empty cell) and an inline SVG bar; labels are HTML-escaped.
    """
    import html as _html

    parts = ['<table style="border-collapse:collapse;font-size:12px">']
    for rate, part in table.groupby("rate", sort=False):
        log = rate in _LOG_RATES
        vals = part[["value", "ci_low", "ci_high"]].to_numpy(float)
        if log:
            pos = vals[np.isfinite(vals) & (vals > 0)]
            lo_dec = math.floor(math.log10(pos.min())) if pos.size else -4
            lo_dec = max(lo_dec, -7)

            def x(v, lo_dec=lo_dec):
                v = max(float(v), 10.0 ** lo_dec)
                return width * (math.log10(v) - lo_dec) / -lo_dec if lo_dec < 0 else 0.0
            axis = f"log scale 1e{lo_dec} to 1"
        else:
            top = np.nanmax(vals) if np.isfinite(vals).any() else 1.0
            top = min(1.0, max(top * 1.1, 1e-3))

            def x(v, top=top):
                return width * min(max(float(v), 0.0), top) / top
            axis = f"linear scale 0 to {top:.3g}"
        several = part["source"].nunique() > 1
        head = rate if several else f"{rate} · {part['source'].iloc[0]}"
        parts.append(f'<tr><th colspan="4" style="text-align:left;padding-top:6px">'
                     f"{_html.escape(str(head))} <span style='font-weight:normal'>"
                     f"(bars: {axis}; whisker: 95% interval)</span></th></tr>")
        for r in part.itertuples(index=False):
            label = f"{r.source} · {r.group}" if several else f"{r.group}"
            bold = "font-weight:bold;" if r.group == _ALL else ""
            value = (f"{r.value:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                     if np.isfinite(r.value) else "n/a")
            parts.append(
                f'<tr style="{bold}"><td style="padding-right:8px">{_html.escape(label)}</td>'
                f'<td style="text-align:right;padding-right:8px">{int(r.count):,}/{int(r.n):,}'
                f'</td><td style="padding-right:8px">{value}</td>'
                f"<td>{_bar_svg(r.value, r.ci_low, r.ci_high, x, width=width)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


# ----------------------------------------------------------------------------- explorer
def interactive_frontend() -> bool:
    """True when the code runs in a kernel that a notebook front end (JupyterLab,
    Jupyter Notebook, VS Code) drives, so widgets can render; False under papermill,
    nbval, nbconvert or plain Python.

    ``FACELAB_EXPLORER=widget`` or ``=static`` overrides the guess. The guess is the
    ``JPY_SESSION_NAME`` variable that jupyter_server sets for the kernels it starts for
    a notebook (headless runners start kernels without it), or VS Code's
    ``__vsc_ipynb_file__``.

    Returns
    -------
    bool
        True when widgets can be shown.
    """
    forced = os.environ.get("FACELAB_EXPLORER", "").strip().lower()
    if forced in ("widget", "static"):
        return forced == "widget"
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    return bool(os.environ.get("JPY_SESSION_NAME")) or "__vsc_ipynb_file__" in shell.user_ns


class OperatingPointExplorer:
    """Error rates by group at a threshold chosen with a slider.

    Parameters
    ----------
    cells
        ``{model: RateCells}``: the cached, sorted scores of each model.
    points
        ``{model: {name: threshold}}``: the operating points the notebook reported (the
        static view draws these; the widget starts at the first).
    reference
        ``{model: (sorted impostor scores, name)}``: when given, the widget also offers a
        target-FMR slider (log scale) that sets the threshold on these scores, as the
        notebook's global threshold was set.
    title
        What the figure is about.
    interval_note
        Said under the title (how the intervals were computed).

    Raises
    ------
    ValueError
        When ``cells`` is empty.
    """

    def __init__(self, cells: Mapping[str, RateCells], points: Mapping[str, Mapping[str, float]],
                 *, reference: Mapping[str, tuple[np.ndarray, str]] | None = None,
                 title: str = "", interval_note: str = ""):
        if not cells:
            raise ValueError("no scores to explore")
        self.cells = dict(cells)
        self.points = {m: dict(points.get(m, {})) for m in self.cells}
        self.reference = dict(reference or {})
        self.title = title
        self.interval_note = interval_note
        self.timings: list[dict] = []
        self._widget = None

    @property
    def models(self) -> list[str]:
        return list(self.cells)

    # --- callback logic: plain methods, no widgets
    def table(self, model: str, threshold: float) -> pd.DataFrame:
        """The rates of ``model``'s groups at ``threshold`` (:meth:`RateCells.at`).

        Parameters
        ----------
        model : str
            One of :attr:`models`.
        threshold : float
            Decision threshold, in the model's score units.

        Returns
        -------
        DataFrame
            ``rate, source, group, count, n, value, ci_low, ci_high, threshold``.
        """
        return self.cells[model].at(threshold)

    def threshold_for_fmr(self, model: str, target_fmr: float) -> tuple[float, str]:
        """The threshold for ``target_fmr`` on ``model``'s reference impostor scores, and
        how it was set.

        Parameters
        ----------
        model : str
            One of :attr:`models`.
        target_fmr : float
            Largest FMR allowed, in (0, 1).

        Returns
        -------
        threshold : float
            :func:`threshold_for_fmr` on the reference scores.
        how : str
            How it was set: target, number of impostor comparisons, which pairs, and the
            FMR achieved with its count.

        Raises
        ------
        ValueError
            When ``model`` has no reference scores, or the target cannot be resolved
            (:func:`threshold_for_fmr`).
        """
        if model not in self.reference:
            raise ValueError(f"{model}: no reference impostor scores to set a target FMR on")
        scores, name = self.reference[model]
        t, k, n = threshold_for_fmr(scores, target_fmr)
        return t, (f"set at FMR<={target_fmr:g} on {n:,} impostor comparisons of {name} "
                   f"(achieved {k / n:.3g}, {k:,}/{n:,})")

    def static_table(self, model: str) -> pd.DataFrame:
        """The rates at every operating point of ``model`` (the headless view).

        Parameters
        ----------
        model : str
            One of :attr:`models`.

        Returns
        -------
        DataFrame
            :meth:`RateCells.at_points` at ``points[model]``.
        """
        return self.cells[model].at_points(self.points[model])

    def static_figure(self, model: str):
        """The headless view: rates by group at ``model``'s operating points.

        Parameters
        ----------
        model : str
            One of :attr:`models`.

        Returns
        -------
        matplotlib.figure.Figure
            :func:`plot_rates` of :meth:`static_table`.
        """
        return plot_rates(self.static_table(model),
                          title=f"{model}: {self.title}" if self.title else model,
                          note=self.interval_note)

    # --- the widget
    def widget(self):
        """Build the ipywidgets view (model menu, threshold slider, target-FMR slider on a
        log scale when reference scores exist, and the rates by group as an HTML table
        with a bar and interval per group (:func:`rates_html`), replaced in place). Each
        change calls :meth:`update`; its timings are appended to :attr:`timings`.

        The threshold starts at the first model's first operating point (the middle of
        its scores when it has none); the target-FMR slider goes down to about ``1 / n``
        of the reference scores.

        Returns
        -------
        ipywidgets.VBox
            The controls and the rates table.
        """
        import ipywidgets as W

        first = self.models[0]
        self._model = W.Dropdown(options=self.models, value=first, description="model")
        self._thr = W.FloatSlider(description="threshold", continuous_update=False,
                                  readout_format=".4f", layout=W.Layout(width="520px"))
        self._fmr = W.FloatLogSlider(description="target FMR", base=10, min=-6, max=-0.31,
                                     step=0.05, value=1e-3, continuous_update=False,
                                     readout_format=".1e", layout=W.Layout(width="520px"))
        self._how = W.HTML()
        self._rates = W.HTML()
        self._setting = False
        self._configure(first)
        self._model.observe(lambda ch: self._on_model(ch["new"]), names="value")
        self._thr.observe(lambda ch: self._on_threshold(ch["new"]), names="value")
        self._fmr.observe(lambda ch: self._on_fmr(ch["new"]), names="value")
        controls = [self._model] if len(self.models) > 1 else []
        controls += [self._thr, self._fmr, self._how]
        self._widget = W.VBox(controls + [self._rates])
        self.update()
        return self._widget

    def _configure(self, model: str) -> None:
        lo, hi = self.cells[model].score_range
        start = next(iter(self.points[model].values()), (lo + hi) / 2)
        self._setting = True
        self._thr.min, self._thr.max = -1e9, 1e9  # widen first: min must stay <= max
        self._thr.min, self._thr.max = lo, max(hi, lo + 1e-6)
        self._thr.step = max((hi - lo) / 2000, 1e-6)
        self._thr.value = float(np.clip(start, lo, hi))
        has_ref = model in self.reference and self.reference[model][0].size > 0
        self._fmr.layout.display = None if has_ref else "none"
        if has_ref:
            n = self.reference[model][0].size
            self._fmr.min = round(math.log10(1 / n) + 0.05, 2)
        first = next(iter(self.points[model]), None)
        self._how_text = f"operating point '{first}'" if first else "middle of the scores"
        self._setting = False

    def _describe_points(self, model: str) -> str:
        return "; ".join(f"{k} {v:.4f}" for k, v in self.points[model].items())

    def _on_model(self, model: str) -> None:
        self._configure(model)
        self.update()

    def _on_threshold(self, value: float) -> None:
        if not self._setting:
            self._how_text = "threshold set by hand"
            self.update()

    def _on_fmr(self, target: float) -> None:
        if self._setting:
            return
        model = self._model.value
        try:
            t, how = self.threshold_for_fmr(model, float(target))
        except ValueError as exc:
            self._how.value = f"<b>{exc}</b>"
            return
        self._setting = True
        self._thr.value = float(np.clip(t, self._thr.min, self._thr.max))
        self._setting = False
        self._how_text = how
        self.update()

    def update(self) -> dict:
        """Recompute the rates at the slider's threshold and redraw them in place.

        The table is also kept as ``last_table``.

        Returns
        -------
        dict
            The timing of this update: ``model``, ``threshold``, and in seconds
            ``compute`` (the rates), ``draw`` (the HTML table with its bars, set on the
            widget) and ``total``.

        Raises
        ------
        RuntimeError
            When :meth:`widget` has not been built yet.
        """
        if self._widget is None and not hasattr(self, "_thr"):
            raise RuntimeError("build the widget first (explorer.widget())")
        start = time.perf_counter()
        model, t = self._model.value, float(self._thr.value)
        table = self.table(model, t)
        computed = time.perf_counter()
        self._how.value = (f"<b>{_escape(model)}</b>: {_escape(self.title)} at threshold "
                           f"<b>{t:.4f}</b> ({_escape(self._how_text)})<br>"
                           f"operating points: {_escape(self._describe_points(model))}<br>"
                           f"<i>{_escape(self.interval_note)}</i>")
        self._rates.value = rates_html(table)
        end = time.perf_counter()
        timing = {"model": model, "threshold": t, "compute": computed - start,
                  "draw": end - computed, "total": end - start}
        self.timings.append(timing)
        self.last_table = table
        return timing

    def set_threshold(self, value: float) -> None:
        """Move the threshold slider (as a user would); the view updates.

        Call :meth:`widget` first. The slider clips the value to its range.

        Parameters
        ----------
        value : float
            The threshold, in the model's score units.
        """
        self._thr.value = float(value)

    def set_target_fmr(self, value: float) -> None:
        """Move the target-FMR slider (as a user would); the threshold follows.

        Call :meth:`widget` first. A target the reference scores cannot resolve leaves
        the threshold where it is and shows the reason.

        Parameters
        ----------
        value : float
            Target FMR, in (0, 1).
        """
        self._fmr.value = float(value)

    # --- both modes
    def show(self, recorder=None, *, name: str = "threshold_explorer", mode: str = "auto"):
        """Display the explorer: the widget in a notebook front end, otherwise (papermill,
        nbval, HTML export) a static figure per model at its operating points, recorded
        as ``figures/<name>_<model>.png`` with the rates as table ``<name>``.

        Without ipywidgets installed the widget mode falls back to the static view (and
        says so).

        Parameters
        ----------
        recorder : facelab.report.record.Recorder, optional
            Where the static view is recorded; without one the figures are only
            displayed.
        name : str
            Figure stem and table name of the static view.
        mode : {"auto", "widget", "static"}
            ``"auto"`` asks :func:`interactive_frontend`.

        Returns
        -------
        ipywidgets.VBox or pandas.DataFrame
            The widget, or the static table (:meth:`static_table` of every model, with a
            ``model`` column).

        Raises
        ------
        ValueError
            When ``mode`` is not one of the three.
        """
        if mode not in ("auto", "widget", "static"):
            raise ValueError(f"mode must be 'auto', 'widget' or 'static'; got {mode!r}")
        use_widget = interactive_frontend() if mode == "auto" else mode == "widget"
        if use_widget:
            try:
                import ipywidgets  # noqa: F401
            except ImportError:
                print("ipywidgets is not installed: showing the static view instead.")
            else:
                from IPython.display import display

                w = self.widget()
                display(w)
                return w
        frames = []
        for model in self.models:
            fig = self.static_figure(model)
            if recorder is not None:
                recorder.figure(f"{name}_{model}", fig)
            else:
                from IPython.display import display

                display(fig)
            frames.append(self.static_table(model).assign(model=model))
        table = pd.concat(frames, ignore_index=True)
        if recorder is not None:
            recorder.table(name, table)
        return table


_PAIR_NOTE = ("95% Wilson intervals treating pairs as independent (narrower than the "
              "subject-clustered intervals of the tables above)")
_SEARCH_NOTE = "95% Wilson intervals (every probe is a different person)"


def verification_explorer(scored: Mapping[str, pd.DataFrame],
                          thresholds: Mapping[str, object], defaults: Mapping[str, object],
                          *, target_fmr: float, reference_group: str | None
                          ) -> OperatingPointExplorer:
    """The explorer of ``02``: FMR and FNMR by dataset and group for each embedder, a
    target-FMR slider set on the same reference impostor pairs as the global threshold,
    and three operating points for the static view (:func:`verification_points`;
    ``defaults`` may lack a model that has no default threshold).

    Parameters
    ----------
    scored : mapping of str to pandas.DataFrame
        ``{embedder: scored pairs}`` (:func:`facelab.studies.verification.score_pairs`).
    thresholds : mapping of str to float or ThresholdChoice
        ``{embedder: global threshold}``; needs every embedder of ``scored``.
    defaults : mapping of str to float or ThresholdChoice
        ``{embedder: model default threshold}``.
    target_fmr : float
        FMR the global thresholds were set at, in (0, 1).
    reference_group : str or None
        Group whose within-group impostor pairs set the global threshold.

    Returns
    -------
    OperatingPointExplorer
        With reference scores, so the widget offers the target-FMR slider.
    """
    cells, points, reference = {}, {}, {}
    for model, s in scored.items():
        cells[model] = verification_cells(s)
        points[model] = verification_points(s, thresholds[model], defaults.get(model),
                                            target_fmr=target_fmr,
                                            reference_group=reference_group)
        reference[model] = reference_scores(s, reference_group, target_fmr)
    return OperatingPointExplorer(cells, points, reference=reference,
                                  title="FMR and FNMR by group", interval_note=_PAIR_NOTE)


def search_explorer(runs: Mapping[str, object], choices: Mapping[str, Mapping[str, object]]
                    ) -> OperatingPointExplorer:
    """The explorer of ``03``: FPIR, rank-1 FNIR and false candidates by probe group for
    each embedder, with the notebook's operating points (threshold slider only).

    Parameters
    ----------
    runs : mapping of str to facelab.studies.search.SearchRun
        ``{embedder: search run}``.
    choices : mapping of str to mapping of str to float or ThresholdChoice
        ``{embedder: {operating point: threshold}}``; needs every embedder of ``runs``.

    Returns
    -------
    OperatingPointExplorer
        Without reference scores (no target-FMR slider).
    """
    cells = {m: search_cells(run) for m, run in runs.items()}
    points = {m: {k: float(v) for k, v in choices[m].items()} for m in runs}
    return OperatingPointExplorer(cells, points, title="FPIR, FNIR and false candidates "
                                  "by probe group", interval_note=_SEARCH_NOTE)
