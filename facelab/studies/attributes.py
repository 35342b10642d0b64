"""Gender and age estimation by race x gender, Gender Shades style (the logic of
``notebooks/05_attribute_audit``).

A *prediction table* has one row per image: the manifest's labels (``dataset``, ``race``,
``gender``, ``age`` / ``age_bin``), ``status`` / ``reason`` from detection, and the
attribute model's outputs ``pred_gender``, ``pred_gender_confidence``, ``pred_p_female``,
``pred_age`` (see :func:`attribute_predictions`). Error rates are computed on images where
a face was found and the model answered; failures to acquire are counted separately.

Gender outputs describe **appearance**, not gender identity, and the labels are binary:
people who are neither "female" nor "male" are not represented (see
:data:`facelab.core.types.APPEARANCE_NOTE`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from facelab.extraction.pipeline import extract
from facelab.face.skin import SKIN_GROUP_COLUMNS
from facelab.metrics.classification import age_mae_by_group, calibration
from facelab.metrics.findings import Finding, findings_table
from facelab.metrics.groups import DEFAULT_MIN_COUNT, GroupedMetric, rate_by_group
from facelab.metrics.intervals import binomial_ci
from facelab.models.registry import resolve_model

__all__ = [
    "ATTRIBUTE_MODEL", "attribute_predictions", "evaluable", "acquisition_summary",
    "gender_error_by_group", "skin_tone_coverage", "SKIN_COLUMNS", "grouping_comparison",
    "error_summary", "error_direction", "age_error_by_group", "gender_calibration",
    "attribute_findings",
]

#: The registered attribute model audited by default.
ATTRIBUTE_MODEL = "age-gender"
_GROUPS = ("race", "gender")
#: Skin-tone columns carried into the prediction table (:mod:`facelab.face.skin`).
SKIN_COLUMNS = ("skin_tone", "skin_category", "skin_ita", "skin_n_pixels", "skin_flag")
_PRED = ("pred_gender", "pred_gender_confidence", "pred_p_female", "pred_age", "pred_age_low",
         "pred_age_high")


def attribute_predictions(manifests: Mapping[str, pd.DataFrame], *,
                          model: str = ATTRIBUTE_MODEL, detector: str = "yunet",
                          progress: bool = True, batch_size: int = 32,
                          skin_tone: bool = True) -> pd.DataFrame:
    """Run ``detector`` (largest face) and the attribute ``model`` over every manifest
    through :func:`facelab.extract` (cached), one row per image.

    Returns the manifests' label columns plus ``path``, ``box`` (the face the model looked
    at, or missing), ``status``, ``reason``, ``n_faces`` and the model's outputs
    (:data:`_PRED` columns, NaN where no face was found), and ``gender_error`` (bool; NA
    where the image was not evaluated). With ``skin_tone`` the same pass also measures
    the face's skin tone (head ``"skin_tone"``, :mod:`facelab.face.skin`) into
    :data:`SKIN_COLUMNS`, so errors can be grouped by skin type as Gender Shades did
    (``by=("skin_tone", "gender")``).
    """

    model = resolve_model(model, "attribute")  # a model card path becomes its name
    heads = ("attributes", "skin_tone") if skin_tone else ("attributes",)
    frames = []
    for name, manifest in manifests.items():
        feats = extract(manifest, detector=detector, heads=heads,
                        models={"attributes": model}, face_policy="largest",
                        progress=progress, batch_size=batch_size)
        keep = [c for c in ("dataset", "file", "subject", "race", "race_original", "gender",
                            "age", "age_bin") if c in feats.columns]
        out = feats[keep + ["status", "reason", "n_faces"]].copy()
        out["dataset"] = name
        out["path"] = feats["path"] if "path" in feats.columns else manifest["path"]
        out["box"] = feats["box"] if "box" in feats.columns else None  # for error examples
        for col in _PRED:
            out[col] = feats[col] if col in feats.columns else np.nan
        if skin_tone:
            for col in SKIN_COLUMNS:
                out[col] = feats[col] if col in feats.columns else pd.NA
            out["skin_flag"] = out["skin_flag"].astype("string").fillna(
                feats["reason"].astype("string"))
        frames.append(out.reset_index(drop=True))
    if not frames:
        return pd.DataFrame(columns=["dataset", "race", "gender", "status", *_PRED])
    preds = pd.concat(frames, ignore_index=True)
    for col in ("pred_gender_confidence", "pred_p_female", "pred_age", "pred_age_low",
                "pred_age_high", *(("skin_ita",) if skin_tone else ())):
        preds[col] = pd.to_numeric(preds[col], errors="coerce")
    if skin_tone:
        for col in ("skin_tone", "skin_category"):
            preds[col] = preds[col].astype("string")
    preds["pred_gender"] = preds["pred_gender"].astype("string").str.lower()
    ok = _evaluated_mask(preds)
    err = pd.array([pd.NA] * len(preds), dtype="boolean")
    err[ok] = (preds.loc[ok, "pred_gender"] != preds.loc[ok, "gender"]).to_numpy(bool)
    preds["gender_error"] = err
    preds.attrs = {"model": model, "detector": detector}
    return preds


def _evaluated_mask(preds: pd.DataFrame) -> np.ndarray:
    return ((preds["status"] == "ok").fillna(False)
            & preds["pred_gender"].isin(["female", "male"]).fillna(False)
            & preds["gender"].isin(["female", "male"]).fillna(False)).to_numpy(bool)


def evaluable(preds: pd.DataFrame) -> pd.DataFrame:
    """Rows with a binary gender label and a gender prediction (face found, model ran)."""
    return preds[_evaluated_mask(preds)].assign(
        gender_error=lambda d: d["gender_error"].astype(bool))


def acquisition_summary(preds: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: images, evaluated, failures and the reasons (no face, unreadable, ...)."""
    rows = []
    for ds, block in preds.groupby("dataset", sort=False):
        ok = _evaluated_mask(block)
        low, high = binomial_ci(int((~ok).sum()), len(block))
        reasons = block.loc[~ok, "reason"].fillna("no gender prediction").value_counts()
        rows.append({"dataset": ds, "images": len(block), "evaluated": int(ok.sum()),
                     "not_evaluated": int((~ok).sum()),
                     "not_evaluated_rate": float((~ok).mean()) if len(block) else math.nan,
                     "ci_low": low, "ci_high": high,
                     "reasons": "; ".join(f"{n} x {r}" for r, n in reasons.items())})
    return pd.DataFrame(rows)


