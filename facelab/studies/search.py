"""1:N search audit, the ACLU test rebuilt (``03_one_to_many_search``).

A *gallery* of thousands of people stands in for the mugshot database: every image of the
labelled face datasets (FairFace, UTKFace, CFD) is enrolled as a different person (those
sets have no identity labels, or one image per person), plus one image of each CelebA
identity. A disjoint set of *probes* stands in for the legislators: **non-mated** probes
(other people, e.g. FairFace's train split: nobody in the gallery) and **mated** probes
(another image of each enrolled CelebA identity).

Operating points are similarity thresholds, each set with
:func:`facelab.metrics.biometric.threshold_at_fmr` for a 1:1 false match rate on impostor
comparisons sampled among gallery entries (the way a vendor calibrates a similarity
score), or the model's published default. A *false match* is a non-mated search whose
best candidate scores at or above the threshold (the FPIR numerator, ISO/IEC 19795-1).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln

from facelab.data import label_errors as L
from facelab.data.protocols import gallery_probe_split
from facelab.data.resolve import parse_dataset_spec
from facelab.data.sampling import DatasetNotes, balanced_sample
from facelab.match.gallery import Gallery
from facelab.match.verification import get_embedder
from facelab.metrics.biometric import ThresholdChoice, fnir, fpir, threshold_at_fmr
from facelab.metrics.findings import Finding, findings_table
from facelab.metrics.groups import rate_by_group
from facelab.metrics.intervals import binomial_ci, bootstrap_ci
from facelab.studies.matching import UNLABELLED, Embeddings, load_manifests

__all__ = [
    "search_sets", "calibration_scores", "operating_thresholds", "thresholds_table",
    "SearchRun", "run_search", "search_outcomes", "outcomes_by_group", "false_match_table",
    "composition",
    "share_outside", "expected_fpir", "fpir_by_gallery_size", "search_findings",

    "screen_label_errors",
]


# ----------------------------------------------------------------------------- data
def search_sets(*, gallery_datasets: Sequence[str] = ("fairface:val", "utkface", "cfd"),
                probe_datasets: Sequence[str] = ("fairface:train",),
                mated_dataset: str | None = "celeba", limit: int | None = None,
                n_probes: int = 535, mated_probes_per_subject: int = 1,
                by: Sequence[str] = ("race",), seed: int = 0,
                root: str | os.PathLike | None = None
                ) -> tuple[pd.DataFrame, DatasetNotes]:
    """The gallery and the probes, in one manifest.

    Parameters
    ----------
    gallery_datasets
        Labelled datasets whose every image is enrolled as a distinct person (at most
        ``limit`` each, balanced over ``by``).
    probe_datasets
        Where non-mated probes come from (``n_probes`` in all, balanced over ``by``). They
        must hold people who are not in the gallery; when none is found, ``n_probes``
        images are held out of the gallery instead (and the notes say so).
    mated_dataset
        An identity-labelled dataset (CelebA): one image per identity is enrolled, and
        ``mated_probes_per_subject`` other images per identity are mated probes.

    Returns
    -------
    manifest, notes
        Rows with ``role`` (``"gallery"`` or ``"probe"``), ``mated`` (bool, probes),
        ``gallery_id`` (the enrolled identity: the image id, or ``celeba:<subject>``),
        ``mate_id`` (mated probes: the identity they should find), ``group`` and the
        dataset columns. Index: unique image ids.
    """

    gallery, notes = load_manifests(gallery_datasets, limit=limit, seed=seed, by=by, root=root)
    gallery = gallery.assign(role="gallery", mated=False, gallery_id=gallery.index.astype(str),
                             mate_id=pd.NA)
    probes, pnotes = load_manifests(probe_datasets, limit=n_probes, seed=seed + 1, by=by,
                                    root=root)
    note_rows = [notes.table, pnotes.table.assign(note=pnotes.table["note"] + " (probes)")]
    if len(probes) and n_probes < len(probes):  # several probe datasets: cap the total
        probes = balanced_sample(probes, n_probes, ["group"], seed=seed + 1)
    if len(probes) == 0 and len(gallery):
        probes = balanced_sample(gallery, n_probes, ["group"], seed=seed + 1)
        gallery = gallery.drop(index=probes.index)
        note_rows.append(pd.DataFrame([{
            "dataset": "held-out probes", "found": True, "images": len(probes),
            "used": len(probes),
            "note": f"no probe dataset found: {len(probes):,} gallery images were held out "
                    "of the gallery as non-mated probes."}]))
    probes = probes.assign(role="probe", mated=False, gallery_id=pd.NA, mate_id=pd.NA)
    parts = [gallery, probes]
    if mated_dataset:
        mated, mnotes = load_manifests([mated_dataset], limit=None, seed=seed, by=by, root=root)
        note_rows.append(mnotes.table)
        if len(mated):
            g, p = gallery_probe_split(mated, nonmated_fraction=0.0, gallery_per_subject=1,
                                       probes_per_subject=mated_probes_per_subject, seed=seed,
                                       distractors=False)
            name = parse_dataset_spec(mated_dataset).key
            g = g.assign(mated=False, gallery_id=[f"{name}:{s}" for s in g["subject"]],
                         mate_id=pd.NA)
            p = p.assign(gallery_id=pd.NA, mate_id=[f"{name}:{s}" for s in p["subject"]])
            parts += [g, p]
    manifest = pd.concat(parts)
    manifest["mated"] = manifest["mated"].astype(bool)
    return manifest, DatasetNotes(pd.concat(note_rows, ignore_index=True))


# ----------------------------------------------------------------------------- thresholds
def calibration_scores(manifest: pd.DataFrame, embeddings: Embeddings, *,
                       n_pairs: int = 1_000_000, seed: int = 0, chunk: int = 200_000
                       ) -> np.ndarray:
    """Impostor similarities of ``n_pairs`` distinct pairs of gallery entries of different
    identities, sampled with ``seed`` (all pairs when there are fewer)."""
    gal = manifest[manifest["role"] == "gallery"]
    pos = embeddings.positions(gal.index)
    ok = embeddings.ok[pos]
    pos, ids = pos[ok], pd.factorize(gal["gallery_id"].to_numpy()[ok])[0]
    m = len(pos)
    total = m * (m - 1) // 2
    rng = np.random.default_rng(seed)
    if total <= n_pairs:
        a, b = np.triu_indices(m, k=1)
    else:
        got = np.zeros(0, dtype=np.int64)
        while len(got) < n_pairs:
            x = rng.integers(0, m, size=2 * (n_pairs - len(got)) + 16)
            y = rng.integers(0, m, size=len(x))
            lo, hi = np.minimum(x, y), np.maximum(x, y)
            code = lo[lo != hi].astype(np.int64) * m + hi[lo != hi]
            got = np.unique(np.concatenate([got, code]))
        got = rng.permutation(got)[:n_pairs]
        a, b = got // m, got % m
    keep = ids[a] != ids[b]
    a, b = a[keep], b[keep]
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        sl = slice(s, s + chunk)
        out[sl] = embeddings.similarity(embeddings.matrix[pos[a[sl]]],
                                        embeddings.matrix[pos[b[sl]]])
    return out


def operating_thresholds(calibration: np.ndarray, points: Mapping[str, float | str],
                         model: str, *, skip_unresolvable: bool = True
                         ) -> dict[str, ThresholdChoice]:
    """Thresholds for named operating points.

    A float value is a target 1:1 FMR: the threshold is set with
    :func:`~facelab.metrics.biometric.threshold_at_fmr` on ``calibration``. The string
    ``"default"`` is the embedder's published default threshold (its FMR on
    ``calibration`` is recorded). A target FMR smaller than 1 / (number of calibration
    comparisons) cannot be resolved: that point is left out with a warning
    (``skip_unresolvable``) or raises ``ValueError``.
    """

    out = {}
    scores = np.asarray(calibration, dtype=float)
    for name, value in points.items():
        if isinstance(value, str):
            if value != "default":
                raise ValueError(f"operating point {name!r}: give a target FMR or 'default'")
            emb = get_embedder(model)
            t = float(emb.default_threshold)
            k = int((scores >= t).sum())
            out[name] = ThresholdChoice(
                threshold=t, target_fmr=math.nan, achieved_fmr=k / len(scores),
                n_impostor=len(scores), n_false_matches=k,
                how=(f"model default {t:g} ({emb.threshold_source}); its FMR on "
                     f"{len(scores):,} gallery impostor comparisons is {k / len(scores):.2g} "
                     f"({k:,}/{len(scores):,})"),
                reference="model documentation")
        else:
            try:
                out[name] = threshold_at_fmr(scores, float(value),
                                             reference="pairs of gallery entries")
            except ValueError as exc:
                if not skip_unresolvable:
                    raise
                warnings.warn(f"operating point {name!r} skipped: {exc} (the gallery is too "
                              "small for this target; use a larger limit)", stacklevel=2)
    return out


def thresholds_table(choices: Mapping[str, Mapping[str, ThresholdChoice]]) -> pd.DataFrame:
    """``{model: {point: ThresholdChoice}}`` as one table."""
    rows = []
    for model, points in choices.items():
        for name, c in points.items():
            rows.append({"embedder": model, "operating_point": name, "threshold": c.threshold,
                         "target_fmr": c.target_fmr, "achieved_fmr": c.achieved_fmr,
                         "n_false_matches": c.n_false_matches, "n_impostor": c.n_impostor,
                         "how": c.how})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- search
class SearchRun:
    """Everything one embedder's searches produced.

    Attributes
    ----------
    results : DataFrame
        :meth:`facelab.match.gallery.Gallery.search` rows (``probe``, ``candidate_rank``,
        ``subject`` = gallery id, ``score``, ...) plus ``is_mate``, ``mated``,
        ``probe_group`` and ``candidate_group``.
    scores : ndarray
        ``(n_probes, n_gallery)`` similarity of every searched probe with every enrolled
        entry (for FPIR by gallery size).
    probe_ids, gallery_ids : ndarray
        Row and column labels of ``scores``.
    gallery_groups : ndarray
        Group of each enrolled entry (same order as ``gallery_ids``).
    failed : DataFrame
        Gallery and probe images without a face (failures to acquire): not enrolled /
        not searched.
    """

    def __init__(self, results, scores, probe_ids, gallery_ids, failed, index,
                 gallery_groups=None):
        self.results = results
        self.gallery_groups = gallery_groups
        self.scores = scores
        self.probe_ids = probe_ids
        self.gallery_ids = gallery_ids
        self.failed = failed
        self.index = index


def screen_label_errors(manifest: pd.DataFrame, embeddings: Mapping[str, Embeddings], *,
                        policy: str = "exclude certain",
                        near_duplicate: Mapping[str, float] | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Label errors among the gallery and probe images (:mod:`facelab.data.label_errors`).

    *Certain*: files byte-identical to a file of another identity (a row without a
    ``subject`` is its own person; hashes are the features' ``image_sha256``). *Likely*:
    pairs of different identities (gallery or probe, any dataset) whose similarity under an
    embedder reaches its near-duplicate level. ``policy`` ``"exclude certain"`` (default)
    drops the images behind certain errors from the search sets; ``"exclude all"`` also
    drops both images of every likely pair (under any embedder, so the embedders search
    the same sets); ``"keep"`` drops nothing.

    Returns
    -------
    kept, listed, counts
        The manifest the searches should use; one row per flagged image pair (``kind``
        ``"certain"`` or ``"likely"``, ``embedder``, ``file_a``, ``file_b``, ``subject_a``,
        ``subject_b``, ``role_a``, ``role_b``, ``score``); counts of certain images, certain
        groups, likely pairs per embedder and images excluded.
    """

    if policy not in L.POLICIES:
        raise ValueError(f"label error policy must be one of {L.POLICIES}; got {policy!r}")
    counts: dict[str, int] = {}
    if not embeddings:
        return manifest, pd.DataFrame(), counts
    first = next(iter(embeddings.values()))
    hashes = first.features["image_sha256"].reindex(manifest.index)
    ident = L.identical_images(manifest, hashes)
    certain = ident[ident["kind"] == "certain"]
    rows = []
    for _, group in certain.groupby("sha256", sort=False):
        idx = group["index"].tolist()
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            rows.append({"kind": "certain", "embedder": "", "index_a": a, "index_b": b,
                         "score": math.nan})
    drop = set(certain["index"]) if policy != "keep" else set()
    counts["images behind certain errors"] = len(certain)
    counts["certain error groups"] = int(certain["sha256"].nunique())
    pooled = manifest.assign(source="all")
    for model, emb in embeddings.items():
        try:
            lvl = L.near_duplicate_level(model, (near_duplicate or {}).get(model))
        except ValueError:
            # no near-duplicate level known (a plugin or model-card embedder): say so
            counts[f"likely pairs ({model}: not screened, no near-duplicate level known; "
                   "set near_duplicate)"] = 0
            continue
        found = L.likely_errors(pooled, emb, lvl)
        found = found[~found["index_a"].isin(set(certain["index"]))
                      & ~found["index_b"].isin(set(certain["index"]))]
        counts[f"likely pairs ({model} >= {lvl:g})"] = len(found)
        for r in found.itertuples(index=False):
            rows.append({"kind": "likely", "embedder": model, "index_a": r.index_a,
                         "index_b": r.index_b, "score": r.score})
            if policy == "exclude all":
                drop.update([r.index_a, r.index_b])
    listed = pd.DataFrame(rows, columns=["kind", "embedder", "index_a", "index_b", "score"])
    for side in ("a", "b"):
        for col in ("file", "subject", "role", "source"):
            if col in manifest:
                listed[f"{col}_{side}"] = manifest[col].reindex(listed[f"index_{side}"]
                                                                ).to_numpy()
    counts["images excluded"] = len(drop)
    return manifest.drop(index=list(drop)), listed, counts


