"""Batched feature extraction over a manifest: detect -> align -> embed / classify.

:func:`extract` runs a detector and the requested *heads* over every image of a manifest
(see :mod:`facelab.data.datasets`) and returns a features table. Work is grouped into batches
(``detect_batch``, ``embed_batch``, ``predict_crops`` over all faces of a batch), cached
per image and per stage in a content-addressed on-disk cache
(:mod:`facelab.extraction.cache`), shown with a ``tqdm.auto`` progress bar, and runs in
this process, in a pool of local processes, or on a ``dask.distributed`` cluster with
identical results. A bad image never stops the run: it becomes a row with
``status="failed"`` and a ``reason``.

Features table columns (after the manifest's own columns)
--------------------------------------------------------
image_index    the manifest row label the row comes from
face_index     index of the face in the detector's output (score order); NA if none
status         ``"ok"`` or ``"failed"``
reason         why it failed (``<NA>`` when ok)
n_faces        faces the detector found in the image (NA when unreadable)
image_width, image_height
box            ``float32 (4,)`` array ``[x1, y1, x2, y2]`` in image pixels (None if failed)
score          detection score
landmarks      ``float32 (5, 2)`` array in :data:`facelab.core.types.LANDMARK_NAMES` order
embedding      ``float32 (dim,)`` array (head ``"embedding"``; see :func:`stack_embeddings`)
expr_<label>   expression probabilities, one column per model label, and ``expr_label``
               (the most probable label; head ``"expression"``)
pred_<name>    attribute model outputs, e.g. ``pred_gender`` (head ``"attributes"``)
skin_<name>    skin tone from the face's pixels (head ``"skin_tone"``, :mod:`facelab.face.skin`):
               ``skin_tone`` (lighter/darker), ``skin_category``, ``skin_ita``, ...
image_sha256   content address of the image the row describes: SHA-256 of the file
               (``path``), of the array (``pixels``), or, with a ``transform``,
               :func:`~facelab.extraction.cache.make_key` of the source's hash and the
               transform's ``cache_token``

Optional manifest columns
-------------------------
transform      an :class:`ImageTransform` applied to the loaded image before detection
               (e.g. a perturbation of :mod:`facelab.perturb`); ``None`` for none. The
               cache key is the *source* image's content hash plus the transform's
               ``cache_token``, so a warm rerun reads the features without loading or
               transforming the image, and a different transform (or a changed
               implementation, which the token includes) gets a new key.
faces          faces given instead of detecting (``list`` of :class:`~facelab.core.types.Face`
               in the coordinates of the *source* image; ``None`` to detect). When a
               transform changes the image's size, boxes and landmarks are scaled by the
               ratio of the sizes. Their geometry is part of the cache key.

``df.attrs`` records the models (name, weights checksums, options), ``face_policy``,
``engine`` and counts of what was read from the cache and what was computed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from facelab.core.io import ImageError, load_image
from facelab.core.progress import tqdm
from facelab.core.provenance import digest_array, digest_bytes
from facelab.core.types import BatchEmbedder, BatchFaceHead, CropClassifier, Face, largest_box_index
from facelab.extraction.cache import ColumnarCache, FeatureCache, make_key
from facelab.models.onnx_card import register_card
from facelab.models.registry import default_model, get_model, model_spec, weights_checksums

__all__ = ["extract", "stack_embeddings", "HEADS", "FACE_POLICIES", "ENGINES",
           "compute_batch", "resolve_models", "ImageTransform", "WorkItem", "ImageResult"]

#: Head name -> registered model kind.
HEADS: dict[str, str] = {"embedding": "embedder", "expression": "expression",
                         "attributes": "attribute", "skin_tone": "skin_tone"}
FACE_POLICIES: tuple[str, ...] = ("largest", "single", "all")
ENGINES: tuple[str, ...] = ("local", "processes", "dask")
#: ``extract`` merges the cache's Parquet segments once there are more than this many.
COMPACT_AFTER = 64
_PREFIX = {"expression": "expr_", "attributes": "pred_", "skin_tone": "skin_"}
ModelChoice = str | tuple[str, dict] | None
#: A stage's cache record: named NumPy arrays (the format of :mod:`facelab.extraction.cache`).
Record = dict[str, np.ndarray]


@runtime_checkable
class ImageTransform(Protocol):
    """A deterministic change of an image's pixels, applied before detection (manifest
    column ``transform``). It must be picklable for ``engine="processes"``/``"dask"``.

    Attributes
    ----------
    cache_token
        A string that changes whenever the output pixels could change: the transform's
        name, parameters, seed and a digest of its implementation. Combined with the
        source image's content hash it is the cache key of the transformed image.
    """

    cache_token: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@dataclass
class WorkItem:
    """One image sent to :func:`compute_batch` (pickled to workers).

    Attributes
    ----------
    source
        Path (str, remote engines), file bytes, or an ``(H, W, 3)`` uint8 array.
    need
        Stages to compute (``"detect"`` and/or head names).
    det
        The cached detection record when ``"detect"`` is not needed, else ``None``.
    transform
        Applied to the loaded image first (:class:`ImageTransform`), or ``None``.
    faces
        Faces given instead of detecting (source image coordinates), or ``None``.
    """

    source: Any
    need: list[str]
    det: Record | None = None
    transform: ImageTransform | None = None
    faces: list[Face] | None = None


@dataclass
class ImageResult:
    """What :func:`compute_batch` returns for one image.

    Attributes
    ----------
    records
        ``{stage: record}`` for every stage computed.
    transient
        Stages whose failure was unexpected (a model error): reported, never cached.
    """

    records: dict[str, Record] = field(default_factory=dict)
    transient: set[str] = field(default_factory=set)


@dataclass
class _Unit:
    """The driver's view of one manifest row: the work item and its cache keys."""

    item: WorkItem
    keys: dict[str, str]


