"""Audits of results another system exported (:mod:`facelab.external`): line the
imported scores and candidate lists up with the audit's manifest so that
``02_verification_demographics`` and ``03_one_to_many_search`` run their usual study
functions on them.

The manifest gives what the external file does not: who each image shows (subjects, for
mated / non-mated), the demographic group, the dataset, and (for 1:N) which images form
the gallery and which are probes. Ids in the files are matched to manifest rows by
:class:`facelab.external.IdResolver`; ids that match nothing are an error naming the line,
or (``errors="drop"``) a counted drop.

Scores keep the file's own scale for reporting; the studies get facelab's convention
(``similarity``: higher = more alike), and every threshold sentence says the value on the
file's scale.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError, check_known
from facelab.external import (
    IdResolver,
    ImportedCandidates,
    ImportedScores,
    load_candidates,
    load_scores,
)
from facelab.external.rekognition import external_image_id
from facelab.metrics.biometric import ThresholdChoice
from facelab.metrics.intervals import binomial_ci
from facelab.studies.attributes import _PRED, SKIN_COLUMNS, _evaluated_mask
from facelab.studies.matching import UNLABELLED
from facelab.studies.search import SearchRun
from facelab.studies.verification import (
    GENUINE,
    IMPOSTOR_UNLABELLED,
    IMPOSTOR_WITHIN,
    declared_threshold,
)

__all__ = ["IMPOSTOR_CROSS", "scored_pairs", "on_file_scale", "default_choice",
           "cross_group_fmr_pairs", "search_run", "fixed_thresholds", "export_pairs",
           "export_search_protocol"]

#: Kind of an imported impostor pair whose two people are in different groups.
IMPOSTOR_CROSS = "impostor, different groups"


def _subjects(manifest: pd.DataFrame) -> pd.Series:
    """Subject per row; a row without one is its own person (its index)."""
    s = manifest["subject"].astype("string") if "subject" in manifest else \
        pd.Series(pd.NA, index=manifest.index, dtype="string")
    return s.fillna(pd.Series(manifest.index.astype(str), index=manifest.index)).astype(str)


def scored_pairs(imported: ImportedScores, manifest: pd.DataFrame, *, errors: str = "raise"
                 ) -> tuple[pd.DataFrame, Drops]:
    """Imported verification scores as the *scored pairs* frame of
    :mod:`facelab.studies.verification`.

    Parameters
    ----------
    imported
        From :func:`facelab.external.load_scores`.
    manifest
        The audit's manifest (:func:`facelab.studies.matching.load_manifests`: index
        ``"<dataset>:<file>"``, columns ``source``, ``group``, ``subject``).
    errors
        Ids not in the manifest: ``"raise"`` (error naming the line) or ``"drop"``
        (counted).

    Returns
    -------
    scored, drops
        Columns ``index_a, index_b, subject_a, subject_b, same, source, kind, group_a,
        group_b, score`` (facelab similarity), ``score_native`` (the file's value),
        ``censored`` and ``where``. ``kind`` adds :data:`IMPOSTOR_CROSS` to the study's
        kinds. ``drops`` holds the import's drops and the ids not found.

    Raises
    ------
    InputError
        Unknown ids (``errors="raise"``), or a ``mated`` label that contradicts the
        manifest's subjects.
    """
    t = imported.table
    src = imported.source
    drops = Drops(src)
    drops.extend(imported.drops)
    wheres = t["where"].tolist()
    images = IdResolver(manifest)
    a = images(t["probe"])
    subj = _subjects(manifest)
    groups = manifest["group"].astype(str) if "group" in manifest else \
        pd.Series(UNLABELLED, index=manifest.index)
    sources = manifest["source"].astype(str) if "source" in manifest else \
        manifest["dataset"].astype(str)
    by_subject = pd.DataFrame({"subject": subj, "group": groups, "source": sources})
    subj_group = by_subject.groupby("subject")["group"].agg(
        lambda g: g.iloc[0] if g.nunique() == 1 else UNLABELLED)
    subj_source = by_subject.groupby("subject")["source"].first()
    b_index: list[str | None] = []
    b_subject: list[str | None] = []
    for ref, kind in zip(t["reference"], t["reference_is"], strict=True):
        if kind == "subject" and ref in subj_group.index:
            b_index.append(None)
            b_subject.append(ref)
            continue
        r = images([ref])[0]
        b_index.append(r)
        b_subject.append(subj[r] if r is not None else None)
    known_a = np.array([x is not None for x in a])
    known_b = np.array([x is not None for x in b_subject])
    keep = np.ones(len(t), dtype=bool)
    for name, ok, ids in (("probe", known_a, t["probe"]),
                          ("reference", known_b, t["reference"])):
        rows = np.flatnonzero(keep)  # a row already dropped is not counted twice
        found = {i for i, k in zip(ids, ok, strict=True) if k}
        keep[rows] &= check_known(ids.iloc[rows].tolist(), found, source=src, column=name,
                                  wheres=[wheres[i] for i in rows], errors=errors,
                                  drops=drops)
    keep &= known_a & known_b
    t = t[keep].reset_index(drop=True)
    a = [x for x, k in zip(a, keep, strict=True) if k]
    b_index = [x for x, k in zip(b_index, keep, strict=True) if k]
    b_subject = [x for x, k in zip(b_subject, keep, strict=True) if k]
    wheres = t["where"].tolist()
    subject_a = subj.reindex(a).to_numpy()
    subject_b = np.array(b_subject, dtype=object)
    same_manifest = subject_a == subject_b
    mated = t["mated"]
    has_subject = manifest["subject"].notna() if "subject" in manifest else \
        pd.Series(False, index=manifest.index)
    told = mated.notna().to_numpy()
    both_known = has_subject.reindex(a).to_numpy(dtype=bool) & np.array(
        [(i is None) or bool(has_subject.get(i, False)) for i in b_index])
    clash = told & both_known & (mated.fillna(False).to_numpy(dtype=bool) != same_manifest)
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise InputError(src, f"mated={bool(mated.iloc[i])} but the manifest gives subjects "
                              f"{subject_a[i]!r} and {subject_b[i]!r}", wheres[i])
    if "probe_subject" in t and t["probe_subject"].notna().any():
        ps = t["probe_subject"].astype("string")
        bad = ps.notna().to_numpy() & has_subject.reindex(a).to_numpy(dtype=bool) & \
            (ps.fillna("").to_numpy() != subject_a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(src, f"the file gives the probe identity {ps.iloc[i]!r}; the "
                                  f"manifest gives {subject_a[i]!r}", wheres[i])
    same = np.where(told, mated.fillna(False).to_numpy(dtype=bool), same_manifest)
    group_a = groups.reindex(a).to_numpy()
    group_b = np.array([groups[i] if i is not None else subj_group.get(s, UNLABELLED)
                        for i, s in zip(b_index, b_subject, strict=True)], dtype=object)
    source_a = sources.reindex(a).to_numpy()
    source_b = np.array([sources[i] if i is not None else subj_source.get(s, "")
                         for i, s in zip(b_index, b_subject, strict=True)], dtype=object)
    source = np.where(source_a == source_b, source_a,
                      pd.Series(source_a).astype(str) + " / " + pd.Series(source_b).astype(str))
    kind = np.where(same, GENUINE, np.where(
        (group_a == group_b) & (group_a != UNLABELLED), IMPOSTOR_WITHIN,
        np.where((group_a == UNLABELLED) & (group_b == UNLABELLED), IMPOSTOR_UNLABELLED,
                 IMPOSTOR_CROSS)))
    out = pd.DataFrame({
        "index_a": a, "index_b": [i if i is not None else s for i, s in
                                  zip(b_index, b_subject, strict=True)],
        "subject_a": subject_a.astype(str), "subject_b": subject_b.astype(str),
        "same": same.astype(bool), "source": source, "kind": kind, "group_a": group_a,
        "group_b": group_b,
        "score": imported.scale.to_similarity(t["score"].to_numpy(dtype=float)),
        "score_native": t["score"].to_numpy(dtype=float),
        "censored": t["censored"].to_numpy(dtype=bool) if "censored" in t
        else np.zeros(len(t), dtype=bool),
        "where": wheres})
    return out, drops


def on_file_scale(choice: ThresholdChoice, imported) -> ThresholdChoice:
    """``choice`` (a facelab-similarity threshold set on imported scores) with its ``how``
    also giving the value on the file's own scale.

    Raises
    ------
    ValueError
        When the threshold falls below the system's own cut-off (``censored_below``):
        scores under it were never returned, so the FMR there is unknown.
    """
    native = imported.scale.from_similarity(choice.threshold)
    floor = imported.censored_below
    if floor is not None and imported.scale.to_similarity(floor) > choice.threshold:
        raise ValueError(f"threshold {native:g} on the file's scale is below the system's own "
                         f"cut-off {floor:g}: scores under it were not returned, so its error "
                         "rates cannot be measured")
    return replace(choice, how=f"{choice.how}; on the file's scale: "
                               f"{imported.scale.describe(choice.threshold)}")


def default_choice(imported, scored: pd.DataFrame | None = None) -> ThresholdChoice | None:
    """The system's own threshold (declared, e.g. deepface's ``threshold`` or
    Rekognition's default 80) as a :class:`ThresholdChoice` on facelab's similarity, with
    its FMR on the within-group impostors of ``scored``; None when none was declared."""
    if imported.default_threshold is None:
        return None
    t = float(imported.scale.to_similarity(imported.default_threshold))
    return declared_threshold(
        t, scored,
        how=f"the system's own threshold: {imported.default_how or 'declared on import'}; "
            f"{imported.scale.describe(t)}; not set from these data",
        reference="the system's documentation")


def cross_group_fmr_pairs(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                          source: str, confidence: float = 0.95) -> pd.DataFrame:
    """Impostor FMR for every pair of groups of one dataset, from the impostor pairs the
    file lists (an imported file has only the pairs it scored, not every pair of images
    as :func:`facelab.studies.verification.cross_group_fmr` counts). Same columns,
    symmetric; pairs treated as independent (Wilson)."""
    t = float(threshold)
    imp = scored[(scored["source"] == source) & ~scored["same"].astype(bool)
                 & (scored["group_a"] != UNLABELLED) & (scored["group_b"] != UNLABELLED)]
    ga = np.minimum(imp["group_a"].astype(str), imp["group_b"].astype(str))
    gb = np.maximum(imp["group_a"].astype(str), imp["group_b"].astype(str))
    fm = (imp["score"] >= t).to_numpy()
    counts = pd.DataFrame({"a": ga, "b": gb, "fm": fm}).groupby(["a", "b"])["fm"].agg(
        ["sum", "size"])
    names = sorted(set(ga) | set(gb))
    rows = []
    for x in names:
        for y in names:
            key = (min(x, y), max(x, y))
            k, n = (int(counts.loc[key, "sum"]), int(counts.loc[key, "size"])) \
                if key in counts.index else (0, 0)
            low, high = binomial_ci(k, n, confidence=confidence)
            rows.append({"group_a": x, "group_b": y, "fmr": k / n if n else math.nan,
                         "count": k, "n": n, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 1:N
def search_run(imported: ImportedCandidates, manifest: pd.DataFrame, *,
               errors: str = "raise"):
    """Imported candidate lists as the :class:`facelab.studies.search.SearchRun` of the
    audit's gallery and probes (:func:`facelab.studies.search.search_sets`).

    Probe ids are matched to the manifest's probe rows, candidate ids to its gallery
    (``gallery_id``, or any image id of a gallery row). A search that returned nothing
    gets one row with ``score = -inf`` (it counts as a search with no false match and, if
    mated, a miss). Manifest probes absent from the file were not searched: they are
    listed in ``failed`` with that reason (like a failure to acquire). ``scores`` is None
    (only the returned candidates are known, so FPIR by gallery size cannot be computed).

    Raises
    ------
    InputError
        Probe or candidate ids not in the manifest's probes / gallery
        (``errors="raise"``).
    """

    src = imported.source
    drops = Drops(src)
    drops.extend(imported.drops)
    gal = manifest[manifest["role"] == "gallery"]
    prb = manifest[manifest["role"] == "probe"]
    probe_of = IdResolver(prb)
    cand_of = IdResolver(gal, target="gallery_id")
    t = imported.table
    wheres = t["where"].tolist()
    p_ids = probe_of(t["probe"])
    c_ids = cand_of(t["candidate"])
    keep = check_known([p if p is not None else f"\0{q}" for p, q in
                        zip(p_ids, t["probe"], strict=True)], set(prb.index.astype(str)),
                       source=src, column="probe", wheres=wheres, errors=errors, drops=drops,
                       known_name="the audit's probes")
    keep &= check_known([c if c is not None else f"\0{q}" for c, q in
                         zip(c_ids, t["candidate"], strict=True)],
                        set(gal["gallery_id"].astype(str)), source=src, column="candidate",
                        wheres=wheres, errors=errors, drops=drops,
                        known_name="the audit's gallery")
    searched = probe_of(imported.probes)
    unknown = [p for p, r in zip(imported.probes, searched, strict=True) if r is None]
    if unknown:
        if errors == "raise":
            raise InputError(src, f"probe {unknown[0]!r} is not in the audit's probes "
                                  f"({len(unknown)} such)")
        for p in unknown:
            if p not in set(t["probe"]):
                drops.add(str(p), "probe is not in the audit's probes", src)
    searched = [s for s in searched if s is not None]
    sim = imported.scale.to_similarity(t["score"].to_numpy(dtype=float))
    res = pd.DataFrame({"probe": np.array(p_ids, dtype=object)[keep],
                        "candidate_rank": t["rank"].to_numpy()[keep],
                        "subject": np.array(c_ids, dtype=object)[keep], "score": sim[keep],
                        "score_native": t["score"].to_numpy(dtype=float)[keep]})
    empty = sorted(set(searched) - set(res["probe"]))
    if empty:
        res = pd.concat([res, pd.DataFrame({"probe": empty, "candidate_rank": 1,
                                            "subject": None, "score": -np.inf,
                                            "score_native": np.nan})], ignore_index=True)
    # rank again after drops so that ranks still run 1, 2, ...
    res = res.sort_values(["probe", "candidate_rank"], kind="stable").reset_index(drop=True)
    res["candidate_rank"] = res.groupby("probe").cumcount() + 1
    info = prb.loc[res["probe"]]
    mate = info["mate_id"].astype("string").to_numpy()
    res["is_mate"] = (pd.Series(res["subject"].astype("string").to_numpy())
                      == pd.Series(mate, dtype="string")).fillna(False).astype(bool).to_numpy()
    res["mated"] = info["mated"].to_numpy().astype(bool)
    res["probe_group"] = info["group"].to_numpy()
    gid_group = pd.Series(gal["group"].to_numpy(), index=gal["gallery_id"].astype(str))
    gid_group = gid_group[~gid_group.index.duplicated()]
    res["candidate_group"] = gid_group.reindex(res["subject"].astype(str)).to_numpy()
    res["template_source"] = res["subject"]
    res["error"] = ""
    not_searched = prb.index.difference(pd.Index(searched))
    failed = prb.loc[not_searched, ["source", "role", "group"]].assign(
        reason="not in the imported file (not searched by the system)")
    run = SearchRun(res, None, np.array(sorted(set(searched)), dtype=object),
                    pd.unique(gal["gallery_id"].astype(str)), failed, "imported",
                    gallery_groups=gal.drop_duplicates("gallery_id")["group"].to_numpy())
    run.drops = drops
    return run


def fixed_thresholds(imported, points: Mapping[str, float]) -> dict[str, ThresholdChoice]:
    """Operating points given as thresholds **on the file's own scale** (e.g.
    Rekognition similarity 80 and 99), as :class:`ThresholdChoice` on facelab's
    similarity whose ``how`` names the scale. A point below the system's own cut-off
    (``censored_below``) is left out with a warning: its rates cannot be measured."""
    out = {}
    for name, value in points.items():
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"operating point {name!r}: threshold must be finite; got {value!r}")
        t = float(imported.scale.to_similarity(v))
        choice = ThresholdChoice(
            threshold=t, target_fmr=math.nan, achieved_fmr=math.nan, n_impostor=0,
            n_false_matches=0,
            how=f"{imported.scale.describe(t)}: set by hand on the imported system's own "
                "scale (not a facelab similarity, not set from these data)",
            reference="given")
        try:
            on_file_scale(choice, imported)  # refuses a threshold below the cut-off
            out[name] = choice
        except ValueError as exc:
            warnings.warn(f"operating point {name!r} skipped: {exc}", stacklevel=2)
    return out


# ----------------------------------------------------------------------------- protocols
def export_pairs(pairs: pd.DataFrame, manifest: pd.DataFrame, path) -> None:
    """Write the pairs an external system should score: ``probe,reference,probe_path,
    reference_path`` (ids are the manifest index; paths absolute)."""
    p = manifest["path"].astype(str)
    pd.DataFrame({"probe": pairs["index_a"], "reference": pairs["index_b"],
                  "probe_path": p.reindex(pairs["index_a"]).to_numpy(),
                  "reference_path": p.reindex(pairs["index_b"]).to_numpy()}).to_csv(
        path, index=False)


def export_search_protocol(manifest: pd.DataFrame, folder) -> None:
    """Write what an external 1:N system must enrol and search: ``gallery.csv``
    (``external_image_id`` = the gallery id as a Rekognition ``ExternalImageId``,
    ``image``, ``path``) and ``probes.csv`` (``probe``, ``path``)."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gal = manifest[manifest["role"] == "gallery"]
    pd.DataFrame({"external_image_id": [external_image_id(g) for g in gal["gallery_id"]],
                  "image": gal.index, "path": gal["path"].astype(str)}).to_csv(
        folder / "gallery.csv", index=False)
    prb = manifest[manifest["role"] == "probe"]
    pd.DataFrame({"probe": prb.index, "path": prb["path"].astype(str)}).to_csv(
        folder / "probes.csv", index=False)


