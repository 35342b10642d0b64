"""Detection reliability: failure to acquire (FTA) by group, agreement between detectors,
and detection under image degradation (the logic of ``notebooks/01_detection_reliability``).

A *detection record* is one row per (dataset, image, detector): ``found`` (at least one
face), ``fta`` (not found, or the image could not be read: ISO/IEC 19795-1 failure to
acquire), ``reason``, ``n_faces``, the largest face's ``box`` and ``score``, and the
manifest's group columns. Every detector runs at its registered default settings
(:func:`detector_settings` lists them). Detection goes through :func:`facelab.extract`,
so reruns read the on-disk cache.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.types import largest_box_index
from facelab.extraction.cache import ColumnarCache
from facelab.extraction.pipeline import extract
from facelab.metrics.classification import cohen_kappa
from facelab.metrics.findings import Finding, findings_table
from facelab.metrics.groups import DEFAULT_MIN_COUNT, GroupedMetric, rate_by_group
from facelab.metrics.intervals import binomial_ci
from facelab.models.registry import create_model, model_spec
from facelab.perturb.perturbations import PERTURBATIONS
from facelab.perturb.redetect import (
    IOU_SAME_FACE,
    Redetection,
    SharedDegradations,
    box_iou,
    clean_detections,
    paired_box_iou,
    redetect,
)
from facelab.perturb.redetect import one_torch_thread as _one_torch_thread
from facelab.perturb.redetect import valid_box as _valid_box

__all__ = [
    "AUDIT_DATASETS", "SLOW_DETECTORS", "DEFAULT_SEVERITIES", "IOU_SAME_FACE",
    "detector_settings", "detection_records",
    "fta_by_group", "fta_summary", "fta_reasons", "detector_agreement", "box_iou",
    "degradation_records", "degradation_curves",

    "detection_findings",
]

#: Demographically labelled datasets the detection and attribute audits use.
AUDIT_DATASETS: tuple[str, ...] = ("fairface", "utkface", "cfd")
#: Detectors that take >= ~50 ms per small image on one CPU core: run on fewer images.
SLOW_DETECTORS: tuple[str, ...] = ("mtcnn", "dlib-hog")
#: Severity ladders (level 1, 2, ...) for perturbations of
#: :data:`facelab.perturb.robustness.PERTURBATIONS`: downscale factor of each side, Gaussian blur
#: sigma as a fraction of the longer image side, brightness multiplier, JPEG quality.
#: They go further than the robustness suite's three levels so that the curves reach
#: the point where detectors fail.
DEFAULT_SEVERITIES: dict[str, tuple[float, ...]] = {
    "downscale": (0.5, 0.25, 0.2, 0.15),
    "blur": (0.01, 0.02, 0.04, 0.08),
    "brightness": (0.5, 0.25, 0.1, 0.05),
    "jpeg": (20, 10, 5, 2),
}
#: Reason recorded when a detector returned only a box that is not finite or has no area.
INVALID_BOX = "detector returned an invalid box (not finite or empty): counted as no face"
_GROUPS = ("race", "gender")


# --------------------------------------------------------------------------- data
def detector_settings(detectors: Sequence[str]) -> pd.DataFrame:
    """Each detector's registered default settings (score threshold and friends): how the
    decision threshold of every detector in the study was set."""

    rows = []
    for name in detectors:
        model = create_model(name)
        opts = {k: v for k, v in vars(model).items()
                if not k.startswith("_") and k not in ("spec", "name")}
        thr = opts.get("score_threshold", opts.get("adjust_threshold"))
        rows.append({"detector": name, "score_threshold": thr,
                     "how": "registered default of the model (not tuned on these data)",
                     "options": ", ".join(f"{k}={v}" for k, v in opts.items()),
                     "description": model_spec(name, "detector").description})
    return pd.DataFrame(rows).set_index("detector")


def _limit_for(detector: str, n: int, slow_limit: int | None,
               slow: Sequence[str]) -> int:
    if detector in slow and slow_limit is not None:
        return min(n, int(slow_limit))
    return n


def _meta(manifest: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in ("dataset", "file", "subject", "race", "race_original", "gender",
                        "age", "age_bin", "expression") if c in manifest.columns]
    return manifest[keep]


def detection_records(manifests: Mapping[str, pd.DataFrame], detectors: Sequence[str], *,
                      slow_limit: int | None = None, slow: Sequence[str] = SLOW_DETECTORS,
                      progress: bool = True, batch_size: int = 32) -> pd.DataFrame:
    """Run every detector over every manifest (largest face per image), one row per
    (dataset, image, detector).

    Parameters
    ----------
    manifests
        ``{dataset name: manifest}`` (e.g. from :func:`facelab.data.sampling.load_datasets`
        with :data:`facelab.data.sampling.GROUP_AUDIT_SAMPLING`).
    detectors
        Registered detector names, each at its default settings.
    slow_limit
        Detectors in ``slow`` run on the first ``slow_limit`` rows of each manifest only
        (a balanced prefix when the manifest is a round-robin
        :func:`facelab.data.sampling.balanced_sample`).

    Returns
    -------
    DataFrame
        ``dataset, image, detector, found, fta, reason, n_faces, score, box, image_width,
        image_height`` plus the manifest's label columns (race, gender, ...).
    """

    frames = []
    for name, manifest in manifests.items():
        for det in detectors:
            sub = manifest.head(_limit_for(det, len(manifest), slow_limit, slow))
            if len(sub) == 0:
                continue
            with _one_torch_thread():
                feats = extract(sub, detector=det, heads=(), face_policy="all",
                                progress=progress, batch_size=batch_size)
            rec = _meta(sub).copy()
            rec["dataset"] = name
            rec["image"] = sub.index.to_numpy()
            rec["detector"] = det
            rec = rec.reset_index(drop=True)
            rec = pd.concat([rec, _largest_valid(feats, sub.index)], axis=1)
            frames.append(rec)
    if not frames:
        return pd.DataFrame(columns=["dataset", "image", "detector", "found", "fta", "reason"])
    out = pd.concat(frames, ignore_index=True)
    first = ["dataset", "image", "detector", "found", "fta", "reason", "n_faces", "score"]
    return out[first + [c for c in out.columns if c not in first]]


def _largest_valid(feats: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Per manifest row (in ``index`` order), from ``face_policy="all"`` features: found,
    fta, reason, n_faces (valid boxes), the largest valid box and its score, image size.

    One pass over plain column lists (a pandas ``groupby`` per image, each block copying
    the frame's ``attrs``, took most of a warm notebook 01)."""
    labels = feats["image_index"].tolist()
    ok = (feats["status"] == "ok").fillna(False).to_numpy(bool).tolist()
    box_col, score_col = feats["box"].tolist(), feats["score"].tolist()
    reason_col = feats["reason"].tolist()
    width_col, height_col = feats["image_width"].tolist(), feats["image_height"].tolist()
    per_image: dict[Any, dict[str, Any]] = {}
    for k, label in enumerate(labels):
        entry = per_image.get(label)
        if entry is None:  # the image's first row gives its reason and size
            entry = per_image[label] = {"reason": reason_col[k], "width": width_col[k],
                                        "height": height_col[k], "n_ok": 0, "boxes": []}
        if ok[k]:
            entry["n_ok"] += 1
            if _valid_box(box_col[k]):
                entry["boxes"].append((np.asarray(box_col[k], float), score_col[k]))
    rows = []
    for label, entry in per_image.items():
        boxes = entry["boxes"]
        reason = entry["reason"]
        if entry["n_ok"] and not boxes:
            reason = INVALID_BOX
        big = (boxes[largest_box_index(np.stack([b for b, _ in boxes]))] if boxes
               else (None, np.nan))
        rows.append({"image": label, "found": bool(boxes), "fta": not boxes,
                     "reason": pd.NA if boxes else reason, "n_faces": len(boxes),
                     "score": float(big[1]), "box": big[0],
                     "image_width": entry["width"], "image_height": entry["height"]})
    out = pd.DataFrame(rows).set_index("image").reindex(index)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- FTA by group