def run_search(manifest: pd.DataFrame, embeddings: Embeddings, *, k: int = 5,
               index: str = "exact") -> SearchRun:
    """Enrol the gallery rows in a :class:`facelab.match.gallery.Gallery` (``index`` ``"exact"``,
    or faiss ``"ivf"`` / ``"hnsw"``) and search every probe for its best ``k`` candidates."""

    gal = manifest[manifest["role"] == "gallery"]
    prb = manifest[manifest["role"] == "probe"]
    gpos, ppos = embeddings.positions(gal.index), embeddings.positions(prb.index)
    gok, pok = embeddings.ok[gpos], embeddings.ok[ppos]
    failed = pd.concat([gal[~gok], prb[~pok]])[["source", "role", "group"]]
    failed["reason"] = embeddings.features.loc[failed.index, "reason"].astype(str)
    gallery = Gallery(embeddings.model, index=index)
    gallery.enrol(embeddings.matrix[gpos[gok]], gal["gallery_id"].to_numpy()[gok].tolist())
    probe_ids = prb.index.to_numpy()[pok]
    res = gallery.search(embeddings.matrix[ppos[pok]], k=k, probe_ids=list(probe_ids))
    res = res[res["error"] == ""].copy()
    info = prb.loc[probe_ids]
    mate = info["mate_id"].astype("string").reindex(res["probe"]).reset_index(drop=True)
    same = res["subject"].astype("string").reset_index(drop=True) == mate
    res["is_mate"] = same.fillna(False).astype(bool).to_numpy()
    res["mated"] = info["mated"].reindex(res["probe"]).to_numpy().astype(bool)
    res["probe_group"] = info["group"].reindex(res["probe"]).to_numpy()
    gid_group = pd.Series(gal["group"].to_numpy(), index=gal["gallery_id"].to_numpy())
    gid_group = gid_group[~gid_group.index.duplicated()]
    res["candidate_group"] = gid_group.reindex(res["subject"]).to_numpy()
    scores = embeddings.similarity(embeddings.matrix[ppos[pok]], embeddings.matrix[gpos[gok]],
                                   matrix=True)
    return SearchRun(res.reset_index(drop=True), np.asarray(scores, dtype=np.float32),
                     probe_ids, gal["gallery_id"].to_numpy()[gok], failed, gallery.index_kind,
                     gallery_groups=gal["group"].to_numpy()[gok])


