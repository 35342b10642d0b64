"""Cross-dataset expression evaluation: counts, exclusions, intervals."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_cross_dataset_table_with_the_fer_model(data_root):
    from facelab.models.registry import create_model
    from facelab.studies.crossdata import (
        cross_dataset_predictions,
        cross_dataset_recall,
        cross_dataset_table,
    )
    from facelab.viz.expression import plot_cross_dataset

    models = {"fer": create_model("fer-mini-xception")}
    preds = cross_dataset_predictions(models, ["ckplus48", "jaffe"], root=data_root,
                                      limit=30, seed=1, progress=False)
    table = cross_dataset_table(models, ["ckplus48", "jaffe"], predictions=preds)
    assert list(table["test_dataset"]) == ["ckplus48", "jaffe"]
    assert (table["images"] == 30).all()
    counts = table[["failed_acquire", "excluded_label", "excluded_training", "n"]].sum(axis=1)
    assert (counts == table["images"]).all()
    ck = table.set_index("test_dataset").loc["ckplus48"]
    ck_preds = preds[preds["test_dataset"] == "ckplus48"]
    # the fer model has no "contempt": those CK+48 images are excluded, and counted
    assert ck["excluded_label"] == (ck_preds["true"] == "contempt").sum()
    assert np.isnan(ck["recall_contempt"]) and np.isnan(ck["recall_neutral"])
    # whole-image datasets never fail to acquire; JAFFE goes through detection
    assert ck["failed_acquire"] == 0
    evaluated = preds[preds["status"] == "evaluated"]
    for _, row in table.iterrows():
        ev = evaluated[evaluated["test_dataset"] == row["test_dataset"]]
        assert row["accuracy"] == pytest.approx((ev["true"] == ev["pred"]).mean())
        assert row["fear_n"] == (ev["true"] == "fear").sum()
        assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
    # predicted probabilities are distributions over the model's labels
    p = evaluated[[f"p_{lab}" for lab in models["fer"].labels]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    recall = cross_dataset_recall(preds)
    assert set(recall["label"]) <= set(models["fer"].labels)
    fig = plot_cross_dataset(recall)
    assert len(fig.axes) == 2
    # seeded: the same call gives the same table
    again = cross_dataset_table(models, ["ckplus48", "jaffe"], root=data_root, limit=30, seed=1,
                                progress=False)
    assert again.drop(columns=[]).equals(table)
