"""1:N at scale: faiss index families swept against batched exact search, side by side.

Usage::

    .venv/bin/python benchmarks/bench_ann.py [--n 1000000] [--queries 1000] [--k 10]
        [--specs "IVF4096,Flat" "IVF4096,PQ64x4fs,RFlat" "HNSW32"] [--out FILE]

Face-like synthetic gallery (:func:`facelab.match.index.synthetic_embeddings`, ``clustered``: 4
templates per identity, power-law spectrum, mated probes), L2-normalised 128-d float32,
inner product. Exact search is :func:`facelab.match.index.exact_search` with 100 queries per
matrix product; every index (built with ``faiss.index_factory``; IVF k-means trained on a
seeded sample of 64 points per cell) is searched with the same batches of 100 queries,
sweeping its search-time knob (``nprobe`` for IVF, ``efSearch`` for HNSW, and the
re-ranking depth ``k_factor`` for ``RFlat`` refinement). Reported: build seconds,
serialized size (its memory footprint), ms/query, speed-up over exact, recall@k against
exact. Exact search runs before and after the indexes; their mean is the reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SPECS = ("IVF4096,Flat", "IVF4096,SQ8,RFlat", "IVF4096,PQ64x4fs,RFlat",
                 "IVF4096,PQ128x4fs,RFlat", "OPQ64,IVF4096,PQ64x4fs,RFlat", "HNSW32")


def _timed_search(index, q: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    index.search(q[:100], k)  # warm-up
    t0 = time.perf_counter()
    out = [index.search(q[i:i + 100], k)[1] for i in range(0, len(q), 100)]
    return np.concatenate(out), (time.perf_counter() - t0) / len(q) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--specs", nargs="+", default=list(DEFAULT_SPECS))
    ap.add_argument("--nprobe", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--k-factor", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ann.md"))
    args = ap.parse_args()

    import faiss

    from benchmarks._common import load_lines, uptime
    from facelab.match.index import exact_search, recall_at_k, synthetic_embeddings

    up_start = uptime()
    print(up_start, flush=True)
    t_all = time.perf_counter()
    g, _, q, _ = synthetic_embeddings(args.n, args.queries, seed=args.seed)

    def exact() -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        idx = np.concatenate([exact_search(g, q[i:i + 100], args.k, prepared=True)[1]
                              for i in range(0, len(q), 100)])
        return idx, (time.perf_counter() - t0) / len(q) * 1e3

    truth, t_exact0 = exact()
    print(f"exact batched: {t_exact0:.3f} ms/query", flush=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    for spec in args.specs:
        t0 = time.perf_counter()
        index = faiss.index_factory(g.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError:
            ivf = None
        if ivf is not None:
            ivf.cp.seed = args.seed
            n_train = min(len(g), 64 * ivf.nlist)
            index.train(g[np.sort(rng.choice(len(g), n_train, replace=False))])
        index.add(g)
        build = time.perf_counter() - t0
        mem = faiss.serialize_index(index).nbytes / 1e6
        print(f"{spec}: build {build:.0f} s, {mem:.0f} MB", flush=True)
        refine = faiss.downcast_index(index) if spec.endswith("RFlat") else None
        if ivf is not None:
            knobs = [(f"nprobe={p}", {"nprobe": p, "k_factor": kf})
                     for p in args.nprobe for kf in (args.k_factor if refine else [None])]
        else:
            knobs = [(f"efSearch={e}", {"ef": e}) for e in args.ef_search]
        for label, knob in knobs:
            if ivf is not None:
                ivf.nprobe = knob["nprobe"]
                if refine is not None:
                    refine.k_factor = float(knob["k_factor"])
                    label += f", k_factor={knob['k_factor']}"
            else:
                faiss.downcast_index(index).hnsw.efSearch = knob["ef"]
            found, ms = _timed_search(index, q, args.k)
            rec = recall_at_k(found, truth)
            rows.append({"index": spec, "search": label, "build s": build, "MB": mem,
                         "ms/query": ms, "recall": rec})
            print(f"  {label}: {ms:.3f} ms/query, recall@{args.k} {rec:.4f}", flush=True)
        del index
    _, t_exact1 = exact()
    t_exact = (t_exact0 + t_exact1) / 2
    up_end = uptime()
    print(up_end)
    best = [r for r in rows if r["recall"] >= 0.99]
    best = min(best, key=lambda r: r["ms/query"]) if best else None
    lines = [
        f"# 1:N search at {args.n:,} x 128-d: faiss indexes vs batched exact search",
        "",
        f"Synthetic face-like gallery (`clustered`, seed {args.seed}), {args.queries} mated "
        f"probes in batches of 100, k={args.k}, inner product on L2-normalised float32. "
        f"Exact batched: {t_exact0:.3f} ms/query before the indexes, {t_exact1:.3f} after "
        f"(reference: the mean, {t_exact:.3f}); exact float32 gallery "
        f"{g.nbytes / 1e6:.0f} MB. {os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')} (BLAS and faiss threads). Produced by "
        f"`benchmarks/bench_ann.py {' '.join(sys.argv[1:])}`, "
        f"{time.perf_counter() - t_all:.0f} s in all.",
        "",
        "| index (faiss factory string) | search | build s | memory MB | ms/query | "
        "speed-up vs exact batched | recall@10 |",
        "|---|---|---:|---:|---:|---:|---:|",
        *[f"| `{r['index']}` | {r['search']} | {r['build s']:.0f} | {r['MB']:.0f} | "
          f"{r['ms/query']:.3f} | {t_exact / r['ms/query']:.1f}x | {r['recall']:.4f} |"
          for r in rows],
        "",
        ("Fastest setting at recall@10 >= 0.99: " + (
            f"`{best['index']}` ({best['search']}): {best['ms/query']:.3f} ms/query, "
            f"{t_exact / best['ms/query']:.1f}x exact, recall {best['recall']:.4f}, "
            f"{best['MB']:.0f} MB." if best else "none of the settings tried.")),
        "",
        "Memory is the serialized index (faiss `serialize_index`), which is what a saved "
        "gallery stores; `RFlat` keeps the full float32 vectors for exact re-ranking.",
        "",
        *load_lines(up_start, up_end),
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