def false_match_table(run: SearchRun, probes: pd.DataFrame, threshold: float | ThresholdChoice
                      ) -> pd.DataFrame:
    """One row per non-mated search: its best candidate and whether it is a false match
    (best score >= threshold). ``probes`` is the probe part of the manifest (for the
    demographic columns, which are copied with a ``probe_`` prefix)."""
    t = float(threshold)
    res = run.results[~run.results["mated"]]
    top = res[res["candidate_rank"] == 1].set_index("probe")
    out = pd.DataFrame({
        "probe": top.index, "probe_group": top["probe_group"].to_numpy(),
        "top_score": top["score"].to_numpy(dtype=float),
        "candidate": top["subject"].to_numpy(),
        "candidate_group": top["candidate_group"].to_numpy(),
        "candidate_source": top["template_source"].to_numpy(),
    })
    for col in ("race", "gender", "source"):
        if col in probes.columns:
            out[f"probe_{col}"] = probes[col].reindex(out["probe"]).to_numpy()
    out["false_match"] = out["top_score"] >= t
    out["threshold"] = t
    return out


def search_outcomes(run: SearchRun, thresholds: Mapping[str, ThresholdChoice], *,
                    rank: int = 1) -> pd.DataFrame:
    """False matches, FPIR and FNIR at each operating point, with Wilson intervals.

    ``false_matches`` = non-mated searches whose best candidate scores >= threshold (the
    FPIR count); ``false_candidates`` = all candidates of non-mated searches at or above
    the threshold (up to ``k`` per search); FNIR counts mated searches whose mate is not
    at rank <= ``rank`` with a score >= threshold.
    """
    res = run.results
    non = res[~res["mated"]]
    mat = res[res["mated"]]
    mated_probes = pd.unique(mat["probe"])
    # a search that returned no candidate (imported lists) has one row scored -inf
    non_top = non.groupby("probe", sort=True)["score"].max().to_numpy(dtype=float)
    mat_found = mat[np.isfinite(mat["score"].to_numpy(dtype=float))]
    rows = []
    for name, choice in thresholds.items():
        t = float(choice)
        row = {"operating_point": name, "threshold": t, "how": choice.how}
        if len(non):
            f = fpir(non_top, t)
            row.update(non_mated_searches=f.n, false_matches=f.count, fpir=f.rate,
                       fpir_ci_low=f.ci_low, fpir_ci_high=f.ci_high,
                       false_candidates=int((non["score"] >= t).sum()))
        if len(mat):
            g = fnir(mat_found[["probe", "candidate_rank", "score", "is_mate"]], t, rank=rank,
                     probes=mated_probes)
            row.update(mated_searches=g.n, misses=g.count, fnir=g.rate, fnir_ci_low=g.ci_low,
                       fnir_ci_high=g.ci_high)
        rows.append(row)
    return pd.DataFrame(rows)


