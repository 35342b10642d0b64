"""Figures of the expression audits (``04_expression_fear``, ``06_train_expression``):
per-class recall across datasets, expression changes under perturbation, training
curves.

Every plot function of facelab lives in :mod:`facelab.viz` (issue 11): the studies
compute tables, viz draws them, the notebooks record the figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facelab.data.schema import EXPRESSIONS
from facelab.perturb.robustness import TASKS

__all__ = ["plot_cross_dataset", "plot_robustness", "plot_history"]


def plot_cross_dataset(recall: pd.DataFrame, *, highlight: str = "fear"):
    """Per-class recall with Wilson intervals: one panel per test dataset, one colour per
    model; the ``highlight`` class is shaded.

    Parameters
    ----------
    recall : pandas.DataFrame
        :func:`facelab.studies.crossdata.cross_dataset_recall` (or the ``recall`` attrs
        of :func:`facelab.studies.crossdata.cross_dataset_table`).
    highlight : str
        The expression class to shade.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(recall["test_dataset"]))
    models = list(dict.fromkeys(recall["model"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.4 * len(datasets) + 0.5, 3.3),
                             sharey=True, squeeze=False)
    colours = dict(zip(models, plt.cm.tab10.colors, strict=False))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        block = recall[recall["test_dataset"] == dataset]
        labels = [e for e in EXPRESSIONS if e in set(block["label"])]
        xpos = {lab: i for i, lab in enumerate(labels)}
        if highlight in xpos:
            ax.axvspan(xpos[highlight] - 0.5, xpos[highlight] + 0.5, color="0.9", zorder=0)
        for j, model in enumerate(models):
            g = block[block["model"] == model]
            x = g["label"].map(xpos).to_numpy(float) + (j - (len(models) - 1) / 2) * 0.18
            err = np.vstack([g["recall"] - g["ci_low"], g["ci_high"] - g["recall"]])
            ax.errorbar(x, g["recall"], yerr=err, fmt="o", ms=4, capsize=2,
                        color=colours[model], label=model)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("recall (95% Wilson CI)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(models), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_robustness(table: pd.DataFrame, *, group_col: str = "all",
                    tasks: Sequence[str] | None = None, perturbations: Sequence[str] | None = None):
    """Change rate against severity level: one panel per task (rows) and perturbation
    (columns), one line per group of ``group_col``, with the Wilson intervals as bars.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`facelab.perturb.robustness.robustness_table`.
    group_col : str
        The grouping drawn as lines (``"all"`` for everyone).
    tasks, perturbations : sequence of str, optional
        Subsets to draw (default: every task and perturbation in ``table``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    data = table[(table["group_col"] == group_col) & (table["perturbation"] != "none")]
    tasks = list(tasks) if tasks is not None else [t for t in TASKS if t in set(data["task"])]
    perts = list(perturbations) if perturbations is not None else list(
        dict.fromkeys(data["perturbation"]))
    fig, axes = plt.subplots(len(tasks), len(perts), figsize=(2.3 * len(perts) + 1,
                             2.1 * len(tasks) + 0.6), sharex=True, sharey=True, squeeze=False)
    groups = list(dict.fromkeys(data["group"]))
    colours = dict(zip(groups, plt.cm.tab10.colors, strict=False))
    for r, task in enumerate(tasks):
        for c, pert in enumerate(perts):
            ax = axes[r][c]
            block = data[(data["task"] == task) & (data["perturbation"] == pert)]
            for j, (group, g) in enumerate(block.groupby("group", sort=False)):
                g = g.sort_values("level")
                x = g["level"].to_numpy(float) + (j - (len(groups) - 1) / 2) * 0.06
                err = np.vstack([g["rate"] - g["ci_low"], g["ci_high"] - g["rate"]])
                ax.errorbar(x, g["rate"], yerr=err, marker="o", ms=3, lw=1, capsize=2,
                            color=colours.get(group), label=str(group))
            ax.set_ylim(-0.03, 1.03)
            ax.set_xticks([1, 2, 3])
            if r == 0:
                ax.set_title(pert, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{task}\nchange rate", fontsize=9)
            if r == len(tasks) - 1:
                ax.set_xlabel("severity", fontsize=8)
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels_, loc="lower center", ncol=min(len(labels_), 8), fontsize=8,
                   title=None if group_col == "all" else group_col, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
    return fig


def plot_history(history: pd.DataFrame, ax=None):
    """Validation curve: train/val loss and accuracy per epoch; the best epoch is marked.

    Parameters
    ----------
    history : pandas.DataFrame
        The per-epoch history of :func:`facelab.train.train_expression`
        (``TrainResult.history``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    else:
        axes, fig = ax, ax[0].figure
    best = history.loc[history["val_loss"].idxmin(), "epoch"]
    for col, style in (("train_loss", "--"), ("val_loss", "-")):
        axes[0].plot(history["epoch"], history[col], style, marker="o", ms=3, label=col)
    for col, style in (("train_accuracy", "--"), ("val_accuracy", "-")):
        axes[1].plot(history["epoch"], history[col], style, marker="o", ms=3, label=col)
    for a, title in zip(axes, ("cross-entropy", "accuracy"), strict=True):
        a.axvline(best, color="grey", lw=0.8, ls=":")
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_title(title)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig
