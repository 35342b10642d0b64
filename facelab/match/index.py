"""Nearest-neighbour search over embeddings: exact (batched float32 matrix products) and
approximate (faiss indexes) with one interface.

Scores follow facelab's similarity convention (higher = more alike):

* ``metric="cosine"``: rows are L2-normalised, score = inner product.
* ``metric="euclidean"``: score = ``1 - ||q - g||``.

:func:`exact_search` bounds memory by scoring ``query_batch`` queries against at most
``block_bytes`` of scores at a time and keeping a running top-k, so a 1M-vector gallery
needs no (queries x gallery) matrix. :class:`FaissIndex` wraps faiss's HNSW
(``IndexHNSWFlat``) and IVF (``IndexIVFFlat``) indexes for large galleries; see
``docs/models.md`` for which one ``index="auto"`` picks and the measured recall.
"""

from __future__ import annotations

import numpy as np

from facelab.models.embedders.base import l2_normalize

__all__ = ["METRICS", "exact_search", "FaissIndex", "recall_at_k", "synthetic_embeddings"]

METRICS = ("cosine", "euclidean")
_BAD_METRIC = "metric must be one of {known}; got {got!r}"


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(_BAD_METRIC.format(known=", ".join(METRICS), got=metric))
    return metric


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float32)))
    return l2_normalize(x) if metric == "cosine" else x