def outcomes_by_group(run: SearchRun, thresholds: Mapping[str, ThresholdChoice], *,
                      rank: int = 1) -> pd.DataFrame:
    """:func:`search_outcomes` per probe group: FPIR of the non-mated searches and FNIR of
    the mated searches of each group (``probe_group``), at every operating point, with
    Wilson intervals. A dataset with identities *and* group labels (your own CSV as
    ``mated_dataset``) gives FNIR by group; probes without labels form the group
    ``unlabelled``. The counts of the groups add up to those of :func:`search_outcomes`.
    """
    import copy

    frames = []
    for group, part in run.results.groupby("probe_group", sort=True, dropna=False):
        sub = copy.copy(run)
        sub.results = part
        frames.append(search_outcomes(sub, thresholds, rank=rank).assign(
            group=UNLABELLED if pd.isna(group) else group))
    if not frames:
        return pd.DataFrame(columns=["group", "operating_point", "threshold"])
    out = pd.concat(frames, ignore_index=True)
    return out[["group", *[c for c in out.columns if c != "group"]]]


def composition(table: pd.DataFrame, *, column: str = "probe_group",
                population: pd.Series | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Who the false matches are, against who was searched.

    Parameters
    ----------
    table
        :func:`false_match_table` output (one row per non-mated search).
    column
        The group column: ``"probe_group"`` (the person searched) or ``"candidate_group"``
        (the gallery person returned).
    population
        Group labels of the comparison population (default: the searches in ``table``,
        i.e. the probes). For candidates pass the gallery's groups.

    Returns
    -------
    DataFrame
        One row per group: ``population`` count and ``population_share``;
        ``false_matches`` count, ``share`` of all false matches with a Wilson interval;
        ``share_ratio`` = share / population_share. When ``column`` is the probe group it
        also has the group's FPIR (``fpir``, Wilson interval; searches are independent
        because every probe is a different person).
    """
    fm = table[table["false_match"]]
    total = len(fm)
    pop = table[column] if population is None else pd.Series(population)
    pop_counts = pop.value_counts()
    groups = sorted(set(pop_counts.index) | set(fm[column].dropna()), key=str)
    rows = []
    for g in groups:
        k = int((fm[column] == g).sum())
        low, high = binomial_ci(k, total, confidence=confidence) if total else (math.nan,) * 2
        n_pop = int(pop_counts.get(g, 0))
        share_pop = n_pop / len(pop) if len(pop) else math.nan
        share = k / total if total else math.nan
        rows.append({"group": g, "population": n_pop, "population_share": share_pop,
                     "false_matches": k, "share": share, "share_ci_low": low,
                     "share_ci_high": high,
                     "share_ratio": share / share_pop if share_pop else math.nan})
    out = pd.DataFrame(rows)
    if population is None and column == "probe_group" and len(table):
        gm = rate_by_group(table.assign(group=table[column]), event="false_match", by="group",
                           name="FPIR", interval="wilson", confidence=confidence)
        bg = gm.by_group
        out["fpir"] = out["group"].map(bg["value"])
        out["fpir_ci_low"] = out["group"].map(bg["ci_low"])
        out["fpir_ci_high"] = out["group"].map(bg["ci_high"])
    return out


def share_outside(table: pd.DataFrame, *, column: str = "probe_race",
                  excluded: str = "White") -> pd.DataFrame:
    """ACLU-style summary: share of false matches, and of searches, that are people whose
    ``column`` is not ``excluded`` (e.g. people of colour = not White), with Wilson
    intervals. Rows without a label are left out."""
    lab = table[table[column].notna()]
    fm = lab[lab["false_match"]]
    rows = []
    for what, part in (("false matches", fm), ("searches", lab)):
        k = int((part[column] != excluded).sum())
        n = len(part)
        low, high = binomial_ci(k, n) if n else (math.nan, math.nan)
        rows.append({"among": what, "outside": f"not {excluded}", "count": k, "n": n,
                     "share": k / n if n else math.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- gallery size
def expected_fpir(scores: np.ndarray, threshold: float, gallery_size: int) -> np.ndarray:
    """Per non-mated search, the probability that a gallery of ``gallery_size`` entries
    drawn at random (without replacement) from the columns of ``scores`` holds at least
    one entry scoring >= ``threshold``: ``1 - C(G - m, N) / C(G, N)`` with ``m`` entries
    above the threshold out of ``G``. Exact (hypergeometric), no simulation."""
    scores = np.atleast_2d(scores)
    g = scores.shape[1]
    n = int(gallery_size)
    if not 1 <= n <= g:
        raise ValueError(f"gallery size {n} must be between 1 and {g}")
    m = (scores >= threshold).sum(axis=1)
    free = g - m
    with np.errstate(invalid="ignore"):
        log_none = (gammaln(free + 1) - gammaln(np.maximum(free - n, 0) + 1)
                    - gammaln(g + 1) + gammaln(g - n + 1))
    p_none = np.where(m == 0, 1.0, np.where(free >= n, np.exp(log_none), 0.0))
    return np.clip(1.0 - p_none, 0.0, 1.0)


def fpir_by_gallery_size(run: SearchRun, thresholds: Mapping[str, ThresholdChoice], *,
                         gallery_sizes: Sequence[int] | None = None, n_boot: int = 1000,
                         seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """FPIR as the gallery grows, for random sub-galleries of the enrolled entries.

    For each size N the expected FPIR over every sub-gallery of N entries is computed
    exactly per search (:func:`expected_fpir`) and averaged over the non-mated searches;
    the interval is a seeded percentile bootstrap over searches (probe sampling
    variability). ``predicted`` is ``1 - (1 - FMR)^N`` with the 1:1 FMR the threshold
    achieved on the calibration pairs: what independent comparisons would give.
    """
    if run.scores is None:  # imported candidate lists: only the returned candidates known
        warnings.warn("FPIR by gallery size needs every probe-gallery score; imported "
                      "candidate lists hold only the returned candidates: skipped",
                      stacklevel=2)
        return pd.DataFrame(columns=["operating_point", "threshold", "gallery_size", "fpir",
                                     "ci_low", "ci_high", "n_searches", "predicted"])
    res = run.results
    mated = set(res.loc[res["mated"], "probe"])
    rows_mask = np.array([p not in mated for p in run.probe_ids])
    s = run.scores[rows_mask]
    g = s.shape[1]
    if gallery_sizes is None:
        gallery_sizes = sorted({int(v) for v in np.unique(np.geomspace(10, g, 12).round())})
    out = []
    for name, choice in thresholds.items():
        t = float(choice)
        for i, n in enumerate(gallery_sizes):
            per = expected_fpir(s, t, n)
            low, high = bootstrap_ci(lambda idx, per=per: float(per[idx].mean()), len(per),
                                     n_boot=n_boot, confidence=confidence,
                                     seed=seed + i)
            fmr = choice.achieved_fmr
            out.append({"operating_point": name, "threshold": t, "gallery_size": int(n),
                        "fpir": float(per.mean()), "ci_low": low, "ci_high": high,
                        "n_searches": len(per),
                        "predicted": 1 - (1 - fmr) ** n if np.isfinite(fmr) else math.nan})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- findings
def search_findings(*, outcomes: Mapping[str, pd.DataFrame],
                    compositions: Mapping[tuple[str, str], pd.DataFrame],
                    outside: Mapping[tuple[str, str], pd.DataFrame],
                    by_size: Mapping[str, pd.DataFrame],
                    label_errors: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The findings table: false matches, FPIR and FNIR at each operating point, the
    group most over-represented among false matches, the ACLU-style share, FPIR at
    the largest gallery, and the label error counts of :func:`screen_label_errors`.

    Parameters
    ----------
    outcomes : mapping of str to pandas.DataFrame
        Search outcomes (FPIR, FNIR) per embedder, one row per operating point.
    compositions : mapping of (str, str) to pandas.DataFrame
        False-match composition by group per (embedder, operating point).
    outside : mapping of (str, str) to pandas.DataFrame
        ACLU-style shares per (embedder, operating point).
    by_size : mapping of str to pandas.DataFrame
        FPIR by gallery size per embedder.
    label_errors : mapping of str to int, optional
        Label error counts of :func:`screen_label_errors`.

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the findings.
    """
    out = []

    thresholds: dict[tuple[str, str], float] = {}

    def add(model, point, finding, value, count=None, n=None, low=None, high=None, how=""):
        metric = next((m for m in ("FPIR", "FNIR") if m in finding), "")
        if not metric:
            metric = ("count" if finding.startswith("label errors") else
                      "share" if finding.startswith(("share", "most over")) else "")
        out.append(Finding(finding, value, metric=metric, model=model, count=count, n=n,
                           ci_low=low, ci_high=high, threshold=thresholds.get((model, point)),
                           threshold_how=how, operating_point=point))

    for model, result in outcomes.items():
        for r in result.itertuples():
            point, how = r.operating_point, r.how
            thresholds[model, point] = getattr(r, "threshold", None)
            if hasattr(r, "fpir"):
                add(model, point, "false matches (non-mated searches with a candidate >= "
                    "threshold) = FPIR", r.fpir, r.false_matches, r.non_mated_searches,
                    r.fpir_ci_low, r.fpir_ci_high, how)
            if hasattr(r, "fnir"):
                add(model, point, "FNIR, rank 1 (mated searches whose mate is not returned)",
                    r.fnir, r.misses, r.mated_searches, r.fnir_ci_low, r.fnir_ci_high, how)
            comp = compositions.get((model, point))
            if comp is not None and comp["false_matches"].sum() > 0:
                top = comp.loc[comp["share_ratio"].idxmax()]
                add(model, point, f"most over-represented among false matches: {top['group']} "
                    f"(share {top['share']:.2f} vs {top['population_share']:.2f} of searches)",
                    top["share_ratio"], top["false_matches"], int(comp["false_matches"].sum()),
                    how=how)
                if "fpir" in comp:
                    hi = comp.loc[comp["fpir"].idxmax()]
                    lo = comp.loc[comp["fpir"].idxmin()]
                    add(model, point, f"highest group FPIR ({hi['group']})", hi["fpir"],
                        hi["false_matches"], hi["population"], hi["fpir_ci_low"],
                        hi["fpir_ci_high"], how)
                    add(model, point, f"lowest group FPIR ({lo['group']})", lo["fpir"],
                        lo["false_matches"], lo["population"], lo["fpir_ci_low"],
                        lo["fpir_ci_high"], how)
            sh = outside.get((model, point))
            if sh is not None:
                for s in sh.itertuples():
                    add(model, point, f"share {s.outside} among {s.among}", s.share,
                        s.count, s.n, s.ci_low, s.ci_high, how)
        size = by_size.get(model)
        if size is not None and len(size):
            for point, part in size.groupby("operating_point", sort=False):
                last = part.iloc[-1]
                first = part.iloc[0]
                add(model, point, f"FPIR at gallery size {int(first['gallery_size']):,} "
                    "(expected over random sub-galleries)", first["fpir"],
                    n=int(first["n_searches"]), low=first["ci_low"], high=first["ci_high"])
                add(model, point, f"FPIR at gallery size {int(last['gallery_size']):,}",
                    last["fpir"], n=int(last["n_searches"]), low=last["ci_low"],
                    high=last["ci_high"])
    for model in outcomes:
        for what, n in (label_errors or {}).items():
            if what.startswith("likely pairs (") and f"({model} " not in what:
                continue  # another embedder's likely pairs
            add(model, "", f"label errors: {what}", n, n)
    return findings_table(out)