def gender_error_by_group(preds: pd.DataFrame, *, by: Sequence[str] = _GROUPS,
                          min_count: int = DEFAULT_MIN_COUNT, seed: int = 0
                          ) -> dict[str, GroupedMetric]:
    """Gender classification error rate per dataset and group cell (count, n, Wilson 95%
    CI, small-cell flag), as ``{dataset: GroupedMetric}`` (see
    :func:`facelab.metrics.groups.rate_by_group`).

    ``by`` may hold the skin-tone columns (``("skin_tone", "gender")``, Gender Shades'
    grouping); faces whose tone was not measured are then left out of the cells and
    counted by :func:`skin_tone_coverage`."""

    out = {}
    ev = evaluable(preds)
    skin_by = [c for c in by if c in SKIN_GROUP_COLUMNS]
    if skin_by:
        ev = ev.dropna(subset=skin_by)
    for ds, block in ev.groupby("dataset", sort=False):
        out[ds] = rate_by_group(block, event="gender_error", by=list(by),
                                name="gender error", min_count=min_count,
                                seed=seed)
    return out


def skin_tone_coverage(preds: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: faces scored for gender, how many had their skin tone measured (with
    a Wilson 95% CI of the share not measured) and why the others were not (too few skin
    pixels: greyscale photo, hair or a hand over the regions, tinted light)."""
    rows = []
    for ds, block in evaluable(preds).groupby("dataset", sort=False):
        miss = block["skin_tone"].isna()
        low, high = binomial_ci(int(miss.sum()), len(block))
        reasons = (block.loc[miss, "skin_flag"].astype(str).str.replace(r":.*", "", regex=True)
                   .value_counts())
        rows.append({"dataset": ds, "scored": len(block), "measured": int((~miss).sum()),
                     "not_measured": int(miss.sum()),
                     "not_measured_rate": float(miss.mean()) if len(block) else math.nan,
                     "ci_low": low, "ci_high": high,
                     "lighter": int((block["skin_tone"] == "lighter").sum()),
                     "darker": int((block["skin_tone"] == "darker").sum()),
                     "reasons": "; ".join(f"{n} x {r}" for r, n in reasons.items())})
    return pd.DataFrame(rows)


def error_summary(metrics: Mapping[str, GroupedMetric]) -> pd.DataFrame:
    """One row per dataset: overall error (count, n, CI) and the worst and best cells among
    those that are not small, their ratio (worst / best; inf when the best cell has no
    error) and difference, and the small cells left out of the comparison."""
    rows = []
    for ds, gm in metrics.items():
        ov, d = gm.overall, gm.disparities()
        bg = gm.by_group
        worst = bg.loc[_key(bg, d["group_max"])] if d["group_max"] else None
        best = bg.loc[_key(bg, d["group_min"])] if d["group_min"] else None
        rows.append({
            "dataset": ds, "n": int(ov["n"]), "errors": int(ov["count"]),
            "error": float(ov["value"]), "ci_low": float(ov["ci_low"]),
            "ci_high": float(ov["ci_high"]),
            "worst_cell": d["group_max"], "worst_error": d["max"],
            "worst_count": None if worst is None else f"{int(worst['count'])}/{int(worst['n'])}",
            "best_cell": d["group_min"], "best_error": d["min"],
            "best_count": None if best is None else f"{int(best['count'])}/{int(best['n'])}",
            "ratio": d["ratio"], "difference": d["difference"],
            "cells_compared": int(d["n_compared"]), "cells": int(d["n_cells"]),
            "small_cells_excluded": "; ".join(d["excluded_small_cells"]),
        })
    return pd.DataFrame(rows)


def grouping_comparison(summaries: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`error_summary` tables of several groupings side by side, one row per dataset
    and grouping (e.g. ``{"race x gender": ..., "skin type x gender": ...}``): faces
    scored, overall error, worst and best cell with counts, worst/best ratio."""
    cols = ["dataset", "n", "errors", "error", "ci_low", "ci_high", "worst_cell",
            "worst_count", "worst_error", "best_cell", "best_count", "best_error", "ratio",
            "cells_compared", "small_cells_excluded"]
    frames = [s[cols].assign(grouping=g) for g, s in summaries.items() if len(s)]
    if not frames:
        return pd.DataFrame(columns=["dataset", "grouping", *cols[1:]])
    out = pd.concat(frames, ignore_index=True)
    order = {ds: i for i, ds in enumerate(out["dataset"].unique())}
    out = out.sort_values(["dataset", "grouping"], key=lambda c: c.map(order)
                          if c.name == "dataset" else c, kind="stable", ignore_index=True)
    return out[["dataset", "grouping", *cols[1:]]]


def _key(by_group: pd.DataFrame, label: str):
    """Index key of a cell from its ``"a x b"`` label."""
    for key in by_group.index:
        text = " x ".join(str(v) for v in key) if isinstance(key, tuple) else str(key)
        if text == label:
            return key
    raise KeyError(label)


def error_direction(preds: pd.DataFrame, *, by: Sequence[str] = ("race",)) -> pd.DataFrame:
    """Which way the errors go, per dataset and group: women labelled men
    (``female_as_male`` of ``female_n``) and men labelled women (``male_as_female`` of
    ``male_n``), each with its Wilson 95% CI, and the share of all errors that are women
    labelled men. ``scope`` is ``"group"`` for a group's row and ``"dataset"`` for the
    dataset's row (group columns ``"all"``)."""
    ev = evaluable(preds)
    rows = []
    keys = ["dataset", *by]
    groups = list(ev.groupby(keys, sort=True, observed=True))
    groups += [((ds, *["all"] * len(by)), b) for ds, b in ev.groupby("dataset", sort=False)]
    for key, block in groups:
        f = block[block["gender"] == "female"]
        m = block[block["gender"] == "male"]
        kf, km = int((f["pred_gender"] == "male").sum()), int((m["pred_gender"] == "female").sum())
        fl, fh = binomial_ci(kf, len(f))
        ml, mh = binomial_ci(km, len(m))
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["scope"] = "dataset" if all(row[c] == "all" for c in by) else "group"
        row.update({
            "female_n": len(f), "female_as_male": kf,
            "female_as_male_rate": kf / len(f) if len(f) else math.nan,
            "female_ci_low": fl, "female_ci_high": fh,
            "male_n": len(m), "male_as_female": km,
            "male_as_female_rate": km / len(m) if len(m) else math.nan,
            "male_ci_low": ml, "male_ci_high": mh,
            "share_of_errors_women_as_men": kf / (kf + km) if kf + km else math.nan,
        })
        rows.append(row)
    return pd.DataFrame(rows)


def age_error_by_group(preds: pd.DataFrame, *, by: Sequence[str] = _GROUPS,
                       min_count: int = DEFAULT_MIN_COUNT, seed: int = 0
                       ) -> dict[str, GroupedMetric]:
    """Mean absolute age error per dataset and group with a seeded bootstrap 95% CI.

    The truth is ``age`` in years where the dataset gives it (UTKFace), else ``age_bin``
    (FairFace's "20-29", "more than 70": the error is the distance from the prediction to
    the bin, 0 inside it; :func:`facelab.metrics.classification.age_error`). Datasets
    with neither (CFD) are left out.
    """

    out = {}
    ok = preds[(preds["status"] == "ok").fillna(False) & preds["pred_age"].notna()]
    for ds, block in ok.groupby("dataset", sort=False):
        if "age" in block and block["age"].notna().any():
            block, truth = block[block["age"].notna()], "age"
        elif "age_bin" in block and block["age_bin"].notna().any():
            block, truth = block[block["age_bin"].notna()], "age_bin"
        else:
            continue
        block = block.assign(_truth=block[truth].astype(object))
        gm = age_mae_by_group(block, true="_truth", pred="pred_age", by=list(by),
                              min_count=min_count, seed=seed)
        out[ds] = GroupedMetric(name=f"age MAE (years; truth: {truth})", by_group=gm.by_group,
                                overall=gm.overall, min_count=gm.min_count,
                                confidence=gm.confidence, notes=(f"truth column {truth}",))
    return out


def gender_calibration(preds: pd.DataFrame, *, n_bins: int = 10,
                       by: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibration of the model's P(female) against the dataset label, per dataset (and
    optional groups): ``(summary, reliability)``. ``summary`` has ``ece``, ``n``; the
    reliability table has one row per non-empty bin (mean predicted P(female), observed
    share labelled female with its Wilson CI)."""

    ev = evaluable(preds)
    ev = ev[ev["pred_p_female"].notna()]
    keys = ["dataset", *by]
    summary, tables = [], []
    for key, block in ev.groupby(keys, sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        cal = calibration((block["gender"] == "female").to_numpy(int),
                          block["pred_p_female"].to_numpy(float), n_bins=n_bins)
        labels = dict(zip(keys, key, strict=True))
        summary.append({**labels, "n": cal.n, "ece": cal.ece})
        tables.append(cal.table.assign(**labels))
    rel = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return pd.DataFrame(summary), rel


def attribute_findings(summary: pd.DataFrame, direction: pd.DataFrame,
                       age: Mapping[str, GroupedMetric], calibration: pd.DataFrame | None,
                       model: str, skin_summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """The notebook's findings table: per dataset the overall gender error, the worst and
    best race x gender cells and their ratio (and skin type x gender cells, when
    ``skin_summary`` is given), the direction of errors, the age MAE and the calibration
    error; each with value, count, n and 95% CI where one was computed.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`gender_error_summary` (one row per dataset).
    direction : pandas.DataFrame
        :func:`error_direction`.
    age : mapping of str to GroupedMetric
        :func:`age_error_by_group`, per dataset.
    calibration : pandas.DataFrame or None
        The summary of :func:`gender_calibration`, or ``None``.
    model : str
        The attribute model's name.
    skin_summary : pandas.DataFrame, optional
        :func:`gender_error_summary` over skin type x gender cells.

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the findings.
    """
    how = f"{model}'s own decision (P(female) >= 0.5 means female); not tuned here"
    common = {"model": model, "threshold": 0.5, "threshold_how": how}
    out = []
    skin = {} if skin_summary is None else {r.dataset: r for r in skin_summary.itertuples()}

    def cells(ds, s, kind, worst, best):
        for label, cell, err, count in (("worst", s.worst_cell, s.worst_error, s.worst_count),
                                        ("best", s.best_cell, s.best_error, s.best_count)):
            k, n = _count_text(count)
            out.append(Finding(f"{worst if label == 'worst' else best} {ds}: {cell}", err,
                               metric="gender error rate", dataset=ds, group=cell, count=k,
                               n=n, **common))
        out.append(Finding(f"worst/best ratio{kind}, {ds} ({s.cells_compared} cells with "
                           "n >= min_count)" if kind else
                           f"worst/best ratio {ds} ({s.cells_compared} cells with n >= "
                           "min_count)", s.ratio, metric="gender error ratio",
                           dataset=ds, group=s.worst_cell, reference=s.best_cell,
                           reference_value=s.best_error, **common))

    for _, r in summary.iterrows():
        out.append(Finding(f"gender error, {r.dataset} (all evaluated faces)", r.error,
                           metric="gender error rate", dataset=r.dataset, count=r.errors,
                           n=r.n, ci_low=r.ci_low, ci_high=r.ci_high, ci_method="Wilson",
                           **common))
        s = skin.get(r.dataset)
        if s is not None and isinstance(s.worst_cell, str):
            cells(r.dataset, s, ", skin type x gender", "worst skin type x gender cell",
                  "best skin type x gender cell")
        if isinstance(r.worst_cell, str):
            cells(r.dataset, r, "", "worst cell", "best cell")
    for _, r in direction[direction["scope"] == "dataset"].iterrows():
        out.append(Finding(f"women labelled men, {r.dataset}", r.female_as_male_rate,
                           metric="error rate (female labelled male)", dataset=r.dataset,
                           group="female", count=r.female_as_male, n=r.female_n,
                           ci_low=r.female_ci_low, ci_high=r.female_ci_high,
                           ci_method="Wilson", **common))
        out.append(Finding(f"men labelled women, {r.dataset}", r.male_as_female_rate,
                           metric="error rate (male labelled female)", dataset=r.dataset,
                           group="male", count=r.male_as_female, n=r.male_n,
                           ci_low=r.male_ci_low, ci_high=r.male_ci_high,
                           ci_method="Wilson", **common))
    for ds, gm in age.items():
        ov = gm.overall
        out.append(Finding(f"age MAE (years), {ds}", float(ov["value"]), metric="MAE (years)",
                           model=model, dataset=ds, n=int(ov["n"]), ci_low=ov["ci_low"],
                           ci_high=ov["ci_high"], ci_method=str(ov.get("method", "")),
                           threshold_how=gm.notes[0] if gm.notes else ""))
    if calibration is not None:
        for _, r in calibration.iterrows():
            out.append(Finding(f"gender calibration error (ECE), {r.dataset}", r.ece,
                               metric="ECE", model=model, dataset=r.dataset, n=r.n,
                               threshold_how="10 equal-width bins of P(female)"))
    return findings_table(out)


def _count_text(text: str) -> tuple[float | None, float | None]:
    """``"12/47"`` (a cell count as :meth:`GroupedMetric.disparities` writes it) -> (12, 47).

    Raises
    ------
    ValueError
        If ``text`` is neither ``"k/n"`` nor empty.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return None, None
    if not isinstance(text, str):
        return float(text), None
    k, sep, n = text.partition("/")
    if not sep:
        raise ValueError(f"a cell count must read 'k/n', got {text!r}")
    return float(k.replace(",", "")), float(n.replace(",", ""))