# ----------------------------------------------------------------------------- attributes
def attribute_predictions(imported, manifests: Mapping[str, pd.DataFrame], *,
                          errors: str = "raise", skin_from: pd.DataFrame | None = None
                          ) -> pd.DataFrame:
    """Imported per-image predictions in the shape of
    :func:`facelab.studies.attributes.attribute_predictions` (one row per manifest image,
    the largest face), so ``05_attribute_audit``'s functions (gender error by group, age
    error, calibration) run on them.

    Images the system found no face in get ``status="failed"`` and that reason; manifest
    images absent from the file get ``status="failed"`` with reason "no prediction in the
    imported file" (neither is evaluated; both are counted by
    :func:`facelab.studies.attributes.acquisition_summary`). Predicted images that are in
    no manifest raise an :class:`InputError` (or, with ``errors="drop"``, are counted in
    ``attrs["drops"]``). ``skin_from``: facelab's own prediction table for the same
    manifests (:func:`facelab.studies.attributes.attribute_predictions`), whose skin-tone
    columns (facelab's measurement of the face, not the audited system's) are copied by
    dataset and file so errors can be grouped by skin type too.
    """

    frames = []
    for name, m in manifests.items():
        part = m.copy()
        part["_name"] = name
        part.index = pd.Index([f"{name}:{f}" for f in part["file"]])
        frames.append(part)
    manifest = pd.concat(frames)
    top = imported.largest_face()
    resolve = IdResolver(manifest)
    ids = resolve(top["image"])
    drops = Drops(imported.source)
    found = {i for i, r in zip(top["image"], ids, strict=True) if r is not None}
    keep = check_known(top["image"].tolist(), found, source=imported.source, column="image",
                       wheres=top["where"].astype(str).tolist(), errors=errors, drops=drops)
    top = top[keep].assign(_row=[r for r, k in zip(ids, keep, strict=True) if k])
    top = top.drop_duplicates("_row").set_index("_row")
    keep_cols = [c for c in ("dataset", "file", "subject", "race", "race_original", "gender",
                             "age", "age_bin") if c in manifest.columns]
    out = manifest[keep_cols].copy()
    out["dataset"] = manifest["_name"]
    has = out.index.isin(top.index)
    face = top["face"].reindex(out.index)
    ok = has & (face.fillna(-1).to_numpy() >= 0)
    out["status"] = np.where(ok, "ok", "failed")
    out["reason"] = np.where(ok, pd.NA, np.where(has, "no face found by the system",
                                                 "no prediction in the imported file"))
    out["n_faces"] = np.where(has, 1, 0)
    # for the error galleries: the image, and the system's box when given in pixels
    # (Rekognition's ratio boxes need the image size: the whole image is shown instead)
    out["path"] = manifest["path"].to_numpy() if "path" in manifest.columns else None
    pixel = [c for c in ("box_x1", "box_y1", "box_x2", "box_y2") if c in top.columns]
    if imported.box_units == "pixel" and len(pixel) == 4:
        boxes = top[pixel].reindex(out.index).to_numpy(dtype=float)
        out["box"] = [list(b) if k and np.isfinite(b).all() else None
                      for b, k in zip(boxes, ok, strict=True)]
    else:
        out["box"] = None
    src = {"pred_gender": "gender", "pred_gender_confidence": "gender_confidence",
           "pred_p_female": "p_female", "pred_age": "age", "pred_age_low": "age_low",
           "pred_age_high": "age_high"}
    for col in _PRED:
        out[col] = top[src[col]].reindex(out.index).where(ok).to_numpy() if src[col] in top \
            else np.nan
    for col in ("pred_gender_confidence", "pred_p_female", "pred_age", "pred_age_low",
                "pred_age_high"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out["pred_gender"] = out["pred_gender"].astype("string").str.lower()
    out = out.reset_index(drop=True)
    mask = _evaluated_mask(out)
    err = pd.array([pd.NA] * len(out), dtype="boolean")
    err[mask] = (out.loc[mask, "pred_gender"] != out.loc[mask, "gender"]).to_numpy(bool)
    out["gender_error"] = err
    if skin_from is not None:

        cols = [c for c in SKIN_COLUMNS if c in skin_from.columns]
        skin = skin_from.drop_duplicates(["dataset", "file"]).set_index(
            ["dataset", "file"])[cols]
        key = pd.MultiIndex.from_arrays([out["dataset"], out["file"]])
        for c in cols:
            out[c] = skin[c].reindex(key).to_numpy()
    out.attrs = {"model": imported.system, "detector": imported.system,
                 "drops": drops.rows}
    return out


# ----------------------------------------------------------------------------- notebooks
class ImportedRun:
    """What the audit notebooks need from an imported file: the system's ``name`` (it
    takes the place of an embedder), the import (``imported``), and either the scored
    pairs (``scored``, 02) or the :class:`~facelab.studies.search.SearchRun` (``run``,
    03), plus every drop with its reason (``drops``)."""

    def __init__(self, imported, *, scored=None, run=None, drops: Drops | None = None):
        self.imported = imported
        self.name = f"{imported.system} (imported)"
        self.scored = scored
        self.run = run
        self.drops = drops if drops is not None else imported.drops

    def summary(self) -> str:
        """The import's summary and the drops, for the notebook."""
        text = self.imported.summary()
        extra = len(self.drops) - len(self.imported.drops)
        if extra > 0:
            text += f" Lining ids up with the manifest: {self.drops.summary()}"
        return text


def _errors(spec) -> str:
    return spec.get("errors", "raise") if isinstance(spec, Mapping) else "raise"


def load_verification(spec, manifest: pd.DataFrame) -> ImportedRun:
    """``-p scores SPEC`` of ``02_verification_demographics``: read the file with
    :func:`facelab.external.load_scores` and line it up with the manifest
    (:func:`scored_pairs`; the spec's ``errors`` applies to both)."""

    imported = load_scores(spec)
    scored, drops = scored_pairs(imported, manifest, errors=_errors(spec))
    return ImportedRun(imported, scored=scored, drops=drops)


def load_search(spec, manifest: pd.DataFrame) -> ImportedRun:
    """``-p candidates SPEC`` of ``03_one_to_many_search``: read the candidate lists with
    :func:`facelab.external.load_candidates` and line them up with the audit's gallery and
    probes (:func:`search_run`)."""

    imported = load_candidates(spec)
    run = search_run(imported, manifest, errors=_errors(spec))
    return ImportedRun(imported, run=run, drops=run.drops)