@dataclass
class _ImageState:
    """What is known about one manifest row while :func:`extract` runs.

    Attributes
    ----------
    sha
        Content address of the image (see the ``image_sha256`` column), or ``None``.
    error
        Why the row has no image at all (unreadable file, nothing given), or ``None``.
    records
        ``{stage: record}`` read from the cache or computed.
    cached
        Stages read from the cache.
    """

    sha: str | None = None
    error: str | None = None
    records: dict[str, Record] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- config

def _choice(value: ModelChoice, kind: str) -> tuple[str, dict]:
    if value is None:
        return default_model(kind), {}
    if isinstance(value, str):
        return value, {}
    name, options = value
    return name, dict(options or {})


def resolve_models(detector: ModelChoice = "yunet", heads: Sequence[str] = ("embedding",),
                   models: dict[str, ModelChoice] | None = None,
                   detector_options: dict | None = None) -> dict[str, dict]:
    """The model of each stage (detector and heads), as the cache keys record it.

    Parameters
    ----------
    detector
        Registered detector name, model card path (``.yaml``), or ``(name, options)``.
    heads
        Head names (keys of :data:`HEADS`).
    models
        ``{head: name or (name, options)}``; a head not given uses its kind's default
        model (:func:`facelab.models.registry.default_model`).
    detector_options
        Options merged over the detector's (these win).

    Returns
    -------
    dict
        ``{stage: {"name", "kind", "options", "weights"}}`` (stage ``"detect"`` then each
        head), with weights checksums from
        :func:`facelab.models.registry.weights_checksums`, plus ``"revision"`` and
        ``"card"`` when the model has them.

    Raises
    ------
    ValueError
        A head not in :data:`HEADS`.
    facelab.models.registry.ModelError
        An unknown model name (from :func:`facelab.models.registry.model_spec`).
    """
    models = dict(models or {})
    unknown = set(heads) - set(HEADS)
    if unknown:
        raise ValueError(f"unknown heads {sorted(unknown)}; heads are {sorted(HEADS)}")
    name, opts = _choice(detector, "detector")
    out = {"detect": {"name": name, "kind": "detector",
                      "options": {**opts, **(detector_options or {})}}}
    for head in heads:
        name, opts = _choice(models.get(head), HEADS[head])
        out[head] = {"name": name, "kind": HEADS[head], "options": opts}
    for stage in out.values():
        # unknown names fail here; a model card path (.yaml) becomes the card's name
        spec = model_spec(stage["name"], stage["kind"])
        stage["name"] = spec.name
        stage["weights"] = weights_checksums(stage["name"])
        if spec.revision:
            stage["revision"] = spec.revision
        card = getattr(spec.factory, "card_path", None)
        if card:  # worker processes register the card again (not part of the cache key)
            stage["card"] = str(card)
    return out


