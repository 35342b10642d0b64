"""Galleries of error examples: the faces behind the error rates.

Every audit counts errors; this module shows a few of them. :func:`error_gallery` draws a
small, seeded grid of thumbnails (at most 96 px a side) cut from the dataset images around
the face box, with the box drawn, and a caption (score or label, group) under each. A
*tile* holds one face (a missed face, a misgendered face) or two side by side (an impostor
pair, a probe and the candidate a search returned).

The other functions turn a study's results into the *examples* table :func:`error_gallery`
reads, one row per tile:

``path``
    The image file (required).
``box``
    Face box ``[x1, y1, x2, y2]`` in the image's pixels, or missing (the whole image is
    shown).
``path_b``, ``box_b``
    The second face of a pair tile (optional).
``caption``
    Text under the tile (lines separated by ``\\n``).
``group``
    The group the tile belongs to (used to spread a random selection over groups).
``box_note``
    Optional: ``"other"`` when the box drawn is not the audited model's own (drawn in
    orange instead of green).

Nothing is written to disk here: the figure is returned, and the notebook records it in
its run folder (:meth:`facelab.report.record.Recorder.figure`), which also embeds it in the HTML
export. Set ``show_examples = False`` in a notebook (``enabled=False`` here) for data
that must not be shown: no image is then read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from facelab.core.io import ImageError, load_image
from facelab.data.sampling import balanced_sample
from facelab.studies.attributes import evaluable
from facelab.studies.verification import GENUINE

__all__ = [
    "THUMBNAIL_SIZE", "ErrorGallery", "thumbnail", "select_examples", "error_gallery",
    "record_gallery",
    "missed_face_examples", "pair_examples", "false_candidate_examples",
    "expression_examples", "gender_examples",
]

#: Largest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 96
_OWN_BOX = (0, 200, 0)  # RGB: the audited model's box
_OTHER_BOX = (255, 140, 0)  # RGB: a box found by another model
_TILE_GAP = 4
_BG = 255


# ----------------------------------------------------------------------------- thumbnails
def _valid_box(box) -> np.ndarray | None:
    if box is None or (isinstance(box, float) and math.isnan(box)):
        return None
    try:
        b = np.asarray(box, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if b.size != 4 or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
        return None
    return b


def thumbnail(image, box=None, *, size: int = THUMBNAIL_SIZE, margin: float = 0.4,
              color: tuple[int, int, int] = _OWN_BOX) -> np.ndarray:
    """A small RGB thumbnail of a face, with its box drawn.

    Parameters
    ----------
    image
        Anything :func:`facelab.core.io.load_image` reads (a path, bytes, a PIL image, an array).
    box
        ``[x1, y1, x2, y2]`` in the image's pixels, or None / NaN: then the whole image is
        shown and no box drawn.
    size
        Largest side of the result in pixels (default 96). Images are never enlarged.
    margin
        Context kept around the box on each side, as a fraction of the box's larger side;
        the crop is square where the image allows.
    color
        RGB colour of the box line.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 3)`` ``uint8`` with ``max(h, w) <= size``.

    Raises
    ------
    ValueError
        When ``size`` is below 8 pixels.
    facelab.core.io.ImageError
        When the image cannot be read.
    """
    import cv2

    if size < 8:
        raise ValueError(f"thumbnail size must be at least 8 pixels; got {size}")
    img = load_image(image)
    h, w = img.shape[:2]
    b = _valid_box(box)
    x0 = y0 = 0
    crop = img
    if b is not None:
        side = max(b[2] - b[0], b[3] - b[1]) * (1 + 2 * margin)
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        x0 = int(max(0, math.floor(cx - side / 2)))
        y0 = int(max(0, math.floor(cy - side / 2)))
        x1 = int(min(w, math.ceil(cx + side / 2)))
        y1 = int(min(h, math.ceil(cy + side / 2)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            crop = img[y0:y1, x0:x1]
        else:  # box outside the image: show the whole image
            x0 = y0 = 0
    ch, cw = crop.shape[:2]
    scale = min(1.0, size / max(ch, cw))
    if scale < 1.0:
        out = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))),
                         interpolation=cv2.INTER_AREA)
    else:
        out = np.ascontiguousarray(crop).copy()
    if b is not None:
        p1 = (int(round((b[0] - x0) * scale)), int(round((b[1] - y0) * scale)))
        p2 = (int(round((b[2] - x0) * scale)), int(round((b[3] - y0) * scale)))
        cv2.rectangle(out, p1, p2, color, 1, cv2.LINE_8)
    return out


# ----------------------------------------------------------------------------- selection
def select_examples(examples: pd.DataFrame, *, n: int = 8, rows: str | None = None,
                    by: str | None = "group", order: str | None = None,
                    ascending: bool = False, seed: int = 0) -> pd.DataFrame:
    """Pick at most ``n`` examples per gallery row, reproducibly.

    Parameters
    ----------
    examples
        The examples table (see the module docstring).
    n
        Examples per row value (per gallery when ``rows`` is None).
    rows
        Column whose values become the gallery's rows (e.g. ``"detector"``), in order of
        first appearance.
    by
        With no ``order``: a seeded random choice spread as evenly as possible over the
        values of this column (round robin over groups, as
        :func:`facelab.data.sampling.balanced_sample`); ``None``: plain seeded choice.
    order
        A column to rank by instead (e.g. ``"score"``): the first ``n`` after sorting,
        ``ascending`` or not; ties are broken by a seeded shuffle.
    ascending
        With ``order``: take the smallest values first (default: the largest first).
    seed
        Same seed and same table give the same selection (gallery row ``i`` uses
        ``seed + i``).

    Returns
    -------
    DataFrame
        The chosen rows (original index kept), grouped by ``rows`` and, within a row, in
        ``order`` or by ``by``.

    Raises
    ------
    ValueError
        When ``n`` is negative, or ``rows``, ``by`` or ``order`` is not a column of
        ``examples``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    for col in (rows, by, order):
        if col is not None and col not in examples.columns:
            raise ValueError(f"examples have no column {col!r}; columns: "
                             f"{list(examples.columns)}")
    if examples.empty:
        return examples.copy()
    blocks = examples.groupby(rows, sort=False, dropna=False) if rows else [(None, examples)]
    chosen = []
    for i, (_, block) in enumerate(blocks):
        rng = np.random.default_rng(seed + i)
        if order is not None:
            tie = rng.permutation(len(block))
            key = block[order].to_numpy(dtype=float)
            idx = np.lexsort((tie, key if ascending else -key))[:n]
            chosen.append(block.iloc[idx])
        else:
            pick = balanced_sample(block, n, [by] if by else [], seed=seed + i)
            if by:
                pick = pick.sort_values(by, kind="stable", key=lambda s: s.astype(str))
            chosen.append(pick)
    return pd.concat(chosen)


