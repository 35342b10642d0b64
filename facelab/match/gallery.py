"""1:N search: a :class:`Gallery` of enrolled faces, searched exactly or with an
approximate index, saved as ``.npz`` (never pickle).

Each enrolled image (or embedding) is a *template* of a subject; a subject may have
several. A search scores a probe against every template and returns the best ``k``
*subjects* (each with its best template), like a 1:N identification candidate list.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.io import describe_source
from facelab.core.validation import Drops, check_embeddings
from facelab.match.index import FaissIndex, exact_search
from facelab.match.verification import embed_images, get_embedder, resolve_threshold
from facelab.models.embedders.base import l2_normalize

__all__ = ["Gallery", "INDEX_KINDS", "APPROX_FROM", "SEARCH_RESULT_COLUMNS"]

INDEX_KINDS = ("exact", "ivf", "ivfpq", "hnsw", "auto")
#: ``index="auto"`` switches from exact search to the approximate index at this many
#: templates.
APPROX_FROM = 100_000
#: Columns of :meth:`Gallery.search` results (``probe``, ``candidate_rank`` and ``score``
#: follow :data:`facelab.metrics.biometric.SEARCH_COLUMNS`; add ``is_mate`` to use them).
SEARCH_RESULT_COLUMNS = ("probe", "candidate_rank", "subject", "score", "above_threshold",
                         "threshold", "template", "template_source", "error")
FORMAT_VERSION = 2
#: Gallery files this version reads (1: templates only; 2: optionally the built index).
READABLE_VERSIONS = (1, 2)


def _as_embeddings(items: Any, dim: int) -> np.ndarray | None:
    """``items`` as an ``(n, dim)`` float array if it is one (or a 1-D vector), else None."""
    if isinstance(items, np.ndarray) and np.issubdtype(items.dtype, np.floating):
        if items.ndim == 2 and items.shape[1] == dim:
            return items.astype(np.float32)
        if items.ndim == 1 and items.shape[0] == dim:
            return items.astype(np.float32)[None]
    return None


def _as_sources(items: Any) -> list[Any]:
    if isinstance(items, str | os.PathLike | bytes | np.ndarray):
        return [items]
    return list(items)


class Gallery:
    """Enrolled face templates with exact or approximate 1:N search.

    Parameters
    ----------
    model
        Embedder name (or instance); every template and probe uses it.
    index
        ``"exact"`` (batched float32 matrix products; exact), ``"ivf"`` (faiss
        ``IndexIVFFlat``), ``"ivfpq"`` (IVF with 4-bit PQ fast-scan codes and exact
        re-ranking), ``"hnsw"`` (faiss ``IndexHNSWFlat``), or ``"auto"``: exact below
        :data:`APPROX_FROM` templates, IVF from there on.
    detector
        Detector used when images are enrolled or searched (largest face per image).
    index_options
        Passed to :class:`facelab.match.index.FaissIndex` (e.g. ``nprobe=64``).

    Attributes
    ----------
    embeddings_ : ndarray
        ``(n, dim)`` float32 templates (L2-normalised for cosine models).
    subjects_ : ndarray
        ``(n,)`` subject id (str) of each template.
    sources_ : ndarray
        ``(n,)`` where each template came from (file name, or ``<embedding i>``).
    """

    def __init__(self, model: Any = "sface", *, index: str = "auto", detector: Any = "yunet",
                 index_options: dict | None = None) -> None:
        if index not in INDEX_KINDS:
            raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}; got {index!r}")
        self.model = model
        self.index = index
        self.detector = detector
        self.index_options = dict(index_options or {})
        emb = get_embedder(model)
        self.embeddings_ = np.zeros((0, emb.dim), np.float32)
        self.subjects_ = np.zeros(0, dtype=str)
        self.sources_ = np.zeros(0, dtype=str)
        self._ann: FaissIndex | None = None
        self._sq_norms: np.ndarray | None = None

    # ------------------------------------------------------------------ properties
    @property
    def embedder(self) -> Any:
        return get_embedder(self.model)

    @property
    def model_name(self) -> str:
        return getattr(self.embedder, "name", str(self.model))

    def __len__(self) -> int:
        return len(self.embeddings_)

    @property
    def subjects(self) -> list[str]:
        """Enrolled subject ids, sorted."""
        return sorted(set(self.subjects_.tolist()))

    @property
    def index_kind(self) -> str:
        """The search method the next search will use."""
        if self.index != "auto":
            return self.index
        return "ivf" if len(self) >= APPROX_FROM else "exact"

    def __repr__(self) -> str:
        return (f"Gallery(model={self.model_name!r}, templates={len(self)}, "
                f"subjects={len(self.subjects)}, index={self.index!r})")

    # ------------------------------------------------------------------ enrol
    def enrol(self, items: Any, subject_ids: Sequence[Any] | Any, *,
              progress: bool = False, errors: str = "raise") -> pd.DataFrame:
        """Add templates: images (largest face of each) or precomputed embeddings.

        Parameters
        ----------
        items
            A sequence of image sources, or an ``(n, dim)`` float array of embeddings made
            by the same model.
        subject_ids
            One subject id per item (a subject may repeat: several templates), or a single
            id for all. Stored as strings.
        progress
            Show a progress bar while embedding images.
        errors
            For precomputed embeddings: ``"raise"`` (default) stops with a
            :class:`facelab.core.validation.InputError` naming the first row that has NaN or
            infinite values or is all zeros; ``"drop"`` leaves such rows out, with the
            reason in the returned table and a warning giving the count.

        Returns
        -------
        pandas.DataFrame
            One row per item: ``subject``, ``source``, ``enrolled`` and ``reason``. Items
            whose image fails or has no face are reported there and not enrolled.

        Raises
        ------
        facelab.core.validation.InputError
            A bad precomputed embedding with ``errors="raise"``.
        """
        emb = get_embedder(self.model)
        vecs = _as_embeddings(items, emb.dim)
        if vecs is not None:
            sources = [f"<embedding {len(self) + i}>" for i in range(len(vecs))]
            drops = Drops("enrolled embeddings")
            vecs, keep = check_embeddings(vecs, dim=emb.dim, name="enrolled embeddings",
                                          errors=errors, drops=drops)
            reasons = [""] * len(vecs)
            for r in drops.rows:
                reasons[int(r["where"].split()[-1])] = r["reason"]
            if len(drops):
                warnings.warn(drops.summary(), stacklevel=2)
        else:
            srcs = _as_sources(items)
            vecs, records = embed_images(srcs, model=emb, detector=self.detector,
                                         progress=progress)
            sources = [describe_source(s) for s in srcs]
            reasons = records["reason"].tolist()
        if isinstance(subject_ids, str) or not isinstance(subject_ids, Sequence | np.ndarray):
            subject_ids = [subject_ids] * len(vecs)
        subjects = [str(s) for s in subject_ids]
        if len(subjects) != len(vecs):
            raise ValueError(f"{len(vecs)} items but {len(subjects)} subject ids")
        ok = np.array([r == "" for r in reasons], dtype=bool)
        if ok.any():
            new = vecs[ok]
            if emb.metric == "cosine":
                new = l2_normalize(new)
            self.embeddings_ = np.ascontiguousarray(np.concatenate([self.embeddings_, new]))
            self.subjects_ = np.concatenate([self.subjects_,
                                             np.asarray(subjects, dtype=str)[ok]])
            self.sources_ = np.concatenate([self.sources_, np.asarray(sources, dtype=str)[ok]])
            self._ann, self._sq_norms = None, None
        return pd.DataFrame({"subject": subjects, "source": sources, "enrolled": ok,
                             "reason": reasons})

    # ------------------------------------------------------------------ search
    def _templates_topk(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kind = self.index_kind
        metric = self.embedder.metric
        if kind == "exact":
            if metric == "euclidean" and self._sq_norms is None:
                self._sq_norms = np.einsum("ij,ij->i", self.embeddings_, self.embeddings_)
            return exact_search(self.embeddings_, q, k, metric=metric, prepared=True,
                                gallery_sq_norms=self._sq_norms)
        return self.build_index().search(q, k)

    def build_index(self) -> FaissIndex | None:
        """Build the approximate index the next search will use, so that :meth:`save`
        stores it. Reused while the templates and the index kind stay the same.

        Returns
        -------
        FaissIndex or None
            The built index, or ``None`` when the gallery searches exactly.
        """
        kind = self.index_kind
        if kind == "exact":
            return None
        if self._ann is None or self._ann.kind != kind or self._ann.ntotal_ != len(self):
            self._ann = FaissIndex(self.embeddings_.shape[1], metric=self.embedder.metric,
                                   kind=kind, **self.index_options).build(self.embeddings_)
        return self._ann

    def search(self, probes: Any, k: int = 5, *, threshold: float | None = None,
               target_fmr: float | None = None, reference: Any = None,
               probe_ids: Sequence[Any] | None = None) -> pd.DataFrame:
        """The best ``k`` enrolled subjects for each probe.

        Parameters
        ----------
        probes
            Image sources (largest face of each) or an ``(m, dim)`` float array of
            embeddings.
        k
            Candidates (distinct subjects) per probe.
        threshold, target_fmr, reference
            How ``above_threshold`` is decided; see
            :func:`facelab.match.verification.resolve_threshold`
            (default: the model's published threshold). Candidates below it are still
            listed, flagged ``above_threshold=False``.
        probe_ids
            Names for the probes (default: the file name, or the row number).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`SEARCH_RESULT_COLUMNS`, one row per (probe, candidate), best
            first. A probe whose image fails or has no face gives one row with NaN score
            and the reason in ``error`` (drop those rows before computing FPIR/FNIR and
            report them as failures to acquire). ``df.attrs["threshold_how"]`` says how the
            threshold was set.

        Raises
        ------
        facelab.core.validation.InputError
            A probe embedding with NaN or infinite values or all zeros (named by its row).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        emb = get_embedder(self.model)
        t, how, _ = resolve_threshold(emb, threshold=threshold, target_fmr=target_fmr,
                                      reference=reference)
        vecs = _as_embeddings(probes, emb.dim)
        if vecs is not None:
            names: list[Any] = list(range(len(vecs)))
            vecs, _ = check_embeddings(vecs, dim=emb.dim, name="probe embeddings")
            errors = [""] * len(vecs)
        else:
            srcs = _as_sources(probes)
            vecs, records = embed_images(srcs, model=emb, detector=self.detector)
            names = [describe_source(s) for s in srcs]
            errors = records["reason"].tolist()
        if probe_ids is not None:
            if len(probe_ids) != len(vecs):
                raise ValueError(f"{len(vecs)} probes but {len(probe_ids)} probe ids")
            names = list(probe_ids)
        if len(self) == 0:
            raise ValueError("the gallery is empty: enrol templates first")
        ok = np.array([e == "" for e in errors], dtype=bool)
        per_subject = pd.Series(self.subjects_).value_counts().max()
        kt = int(min(len(self), k * per_subject))  # enough templates to hold k subjects
        scores, idx = (self._templates_topk(vecs[ok], kt) if ok.any()
                       else (np.zeros((0, kt)), np.zeros((0, kt), np.int64)))
        rows = []
        ok_pos = np.flatnonzero(ok)
        for j in range(len(vecs)):
            if not ok[j]:
                rows.append((names[j], pd.NA, None, np.nan, False, t, -1, "", errors[j]))
                continue
            r = int(np.searchsorted(ok_pos, j))
            seen: set[str] = set()
            for s, i in zip(scores[r], idx[r], strict=True):
                if i < 0:
                    continue
                subj = str(self.subjects_[i])
                if subj in seen:
                    continue
                seen.add(subj)
                rows.append((names[j], len(seen), subj, float(s), bool(s >= t), t, int(i),
                             str(self.sources_[i]), ""))
                if len(seen) == k:
                    break
        out = pd.DataFrame(rows, columns=list(SEARCH_RESULT_COLUMNS))
        out["candidate_rank"] = out["candidate_rank"].astype("Int64")
        out.attrs["threshold_how"] = how
        out.attrs["model"] = self.model_name
        out.attrs["index"] = self.index_kind
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the gallery to an ``.npz`` file (arrays and strings only; no pickle).

        A built approximate index (after a search, or :meth:`build_index`) is stored too,
        as faiss's own serialisation (a ``uint8`` array), with its parameters and the
        SHA-256 of the templates it indexes; :meth:`load` then searches without a rebuild.
        The file is written to a temporary name and renamed (atomic).

        Parameters
        ----------
        path
            Output file; the suffix is replaced by ``.npz`` when it is not one. Parent
            folders are created.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        import hashlib
        import json
        import tempfile

        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {}
        if self._ann is not None and self._ann.index_ is not None and \
                self._ann.ntotal_ == len(self):
            extra = {"ann_index": self._ann.to_bytes(),
                     "ann_params": np.array(json.dumps(self._ann.params())),
                     "ann_templates_sha256": np.array(hashlib.sha256(
                         np.ascontiguousarray(self.embeddings_).tobytes()).hexdigest())}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, embeddings=self.embeddings_,
                         subjects=np.asarray(self.subjects_, dtype=str),
                         sources=np.asarray(self.sources_, dtype=str),
                         model=np.array(self.model_name),
                         metric=np.array(self.embedder.metric),
                         format_version=np.array(FORMAT_VERSION), **extra)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, index: str = "auto", detector: Any = "yunet",
             index_options: dict | None = None) -> Gallery:
        """Read a gallery written by :meth:`save` (``np.load(..., allow_pickle=False)``).

        A stored approximate index is used as is (no rebuild) when ``index`` selects the
        same kind for this many templates, ``index_options`` is empty, and the templates'
        SHA-256 matches the one saved with it; otherwise the index is rebuilt on the first
        search.

        Parameters
        ----------
        path
            ``.npz`` file written by :meth:`save`.
        index, detector, index_options
            As for :class:`Gallery` (the model is the one stored in the file).

        Returns
        -------
        Gallery
            The enrolled gallery.

        Raises
        ------
        ValueError
            An unknown format version, or templates that do not fit the model.
        facelab.core.validation.InputError
            A stored template with NaN or infinite values or all zeros (named by row).
        """
        import hashlib
        import json

        with np.load(Path(path), allow_pickle=False) as data:
            version = int(data["format_version"])
            if version not in READABLE_VERSIONS:
                raise ValueError(f"{path}: gallery format {version}, expected one of "
                                 f"{READABLE_VERSIONS}")
            gallery = cls(str(data["model"]), index=index, detector=detector,
                          index_options=index_options)
            emb = data["embeddings"].astype(np.float32)
            if emb.shape[1] != gallery.embedder.dim:
                raise ValueError(f"{path}: {emb.shape[1]}-d templates do not fit model "
                                 f"{gallery.model_name!r}")
            check_embeddings(emb, dim=gallery.embedder.dim, name=f"{path}: templates")
            gallery.embeddings_ = np.ascontiguousarray(emb)
            gallery.subjects_ = data["subjects"].astype(str)
            gallery.sources_ = data["sources"].astype(str)
            if "ann_index" in data.files and not gallery.index_options:
                params = json.loads(str(data["ann_params"]))
                digest = hashlib.sha256(gallery.embeddings_.tobytes()).hexdigest()
                if params["kind"] == gallery.index_kind and \
                        str(data["ann_templates_sha256"]) == digest:
                    gallery._ann = FaissIndex.from_bytes(data["ann_index"], params)
        return gallery