# --------------------------------------------------------------------------- workers

def _model(stage: dict) -> Any:
    """The stage's model: one shared instance per process (and per name + options), from
    :func:`facelab.models.registry.get_model`."""
    if stage.get("card"):
        register_card(stage["card"])  # no-op when this process knows it already
    return get_model(stage["name"], stage["kind"], **stage["options"])


def _init_worker() -> None:
    """Process-pool initializer: one thread per worker, the pool supplies the parallelism."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def _faces_from(rec: Record) -> list[Face]:
    faces = []
    for box, score, lm in zip(rec["boxes"], rec["scores"], rec["landmarks"], strict=True):
        faces.append(Face(box=box, score=float(score),
                          landmarks=None if np.isnan(lm).any() else lm))
    return faces


def _det_record(faces: list[Face] | None, shape: tuple[int, ...] | None,
                error: str = "") -> Record:
    faces = faces or []
    n = len(faces)
    lms = np.full((n, 5, 2), np.nan, np.float32)
    for i, f in enumerate(faces):
        if f.landmarks is not None:
            lms[i] = f.landmarks
    return {
        "boxes": np.array([f.box for f in faces], np.float32).reshape(n, 4),
        "scores": np.array([f.score for f in faces], np.float32).reshape(n),
        "landmarks": lms,
        "shape": np.array(shape[:2] if shape else (0, 0), np.int64),
        "error": np.array(error),
    }


def _select(rec: Record, policy: str) -> tuple[list[int], str]:
    """Indices of the faces the heads run on, or ``([], reason)``."""
    n = len(rec["scores"])
    if n == 0:
        return [], "no face detected"
    if policy == "all":
        return list(range(n)), ""
    if policy == "single":
        if n != 1:
            return [], f"{n} faces detected; face_policy='single' expects exactly one"
        return [0], ""
    return [largest_box_index(rec["boxes"])], ""


def _encode_frame(df: pd.DataFrame, faces: list[int]) -> Record:
    """A head's per-face DataFrame as pickle-free arrays."""
    rec: Record = {"faces": np.array(faces, np.int64)}
    spec = []
    for i, col in enumerate(df.columns):
        values = df[col].to_numpy()
        if values.dtype.kind in "biuf":
            rec[f"c{i}"] = values
            spec.append([str(col), "array"])
        else:
            rec[f"c{i}"] = np.array(json.dumps([None if pd.isna(v) else str(v) for v in values]))
            spec.append([str(col), "json"])
    rec["columns"] = np.array(json.dumps(spec))
    return rec


def _decode_frame(rec: Record) -> pd.DataFrame:
    spec = json.loads(str(rec["columns"]))
    data = {}
    for i, (col, how) in enumerate(spec):
        data[col] = rec[f"c{i}"] if how == "array" else json.loads(str(rec[f"c{i}"]))
    return pd.DataFrame(data, columns=[c for c, _ in spec])


def _run_head(head: str, model: Any, images: list[np.ndarray], faces: list[list[Face]]
              ) -> list[Record]:
    """One head over a batch of images (batched when the model declares a batch API:
    :class:`~facelab.core.types.BatchEmbedder`, :class:`~facelab.core.types.CropClassifier`,
    :class:`~facelab.core.types.BatchFaceHead`)."""
    if head == "embedding":
        if isinstance(model, BatchEmbedder):
            embs = model.embed_batch(images, faces)
        else:
            embs = [model.embed(im, fs) for im, fs in zip(images, faces, strict=True)]
        return [{"embedding": np.asarray(e, np.float32)} for e in embs]
    if isinstance(model, CropClassifier):
        crops = [model.crops(im, fs) for im, fs in zip(images, faces, strict=True)]
        probs = model.predict_crops(np.concatenate(crops)) if crops else None
        labels = list(model.labels)
        frames, start = [], 0
        for c in crops:
            frames.append(pd.DataFrame(probs[start:start + len(c)], columns=labels))
            start += len(c)
    elif isinstance(model, BatchFaceHead):
        frames = list(model.predict_batch(images, faces))
    else:
        frames = [model.predict(im, fs) for im, fs in zip(images, faces, strict=True)]
    return [_encode_frame(f.reset_index(drop=True), []) for f in frames]


