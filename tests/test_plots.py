"""Figures build on synthetic metric results (agg backend) and show what they claim."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from facelab.metrics.biometric import det_curve, threshold_at_fmr  # noqa: E402
from facelab.metrics.classification import confusion_matrix  # noqa: E402
from facelab.metrics.groups import rate_by_group  # noqa: E402
from facelab.viz.plots import (  # noqa: E402
    SMALL_CELL_COLOR,
    plot_confusion,
    plot_det,
    plot_fmr_heatmap,
    plot_group_rates,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_group_rates_bars_intervals_and_small_cells():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": ["a"] * 100 + ["b"] * 80 + ["c"] * 5})
    df["err"] = rng.random(len(df)) < 0.2
    gm = rate_by_group(df, event="err", by="g", min_count=30)
    ax = plot_group_rates(gm)
    bars = ax.patches
    assert len(bars) == 3
    np.testing.assert_allclose([b.get_width() for b in bars], gm.by_group["value"])
    assert matplotlib.colors.to_hex(bars[2].get_facecolor()) == matplotlib.colors.to_hex(
        SMALL_CELL_COLOR
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert any("(small)" in t.get_text() for t in ax.texts)
    overall = [ln for ln in ax.lines if ln.get_label() == "overall"]
    assert len(overall) == 1
    assert overall[0].get_xdata()[0] == pytest.approx(gm.overall["value"])
    assert len(ax.collections[0].get_segments()) == 3  # one interval whisker per bar
    ax_log = plot_group_rates(gm, log=True)
    assert ax_log.get_xscale() == "log"


def test_det_per_group_log_axes_with_threshold_marker():
    rng = np.random.default_rng(1)
    curves = {
        g: det_curve(rng.normal(3, 1, 300), rng.normal(shift, 1, 3000))
        for g, shift in [("A", 0.0), ("B", 0.5)]
    }
    t = threshold_at_fmr(rng.normal(0, 1, 3000), 1e-2)
    ax = plot_det(curves, threshold=t)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    markers = [ln for ln in ax.lines if ln.get_marker() == "x"]
    curves_drawn = [ln for ln in ax.lines if ln.get_marker() in ("None", "", None)]
    assert len(curves_drawn) == 2
    assert len(markers) == 3  # one per group plus the legend entry
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "A" in legend and "B" in legend and any(s.startswith("threshold") for s in legend)
    # the marker of group A sits at the curve's FMR for that threshold
    det_a = curves["A"]
    i = int(np.searchsorted(det_a["threshold"], t.threshold))
    assert markers[0].get_xdata()[0] == det_a["fmr"].iloc[i]
    ax_p = plot_det(curves, scale="probit")
    assert ax_p.get_xscale() == "linear"
    with pytest.raises(ValueError, match="scale"):
        plot_det(curves, scale="nope")


def test_fmr_heatmap_log_colour_scale():
    m = pd.DataFrame(
        [[1e-3, 2e-4, 0.0], [2e-4, 5e-3, 1e-4], [0.0, 1e-4, 8e-4]],
        index=pd.Index(list("ABC"), name="group_a"),
        columns=pd.Index(list("ABC"), name="group_b"),
    )
    ax = plot_fmr_heatmap(m)
    mesh = ax.collections[0]
    assert isinstance(mesh.norm, LogNorm)
    assert mesh.norm.vmin == pytest.approx(1e-4) and mesh.norm.vmax == pytest.approx(5e-3)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("0") == 2 and "5.0e-03" in texts
    assert ax.get_ylabel() == "probe group"


def test_confusion_heatmap():
    cm = confusion_matrix(["fear", "fear", "happy", "sad"], ["fear", "sad", "happy", "sad"])
    ax = plot_confusion(cm)
    assert len(ax.texts) == 9
    assert "0.5\n1" in [t.get_text() for t in ax.texts]
    assert ax.collections[0].get_array().max() == 1.0


def test_det_curves_get_distinct_colours_beyond_ten_groups():
    import numpy as np
    from matplotlib.colors import to_hex

    from facelab.metrics.biometric import det_curve
    from facelab.viz.plots import plot_det

    rng = np.random.default_rng(0)
    curves = {f"g{i}": det_curve(rng.normal(2, 1, 200), rng.normal(0, 1, 400)) for i in range(12)}
    ax = plot_det(curves)
    colours = {to_hex(line.get_color()) for line in ax.get_lines() if line.get_label() in curves}
    assert len(colours) == 12
