"""Warm notebook 01: building the detection tables from cached detections, the per-image
pandas way against facelab's column-list way, and the import cost a warm run no longer pays.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_detection_tables.py \
        [--limit 1000] [--seed 0] [--repeat 3] [--out benchmarks/results/detection_tables.md]

Every registered detector runs once over a seeded, balanced sample of FairFace, UTKFace and
CFD (``limit`` images each, :data:`facelab.data.sampling.GROUP_AUDIT_SAMPLING`) through
:func:`facelab.extract` (``face_policy="all"``; cached, so a second run reads the cache).
Timed on the very same features, best of ``repeat``:

(a) one row per (image, detector) from the per-face features: the way notebook 01 had it (a
    pandas ``groupby`` per image, a boolean mask and ``iloc`` per block; each block copies
    the frame's ``attrs``), against :func:`facelab.studies.detection._largest_valid` (one
    pass over plain column lists);
(b) :func:`facelab.studies.detection.detector_agreement`: the IoU of the two largest boxes
    with :func:`facelab.perturb.redetect.box_iou` and two ``DataFrame.loc`` per image and
    pair, against one :func:`facelab.perturb.redetect.paired_box_iou` per pair;
(c) the imports of notebook 01 in a fresh interpreter, with and without the
    ``torch`` + ``torchvision.ops`` import that every warm run paid before (both in
    subprocesses, best of ``repeat``).

Both sides of (a) and (b) give identical tables (``assert_frame_equal``, exact).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOTEBOOK_IMPORTS = (
    "import pandas as pd; "
    "from facelab.report.datastatus import require_data; "
    "from facelab.viz.plots import plot_group_rates; "
    "from facelab.models.registry import default_model, list_models; "
    "from facelab.report.record import Recorder; "
    "from facelab.studies import detection as study; "
    "from facelab.viz.detection import plot_agreement; "
    "from facelab.viz.examples import error_gallery; "
    "from facelab.data.sampling import GROUP_AUDIT_SAMPLING, load_datasets; "
    "study.detector_settings(list(list_models('detector')['name']))")


def largest_valid_per_image(feats, index):
    """The previous implementation (a pandas groupby per image), kept as the plain side."""
    import numpy as np
    import pandas as pd

    from facelab.core.types import largest_box_index
    from facelab.perturb.redetect import valid_box
    from facelab.studies.detection import INVALID_BOX

    rows = []
    for label, block in feats.groupby("image_index", sort=False):
        ok = block[(block["status"] == "ok").fillna(False)]
        boxes = [(np.asarray(b, float), sc) for b, sc in zip(ok["box"], ok["score"],
                                                             strict=True) if valid_box(b)]
        first = block.iloc[0]
        reason = first["reason"]
        if len(ok) and not boxes:
            reason = INVALID_BOX
        big = (boxes[largest_box_index(np.stack([b for b, _ in boxes]))] if boxes
               else (None, np.nan))
        rows.append({"image": label, "found": bool(boxes), "fta": not boxes,
                     "reason": pd.NA if boxes else reason, "n_faces": len(boxes),
                     "score": float(big[1]), "box": big[0],
                     "image_width": first["image_width"], "image_height": first["image_height"]})
    out = pd.DataFrame(rows).set_index("image").reindex(index)
    return out.reset_index(drop=True)


def agreement_ious_per_image(records):
    """The previous IoU part of ``detector_agreement``: ``{(dataset, a, b): ious}``."""
    import numpy as np

    from facelab.perturb.redetect import box_iou

    out = {}
    for ds, block in records.groupby("dataset", sort=False):
        wide = block.pivot(index="image", columns="detector", values=["found", "box"])
        dets = list(dict.fromkeys(block["detector"]))
        for a, b in itertools.combinations(dets, 2):
            both_ran = wide["found"][[a, b]].dropna()
            fa = both_ran[a].astype(bool).to_numpy()
            fb = both_ran[b].astype(bool).to_numpy()
            both_idx = both_ran.index[fa & fb]
            out[(ds, a, b)] = np.array([box_iou(wide.loc[i, ("box", a)],
                                                wide.loc[i, ("box", b)])
                                        for i in both_idx], float)
    return out


def agreement_ious_paired(records):
    """Today's IoU part of ``detector_agreement`` (one paired_box_iou per pair)."""
    import numpy as np

    from facelab.perturb.redetect import paired_box_iou

    out = {}
    for ds, block in records.groupby("dataset", sort=False):
        wide = block.pivot(index="image", columns="detector", values=["found", "box"])
        boxes = wide["box"]
        dets = list(dict.fromkeys(block["detector"]))
        for a, b in itertools.combinations(dets, 2):
            both_ran = wide["found"][[a, b]].dropna()
            fa = both_ran[a].astype(bool).to_numpy()
            fb = both_ran[b].astype(bool).to_numpy()
            both_idx = both_ran.index[fa & fb]
            out[(ds, a, b)] = (paired_box_iou(np.stack(boxes[a].loc[both_idx].tolist()),
                                              np.stack(boxes[b].loc[both_idx].tolist()))
                               if len(both_idx) else np.array([], float))
    return out


