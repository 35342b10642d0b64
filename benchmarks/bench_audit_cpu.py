"""CPU every audit run pays, cold or forced warm (issue 16): three costs cut without moving
a number.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_audit_cpu.py \
        [--repeat 3] [--out benchmarks/results/audit_cpu.md]

(1) **Recording a value in a kernel**: the plain way imports scrapbook (which imports
    papermill and nbformat) in every notebook kernel to glue the first value; facelab
    now writes scrapbook's display bundle itself (:func:`facelab.report.record.glue_scrap`).
    Timed as a fresh interpreter that has imported ``facelab.report.record`` and
    IPython's display, with and without ``import scrapbook``.
(2) **Cohen's kappa bootstrap** of notebook 04: every registered expression model on
    FER2013, CK+48, JAFFE and CFD (the suite's images; predictions from the feature
    cache), :func:`facelab.studies.expression.pairwise_agreement` of the first two models
    (of one model's predictions against the labels when only one is registered): plain,
    ``sklearn.metrics.cohen_kappa_score`` on each of the 500 resamples per cell, against
    :func:`facelab.metrics.classification.kappa_resampler`. Tables must be identical.
(3) **Verification pairs and scores** of notebook 02's identity section (LFW, whole
    subjects, race groups, up to 1,000,000 within-group impostor pairs, at most 10
    genuine pairs per person, SFace embeddings from the cache): plain, the pair builders
    copying every file path and the pairs scored by ``Embeddings.similarity`` on gathered
    float32 rows in 200,000-pair chunks (the code before issue 16); facelab's way,
    :func:`facelab.studies.verification.verification_pairs` and
    :func:`~facelab.studies.verification.score_pairs`. Scores must be bit-identical.

Best of ``repeat`` each; the load (``uptime``) is printed at start and end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _import_seconds(code: str, repeat: int) -> float:
    prog = ("import time; t = time.perf_counter(); " + code
            + "; print(time.perf_counter() - t)")
    pre = "import IPython.display, numpy, pandas, facelab.report.record; "
    best = float("inf")
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", pre + prog], capture_output=True,
                             text=True, check=True)
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "audit_cpu.md"))
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from benchmarks._common import best_of, load_lines, uptime
    from facelab.metrics.classification import cohen_kappa
    from facelab.metrics.groups import disaggregate
    from facelab.studies import expression as E
    from facelab.studies import verification as V
    from facelab.studies.crossdata import cross_dataset_predictions
    from facelab.studies.matching import (
        UNLABELLED,
        extract_embeddings,
        group_labels,
        load_manifests,
    )

    up_start = uptime()
    print(up_start, flush=True)
    rows = []

    # (1) glue
    plain = _import_seconds("import scrapbook", args.repeat)
    ours = _import_seconds("from facelab.report.record import glue_scrap", args.repeat)
    rows.append(("recording values in a kernel (import, s)", "import scrapbook", plain,
                 "glue_scrap", ours, "same display bundle (tests/test_record_glue.py)"))
    print(rows[-1], flush=True)

    # (2) kappa
    present, _ = E.available_datasets(["fer2013", "ckplus48", "jaffe", "cfd"])
    models = E.expression_models(None)
    preds = cross_dataset_predictions(models, present, progress=False)
    names = list(models)
    if len(names) >= 2:
        a_name, b_name, data = names[0], names[1], preds
    else:  # one model: its predictions against the labels
        ev = preds[preds["status"] == "evaluated"]
        data = pd.concat([ev.assign(model="truth", pred=ev["true"]), ev])
        a_name, b_name = "truth", names[0]

    def plain_agreement(frame, *, a, b, by, subject=None, min_count=20, n_boot=500,
                        confidence=0.95, seed=0):
        by_cols = [by] if isinstance(by, str) else list(by)
        return disaggregate(frame[a].to_numpy(), frame[b].to_numpy(), metric=cohen_kappa,
                            sensitive_features=frame[by_cols].reset_index(drop=True),
                            name="Cohen's kappa", min_count=min_count, n_boot=n_boot,
                            confidence=confidence, seed=seed)

    fast_fn = E.agreement_by_group
    results = {}

    def kappa(fn):
        E.agreement_by_group = fn
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn warns on undefined resamples
                results[fn] = E.pairwise_agreement(data, a_name, b_name, min_count=20,
                                                   seed=0)
        finally:
            E.agreement_by_group = fast_fn

    plain_k = best_of(lambda: kappa(plain_agreement), args.repeat)
    fast_k = best_of(lambda: kappa(fast_fn), args.repeat)
    pd.testing.assert_frame_equal(results[fast_fn].by_group,
                                  results[plain_agreement].by_group, check_exact=True)
    n_items = int(results[fast_fn].overall["n"])
    rows.append((f"Cohen's kappa {a_name} vs {b_name}, {n_items:,} images, 500 resamples "
                 "per cell (s)", "sklearn per resample", plain_k, "kappa_resampler", fast_k,
                 "identical tables"))
    print(rows[-1], flush=True)

    # (3) verification pairs and scores
    manifest, _ = load_manifests(["lfw"], seed=0, by=["race"], whole_subjects=True)
    manifest = manifest[manifest["subject"].notna()]
    m = manifest.assign(group=group_labels(manifest, ["race"]))
    m = m[m["group"] != UNLABELLED]
    emb = extract_embeddings(m, "sface", progress=False)
    kw = dict(seed=0)
    def plain_pairs():  # the builders get each dataset's rows with their file paths
        with_path = m[["path"]]
        orig = V.impostor_pairs, V.genuine_pairs
        V.impostor_pairs = lambda part, **k: orig[0](part.join(with_path), **k)
        V.genuine_pairs = lambda part, **k: orig[1](part.join(with_path), **k)
        try:
            return our_pairs()
        finally:
            V.impostor_pairs, V.genuine_pairs = orig

    def our_pairs():
        return V.verification_pairs(m, by=["race"], max_impostors_within=1_000_000,
                                    max_genuine_per_subject=10, **kw)

    pairs = our_pairs()
    pa, pb = emb.positions(pairs["index_a"]), emb.positions(pairs["index_b"])
    keep = emb.ok[pa] & emb.ok[pb]
    pa, pb = pa[keep], pb[keep]

    def plain_scores():
        scores = np.empty(len(pa), dtype=np.float64)
        for start in range(0, len(pa), 200_000):
            sl = slice(start, start + 200_000)
            scores[sl] = emb.similarity(emb.matrix[pa[sl]], emb.matrix[pb[sl]])
        return scores

    def our_scores():
        emb.__dict__.pop("_rows64_cache", None)  # count the one conversion per embedder
        return emb.pair_scores(pa, pb).astype(np.float64)

    np.testing.assert_array_equal(plain_scores(), our_scores())
    plain_p = best_of(plain_pairs, args.repeat)
    our_p = best_of(our_pairs, args.repeat)
    pd.testing.assert_frame_equal(plain_pairs(), pairs, check_exact=True)
    rows.append((f"verification pairs, {len(pairs):,} LFW pairs (s)",
                 "file paths copied per pair", plain_p,
                 "verification_pairs", our_p, "identical pairs (tests/baselines)"))
    print(rows[-1], flush=True)
    plain_s = best_of(plain_scores, args.repeat)
    our_s = best_of(our_scores, args.repeat)
    rows.append((f"scoring {len(pa):,} pairs, sface (s)", "similarity per chunk", plain_s,
                 "pair_scores", our_s, "bit-identical scores"))
    print(rows[-1], flush=True)

    up_end = uptime()
    print(up_end, flush=True)
    lines = ["# CPU every audit run pays (issue 16)", "",
             f"`python {Path(__file__).relative_to(ROOT)}`; best of {args.repeat}. "
             "See the script's docstring for what each side does.", "",
             "| what | plain way | plain | facelab | facelab | ratio | check |",
             "|---|---|---:|---|---:|---:|---|"]
    for what, pname, p, oname, o, check in rows:
        ratio = f"**{p / o:.1f}x**" if o >= 1e-3 else f"{p:.2f} s saved"
        lines.append(f"| {what} | {pname} | {p:.3f} | {oname} | {o:.3f} | {ratio} | "
                     f"{check} |")
    lines += ["", *load_lines(up_start, up_end)]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
