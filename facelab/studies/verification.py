"""1:1 verification by demographic group, NIST FRVT Part 3 style (``02_verification_demographics``).

The data decide what can be measured:

* **Genuine pairs** need identities: only CelebA has them here, and it has no demographic
  labels. So FNMR is measured overall (CelebA, subject-bootstrap interval), never by group.
* **Impostor pairs by group** need demographic labels: FairFace, CFD and UTKFace have them,
  with one image per person (FairFace and UTKFace have no identity labels: every file is
  treated as a different person). Impostors are paired **within** a group (same race and
  gender, as NIST pairs same-sex, same-region impostors) for the FMR by group, and across
  groups for the cross-group FMR matrix. Pairs never cross datasets.

One global threshold is set with :func:`facelab.metrics.biometric.threshold_at_fmr` on the
within-group impostor comparisons of a reference group (or of everyone), pooled over the
labelled datasets, then applied to every group, dataset and to the CelebA genuine pairs.

Every function takes and returns DataFrames. A *scored pairs* frame has the columns of
:func:`verification_pairs` plus ``score`` (the embedder's similarity, higher = more alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from facelab.metrics.biometric import (
    ThresholdChoice,
    det_curve,
    eer,
    roc_auc,
    threshold_at_fmr,
)
from facelab.metrics.groups import rate_by_group
from facelab.metrics.intervals import binomial_ci
from facelab.studies._matching import UNLABELLED, Embeddings

__all__ = [
    "GENUINE", "IMPOSTOR_WITHIN", "IMPOSTOR_UNLABELLED",
    "verification_pairs", "score_pairs", "global_threshold", "default_threshold",
    "fmr_by_group", "fmr_by_attribute", "fnmr_overall", "det_by_group", "recolor_det",
    "cross_group_fmr", "fmr_matrix",
    "same_vs_cross_group", "score_summary", "separation_summary",
    "plot_score_distributions", "verification_findings",
]

GENUINE = "genuine"
IMPOSTOR_WITHIN = "impostor, same group"
IMPOSTOR_UNLABELLED = "impostor, unlabelled"

_PAIR_COLUMNS = ["index_a", "index_b", "subject_a", "subject_b", "same", "source", "kind",
                 "group_a", "group_b"]


# ----------------------------------------------------------------------------- pairs
def verification_pairs(manifest: pd.DataFrame, *, by: Sequence[str] = ("race", "gender"),
                       n_genuine: int | None = None, n_impostor_unlabelled: int | None = 200_000,
                       max_impostors_within: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Genuine and impostor pairs for every dataset (``source``) of a pooled manifest.

    Parameters
    ----------
    manifest
        From :func:`facelab.studies._matching.load_manifests` (columns ``source``, ``group``,
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
    seed
        Seed of every sample.

    Returns
    -------
    DataFrame
        ``index_a, index_b, subject_a, subject_b, same, source, kind, group_a, group_b``;
        ``kind`` is :data:`GENUINE`, :data:`IMPOSTOR_WITHIN` or :data:`IMPOSTOR_UNLABELLED`.
        A file without a subject id is its own subject (``subject = image id``).
    """
    from facelab.protocols import impostor_pairs, make_pairs

    frames = []
    for source, part in manifest.groupby("source", sort=True):
        labelled = (part["group"] != UNLABELLED).any()
        if labelled:
            part = part[part["group"] != UNLABELLED]
            pairs = impostor_pairs(part, n=max_impostors_within, seed=seed, within=list(by),
                                   missing="distinct")
            pairs["kind"] = IMPOSTOR_WITHIN
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
    group = manifest["group"]
    out["group_a"] = group.reindex(out["index_a"]).to_numpy()
    out["group_b"] = group.reindex(out["index_b"]).to_numpy()
    for side in ("a", "b"):
        subj = out[f"subject_{side}"].astype("string")
        out[f"subject_{side}"] = subj.fillna(out[f"index_{side}"].astype("string")).astype(str)
    out["same"] = out["same"].astype(bool)
    return out[_PAIR_COLUMNS]


