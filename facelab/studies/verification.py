"""1:1 verification by demographic group, NIST FRVT Part 3 style (``02_verification_demographics``).

The data decide what can be measured:

* **Genuine pairs** need identities. A dataset with identities but no demographic labels
  (CelebA) gives FNMR overall only (subject-bootstrap interval).
* **Impostor pairs by group** need demographic labels: FairFace, CFD and UTKFace have them,
  with one image per person (FairFace and UTKFace have no identity labels: every file is
  treated as a different person). Impostors are paired **within** a group (same race and
  gender, as NIST pairs same-sex, same-region impostors) for the FMR by group, and across
  groups for the cross-group FMR matrix. Pairs never cross datasets.
* **FNMR by group** needs both, in one dataset: any manifest with a ``subject`` column and
  the group columns (LFW with its gender lists and race labels, or your own CSV). Its
  genuine pairs (two images of one person, of one group) are scored at the same global
  threshold (:func:`fnmr_by_group`), next to the FMR of its within-group impostors; both
  come from :func:`facelab.metrics.groups.demographic_differentials`.
  :func:`identity_group_rates` repeats this for several groupings (gender alone, race
  alone) on datasets with identities.

One global threshold is set with :func:`facelab.metrics.biometric.threshold_at_fmr` on the
within-group impostor comparisons of a reference group (or of everyone), pooled over the
labelled datasets, then applied to every group, dataset and to the CelebA genuine pairs.

Every function takes and returns DataFrames. A *scored pairs* frame has the columns of
:func:`verification_pairs` plus ``score`` (the embedder's similarity, higher = more alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from facelab.data import label_errors as L
from facelab.data.protocols import genuine_pairs, impostor_pairs, make_pairs
from facelab.data.schema import PAIR_KEYS
from facelab.match.verification import get_embedder
from facelab.metrics.biometric import (
    ThresholdChoice,
    det_curve,
    eer,
    roc_auc,
    threshold_at_fmr,
)
from facelab.metrics.findings import Finding, findings_table
from facelab.metrics.groups import demographic_differentials, rate_by_group
from facelab.metrics.intervals import binomial_ci
from facelab.studies.matching import UNLABELLED, Embeddings, group_labels

__all__ = [
    "GENUINE", "IMPOSTOR_WITHIN", "IMPOSTOR_UNLABELLED",
    "verification_pairs", "score_pairs", "global_threshold", "default_threshold",
    "fmr_by_group", "fnmr_by_group", "group_rates", "fmr_by_attribute", "fnmr_overall",
    "det_by_group", "IdentityGroupRates", "identity_group_rates",
    "differential_comparison", "nist_comparison", "screen_label_errors",
    "cross_group_fmr", "fmr_matrix",
    "same_vs_cross_group", "score_summary", "separation_summary",
    "verification_findings",
]

GENUINE = "genuine"
IMPOSTOR_WITHIN = "impostor, same group"
IMPOSTOR_UNLABELLED = "impostor, unlabelled"

_PAIR_COLUMNS = [*PAIR_KEYS, "source", "kind", "group_a", "group_b"]


# ----------------------------------------------------------------------------- pairs
def verification_pairs(manifest: pd.DataFrame, *, by: Sequence[str] = ("race", "gender"),
                       n_genuine: int | None = None, n_impostor_unlabelled: int | None = 200_000,
                       max_impostors_within: int | None = None,
                       max_genuine_per_subject: int | None = None, seed: int = 0
                       ) -> pd.DataFrame:
    """Genuine and impostor pairs for every dataset (``source``) of a pooled manifest.

    Parameters
    ----------
    manifest
        From :func:`facelab.studies.matching.load_manifests` (columns ``source``, ``group``,
        ``subject`` and the ``by`` columns; index = unique image ids).
    by
        Demographic columns defining a group; impostor pairs of labelled datasets share
        all of them (within-group impostors).
    n_genuine
        Genuine pairs per identity-labelled dataset (``None``: all).
    n_impostor_unlabelled
        Impostor pairs sampled from identity-labelled datasets without demographic labels
        (CelebA), ``None``: all.
    max_impostors_within
        Cap on within-group impostor pairs per labelled dataset (``None``: all), sampled in
        proportion to each group's number of pairs.
    max_genuine_per_subject
        Cap on genuine pairs of one person in labelled datasets with identities (``None``:
        all), so people with hundreds of images do not dominate FNMR by group.
    seed
        Seed of every sample.

    Returns
    -------
    DataFrame
        ``index_a, index_b, subject_a, subject_b, same, source, kind, group_a, group_b``;
        ``kind`` is :data:`GENUINE`, :data:`IMPOSTOR_WITHIN` or :data:`IMPOSTOR_UNLABELLED`.
        A file without a subject id is its own subject (``subject = image id``).
        A labelled dataset whose people have several images also gives genuine pairs
        (``n_genuine`` of them; both images must carry the same group label: pairs of one
        person under two labels are left out and counted in
        ``attrs["genuine_mixed_groups"]``, ``{source: count}``).
    """

    frames = []
    mixed: dict[str, int] = {}
    # the pairs keep no file path: leave it out before the pair builders copy a string per
    # pair (two per pair, ~1.4 s per million impostor pairs; issue 16)
    slim = manifest.drop(columns=["path"], errors="ignore")
    for source, part in slim.groupby("source", sort=True):
        labelled = (part["group"] != UNLABELLED).any()
        if labelled:
            part = part[part["group"] != UNLABELLED]
            pairs = impostor_pairs(part, n=max_impostors_within, seed=seed, within=list(by),
                                   missing="distinct")
            pairs["kind"] = IMPOSTOR_WITHIN
            gen = genuine_pairs(part, n=n_genuine, seed=seed,
                                max_per_subject=max_genuine_per_subject)
            if len(gen):
                grp = part["group"]
                same_group = (grp.reindex(gen["index_a"]).to_numpy()
                              == grp.reindex(gen["index_b"]).to_numpy())
                mixed[str(source)] = int((~same_group).sum())
                gen = gen[same_group].assign(kind=GENUINE)
                pairs = pd.concat([gen, pairs], ignore_index=True)
        elif part["subject"].notna().any():
            pairs = make_pairs(part, n_genuine=n_genuine, n_impostor=n_impostor_unlabelled,
                               seed=seed)
            pairs["kind"] = np.where(pairs["same"], GENUINE, IMPOSTOR_UNLABELLED)
        else:
            continue
        pairs["source"] = source
        frames.append(pairs)
    if not frames:
        return pd.DataFrame(columns=_PAIR_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {}
    group = manifest["group"]
    out["group_a"] = group.reindex(out["index_a"]).to_numpy()
    out["group_b"] = group.reindex(out["index_b"]).to_numpy()
    for side in ("a", "b"):
        subj = out[f"subject_{side}"].astype("string")
        out[f"subject_{side}"] = subj.fillna(out[f"index_{side}"].astype("string")).astype(str)
    out["same"] = out["same"].astype(bool)
    out = out[_PAIR_COLUMNS]
    out.attrs["genuine_mixed_groups"] = mixed
    return out


def score_pairs(pairs: pd.DataFrame, embeddings: Embeddings, *, chunk: int = 200_000,
                positions: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[pd.DataFrame, int]:
    """Similarity of every pair; pairs with an image that has no embedding (failure to
    acquire) are dropped. Returns the scored pairs and the number dropped. ``chunk`` is
    no longer used (:meth:`Embeddings.pair_scores` picks its own block size).

    ``positions`` are ``(embeddings.positions(pairs["index_a"]),
    embeddings.positions(pairs["index_b"]))`` when the caller already has them."""
    pa, pb = positions if positions is not None else _pair_positions(pairs, embeddings)
    if (pa < 0).any() or (pb < 0).any():
        raise ValueError("pairs name images that are not in the embeddings' manifest")
    keep = embeddings.ok[pa] & embeddings.ok[pb]
    pa, pb = pa[keep], pb[keep]
    scores = embeddings.pair_scores(pa, pb).astype(np.float64)
    out = pairs.loc[keep].reset_index(drop=True)
    out["score"] = scores
    return out, int((~keep).sum())


def _pair_positions(pairs: pd.DataFrame, embeddings: Embeddings
                    ) -> tuple[np.ndarray, np.ndarray]:
    return embeddings.positions(pairs["index_a"]), embeddings.positions(pairs["index_b"])


# ----------------------------------------------------------------------------- label errors
def screen_label_errors(manifest: pd.DataFrame, embeddings: Embeddings, scored: pd.DataFrame,
                        *, policy: str = "exclude certain", level: float | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Find label errors among scored pairs and apply a policy
    (:mod:`facelab.data.label_errors`).

    Certain errors: images whose file is byte-identical (``image_sha256`` of the features)
    to an image of another identity (a file without a subject is its own person); every
    pair involving one is flagged ``"certain"``. Likely errors: impostor pairs scoring at
    or above the embedder's near-duplicate ``level``.

    Returns
    -------
    kept, listed, counts
        The pairs the policy keeps; every flagged pair (with ``label_error``, files and
        subjects); counts ``certain_images``, ``certain``, ``likely``, ``excluded``
        (pairs) and ``level``.
    """

    hashes = embeddings.features["image_sha256"].reindex(manifest.index)
    ident = L.identical_images(manifest, hashes)
    certain = L.certain_error_images(ident)
    try:
        lvl = L.near_duplicate_level(embeddings.model, level)
    except ValueError:
        # an embedder with no known near-duplicate level (a plugin, a model card): likely
        # errors are not screened (level NaN, said in the findings); certain ones still are
        lvl = math.nan
    flagged = L.flag_pairs(scored, certain, math.inf if math.isnan(lvl) else lvl)
    kept, counts = L.apply_policy(flagged, policy)
    listed = flagged[flagged["label_error"] != ""].copy()
    for side in ("a", "b"):
        listed[f"file_{side}"] = manifest["file"].reindex(listed[f"index_{side}"]).to_numpy()
    counts = {"certain_images": len(certain), **counts, "level": lvl}
    return kept.drop(columns=["label_error"]), listed, counts