def _grouped_long(gm: GroupedMetric, keys: Mapping[str, Any]) -> pd.DataFrame:
    bg = gm.by_group.reset_index()
    for k, v in reversed(list(keys.items())):
        bg.insert(0, k, v)
    return bg


def fta_by_group(records: pd.DataFrame, *, by: Sequence[str] = _GROUPS,
                 min_count: int = DEFAULT_MIN_COUNT, seed: int = 0
                 ) -> pd.DataFrame:
    """FTA rate per (dataset, detector) and group cell, with count, n, Wilson 95% CI and
    the small-cell flag (:func:`facelab.metrics.groups.rate_by_group`; images are
    independent, one per person as far as the labels tell)."""
    out = []
    for (ds, det), block in records.groupby(["dataset", "detector"], sort=False):
        gm = rate_by_group(block, event="fta", by=list(by), name="FTA", min_count=min_count,
                           seed=seed)
        out.append(_grouped_long(gm, {"dataset": ds, "detector": det}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def fta_summary(records: pd.DataFrame, *, by: Sequence[str] = _GROUPS,
                min_count: int = DEFAULT_MIN_COUNT, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, detector): overall FTA with count, n and Wilson CI, and the
    spread over group cells that are not small (``n >= min_count``): worst and best cell,
    their rates, ``ratio`` (worst / best; inf when the best is 0, NaN when both are 0),
    ``difference`` and the excluded small cells."""
    rows = []
    for (ds, det), block in records.groupby(["dataset", "detector"], sort=False):
        gm = rate_by_group(block, event="fta", by=list(by), name="FTA", min_count=min_count,
                           seed=seed)
        ov, disp = gm.overall, gm.disparities()
        rows.append({
            "dataset": ds, "detector": det, "n": int(ov["n"]), "fta_count": int(ov["count"]),
            "fta": float(ov["value"]), "ci_low": float(ov["ci_low"]),
            "ci_high": float(ov["ci_high"]), "method": ov["method"],
            "worst_cell": disp["group_max"], "worst_fta": disp["max"],
            "best_cell": disp["group_min"], "best_fta": disp["min"],
            "ratio": disp["ratio"], "difference": disp["difference"],
            "cells_compared": int(disp["n_compared"]), "cells": int(disp["n_cells"]),
            "small_cells_excluded": "; ".join(disp["excluded_small_cells"]),
        })
    return pd.DataFrame(rows)


def fta_reasons(records: pd.DataFrame) -> pd.DataFrame:
    """Why acquisitions failed: count per (dataset, detector, reason)."""
    fail = records[records["fta"]]
    if fail.empty:
        return pd.DataFrame(columns=["dataset", "detector", "reason", "count"])
    return (fail.groupby(["dataset", "detector", "reason"], dropna=False).size()
            .rename("count").reset_index())


# --------------------------------------------------------------------------- agreement
def detector_agreement(records: pd.DataFrame, *, iou_same: float = IOU_SAME_FACE
                       ) -> pd.DataFrame:
    """Pairwise agreement of detectors on the images both ran on, per dataset.

    Columns: ``dataset, detector_a, detector_b, n, both, only_a, only_b, neither``,
    ``agreement`` (share of images where both found a face or both did not) with its
    Wilson ``ci_low``/``ci_high``, ``kappa`` (Cohen's kappa on found / not found; NaN when
    a detector found faces everywhere or nowhere), ``median_iou`` of the two largest boxes
    where both found one, and ``same_face`` (share of those with IoU >= ``iou_same``).
    Detectors draw boxes differently (Haar and dlib tight, MTCNN and YuNet looser), so a
    modest IoU can be a convention, not a miss.
    """

    rows = []
    for ds, block in records.groupby("dataset", sort=False):
        wide = block.pivot(index="image", columns="detector", values=["found", "box"])
        boxes = wide["box"]
        dets = list(dict.fromkeys(block["detector"]))
        for a, b in itertools.combinations(dets, 2):
            both_ran = wide["found"][[a, b]].dropna()
            fa = both_ran[a].astype(bool).to_numpy()
            fb = both_ran[b].astype(bool).to_numpy()
            n = len(fa)
            if n == 0:
                continue
            agree = int((fa == fb).sum())
            low, high = binomial_ci(agree, n)
            constant = len(set(fa.tolist())) == 1 and len(set(fb.tolist())) == 1
            kappa = math.nan if constant else cohen_kappa(fa, fb)
            both_idx = both_ran.index[fa & fb]
            ious = (paired_box_iou(np.stack(boxes[a].loc[both_idx].tolist()),
                                   np.stack(boxes[b].loc[both_idx].tolist()))
                    if len(both_idx) else np.array([], float))
            rows.append({
                "dataset": ds, "detector_a": a, "detector_b": b, "n": n,
                "both": int((fa & fb).sum()), "only_a": int((fa & ~fb).sum()),
                "only_b": int((~fa & fb).sum()), "neither": int((~fa & ~fb).sum()),
                "agreement": agree / n, "ci_low": low, "ci_high": high,
                "kappa": float(kappa),
                "median_iou": float(np.median(ious)) if ious.size else math.nan,
                "same_face": float((ious >= iou_same).mean()) if ious.size else math.nan,
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- degradation
def degradation_records(manifest: pd.DataFrame, detectors: Sequence[str], *,
                        severities: Mapping[str, Sequence[float]] | None = None,
                        slow_limit: int | None = None,
                        slow: Sequence[str] = SLOW_DETECTORS, seed: int = 0,
                        progress: bool = False, batch_size: int = 32,
                        block: int = 32) -> pd.DataFrame:
    """Detection on degraded copies of each image, per detector, perturbation and level.

    Perturbing, detecting again and matching the clean face is
    :func:`facelab.perturb.redetect.redetect` (shared with the robustness suite); its
    detections are cached under each source image's hash plus the perturbation's recipe,
    so a warm rerun neither perturbs nor detects.

    Parameters
    ----------
    manifest
        Rows with ``path`` and the label columns.
    detectors
        Registered detector names, each at its default settings.
    severities
        ``{perturbation: parameters for levels 1, 2, ...}`` for perturbations of
        :data:`facelab.perturb.perturbations.PERTURBATIONS` that need no landmarks
        (default :data:`DEFAULT_SEVERITIES`); noise is seeded with ``seed`` + the image's
        position. Level 0 is the clean image.
    slow_limit, slow
        Detectors in ``slow`` run on the first ``slow_limit`` rows only.
    block
        Images degraded at a time: every detector runs on a block's degraded copies
        before the next block, so each copy is computed once (not once per detector) and
        at most ``block`` x steps copies are held in memory. Results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per (image, detector, perturbation, level): ``found`` (any valid face),
        ``fta``, ``lost`` (the clean image had a face but no detection in the degraded
        image overlaps it with IoU >= :data:`IOU_SAME_FACE`, boxes scaled with the image;
        NA when the clean image had none), ``param``, ``reason`` and the manifest's label
        columns. An image that cannot be read gets ``fta`` True at every level with the
        reason.

    Raises
    ------
    ValueError
        For a perturbation that is unknown or needs landmarks (the occlusions).
    """
    severities = dict(DEFAULT_SEVERITIES if severities is None else severities)
    perturbations = list(severities)
    known = [p for p, v in PERTURBATIONS.items() if p != "none" and not v.needs_landmarks]
    unknown = [p for p in perturbations if p not in known]
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if unknown:
        raise ValueError(f"perturbations {unknown} not usable here (occlusions need a "
                         f"detector's landmarks); use any of {known}")
    meta = _meta(manifest).reset_index(drop=True)
    meta["image"] = manifest.index.to_numpy()
    steps = [(p, param) for p in perturbations for param in severities[p]]
    levels = [(p, lv + 1, param) for p in perturbations
              for lv, param in enumerate(severities[p])]
    clean_rows, rows = [], []
    subs: dict[str, tuple[pd.DataFrame, Redetection]] = {}
    for det in detectors:
        sub = manifest.head(_limit_for(det, len(manifest), slow_limit, slow))
        clean = clean_detections(sub, det, progress=progress, batch_size=batch_size)
        for i in range(len(sub)):
            found = bool(len(clean.boxes[i]))
            clean_rows.append({"image_pos": i, "detector": det, "perturbation": "clean",
                               "level": 0, "param": None, "found": found, "fta": not found,
                               # the clean face overlaps itself: never lost at level 0
                               "lost": False if found else pd.NA,
                               "reason": clean.reasons[i]})
        subs[det] = (sub, clean)
    # image blocks outside, detectors inside: each degraded copy is computed once for every
    # detector (SharedDegradations), and only one block's copies are held at a time
    shared = SharedDegradations()
    store = ColumnarCache()  # what extract(cache=True) opens, read once for every block
    n_max = max((len(sub) for sub, _ in subs.values()), default=0) if steps else 0
    for start in range(0, n_max, block):
        for det in detectors:
            sub, clean = subs[det]
            stop = min(start + block, len(sub))
            if stop <= start:
                continue
            red = redetect(sub.iloc[start:stop], clean.rows(start, stop), steps, det,
                           seeds=[seed + i for i in range(start, stop)], progress=progress,
                           batch_size=batch_size, shared=shared, cache=store)
            for r in red.itertuples(index=False):
                pert, level, param = levels[r.step]
                rows.append({"image_pos": start + r.pos, "detector": det,
                             "perturbation": pert, "level": level, "param": param,
                             "found": r.found, "fta": not r.found, "lost": r.lost,
                             "reason": r.reason, "_order": r.step})
        shared.clear()
    rec = pd.DataFrame(clean_rows + rows)
    # the order the study always had: level by level, detector by detector, image by image
    rec["_order"] = rec["_order"].fillna(-1) if "_order" in rec else -1
    rec = rec.sort_values(["_order", "detector", "image_pos"], kind="stable",
                          key=lambda c: c.map({d: k for k, d in enumerate(detectors)})
                          if c.name == "detector" else c).drop(columns="_order")
    rec["lost"] = rec["lost"].astype("boolean")
    rec = rec.join(meta, on="image_pos").drop(columns="image_pos").reset_index(drop=True)
    # the clean level belongs to every perturbation's curve
    clean_level = rec[rec["perturbation"] == "clean"]
    rec = pd.concat([clean_level.assign(perturbation=p) for p in perturbations]
                    + [rec[rec["perturbation"] != "clean"]], ignore_index=True)
    rec.attrs = {"seed": seed, "severities": {k: list(v) for k, v in severities.items()}}
    return rec


def degradation_curves(records: pd.DataFrame, *, by: Sequence[str] = (),
                       event: str = "fta", min_count: int = DEFAULT_MIN_COUNT
                       ) -> pd.DataFrame:
    """Rate of ``event`` (``"fta"`` or ``"lost"``) per detector, perturbation, level and
    optional group columns, with count, n and Wilson 95% CI (rows with NA ``event`` are
    left out: ``lost`` is only defined where the clean image had a face)."""
    data = records[records[event].notna()].copy()
    data[event] = data[event].astype(bool)
    keys = ["detector", "perturbation", "level", *by]
    gm = rate_by_group(data, event=event, by=keys, name=event, min_count=min_count)
    out = gm.by_group.reset_index()
    params = (records.drop_duplicates(["perturbation", "level"])
              .set_index(["perturbation", "level"])["param"])
    out["param"] = [params.get((p, lv)) for p, lv in zip(out["perturbation"], out["level"],
                                                         strict=True)]
    return out


# --------------------------------------------------------------------------- findings
def detection_findings(summary: pd.DataFrame, agreement: pd.DataFrame | None,
                       curves: pd.DataFrame | None, settings: pd.DataFrame) -> pd.DataFrame:
    """The notebook's findings table: overall FTA and worst/best cell per dataset and
    detector, the least and most agreeing detector pairs, and FTA at the worst severity of
    each degradation, each with value, count, n, 95% CI and how the threshold was set.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`fta_summary` (one row per dataset and detector).
    agreement : pandas.DataFrame or None
        :func:`detector_agreement`, or ``None`` / empty with a single detector.
    curves : pandas.DataFrame or None
        :func:`degradation_curves` (FTA per perturbation and level), or ``None``.
    settings : pandas.DataFrame
        The detectors' settings indexed by detector, with ``score_threshold``.

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the findings.
    """
    out = []
    for _, r in summary.iterrows():
        score = settings.loc[r.detector, "score_threshold"]
        how = f"detector default (score threshold {score})"
        common = {"model": r.detector, "dataset": r.dataset, "threshold": score,
                  "threshold_how": how}
        out.append(Finding(f"FTA {r.dataset}, {r.detector}", r.fta, metric="FTA",
                           count=r.fta_count, n=r.n, ci_low=r.ci_low, ci_high=r.ci_high,
                           ci_method=r.get("method", ""), **common))
        if isinstance(r.worst_cell, str):
            out.append(Finding(
                f"FTA worst/best cell {r.dataset}, {r.detector}: {r.worst_cell} vs "
                f"{r.best_cell} ({r.worst_fta:.3f} vs {r.best_fta:.3f}; "
                f"{r.cells_compared} cells with n >= 30)",
                r.ratio, metric="FTA ratio", group=r.worst_cell, reference=r.best_cell,
                reference_value=r.best_fta, **common))
    if agreement is not None and len(agreement):
        for label, row in (("lowest", agreement.loc[agreement["agreement"].idxmin()]),
                           ("highest", agreement.loc[agreement["agreement"].idxmax()])):
            out.append(Finding(f"{label} detector agreement ({row.dataset}): "
                               f"{row.detector_a} vs {row.detector_b}", row.agreement,
                               metric="agreement", dataset=row.dataset,
                               model=f"{row.detector_a} vs {row.detector_b}",
                               count=row.both + row.neither, n=row.n, ci_low=row.ci_low,
                               ci_high=row.ci_high, threshold_how="detector defaults"))
    if curves is not None and len(curves):
        top = curves[curves["level"] == curves["level"].max()]
        for _, r in top.iterrows():
            out.append(Finding(f"FTA under {r.perturbation} level {r.level} ({r.param:g}), "
                               f"{r.detector}", r.value, metric="FTA", model=r.detector,
                               count=r["count"], n=r.n, ci_low=r.ci_low, ci_high=r.ci_high,
                               threshold_how="detector default"))
    return findings_table(out)
