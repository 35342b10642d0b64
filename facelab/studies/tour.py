"""Inputs and tables for the ``00_tour`` notebook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facelab.core.io import load_image
from facelab.data.sampling import load_datasets
from facelab.extraction.analysis import FaceAnalysis
from facelab.metrics.findings import Finding, findings_table

__all__ = ["load_tour_image", "analysis_table", "TourSets", "celeba_tour_sets", "tour_findings"]


def load_tour_image(path: str | Path | None) -> tuple[np.ndarray, str]:
    """The photo to analyse: ``path``, or scikit-image's astronaut photo when ``None``."""
    if path is None:
        from skimage import data

        return data.astronaut(), "scikit-image astronaut"
    return load_image(path), Path(path).name


def analysis_table(records: list[FaceAnalysis]) -> pd.DataFrame:
    """One row per face: the analysis fields flattened for display."""
    rows = []
    for r in records:
        d = r.to_dict()
        row = {"face": d["face_index"], "confidence": d["confidence"],
               "box": d["box"]}
        row.update({f"pose_{k}": v for k, v in (d["pose"] or {}).items()})
        row.update({f"quality_{k}": v for k, v in d["quality"].items()})
        if d["emotions"]:
            row["top_expression"] = d["emotions"][0]["type"]
            row.update({f"expr_{e['type']}": e["confidence"] for e in d["emotions"]})
        if d["gender"]:
            row["gender"] = d["gender"]["value"]
            row["gender_confidence"] = d["gender"]["confidence"]
        if d["age"]:
            row["age"] = d["age"]["estimate"]
            row["age_range"] = f"{d['age']['low']:.0f}-{d['age']['high']:.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class TourSets:
    """Images for the tour's verification and search steps.

    Attributes
    ----------
    same_a, same_b : str or numpy.ndarray
        Two photos of one identity (paths, or RGB uint8 arrays for the bundled photos).
    other : str or numpy.ndarray
        A photo of another identity.
    subject : str
        The identity of ``same_a`` and ``same_b``.
    gallery_paths, gallery_subjects : list
        The gallery: one photo per identity (the probe's identity enrolled with a third
        photo) and their identities.
    note : str
        Where the photos came from, for the notebook.
    dataset : str or None
        The dataset they were drawn from (None for scikit-image's bundled photos).
    manifest : pandas.DataFrame or None
        That dataset's manifest as loaded (for the run's provenance).
    """

    same_a: object
    same_b: object
    other: object
    subject: str
    gallery_paths: list
    gallery_subjects: list
    note: str
    dataset: str | None = None
    manifest: pd.DataFrame | None = None


def celeba_tour_sets(*, seed: int = 0, gallery_size: int = 20,
                     root: str | Path | None = None,
                     datasets: tuple[str, ...] | list[str] = ("celeba", "lfw")) -> TourSets:
    """Two photos of one identity, one of another, and a one-photo-per-identity gallery
    (``gallery_size`` identities, the probe's identity included, enrolled with a photo
    other than the probe), from the first identity-labelled dataset of ``datasets`` found
    (CelebA, else LFW). Without any, scikit-image's bundled photos stand in, and the note
    says so."""
    celeba, source = None, ""
    loaded, notes = load_datasets(datasets, root=root, default_splits={})  # a named CSV must load
    tried = [notes.table.loc[i, "note"] for i in notes.table.index
             if not notes.table.loc[i, "found"]]
    for name, frame in loaded.items():
        if not (frame["subject"].value_counts() >= 3).any():
            tried.append(f"{name}: no identity with 3 or more photos")
            continue
        celeba, source = frame, name
        break
    if celeba is None:
        return _bundled_sets(
            "No identity-labelled dataset found (" + "; ".join(tried) + "). The verification "
            "and search steps use scikit-image's bundled photos instead: the astronaut photo "
            "mirrored and resized as the same person, the cameraman photo as a different "
            "person. For real pairs get CelebA or run `facelab data fetch lfw`.")
    rng = np.random.default_rng(seed)
    counts = celeba.groupby("subject").size()
    multi = counts[counts >= 3].index.to_numpy()
    subject = rng.choice(np.sort(multi))
    own = celeba[celeba.subject == subject].sort_values("path")
    picks = own.iloc[rng.permutation(len(own))[:3]]
    others = np.sort(np.setdiff1d(counts.index.to_numpy(), [subject]))
    chosen = rng.choice(others, size=min(gallery_size - 1, len(others)), replace=False)
    gallery = [celeba[celeba.subject == s].sort_values("path").iloc[0] for s in chosen]
    other = gallery[0].path
    paths = [picks.iloc[2].path] + [g.path for g in gallery]
    subjects = [str(subject)] + [str(g.subject) for g in gallery]
    return TourSets(picks.iloc[0].path, picks.iloc[1].path, other, str(subject), paths,
                    subjects, f"{source} identity {subject}: {len(own)} photos; gallery of "
                              f"{len(paths)} identities (seed {seed}).",
                    dataset=source, manifest=celeba)


def _bundled_sets(note: str) -> TourSets:
    """Same person: the astronaut photo and a mirrored, resized copy (the same photo, so
    this shows the mechanics, not accuracy); different person: the cameraman photo."""
    import cv2
    from skimage import data

    img = data.astronaut()
    variant = cv2.resize(img[:, ::-1], (400, 400))
    other = np.repeat(data.camera()[:, :, None], 3, axis=2)  # grey, as RGB
    return TourSets(img, variant, other, "astronaut", [img, other],
                    ["astronaut", "cameraman"], note)


def tour_findings(*, n_faces: int, detector: str, embedder: str, same, different,
                  top1_is_mate: bool, gallery_size: int) -> pd.DataFrame:
    """The tour's findings table: faces found, the two similarities and the search hit.

    Parameters
    ----------
    n_faces : int
        Faces the detector found in the photo.
    detector, embedder : str
        The detector's and the embedder's names.
    same, different : facelab.match.verification.Verification
        :func:`facelab.verify` of a same-person and a different-person pair (``score``,
        ``decision``, ``threshold``, ``threshold_how``).
    top1_is_mate : bool
        Whether the probe's mate came first in the gallery search.
    gallery_size : int
        Identities enrolled in the gallery.

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the four findings.
    """
    return findings_table([
        Finding("faces detected in the photo", n_faces, metric="count", model=detector,
                threshold_how=detector),
        Finding("same-person similarity", same.score, metric="similarity", model=embedder,
                threshold=same.threshold,
                threshold_how=f"{same.decision} at {same.threshold:.3f} "
                              f"({same.threshold_how})"),
        Finding("different-person similarity", different.score, metric="similarity",
                model=embedder,
                threshold=different.threshold,
                threshold_how=f"{different.decision} at the same threshold"),
        Finding("search: mate ranked first", bool(top1_is_mate), metric="rank-1 hit",
                model=embedder,
                count=int(bool(top1_is_mate)), n=1,
                threshold_how=f"gallery of {gallery_size} CelebA identities, one photo each"),
    ])