# ----------------------------------------------------------------------------- drawing
@dataclass
class ErrorGallery:
    """What :func:`error_gallery` drew.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The gallery (give it to :meth:`facelab.report.record.Recorder.figure`).
    examples : DataFrame
        The rows shown (selection of the input table), with ``status`` (``"shown"`` or
        the reason an image could not be read).
    thumbnails : list of ndarray
        Per shown row, the thumbnail(s) drawn (one, or two for a pair), each ``uint8``
        ``(h, w, 3)`` with sides at most the gallery's ``size``.
    available : int
        Rows of the input table (the errors there were to choose from).
    """

    figure: object
    examples: pd.DataFrame
    thumbnails: list = field(default_factory=list)
    available: int = 0

    @property
    def unreadable(self) -> int:
        """Selected examples whose image could not be read (shown as a grey tile)."""
        return int((self.examples["status"] != "shown").sum()) if len(self.examples) else 0


def _tile(row: pd.Series, size: int) -> tuple[np.ndarray, list[np.ndarray], str]:
    """The tile image (one or two thumbnails padded to ``size`` and joined), the
    thumbnails, and a status."""
    color = _OTHER_BOX if str(row.get("box_note", "")) == "other" else _OWN_BOX
    sides = [("path", "box")]
    if "path_b" in row.index and isinstance(row.get("path_b"), str) and row["path_b"]:
        sides.append(("path_b", "box_b"))
    thumbs, status = [], "shown"
    shown = []
    for p, bcol in sides:
        try:
            t = thumbnail(row[p], row.get(bcol), size=size, color=color)
        except (ImageError, OSError, ValueError) as exc:
            status = f"unreadable: {exc}"
            t = np.full((size, size, 3), 200, np.uint8)
        else:
            thumbs.append(t)
        shown.append(t)
    # pad to a common square (the largest side here, <= size); matplotlib scales the tile
    # to its axes, so a 48 px image is drawn as large as a 96 px one (its pixels unchanged)
    side = max(max(t.shape[:2]) for t in shown)
    panels = []
    for t in shown:
        canvas = np.full((side, side, 3), _BG, np.uint8)
        th, tw = t.shape[:2]
        y, x = (side - th) // 2, (side - tw) // 2
        canvas[y:y + th, x:x + tw] = t
        panels.append(canvas)
    if len(panels) == 2:
        gap = np.full((side, max(1, _TILE_GAP * side // size), 3), _BG, np.uint8)
        image = np.concatenate([panels[0], gap, panels[1]], axis=1)
    else:
        image = panels[0]
    return image, thumbs, status


def _caption(row: pd.Series) -> str:
    if "caption" in row.index and isinstance(row["caption"], str):
        return row["caption"]
    parts = [str(row[c]) for c in ("label", "group") if c in row.index and pd.notna(row[c])]
    return "\n".join(parts)


def error_gallery(examples: pd.DataFrame, *, n: int = 8, rows: str | None = None,
                  by: str | None = "group", order: str | None = None,
                  ascending: bool = False, seed: int = 0, title: str = "",
                  size: int = THUMBNAIL_SIZE, enabled: bool = True,
                  empty_text: str = "no errors of this kind") -> ErrorGallery | None:
    """Draw a small seeded gallery of error examples.

    Parameters
    ----------
    examples
        One row per tile: ``path`` (required), ``box``, ``path_b``, ``box_b``,
        ``caption``, ``group`` (see the module docstring). The builders in this module
        make it from each audit's results.
    n, rows, by, order, ascending, seed
        Which examples, as in :func:`select_examples`: ``n`` per row of the gallery.
    title
        Figure title (the row count and the number of errors available are appended).
    size
        Largest side of a thumbnail in pixels (at most 96 by default; never enlarged).
    enabled
        ``False`` returns None at once and reads no image (the notebooks'
        ``show_examples`` switch, for data that must not be shown).
    empty_text
        Said in the figure when there is nothing to show.

    Returns
    -------
    ErrorGallery or None
        The figure, the rows shown and their thumbnails; None when ``enabled`` is False.
        An image that cannot be read is a grey tile with its reason in
        ``examples["status"]``, never a silent gap.

    Raises
    ------
    ValueError
        When ``size`` is above :data:`THUMBNAIL_SIZE` (96 pixels), ``examples`` has no
        ``path`` column, or the selection arguments are invalid
        (:func:`select_examples`).
    """
    import matplotlib.pyplot as plt

    if not enabled:
        return None
    if size > THUMBNAIL_SIZE:
        raise ValueError(f"thumbnails are at most {THUMBNAIL_SIZE} px; got size={size}")
    if "path" not in examples.columns:
        raise ValueError(f"examples need a 'path' column; got {list(examples.columns)}")
    chosen = select_examples(examples, n=n, rows=rows, by=by, order=order,
                             ascending=ascending, seed=seed).copy()
    available = len(examples)
    if chosen.empty:
        fig, ax = plt.subplots(figsize=(5, 0.9))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{empty_text} ({available} available)", ha="center",
                va="center", fontsize=10)
        if title:
            ax.set_title(title, fontsize=10)
        chosen["status"] = pd.Series(dtype=str)
        return ErrorGallery(fig, chosen, [], available)
    keys = chosen[rows].astype(str) if rows else pd.Series("", index=chosen.index)
    row_keys = list(pd.unique(keys))
    grid = [chosen[keys == k] for k in row_keys]
    ncols = max(len(g) for g in grid)
    pair = "path_b" in chosen.columns and chosen["path_b"].notna().any()
    tile_w = 2.2 if pair else 1.3
    lines = max(_caption(r).count("\n") + 1 for _, r in chosen.iterrows())
    image_h = tile_w / (2 + _TILE_GAP / size) if pair else tile_w
    tile_h = image_h + 0.13 * lines + 0.25
    label_w = 1.1 if rows else 0.0
    fig, axes = plt.subplots(len(grid), ncols, squeeze=False,
                             figsize=(label_w + tile_w * ncols, tile_h * len(grid) + 0.5))
    thumbs_out, status = [], {}
    for r, (key, block) in enumerate(zip(row_keys, grid, strict=True)):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(block):
                ax.axis("off")
                continue
            row = block.iloc[c]
            image, thumbs, st = _tile(row, size)
            status[block.index[c]] = st
            thumbs_out.append(thumbs)
            ax.imshow(image, interpolation="antialiased")
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xlabel(_caption(row) + ("" if st == "shown" else "\n(unreadable)"),
                          fontsize=6.5, linespacing=1.1)
        if rows:
            axes[r, 0].set_ylabel(str(key), fontsize=8, rotation=0, ha="right", va="center",
                                  labelpad=6)
    chosen["status"] = [status.get(i, "shown") for i in chosen.index]
    head = title or "error examples"
    fig.suptitle(f"{head}\n{len(chosen)} shown of {available:,}, seeded selection; "
                 f"thumbnails <= {size} px", fontsize=9)
    fig.tight_layout()
    return ErrorGallery(fig, chosen, thumbs_out, available)


def record_gallery(recorder, name: str, gallery: ErrorGallery | None) -> None:
    """Record a gallery in a notebook's run folder.

    The figure goes to ``figures/<name>.png`` (shown and embedded in the HTML export) and
    ``{enabled, available, shown, unreadable}`` under ``name`` in metrics.json. ``gallery``
    None (``show_examples`` off) prints that it is not shown and records
    ``{"enabled": False, "available": None, "shown": 0, "unreadable": 0}``; no figure is
    written.

    Parameters
    ----------
    recorder : facelab.report.record.Recorder
        The notebook's recorder (its ``figure`` and ``metric`` methods are called).
    name : str
        Figure file stem and metrics.json key.
    gallery : ErrorGallery or None
        What :func:`error_gallery` returned.
    """
    if gallery is None:
        print(f"{name}: not shown (show_examples is False).")
        recorder.metric(name, {"enabled": False, "available": None, "shown": 0,
                               "unreadable": 0})
        return
    recorder.figure(name, gallery.figure)
    recorder.metric(name, {"enabled": True, "available": int(gallery.available),
                           "shown": int(len(gallery.examples)),
                           "unreadable": gallery.unreadable})


# ----------------------------------------------------------------------------- builders
def _group_label(frame: pd.DataFrame, cols: Sequence[str] = ("race", "gender")) -> pd.Series:
    have = [c for c in cols if c in frame.columns]
    if not have:
        return pd.Series("unlabelled", index=frame.index)
    values = frame[have].astype("string")
    out = values.fillna("").agg(" ".join, axis=1).str.strip()
    return out.mask(values.isna().all(axis=1), "unlabelled").astype(str)


def missed_face_examples(records: pd.DataFrame, manifests: Mapping[str, pd.DataFrame],
                         *, prefer: Sequence[str] = ()) -> pd.DataFrame:
    """Faces each detector missed (``01_detection_reliability``).

    Parameters
    ----------
    records
        :func:`facelab.studies.detection.detection_records` output (one row per dataset,
        image and detector).
    manifests
        The manifests the records were made from (for the image paths).
    prefer
        Detectors whose box is drawn first when another detector found the face; by
        default the order of ``records``.

    Returns
    -------
    DataFrame
        One row per miss: ``detector, dataset, image, path, box, box_note, group,
        caption``. The box is the one found by the first other detector, in ``prefer``
        order then the order of ``records``, that found a face on the same image (drawn
        in orange, its name in the caption), or missing when none found one.

    Raises
    ------
    ValueError
        When ``records`` lacks ``dataset``, ``image``, ``detector`` or ``fta``, or a
        missed image is not in ``manifests``.
    """
    need = {"dataset", "image", "detector", "fta"}
    if missing := need - set(records.columns):
        raise ValueError(f"records need columns {sorted(need)}; missing {sorted(missing)}")
    miss = records[records["fta"].astype(bool)].copy()
    if miss.empty:
        return pd.DataFrame(columns=["detector", "dataset", "image", "path", "box",
                                     "box_note", "group", "caption"])
    order = list(prefer) + [d for d in pd.unique(records["detector"]) if d not in prefer]
    found = records[records["found"].astype(bool)] if "found" in records else records.iloc[:0]
    found = found.assign(_rank=found["detector"].map({d: i for i, d in enumerate(order)}))
    found = found.sort_values("_rank", kind="stable")
    by_image = {}
    for (ds, img), part in found.groupby(["dataset", "image"], sort=False):
        by_image[(ds, img)] = list(zip(part["detector"], part["box"], strict=True))
    paths = {(ds, idx): p for ds, m in manifests.items() for idx, p in m["path"].items()}
    boxes, notes, who = [], [], []
    for det, ds, img in zip(miss["detector"], miss["dataset"], miss["image"], strict=True):
        other = [(d, b) for d, b in by_image.get((ds, img), []) if d != det]
        boxes.append(other[0][1] if other else None)
        notes.append("other" if other else "")
        who.append(other[0][0] if other else "")
    miss["path"] = [paths.get((ds, img)) for ds, img in zip(miss["dataset"], miss["image"],
                                                            strict=True)]
    miss["box"], miss["box_note"] = boxes, notes
    miss["group"] = _group_label(miss)
    reason = miss["reason"].astype("string").fillna("") if "reason" in miss else ""
    miss["caption"] = [
        f"{g}\n{ds}\n" + (f"box: {w}" if w else "no detector found it")
        + (f"\n{r}" if r and r != "no face detected" else "")
        for g, ds, w, r in zip(miss["group"], miss["dataset"], who,
                               reason if len(reason) else [""] * len(miss), strict=True)]
    unknown = miss["path"].isna()
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} missed images are not in the manifests "
                         f"given (first: {miss.loc[unknown, 'image'].iloc[0]})")
    return miss[["detector", "dataset", "image", "path", "box", "box_note", "group",
                 "caption"]].reset_index(drop=True)