# ----------------------------------------------------------------------------- thresholds
def global_threshold(scored: pd.DataFrame, *, target_fmr: float,
                     reference_group: str | None = None) -> ThresholdChoice:
    """One global threshold at ``target_fmr`` on within-group impostor comparisons.

    Set on the impostor pairs of ``reference_group`` (both people in it, pooled over the
    labelled datasets) or, when it is ``None``, of every group. If the reference group has
    too few comparisons to resolve the target (fewer than ``1 / target_fmr``), everyone's
    comparisons are used instead and ``how`` says so.

    Raises
    ------
    ValueError
        When even everyone's within-group impostor comparisons cannot resolve the target.
    """
    within = scored[scored["kind"] == IMPOSTOR_WITHIN]
    if reference_group is not None:
        ref = within.loc[within["group_a"] == reference_group, "score"]
        need = math.ceil(1 / target_fmr - 1e-9)
        if len(ref) >= need:
            return threshold_at_fmr(ref, target_fmr,
                                    reference=f"group {reference_group} (within-group pairs)")
        why = (f"reference group {reference_group!r} has {len(ref):,} impostor comparisons, "
               f"fewer than the {need:,} needed for FMR={target_fmr:g}; ")
    else:
        why = ""
    choice = threshold_at_fmr(within["score"], target_fmr,
                              reference="every group (within-group pairs)")
    if why:
        choice = replace(choice, how=why + choice.how)
    return choice


def default_threshold(model: str, scored: pd.DataFrame | None = None) -> ThresholdChoice:
    """The embedder's published default threshold as a :class:`ThresholdChoice` (its FMR on
    the within-group impostors of ``scored``, when given, is recorded as achieved FMR)."""

    emb = get_embedder(model)
    t = float(emb.default_threshold)
    return declared_threshold(
        t, scored, how=f"model default {t:g} ({emb.threshold_source}); not set from these data",
        reference="model documentation")


