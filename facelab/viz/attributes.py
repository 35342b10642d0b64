"""Figures of the attribute audit (``05_attribute_audit``): calibration of P(female).

Every plot function of facelab lives in :mod:`facelab.viz` (issue 11): the studies
compute tables, viz draws them, the notebooks record the figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_reliability"]


def plot_reliability(reliability: pd.DataFrame, summary: pd.DataFrame):
    """Reliability diagram of P(female), one line per dataset, with Wilson intervals and
    the diagonal of perfect calibration.

    Parameters
    ----------
    reliability : pandas.DataFrame
        The bins of :func:`facelab.studies.attributes.gender_calibration` (``dataset``,
        ``confidence``, ``accuracy``, ``ci_low``, ``ci_high``).
    summary : pandas.DataFrame
        Its summary (``dataset``, ``ece``), for the legend.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfectly calibrated")
    for (ds, block), colour in zip(reliability.groupby("dataset", sort=False),
                                   plt.cm.tab10.colors, strict=False):
        ece = summary.loc[summary["dataset"] == ds, "ece"].iloc[0]
        err = np.vstack([block["accuracy"] - block["ci_low"], block["ci_high"] - block["accuracy"]])
        ax.errorbar(block["confidence"], block["accuracy"], yerr=np.clip(err, 0, None),
                    marker="o", ms=3, capsize=2, lw=1.2, color=colour,
                    label=f"{ds} (ECE {ece:.3f})")
    ax.set_xlabel("predicted P(female) (bin mean)")
    ax.set_ylabel("share labelled female")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Calibration of the gender output", fontsize=10)
    fig.tight_layout()
    return fig
