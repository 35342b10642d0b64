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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd

from facelab.core.types import Face

__all__ = ["Perturbation", "PERTURBATIONS", "TASKS", "perturb", "list_perturbations",
           "occlusion_box", "robustness_records", "summarise_robustness", "robustness_table",
           "plot_robustness"]

TASKS: tuple[str, ...] = ("detection", "matching", "expression", "gender")
IOU_FOUND = 0.5


@dataclass(frozen=True)
class Perturbation:
    """A named degradation with one parameter per severity level (level 1 = mildest)."""

    name: str
    params: tuple
    unit: str
    apply: Callable = field(repr=False)
    needs_landmarks: bool = False


def _downscale(image, factor, rng, landmarks):
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _blur(image, frac, rng, landmarks):
    sigma = frac * max(image.shape[:2])
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REPLICATE)


def _noise(image, std, rng, landmarks):
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _jpeg(image, quality, rng, landmarks):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _brightness(image, factor, rng, landmarks):
    return np.clip(np.rint(image.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def occlusion_box(landmarks: np.ndarray, region: str, pad: float) -> np.ndarray:
    """``[x1, y1, x2, y2]`` covering the eyes (landmarks 0, 1) or the mouth corners (3, 4),
    grown by ``pad`` x the inter-ocular distance on every side."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    idx = {"eyes": [0, 1], "mouth": [3, 4]}[region]
    iod = max(float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    pts = lm[idx]
    grow = pad * iod
    return np.array([pts[:, 0].min() - grow, pts[:, 1].min() - grow,
                     pts[:, 0].max() + grow, pts[:, 1].max() + grow])


def _occluder(region: str):
    def occlude(image, pad, rng, landmarks):
        if landmarks is None:
            raise ValueError(f"occluding the {region} needs the face's landmarks")
        out = image.copy()
        h, w = image.shape[:2]
        x1, y1, x2, y2 = occlusion_box(landmarks, region, pad)
        x1, y1 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        x2, y2 = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        out[y1:y2, x1:x2] = 0
        return out
    return occlude


def _identity(image, param, rng, landmarks):
    return image.copy()


#: The suite. Parameters per level 1, 2, 3: downscale factor of each side; Gaussian blur
#: sigma as a fraction of the image's longer side; Gaussian noise sd in grey levels; JPEG
#: quality; brightness multiplier (underexposure); occluder margin around the landmarks in
#: inter-ocular distances (black box, like sunglasses or a mask).
PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("none", (None,), "", _identity),
    Perturbation("downscale", (0.5, 0.25, 0.125), "scale factor", _downscale),
    Perturbation("blur", (0.005, 0.01, 0.02), "sigma / image side", _blur),
    Perturbation("noise", (8.0, 16.0, 32.0), "noise sd (grey levels)", _noise),
    Perturbation("jpeg", (30, 15, 5), "JPEG quality", _jpeg),
    Perturbation("brightness", (0.5, 0.3, 0.15), "brightness factor", _brightness),
    Perturbation("occlude_eyes", (0.25, 0.4, 0.6), "margin (inter-ocular distances)",
                 _occluder("eyes"), needs_landmarks=True),
    Perturbation("occlude_mouth", (0.25, 0.4, 0.6), "margin (inter-ocular distances)",
                 _occluder("mouth"), needs_landmarks=True),
)}


def list_perturbations() -> pd.DataFrame:
    """The suite as a table: perturbation, level, parameter, unit."""
    return pd.DataFrame([{"perturbation": p.name, "level": i + (p.name != "none"),
                          "param": v, "unit": p.unit}
                         for p in PERTURBATIONS.values() for i, v in enumerate(p.params)])


def perturb(image: np.ndarray, name: str, level: int = 1, *,
            landmarks: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Apply perturbation ``name`` at severity ``level`` to an RGB uint8 image.

    Parameters
    ----------
    image
        RGB uint8 ``(H, W, 3)`` (grey ``(H, W)`` works for all but ``jpeg``).
    name
        A key of :data:`PERTURBATIONS`.
    level
        1 (mild) to 3 (severe); 0 returns an unchanged copy.
    landmarks
        ``(5, 2)`` landmarks of the face, needed by the occlusions.
    seed
        Seed of the random parts (noise): same seed, same output.

    Returns
    -------
    numpy.ndarray
        uint8, same shape as ``image`` (``downscale``: smaller by the level's factor).
    """
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    p = PERTURBATIONS[name]
    if level == 0:
        return np.asarray(image).copy()
    if name == "none":
        level = 1
    if not 1 <= level <= len(p.params):
        raise ValueError(f"{name}: level must be 0..{len(p.params)}, got {level}")
    rng = np.random.default_rng(seed)
    return p.apply(np.asarray(image, np.uint8), p.params[level - 1], rng, landmarks)


def _scaled(face: Face, sx: float, sy: float) -> Face:
    s = np.array([sx, sy], np.float32)
    return Face(box=face.box * np.tile(s, 2), score=face.score,
                landmarks=None if face.landmarks is None else face.landmarks * s,
                detector=face.detector)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class _Outputs:
    """The models used by the tasks, created once."""

    def __init__(self, tasks, detector, embedder, expression, attribute):
        from facelab.models.registry import create_model

        self.detector = create_model(detector)
        self.embedder = create_model(embedder) if "matching" in tasks else None
        self.expression = create_model(expression) if "expression" in tasks else None
        self.attribute = create_model(attribute) if "gender" in tasks else None
        self.tasks = tasks

    def heads(self, image: np.ndarray, face: Face) -> dict:
        out = {}
        if self.embedder is not None:
            out["matching"] = self.embedder.embed(image, [face])[0]
        if self.expression is not None:
            probs = self.expression.predict(image, [face]).iloc[0]
            out["expression"] = str(probs.idxmax())
        if self.attribute is not None:
            out["gender"] = str(self.attribute.predict(image, [face])["gender"].iloc[0])
        return out


def _plan(perturbations, levels) -> list[tuple[str, int, object]]:
    names = list(perturbations) if perturbations is not None else list(PERTURBATIONS)
    plan = []
    for name in names:
        p = PERTURBATIONS[name]
        wanted = levels if levels is not None and name != "none" else range(1, len(p.params) + 1)
        plan += [(name, int(lv), p.params[int(lv) - 1]) for lv in wanted]
    return plan


def robustness_records(manifest: pd.DataFrame, perturbations: Sequence[str] | None = None, *,
                       tasks: Sequence[str] = TASKS, levels: Sequence[int] | None = None,
                       limit: int | None = None, seed: int = 0, detector: str = "yunet",
                       embedder: str = "sface", expression: str = "fer-mini-xception",
                       attribute: str = "age-gender", progress: bool = True) -> pd.DataFrame:
    """Per image, perturbation, level and task: did the output change?

    Returns one row per (image, perturbation, level, task) with columns ``row`` (manifest
    index), ``perturbation, level, param, task, changed`` (bool, NA when the task could not
    be run), ``value`` (similarity for matching, the perturbed label otherwise),
    ``reason`` (why a row has no outcome) and the manifest's own columns. Images whose
    clean version cannot be loaded or has no face get one row with ``task="acquire"``
    and the reason (failure to acquire): they are excluded from every rate.
    """
    from facelab.core.io import load_image
    from facelab.core.progress import tqdm

    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; tasks are {TASKS}")
    if limit is not None and len(manifest) > limit:
        manifest = manifest.sample(n=limit, random_state=seed).sort_index()
    models = _Outputs(tuple(tasks), detector, embedder, expression, attribute)
    plan = _plan(perturbations, levels)
    rows = []
    for i, (idx, item) in enumerate(tqdm(manifest.iterrows(), total=len(manifest),
                                         desc="robustness", disable=not progress)):
        base = {"row": idx}
        try:
            image = load_image(item["path"])
            faces = models.detector.detect(image)
        except Exception as exc:  # noqa: BLE001 - failures become records
            rows.append({**base, "task": "acquire", "reason": f"load/detect failed: {exc}"})
            continue
        if not faces:
            rows.append({**base, "task": "acquire", "reason": "no face in the clean image"})
            continue
        face = max(faces, key=lambda f: f.area)
        try:
            clean = models.heads(image, face)
        except Exception as exc:  # noqa: BLE001
            rows.append({**base, "task": "acquire", "reason": f"clean outputs failed: {exc}"})
            continue
        for name, level, param in plan:
            head = {**base, "perturbation": name, "level": level, "param": param}
            try:
                out = perturb(image, name, level, landmarks=face.landmarks, seed=seed + i)
            except Exception as exc:  # noqa: BLE001
                rows += [{**head, "task": t, "reason": f"perturbation failed: {exc}"}
                         for t in tasks]
                continue
            pf = _scaled(face, out.shape[1] / image.shape[1], out.shape[0] / image.shape[0])
            if "detection" in tasks:
                try:
                    found = models.detector.detect(out)
                    best = max((_iou(f.box, pf.box) for f in found), default=0.0)
                    rows.append({**head, "task": "detection", "changed": best < IOU_FOUND,
                                 "value": best})
                except Exception as exc:  # noqa: BLE001
                    rows.append({**head, "task": "detection", "reason": str(exc)})
            try:
                new = models.heads(out, pf)
            except Exception as exc:  # noqa: BLE001
                rows += [{**head, "task": t, "reason": f"model failed: {exc}"}
                         for t in tasks if t != "detection"]
                continue
            if "matching" in new:
                sim = float(models.embedder.similarity(clean["matching"][None],
                                                       new["matching"][None]).ravel()[0])
                rows.append({**head, "task": "matching", "value": sim,
                             "changed": sim < models.embedder.default_threshold})
            for t in ("expression", "gender"):
                if t in new:
                    rows.append({**head, "task": t, "value": new[t],
                                 "changed": new[t] != clean[t], "clean": clean[t]})
    records = pd.DataFrame(rows)
    for col in ("perturbation", "level", "param", "task", "changed", "value", "reason", "clean"):
        if col not in records:
            records[col] = pd.NA
    records["changed"] = records["changed"].astype("boolean")
    meta = manifest.drop(columns=[c for c in manifest.columns if c in records.columns])
    records = records.join(meta, on="row")
    records.attrs = {"threshold": getattr(models.embedder, "default_threshold", None),
                     "embedder": embedder, "detector": detector, "expression": expression,
                     "attribute": attribute, "seed": seed}
    return records


def summarise_robustness(records: pd.DataFrame,
                         group_cols: Sequence[str] = ("race", "gender")) -> pd.DataFrame:
    """Change rates per perturbation, level, task and group, with Wilson 95% intervals.

    Returns columns ``perturbation, level, param, task, group_col, group, n, changed,
    rate, ci_low, ci_high, excluded``: ``group_col`` is ``"all"`` for the overall row, else
    one of ``group_cols`` (each reported on its own). ``excluded`` counts images of the
    group lost before the task (failure to acquire or a model error).
    """
    from facelab.metrics.intervals import binomial_ci

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

    Returns
    -------
    pandas.DataFrame
        See :func:`summarise_robustness`; ``attrs`` names the models and the matching
        threshold.

    Examples
    --------
    >>> df = load_dataset("cfd")
    >>> table = robustness_table(df, ["none", "blur", "occlude_eyes"], limit=60, seed=0)
    >>> plot_robustness(table, group_col="race")
    """
    records = robustness_records(manifest, perturbations, tasks=tasks, levels=levels,
                                 limit=limit, seed=seed, detector=detector, embedder=embedder,
                                 expression=expression, attribute=attribute, progress=progress)
    return summarise_robustness(records, group_cols)


def plot_robustness(table: pd.DataFrame, *, group_col: str = "all",
                    tasks: Sequence[str] | None = None, perturbations: Sequence[str] | None = None):
    """Change rate against severity level: one panel per task (rows) and perturbation
    (columns), one line per group of ``group_col``, with the Wilson intervals as bars.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    data = table[(table["group_col"] == group_col) & (table["perturbation"] != "none")]
    tasks = list(tasks) if tasks is not None else [t for t in TASKS if t in set(data["task"])]
    perts = list(perturbations) if perturbations is not None else list(
        dict.fromkeys(data["perturbation"]))
    fig, axes = plt.subplots(len(tasks), len(perts), figsize=(2.3 * len(perts) + 1,
                             2.1 * len(tasks) + 0.6), sharex=True, sharey=True, squeeze=False)
    groups = list(dict.fromkeys(data["group"]))
    colours = dict(zip(groups, plt.cm.tab10.colors, strict=False))
    for r, task in enumerate(tasks):
        for c, pert in enumerate(perts):
            ax = axes[r][c]
            block = data[(data["task"] == task) & (data["perturbation"] == pert)]
            for j, (group, g) in enumerate(block.groupby("group", sort=False)):
                g = g.sort_values("level")
                x = g["level"].to_numpy(float) + (j - (len(groups) - 1) / 2) * 0.06
                err = np.vstack([g["rate"] - g["ci_low"], g["ci_high"] - g["rate"]])
                ax.errorbar(x, g["rate"], yerr=err, marker="o", ms=3, lw=1, capsize=2,
                            color=colours.get(group), label=str(group))
            ax.set_ylim(-0.03, 1.03)
            ax.set_xticks([1, 2, 3])
            if r == 0:
                ax.set_title(pert, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{task}\nchange rate", fontsize=9)
            if r == len(tasks) - 1:
                ax.set_xlabel("severity", fontsize=8)
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels_, loc="lower center", ncol=min(len(labels_), 8), fontsize=8,
                   title=None if group_col == "all" else group_col, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
    return fig
