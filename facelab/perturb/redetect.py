"""Perturb, detect again, and ask whether the same face is still found: the one
implementation behind the detection degradation study
(:func:`facelab.studies.detection.degradation_records`) and the detection task of the
robustness suite (:func:`facelab.perturb.robustness.robustness_records`).

Perturbed images go through :func:`facelab.extract` with a
:class:`~facelab.perturb.perturbations.PerturbedImage` transform, so detections are cached
under the source image's hash plus the perturbation's recipe (see
:mod:`facelab.perturb.perturbations`): a warm rerun neither perturbs nor detects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.types import largest_box_index
from facelab.extraction.pipeline import extract
from facelab.perturb.perturbations import PERTURBATIONS, PerturbedImage

__all__ = ["IOU_SAME_FACE", "box_iou", "paired_box_iou", "valid_box", "Redetection",
           "SharedDegradations", "clean_detections", "redetect", "one_torch_thread"]

#: A detection is "the same face" as a reference box when their intersection over union is
#: at least this. 0.5 is the PASCAL VOC criterion for a correct detection (Everingham et
#: al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010, sec. 4.2), also used
#: by WIDER FACE's evaluation; every same-face decision in facelab uses it.
IOU_SAME_FACE = 0.5


def box_iou(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | float:
    """Intersection over union of ``[x1, y1, x2, y2]`` boxes (:func:`torchvision.ops.box_iou`,
    in float64).

    Parameters
    ----------
    a, b
        One box ``(4,)`` each, or ``(n, 4)`` and ``(m, 4)`` boxes, in pixels.

    Returns
    -------
    float or numpy.ndarray
        For two single boxes a float in [0, 1] (NaN if either is None); otherwise the
        ``(n, m)`` float64 matrix. Boxes without area give 0.
    """
    if a is None or b is None:
        return float("nan")
    import torch  # imported when used: a warm rerun never needs torch (seconds to import)
    from torchvision.ops import box_iou as _tv_box_iou

    a_arr, b_arr = np.asarray(a, np.float64), np.asarray(b, np.float64)
    single = a_arr.ndim == 1 and b_arr.ndim == 1
    ta = torch.from_numpy(a_arr.reshape(-1, 4).copy())
    tb = torch.from_numpy(b_arr.reshape(-1, 4).copy())
    iou = torch.nan_to_num(_tv_box_iou(ta, tb), nan=0.0).numpy()
    return float(iou[0, 0]) if single else iou


def paired_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of row ``i`` of ``a`` with row ``i`` of ``b``: the diagonal
    of :func:`box_iou` without the ``(n, n)`` matrix, bit for bit.

    The arithmetic is :func:`torchvision.ops.box_iou`'s (``_box_inter_union``: areas
    ``(x2 - x1) * (y2 - y1)``, intersection ``clamp(min(x2) - max(x1), 0) *
    clamp(min(y2) - max(y1), 0)``, ``inter / (area_a + area_b - inter)``) in the same
    order, in float64 NumPy, so results equal :func:`box_iou`'s exactly (a test checks this
    on real detector boxes); NaN (0 / 0) becomes 0 as there.

    Parameters
    ----------
    a, b
        ``(n, 4)`` ``[x1, y1, x2, y2]`` boxes in pixels (any float or int dtype).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 in [0, 1].

    Raises
    ------
    ValueError
        When the shapes are not both ``(n, 4)``.
    """
    a_arr = np.asarray(a, np.float64).reshape(-1, 4)
    b_arr = np.asarray(b, np.float64).reshape(-1, 4)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired_box_iou needs two (n, 4) arrays, got {a_arr.shape} and "
                         f"{b_arr.shape}")
    area_a = (a_arr[:, 2] - a_arr[:, 0]) * (a_arr[:, 3] - a_arr[:, 1])
    area_b = (b_arr[:, 2] - b_arr[:, 0]) * (b_arr[:, 3] - b_arr[:, 1])
    lt = np.maximum(a_arr[:, :2], b_arr[:, :2])
    rb = np.minimum(a_arr[:, 2:], b_arr[:, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.nan_to_num(iou, nan=0.0)


def valid_box(box: Any) -> bool:
    """Is ``box`` usable: four finite coordinates and a positive area? (YuNet can return
    a NaN box with score 1 for images of a few dozen pixels.)

    Parameters
    ----------
    box
        ``[x1, y1, x2, y2]`` in pixels, or None.

    Returns
    -------
    bool
    """
    if box is None:
        return False
    b = np.asarray(box, float).ravel()
    return b.size == 4 and bool(np.isfinite(b).all()) and b[2] > b[0] and b[3] > b[1]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch models (MTCNN) on one thread: on a loaded 2-core machine torch's default
    intra-op threads spin against each other (measured 2.5 s vs 0.12 s per image).
    When torch is not imported yet it is left so (a warm rerun reads the cache and needs no
    torch, seconds to import); a torch detector imported inside sets its own threads
    (:class:`facelab.models.detectors.mtcnn.MTCNNDetector`, ``num_threads=1``)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Redetection:
    """The clean detections of a set of images (from :func:`clean_detections`).

    Attributes
    ----------
    boxes
        Per image, the valid boxes found, ``(n_i, 4)`` float64 pixels (empty: none).
    landmarks
        Per image, the largest face's ``(5, 2)`` float32 landmarks, or None.
    shapes
        Per image, ``(height, width)`` of the clean image, or None if unreadable.
    reasons
        Per image, why no face was found (``<NA>`` when found).
    """

    boxes: list[np.ndarray]
    landmarks: list[np.ndarray | None]
    shapes: list[tuple[int, int] | None]
    reasons: list[Any]

    def largest(self, i: int) -> np.ndarray | None:
        """Image ``i``'s largest valid box.

        Parameters
        ----------
        i
            Position of the image.

        Returns
        -------
        numpy.ndarray or None
            ``(4,)`` float64 pixels, or None when no face was found.
        """
        b = self.boxes[i]
        return None if len(b) == 0 else b[largest_box_index(b)]

    def rows(self, start: int, stop: int) -> Redetection:
        """The detections of images ``start`` to ``stop - 1`` (positions renumbered from 0).

        Parameters
        ----------
        start, stop
            Positions, as in a slice.

        Returns
        -------
        Redetection
        """
        return Redetection(self.boxes[start:stop], self.landmarks[start:stop],
                           self.shapes[start:stop], self.reasons[start:stop])


class SharedDegradations:
    """Perturbed images computed once per (source image, recipe) and handed to every
    detector that needs them (the degradation study runs six detectors over the same
    degraded copies; computing each copy per detector cost ~7% of a cold notebook 01).

    :meth:`wrap` returns a transform with the recipe's own ``cache_token`` (cache keys are
    unchanged: a warm cache stays valid, and a detector whose entry is cached never asks
    for the pixels). The first detector that needs a copy computes it with the recipe;
    later ones get an equal copy of the kept array. Occlusions key on their landmarks; the
    others ignore landmarks, so detectors with different clean landmarks share one copy.
    Memory is whatever is kept until :meth:`clear`: call it after each block of images
    (:func:`facelab.studies.detection.degradation_records` keeps one block of 32 images x
    all steps). Pickled (``engine="processes"``/``"dask"``), a wrapped transform is the
    plain recipe and computes its copy where it runs.

    Attributes
    ----------
    computed, reused
        Copies computed, and handed out again from the memo, since creation.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple, np.ndarray] = {}
        self.computed = 0
        self.reused = 0

    def __len__(self) -> int:
        return len(self._memo)

    def wrap(self, source: str, recipe: PerturbedImage) -> _SharedPerturbedImage:
        """The transform of ``recipe`` applied to the image at ``source``, shared.

        Parameters
        ----------
        source
            The source image's path (the image the pipeline loads and hands the transform).
        recipe
            The perturbation.

        Returns
        -------
        _SharedPerturbedImage
            An :class:`facelab.extraction.pipeline.ImageTransform` with
            ``recipe.cache_token``.
        """
        needs_lm = PERTURBATIONS[recipe.name].needs_landmarks
        lm = (None if not needs_lm or recipe.landmarks is None
              else recipe.landmarks.tobytes())
        key = (str(source), recipe.name, repr(recipe.param), int(recipe.seed), lm)
        return _SharedPerturbedImage(recipe, key, self)

    def _get(self, key: tuple, recipe: PerturbedImage, image: np.ndarray) -> np.ndarray:
        kept = self._memo.get(key)
        if kept is None:
            kept = self._memo[key] = np.ascontiguousarray(recipe(image))
            self.computed += 1
        else:
            self.reused += 1
        return kept.copy()  # a detector may write into its input; the kept one stays

    def clear(self) -> None:
        """Drop every kept copy."""
        self._memo.clear()


class _SharedPerturbedImage:
    """A :class:`PerturbedImage` whose pixels come from a :class:`SharedDegradations`."""

    __slots__ = ("recipe", "key", "shared")

    def __init__(self, recipe: PerturbedImage, key: tuple, shared: SharedDegradations):
        self.recipe, self.key, self.shared = recipe, key, shared

    @property
    def cache_token(self) -> str:
        """The recipe's token: the cache key of the perturbed image is unchanged."""
        return self.recipe.cache_token

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.shared._get(self.key, self.recipe, image)

    def __reduce__(self):
        return (PerturbedImage, (self.recipe.name, self.recipe.param, self.recipe.seed,
                                 self.recipe.landmarks))


def _detect(frame: pd.DataFrame, detector: str, progress: bool, batch_size: int,
            cache: Any = True) -> Redetection:
    with one_torch_thread():
        feats = extract(frame, detector=detector, heads=(), face_policy="all",
                        progress=progress, batch_size=batch_size, cache=cache)
    n = len(frame)
    boxes: list[list[np.ndarray]] = [[] for _ in range(n)]
    lms: list[list[Any]] = [[] for _ in range(n)]
    shapes: list[tuple[int, int] | None] = [None] * n
    reasons: list[Any] = [pd.NA] * n
    pos_of = {label: pos for pos, label in enumerate(frame.index)}
    for r in feats.itertuples(index=False):
        pos = pos_of[r.image_index]
        if not pd.isna(r.image_height):
            shapes[pos] = (int(r.image_height), int(r.image_width))
        if r.status == "ok" and valid_box(r.box):
            boxes[pos].append(np.asarray(r.box, float))
            lms[pos].append(r.landmarks)
        elif reasons[pos] is pd.NA and r.status != "ok":
            reasons[pos] = r.reason
    out_boxes, out_lms = [], []
    for pos in range(n):
        b = np.array(boxes[pos], float).reshape(-1, 4)
        out_boxes.append(b)
        out_lms.append(lms[pos][largest_box_index(b)] if len(b) else None)
        if not len(b) and reasons[pos] is pd.NA:
            reasons[pos] = "no face detected"
    return Redetection(out_boxes, out_lms, shapes, reasons)


def clean_detections(manifest: pd.DataFrame, detector: str, *, progress: bool = False,
                     batch_size: int = 32) -> Redetection:
    """Detect faces in the unperturbed images (cached through :func:`facelab.extract`).

    Parameters
    ----------
    manifest
        Rows with ``path`` (or ``pixels``).
    detector
        Registered detector name, at its default settings.
    progress
        Show a progress bar.
    batch_size
        Images per batch of the extraction pipeline.

    Returns
    -------
    Redetection
        In manifest order.
    """
    return _detect(manifest, detector, progress, batch_size)


def redetect(manifest: pd.DataFrame, clean: Redetection, steps: Sequence[tuple[str, Any]],
             detector: str, *, seed: int = 0, seeds: Sequence[int] | None = None,
             progress: bool = False, batch_size: int = 32,
             shared: SharedDegradations | None = None, cache: Any = True) -> pd.DataFrame:
    """Perturb every image with every step, detect again and compare with the clean face.

    Parameters
    ----------
    manifest
        Rows with ``path``: the source images, in the order of ``clean``.
    clean
        The clean detections (:func:`clean_detections`) of the same rows: the reference
        face is each image's largest valid box; occlusions use its landmarks.
    steps
        ``(perturbation name, parameter)`` pairs (parameters in the perturbation's unit).
    detector
        Registered detector name.
    seed, seeds
        Noise seed of image ``i`` is ``seeds[i]`` if given, else ``seed + i``.
    progress
        Show a progress bar.
    batch_size
        Images per batch of the extraction pipeline.
    shared
        Perturbed images computed once for several detectors (see
        :class:`SharedDegradations`); None computes them here.
    cache
        The ``cache`` of :func:`facelab.extract` (one
        :class:`~facelab.extraction.cache.ColumnarCache` for many calls reads each segment
        once).

    Returns
    -------
    pandas.DataFrame
        One row per (image position ``pos``, step ``step``), steps in order within each
        image: ``found`` (any valid face), ``n_faces``, ``best_iou`` (largest IoU between a
        detection and the clean face scaled with the image; 0.0 if none, NaN when the
        clean image had no face), ``lost`` (``best_iou < IOU_SAME_FACE``; NA without a
        clean face) and ``reason`` (why nothing was found: the detector found no face, the
        image could not be read, or the perturbation failed).
    """
    n = len(manifest)
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(n)]
    paths = manifest["path"].tolist()
    rows = []
    for i in range(n):
        for name, param in steps:
            recipe = PerturbedImage(name, param, seed=seeds[i], landmarks=clean.landmarks[i])
            rows.append({"path": paths[i], "transform": recipe if shared is None
                         else shared.wrap(paths[i], recipe)})
    frame = pd.DataFrame(rows)
    found = _detect(frame, detector, progress, batch_size, cache)
    out = []
    k = 0
    for i in range(n):
        ref = clean.largest(i)
        for j in range(len(steps)):
            boxes, shape = found.boxes[k], found.shapes[k]
            best: float = float("nan")
            lost: Any = pd.NA
            if ref is not None and clean.shapes[i] is not None and shape is not None:
                sy = shape[0] / clean.shapes[i][0]
                sx = shape[1] / clean.shapes[i][1]
                scaled = ref * np.array([sx, sy, sx, sy])
                # box_iou(scaled[None], boxes).max(), without importing torch
                best = (float(paired_box_iou(np.broadcast_to(scaled, boxes.shape), boxes).max())
                        if len(boxes) else 0.0)
                lost = bool(best < IOU_SAME_FACE)
            out.append({"pos": i, "step": j, "found": bool(len(boxes)),
                        "n_faces": len(boxes), "best_iou": best, "lost": lost,
                        "reason": found.reasons[k]})
            k += 1
    rec = pd.DataFrame(out, columns=["pos", "step", "found", "n_faces", "best_iou", "lost",
                                     "reason"])
    rec["lost"] = rec["lost"].astype("boolean")
    return rec