def declared_threshold(threshold: float, scored: pd.DataFrame | None, *, how: str,
                       reference: str) -> ThresholdChoice:
    """A threshold declared elsewhere (a model's or a system's documentation) as a
    :class:`ThresholdChoice`, with its achieved FMR on the within-group impostor pairs of
    ``scored`` when given (NaN and zero counts otherwise).

    Parameters
    ----------
    threshold : float
        On facelab's similarity scale (higher = more alike).
    scored : DataFrame or None
        Scored pairs with ``kind`` and ``score`` columns (:func:`score_pairs`).
    how, reference : str
        How the threshold was set and the document that sets it.
    """
    k = n = 0
    if scored is not None:
        within = scored.loc[scored["kind"] == IMPOSTOR_WITHIN, "score"]
        k, n = int((within >= threshold).sum()), len(within)
    return ThresholdChoice(
        threshold=float(threshold), target_fmr=math.nan,
        achieved_fmr=k / n if n else math.nan, n_impostor=n, n_false_matches=k,
        how=how, reference=reference)


# ----------------------------------------------------------------------------- rates
def _rate_rows(gm, *, source: str, rate: str) -> pd.DataFrame:
    bg = gm.by_group.reset_index()
    bg = bg.rename(columns={"value": rate})
    overall = gm.overall.to_dict()
    overall["group"] = "all groups"
    overall[rate] = overall.pop("value")
    out = pd.concat([bg, pd.DataFrame([overall])], ignore_index=True)
    out.insert(0, "source", source)
    return out


def group_rates(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                reference_group: str | None = None, n_boot: int = 1000, seed: int = 0,
                min_count: int = 30) -> dict[str, pd.DataFrame]:
    """FMR **and** FNMR by group at one threshold, per labelled dataset.

    For every dataset (``source``) with within-group impostor pairs,
    :func:`facelab.metrics.groups.demographic_differentials` is run on its within-group
    impostors and its genuine pairs of labelled people (if any) at the given threshold:
    FMR per group from impostor pairs of two people of that group, FNMR per group from
    genuine pairs of that group. Intervals are clustered on ``subject_a`` (a subject
    bootstrap when a cell has at least 5 errors and 5 non-errors, else Clopper-Pearson on
    the number of people). ``ratio`` is the group's rate over the reference group's rate
    in the same dataset (over the dataset's rate of all groups when ``reference_group``
    is None or absent from that dataset; missing when that rate is 0).

    Returns
    -------
    dict
        ``{"fmr": table, "fnmr": table}``; each table has the columns
        ``source, group, <rate>, n, count, n_subjects, ci_low, ci_high, method,
        small_cell, ratio, ratio_to, threshold`` and one ``"all groups"`` row per dataset.
        The FNMR table only lists datasets with genuine pairs of labelled people.
    """
    t = float(threshold)
    labelled = scored[scored["kind"].isin([IMPOSTOR_WITHIN, GENUINE])
                      & (scored["group_a"] != UNLABELLED)]
    out: dict[str, list[pd.DataFrame]] = {"fmr": [], "fnmr": []}
    for i, (source, part) in enumerate(labelled.groupby("source", sort=True)):
        within = part["kind"] == IMPOSTOR_WITHIN
        if not within.any():
            continue
        groups = set(part.loc[within, "group_a"].unique())
        ref = reference_group if reference_group in groups else None
        diff = demographic_differentials(
            part[["score", "same", "group_a", "group_b", "subject_a"]], threshold=t,
            reference_group=ref, min_count=min_count, n_boot=n_boot,
            seed=seed + 1000 * i)
        for rate, gm in (("fmr", diff.fmr), ("fnmr", diff.fnmr)):
            if gm is None:
                continue
            bg = gm.by_group.reset_index().rename(columns={"value": rate})
            overall = gm.overall.to_dict()
            overall["group"] = "all groups"
            overall[rate] = overall.pop("value")
            rows = pd.concat([bg, pd.DataFrame([overall])], ignore_index=True)
            rows.insert(0, "source", str(source))
            ref_label = ref if ref is not None else "all groups"
            ref_value = float(rows.loc[rows["group"] == ref_label, rate].iloc[0]) \
                if (rows["group"] == ref_label).any() else math.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                rows["ratio"] = rows[rate] / ref_value if ref_value > 0 else np.nan
            rows["ratio_to"] = ref_label
            out[rate].append(rows)
    tables = {}
    for rate, frames in out.items():
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["source", "group", rate, "n", "count", "n_subjects", "ci_low", "ci_high",
                     "method", "small_cell", "ratio", "ratio_to"])
        table["threshold"] = t
        tables[rate] = table
    return tables


def fmr_by_group(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                 reference_group: str | None = None, n_boot: int = 1000, seed: int = 0,
                 min_count: int = 30) -> pd.DataFrame:
    """FMR of within-group impostor pairs per dataset and group at one threshold (the
    ``"fmr"`` table of :func:`group_rates`).

    Returns
    -------
    DataFrame
        ``source, group, fmr, n, count, n_subjects, ci_low, ci_high, method, small_cell,
        ratio, ratio_to, threshold``; one ``"all groups"`` row per dataset.
    """
    return group_rates(scored, threshold, reference_group=reference_group, n_boot=n_boot,
                       seed=seed, min_count=min_count)["fmr"]


def fnmr_by_group(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                  reference_group: str | None = None, n_boot: int = 1000, seed: int = 0,
                  min_count: int = 30) -> pd.DataFrame:
    """FNMR of the genuine pairs of labelled people per dataset and group at one threshold
    (the ``"fnmr"`` table of :func:`group_rates`): only datasets with identities **and**
    group labels have rows.

    Returns
    -------
    DataFrame
        ``source, group, fnmr, n, count, n_subjects, ci_low, ci_high, method, small_cell,
        ratio, ratio_to, threshold``; one ``"all groups"`` row per dataset.
    """
    return group_rates(scored, threshold, reference_group=reference_group, n_boot=n_boot,
                       seed=seed, min_count=min_count)["fnmr"]