def score_pairs(pairs: pd.DataFrame, embeddings: Embeddings, *, chunk: int = 200_000
                ) -> tuple[pd.DataFrame, int]:
    """Similarity of every pair; pairs with an image that has no embedding (failure to
    acquire) are dropped. Returns the scored pairs and the number dropped."""
    pa = embeddings.positions(pairs["index_a"])
    pb = embeddings.positions(pairs["index_b"])
    if (pa < 0).any() or (pb < 0).any():
        raise ValueError("pairs name images that are not in the embeddings' manifest")
    keep = embeddings.ok[pa] & embeddings.ok[pb]
    pa, pb = pa[keep], pb[keep]
    scores = np.empty(len(pa), dtype=np.float64)
    for start in range(0, len(pa), chunk):
        sl = slice(start, start + chunk)
        scores[sl] = embeddings.similarity(embeddings.matrix[pa[sl]], embeddings.matrix[pb[sl]])
    out = pairs.loc[keep].reset_index(drop=True)
    out["score"] = scores
    return out, int((~keep).sum())


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
    from facelab.match import get_embedder

    emb = get_embedder(model)
    t = float(emb.default_threshold)
    k, n = 0, 0
    if scored is not None:
        within = scored.loc[scored["kind"] == IMPOSTOR_WITHIN, "score"]
        k, n = int((within >= t).sum()), len(within)
    return ThresholdChoice(
        threshold=t, target_fmr=math.nan, achieved_fmr=k / n if n else math.nan,
        n_impostor=n, n_false_matches=k,
        how=f"model default {t:g} ({emb.threshold_source}); not set from these data",
        reference="model documentation")


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


def fmr_by_group(scored: pd.DataFrame, threshold: float | ThresholdChoice, *,
                 reference_group: str | None = None, n_boot: int = 1000, seed: int = 0,
                 min_count: int = 30) -> pd.DataFrame:
    """FMR of within-group impostor pairs per dataset and group at one threshold.

    Intervals come from :func:`facelab.metrics.groups.rate_by_group` with ``subject_a`` as
    the cluster: a subject bootstrap when a cell has at least 5 false matches and
    non-matches, else Clopper-Pearson on the number of people. ``ratio`` is the group's
    FMR over the reference group's FMR in the same dataset (over the dataset's FMR of all
    groups when ``reference_group`` is None or absent from that dataset).

    Returns
    -------
    DataFrame
        ``source, group, fmr, n, count, n_subjects, ci_low, ci_high, method, small_cell,
        ratio, ratio_to, threshold``; one ``"all groups"`` row per dataset.
    """
    t = float(threshold)
    within = scored[scored["kind"] == IMPOSTOR_WITHIN].assign(
        false_match=lambda d: d["score"] >= t, group=lambda d: d["group_a"])
    frames = []
    for i, (source, part) in enumerate(within.groupby("source", sort=True)):
        gm = rate_by_group(part, event="false_match", by="group", subject="subject_a",
                           name="FMR", min_count=min_count, n_boot=n_boot,
                           random_state=seed + 1000 * i)
        rows = _rate_rows(gm, source=str(source), rate="fmr")
        groups = rows["group"].tolist()
        ref = reference_group if reference_group in groups else "all groups"
        ref_value = float(rows.loc[rows["group"] == ref, "fmr"].iloc[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            rows["ratio"] = rows["fmr"] / ref_value if ref_value > 0 else np.nan
        rows["ratio_to"] = ref
        frames.append(rows)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out["threshold"] = t
    return out


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
                           name="FMR", n_boot=n_boot, random_state=seed + 7 * i)
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
                           name="FNMR", n_boot=n_boot, random_state=seed + i)
        rows.append({"source": source, "rate": "FNMR", **gm.overall.to_dict()})
        imp = scored[(scored["kind"] == IMPOSTOR_UNLABELLED) & (scored["source"] == source)]
        if len(imp):
            imp = imp.assign(false_match=imp["score"] >= t, group=source)
            gm = rate_by_group(imp, event="false_match", by="group", subject="subject_a",
                               name="FMR", n_boot=n_boot, random_state=seed + i)
            rows.append({"source": source, "rate": "FMR", **gm.overall.to_dict()})
    out = pd.DataFrame(rows)
    if len(out):
        out = out.drop(columns=["small_cell"], errors="ignore")
        out["threshold"] = t
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
    """DET curves of one labelled dataset's groups: FMR from each group's within-group
    impostors, FNMR from **all** genuine pairs (the identity-labelled, demographically
    unlabelled set). The FNMR axis is therefore shared by every group; the curves differ
    only in how fast each group's impostors cross the threshold."""
    gen = scored.loc[scored["kind"] == GENUINE, "score"].to_numpy()
    if gen.size == 0:
        return {}
    within = scored[(scored["kind"] == IMPOSTOR_WITHIN) & (scored["source"] == source)]
    out = {}
    for group, part in within.groupby("group_a", sort=True):
        out[str(group)] = det_curve(gen, part["score"].to_numpy())
    return out


