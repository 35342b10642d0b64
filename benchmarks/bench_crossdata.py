"""Warm notebook 04 (and 06's comparison cell): the cross-dataset expression predictions
cut every crop and ran every model again on each rerun; they now come from the feature cache.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_crossdata.py \
        [--limit N] [--seed 0] [--repeat 2] [--out benchmarks/results/crossdata.md]

Every registered expression model (the fer model and any model trained by facelab found
under ``results/models``) on FER2013, CK+48, JAFFE and CFD (those present; ``--limit``
images each, default all: the suite's parameters), through
:func:`facelab.studies.crossdata.cross_dataset_predictions` (face detections come from
:func:`facelab.extract`'s cache on both sides):

(a) the plain way: ``cache=False``, every image decoded and cut, every model run;
(b) facelab's way, warm: crops (:func:`~facelab.studies.crossdata.evaluation_crops`) and
    model outputs (:func:`facelab.extraction.crops.predict_crops_cached`) read from the
    feature cache (one untimed call first fills it).

Best of ``repeat`` each; both sides give identical predictions (``assert_frame_equal``,
exact). The load (``uptime``) is printed at start and end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crossdata.md"))
    args = ap.parse_args()

    import pandas as pd

    from benchmarks._common import uptime
    from facelab.studies.crossdata import cross_dataset_predictions
    from facelab.studies.expression import available_datasets, expression_models

    up_start = uptime()
    present, _ = available_datasets(["fer2013", "ckplus48", "jaffe", "cfd"])
    models = expression_models(None)
    kw = dict(limit=args.limit, seed=args.seed, progress=False)

    def run(cache: bool) -> tuple[float, pd.DataFrame]:
        best, frame = float("inf"), None
        for _ in range(args.repeat):
            t = time.perf_counter()
            frame = cross_dataset_predictions(models, present, cache=cache, **kw)
            best = min(best, time.perf_counter() - t)
        return best, frame

    cross_dataset_predictions(models, present, **kw)  # fills the cache (untimed)
    plain_s, plain = run(False)
    warm_s, warm = run(True)
    pd.testing.assert_frame_equal(warm.drop(columns="box"), plain.drop(columns="box"))
    assert warm["box"].tolist() == plain["box"].tolist()
    up_end = uptime()
    lines = [
        "# Warm cross-dataset expression predictions (notebook 04, 06's comparison)",
        "",
        f"`python benchmarks/bench_crossdata.py --limit {args.limit} --seed {args.seed} "
        f"--repeat {args.repeat}`",
        "",
        f"- models: {', '.join(models)}; datasets: {', '.join(map(str, present))}; "
        f"{len(plain)} (model, image) rows",
        f"- load at start: {up_start}",
        f"- load at end: {up_end}",
        "",
        f"| way | seconds (best of {args.repeat}) |",
        "|---|---|",
        f"| plain: cut every crop, run every model (`cache=False`) | {plain_s:.2f} |",
        f"| facelab warm: crops and outputs from the feature cache | {warm_s:.2f} |",
        "",
        f"Ratio: **{plain_s / warm_s:.1f}x**; predictions identical (exact).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