def fmr_by_attribute(scored: pd.DataFrame, threshold: float | ThresholdChoice,
                     manifest: pd.DataFrame, *, column: str = "gender", n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """FMR of the within-group impostor pairs pooled by one attribute (e.g. women against
    men: every same-race, same-gender pair of women, then of men), per dataset, with
    subject-clustered intervals and the ratio of each value's FMR to the lowest one.

    Returns
    -------
    DataFrame
        ``source, <column>, fmr, n, count, n_subjects, ci_low, ci_high, method,
        ratio_to_lowest``.
    """
    t = float(threshold)
    within = scored[scored["kind"] == IMPOSTOR_WITHIN]
    within = within.assign(false_match=within["score"] >= t,
                           attr=manifest[column].reindex(within["index_a"]).to_numpy())
    within = within[within["attr"].notna()]
    frames = []
    for i, (source, part) in enumerate(within.groupby("source", sort=True)):
        gm = rate_by_group(part, event="false_match", by="attr", subject="subject_a",
                           name="FMR", n_boot=n_boot, seed=seed + 7 * i)
        bg = gm.by_group.reset_index().rename(columns={"value": "fmr", "attr": column})
        low = bg["fmr"].min()
        with np.errstate(divide="ignore", invalid="ignore"):
            bg["ratio_to_lowest"] = bg["fmr"] / low if low > 0 else np.nan
        bg.insert(0, "source", source)
        frames.append(bg)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fnmr_overall(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """FNMR of the genuine pairs per identity-labelled dataset (no demographic groups),
    with a subject-bootstrap interval (clustered on ``subject_a``); also the FMR of that
    dataset's impostor pairs at the same threshold.

    Returns
    -------
    DataFrame
        ``source, rate, value, count, n, n_subjects, ci_low, ci_high, method, threshold``:
        one ``FNMR`` and one ``FMR`` row per dataset with genuine pairs.
    """
    t = float(threshold)
    rows = []
    for i, (source, part) in enumerate(scored[scored["kind"] == GENUINE].groupby("source")):
        gen = part.assign(false_nonmatch=part["score"] < t, group=source)
        gm = rate_by_group(gen, event="false_nonmatch", by="group", subject="subject_a",
                           name="FNMR", n_boot=n_boot, seed=seed + i)
        rows.append({"source": source, "rate": "FNMR", **gm.overall.to_dict()})
        imp = scored[(scored["kind"] == IMPOSTOR_UNLABELLED) & (scored["source"] == source)]
        if len(imp):
            imp = imp.assign(false_match=imp["score"] >= t, group=source)
            gm = rate_by_group(imp, event="false_match", by="group", subject="subject_a",
                               name="FMR", n_boot=n_boot, seed=seed + i)
            rows.append({"source": source, "rate": "FMR", **gm.overall.to_dict()})
    out = pd.DataFrame(rows)
    if len(out):
        out = out.drop(columns=["small_cell"], errors="ignore")
        out["threshold"] = t
    return out


@dataclass
class IdentityGroupRates:
    """FMR and FNMR by group on datasets with identities and labels, for several
    groupings (:func:`identity_group_rates`).

    Attributes
    ----------
    fmr, fnmr : DataFrame
        :func:`group_rates` tables with extra columns ``embedder`` and ``grouping``
        (e.g. ``"gender"``, ``"race"``, ``"race x gender"``).
    scored : dict
        ``{(embedder, grouping): scored pairs}`` (for DET curves per group).
    counts : DataFrame
        ``embedder, grouping, source, kind, pairs`` (scored and kept) plus ``dropped``
        (pairs with an image that had no face), ``label_errors_excluded`` and
        ``mixed_groups`` (genuine pairs of one person under two
        labels, left out).
    label_errors, label_error_counts : DataFrame
        Flagged pairs and counts per embedder and grouping (:func:`screen_label_errors`).
    """

    fmr: pd.DataFrame
    fnmr: pd.DataFrame
    scored: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    label_errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    label_error_counts: pd.DataFrame = field(default_factory=pd.DataFrame)


def grouping_name(by: Sequence[str]) -> str:
    """``["race", "gender"]`` -> ``"race x gender"``."""
    return " x ".join(by)


def identity_group_rates(manifest: pd.DataFrame, embeddings: Mapping[str, Embeddings],
                         thresholds: Mapping[str, float | ThresholdChoice], *,
                         groupings: Sequence[Sequence[str]] = (("gender",), ("race",)),
                         reference_groups: Mapping[str, str] | None = None,
                         n_genuine: int | None = None,
                         max_impostors_within: int | None = None,
                         max_genuine_per_subject: int | None = None, n_boot: int = 1000,
                         seed: int = 0, min_count: int = 30,
                         label_error_policy: str = "exclude certain",
                         near_duplicate: Mapping[str, float] | None = None
                         ) -> IdentityGroupRates:
    """FMR and FNMR by group, one grouping at a time, on every dataset of ``manifest``
    that has identities (people with two or more images) and the grouping's labels.

    For each grouping the ``group`` label is rebuilt from its columns
    (:func:`facelab.studies.matching.group_labels`; rows missing one are left out), pairs
    are built by :func:`verification_pairs` (genuine pairs of one group, within-group
    impostor pairs of different people), scored with each embedder and passed to
    :func:`group_rates` at that embedder's one global threshold. Nothing here is specific
    to a dataset: any manifest with ``subject`` and the group columns works.

    Parameters
    ----------
    manifest
        From :func:`facelab.studies.matching.load_manifests` (``source``, ``subject``,
        the grouping columns; unique index).
    embeddings
        ``{embedder: Embeddings}`` of the manifest's rows.
    thresholds
        ``{embedder: threshold}``: the global thresholds (set elsewhere, e.g. by
        :func:`global_threshold`); not re-set here.
    groupings
        Lists of columns; each defines one set of groups.
    reference_groups
        ``{grouping name: group}`` whose rates the ratios are taken to (default: the
        rate of all groups of the dataset).
    n_genuine, max_impostors_within, max_genuine_per_subject
        Caps per dataset (or per person; ``None``: all pairs), seeded; see
        :func:`verification_pairs`.
    label_error_policy, near_duplicate
        Label errors are screened with :func:`screen_label_errors` (policy, and
        ``{embedder: level}`` overriding the default near-duplicate levels); flagged pairs
        are in ``label_errors``.
    """

    ids = manifest[manifest["subject"].notna()] if "subject" in manifest else manifest.iloc[:0]
    fmr_frames, fnmr_frames, count_rows = [], [], []
    error_frames: list[pd.DataFrame] = []
    error_rows: list[dict] = []
    scored_all: dict[tuple[str, str], pd.DataFrame] = {}
    for by in groupings:
        by = list(by)
        name = grouping_name(by)
        if not set(by) <= set(ids.columns):
            continue
        m = ids.assign(group=group_labels(ids, by))
        m = m[m["group"] != UNLABELLED]
        repeated = m["subject"].astype(str).duplicated(keep=False)
        with_people = m.loc[repeated, "source"].unique()
        m = m[m["source"].isin(with_people)]
        if m.empty:
            continue
        pairs = verification_pairs(m, by=by, n_genuine=n_genuine,
                                   max_impostors_within=max_impostors_within,
                                   max_genuine_per_subject=max_genuine_per_subject, seed=seed)
        mixed = pairs.attrs.get("genuine_mixed_groups", {})
        ref = (reference_groups or {}).get(name)
        for model, emb in embeddings.items():
            pos = _pair_positions(pairs, emb)
            scored, _ = score_pairs(pairs, emb, positions=pos)
            scored, listed, lcounts = screen_label_errors(
                m, emb, scored, policy=label_error_policy,
                level=(near_duplicate or {}).get(model))
            error_frames.append(listed.assign(embedder=model, grouping=name))
            error_rows.append({"embedder": model, "grouping": name, **lcounts})
            ok = emb.ok[pos[0]] & emb.ok[pos[1]]
            scored_all[(model, name)] = scored
            tables = group_rates(scored, thresholds[model], reference_group=ref,
                                 n_boot=n_boot, seed=seed, min_count=min_count)
            fmr_frames.append(tables["fmr"].assign(embedder=model, grouping=name))
            fnmr_frames.append(tables["fnmr"].assign(embedder=model, grouping=name))
            kept = scored.groupby(["source", "kind"]).size()
            for (source, kind), part in pairs.assign(ok=ok).groupby(["source", "kind"]):
                n_kept = int(kept.get((source, kind), 0))
                count_rows.append({"embedder": model, "grouping": name, "source": source,
                                   "kind": kind, "pairs": n_kept,
                                   "dropped": int((~part["ok"]).sum()),
                                   "label_errors_excluded": int(part["ok"].sum()) - n_kept,
                                   "mixed_groups": mixed.get(source, 0)
                                   if kind == GENUINE else 0})

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        return out[["embedder", "grouping", *[c for c in out.columns
                                               if c not in ("embedder", "grouping")]]]

    return IdentityGroupRates(fmr=cat(fmr_frames), fnmr=cat(fnmr_frames), scored=scored_all,
                              counts=pd.DataFrame(count_rows),
                              label_errors=cat(error_frames),
                              label_error_counts=pd.DataFrame(error_rows))


def _spread(table: pd.DataFrame, rate: str) -> dict | None:
    """Highest and lowest compared group (not small, value defined) and their ratio."""
    groups = table[(table["group"] != "all groups") & ~table["small_cell"].astype(bool)
                   & table[rate].notna()]
    if len(groups) < 2:
        return None
    hi = groups.loc[groups[rate].idxmax()]
    lo = groups.loc[groups[rate].idxmin()]
    ratio = hi[rate] / lo[rate] if lo[rate] > 0 else math.inf
    return {"high_group": hi["group"], "high": hi[rate], "high_count": hi["count"],
            "high_n": hi["n"], "low_group": lo["group"], "low": lo[rate],
            "low_count": lo["count"], "low_n": lo["n"], "ratio": ratio,
            "groups": len(groups),
            "small_cells": int((table["small_cell"].astype(bool)
                                & (table["group"] != "all groups")).sum())}


def differential_comparison(fmr: pd.DataFrame, fnmr: pd.DataFrame) -> pd.DataFrame:
    """FNMR differential next to FMR differential, NIST IR 8280 style: for each embedder,
    grouping and dataset with both, the max / min group rate of FMR and of FNMR (cells
    with at least ``min_count`` pairs only), the groups at each end, and which
    differential is larger.

    ``fmr`` and ``fnmr`` are :func:`group_rates` tables (optionally with ``embedder`` and
    ``grouping`` columns, as from :func:`identity_group_rates`).

    Returns
    -------
    DataFrame
        ``embedder, grouping, source, fmr_ratio, fmr_high_group, fmr_low_group,
        fnmr_ratio, fnmr_high_group, fnmr_low_group, groups_compared, small_cells,
        larger``; ``larger`` is ``"FMR"``, ``"FNMR"``, ``"equal"`` or ``"undefined"``
        (a group with no error makes a ratio infinite: then the ratio is not compared).
    """
    keys = [c for c in ("embedder", "grouping") if c in fmr.columns]
    columns = [*keys, "source", "fmr_ratio", "fmr_high_group", "fmr_high", "fmr_low_group",
               "fmr_low", "fnmr_ratio", "fnmr_high_group", "fnmr_high", "fnmr_low_group",
               "fnmr_low", "groups_compared", "small_cells", "larger"]
    rows: list[dict] = []
    if fmr.empty or fnmr.empty:
        return pd.DataFrame(rows, columns=columns)
    for key, fm in fmr.groupby([*keys, "source"], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        sel = np.ones(len(fnmr), bool)
        for col, val in zip([*keys, "source"], key, strict=True):
            sel &= (fnmr[col] == val).to_numpy()
        fn = fnmr[sel]
        if fn.empty:
            continue
        a, b = _spread(fm, "fmr"), _spread(fn, "fnmr")
        if a is None or b is None:
            continue
        if math.isinf(a["ratio"]) or math.isinf(b["ratio"]):
            larger = "undefined"
        elif math.isclose(a["ratio"], b["ratio"]):
            larger = "equal"
        else:
            larger = "FMR" if a["ratio"] > b["ratio"] else "FNMR"
        rows.append({**dict(zip([*keys, "source"], key, strict=True)),
                     "fmr_ratio": a["ratio"], "fmr_high_group": a["high_group"],
                     "fmr_high": a["high"], "fmr_low_group": a["low_group"], "fmr_low": a["low"],
                     "fnmr_ratio": b["ratio"], "fnmr_high_group": b["high_group"],
                     "fnmr_high": b["high"], "fnmr_low_group": b["low_group"],
                     "fnmr_low": b["low"], "groups_compared": min(a["groups"], b["groups"]),
                     "small_cells": max(a["small_cells"], b["small_cells"]),
                     "larger": larger})
    return pd.DataFrame(rows, columns=columns)


def nist_comparison(comparison: pd.DataFrame) -> list[str]:
    """Sentences comparing each FNMR differential with its FMR differential against NIST
    IR 8280's finding (false-negative differentials much smaller than false-positive
    ones), written from the numbers of :func:`differential_comparison`, whichever way they
    fall."""
    out = []
    for r in comparison.itertuples(index=False):
        who = " · ".join(str(v) for v in (getattr(r, "embedder", None),
                                          getattr(r, "grouping", None), r.source) if v)
        fm = (f"FMR {r.fmr_high_group} / {r.fmr_low_group} = "
              + ("inf (a group had no false match)" if math.isinf(r.fmr_ratio)
                 else f"{r.fmr_ratio:.2f}"))
        fn = (f"FNMR {r.fnmr_high_group} / {r.fnmr_low_group} = "
              + ("inf (a group had no false non-match)" if math.isinf(r.fnmr_ratio)
                 else f"{r.fnmr_ratio:.2f}"))
        if r.larger == "FMR":
            verdict = ("the false-negative differential is smaller than the false-positive "
                       "one, as NIST IR 8280 found")
        elif r.larger == "FNMR":
            verdict = ("the false-negative differential is larger than the false-positive "
                       "one, unlike NIST IR 8280's finding")
        elif r.larger == "equal":
            verdict = "the two differentials are equal"
        else:
            verdict = ("a ratio is infinite, so the two differentials cannot be compared "
                       "(too few errors in a group at this threshold)")
        out.append(f"{who}: {fm}, {fn}: {verdict} ({r.groups_compared} groups of >= 30 "
                   f"pairs compared; ratios are as firm as their intervals).")
    return out


def separation_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """EER and AUC of genuine against impostor pairs of each identity-labelled dataset."""
    rows = []
    for source, part in scored.groupby("source"):
        gen = part.loc[part["kind"] == GENUINE, "score"]
        imp = part.loc[part["kind"] == IMPOSTOR_UNLABELLED, "score"]
        if len(gen) and len(imp):
            e = eer(gen, imp)
            rows.append({"source": source, "n_genuine": len(gen), "n_impostor": len(imp),
                         "eer": e.eer, "eer_threshold": e.threshold, "auc": roc_auc(gen, imp)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- curves
def det_by_group(scored: pd.DataFrame, *, source: str) -> dict[str, pd.DataFrame]:
    """DET curves of one labelled dataset's groups, FMR from each group's within-group
    impostors.

    When the dataset has genuine pairs of labelled people (identities and labels), each
    group's FNMR comes from **that group's own** genuine pairs (groups without any get no
    curve). Otherwise every group shares the FNMR of **all** genuine pairs of the scored
    frame (an identity-labelled, demographically unlabelled set such as CelebA): the
    curves then differ only in how fast each group's impostors cross the threshold.
    """
    part = scored[scored["source"] == source]
    within = part[part["kind"] == IMPOSTOR_WITHIN]
    own = part[(part["kind"] == GENUINE) & (part["group_a"] != UNLABELLED)]
    out = {}
    if len(own):
        for group, imp in within.groupby("group_a", sort=True):
            gen = own.loc[own["group_a"] == group, "score"].to_numpy()
            if gen.size:
                out[str(group)] = det_curve(gen, imp["score"].to_numpy())
        return out
    gen = scored.loc[scored["kind"] == GENUINE, "score"].to_numpy()
    if gen.size == 0:
        return {}
    for group, imp in within.groupby("group_a", sort=True):
        out[str(group)] = det_curve(gen, imp["score"].to_numpy())
    return out


def cross_group_fmr(manifest: pd.DataFrame, embeddings: Embeddings,
                    threshold: float | ThresholdChoice, *, source: str, block: int = 2048,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Impostor FMR for every pair of groups of one dataset, on **all** pairs of different
    images (each file a different person), counted exactly block by block.

    Returns
    -------
    DataFrame
        Long: ``group_a, group_b, fmr, count, n, ci_low, ci_high`` (Wilson; pairs treated
        as independent, as in :func:`facelab.metrics.groups.demographic_differentials`),
        symmetric (each unordered pair of groups listed both ways).
    """
    t = float(threshold)
    part = manifest[(manifest["source"] == source) & (manifest["group"] != UNLABELLED)]
    pos = embeddings.positions(part.index)
    keep = embeddings.ok[pos]
    pos, groups = pos[keep], part["group"].to_numpy()[keep]
    names = sorted(pd.unique(groups).tolist())
    members = {g: pos[groups == g] for g in names}
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for i, ga in enumerate(names):
        for gb in names[i:]:
            a_idx, b_idx = members[ga], members[gb]
            i, j, _ = embeddings.pairs_at_least(embeddings.matrix[a_idx],
                                                embeddings.matrix[b_idx], t, block=block)
            if ga == gb:  # unordered pairs of different images: upper triangle only
                k, n = int((j > i).sum()), len(a_idx) * (len(a_idx) - 1) // 2
            else:
                k, n = len(i), len(a_idx) * len(b_idx)
            counts[(ga, gb)] = counts[(gb, ga)] = (k, n)
    rows_out = []
    for ga in names:
        for gb in names:
            k, n = counts[(ga, gb)]
            low, high = binomial_ci(k, n, confidence=confidence)
            rows_out.append({"group_a": ga, "group_b": gb, "fmr": k / n if n else math.nan,
                             "count": k, "n": n, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows_out)


def fmr_matrix(cross: pd.DataFrame, value: str = "fmr") -> pd.DataFrame:
    """The long :func:`cross_group_fmr` table as a probe-group x candidate-group matrix."""
    return cross.pivot(index="group_a", columns="group_b", values=value)


def same_vs_cross_group(cross: pd.DataFrame) -> pd.DataFrame:
    """Pooled FMR of same-group and of cross-group impostor pairs (each unordered pair of
    groups counted once), with Wilson intervals and the ratio same / cross."""
    upper = cross[cross["group_a"] <= cross["group_b"]]
    rows = []
    for label, part in (("same group", upper[upper["group_a"] == upper["group_b"]]),
                        ("different groups", upper[upper["group_a"] != upper["group_b"]])):
        k, n = int(part["count"].sum()), int(part["n"].sum())
        low, high = binomial_ci(k, n)
        rows.append({"pairs": label, "fmr": k / n if n else math.nan, "count": k, "n": n,
                     "ci_low": low, "ci_high": high})
    out = pd.DataFrame(rows)
    same, diff = out["fmr"].iloc[0], out["fmr"].iloc[1]
    out["ratio_same_to_cross"] = same / diff if diff > 0 else math.nan
    return out


# ----------------------------------------------------------------------------- summaries
def score_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Count, mean and quantiles of the scores per dataset and pair kind."""
    q = [0.01, 0.5, 0.99, 0.999]
    agg = scored.groupby(["source", "kind"])["score"]
    out = agg.agg(["size", "mean", "std", "min", "max"]).rename(columns={"size": "pairs"})
    quant = agg.quantile(q).unstack()
    quant.columns = [f"q{v:g}" for v in q]
    return out.join(quant).reset_index()


def verification_findings(*, thresholds: Mapping[str, ThresholdChoice],
                          fmr_tables: Mapping[str, pd.DataFrame],
                          fnmr_tables: Mapping[str, pd.DataFrame],
                          same_cross: Mapping[tuple[str, str], pd.DataFrame] | None = None,
                          default_fmr_tables: Mapping[str, pd.DataFrame] | None = None,
                          attribute_tables: Mapping[str, pd.DataFrame] | None = None,
                          fnmr_group_tables: Mapping[str, pd.DataFrame] | None = None,
                          identity: IdentityGroupRates | None = None,
                          label_errors: Mapping[str, Mapping[str, Any]] | None = None
                          ) -> pd.DataFrame:
    """The findings table: one row per finding and embedder with value, count, n, 95% CI
    and how the threshold was set.

    Parameters
    ----------
    thresholds : mapping of str to ThresholdChoice
        The global threshold of each embedder.
    fmr_tables, fnmr_tables : mapping of str to pandas.DataFrame
        FMR by group (:func:`group_rates`) and overall FNMR/FMR per embedder.
    same_cross : mapping, optional
        :func:`same_vs_cross_group` per (embedder, dataset).
    default_fmr_tables : mapping, optional
        FMR by group at each model's default threshold.
    attribute_tables : mapping, optional
        FMR of same-attribute impostor pairs per embedder.
    fnmr_group_tables : mapping, optional
        :func:`fnmr_by_group` per embedder: adds the FNMR by group and the FNMR
        differential next to the FMR differential of the same dataset.
    identity : IdentityGroupRates, optional
        :func:`identity_group_rates`: the same per grouping of an identity dataset.
    label_errors : mapping, optional
        The counts of :func:`screen_label_errors` per embedder (``{embedder: counts}``;
        an optional ``policy`` entry names the policy).

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the findings.
    """
    out = []

    def metric_of(finding):
        for name in ("FNMR", "FMR"):
            if name in finding:
                ratio = "max / min" in finding or "ratio" in finding or " / " in finding
                return f"{name} ratio" if ratio else name
        return ""

    def add(model, finding, value, count=None, n=None, low=None, high=None, how=""):
        choice = thresholds.get(model)
        default = how == "model default"
        out.append(Finding(finding, value, metric=metric_of(finding), model=model,
                           count=count, n=n, ci_low=low, ci_high=high,
                           threshold=None if choice is None or default or not how
                           else choice.threshold, threshold_how=how))

    for model, choice in thresholds.items():
        how = choice.how
        add(model, "global threshold (similarity)", choice.threshold,
            choice.n_false_matches, choice.n_impostor, how=how)
        fnmr = fnmr_tables.get(model)
        if fnmr is not None:
            for r in fnmr.itertuples():
                kind = "genuine" if r.rate == "FNMR" else "impostor"
                add(model, f"{r.rate} on {r.source} ({kind} pairs of everyone: no demographic "
                    "labels)", r.value, r.count, r.n, r.ci_low, r.ci_high, how)
        for label, tables in (("global threshold", fmr_tables),
                              ("model default threshold", default_fmr_tables or {})):
            fmr = tables.get(model)
            if fmr is None:
                continue
            t_how = how if label == "global threshold" else "model default"
            for source, part in fmr.groupby("source", sort=True):
                groups = part[(part["group"] != "all groups") & ~part["small_cell"]]
                allg = part[part["group"] == "all groups"].iloc[0]
                add(model, f"{source}: FMR of all within-group impostors at the {label}",
                    allg["fmr"], allg["count"], allg["n"], allg["ci_low"], allg["ci_high"],
                    t_how)
                if len(groups) == 0:
                    continue
                hi = groups.loc[groups["fmr"].idxmax()]
                lo = groups.loc[groups["fmr"].idxmin()]
                add(model, f"{source}: highest group FMR at the {label} ({hi['group']})",
                    hi["fmr"], hi["count"], hi["n"], hi["ci_low"], hi["ci_high"], t_how)
                add(model, f"{source}: lowest group FMR at the {label} ({lo['group']})",
                    lo["fmr"], lo["count"], lo["n"], lo["ci_low"], lo["ci_high"], t_how)
                ratio = hi["fmr"] / lo["fmr"] if lo["fmr"] > 0 else math.inf
                note = "" if lo["fmr"] > 0 else "; the lowest group had no false match"
                add(model, f"{source}: max / min group FMR at the {label} "
                    f"({len(groups)} groups of >= 30 pairs{note})", ratio, how=t_how)
                ref = part["ratio_to"].iloc[0]
                finite = groups["ratio"].replace([np.inf, -np.inf], np.nan).notna()
                if ref != "all groups" and label == "global threshold" and finite.any():
                    groups = groups[finite]
                    top = groups.loc[groups["ratio"].idxmax()]
                    add(model, f"{source}: largest FMR ratio to the reference group {ref} "
                        f"({top['group']})", top["ratio"], how=t_how)
    for model, table in (attribute_tables or {}).items():
        col = table.columns[1]
        for source, part in table.groupby("source", sort=True):
            for r in part.itertuples(index=False):
                add(model, f"{source}: FMR of same-race {r[1]}-{r[1]} impostor pairs ({col})",
                    r.fmr, r.count, r.n, r.ci_low, r.ci_high, thresholds[model].how)
            if len(part) == 2 and part["fmr"].min() > 0:
                hi = part.loc[part["fmr"].idxmax()]
                add(model, f"{source}: {col} FMR ratio {hi[col]} / other", hi["ratio_to_lowest"],
                    how=thresholds[model].how)
    def differentials(model, grouping, fmr_t, fnmr_t, how):
        prefix = f"{grouping} · " if grouping else ""
        for source, part in fnmr_t.groupby("source", sort=True):
            allg = part[part["group"] == "all groups"].iloc[0]
            add(model, f"{prefix}{source}: FNMR of all genuine pairs of labelled people",
                allg["fnmr"], allg["count"], allg["n"], allg["ci_low"], allg["ci_high"], how)
            for g in part[part["group"] != "all groups"].itertuples(index=False):
                small = " (small cell)" if g.small_cell else ""
                add(model, f"{prefix}{source}: FNMR of {g.group}{small}", g.fnmr, g.count,
                    g.n, g.ci_low, g.ci_high, how)
        comp = differential_comparison(fmr_t, fnmr_t)
        for r in comp.itertuples(index=False):
            add(model, f"{prefix}{r.source}: max / min group FMR ({r.fmr_high_group} / "
                f"{r.fmr_low_group})", r.fmr_ratio, how=how)
            add(model, f"{prefix}{r.source}: max / min group FNMR ({r.fnmr_high_group} / "
                f"{r.fnmr_low_group}); larger differential: {r.larger}", r.fnmr_ratio,
                how=how)

    for model, table in (fnmr_group_tables or {}).items():
        if len(table) and model in fmr_tables:
            differentials(model, "", fmr_tables[model], table, thresholds[model].how)
    if identity is not None and len(identity.fnmr):
        for (model, grouping), fn in identity.fnmr.groupby(["embedder", "grouping"],
                                                           sort=False):
            fm = identity.fmr[(identity.fmr["embedder"] == model)
                              & (identity.fmr["grouping"] == grouping)]
            for source, part in fm.groupby("source", sort=True):
                allg = part[part["group"] == "all groups"].iloc[0]
                add(model, f"{grouping} · {source}: FMR of all within-group impostors",
                    allg["fmr"], allg["count"], allg["n"], allg["ci_low"], allg["ci_high"],
                    thresholds[model].how)
                for g in part[part["group"] != "all groups"].itertuples(index=False):
                    small = " (small cell)" if g.small_cell else ""
                    add(model, f"{grouping} · {source}: FMR of {g.group}{small}", g.fmr,
                        g.count, g.n, g.ci_low, g.ci_high, thresholds[model].how)
            differentials(model, grouping, fm.drop(columns=["embedder", "grouping"]),
                          fn.drop(columns=["embedder", "grouping"]), thresholds[model].how)
    names = {"certain_images": "images byte-identical to an image of another identity "
                               "(certain label errors)",
             "certain": "pairs involving them", "likely": "impostor pairs at or above the "
             "near-duplicate level (likely label errors)", "excluded": "pairs excluded"}
    for model, counts in (label_errors or {}).items():
        level = counts.get("level")
        policy = counts.get("policy", "")
        for key, label in names.items():
            if key in counts:
                extra = f" (>= {level:g})" if key == "likely" and level is not None else ""
                if key == "likely" and level is not None and math.isnan(level):
                    extra = (" (not screened: no near-duplicate level is known for this "
                             "embedder; set near_duplicate)")
                extra += f" ({policy})" if key == "excluded" and policy else ""
                add(model, f"label errors: {label}{extra}", counts[key], counts[key])
    for (model, source), table in (same_cross or {}).items():
        same = table.iloc[0]
        diff = table.iloc[1]
        add(model, f"{source}: FMR of same-group impostor pairs", same["fmr"], same["count"],
            same["n"], same["ci_low"], same["ci_high"], thresholds[model].how)
        add(model, f"{source}: FMR of cross-group impostor pairs", diff["fmr"], diff["count"],
            diff["n"], diff["ci_low"], diff["ci_high"], thresholds[model].how)
        add(model, f"{source}: same-group / cross-group FMR", same["ratio_same_to_cross"],
            how=thresholds[model].how)
    return findings_table(out)
