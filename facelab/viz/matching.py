"""Figures of the matching audits (``02_verification_demographics``,
``03_one_to_many_search``): score distributions, DET colours, who is falsely matched,
FPIR by gallery size, the FPIR/FNIR trade-off.

Every plot function of facelab lives in :mod:`facelab.viz` (issue 11): the studies
compute tables, viz draws them, the notebooks record the figures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from facelab.metrics.biometric import ThresholdChoice, fnir_curve, fpir_curve
from facelab.studies.search import SearchRun
from facelab.studies.verification import GENUINE, IMPOSTOR_UNLABELLED

__all__ = ["recolor_det", "plot_score_distributions", "plot_composition",
           "plot_fpir_by_gallery_size", "plot_threshold_tradeoff"]


def recolor_det(ax, cmap: str = "tab20") -> None:
    """Give every curve of a :func:`facelab.viz.plots.plot_det` axes its own colour (the
    default palette repeats after 10 groups) and redraw the legend.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes drawn by :func:`facelab.viz.plots.plot_det`; changed in place.
    cmap : str
        A matplotlib colormap name.
    """
    import matplotlib.pyplot as plt

    curves = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")
              and ln.get_marker() in ("None", None, "")]
    colors = plt.get_cmap(cmap).colors if len(curves) > 10 else None
    if colors is None:
        return
    lines = ax.get_lines()
    current = None
    for ln in lines:
        if ln in curves:
            current = colors[curves.index(ln) % len(colors)]
            ln.set_color(current)
        elif ln.get_label() == "_threshold" and current is not None:
            ln.set_color(current)
    ax.legend(fontsize=7)


def plot_score_distributions(scored_by_model: Mapping[str, pd.DataFrame],
                             thresholds: Mapping[str, float | ThresholdChoice] | None = None,
                             *, bins: int = 80):
    """Genuine and impostor score densities, one panel per embedder (side by side), with
    the global threshold as a dashed line.

    Parameters
    ----------
    scored_by_model : mapping of str to pandas.DataFrame
        Scored pairs per embedder (``score``, ``source``, ``kind``), as
        :mod:`facelab.studies.verification` builds them.
    thresholds : mapping of str to float or ThresholdChoice, optional
        The threshold drawn in each embedder's panel.
    bins : int
        Histogram bins over each embedder's score range.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = len(scored_by_model)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 4.2), squeeze=False)
    for ax, (model, scored) in zip(axes[0], scored_by_model.items(), strict=True):
        lo, hi = scored["score"].min(), scored["score"].max()
        edges = np.linspace(lo, hi, bins + 1)
        for (source, kind), part in scored.groupby(["source", "kind"], sort=True):
            style = "-" if kind == GENUINE else "--" if kind == IMPOSTOR_UNLABELLED else ":"
            ax.hist(part["score"], bins=edges, density=True, histtype="step", lw=1.6, ls=style,
                    label=f"{source}: {kind} ({len(part):,})")
        if thresholds and model in thresholds:
            t = float(thresholds[model])
            ax.axvline(t, color="black", lw=1, ls="--")
            ax.text(t, ax.get_ylim()[1] * 0.95, f" threshold {t:.3f}", fontsize=8, va="top")
        ax.set_title(f"{model}: similarity scores")
        ax.set_xlabel("similarity (higher = more alike)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_composition(comps: Mapping[str, pd.DataFrame], *, title: str = ""):
    """Share of searches and share of false matches (with intervals) per group, one panel
    per operating point.

    Parameters
    ----------
    comps : mapping of str to pandas.DataFrame
        :func:`facelab.studies.search.composition` per operating point.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = len(comps)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 0.45 * max(len(c) for c in
                                                              comps.values()) + 2),
                             squeeze=False, sharey=True)
    for ax, (name, comp) in zip(axes[0], comps.items(), strict=True):
        y = np.arange(len(comp))
        ax.barh(y + 0.2, comp["population_share"], height=0.4, color="0.7",
                label="share of searches")
        err = np.vstack([comp["share"] - comp["share_ci_low"],
                         comp["share_ci_high"] - comp["share"]]).clip(min=0)
        total = int(comp["false_matches"].sum())
        ax.barh(y - 0.2, comp["share"].fillna(0), height=0.4, xerr=np.nan_to_num(err),
                color="C3", label=f"share of false matches ({total})")
        for yi, k in zip(y, comp["false_matches"], strict=True):
            ax.text(0.005, yi - 0.2, str(k), va="center", fontsize=7, color="white")
        ax.set_yticks(y, comp["group"].astype(str))
        ax.invert_yaxis()
        ax.set_xlabel("share")
        ax.set_title(f"{name}")
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_fpir_by_gallery_size(table: pd.DataFrame, *, ax=None, title: str = ""):
    """FPIR against gallery size (log x), one line per operating point with its interval,
    and the independence prediction ``1 - (1 - FMR)^N`` dotted.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`facelab.studies.search.fpir_by_gallery_size`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for i, (name, part) in enumerate(table.groupby("operating_point", sort=False)):
        c = f"C{i}"
        ax.plot(part["gallery_size"], part["fpir"], "-o", ms=3, color=c, label=str(name))
        ax.fill_between(part["gallery_size"], part["ci_low"], part["ci_high"], color=c,
                        alpha=0.2)
        ax.plot(part["gallery_size"], part["predicted"], ":", color=c,
                label=f"{name}: 1-(1-FMR)^N")
    ax.set_xscale("log")
    ax.set_xlabel("gallery size N (people enrolled)")
    ax.set_ylabel("FPIR (non-mated searches with a false match)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "FPIR grows with the gallery")
    return ax


def plot_threshold_tradeoff(run: SearchRun, thresholds: Mapping[str, ThresholdChoice], *,
                            ax=None, title: str = ""):
    """FPIR (non-mated) and rank-1 FNIR (mated) against the threshold, operating points
    marked: the price of a stricter threshold is more missed mates.

    Parameters
    ----------
    run : facelab.studies.search.SearchRun
        One embedder's searches (:func:`facelab.studies.search.run_search`).
    thresholds : mapping of str to ThresholdChoice
        The operating points to mark, by name.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    res = run.results
    non, mat = res[~res["mated"]], res[res["mated"]]
    cols = ["probe", "candidate_rank", "score", "is_mate"]
    finite = res["score"][np.isfinite(res["score"].to_numpy(dtype=float))]
    lo, hi = float(finite.min()), float(finite.max())
    ts = np.linspace(lo, hi, 300)
    if len(non):
        fp = fpir_curve(non.groupby("probe")["score"].max().to_numpy(dtype=float),
                        thresholds=ts)
        ax.plot(fp["threshold"], fp["fpir"], color="C3", label="FPIR (non-mated searches)")
    if len(mat):
        found = mat[np.isfinite(mat["score"].to_numpy(dtype=float))]
        fn = fnir_curve(found[cols], thresholds=ts, ranks=(1,), probes=pd.unique(mat["probe"]))
        ax.plot(fn["threshold"], fn["fnir"], color="C0", label="FNIR, rank 1 (mated searches)")
    for name, c in thresholds.items():
        ax.axvline(float(c), color="0.3", ls="--", lw=0.8)
        ax.text(float(c), 0.5, f" {name}", rotation=90, fontsize=7, va="center")
    ax.set_xlabel("similarity threshold")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(title or "Threshold trade-off")
    return ax
