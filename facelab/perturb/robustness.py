"""Robustness: how often detection, matching, expression and gender outputs change when
an image is degraded, per demographic group, each rate with its count and Wilson interval.

Perturbations (:data:`PERTURBATIONS`) come in severity levels 1..3 (``"none"`` is the
control: an unchanged copy). Each is a pure function of the image, its parameter, the
face's landmarks (occlusions) and a seed (noise), so reruns are identical.

How a change is counted, per image with a face found in the clean image (largest face):

* **detection**: no face in the perturbed image overlaps the clean face (IoU >= 0.5
  after scaling) -> the face is lost.
* **matching**: the clean face and the perturbed face (same geometry) are compared with
  the embedder at its default threshold; a similarity below it flips the same-person
  decision (a false non-match caused by the perturbation).
* **expression**: the top expression label differs from the clean one.
* **gender**: the predicted gender differs from the clean one.

Matching, expression and gender use the clean face's geometry (box and landmarks scaled
with the image), so they measure each model's sensitivity to the degradation itself,
apart from detection failures, which the detection row counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.progress import tqdm
from facelab.core.types import Face
from facelab.extraction.pipeline import extract
from facelab.metrics.intervals import binomial_ci
from facelab.models.registry import get_model
from facelab.perturb.perturbations import (
    PERTURBATIONS,
    Perturbation,
    PerturbedImage,
    list_perturbations,
    occlusion_box,
    perturb,
)
from facelab.perturb.redetect import IOU_SAME_FACE, Redetection, redetect

__all__ = ["Perturbation", "PERTURBATIONS", "TASKS", "perturb", "list_perturbations",
           "occlusion_box", "robustness_records", "summarise_robustness", "robustness_table"]

TASKS: tuple[str, ...] = ("detection", "matching", "expression", "gender")
#: The extraction head (:data:`facelab.extraction.pipeline.HEADS`) behind each model task.
_HEAD_OF_TASK = {"matching": "embedding", "expression": "expression", "gender": "attributes"}


def _plan(perturbations, levels) -> list[tuple[str, int, object]]:
    names = list(perturbations) if perturbations is not None else list(PERTURBATIONS)
    plan = []
    for name in names:
        p = PERTURBATIONS[name]
        wanted = levels if levels is not None and name != "none" else range(1, len(p.params) + 1)
        plan += [(name, int(lv), p.params[int(lv) - 1]) for lv in wanted]
    return plan


def _task_values(row: Any, tasks: Sequence[str]) -> dict[str, Any]:
    """The outputs a features row (:func:`facelab.extract`) gives for each model task."""
    out: dict[str, Any] = {}
    if "matching" in tasks:
        out["matching"] = np.asarray(row.embedding, np.float32)
    if "expression" in tasks:
        out["expression"] = str(row.expr_label)
    if "gender" in tasks:
        out["gender"] = str(row.pred_gender)
    return out


def _acquire_reason(row: Any) -> str:
    """Why a clean image gives no outcome, in the words the records always used."""
    if pd.isna(row.n_faces):
        return f"load/detect failed: {row.reason}"
    if int(row.n_faces) == 0:
        return "no face in the clean image"
    return f"clean outputs failed: {row.reason}"


def robustness_records(manifest: pd.DataFrame, perturbations: Sequence[str] | None = None, *,
                       tasks: Sequence[str] = TASKS, levels: Sequence[int] | None = None,
                       limit: int | None = None, seed: int = 0, detector: str = "yunet",
                       embedder: str = "sface", expression: str = "fer-mini-xception",
                       attribute: str = "age-gender", progress: bool = True,
                       batch_size: int = 32) -> pd.DataFrame:
    """Per image, perturbation, level and task: did the output change?

    Everything runs through :func:`facelab.extract`: the clean images (largest face), the
    perturbed images with the clean face's geometry given (scaled with the image) for
    the model tasks, and the perturbed images detected again for the detection task
    (:func:`facelab.perturb.redetect.redetect`). Perturbed images are cached under the
    source image's hash plus the perturbation's recipe
    (:class:`~facelab.perturb.perturbations.PerturbedImage`), so a warm rerun reads every
    output from the cache without perturbing an image or running a model.

    Parameters
    ----------
    manifest
        Rows with ``path`` and label columns (e.g. ``load_dataset("cfd")``).
    perturbations
        Keys of :data:`PERTURBATIONS` (default: all, including the ``"none"`` control).
    tasks
        Any of :data:`TASKS`; only the models these need run.
    levels
        Severity levels to run (default 1, 2, 3).
    limit, seed
        At most ``limit`` images (seeded sample); image ``i`` of the sample is perturbed
        with noise seed ``seed + i``.
    detector, embedder, expression, attribute
        Registered model names used by the tasks.
    progress
        Show progress bars.
    batch_size
        Images per batch of the extraction pipeline.

    Returns
    -------
    pandas.DataFrame
        One row per (image, perturbation, level, task) with columns ``row`` (manifest
        index), ``perturbation, level, param, task, changed`` (bool, NA when the task
        could not be run), ``value`` (IoU with the clean face for detection, similarity
        for matching, the perturbed label otherwise), ``clean`` (the clean label),
        ``reason`` (why a row has no outcome) and the manifest's own columns. Images whose
        clean version cannot be loaded or has no face get one row with ``task="acquire"``
        and the reason (failure to acquire): they are excluded from every rate.

    Raises
    ------
    ValueError
        For an unknown task.
    KeyError
        For an unknown perturbation.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; tasks are {TASKS}")
    if limit is not None and len(manifest) > limit:
        manifest = manifest.sample(n=limit, random_state=seed).sort_index()
    plan = _plan(perturbations, levels)
    names = {"matching": embedder, "expression": expression, "gender": attribute}
    model_tasks = [t for t in TASKS if t in tasks and t in _HEAD_OF_TASK]
    heads = tuple(_HEAD_OF_TASK[t] for t in model_tasks)
    models = {_HEAD_OF_TASK[t]: names[t] for t in model_tasks}
    emb = get_model(embedder, "embedder") if "matching" in tasks else None
    opts = {"detector": detector, "progress": progress, "batch_size": batch_size}

    clean_feats = extract(manifest[["path"]], heads=heads, models=models,
                          face_policy="largest", **opts)
    rows_of: dict[int, list[dict]] = {}
    ok: list[int] = []  # positions with a clean face and clean outputs
    faces: dict[int, Face] = {}
    clean: dict[int, dict[str, Any]] = {}
    shapes: dict[int, tuple[int, int]] = {}
    for i, (idx, r) in enumerate(zip(manifest.index, clean_feats.itertuples(index=False),
                                     strict=True)):
        if r.status != "ok":
            rows_of[i] = [{"row": idx, "task": "acquire", "reason": _acquire_reason(r)}]
            continue
        ok.append(i)
        faces[i] = Face(box=r.box, score=r.score, landmarks=r.landmarks, detector=detector)
        clean[i] = _task_values(r, model_tasks)
        shapes[i] = (int(r.image_height), int(r.image_width))
        rows_of[i] = []

    steps = [(name, param) for name, _, param in plan]
    if model_tasks and ok:
        frame = pd.DataFrame([
            {"path": manifest["path"].iloc[i], "faces": [faces[i]],
             "transform": PerturbedImage(name, param, seed=seed + i,
                                         landmarks=faces[i].landmarks)}
            for i in ok for name, param in steps])
        pert_feats = list(extract(frame, heads=heads, models=models, face_policy="largest",
                                  **opts).itertuples(index=False))
    if "detection" in tasks and ok:
        ref = Redetection(boxes=[faces[i].box.astype(np.float64)[None] for i in ok],
                          landmarks=[faces[i].landmarks for i in ok],
                          shapes=[shapes[i] for i in ok], reasons=[pd.NA] * len(ok))
        found = redetect(manifest.iloc[ok], ref, steps, detector, seeds=[seed + i for i in ok],
                         progress=progress, batch_size=batch_size)
        found = list(found.itertuples(index=False))
    k = 0
    for i in tqdm(ok, desc="robustness", disable=not progress):
        idx = manifest.index[i]
        for name, level, param in plan:
            head = {"row": idx, "perturbation": name, "level": level, "param": param}
            out = []
            det = found[k] if "detection" in tasks else None
            feat = pert_feats[k] if model_tasks else None
            k += 1
            failed = [str(x.reason) for x in (det, feat) if x is not None
                      and isinstance(x.reason, str) and x.reason.startswith("transform failed")]
            if failed:
                why = failed[0].split(": ", 2)[-1]
                rows_of[i] += [{**head, "task": t, "reason": f"perturbation failed: {why}"}
                               for t in tasks]
                continue
            if det is not None:
                out.append({**head, "task": "detection", "changed": bool(det.lost),
                            "value": det.best_iou})
            if feat is not None and feat.status != "ok":
                out += [{**head, "task": t, "reason": f"model failed: {feat.reason}"}
                        for t in tasks if t != "detection"]
            elif feat is not None:
                new = _task_values(feat, model_tasks)
                if "matching" in new:
                    sim = float(emb.similarity(clean[i]["matching"][None],
                                               new["matching"][None]).ravel()[0])
                    out.append({**head, "task": "matching", "value": sim,
                                "changed": sim < emb.default_threshold})
                for t in ("expression", "gender"):
                    if t in new:
                        out.append({**head, "task": t, "value": new[t],
                                    "changed": new[t] != clean[i][t], "clean": clean[i][t]})
            rows_of[i] += out
    records = pd.DataFrame([r for i in range(len(manifest)) for r in rows_of[i]])
    for col in ("row", "perturbation", "level", "param", "task", "changed", "value", "reason",
                "clean"):
        if col not in records:
            records[col] = pd.NA
    records["changed"] = records["changed"].astype("boolean")
    meta = manifest.drop(columns=[c for c in manifest.columns if c in records.columns])
    records = records.join(meta, on="row")
    records.attrs = {"threshold": None if emb is None else emb.default_threshold,
                     "embedder": embedder, "detector": detector, "expression": expression,
                     "attribute": attribute, "seed": seed, "iou_same_face": IOU_SAME_FACE}
    return records


