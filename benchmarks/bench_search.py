"""1:N search speed: exact (batched and single queries) vs the approximate faiss index.

Synthetic, seeded, L2-normalised 128-d float32 galleries (no face data needed):

* ``clustered`` (face-like): identities whose centres come from a Gaussian with a
  power-law spectrum (variance of component i proportional to 1/i, so most of the spread
  lies in a few dozen directions, as in real face embeddings), 4 templates per identity
  around each centre. Probes are new samples of enrolled identities (mated searches).
* ``uniform``: i.i.d. uniform on the sphere, probes uniform too. This has no structure at
  all, the worst case for any approximate index; reported to show that limit.

For each gallery size: exact batched (100 queries per matrix product), exact single
queries, and the approximate index (build time, per-query time in batches of 100, and
recall@k against exact search). Writes ``benchmarks/results/search.md`` and the same table
between the ``bench-search`` markers of ``docs/models.md``.

Usage::

    .venv/bin/python benchmarks/bench_search.py [--sizes 25000 1000000] [--k 10]
        [--queries 1000] [--index ivf] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.match.index import FaissIndex, exact_search, recall_at_k, synthetic_embeddings  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "search.md"
DOC = ROOT / "docs" / "models.md"
MARK_BEGIN, MARK_END = "<!-- bench-search:begin -->", "<!-- bench-search:end -->"
DIM = 128
TEMPLATES_PER_ID = 4


def _time(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def bench_one(n: int, kind: str, *, k: int, n_queries: int, n_single: int, index: str,
              seed: int, index_options: dict, search_levels: list[int]) -> list[dict]:
    """Exact vs approximate on one synthetic gallery; one row per search level
    (``nprobe`` for IVF, ``efSearch`` for HNSW)."""
    gallery, _, queries, _ = synthetic_embeddings(n, n_queries, kind=kind, seed=seed,
                                                  templates_per_id=TEMPLATES_PER_ID)
    t_batch, (_, exact_idx) = _time(exact_search, gallery, queries, k, prepared=True,
                                    query_batch=100)
    t_single = 0.0
    for q in queries[:n_single]:
        dt, _ = _time(exact_search, gallery, q[None], k, prepared=True)
        t_single += dt
    ann = FaissIndex(DIM, kind=index, seed=seed, **index_options)
    t_build, _ = _time(ann.build, gallery)
    batch_ms, single_ms = t_batch / n_queries * 1e3, t_single / n_single * 1e3
    rows = []
    for level in search_levels:
        if index == "hnsw":
            ann.ef_search = level
        else:
            ann.nprobe = level
        t_ann = 0.0
        approx = []
        for s in range(0, n_queries, 100):
            dt, (_, idx) = _time(ann.search, queries[s:s + 100], k)
            t_ann += dt
            approx.append(idx)
        recall = recall_at_k(np.concatenate(approx), exact_idx)
        ann_ms = t_ann / n_queries * 1e3
        row = {"gallery": n, "data": kind, "k": k, "queries": n_queries,
               "exact_batched_ms": batch_ms, "exact_single_ms": single_ms,
               "exact_qps": 1e3 / batch_ms, "index": index,
               "params": ", ".join(f"{a}={b}" for a, b in ann_params(ann).items()),
               "build_s": t_build, "ann_ms": ann_ms, "ann_qps": 1e3 / ann_ms,
               "speedup_vs_batched": batch_ms / ann_ms,
               "speedup_vs_single": single_ms / ann_ms, "recall": recall}
        print(row, flush=True)
        rows.append(row)
    return rows


def ann_params(ann: FaissIndex) -> dict:
    if ann.kind == "hnsw":
        return {"M": ann.hnsw_m, "efC": ann.ef_construction, "efS": ann.ef_search}
    return {"nlist": ann.index_.nlist, "nprobe": ann.nprobe}


def markdown(df: pd.DataFrame, seconds: float) -> str:
    lines = [
        f"Synthetic seeded L2-normalised {DIM}-d float32 galleries; `clustered` = face-like "
        f"(power-law spectrum, {TEMPLATES_PER_ID} templates per identity, mated probes), "
        "`uniform` = uniform on the sphere (no structure: the worst case for any approximate "
        "index). Times are wall-clock per query on this machine "
        f"({platform.machine()}, 2 cores; absolute times vary with machine load, the ratios "
        "measured in the same run are the robust numbers). Exact "
        "batched = 100 queries per float32 matrix product; single = one query at a time. "
        "Recall@k = share of the exact top-k returned by the index.",
        "",
        "| gallery | data | exact batched ms/query (queries/s) | exact single ms/query | "
        "index (params) | build s | index ms/query | speed-up vs batched / vs single | "
        "recall@k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.gallery:,} | {r.data} | {r.exact_batched_ms:.3f} ({r.exact_qps:,.0f}) | "
            f"{r.exact_single_ms:.2f} | {r.index} ({r.params}) | {r.build_s:.1f} | "
            f"{r.ann_ms:.3f} | {r.speedup_vs_batched:.1f}x / {r.speedup_vs_single:.1f}x | "
            f"{r.recall:.4f} (k={r.k}) |")
    lines += ["", f"`benchmarks/bench_search.py`, total {seconds:.0f} s."]
    return "\n".join(lines)


def write_between(path: Path, table: str) -> None:
    if not path.exists():
        return
    text = path.read_text()
    if MARK_BEGIN not in text:
        return
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(f"{head}{MARK_BEGIN}\n{table}\n{MARK_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[25_000, 1_000_000])
    ap.add_argument("--data", nargs="+", default=["clustered", "uniform"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=20)
    ap.add_argument("--index", default="ivf", choices=["ivf", "hnsw"])
    ap.add_argument("--levels", type=int, nargs="+", default=[32, 64],
                    help="nprobe (IVF) or efSearch (HNSW) values to measure")
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    opts = {"nlist": args.nlist} if args.nlist else {}
    t0 = time.perf_counter()
    rows = [row for n in args.sizes for kind in args.data
            for row in bench_one(n, kind, k=args.k, n_queries=args.queries,
                                 n_single=args.single, index=args.index, seed=args.seed,
                                 index_options=opts, search_levels=args.levels)]
    table = markdown(pd.DataFrame(rows), time.perf_counter() - t0)
    print(table)
    if not args.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text("# Search benchmark\n\n" + table + "\n")
        write_between(DOC, table)
    return 0


if __name__ == "__main__":
    main()  # no sys.exit: `python -m benchmarks` runs scripts in one process
