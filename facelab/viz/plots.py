"""Figures for the audit notebooks (seaborn / matplotlib). Plotting only: every function
takes results computed by :mod:`facelab.metrics` and returns the matplotlib ``Axes`` it
drew on. Nothing here calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm

from facelab.metrics.biometric import ThresholdChoice
from facelab.metrics.groups import GroupedMetric

__all__ = ["plot_group_rates", "plot_det", "plot_fmr_heatmap", "plot_confusion"]

_NEED_COLUMNS = "{what} needs columns {need}: missing {missing}; the table has {have}"
_BAD_SCALE = "scale must be 'log' or 'probit'; got {got!r}"
SMALL_CELL_COLOR = "0.75"


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _cell_labels(index: pd.Index) -> list[str]:
    if isinstance(index, pd.MultiIndex):
        return [" x ".join(str(v) for v in key) for key in index]
    return [str(v) for v in index]


def plot_group_rates(
    result: GroupedMetric | pd.DataFrame,
    *,
    ax: Axes | None = None,
    log: bool = False,
    show_overall: bool = True,
    title: str | None = None,
    color: str | None = None,
) -> Axes:
    """Per-group values as horizontal bars with interval whiskers and ``count/n`` labels.

    ``result`` is a :class:`~facelab.metrics.groups.GroupedMetric` or a DataFrame with
    columns ``value``, ``ci_low``, ``ci_high``, ``n`` (and optionally ``count``,
    ``small_cell``). Small cells are drawn in grey and marked "(small)". The overall
    value is a dashed vertical line.

    Parameters
    ----------
    result : facelab.metrics.groups.GroupedMetric or pandas.DataFrame
        One row per group cell (a MultiIndex is labelled ``"a x b"``). Whiskers run from
        ``ci_low`` to ``ci_high``; each bar is labelled ``count/n`` (``n=...`` without a
        ``count`` column).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure (6.5 inches wide, 0.45 inch per row) when omitted.
    log : bool
        Log x axis.
    show_overall : bool
        Draw the overall value (only a ``GroupedMetric`` carries one).
    title : str, optional
        Axes title; defaults to the metric name. For a DataFrame it also labels the
        x axis (``"value"`` when omitted).
    color : str, optional
        Bar colour of cells that are not small; seaborn's first palette colour by default.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        When ``value``, ``ci_low``, ``ci_high`` or ``n`` is missing (the message lists
        the missing columns and those the table has).
    """
    if isinstance(result, GroupedMetric):
        table, overall, name = result.by_group, result.overall, result.name
    else:
        table, overall, name = result, None, title or "value"
    need = ["value", "ci_low", "ci_high", "n"]
    if missing := [c for c in need if c not in table.columns]:
        raise ValueError(_NEED_COLUMNS.format(what="plot_group_rates", need=need, missing=missing,
                                               have=list(table.columns)))
    labels = _cell_labels(table.index)
    small = table["small_cell"].to_numpy(bool) if "small_cell" in table else np.zeros(
        len(table), bool
    )
    ax = _axes(ax, (6.5, 0.45 * len(table) + 1.5))
    base = color or sns.color_palette()[0]
    colors = [SMALL_CELL_COLOR if s else base for s in small]
    y = np.arange(len(table))
    values = table["value"].to_numpy(float)
    ax.barh(y, values, color=colors, height=0.6)
    err = np.vstack([values - table["ci_low"].to_numpy(float),
                     table["ci_high"].to_numpy(float) - values])
    ax.errorbar(values, y, xerr=np.clip(err, 0, None), fmt="none", ecolor="black",
                capsize=3, lw=1)
    for yi, (_, row), s in zip(y, table.iterrows(), small, strict=True):
        n = int(row["n"])
        text = f"{int(row['count']):,}/{n:,}" if "count" in row else f"n={n:,}"
        ax.annotate(text + (" (small)" if s else ""), (row["ci_high"], yi),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    if show_overall and overall is not None:
        ax.axvline(float(overall["value"]), ls="--", color="0.3", lw=1, label="overall")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(name)
    ax.set_title(title or name)
    return ax


def _probit(p: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(p, 1e-12, 1 - 1e-12))


def plot_det(
    curves: Mapping[str, pd.DataFrame] | pd.DataFrame,
    *,
    threshold: float | ThresholdChoice | None = None,
    scale: str = "log",
    ax: Axes | None = None,
    title: str = "DET",
) -> Axes:
    """DET curves (FNMR against FMR), one line per group, on log (or probit) axes.

    Parameters
    ----------
    curves : mapping of group -> DataFrame, or one DataFrame
        Output(s) of :func:`facelab.metrics.biometric.det_curve` (columns ``threshold``,
        ``fmr``, ``fnmr``); a single DataFrame may carry a ``group`` column.
    threshold : float or ThresholdChoice, optional
        The operating threshold: marked on every curve with an ``x``.
    scale : {"log", "probit"}
        Log axes (points with a zero rate are not drawn), or normal-deviate (probit) axes
        (rates clipped to ``[1e-12, 1 - 1e-12]``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new 6 x 5 inch figure when omitted.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        When ``scale`` is neither ``"log"`` nor ``"probit"``, or a curve lacks one of the
        columns ``threshold``, ``fmr``, ``fnmr`` (the message names the curve, the missing
        columns and those it has).

    Notes
    -----
    The threshold marker sits at the first row whose threshold is at or above it
    (the curve's thresholds are ascending), or on the last row when it is above them
    all.
    """
    if scale not in ("log", "probit"):
        raise ValueError(_BAD_SCALE.format(got=scale))
    if isinstance(curves, pd.DataFrame):
        curves = (
            {str(k): v for k, v in curves.groupby("group", sort=True)}
            if "group" in curves.columns
            else {"all": curves}
        )
    ax = _axes(ax, (6, 5))
    n_curves = max(1, len(curves))
    # distinct colours for every curve: the default palette repeats after 10
    palette = sns.color_palette("tab20" if n_curves > 10 else None, n_colors=n_curves)
    t = None if threshold is None else float(threshold)
    for color, (name, det) in zip(palette, curves.items(), strict=False):
        need = ["threshold", "fmr", "fnmr"]
        if missing := [c for c in need if c not in det.columns]:
            raise ValueError(_NEED_COLUMNS.format(what=f"plot_det (curve {name!r})", need=need,
                                               missing=missing, have=list(det.columns)))
        fmr, fnmr = det["fmr"].to_numpy(float), det["fnmr"].to_numpy(float)
        keep = (fmr > 0) & (fnmr > 0) if scale == "log" else np.ones(fmr.size, bool)
        x, y = (fmr, fnmr) if scale == "log" else (_probit(fmr), _probit(fnmr))
        ax.plot(x[keep], y[keep], color=color, lw=1.5, label=str(name))
        if t is not None:
            i = int(np.searchsorted(det["threshold"].to_numpy(float), t, side="left"))
            i = min(i, len(det) - 1)
            px, py = x[i], y[i]
            ax.plot([px], [py], marker="x", ms=9, mew=2, color=color, ls="none",
                    label="_threshold")
    if scale == "log":
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ticks = np.array([1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
        ax.set_xticks(_probit(ticks), [f"{v:g}" for v in ticks])
        ax.set_yticks(_probit(ticks), [f"{v:g}" for v in ticks])
    ax.set_xlabel("FMR (false match rate)")
    ax.set_ylabel("FNMR (false non-match rate)")
    if t is not None:
        ax.plot([], [], marker="x", ls="none", color="black", label=f"threshold {t:.4g}")
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def plot_fmr_heatmap(
    matrix: pd.DataFrame,
    *,
    ax: Axes | None = None,
    annot: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str = "Impostor FMR by probe and candidate group",
) -> Axes:
    """Cross-group impostor FMR (rows probe group, columns candidate group) on a log colour
    scale, as in NIST FRVT Part 3 (NISTIR 8280, demographic effects). Cells with FMR 0 are
    shown blank and annotated "0"; NaN cells blank without a label.

    Parameters
    ----------
    matrix : pandas.DataFrame
        Table of FMR values in [0, 1], index probe group, columns candidate
        group (e.g. ``DemographicDifferentials.fmr_matrix`` of
        :mod:`facelab.metrics.groups`).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure sized to the table when omitted.
    annot : bool
        Print each cell's FMR (``1.2e-04``) in it.
    vmin, vmax : float, optional
        Colour-scale limits; by default the smallest and largest positive FMR (``1e-6``
        and 1 when no cell is positive).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    values = matrix.astype(float)
    positive = values.to_numpy()[values.to_numpy() > 0]
    lo = vmin if vmin is not None else (positive.min() if positive.size else 1e-6)
    hi = vmax if vmax is not None else (positive.max() if positive.size else 1.0)
    hi = max(hi, lo * 1.0001)
    ax = _axes(ax, (1.1 * len(values.columns) + 2.5, 0.9 * len(values) + 1.5))
    labels = values.map(lambda v: "0" if v == 0 else ("" if np.isnan(v) else f"{v:.1e}"))
    sns.heatmap(
        values.where(values > 0),
        ax=ax,
        norm=LogNorm(vmin=lo, vmax=hi),
        cmap="viridis",
        annot=labels if annot else False,
        fmt="",
        annot_kws={"fontsize": 8},
        cbar_kws={"label": "FMR (log scale)"},
        linewidths=0.5,
        linecolor="white",
    )
    if annot:  # seaborn does not annotate masked cells: label the zero cells ourselves
        for i, j in zip(*np.nonzero(values.to_numpy() == 0), strict=True):
            ax.text(j + 0.5, i + 0.5, "0", ha="center", va="center", fontsize=8)
    ax.set_xlabel("candidate group")
    ax.set_ylabel("probe group")
    ax.set_title(title)
    return ax


def plot_confusion(
    cm: pd.DataFrame,
    *,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str = "Confusion matrix",
) -> Axes:
    """Confusion matrix heatmap (rows true, columns predicted). With ``normalize`` each row
    is divided by its total (recall on the diagonal) and the counts are printed too.

    Parameters
    ----------
    cm : pandas.DataFrame
        Counts, index the true labels, columns the predicted labels (index and column
        names, if set, label the axes).
    normalize : bool
        Colour by share of the row total (rows with total 0 stay blank) and print the
        share above the count; otherwise colour and print counts.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure sized to the matrix when omitted.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    counts = cm.astype(float)
    totals = counts.sum(axis=1).replace(0, np.nan)
    shown = counts.div(totals, axis=0) if normalize else counts
    ax = _axes(ax, (0.8 * len(cm.columns) + 2.5, 0.7 * len(cm) + 1.5))
    if normalize:
        labels = shown.round(2).astype(str) + "\n" + cm.astype(int).astype(str)
    else:
        labels = cm.astype(int).astype(str)
    sns.heatmap(
        shown, ax=ax, annot=labels, fmt="", cmap="Blues", vmin=0,
        vmax=1 if normalize else None, annot_kws={"fontsize": 8},
        cbar_kws={"label": "share of true label" if normalize else "count"},
    )
    ax.set_xlabel(cm.columns.name or "predicted")
    ax.set_ylabel(cm.index.name or "true")
    ax.set_title(title)
    return ax
