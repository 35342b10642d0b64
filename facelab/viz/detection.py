"""Figures of the detection audit (``01_detection_reliability``): FTA heatmaps,
detector agreement, FTA under degradation.

Every plot function of facelab lives in :mod:`facelab.viz` (issue 11): the studies
compute tables, viz draws them, the notebooks record the figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_fta_heatmap", "plot_agreement", "plot_severity_curves"]


def plot_fta_heatmap(table: pd.DataFrame, dataset: str, *, ax=None):
    """FTA per race x gender cell (rows) and detector (columns) for one dataset.

    Each cell shows the rate and ``count/n``; small cells are in italics.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`facelab.studies.detection.fta_by_group` (``dataset``, ``detector``,
        ``race``, ``gender``, ``value``, ``count``, ``n``, ``small_cell``).
    dataset : str
        The dataset label to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = table[table["dataset"] == dataset].copy()
    t["cell"] = t["race"].astype(str) + " x " + t["gender"].astype(str)
    rate = t.pivot(index="cell", columns="detector", values="value")
    cols = list(dict.fromkeys(t["detector"]))
    rate = rate[cols]
    text = t.assign(txt=[f"{v:.2f}\n{int(c)}/{int(n)}" for v, c, n in
                         zip(t["value"], t["count"], t["n"], strict=True)]
                    ).pivot(index="cell", columns="detector", values="txt")[cols]
    small = t.pivot(index="cell", columns="detector", values="small_cell")[cols]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.42 * len(rate) + 1.4))
    sns.heatmap(rate, annot=text.to_numpy(), fmt="", cmap="rocket_r", vmin=0,
                vmax=max(0.05, float(np.nanmax(rate.to_numpy()))), ax=ax,
                annot_kws={"fontsize": 7}, cbar_kws={"label": "failure-to-acquire rate"})
    for (r, c), is_small in np.ndenumerate(small.to_numpy()):
        if is_small:
            ax.texts[r * len(cols) + c].set_fontstyle("italic")
    ax.set_title(f"{dataset}: failure to acquire by race x gender (italic: n < small-cell "
                 "limit)", fontsize=9)
    ax.set_xlabel("detector (default settings)")
    ax.set_ylabel("")
    return ax


def plot_agreement(agreement: pd.DataFrame, *, value: str = "agreement"):
    """Detector x detector heatmaps of ``value``, one panel per dataset.

    Parameters
    ----------
    agreement : pandas.DataFrame
        :func:`facelab.studies.detection.detector_agreement`.
    value : {"agreement", "kappa"}
        The column drawn (share of images on which both agree; Cohen's kappa).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = list(dict.fromkeys(agreement["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.0), squeeze=False)
    for ax, ds in zip(axes[0], names, strict=True):
        block = agreement[agreement["dataset"] == ds]
        dets = list(dict.fromkeys([*block["detector_a"], *block["detector_b"]]))
        pos = {d: i for i, d in enumerate(dets)}
        arr = np.full((len(dets), len(dets)), np.nan)
        for _, r in block.iterrows():
            arr[pos[r.detector_a], pos[r.detector_b]] = r[value]
            arr[pos[r.detector_b], pos[r.detector_a]] = r[value]
        if value == "agreement":
            np.fill_diagonal(arr, 1.0)
        mat = pd.DataFrame(arr, index=dets, columns=dets)
        sns.heatmap(mat, annot=True, fmt=".2f", vmin=0 if value == "agreement" else -1,
                    vmax=1, cmap="viridis", ax=ax, cbar=ax is axes[0][-1],
                    annot_kws={"fontsize": 7})
        ax.set_title(f"{ds}: {value} on face found (n up to {int(block['n'].max())})",
                     fontsize=9)
    fig.tight_layout()
    return fig


def plot_severity_curves(curves: pd.DataFrame, *, hue: str = "detector", title: str = "",
                         ylabel: str = "failure-to-acquire rate"):
    """One panel per perturbation: rate against severity level (0 = clean) with Wilson
    intervals, one line per value of ``hue``.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`facelab.studies.detection.degradation_curves` (``perturbation``, ``level``,
        ``param``, ``value``, ``ci_low``, ``ci_high`` and the ``hue`` column).
    hue : str
        The column that names the lines (``"detector"``, ``"race"``, ...).
    title : str
        Figure title.
    ylabel : str
        Label of the rate axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    perts = list(dict.fromkeys(curves["perturbation"]))
    fig, axes = plt.subplots(1, len(perts), figsize=(3.0 * len(perts) + 0.5, 3.3),
                             sharey=True, squeeze=False)
    hues = list(dict.fromkeys(curves[hue]))
    colours = dict(zip(hues, plt.cm.tab10.colors, strict=False))
    for ax, pert in zip(axes[0], perts, strict=True):
        block = curves[curves["perturbation"] == pert]
        for j, (h, g) in enumerate(block.groupby(hue, sort=False)):
            g = g.sort_values("level")
            x = g["level"].to_numpy(float) + (j - (len(hues) - 1) / 2) * 0.05
            val = g["value"].to_numpy(float)
            err = np.vstack([val - g["ci_low"].to_numpy(float),
                             g["ci_high"].to_numpy(float) - val])
            ax.errorbar(x, val, yerr=np.clip(err, 0, None), marker="o", ms=3, lw=1.2,
                        capsize=2, color=colours[h], label=str(h))
        lv = block.drop_duplicates("level").sort_values("level")
        ax.set_xticks(lv["level"].to_numpy(float))
        ax.set_xticklabels(["clean" if int(v) == 0 else f"{v}\n{p:g}"
                            for v, p in zip(lv["level"], lv["param"].fillna(0), strict=True)],
                           fontsize=7)
        ax.set_title(pert, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
