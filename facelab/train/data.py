"""Expression training data: manifests from the dataset adapters, subject-disjoint splits,
and a torch :class:`~torch.utils.data.Dataset` of grey face crops.

FER2013 and CK+48 images are already face crops, so the whole image is the crop. Splits
keep every subject's images on one side (CK+48 has three frames per sequence: a split by
frame would leak the same face into validation): scikit-learn's StratifiedGroupKFold,
stratified by dataset and expression. Rows without a subject (FER2013) are split at
random, one image per group, and the split summary says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch.utils.data import Dataset

from facelab.core.io import load_image
from facelab.core.provenance import manifest_hash
from facelab.data.sampling import load_datasets
from facelab.data.schema import EXPRESSIONS
from facelab.models.trained import to_tensor

__all__ = ["EXPRESSIONS", "expression_manifest", "split_by_subject", "split_summary",
           "load_crops", "ExpressionDataset", "manifest_digest"]

FIT_SPLITS: tuple[str, ...] = ("train", "val", "test")


def expression_manifest(datasets: str | Sequence[str], *, root=None,
                        limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows of one or more expression datasets that carry an expression label.

    The datasets are loaded by :func:`facelab.data.sampling.load_datasets` (every one
    must load; rows without an expression label are left out).

    Parameters
    ----------
    datasets : str or sequence of specs
        Dataset specs (:mod:`facelab.data.resolve`): registered names (e.g.
        ``"fer2013"``, ``"ckplus48"``) or a comma-separated string of them, CSV paths, or
        ``{csv: ..., columns: {...}}`` mappings with an expression column.
    root : path or None
        Data root (default ``$FACELAB_DATA``).
    limit : int or None
        Keep at most this many rows per dataset (a seeded
        :meth:`pandas.DataFrame.sample`, stratified by nothing: meant for quick runs), or
        all when ``None``.
    seed : int
        Seed of the ``limit`` sample.

    Returns
    -------
    pandas.DataFrame
        The datasets' manifests one after the other (each sorted by ``file``), with a
        fresh ``RangeIndex``; ``attrs["datasets"]`` lists the dataset labels.

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset cannot be loaded (every dataset named here must load).
    """
    manifests, _ = load_datasets(_names(datasets), root=root, strict=True,
                                 require="expression", default_splits={})
    frames = []
    for df in manifests.values():
        if limit is not None and len(df) > limit:
            df = df.sample(n=limit, random_state=seed)
        frames.append(df.sort_values("file"))
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"datasets": list(manifests)}
    return out


def _names(datasets) -> list:
    if isinstance(datasets, str):
        datasets = datasets.split(",")
    elif not isinstance(datasets, list | tuple):
        datasets = [datasets]
    return [d.strip() if isinstance(d, str) else d for d in datasets
            if not isinstance(d, str) or d.strip()]


def _n_folds(frac: float, n_groups: int) -> int:
    """Folds of a k-fold whose one fold is closest to ``frac`` of the data (>= 2)."""
    return max(2, min(int(round(1.0 / frac)), n_groups))


