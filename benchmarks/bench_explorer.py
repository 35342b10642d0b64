"""The operating-point explorer's update against recomputing the rates the plain way.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_explorer.py \
        [--limit none] [--n-probes 2000] [--models sface] [--out benchmarks/results/explorer.md]

On the full shared data (the full-run parameters of ``02_verification_demographics`` and
``03_one_to_many_search``), features from the cache, pairs scored and searches run once,
then for 20 thresholds spread over the score range:

02 (1:1): (a) the notebook's own functions at a new threshold
    (``fmr_by_group`` + ``fnmr_overall``, subject bootstrap with ``--n-boot`` resamples);
    (b) a pandas groupby of ``score >= t`` per dataset, kind and group with a Wilson
    interval per cell (the plain way without the bootstrap);
    (c) ``facelab.viz.explorer.RateCells.at`` (sorted scores, one binary search per cell);
    (d) one full widget update: (c) plus the figure rendered to PNG and the table to HTML.
    Also the target-FMR slider's threshold: ``threshold_at_fmr`` against
    ``threshold_for_fmr`` on the reference impostor scores.
03 (1:N): (a) ``search_outcomes`` + per-group ``composition`` at a new threshold;
    (c) ``RateCells.at``; (d) a full widget update.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _mean_time(fn, args_list) -> float:
    t0 = time.perf_counter()
    for a in args_list:
        fn(a)
    return (time.perf_counter() - t0) / len(args_list)


def _plain_groupby(scored: pd.DataFrame, t: float) -> pd.DataFrame:
    from facelab.metrics.intervals import binomial_ci
    from facelab.studies.verification import GENUINE

    err = np.where(scored["kind"] == GENUINE, scored["score"] < t, scored["score"] >= t)
    g = scored.assign(err=err).groupby(["source", "kind", "group_a"])["err"].agg(
        ["sum", "size"])
    ci = [binomial_ci(int(k), int(n)) for k, n in zip(g["sum"], g["size"], strict=True)]
    return g.assign(ci_low=[c[0] for c in ci], ci_high=[c[1] for c in ci])


def bench_verification(args, models) -> list[dict]:
    from facelab.metrics.biometric import threshold_at_fmr
    from facelab.studies import verification as V
    from facelab.studies.matching import extract_embeddings, load_manifests
    from facelab.viz.explorer import threshold_for_fmr, verification_explorer

    by = ["race", "gender"]
    manifest, _ = load_manifests(["celeba", "fairface", "cfd"], limit=args.limit, seed=0, by=by)
    pairs = V.verification_pairs(manifest, by=by, n_impostor_unlabelled=200_000, seed=0)
    rows = []
    for m in models:
        emb = extract_embeddings(manifest, m, progress=False)
        scored, _ = V.score_pairs(pairs, emb)
        thr = V.global_threshold(scored, target_fmr=args.target_fmr,
                                 reference_group="White male")
        t0 = time.perf_counter()
        ex = verification_explorer({m: scored}, {m: thr}, {m: V.default_threshold(m, scored)},
                                   target_fmr=args.target_fmr, reference_group="White male")
        build = time.perf_counter() - t0
        lo, hi = ex.cells[m].score_range
        ts = list(np.linspace(lo, hi, 22)[1:-1])
        plain_nb = _mean_time(lambda t, s=scored: (V.fmr_by_group(s, t, n_boot=args.n_boot),
                                                   V.fnmr_overall(s, t, n_boot=args.n_boot)),
                              ts[:: max(1, len(ts) // args.plain_repeats)])
        plain_gb = _mean_time(lambda t, s=scored: _plain_groupby(s, t), ts)
        fast = _mean_time(lambda t, m=m, ex=ex: ex.table(m, t), ts)
        ex.widget()
        ex.timings.clear()
        for t in ts[::4]:
            ex.set_threshold(float(t))
        update = float(np.mean([tm["total"] for tm in ex.timings]))
        update_max = float(np.max([tm["total"] for tm in ex.timings]))
        ref = ex.reference[m][0]
        targets = [10 * args.target_fmr, 3 * args.target_fmr, args.target_fmr]
        slow_t = _mean_time(lambda f, r=ref: threshold_at_fmr(r, f), targets)
        fast_t = _mean_time(lambda f, r=ref: threshold_for_fmr(r, f), targets)
        n_pairs, n_cells = len(scored), len(ex.cells[m])
        rows += [
            {"audit": "02", "model": m, "method": f"(a) fmr_by_group + fnmr_overall "
             f"(bootstrap {args.n_boot})", "seconds": plain_nb, "ratio": 1.0},
            {"audit": "02", "model": m, "method": "(b) pandas groupby + Wilson per cell",
             "seconds": plain_gb, "ratio": plain_nb / plain_gb},
            {"audit": "02", "model": m, "method": "(c) explorer RateCells.at",
             "seconds": fast, "ratio": plain_nb / fast},
            {"audit": "02", "model": m, "method": f"(d) explorer widget update (c + HTML bars;"
             f" max {update_max:.2f} s)", "seconds": update, "ratio": plain_nb / update},
            {"audit": "02", "model": m, "method": "target FMR -> threshold: threshold_at_fmr",
             "seconds": slow_t, "ratio": 1.0},
            {"audit": "02", "model": m, "method": "target FMR -> threshold: threshold_for_fmr",
             "seconds": fast_t, "ratio": slow_t / fast_t},
        ]
        print(f"02 {m}: {n_pairs:,} scored pairs, {n_cells} cells, {ref.size:,} reference "
              f"impostor scores; cells built in {build:.2f} s", flush=True)
        rows[-1]["note"] = (f"{n_pairs:,} pairs, {n_cells} cells, {ref.size:,} reference "
                            f"scores, build {build:.2f} s")
    return rows


def bench_search(args, models) -> list[dict]:
    from facelab.studies import search as S
    from facelab.studies.matching import extract_embeddings
    from facelab.viz.explorer import search_explorer

    manifest, _ = S.search_sets(limit=args.limit, n_probes=args.n_probes, by=["race"], seed=0)
    rows = []
    probes = manifest[manifest["role"] == "probe"]
    for m in models:
        emb = extract_embeddings(manifest, m, progress=False)
        run = S.run_search(manifest, emb, k=5)
        calib = S.calibration_scores(manifest, emb, n_pairs=1_000_000, seed=0)
        choices = S.operating_thresholds(calib, {"model default": "default",
                                                 "permissive": 1e-3, "strict": 1e-5}, m)
        t0 = time.perf_counter()
        ex = search_explorer({m: run}, {m: choices})
        build = time.perf_counter() - t0
        lo, hi = ex.cells[m].score_range
        ts = list(np.linspace(max(lo, -1.0), hi, 22)[1:-1])

        def plain(t, run=run):
            from facelab.metrics.biometric import ThresholdChoice

            choice = ThresholdChoice(threshold=float(t), target_fmr=np.nan, achieved_fmr=np.nan,
                                     n_impostor=0, n_false_matches=0, how="bench")
            S.search_outcomes(run, {"t": choice})
            S.composition(S.false_match_table(run, probes, choice))

        plain_t = _mean_time(plain, ts)
        fast = _mean_time(lambda t, m=m, ex=ex: ex.table(m, t), ts)
        ex.widget()
        ex.timings.clear()
        for t in ts[::4]:
            ex.set_threshold(float(t))
        update = float(np.mean([tm["total"] for tm in ex.timings]))
        update_max = float(np.max([tm["total"] for tm in ex.timings]))
        n_res = len(run.results)
        rows += [
            {"audit": "03", "model": m, "method": "(a) search_outcomes + composition",
             "seconds": plain_t, "ratio": 1.0},
            {"audit": "03", "model": m, "method": "(c) explorer RateCells.at", "seconds": fast,
             "ratio": plain_t / fast},
            {"audit": "03", "model": m, "method": f"(d) explorer widget update (c + HTML bars;"
             f" max {update_max:.2f} s)", "seconds": update, "ratio": plain_t / update,
             "note": f"{len(run.probe_ids):,} searches x {len(run.gallery_ids):,} enrolled, "
                     f"{n_res:,} candidates, build {build:.2f} s"},
        ]
        print(f"03 {m}: {len(run.probe_ids):,} searches against {len(run.gallery_ids):,}; "
              f"cells built in {build:.2f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", default="none")
    ap.add_argument("--n-probes", type=int, default=2000)
    ap.add_argument("--models", default="sface")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--target-fmr", type=float, default=1e-3)
    ap.add_argument("--plain-repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "explorer.md"))
    args = ap.parse_args()
    args.limit = None if args.limit.lower() == "none" else int(args.limit)
    warnings.filterwarnings("ignore", category=UserWarning)
    models = [m for m in args.models.split(",") if m]
    load_start = os.getloadavg()
    print(f"load average at start: {load_start}", flush=True)
    rows = bench_verification(args, models) + bench_search(args, models)
    load_end = os.getloadavg()
    table = pd.DataFrame(rows)
    table["note"] = table.get("note", pd.Series("", index=table.index)).fillna("")
    print(table.to_string(index=False))
    lines = [
        "# Operating-point explorer: one update against recomputing the rates",
        "",
        f"Shared data, limit {args.limit} per dataset (02: CelebA + FairFace val + CFD; 03: "
        f"FairFace val + UTKFace + CFD enrolled, {args.n_probes} non-mated probes from "
        "FairFace train, CelebA mated probes), features from the cache; each time is the mean "
        "over thresholds spread across the score range. Wall-clock, one process, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs. Produced by "
        "`benchmarks/bench_explorer.py`.",
        "",
        "| audit | model | method | ms per update | speed-up vs (a) | note |",
        "|---|---|---|---:|---:|---|",
        *[f"| {r.audit} | {r.model} | {r.method} | {1000 * r.seconds:.3g} | {r.ratio:.0f}x | "
          f"{r.note} |" for r in table.itertuples()],
        "",
        "(a) is what a notebook user does without the explorer: rerun the notebook's rate "
        "functions at the new threshold. (b) drops the bootstrap. (d) is what a slider move "
        "costs in JupyterLab (the browser's drawing not included).",
        "",
        f"Load average (1, 5, 15 min) at start: {', '.join(f'{v:.1f}' for v in load_start)}; "
        f"at end: {', '.join(f'{v:.1f}' for v in load_end)} on {os.cpu_count()} CPUs shared "
        "with other jobs: absolute times grow with the load; the ratios matter.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