def _scaled_faces(faces: list[Face], before: tuple[int, ...], after: tuple[int, ...]
                  ) -> list[Face]:
    """Given faces moved from an image of shape ``before`` to one of shape ``after``
    (boxes and landmarks scaled by the ratio of the sizes, in float32)."""
    if tuple(before[:2]) == tuple(after[:2]):
        return faces
    s = np.array([after[1] / before[1], after[0] / before[0]], np.float32)
    return [Face(box=f.box * np.tile(s, 2), score=f.score,
                 landmarks=None if f.landmarks is None else f.landmarks * s,
                 detector=f.detector) for f in faces]


def compute_batch(config: dict, units: list[WorkItem]) -> list[ImageResult]:
    """Compute the missing stages of a batch of images (runs in any worker).

    Parameters
    ----------
    config
        ``{"stages": resolve_models(...), "policy": face_policy}``.
    units
        One :class:`WorkItem` per image.

    Returns
    -------
    list of ImageResult
        Per unit, the records computed and the stages whose failure was unexpected (not
        cached). An unreadable image or a failing transform gives a detection record with
        its ``error``, which is cached (it is a property of the content).
    """
    stages = config["stages"]
    out = [ImageResult() for _ in units]
    images: list[np.ndarray | None] = [None] * len(units)
    dets: list[Record | None] = [u.det for u in units]
    for i, u in enumerate(units):
        if not u.need:
            continue
        try:
            images[i] = load_image(u.source)
        except ImageError as exc:
            if dets[i] is None:
                dets[i] = out[i].records["detect"] = _det_record(
                    None, None, f"ImageError: {exc.reason}")
            continue
        if u.transform is not None:
            before = images[i].shape
            try:
                images[i] = np.ascontiguousarray(u.transform(images[i]))
            except Exception as exc:  # noqa: BLE001 - a failing transform becomes a record
                images[i] = None
                if dets[i] is None:
                    dets[i] = out[i].records["detect"] = _det_record(
                        None, None, f"transform failed: {type(exc).__name__}: {exc}")
                continue
        else:
            before = images[i].shape
        if dets[i] is None and u.faces is not None:
            given = _scaled_faces(list(u.faces), before, images[i].shape)
            dets[i] = out[i].records["detect"] = _det_record(given, images[i].shape)
    todo = [i for i, u in enumerate(units) if dets[i] is None and images[i] is not None]
    if todo:
        detector = _model(stages["detect"])
        try:
            found = detector.detect_batch([images[i] for i in todo])
        except Exception:  # isolate the image that breaks the batch
            found = []
            for i in todo:
                try:
                    found.append(detector.detect(images[i]))
                except Exception as exc:
                    found.append(exc)
        for i, faces in zip(todo, found, strict=True):
            if isinstance(faces, Exception):
                dets[i] = out[i].records["detect"] = _det_record(
                    None, images[i].shape, f"detector error: {type(faces).__name__}: {faces}")
                out[i].transient.add("detect")
            else:
                dets[i] = out[i].records["detect"] = _det_record(faces, images[i].shape)
    for head in [s for s in stages if s != "detect"]:
        idx, sel_faces = [], []
        for i, u in enumerate(units):
            if head not in u.need or images[i] is None or str(dets[i]["error"]):
                continue
            sel, _ = _select(dets[i], config["policy"])
            if sel:
                all_faces = _faces_from(dets[i])
                idx.append(i)
                sel_faces.append([all_faces[j] for j in sel])
        if not idx:
            continue
        model = _model(stages[head])
        try:
            recs = _run_head(head, model, [images[i] for i in idx], sel_faces)
        except Exception:
            recs = []
            for i, fs in zip(idx, sel_faces, strict=True):
                try:
                    recs.extend(_run_head(head, model, [images[i]], [fs]))
                except Exception as exc:
                    recs.append({"error": np.array(f"{head} error: {type(exc).__name__}: {exc}")})
        for i, rec in zip(idx, recs, strict=True):
            rec["faces"] = np.array(_select(dets[i], config["policy"])[0], np.int64)
            out[i].records[head] = rec
            if "error" in rec:
                out[i].transient.add(head)
    return out