def _one_fold(y: np.ndarray, groups: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Boolean mask of the first fold of a seeded :class:`StratifiedGroupKFold` holding
    about ``frac`` of the rows (all False when ``frac <= 0`` or fewer than 2 groups)."""
    n_groups = len(np.unique(groups))
    mask = np.zeros(len(y), dtype=bool)
    if frac <= 0 or n_groups < 2:
        return mask
    folds = StratifiedGroupKFold(n_splits=_n_folds(frac, n_groups), shuffle=True,
                                 random_state=seed)
    with warnings.catch_warnings():
        # a class with fewer members than folds (a rare expression in a small sample)
        # cannot be in every fold: sklearn warns; the split stays subject-disjoint
        warnings.filterwarnings("ignore", message="The least populated class",
                                category=UserWarning)
        _, held = next(folds.split(np.zeros(len(y)), y, groups))
    mask[held] = True
    return mask


def split_by_subject(manifest: pd.DataFrame, *, val_frac: float = 0.15,
                     test_frac: float = 0.15, seed: int = 0) -> pd.Series:
    """Assign each row to ``train``/``val``/``test``, keeping each subject on one side.

    Groups are ``dataset + subject`` where the subject is known, else the single row
    (FER2013 has no subject ids: its rows are split at random, image by image). The
    split is scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
    (shuffled with ``seed``), stratified by ``dataset + expression`` so that every split
    sees every class of every dataset where the groups allow: the test set is its first
    fold with ``round(1 / test_frac)`` folds, the validation set the first fold of the
    rest with ``round((1 - test share) / val_frac)`` folds. Split shares are therefore
    close to, not exactly, the fractions asked for (1/7 = 0.143 for 0.15).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Rows with ``dataset``, ``file``, ``subject`` (NA where unknown) and ``expression``.
    val_frac, test_frac : float
        Wanted shares of rows in validation and test, each in ``[0, 0.5]`` (0: none).
    seed : int
        Seed of the folds: same manifest and seed, same split.

    Returns
    -------
    pandas.Series
        Split name (``"train"``, ``"val"`` or ``"test"``, str) per row, aligned with
        ``manifest.index``, named ``fit_split``.

    Raises
    ------
    ValueError
        A fraction is outside ``[0, 0.5]``.
    """
    for name, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= frac <= 0.5:
            raise ValueError(f"{name} must be in [0, 0.5]; got {frac}")
    dataset = manifest["dataset"].astype(str).to_numpy()
    subject = manifest["subject"].astype("string")
    groups = np.where(subject.notna(), dataset + "/" + subject.fillna("").to_numpy(str),
                      "row/" + dataset + "/" + manifest["file"].astype(str).to_numpy())
    y = dataset + "/" + manifest["expression"].astype(str).to_numpy()
    out = np.full(len(manifest), "train", dtype=object)
    test = _one_fold(y, groups, test_frac, seed)
    out[test] = "test"
    rest = np.flatnonzero(~test)
    share = val_frac / (1.0 - test.mean()) if val_frac > 0 else 0.0
    val = _one_fold(y[rest], groups[rest], min(share, 0.5), seed)
    out[rest[val]] = "val"
    return pd.Series(out, index=manifest.index, name="fit_split").astype(str)


def split_summary(manifest: pd.DataFrame, splits: pd.Series) -> pd.DataFrame:
    """Images and subjects per dataset and split.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Rows with ``dataset``, ``file`` and ``subject``.
    splits : pandas.Series
        Split name per row (:func:`split_by_subject`), aligned with ``manifest``.

    Returns
    -------
    pandas.DataFrame
        ``dataset, fit_split, images, subjects`` (``subjects`` NaN where unknown).
    """
    df = manifest.assign(fit_split=splits)
    out = df.groupby(["dataset", "fit_split"]).agg(
        images=("file", "size"), subjects=("subject", lambda s: s.nunique() if s.notna().any()
                                           else np.nan))
    return out.reset_index()


def load_crops(paths: Sequence[str], size: int) -> np.ndarray:
    """Whole images (already face crops) as grey crops of one size.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    size : int
        Side of the crops in pixels (area resampling down, linear up).

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` uint8 grey levels.
    """
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
    independent of row order and of where the data root is.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Rows with ``dataset``, ``file``, ``expression`` and ``subject``.

    Returns
    -------
    str
        64 hex digits (:func:`facelab.core.provenance.manifest_hash`).
    """
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
        """All crops and labels as tensors.

        Returns
        -------
        crops : torch.Tensor
            ``(n, 1, s, s)`` float32 in [-1, 1].
        labels : torch.Tensor
            ``(n,)`` int64 indices into :attr:`labels`.
        """
        return to_tensor(self.crops), torch.from_numpy(self.targets)
