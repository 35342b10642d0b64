"""Expression training data: manifests from the dataset adapters, subject-disjoint splits,
and a torch :class:`~torch.utils.data.Dataset` of grey face crops.

FER2013 and CK+48 images are already face crops, so the whole image is the crop. Splits
keep every subject's images on one side (CK+48 has three frames per sequence: a split by
frame would leak the same face into validation). Rows without a subject (FER2013) are
split at random, one image per group, and the split summary says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from facelab.data.schema import EXPRESSIONS
from facelab.models.trained import to_tensor

__all__ = ["EXPRESSIONS", "expression_manifest", "split_by_subject", "split_summary",
           "load_crops", "ExpressionDataset", "manifest_digest"]

FIT_SPLITS: tuple[str, ...] = ("train", "val", "test")


def expression_manifest(datasets: str | Sequence[str], *, root=None,
                        limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows of one or more expression datasets that carry an expression label.

    Parameters
    ----------
    datasets
        Dataset specs (:mod:`facelab.data.resolve`): registered names (e.g.
        ``"fer2013"``, ``"ckplus48"``) or a comma-separated string of them, CSV paths, or
        ``{csv: ..., columns: {...}}`` mappings with an expression column.
    root
        Data root (default ``$FACELAB_DATA``).
    limit
        Keep at most this many rows per dataset (seeded sample, stratified by nothing:
        meant for quick tests), or all when ``None``.
    seed
        Seed of the ``limit`` sample.

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset cannot be loaded (every dataset named here must load).
    """
    from facelab.data.resolve import resolve_datasets

    loaded, _ = resolve_datasets(_names(datasets), root=root, strict=True)
    frames, names = [], []
    for req, split, df in loaded:
        df = df[df["expression"].notna()]
        if limit is not None and len(df) > limit:
            df = df.sample(n=limit, random_state=seed)
        frames.append(df.sort_values("file"))
        names.append(req.label(split))
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"datasets": names}
    return out


def _names(datasets) -> list:
    if isinstance(datasets, str):
        datasets = datasets.split(",")
    elif not isinstance(datasets, list | tuple):
        datasets = [datasets]
    return [d.strip() if isinstance(d, str) else d for d in datasets
            if not isinstance(d, str) or d.strip()]


def split_by_subject(manifest: pd.DataFrame, *, val_frac: float = 0.15,
                     test_frac: float = 0.15, seed: int = 0) -> pd.Series:
    """Assign each row to ``train``/``val``/``test``, keeping each subject on one side.

    Groups are ``dataset + subject`` where the subject is known, else the single row.
    Groups are shuffled with ``seed`` (per dataset and per majority label, so each split
    sees every class) and filled greedily until each split holds its share of rows.

    Returns
    -------
    pandas.Series
        Split name per row, aligned with ``manifest.index``.
    """
    subject = manifest["subject"].astype("string")
    key = np.where(subject.notna(), manifest["dataset"].astype(str) + "/" + subject.fillna(""),
                   "row/" + manifest["dataset"].astype(str) + "/" + manifest["file"].astype(str))
    groups = pd.DataFrame({"key": key, "dataset": manifest["dataset"].astype(str).to_numpy(),
                           "label": manifest["expression"].astype(str).to_numpy()})
    sizes = groups.groupby("key").agg(n=("label", "size"), dataset=("dataset", "first"),
                                      label=("label", lambda s: s.value_counts().index[0]))
    rng = np.random.default_rng(seed)
    assign: dict[str, str] = {}
    for _, block in sizes.sort_index().groupby(["dataset", "label"], sort=True):
        order = rng.permutation(len(block))
        total = int(block["n"].sum())
        targets = {"test": test_frac * total, "val": val_frac * total}
        filled = {"test": 0, "val": 0}
        for key_, n in zip(block.index[order], block["n"].to_numpy()[order], strict=True):
            side = next((s for s in ("test", "val") if filled[s] + n / 2 <= targets[s]), "train")
            if side != "train":
                filled[side] += n
            assign[key_] = side
    return pd.Series([assign[k] for k in key], index=manifest.index, name="fit_split")


def split_summary(manifest: pd.DataFrame, splits: pd.Series) -> pd.DataFrame:
    """Images and subjects per dataset and split (subjects NaN where unknown)."""
    df = manifest.assign(fit_split=splits)
    out = df.groupby(["dataset", "fit_split"]).agg(
        images=("file", "size"), subjects=("subject", lambda s: s.nunique() if s.notna().any()
                                           else np.nan))
    return out.reset_index()


def load_crops(paths: Sequence[str], size: int) -> np.ndarray:
    """Grey ``(n, size, size)`` uint8 crops of whole images (already face crops)."""
    from facelab.core.io import load_image

    out = np.zeros((len(paths), size, size), np.uint8)
    for i, path in enumerate(paths):
        grey = cv2.cvtColor(load_image(path), cv2.COLOR_RGB2GRAY)
        out[i] = _resize(grey, size)
    return out


def _resize(grey: np.ndarray, size: int) -> np.ndarray:
    if grey.shape == (size, size):
        return grey
    interp = cv2.INTER_AREA if max(grey.shape) > size else cv2.INTER_LINEAR
    return cv2.resize(grey, (size, size), interpolation=interp)



def manifest_digest(manifest: pd.DataFrame) -> str:
    """SHA-256 over the (dataset, file, expression, subject) of a training manifest,
    independent of row order and of where the data root is."""
    from facelab.core.provenance import manifest_hash

    cols = ["dataset", "file", "expression", "subject"]
    return manifest_hash(manifest[cols].astype(str).reset_index(drop=True))


class ExpressionDataset(Dataset):
    """Grey face crops and integer labels, loaded once into memory.

    Parameters
    ----------
    manifest
        Rows with ``path`` and ``expression``.
    labels
        Label order; ``expression`` values outside it raise ``ValueError``.
    size
        Crop side in pixels.
    """

    def __init__(self, manifest: pd.DataFrame, labels: Sequence[str], size: int = 48):
        self.labels = tuple(labels)
        index = {lab: i for i, lab in enumerate(self.labels)}
        unknown = sorted(set(manifest["expression"].astype(str)) - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the model's labels {self.labels}")
        self.crops = load_crops(manifest["path"].tolist(), size)
        self.targets = np.array([index[e] for e in manifest["expression"].astype(str)], np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return to_tensor(self.crops[i:i + 1])[0], int(self.targets[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All crops as ``(n, 1, s, s)`` floats in [-1, 1] and labels as ``(n,)`` int64."""
        return to_tensor(self.crops), torch.from_numpy(self.targets)