def _feature_lookup(embeddings: Mapping[str, object], model: str,
                    manifest: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """Image path and face box per image id: from the model's features when facelab ran
    it, else (scores imported from another system) the manifest's path and no box."""
    if model in embeddings:
        feats = embeddings[model].features
        return feats["path"], feats["box"]
    if manifest is None:
        raise ValueError(f"{model}: no features and no manifest to find its images in")
    return manifest["path"], pd.Series(None, index=manifest.index, dtype=object)


def pair_examples(scored: Mapping[str, pd.DataFrame], embeddings: Mapping[str, object],
                  thresholds: Mapping[str, object], *, genuine: bool,
                  manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Impostor or genuine pairs of ``02_verification_demographics``, per embedder.

    Parameters
    ----------
    scored
        ``{embedder: scored pairs}`` (:func:`facelab.studies.verification.score_pairs`).
    embeddings
        ``{embedder: Embeddings}`` (for image paths and face boxes).
    thresholds
        ``{embedder: threshold}`` (the global threshold, said in the caption).
    manifest
        Used for the image paths of scores without embeddings (imported from another
        system): the whole image is shown, with no box.
    genuine
        True: the genuine pairs (show the lowest scores: false non-matches first);
        False: every impostor pair (show the highest scores: false matches first).

    Returns
    -------
    DataFrame
        One row per pair: ``embedder, source, kind, score, path, box, path_b, box_b,
        group, caption``.
    """
    frames = []
    for model, pairs in scored.items():
        is_gen = pairs["kind"] == GENUINE
        part = pairs[is_gen if genuine else ~is_gen]
        if part.empty:
            continue
        path, box = _feature_lookup(embeddings, model, manifest)
        t = float(thresholds[model])
        out = pd.DataFrame({
            "embedder": model, "source": part["source"].to_numpy(),
            "kind": part["kind"].to_numpy(), "score": part["score"].to_numpy(float),
            "path": path.reindex(part["index_a"]).to_numpy(),
            "box": box.reindex(part["index_a"]).to_numpy(),
            "path_b": path.reindex(part["index_b"]).to_numpy(),
            "box_b": box.reindex(part["index_b"]).to_numpy(),
            "group": part["group_a"].astype(str).to_numpy()})
        verdict = np.where(out["score"] >= t, "match", "no match")
        # plain Python lists: iterating Arrow-backed string columns element by element
        # took ~7 s per million pairs (issue 16); the captions are the same strings
        out["caption"] = [
            f"{s:.3f} ({v} at {t:.3f})\n{src}\n{ga} | {gb}"
            for s, v, src, ga, gb in zip(out["score"].tolist(), verdict.tolist(),
                                         out["source"].tolist(),
                                         part["group_a"].astype(str).tolist(),
                                         part["group_b"].astype(str).tolist(), strict=True)]
        frames.append(out)
    cols = ["embedder", "source", "kind", "score", "path", "box", "path_b", "box_b", "group",
            "caption"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def false_candidate_examples(runs: Mapping[str, object], manifest: pd.DataFrame,
                             embeddings: Mapping[str, object],
                             choices: Mapping[str, Mapping[str, object]], *,
                             point: str | None = None) -> pd.DataFrame:
    """False candidates of non-mated searches (``03_one_to_many_search``), as in the ACLU
    test: every candidate returned at or above the threshold of operating point ``point``
    (default: the first one, the model default in the notebook) for a probe that has no
    mate in the gallery. Runs without embeddings (candidate lists imported from another
    system) show the whole images from ``manifest``, with no box.

    Parameters
    ----------
    runs : mapping of str to facelab.studies.search.SearchRun
        ``{embedder: run}``; ``run.results`` has one row per returned candidate with
        ``probe``, ``subject``, ``mated``, ``score``, ``candidate_rank``, ``probe_group``
        and ``candidate_group``.
    manifest : pandas.DataFrame
        The search manifest: ``role`` (``"gallery"`` rows give each ``gallery_id``'s
        image, the first one when a subject has several) and ``path``.
    embeddings : mapping of str to Embeddings
        ``{embedder: Embeddings}`` for image paths and face boxes.
    choices : mapping of str to mapping of str to threshold
        ``{embedder: {operating point: threshold}}``; an embedder with no points is
        skipped.
    point : str, optional
        The operating point whose threshold is used; the first of each embedder's
        ``choices`` when omitted.

    Returns
    -------
    DataFrame
        One row per false candidate: ``embedder, operating_point, threshold, probe,
        candidate, rank, score, path, box (probe), path_b, box_b (candidate), group
        (probe's), candidate_group, caption``.
    """
    gal = manifest[manifest["role"] == "gallery"]
    image_of = pd.Series(gal.index.to_numpy(), index=gal["gallery_id"].astype(str).to_numpy())
    image_of = image_of[~image_of.index.duplicated()]
    frames = []
    for model, run in runs.items():
        points = choices[model]
        if not points:
            continue
        name = point if point is not None else next(iter(points))
        t = float(points[name])
        res = run.results
        fc = res[~res["mated"] & (res["score"] >= t)]
        if fc.empty:
            continue
        path, box = _feature_lookup(embeddings, model, manifest)
        cand_img = image_of.reindex(fc["subject"].astype(str)).to_numpy()
        out = pd.DataFrame({
            "embedder": model, "operating_point": name, "threshold": t,
            "probe": fc["probe"].to_numpy(), "candidate": fc["subject"].to_numpy(),
            "rank": fc["candidate_rank"].to_numpy(int), "score": fc["score"].to_numpy(float),
            "path": path.reindex(fc["probe"]).to_numpy(),
            "box": box.reindex(fc["probe"]).to_numpy(),
            "path_b": path.reindex(cand_img).to_numpy(),
            "box_b": box.reindex(cand_img).to_numpy(),
            "group": fc["probe_group"].astype(str).to_numpy(),
            "candidate_group": fc["candidate_group"].astype(str).to_numpy()})
        out["caption"] = [f"rank {r} · {s:.3f} (>= {t:.3f})\nprobe: {pg}\ncand.: {cg}"
                          for r, s, pg, cg in zip(out["rank"], out["score"], out["group"],
                                                  out["candidate_group"], strict=True)]
        frames.append(out)
    cols = ["embedder", "operating_point", "threshold", "probe", "candidate", "rank", "score",
            "path", "box", "path_b", "box_b", "group", "candidate_group", "caption"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _need_columns(what: str, table: pd.DataFrame, need: set[str]) -> None:
    """Raise a ValueError naming the columns ``what`` needs that ``table`` lacks."""
    if missing := need - set(table.columns):
        raise ValueError(f"{what} needs columns {sorted(need)}: missing {sorted(missing)}; "
                         f"the table has {list(table.columns)}")


def expression_examples(predictions: pd.DataFrame, *, label: str = "fear",
                        model: str | None = None) -> pd.DataFrame:
    """Faces given ``label`` whose dataset label is something else, and faces labelled
    ``label`` that the model missed (``04_expression_fear``), for one model (default:
    the first in ``predictions``). Only evaluated rows; both are appearance labels.

    Parameters
    ----------
    predictions : pandas.DataFrame
        :mod:`facelab.studies.crossdata` predictions: ``model``, ``status``
        (``"evaluated"`` rows are used), ``true``, ``pred``, ``path``, ``test_dataset``,
        ``file``, optionally ``box``, ``p_<label>``, ``race`` and ``gender``.
    label : str
        The expression label examined.
    model : str, optional
        The model shown; the first evaluated row's model when omitted.

    Returns
    -------
    DataFrame
        ``model, kind`` (``"given '<label>', labelled otherwise"`` or ``"labelled
        '<label>', model said otherwise"``), ``test_dataset, file, true, pred, path, box,
        group, caption``; the caption gives the label, the model's output and its
        probability of ``label`` (``nan`` without a ``p_<label>`` column).

    Raises
    ------
    ValueError
        When ``predictions`` lacks ``model``, ``status``, ``true``, ``pred``, ``path``,
        ``test_dataset`` or ``file`` (the message lists the missing columns and those
        the table has).
    """
    _need_columns("expression_examples", predictions,
                  {"model", "status", "true", "pred", "path", "test_dataset", "file"})
    ev = predictions[predictions["status"] == "evaluated"]
    if model is None and len(ev):
        model = str(ev["model"].iloc[0])
    ev = ev[ev["model"] == model].copy()
    false = ev[(ev["pred"] == label) & (ev["true"] != label)].assign(
        kind=f"given '{label}', labelled otherwise")
    missed = ev[(ev["true"] == label) & (ev["pred"] != label)].assign(
        kind=f"labelled '{label}', model said otherwise")
    out = pd.concat([false, missed])
    if "box" not in out.columns:
        out["box"] = None
    out["group"] = _group_label(out)
    p = out[f"p_{label}"] if f"p_{label}" in out.columns else pd.Series(np.nan, out.index)
    out["caption"] = [
        f"label {t}\nmodel {pr}, p({label})={pp:.2f}\n{ds}" + (f"\n{g}" if g != "unlabelled"
                                                                 else "")
        for t, pr, pp, ds, g in zip(out["true"], out["pred"], p, out["test_dataset"],
                                    out["group"], strict=True)]
    out["model"] = model
    return out[["model", "kind", "test_dataset", "file", "true", "pred", "path", "box",
                "group", "caption"]].reset_index(drop=True)


def gender_examples(preds: pd.DataFrame) -> pd.DataFrame:
    """Misclassified gender (``05_attribute_audit``): evaluated faces whose predicted
    gender differs from the dataset label, with their race x gender cell. Both genders
    are appearance labels (a dataset's annotation and a classifier's output), not
    identity.

    Parameters
    ----------
    preds : pandas.DataFrame
        :mod:`facelab.studies.attributes` predictions: ``path``, ``status``, ``gender``,
        ``pred_gender``, ``pred_p_female`` (in [0, 1]), ``gender_error``, ``dataset``,
        optionally ``box``, ``race``; only rows :func:`facelab.studies.attributes.evaluable`
        keeps are used.

    Returns
    -------
    DataFrame
        ``dataset, cell, gender, pred_gender, pred_p_female, path, box, group, caption``
        sorted by ``cell``, where ``cell`` is ``"<race> <gender>"`` (the gallery rows)
        and ``group`` the dataset; the caption gives the label, the model's gender and
        its P(female).

    Raises
    ------
    ValueError
        When ``preds`` lacks ``path``, ``gender``, ``pred_gender``, ``pred_p_female``,
        ``gender_error``, ``dataset`` or ``status`` (the message lists the missing columns
        and those the table has).
    """
    _need_columns("gender_examples", preds,
                  {"path", "gender", "pred_gender", "pred_p_female", "gender_error",
                   "dataset", "status"})
    ev = evaluable(preds)
    err = ev[ev["gender_error"]].copy()
    if "box" not in err.columns:
        err["box"] = None
    err["cell"] = _group_label(err)
    err["group"] = err["dataset"].astype(str)
    err = err.sort_values("cell", kind="stable")
    err["caption"] = [
        f"label {g}\nmodel {pg}, P(f)={p:.2f}\n{ds}"
        for g, pg, p, ds in zip(err["gender"], err["pred_gender"], err["pred_p_female"],
                                err["dataset"], strict=True)]
    return err[["dataset", "cell", "gender", "pred_gender", "pred_p_female", "path", "box",
                "group", "caption"]].reset_index(drop=True)