def summarise_robustness(records: pd.DataFrame,
                         group_cols: Sequence[str] = ("race", "gender")) -> pd.DataFrame:
    """Change rates per perturbation, level, task and group, with Wilson 95% intervals.

    Parameters
    ----------
    records
        From :func:`robustness_records`.
    group_cols
        Columns reported group by group (each on its own), besides the overall rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``perturbation, level, param, task, group_col, group, n, changed, rate,
        ci_low, ci_high, excluded``: ``group_col`` is ``"all"`` for the overall row, else
        one of ``group_cols``. ``excluded`` counts images of the group lost before the
        task (failure to acquire or a model error).
    """
    acquire = records[records["task"] == "acquire"]
    done = records[records["task"] != "acquire"]
    out = []
    groupings = [("all", None), *[(g, g) for g in group_cols if g in records]]
    keys = ["perturbation", "level", "task"]
    for gname, gcol in groupings:
        by = keys + ([gcol] if gcol else [])
        for key, block in done.groupby(by, sort=True, dropna=False):
            group = key[-1] if gcol else "all"
            ok = block["changed"].notna()
            n, k = int(ok.sum()), int(block.loc[ok, "changed"].sum())
            lost = len(acquire) if gcol is None else int((acquire[gcol] == group).sum())
            low, high = binomial_ci(k, n) if n else (np.nan, np.nan)
            out.append({"perturbation": key[0], "level": key[1],
                        "param": block["param"].iloc[0], "task": key[2], "group_col": gname,
                        "group": "all" if group is pd.NA else group, "n": n, "changed": k,
                        "rate": k / n if n else np.nan, "ci_low": low, "ci_high": high,
                        "excluded": lost + int((~ok).sum())})
    table = pd.DataFrame(out)
    table.attrs = dict(records.attrs)
    return table


