"""Training an expression model from scratch: splits, determinism, safetensors, registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facelab.models.trained import to_tensor
from facelab.train.data import split_by_subject


def _manifest(n_subjects: int = 30, per_subject: int = 4, anonymous: int = 40) -> pd.DataFrame:
    rows = []
    labels = ["angry", "happy", "fear"]
    for s in range(n_subjects):
        for k in range(per_subject):
            rows.append({"dataset": "ck", "file": f"S{s:03d}_{k}.png", "subject": f"S{s:03d}",
                         "expression": labels[(s + k) % 3]})
    for k in range(anonymous):
        rows.append({"dataset": "fer", "file": f"f{k}.jpg", "subject": pd.NA,
                     "expression": labels[k % 3]})
    return pd.DataFrame(rows)


def test_split_keeps_subjects_on_one_side_and_is_seeded():
    df = _manifest()
    splits = split_by_subject(df, val_frac=0.2, test_frac=0.2, seed=3)
    assert set(splits) == {"train", "val", "test"}
    sides = df.assign(s=splits)[df["subject"].notna()].groupby("subject")["s"].nunique()
    assert (sides == 1).all()
    assert splits.equals(split_by_subject(df, val_frac=0.2, test_frac=0.2, seed=3))
    assert not splits.equals(split_by_subject(df, val_frac=0.2, test_frac=0.2, seed=4))
    share = splits.value_counts(normalize=True)
    assert 0.1 < share["test"] < 0.3 and 0.1 < share["val"] < 0.3
    # images without a subject are split one by one, into every split
    assert set(splits[df["subject"].isna()]) == {"train", "val", "test"}


def test_split_of_ckplus48_is_subject_disjoint_stratified_and_near_the_fractions(data_root):
    from conftest import missing_data

    from facelab.train.data import expression_manifest

    if not (data_root / "ckplus48").is_dir():
        missing_data("CK+48 is not under FACELAB_DATA")
    df = expression_manifest(["ckplus48"], root=data_root)
    splits = split_by_subject(df, val_frac=0.15, test_frac=0.15, seed=0)
    sides = df.assign(s=splits).groupby("subject")["s"].nunique()
    assert (sides == 1).all()  # no person on two sides
    share = splits.value_counts(normalize=True)
    assert abs(share["test"] - 1 / 7) < 0.03 and abs(share["val"] - 1 / 7) < 0.03
    # stratified by expression: every class with enough subjects is in every split
    table = pd.crosstab(df["expression"], splits)
    common = table[table.sum(axis=1) >= 60]
    assert len(common) >= 3 and (common > 0).all().all()
    assert splits.equals(split_by_subject(df, val_frac=0.15, test_frac=0.15, seed=0))
    with pytest.raises(ValueError, match="test_frac"):
        split_by_subject(df, test_frac=0.7)


def test_to_tensor_scales_like_the_fer_model():
    x = to_tensor(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 1, 2)
    assert x.min().item() == -1.0 and x.max().item() == 1.0


QUICK = ["--backbone", "resnet10t", "--data", "ckplus48", "--epochs", "2", "--limit", "120",
         "--batch-size", "32", "--seed", "7", "--out", "quick-ck"]


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_cuts_the_windows_of_per_sample_slicing_in_one_gather(channels):
    """Issue 16: the augmentation has no per-sample Python loop, and gives the very pixels
    (and the standard strides, which pick the convolution kernels) of slicing each sample."""
    import torch
    import torch.nn.functional as F

    from facelab.train.expression import _augment

    x = torch.randn(32, channels, 20, 17)
    gen = torch.Generator().manual_seed(4)
    flip = torch.rand(32, generator=gen) < 0.5
    flipped = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(flipped, (4, 4, 4, 4), mode="replicate")
    dx, dy = (torch.randint(0, 9, (32,), generator=gen) for _ in range(2))
    want = torch.stack([padded[i, :, dy[i]:dy[i] + 20, dx[i]:dx[i] + 17] for i in range(32)])
    got = _augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(got, want) and got.stride() == want.stride()


@pytest.mark.slow
def test_train_command_saves_reloads_and_is_reproducible(data_root, tmp_path, monkeypatch):
    import typer
    from safetensors.torch import load_file

    from facelab.cli import train as train_command
    from facelab.data.datasets import load_dataset
    from facelab.models.registry import create_model
    from facelab.models.trained import read_metadata
    from facelab.studies.crossdata import cross_dataset_predictions
    from facelab.train import train_expression
    from facelab.train.data import load_crops

    monkeypatch.setenv("FACELAB_RESULTS", str(tmp_path / "a"))
    app = typer.Typer()
    train_command.register(app)  # the same registration facelab.cli does
    result = CliRunner().invoke(app, ["train", "expression", *QUICK, "--root", str(data_root)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "a" / "models" / "quick-ck.safetensors"
    assert path.is_file() and path.with_suffix(".json").is_file()

    meta = read_metadata(path)
    for key in ("labels", "input_size", "backbone", "data", "manifest_sha256", "commit",
                "metrics", "seed", "date", "split_method"):
        assert meta[key], key
    labels = json.loads(meta["labels"])
    assert "contempt" in labels and "neutral" not in labels  # CK+48's label set
    assert meta["backbone"] == "resnet10t" and meta["input_size"] == "48"
    assert "disjoint by subject" in meta["split_method"]
    metrics = json.loads(meta["metrics"])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epochs_run"] <= 2

    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert len(sidecar["history"]) == metrics["epochs_run"]
    test_files = set(sidecar["test_files"]["ckplus48"])
    assert len(test_files) == metrics["test_n"]

    model = create_model("quick-ck")
    assert model.labels == tuple(labels)
    ck = load_dataset("ckplus48", root=data_root).sort_values("file").head(5)
    crops = load_crops(ck["path"].tolist(), 48)
    probs = model.predict_crops(crops)
    assert probs.shape == (5, len(labels))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # the default runs the network in OpenVINO: within 1e-5 of the PyTorch network, and a
    # crop's probabilities do not depend on the batch it shares (PyTorch's batch of one did)
    assert model.backend == "openvino"
    reference = create_model("quick-ck", backend="torch")
    np.testing.assert_allclose(probs, reference.predict_crops(crops), atol=1e-5)
    assert (probs.argmax(1) == reference.predict_crops(crops).argmax(1)).all()
    for batch_size, threads in ((1, 1), (2, 2), (3, 1)):
        other = create_model("quick-ck", batch_size=batch_size, threads=threads)
        np.testing.assert_array_equal(other.predict_crops(crops), probs)
        np.testing.assert_array_equal(other.predict_crops(crops[::-1]), probs[::-1])
    with pytest.raises(ValueError, match="backend"):
        create_model("quick-ck", backend="tflite")

    # same seed, same data, through the Python API: identical weights and metrics
    again = train_expression(backbone="resnet10t", data=("ckplus48",), epochs=2, limit=120,
                             batch_size=32, seed=7, name="quick-ck", root=data_root,
                             out_dir=tmp_path / "b", progress=False)
    first, second = load_file(str(path)), load_file(str(again.path))
    assert first.keys() == second.keys()
    for key in first:
        assert np.array_equal(first[key].numpy(), second[key].numpy()), key
    assert json.loads(read_metadata(again.path)["metrics"])["test_accuracy"] == \
        metrics["test_accuracy"]

    # evaluated on its own training dataset, only the held-out split counts
    preds = cross_dataset_predictions({"quick": create_model("quick-ck")}, ["ckplus48"],
                                      root=data_root, progress=False)
    evaluated = preds[preds["status"] != "excluded_training"]
    assert set(evaluated["file"]) == test_files