def recolor_det(ax, cmap: str = "tab20") -> None:
    """Give every curve of a :func:`facelab.plots.plot_det` axes its own colour (the
    default palette repeats after 10 groups) and redraw the legend."""
    import matplotlib.pyplot as plt

    curves = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")
              and ln.get_marker() in ("None", None, "")]
    colors = plt.get_cmap(cmap).colors if len(curves) > 10 else None
    if colors is None:
        return
    lines = ax.get_lines()
    current = None
    for ln in lines:
        if ln in curves:
            current = colors[curves.index(ln) % len(colors)]
            ln.set_color(current)
        elif ln.get_label() == "_threshold" and current is not None:
            ln.set_color(current)
    ax.legend(fontsize=7)


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
            k = n = 0
            a_idx, b_idx = members[ga], members[gb]
            for s in range(0, len(a_idx), block):
                rows = a_idx[s:s + block]
                sim = embeddings.similarity(embeddings.matrix[rows], embeddings.matrix[b_idx],
                                            matrix=True)
                if ga == gb:  # unordered pairs of different images: upper triangle only
                    r = np.arange(s, s + len(rows))[:, None]
                    mask = np.arange(len(b_idx))[None, :] > r
                    k += int((sim[mask] >= t).sum())
                    n += int(mask.sum())
                else:
                    k += int((sim >= t).sum())
                    n += sim.size
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


def plot_score_distributions(scored_by_model: Mapping[str, pd.DataFrame],
                             thresholds: Mapping[str, float | ThresholdChoice] | None = None,
                             *, bins: int = 80):
    """Genuine and impostor score densities, one panel per embedder (side by side), with
    the global threshold as a dashed line. Returns the figure."""
    import matplotlib.pyplot as plt

    n = len(scored_by_model)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 4.2), squeeze=False)
    for ax, (model, scored) in zip(axes[0], scored_by_model.items(), strict=True):
        lo, hi = scored["score"].min(), scored["score"].max()
        edges = np.linspace(lo, hi, bins + 1)
        for (source, kind), part in scored.groupby(["source", "kind"], sort=True):
            style = "-" if kind == GENUINE else "--" if kind == IMPOSTOR_UNLABELLED else ":"
            ax.hist(part["score"], bins=edges, density=True, histtype="step", lw=1.6, ls=style,
                    label=f"{source}: {kind} ({len(part):,})")
        if thresholds and model in thresholds:
            t = float(thresholds[model])
            ax.axvline(t, color="black", lw=1, ls="--")
            ax.text(t, ax.get_ylim()[1] * 0.95, f" threshold {t:.3f}", fontsize=8, va="top")
        ax.set_title(f"{model}: similarity scores")
        ax.set_xlabel("similarity (higher = more alike)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def verification_findings(*, thresholds: Mapping[str, ThresholdChoice],
                          fmr_tables: Mapping[str, pd.DataFrame],
                          fnmr_tables: Mapping[str, pd.DataFrame],
                          same_cross: Mapping[tuple[str, str], pd.DataFrame] | None = None,
                          default_fmr_tables: Mapping[str, pd.DataFrame] | None = None,
                          attribute_tables: Mapping[str, pd.DataFrame] | None = None
                          ) -> pd.DataFrame:
    """The findings table: one row per finding and embedder with value, count, n, 95% CI
    and how the threshold was set."""
    rows = []

    def add(model, finding, value, count=None, n=None, low=None, high=None, how=""):
        rows.append({"embedder": model, "finding": finding, "value": value, "count": count,
                     "n": n, "ci_low": low, "ci_high": high, "threshold_how": how})

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
    for (model, source), table in (same_cross or {}).items():
        same = table.iloc[0]
        diff = table.iloc[1]
        add(model, f"{source}: FMR of same-group impostor pairs", same["fmr"], same["count"],
            same["n"], same["ci_low"], same["ci_high"], thresholds[model].how)
        add(model, f"{source}: FMR of cross-group impostor pairs", diff["fmr"], diff["count"],
            diff["n"], diff["ci_low"], diff["ci_high"], thresholds[model].how)
        add(model, f"{source}: same-group / cross-group FMR", same["ratio_same_to_cross"],
            how=thresholds[model].how)
    return pd.DataFrame(rows)
