"""How far the skin-tone estimate (:mod:`facelab.face.skin`) can be trusted: the measured limits
shown in ``05_attribute_audit`` and ``docs/models.md``.

* :func:`stability_by_person`: the same person photographed several times (CelebA, LFW)
  should keep one lighter/darker class; the share of people with 2+ measured images
  whose images all fall in one class, with a Wilson interval (and the same for the six
  ITA categories, and the spread of ITA within a person).
* :func:`brightness_sensitivity`: the robustness suite's brightness perturbation
  (:data:`facelab.perturb.robustness.PERTURBATIONS`, factors 0.5, 0.3, 0.15) applied to faces
  whose tone was measured; the face keeps its clean landmarks, so only the pixel values
  change. Reports the ITA shift and the share of faces whose class flips.
* :func:`ita_by_race`: ITA category against a dataset's race labels, a cross-tabulation;
  the two are different things (a colour measured in one photo vs a social category an
  annotator assigned) and neither stands for the other.

Sources of the method and the lighter/darker cut: :mod:`facelab.face.skin` (Chardon et al.
1991; Merler et al. 2019; Buolamwini & Gebru 2018).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from facelab.core.io import load_image
from facelab.core.types import Face
from facelab.data.sampling import load_datasets, subject_sample
from facelab.extraction.pipeline import extract
from facelab.face.skin import ITA_CATEGORIES, SKIN_DETECTOR, measure_skin_tone
from facelab.metrics.intervals import binomial_ci, bootstrap_ci
from facelab.perturb.robustness import PERTURBATIONS, perturb

__all__ = ["stability_by_person", "stability_summary",
           "brightness_sensitivity", "brightness_summary", "ita_by_race"]

NOT_MEASURED = "not measured"


def stability_by_person(datasets: Sequence[str] = ("celeba", "lfw"), *,
                        limit: int | None = None, seed: int = 0,
                        root: str | os.PathLike | None = None,
                        detector: str = SKIN_DETECTOR, progress: bool = False
                        ) -> tuple[pd.DataFrame, list[str]]:
    """Skin tone of every image of people with two or more images.

    Parameters
    ----------
    datasets
        Identity-labelled dataset specs (:mod:`facelab.data.resolve`: names, CSV paths
        or ``{csv: ...}`` mappings with a ``subject`` column).
    limit
        At most this many images per dataset: whole people with two or more images
        (:func:`facelab.data.sampling.subject_sample` with ``min_images=2``).
    detector
        Detector whose largest face is measured (:func:`facelab.face.skin.add_skin_tone`).

    Returns
    -------
    images, notes
        One row per image: the manifest's columns plus the skin columns of
        :func:`facelab.face.skin.add_skin_tone`; and one sentence per built-in dataset that is
        missing (skipped) or has nobody with two or more images (left out).

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset named explicitly cannot be loaded.
    """
    manifests, loaded = load_datasets(datasets, root=root, default_splits={})
    notes = [loaded.table.loc[i, "note"] for i in loaded.table.index
             if not loaded.table.loc[i, "found"]]
    frames = []
    for name, df in manifests.items():
        sample = subject_sample(df, limit, seed=seed, min_images=2)
        if sample.empty:
            notes.append(f"{name}: no person with two or more images (subject ids), left out "
                         "of the stability check.")
            continue
        frames.append(add_skin_tone(sample, detector=detector, progress=progress)
                      .assign(dataset=name))
    images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["dataset", "subject", "skin_tone", "skin_category", "skin_ita", "skin_flag"])
    return images, notes


def stability_summary(images: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000
                      ) -> pd.DataFrame:
    """Per dataset: how consistent one person's skin-tone estimate is across images.

    Only images whose tone was measured count; people left with 2+ measured images are
    ``people``. ``one_class`` is the share of them whose images all fall in one
    lighter/darker class (Wilson 95% CI), ``one_category`` the same for the six ITA
    categories, ``ita_sd_median`` the median over people of the within-person standard
    deviation of ITA (degrees), ``ita_range_median`` the median of max - min.

    ``one_class`` gets harder with more images per person, so the table also gives the
    **pair agreement**: of all pairs of two measured images of one person, the share in
    the same lighter/darker class (``pairs``; 95% CI from a bootstrap over people, 1000
    resamples, ``seed``), next to ``chance_agreement``, the agreement two images drawn at
    random from the dataset's measured images would have (``p_lighter^2 + p_darker^2``).
    """

    rows = []
    for ds, block in images.groupby("dataset", sort=False):
        measured = block[block["skin_tone"].notna()]
        per = measured.groupby(measured["subject"].astype(str))
        n_img = per.size()
        keep = n_img.index[n_img >= 2]
        agg = per.agg(classes=("skin_tone", "nunique"), cats=("skin_category", "nunique"),
                      sd=("skin_ita", "std"), lo=("skin_ita", "min"),
                      hi=("skin_ita", "max")).loc[keep]
        n = len(agg)
        k1, k2 = int((agg["classes"] == 1).sum()), int((agg["cats"] == 1).sum())
        l1, h1 = binomial_ci(k1, n)
        l2, h2 = binomial_ci(k2, n)
        people_all = block["subject"].astype(str).nunique()
        lighter = (measured["skin_tone"] == "lighter").groupby(
            measured["subject"].astype(str)).sum().loc[keep].to_numpy(float)
        size = n_img.loc[keep].to_numpy(float)
        darker = size - lighter
        same = lighter * (lighter - 1) / 2 + darker * (darker - 1) / 2
        total = size * (size - 1) / 2
        agree = float(same.sum() / total.sum()) if n else math.nan
        p_l = float((measured["skin_tone"] == "lighter").mean()) if len(measured) else math.nan
        pl, ph = (bootstrap_ci(lambda i, s=same, t=total: s[i].sum() / t[i].sum(), n, n_boot=n_boot,
                               seed=seed) if n else (math.nan, math.nan))
        rows.append({
            "dataset": ds, "images": len(block), "images_measured": len(measured),
            "people_sampled": people_all, "people": n,
            "images_of_these_people": int(n_img.loc[keep].sum()),
            "one_class": k1 / n if n else math.nan, "one_class_count": f"{k1}/{n}",
            "one_class_ci_low": l1, "one_class_ci_high": h1,
            "one_category": k2 / n if n else math.nan, "one_category_count": f"{k2}/{n}",
            "one_category_ci_low": l2, "one_category_ci_high": h2,
            "pairs": int(total.sum()), "pair_agreement": agree, "pair_ci_low": pl,
            "pair_ci_high": ph, "chance_agreement": p_l ** 2 + (1 - p_l) ** 2,
            "ita_sd_median": float(agg["sd"].median()) if n else math.nan,
            "ita_range_median": float((agg["hi"] - agg["lo"]).median()) if n else math.nan,
        })
    return pd.DataFrame(rows)


def brightness_sensitivity(manifest: pd.DataFrame, *, n: int | None = 100, seed: int = 0,
                           detector: str = SKIN_DETECTOR, progress: bool = False,
                           factors: Sequence[float] | None = None) -> pd.DataFrame:
    """ITA of faces before and after the robustness suite's brightness perturbation.

    Parameters
    ----------
    manifest
        Images (``path`` column); the largest face of each is found by ``detector`` and
        measured with :func:`facelab.extract` (cached).
    n
        At most this many faces with a measured tone, a seeded sample (``None``: all).
    factors
        Brightness multipliers; default: the suite's levels 1-3 (0.5, 0.3, 0.15). Other
        factors (milder, or above 1 for overexposure) use the suite's same function, and
        are reported with ``level`` 0.

    Returns
    -------
    DataFrame
        One row per face and level: ``image``, ``level``, ``factor`` (brightness
        multiplier), ``ita_clean``, ``ita``, ``delta`` (degrees), ``tone_clean``,
        ``tone``, ``category_clean``, ``category``, ``flag`` (why the perturbed face was
        not measured, ``""`` when it was). The face keeps its clean landmarks.
    """

    feats = extract(manifest, detector=detector, heads=("skin_tone",), progress=progress)
    ok = feats[(feats["status"] == "ok") & feats["skin_tone"].notna()]
    if n is not None and len(ok) > n:
        ok = ok.iloc[np.sort(np.random.default_rng(seed).permutation(len(ok))[:n])]
    suite = PERTURBATIONS["brightness"]
    plan = ([(i + 1, f) for i, f in enumerate(suite.params)] if factors is None
            else [(suite.params.index(f) + 1 if f in suite.params else 0, float(f))
                  for f in factors])
    rng = np.random.default_rng(seed)
    rows = []
    for label, r in ok.iterrows():
        image = load_image(r["path"])
        face = Face(box=np.asarray(r["box"], np.float32), score=float(r["score"]),
                    landmarks=np.asarray(r["landmarks"], np.float32))
        for level, factor in plan:
            shifted = (perturb(image, "brightness", level) if level
                       else suite.apply(image, factor, rng, None))
            got = measure_skin_tone(shifted, face)
            rows.append({"image": label, "level": level, "factor": factor,
                         "ita_clean": float(r["skin_ita"]), "ita": got["ita"],
                         "delta": got["ita"] - float(r["skin_ita"]),
                         "tone_clean": r["skin_tone"], "tone": got["tone"],
                         "category_clean": r["skin_category"], "category": got["category"],
                         "flag": got["flag"]})
    return pd.DataFrame(rows)


def brightness_summary(shifts: pd.DataFrame) -> pd.DataFrame:
    """Per brightness level: faces, faces still measured, median and 10th-90th percentile
    ITA shift (degrees), and the share of measured faces whose lighter/darker class or
    ITA category changed (Wilson 95% CI)."""
    rows = []
    for (level, factor), block in shifts.groupby(["level", "factor"], sort=True):
        m = block[block["flag"] == ""]
        k = int((m["tone"] != m["tone_clean"]).sum())
        kc = int((m["category"] != m["category_clean"]).sum())
        lo, hi = binomial_ci(k, len(m))
        rows.append({
            "level": level, "brightness_factor": factor, "faces": len(block),
            "measured": len(m), "not_measured": len(block) - len(m),
            "delta_median": float(m["delta"].median()) if len(m) else math.nan,
            "delta_p10": float(m["delta"].quantile(0.1)) if len(m) else math.nan,
            "delta_p90": float(m["delta"].quantile(0.9)) if len(m) else math.nan,
            "class_changed": k / len(m) if len(m) else math.nan,
            "class_changed_count": f"{k}/{len(m)}", "ci_low": lo, "ci_high": hi,
            "lighter_to_darker": int(((m["tone_clean"] == "lighter")
                                      & (m["tone"] == "darker")).sum()),
            "darker_to_lighter": int(((m["tone_clean"] == "darker")
                                      & (m["tone"] == "lighter")).sum()),
            "category_changed": kc / len(m) if len(m) else math.nan,
        })
    return pd.DataFrame(rows)


def ita_by_race(frame: pd.DataFrame, *, race: str = "race", normalize: bool = False
                ) -> pd.DataFrame:
    """ITA category against the dataset's race label, per dataset: image counts (or row
    shares with ``normalize=True``), with a ``not measured`` column for faces whose tone
    could not be estimated and the lighter/darker totals. Rows without a race label are
    left out. A table of co-occurrence: an ITA category is not a race, nor a proxy for one.
    """
    d = frame[frame[race].notna()].copy()
    d["category"] = d["skin_category"].astype("string").fillna(NOT_MEASURED)
    cols = [*ITA_CATEGORIES, NOT_MEASURED]
    out = []
    for ds, block in d.groupby("dataset", sort=False):
        tab = pd.crosstab(block[race].astype(str), block["category"]).reindex(
            columns=cols, fill_value=0)
        tab["lighter"] = (block.assign(t=block["skin_tone"] == "lighter")
                          .groupby(block[race].astype(str))["t"].sum())
        tab["darker"] = (block.assign(t=block["skin_tone"] == "darker")
                         .groupby(block[race].astype(str))["t"].sum())
        tab["images"] = tab[cols].sum(axis=1)
        if normalize:
            tab[[*cols, "lighter", "darker"]] = tab[[*cols, "lighter", "darker"]].div(
                tab["images"], axis=0)
        tab.insert(0, "dataset", ds)
        out.append(tab.reset_index().rename(columns={race: "race"}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["dataset", "race", *cols, "lighter", "darker", "images"])


def add_skin_tone(manifest: pd.DataFrame, *, detector: str = SKIN_DETECTOR,
                  progress: bool = False, batch_size: int = 32, **extract_options
                  ) -> pd.DataFrame:
    """The manifest with skin-tone grouping columns, measured on each image's largest face
    by :func:`facelab.extract` (head ``"skin_tone"``, cached on disk).

    Parameters
    ----------
    manifest
        A manifest (``path`` column); its index and columns are kept.
    detector
        Detector whose largest face is measured (its detections are cached and shared
        with any other study using the same detector).
    progress, batch_size, extract_options
        Passed to :func:`facelab.extract`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``skin_tone`` ("lighter"/"darker"), ``skin_category`` (Chardon),
        ``skin_ita`` (degrees), ``skin_n_pixels`` and ``skin_flag``: ``""`` when measured,
        else why not (no face detected, unreadable image, too few skin pixels, ...); the
        grouping columns are ``<NA>`` there, so such rows fall out of any group
        (:func:`facelab.studies.matching.group_labels` calls them "unlabelled").
    """

    feats = extract(manifest, detector=detector, heads=("skin_tone",), face_policy="largest",
                    progress=progress, batch_size=batch_size, **extract_options)
    out = manifest.copy()
    for col in ("skin_tone", "skin_category"):
        out[col] = feats[col].astype("string") if col in feats else pd.NA
        out[col] = out[col].astype("string")
    out["skin_ita"] = pd.to_numeric(feats["skin_ita"], errors="coerce") if "skin_ita" in feats \
        else np.nan
    out["skin_n_pixels"] = (pd.to_numeric(feats["skin_n_pixels"], errors="coerce")
                            .astype("Int64") if "skin_n_pixels" in feats else pd.NA)
    flag = feats["skin_flag"].astype("string") if "skin_flag" in feats else \
        pd.Series(pd.NA, index=feats.index, dtype="string")
    reason = feats["reason"].astype("string")
    out["skin_flag"] = flag.where(feats["status"] == "ok", reason).fillna(reason).fillna("")
    return out