def robustness_table(manifest: pd.DataFrame, perturbations: Sequence[str] | None = None, *,
                     tasks: Sequence[str] = TASKS,
                     group_cols: Sequence[str] = ("race", "gender"),
                     levels: Sequence[int] | None = None, limit: int | None = None,
                     seed: int = 0, detector: str = "yunet", embedder: str = "sface",
                     expression: str = "fer-mini-xception", attribute: str = "age-gender",
                     progress: bool = True) -> pd.DataFrame:
    """Run the perturbation suite on a manifest and summarise change rates by group.

    :func:`robustness_records` then :func:`summarise_robustness` (call those two yourself
    to keep the per-image records, e.g. to regroup without rerunning the models).

    Parameters
    ----------
    manifest
        Rows with ``path`` and the ``group_cols`` (e.g. ``load_dataset("cfd")``).
    perturbations
        Keys of :data:`PERTURBATIONS` (default: all, including the ``"none"`` control).
    tasks
        Any of :data:`TASKS`; only the models these need are created.
    group_cols
        Columns reported group by group (each on its own), besides the overall rows.
    levels
        Severity levels to run (default 1, 2, 3).
    limit, seed
        At most ``limit`` images (seeded sample); ``seed`` also seeds the noise.
    detector, embedder, expression, attribute
        Registered model names used by the tasks.
    progress
        Show progress bars.

    Returns
    -------
    pandas.DataFrame
        See :func:`summarise_robustness`; ``attrs`` names the models and the matching
        threshold.

    Examples
    --------
    >>> df = load_dataset("cfd")
    >>> table = robustness_table(df, ["none", "blur", "occlude_eyes"], limit=60, seed=0)
    >>> from facelab.viz.expression import plot_robustness
    >>> plot_robustness(table, group_col="race")
    """
    records = robustness_records(manifest, perturbations, tasks=tasks, levels=levels,
                                 limit=limit, seed=seed, detector=detector, embedder=embedder,
                                 expression=expression, attribute=attribute, progress=progress)
    return summarise_robustness(records, group_cols)