def _import_seconds(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ},
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=1000, help="images per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "detection_tables.md"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    import numpy as np
    import pandas as pd

    from benchmarks._common import best_of, load_lines, uptime
    from facelab.data.sampling import GROUP_AUDIT_SAMPLING, load_datasets
    from facelab.extraction.pipeline import extract
    from facelab.models.registry import list_models
    from facelab.studies.detection import _largest_valid, detection_records

    up_start = uptime()
    print(up_start, flush=True)
    manifests, _ = load_datasets(["fairface", "utkface", "cfd"], limit=args.limit,
                                 seed=args.seed, **GROUP_AUDIT_SAMPLING)
    detectors = list(list_models("detector")["name"])
    t0 = time.perf_counter()
    records = detection_records(manifests, detectors, slow_limit=None, progress=False)
    first = time.perf_counter() - t0
    feats = {(name, det): extract(man, detector=det, heads=(), face_policy="all",
                                  progress=False)
             for name, man in manifests.items() for det in detectors}
    n_rows = sum(len(f) for f in feats.values())
    n_images = sum(len(m) for m in manifests.values()) * len(detectors)


    def tables(fn):
        return [fn(f, manifests[name].index) for (name, _), f in feats.items()]

    old_tables, new_tables = tables(largest_valid_per_image), tables(_largest_valid)
    for old, new in zip(old_tables, new_tables, strict=True):
        pd.testing.assert_frame_equal(old, new, check_exact=True)
    old_iou, new_iou = agreement_ious_per_image(records), agreement_ious_paired(records)
    assert old_iou.keys() == new_iou.keys()
    for key in old_iou:
        np.testing.assert_array_equal(old_iou[key], new_iou[key])
    n_pairs_images = sum(len(v) for v in new_iou.values())

    t_rows_old = best_of(lambda: tables(largest_valid_per_image), args.repeat)
    t_rows_new = best_of(lambda: tables(_largest_valid), args.repeat)
    t_iou_old = best_of(lambda: agreement_ious_per_image(records), args.repeat)
    t_iou_new = best_of(lambda: agreement_ious_paired(records), args.repeat)
    with_torch = NOTEBOOK_IMPORTS + "; import torch; import torchvision.ops"
    t_imp_old = min(_import_seconds(with_torch) for _ in range(args.repeat))
    t_imp_new = min(_import_seconds(NOTEBOOK_IMPORTS + "; import sys; "
                                    "assert 'torch' not in sys.modules")
                    for _ in range(args.repeat))
    up_end = uptime()
    print(up_end)
    rows = [
        (f"(a) records table, {n_images} (image, detector) rows from {n_rows} feature rows",
         t_rows_old, t_rows_new),
        (f"(b) agreement IoUs, {len(new_iou)} (dataset, pair) blocks, {n_pairs_images} images",
         t_iou_old, t_iou_new),
        ("(c) notebook 01 imports + detector_settings, fresh interpreter", t_imp_old, t_imp_new),
    ]
    for label, old, new in rows:
        print(f"{label}: {old:.3f} s -> {new:.3f} s, {old / new:.1f}x")
    lines = [
        "# Warm notebook 01: detection tables from cached detections",
        "",
        f"FairFace, UTKFace and CFD, up to {args.limit} images each (seeded balanced sample, "
        f"seed {args.seed}), {len(detectors)} detectors ({', '.join(detectors)}), all images "
        f"for every detector; first `detection_records` call (cold or warm cache) "
        f"{first:.1f} s. Best of {args.repeat}. {os.cpu_count()} CPUs. Produced by "
        "`benchmarks/bench_detection_tables.py`; both sides give identical tables "
        "(checked exactly).",
        "",
        "| step | per-image pandas / with torch (s) | facelab now (s) | speed-up |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {old:.3f} | {new:.3f} | {old / new:.1f}x |"
          for label, old, new in rows],
        "",
        *load_lines(up_start, up_end),
    ]
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
