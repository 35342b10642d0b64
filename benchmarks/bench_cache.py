"""Warm reads: one npz file per image and stage against the columnar (Parquet) cache.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_cache.py \
        [--n 500] [--seed 0] [--out benchmarks/results/cache.md]

A seeded sample of ``n`` shared-data images (half CFD, half FairFace val, as in
``bench_extract.py``) goes once through ``facelab.extract(heads=("embedding",
"expression"))`` into a fresh :class:`~facelab.extraction.cache.ColumnarCache`; the very
same entries are then written to a :class:`~facelab.extraction.cache.FeatureCache` (today's
layout: one ``.npz`` per image and stage). Timed, each with a fresh cache object
(nothing held in memory):

(a) today's reads: ``FeatureCache.get`` of every key, one npz file each;
(b) ``ColumnarCache.get_many`` of the same keys, with the segments one extract run leaves
    (one per batch of 32 images);
(c) the same after ``compact()`` (one segment);
(d) / (e) the whole warm ``extract`` call (hashing every image file, reading the cache,
    assembling the table) with the npz cache and with the columnar cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cache.md"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    import numpy as np

    from benchmarks._common import best_of, load_lines, uptime
    from benchmarks.bench_extract import sample
    from facelab.extraction.cache import ColumnarCache, FeatureCache
    from facelab.extraction.pipeline import extract

    up_start = uptime()
    print(up_start, flush=True)
    manifest = sample(args.n, args.seed)
    heads = ("embedding", "expression")
    with tempfile.TemporaryDirectory() as tmp:
        col_root, npz_root = Path(tmp) / "columnar", Path(tmp) / "npz"
        t0 = time.perf_counter()
        extract(manifest, heads=heads, cache=col_root, progress=False)
        print(f"cold extract: {time.perf_counter() - t0:.0f} s", flush=True)
        col = ColumnarCache(col_root)
        keys = col.keys()
        entries = col.get_many(keys)
        npz = FeatureCache(npz_root)
        for k, rec in entries.items():
            npz.put(k, rec)
        n_seg = len(col.segments())
        size_npz = sum(p.stat().st_size for p in npz_root.rglob("*.npz"))


        def read_npz():
            c = FeatureCache(npz_root)
            got = [c.get(k) for k in keys]
            assert all(g is not None for g in got)

        def read_col():
            got = ColumnarCache(col_root).get_many(keys)
            assert len(got) == len(keys)

        t_npz = best_of(read_npz, args.repeat)
        t_col = best_of(read_col, args.repeat)
        ColumnarCache(col_root).compact()
        size_col = sum(p.stat().st_size for p in (col_root / "columnar").glob("*.parquet"))
        t_colc = best_of(read_col, args.repeat)
        # the entries read back are identical
        a, b = ColumnarCache(col_root).get_many(keys), {k: FeatureCache(npz_root).get(k)
                                                        for k in keys}
        for k in keys:
            for name in a[k]:
                np.testing.assert_array_equal(a[k][name], b[k][name])
        t_e_npz = best_of(lambda: extract(manifest, heads=heads, cache=FeatureCache(npz_root),
                                       progress=False), args.repeat)
        t_e_col = best_of(lambda: extract(manifest, heads=heads, cache=col_root,
                                          progress=False), args.repeat)
    up_end = uptime()
    print(up_end)
    n = len(manifest)
    rows = [
        ("(a) FeatureCache.get, one .npz per entry (today)", t_npz, t_npz),
        (f"(b) ColumnarCache.get_many, {n_seg} segments (as one extract run leaves them)",
         t_col, t_npz),
        ("(c) ColumnarCache.get_many after compact() (1 segment)", t_colc, t_npz),
        ("(d) warm extract(), npz cache (hash images + read + assemble)", t_e_npz, t_e_npz),
        ("(e) warm extract(), columnar cache", t_e_col, t_e_npz),
    ]
    for label, t, ref in rows:
        print(f"{label}: {t / n * 1e3:.3f} ms/image, {ref / t:.1f}x")
    lines = [
        "# Warm reads: one npz per entry vs the columnar (Parquet) cache",
        "",
        f"{n} images (seeded sample, seed {args.seed}: half CFD, half FairFace val), heads "
        f"detect + embedding + expression: {len(keys)} cache entries. Each timing is the best "
        f"of {args.repeat}, with a fresh cache object (nothing held in memory; the OS file "
        f"cache is warm for both). {os.cpu_count()} CPUs. Produced by "
        "`benchmarks/bench_cache.py`.",
        "",
        "| read | seconds | ms/image | speed-up |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {t:.3f} | {t / n * 1e3:.3f} | {ref / t:.1f}x |"
          for label, t, ref in rows],
        "",
        "Speed-ups of (b) and (c) are against (a), of (e) against (d). The entries read "
        "back from both layouts are identical (checked array by array). On disk: npz "
        f"{size_npz / 1e6:.1f} MB in {len(keys)} files, Parquet (zstd) {size_col / 1e6:.1f} MB "
        "in 1 file after compaction.",
        "",
        *load_lines(up_start, up_end),
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