# --------------------------------------------------------------------------- driver

def _as_manifest(manifest: pd.DataFrame | Iterable[str | os.PathLike] | str | os.PathLike
                 ) -> pd.DataFrame:
    if isinstance(manifest, pd.DataFrame):
        if "path" not in manifest and "pixels" not in manifest:
            raise ValueError("the manifest needs a 'path' column (or 'pixels' arrays)")
        return manifest
    if isinstance(manifest, str | os.PathLike):
        manifest = [manifest]
    return pd.DataFrame({"path": [str(p) for p in manifest]})


def _chunks(seq: list, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def extract(
    manifest: pd.DataFrame | Iterable[str | os.PathLike] | str | os.PathLike,
    *,
    detector: ModelChoice = "yunet",
    heads: Sequence[str] = ("embedding",),
    models: dict[str, ModelChoice] | None = None,
    batch_size: int = 32,
    cache: bool | str | os.PathLike | FeatureCache | ColumnarCache = True,
    engine: str = "local",
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    face_policy: str = "largest",
    detector_options: dict | None = None,
) -> pd.DataFrame:
    """Detect faces and run the requested heads over every image of a manifest.

    Parameters
    ----------
    manifest
        A manifest DataFrame (``path`` column, or ``pixels`` arrays), or image paths.
    detector
        Registered detector name, or ``(name, options)``.
    heads
        Any of ``"embedding"`` (default model: the default embedder, ``sface``),
        ``"expression"`` (``fer-mini-xception``) and ``"attributes"`` (default attribute
        model) and ``"skin_tone"`` (``ita-v2``, :mod:`facelab.face.skin`). Empty: detection
        only.
    models
        ``{head: name or (name, options)}`` overriding the default model of a head.
    batch_size
        Images per batch (one ``detect_batch`` / ``embed_batch`` / ``predict_crops`` call).
    cache
        ``True``: a :class:`~facelab.extraction.cache.ColumnarCache` (Parquet segments, which also
        reads older npz entries) in ``facelab.core.config.cache_dir()/features``; a folder for
        one; a :class:`~facelab.extraction.cache.ColumnarCache` or
        :class:`~facelab.extraction.cache.FeatureCache` (one npz file per entry); ``False``: no
        cache.
    engine
        ``"local"`` (this process), ``"processes"`` (a ``ProcessPoolExecutor`` of
        ``workers`` processes, one model instance each) or ``"dask"``
        (``dask.distributed``; give ``scheduler`` as an address or a ``Client``, or have a
        default client). Workers must see the image paths. Results are identical.
    workers
        Processes for ``engine="processes"`` (default: CPU count).
    scheduler
        ``engine="dask"`` only: a ``distributed.Client`` or a scheduler address (a client
        is opened and closed here); default the current client (``get_client()``).
    progress
        Show a ``tqdm.auto`` progress bar.
    face_policy
        ``"largest"``: one row per image, heads on the largest face; ``"single"``: like
        largest but an image with several faces fails; ``"all"``: one row per face.
    detector_options
        Options passed to the detector factory (e.g. ``{"score_threshold": 0.8}``).

    Returns
    -------
    pandas.DataFrame
        The manifest's columns plus the feature columns described in
        :mod:`facelab.extraction.pipeline`.
        With ``face_policy`` ``"largest"``/``"single"`` the index is the manifest's index.

    Raises
    ------
    ValueError
        An unknown ``face_policy``, ``engine`` or head, or ``batch_size`` below 1.
    facelab.models.registry.ModelError
        An unknown model name (from :func:`resolve_models`).
    """
    if face_policy not in FACE_POLICIES:
        raise ValueError(f"face_policy must be one of {FACE_POLICIES}, got {face_policy!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    frame = _as_manifest(manifest)
    stages = resolve_models(detector, heads, models, detector_options)
    config = {"stages": stages, "policy": face_policy}
    store = (cache if isinstance(cache, FeatureCache | ColumnarCache) else
             ColumnarCache(None if cache is True else cache)) if cache is not False else None

    units, states = _prepare(frame, stages, face_policy, store, remote=engine != "local")
    computed = {s: 0 for s in stages}
    todo = [i for i, u in enumerate(units) if u is not None and u.item.need]
    bar = tqdm(total=len(frame), disable=not progress, desc=f"facelab.extract [{engine}]",
               unit="img")
    # the user sees how much came from the cache (also in the result's attrs)
    bar.set_postfix_str(f"{len(frame) - len(todo)} from cache, {len(todo)} to compute",
                        refresh=False)
    bar.update(len(frame) - len(todo))
    batches = list(_chunks(todo, batch_size))

    def finish(batch: list[int], results: list[ImageResult]) -> None:
        for i, res in zip(batch, results, strict=True):
            for stage, rec in res.records.items():
                states[i].records[stage] = rec
                computed[stage] += 1
                if store is not None and stage not in res.transient:
                    store.put(units[i].keys[stage], rec)
        if isinstance(store, ColumnarCache):
            store.flush()  # one segment per batch: a kill loses at most the batch in flight
        bar.update(len(batch))

    def payload(batch: list[int]) -> list[WorkItem]:
        return [units[i].item for i in batch]

    if engine == "local":
        for b in batches:
            finish(b, compute_batch(config, payload(b)))
    elif engine == "processes":
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                                 mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            _run_pool(lambda b: pool.submit(compute_batch, config, payload(b)), batches, finish,
                      window=2 * (workers or os.cpu_count() or 1))
    else:
        _run_dask(config, batches, payload, finish, scheduler)
    bar.close()
    if isinstance(store, ColumnarCache):
        # merge this run's per-batch segments into one (warm reads open one file per
        # segment), and everything once there are many; skipped if another process is
        # compacting
        if len(store.segments()) > COMPACT_AFTER:
            store.compact(wait=False)
        elif len(store.written) > 1:
            store.compact(wait=False, segments=store.written)
    out = _assemble(frame, states, stages, face_policy)
    out.attrs = {
        "models": {s: {k: v for k, v in st.items()} for s, st in stages.items()},
        "face_policy": face_policy, "engine": engine, "images": len(frame),
        "computed": computed,
        "from_cache": {s: sum(1 for st in states if s in st.cached) for s in stages},
        "cache_dir": str(store.root) if store is not None else None,
        "corrupt_entries": store.corrupt if store is not None else 0,
    }
    return out


def _run_pool(submit, batches, finish, window: int) -> None:
    pending: dict = {}
    queue = list(batches)
    while queue or pending:
        while queue and len(pending) < window:
            b = queue.pop(0)
            pending[submit(b)] = b
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in done:
            finish(pending.pop(fut), fut.result())


def _run_dask(config, batches, payload, finish, scheduler) -> None:
    from distributed import Client, as_completed, get_client

    own = False
    if isinstance(scheduler, Client):
        client = scheduler
    elif scheduler is None:
        client = get_client()
    else:
        client, own = Client(scheduler), True
    try:
        futures = [client.submit(compute_batch, config, payload(b), pure=False)
                   for b in batches]
        batch_of = {f.key: b for f, b in zip(futures, batches, strict=True)}
        for fut in as_completed(futures):
            finish(batch_of[fut.key], fut.result())
    finally:
        if own:
            client.close()


def _geometry_digest(faces: Sequence[Face]) -> str:
    """Content address of given faces (boxes, scores, landmarks as float32)."""
    n = len(faces)
    boxes = np.array([f.box for f in faces], np.float32).reshape(n, 4)
    scores = np.array([f.score for f in faces], np.float32).reshape(n)
    lms = np.full((n, 5, 2), np.nan, np.float32)
    for i, f in enumerate(faces):
        if f.landmarks is not None:
            lms[i] = f.landmarks
    return digest_array(np.concatenate([boxes.ravel(), scores, lms.ravel()]))


def _column(frame: pd.DataFrame, name: str) -> list:
    return frame[name].tolist() if name in frame else [None] * len(frame)


def _missing(value: Any) -> bool:
    return value is None or (np.isscalar(value) and pd.isna(value))


def _prepare(frame: pd.DataFrame, stages: dict, policy: str,
             store: FeatureCache | ColumnarCache | None, remote: bool
             ) -> tuple[list[_Unit | None], list[_ImageState]]:
    """Hash every image, look its stages up in the cache and list what must be computed.

    A file's bytes are read and hashed once per call, however many rows use it (e.g. one
    row per perturbation of the same photo)."""
    units: list[_Unit | None] = []
    states: list[_ImageState] = []
    heads = [s for s in stages if s != "detect"]
    files: dict[str, tuple[str, bytes] | str] = {}  # path -> (digest, bytes) or error
    for path, pix, transform, faces in zip(_column(frame, "path"), _column(frame, "pixels"),
                                           _column(frame, "transform"),
                                           _column(frame, "faces"), strict=True):
        if isinstance(path, str | os.PathLike) and not pd.isna(path):
            key = str(path)
            if key not in files:
                try:
                    data = Path(path).read_bytes()
                    files[key] = (digest_bytes(data), data)
                except OSError as exc:
                    files[key] = ("file not found" if isinstance(exc, FileNotFoundError) else
                                  f"cannot read file ({exc.strerror or exc})")
            got = files[key]
            if isinstance(got, str):
                units.append(None)
                states.append(_ImageState(error=f"ImageError: {got}"))
                continue
            digest, source = got[0], (key if remote else got[1])
        elif not _missing(pix):
            arr = np.asarray(pix)
            digest, source = digest_array(arr), arr
        else:
            units.append(None)
            states.append(_ImageState(error="ImageError: no path and no pixels"))
            continue
        transform = None if _missing(transform) else transform
        if transform is not None:
            # what isinstance(transform, ImageTransform) checks (the runtime Protocol check
            # costs ~50 us a row: 2 s of a warm notebook 01 with 50k perturbed rows)
            if not (callable(transform) and hasattr(transform, "cache_token")):
                raise TypeError(f"manifest column 'transform' holds {type(transform).__name__}, "
                                "not an ImageTransform (a callable with a cache_token)")
            digest = make_key(image=digest, transform=transform.cache_token)
        faces = None if _missing(faces) else list(faces)
        if faces is None:
            det_key = make_key(stage="detect", image=digest, **_ident(stages["detect"]))
        else:
            det_key = make_key(stage="faces", image=digest, faces=_geometry_digest(faces))
        keys = {"detect": det_key}
        for h in heads:
            keys[h] = make_key(stage=h, det=det_key, policy=policy, **_ident(stages[h]))
        units.append(_Unit(item=WorkItem(source=source, need=[], transform=transform,
                                         faces=faces), keys=keys))
        states.append(_ImageState(sha=digest))
    wanted = [k for u in units if u is not None for k in u.keys.values()]
    if store is None:
        found = {}
    elif isinstance(store, ColumnarCache):  # one read per segment
        found = store.get_many(wanted)
    else:
        found = {k: rec for k in wanted if (rec := store.get(k)) is not None}
    for unit, state in zip(units, states, strict=True):
        if unit is None:
            continue
        for s, k in unit.keys.items():
            if k in found:
                state.records[s] = found[k]
                state.cached.add(s)
        det = state.records.get("detect")
        if det is None:
            need = ["detect", *[h for h in heads if h not in state.records]]
        elif str(det["error"]) or not _select(det, policy)[0]:
            need = []
        else:
            need = [h for h in heads if h not in state.records]
        unit.item.need, unit.item.det = need, det
    return units, states


def _ident(stage: dict) -> dict:
    ident = {"model": stage["name"], "weights": stage["weights"], "options": stage["options"]}
    if stage.get("revision"):
        ident["revision"] = stage["revision"]  # how the weights are run (registry)
    return ident


def _assemble(frame: pd.DataFrame, states: list[_ImageState], stages: dict, policy: str
              ) -> pd.DataFrame:
    heads = [s for s in stages if s != "detect"]
    rows: list[dict] = []
    positions: list[int] = []
    for pos, state in enumerate(states):
        got = state.records
        base = {"image_index": frame.index[pos], "face_index": pd.NA, "status": "failed",
                "reason": pd.NA, "n_faces": pd.NA, "image_width": pd.NA, "image_height": pd.NA,
                "box": None, "score": np.nan, "landmarks": None,
                "image_sha256": state.sha if state.sha is not None else pd.NA}
        det = got.get("detect")
        if det is None:
            rows.append({**base, "reason": state.error or "not computed"})
            positions.append(pos)
            continue
        h, w = (int(v) for v in det["shape"])
        base.update(image_height=h or pd.NA, image_width=w or pd.NA)
        if str(det["error"]):
            rows.append({**base, "reason": str(det["error"])})
            positions.append(pos)
            continue
        base["n_faces"] = len(det["scores"])
        sel, why = _select(det, policy)
        if not sel:
            rows.append({**base, "reason": why})
            positions.append(pos)
            continue
        head_rows = {hd: _head_rows(hd, got.get(hd)) for hd in heads}
        for j in sel:
            lm = det["landmarks"][j]
            row = {**base, "face_index": j, "status": "ok", "box": det["boxes"][j].copy(),
                   "score": float(det["scores"][j]),
                   "landmarks": None if np.isnan(lm).any() else lm.copy()}
            for hd in heads:
                values, error = head_rows[hd]
                if error:
                    row.update(status="failed", reason=error)
                row.update(values.get(j, {}))
            rows.append(row)
            positions.append(pos)
    feats = pd.DataFrame(rows)
    base_cols = frame.iloc[positions].reset_index(drop=True)
    out = pd.concat([base_cols, feats.reset_index(drop=True)], axis=1)
    for col in ("face_index", "n_faces", "image_width", "image_height"):
        out[col] = out[col].astype("Int64")
    for col in ("status", "reason", "image_sha256"):
        out[col] = out[col].astype("string")
    if policy != "all":
        out.index = frame.index
    return out


def _head_rows(head: str, rec: Record | None) -> tuple[dict[int, dict], str]:
    """``({face index: {column: value}}, error)`` for one image's head record."""
    if rec is None:
        return {}, f"{head} not computed"
    if "error" in rec:
        return {}, str(rec["error"])
    faces = [int(f) for f in rec["faces"]]
    if head == "embedding":
        return {j: {"embedding": rec["embedding"][k].copy()} for k, j in enumerate(faces)}, ""
    columns = _decode_columns(rec)
    prefix = _PREFIX[head]
    out: dict[int, dict] = {}
    for k, j in enumerate(faces):
        values = {f"{prefix}{c}": (v[k].item() if isinstance(v[k], np.generic) else v[k])
                  for c, v in columns}
        if head == "expression":
            probs = {c: values[f"{prefix}{c}"] for c, _ in columns}
            values["expr_label"] = max(probs, key=probs.get)
        out[j] = values
    return out, ""


def _decode_columns(rec: Record) -> list[tuple[str, Any]]:
    """:func:`_decode_frame` without building a DataFrame (the warm-read hot path), with
    the same row values as ``_decode_frame(rec).iloc[k]``: numeric columns share one
    dtype (pandas' common type) unless a column is not numeric or bools mix with numbers."""
    spec = json.loads(str(rec["columns"]))
    # text columns: a missing value reads back as NaN, as pandas' string dtype gives it
    cols = [(col, rec[f"c{i}"] if how == "array" else
             [np.nan if v is None else v for v in json.loads(str(rec[f"c{i}"]))])
            for i, (col, how) in enumerate(spec)]
    arrays = [v for _, v in cols if isinstance(v, np.ndarray)]
    if cols and len(arrays) == len(cols):
        kinds = {a.dtype.kind for a in arrays}
        if not ("b" in kinds and len(kinds) > 1):
            common = np.result_type(*arrays)
            cols = [(c, v.astype(common, copy=False)) for c, v in cols]
    return cols


def stack_embeddings(features: pd.DataFrame, column: str = "embedding") -> np.ndarray:
    """The embedding column as one ``(n_rows, dim)`` float32 matrix.

    Parameters
    ----------
    features
        Output of :func:`extract` (one vector or ``None`` per row).
    column
        The column holding the vectors.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, dim)`` float32, rows in the frame's order, all-NaN where the vector
        is ``None``; ``dim`` is the first vector's length (0 when there is none).
    """
    vectors = features[column].tolist()
    dim = next((len(v) for v in vectors if v is not None), 0)
    out = np.full((len(vectors), dim), np.nan, np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            out[i] = v
    return out