def _sort_topk(scores: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k per row of (scores, idx), best first; ties broken by the smaller index."""
    order = np.lexsort((idx, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)


def exact_search(gallery: np.ndarray, queries: np.ndarray, k: int, *, metric: str = "cosine",
                 query_batch: int = 100, block_bytes: int = 64 << 20,
                 gallery_sq_norms: np.ndarray | None = None, prepared: bool = False,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` gallery rows for each query.

    Parameters
    ----------
    gallery, queries
        ``(n, d)`` and ``(m, d)`` float arrays (normalised here for ``metric="cosine"``).
    k
        Neighbours per query (at most ``n``).
    metric
        ``"cosine"`` (score = inner product of L2-normalised rows) or ``"euclidean"``
        (score = ``1 - ||q - g||``); see :data:`METRICS`.
    query_batch
        Queries scored together (one matrix product per gallery block).
    block_bytes
        Upper bound on the size of one block of float32 scores, in bytes.
    gallery_sq_norms
        Precomputed squared row norms of the gallery (euclidean only), to save work.
    prepared
        The gallery is already a contiguous float32 array (normalised for cosine): use it
        as is instead of copying it.

    Returns
    -------
    scores, indices
        ``(m, k)`` float32 similarities (best first; ties broken by the smaller gallery
        row) and the ``int64`` gallery row of each; ``k`` is clipped to ``n``.

    Raises
    ------
    ValueError
        If ``metric`` is not one of :data:`METRICS`.
    """
    _check_metric(metric)
    g = gallery if prepared else _prepare(gallery, metric)
    q = _prepare(queries, metric)
    n, m = len(g), len(q)
    k = int(min(k, n))
    if k <= 0 or m == 0:
        return np.zeros((m, max(k, 0)), np.float32), np.zeros((m, max(k, 0)), np.int64)
    if metric == "euclidean" and gallery_sq_norms is None:
        gallery_sq_norms = np.einsum("ij,ij->i", g, g)
    out_s = np.empty((m, k), np.float32)
    out_i = np.empty((m, k), np.int64)
    for q0 in range(0, m, query_batch):
        qb = q[q0:q0 + query_batch]
        rows = max(k, int(block_bytes // (4 * len(qb))))
        best_s = np.full((len(qb), 0), -np.inf, np.float32)
        best_i = np.zeros((len(qb), 0), np.int64)
        for g0 in range(0, n, rows):
            s = qb @ g[g0:g0 + rows].T  # (b, r) float32
            if metric == "euclidean":
                # rank by -||q-g||^2 = 2 q.g - ||g||^2 (the query's own norm is constant)
                s = 2.0 * s - gallery_sq_norms[g0:g0 + rows][None, :]
            kk = min(k, s.shape[1])
            if kk < s.shape[1]:  # partition in place of a negated copy: the top kk at the end
                part = np.argpartition(s, s.shape[1] - kk, axis=1)[:, -kk:]
            else:
                part = np.broadcast_to(np.arange(s.shape[1]), s.shape)
            cand_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
            cand_i = np.concatenate([best_i, part + g0], axis=1)
            best_s, best_i = _sort_topk(cand_s, cand_i, k)
        if metric == "euclidean":
            qn = np.einsum("ij,ij->i", qb, qb)[:, None]
            best_s = (1.0 - np.sqrt(np.maximum(qn - best_s, 0.0))).astype(np.float32)
        out_s[q0:q0 + len(qb)] = best_s
        out_i[q0:q0 + len(qb)] = best_i
    return out_s, out_i


class FaissIndex:
    """Approximate nearest-neighbour index (faiss) with facelab's similarity scores.

    A built index is written with :meth:`to_bytes` and read back with :meth:`from_bytes`
    (faiss's own serialisation, no pickle): :class:`facelab.match.gallery.Gallery` saves
    it with the templates so a loaded gallery searches without rebuilding. The index
    types are faiss's (Johnson, Douze and Jegou, "Billion-scale similarity search with
    GPUs", 2019); HNSW is Malkov and Yashunin (2018).

    Parameters
    ----------
    dim
        Vector length.
    metric
        ``"cosine"`` (inner product on normalised rows) or ``"euclidean"``.
    kind
        ``"hnsw"`` (graph; no training, slow to build), ``"ivf"`` (inverted lists over
        k-means cells; trained on the data when first built) or ``"ivfpq"`` (the same
        cells holding 4-bit product-quantisation codes scanned with SIMD, faiss
        ``IndexIVFPQFastScan``, whose ``k_factor * k`` best candidates are re-ranked
        exactly on the stored vectors, ``IndexRefineFlat``; the fastest at recall@10 >=
        0.99 on 1M face-like vectors, see ``benchmarks/results/search.md``).
    hnsw_m, ef_construction, ef_search
        HNSW graph degree, build-time and search-time beam widths.
    nlist, nprobe
        IVF cells (default ``sqrt(n)``, at most ``n / 39``) and cells visited per query
        (default ``max(32, nlist // 8)``: recall@10 >= 0.99 on face-like synthetic
        galleries of 25k and 1M vectors, see ``benchmarks/results/search.md``).
    pq_m, k_factor
        ``"ivfpq"`` only: sub-quantisers (4 bits each; must divide ``dim``; default
        ``dim``, one 4-bit code per component: coarser codes (``dim / 2``, ``dim / 4``)
        lost too much recall on face-like data, ``benchmarks/results/ann.md``) and the
        re-ranking depth (``k_factor * k`` candidates scored exactly). Its ``nlist``
        defaults to ``4 * sqrt(n)`` and ``nprobe`` to ``max(32, nlist // 8)`` (measured at
        1M with 4096 cells, 512 visited, ``k_factor`` 64: recall@10 0.990).
    seed
        Seed of the IVF k-means (and of its training sample), so rebuilds are identical.

    Raises
    ------
    ValueError
        If ``kind`` is not one of :attr:`KINDS`, ``metric`` not one of :data:`METRICS`,
        or (``"ivfpq"``) ``pq_m`` does not divide ``dim``.
    """

    KINDS = ("hnsw", "ivf", "ivfpq")

    def __init__(self, dim: int, *, metric: str = "cosine", kind: str = "ivf",
                 hnsw_m: int = 32, ef_construction: int = 80, ef_search: int = 128,
                 nlist: int | None = None, nprobe: int | None = None,
                 pq_m: int | None = None, k_factor: int = 64, seed: int = 0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}; got {kind!r}")
        self.dim = int(dim)
        self.metric = _check_metric(metric)
        self.kind = kind
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        self.pq_m, self.k_factor = int(pq_m or dim), int(k_factor)
        if kind == "ivfpq" and self.dim % self.pq_m:
            raise ValueError(f"pq_m={pq_m} must divide the dimension {dim}")
        self.index_ = None
        self.ntotal_ = 0

    def build(self, vectors: np.ndarray) -> FaissIndex:
        """(Re)build the index on ``vectors``.

        IVF kinds train k-means on a seeded sample of at most ``100 * nlist`` rows; the
        number of cells is capped at ``n // 39`` (faiss wants at least 39 points per cell).

        Parameters
        ----------
        vectors
            ``(n, dim)`` float array (cast to float32; L2-normalised for cosine).

        Returns
        -------
        FaissIndex
            ``self``, built.

        Raises
        ------
        ValueError
            If the vectors' dimension is not ``dim``, or there is no vector.
        """
        import faiss

        x = _prepare(vectors, self.metric)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {x.shape[1]}, index expects {self.dim}")
        if len(x) == 0:
            raise ValueError("cannot build an index on 0 vectors (an empty gallery)")
        fmetric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, fmetric)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or int((4 if self.kind == "ivfpq" else 1) * np.sqrt(len(x)))
            nlist = max(1, min(nlist, len(x) // 39 or 1))  # faiss wants >= 39 points per cell
            if self.kind == "ivfpq":
                index = faiss.index_factory(self.dim, f"IVF{nlist},PQ{self.pq_m}x4fs,RFlat",
                                            fmetric)
                ivf = faiss.extract_index_ivf(index)
            else:
                quantizer = (faiss.IndexFlatIP(self.dim) if self.metric == "cosine"
                             else faiss.IndexFlatL2(self.dim))
                index = ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, fmetric)
            ivf.cp.seed = self.seed
            # train k-means on a seeded sample of at most 100 points per cell
            rng = np.random.default_rng(self.seed)
            n_train = min(len(x), 100 * nlist)
            train = x if n_train == len(x) else x[np.sort(rng.choice(len(x), n_train, False))]
            index.train(train)
        index.add(x)
        self.index_, self.ntotal_ = index, len(x)
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` rows for each query.

        Parameters
        ----------
        queries
            ``(m, dim)`` float array (cast to float32; L2-normalised for cosine).
        k
            Neighbours per query (clipped to the number of indexed vectors).

        Returns
        -------
        scores, indices
            ``(m, k)`` float32 similarities (best first; ``-inf`` where fewer than ``k``
            were found) and ``int64`` row indices (``-1`` there).

        Raises
        ------
        RuntimeError
            If the index has not been built.
        """
        if self.index_ is None:
            raise RuntimeError("build the index before searching")
        q = _prepare(queries, self.metric)
        k = int(min(k, self.ntotal_))
        if self.kind == "hnsw":
            self.index_.hnsw.efSearch = max(self.ef_search, k)
        else:
            import faiss

            ivf = faiss.extract_index_ivf(self.index_)
            nlist = ivf.nlist
            default = max(32, nlist // 8)
            nprobe = self.nprobe if self.nprobe is not None else default
            ivf.nprobe = min(nprobe, nlist)
            if self.kind == "ivfpq":
                faiss.downcast_index(self.index_).k_factor = float(self.k_factor)
        dist, idx = self.index_.search(q, k)
        if self.metric == "cosine":
            scores = dist
        else:
            scores = 1.0 - np.sqrt(np.maximum(dist, 0.0))
        scores = np.where(idx < 0, -np.inf, scores).astype(np.float32)
        return scores, idx.astype(np.int64)


    # -- persistence ------------------------------------------------------------------
    def params(self) -> dict:
        """The constructor arguments that rebuild this index.

        Returns
        -------
        dict
            JSON-serialisable keyword arguments of :class:`FaissIndex`.
        """
        return {"dim": self.dim, "metric": self.metric, "kind": self.kind,
                "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search, "nlist": self.nlist, "nprobe": self.nprobe,
                "pq_m": self.pq_m, "k_factor": self.k_factor, "seed": self.seed}

    def to_bytes(self) -> np.ndarray:
        """The built index as bytes (``faiss.serialize_index``).

        Returns
        -------
        numpy.ndarray
            ``(nbytes,)`` ``uint8`` array.

        Raises
        ------
        RuntimeError
            If the index has not been built.
        """
        import faiss

        if self.index_ is None:
            raise RuntimeError("build the index before saving it")
        return faiss.serialize_index(self.index_)

    @classmethod
    def from_bytes(cls, data: np.ndarray, params: dict) -> FaissIndex:
        """An index read back from :meth:`to_bytes` with its :meth:`params`; no rebuild.

        Parameters
        ----------
        data
            ``uint8`` array written by :meth:`to_bytes`.
        params
            The :meth:`params` of the saved index.

        Returns
        -------
        FaissIndex
            The index, ready to search.

        Raises
        ------
        ValueError
            If the stored index does not match ``params`` (dimension or kind).
        """
        import faiss

        self = cls(**params)
        index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        is_hnsw = isinstance(index, faiss.IndexHNSW)
        if index.d != self.dim or is_hnsw != (self.kind == "hnsw"):
            raise ValueError(f"stored faiss index ({type(index).__name__}, d={index.d}) "
                             f"does not match {params}")
        self.index_, self.ntotal_ = index, int(index.ntotal)
        return self


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean share of each query's exact top-k rows that the approximate search returned.

    Parameters
    ----------
    approx_idx
        ``(m, k')`` integer rows returned by the approximate search (``-1`` = none).
    exact_idx
        ``(m, k)`` integer rows of the exact top-k (:func:`exact_search`).

    Returns
    -------
    float
        Recall@k in [0, 1]: hits over ``k * m``.

    Raises
    ------
    ValueError
        When there is no query or ``k`` is 0 (recall is undefined), or the two arrays have
        different numbers of queries.
    """
    approx_idx, exact_idx = np.atleast_2d(approx_idx), np.atleast_2d(exact_idx)
    k = exact_idx.shape[1]
    if len(exact_idx) == 0 or k == 0:
        raise ValueError(f"recall@k needs at least one query and k >= 1, got exact_idx of "
                         f"shape {exact_idx.shape}")
    if len(approx_idx) != len(exact_idx):
        raise ValueError(f"approx_idx has {len(approx_idx)} queries, exact_idx "
                         f"{len(exact_idx)}")
    hits = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approx_idx, exact_idx,
                                                               strict=True)]
    return float(np.sum(hits) / (k * len(exact_idx)))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_embeddings(n: int, n_queries: int, *, kind: str = "clustered", dim: int = 128,
                         templates_per_id: int = 4, noise: float = 0.5, seed: int = 0,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded synthetic L2-normalised embeddings for search tests and benchmarks.

    ``kind="clustered"`` (face-like): identity centres drawn from a Gaussian whose i-th
    component has variance ``1/i`` (a power-law spectrum: most spread in a few dozen
    directions, as in real face embeddings), ``templates_per_id`` gallery vectors around
    each centre and probes that are new samples of enrolled identities.
    ``kind="uniform"``: i.i.d. uniform on the sphere (no structure; the worst case for
    approximate search), probes uniform too (identities are then meaningless: -1).

    Parameters
    ----------
    n
        Gallery vectors.
    n_queries
        Probe vectors.
    kind
        ``"clustered"`` or ``"uniform"``.
    dim
        Vector length.
    templates_per_id
        Gallery vectors per identity (``"clustered"``).
    noise
        Within-identity spread: Gaussian noise of standard deviation
        ``noise / sqrt(dim)`` per component, added before normalising (``"clustered"``).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    gallery, gallery_ids, queries, query_ids
        ``(n, dim)`` and ``(n_queries, dim)`` float32, with integer identity labels.

    Raises
    ------
    ValueError
        If ``kind`` is neither ``"clustered"`` nor ``"uniform"``.
    """
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return (_unit(rng.standard_normal((n, dim), dtype=np.float32)), np.full(n, -1),
                _unit(rng.standard_normal((n_queries, dim), dtype=np.float32)),
                np.full(n_queries, -1))
    if kind != "clustered":
        raise ValueError(f"kind must be 'clustered' or 'uniform'; got {kind!r}")
    scale = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    n_ids = -(-n // templates_per_id)
    centres = _unit(rng.standard_normal((n_ids, dim), dtype=np.float32) * scale)
    within = np.float32(noise / np.sqrt(dim))
    ids = np.repeat(np.arange(n_ids), templates_per_id)[:n]
    gallery = np.empty((n, dim), np.float32)
    for s in range(0, n, 200_000):  # bounded memory for the noise draws
        e = min(n, s + 200_000)
        gallery[s:e] = _unit(centres[ids[s:e]]
                             + within * rng.standard_normal((e - s, dim), dtype=np.float32))
    qid = rng.integers(0, n_ids, n_queries)
    queries = _unit(centres[qid] + within * rng.standard_normal((n_queries, dim),
                                                                dtype=np.float32))
    return gallery, ids, queries, qid
