"""Detection rate and speed of every registered detector on CFD and FairFace samples.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_detection.py \
        [--n-cfd 300] [--n-fairface 300] [--seed 0] [--out results/detection_bench.csv]

"Detected" = at least one face at the detector's default threshold. Every image in both
sets holds exactly one face, so the rate is a per-image detection rate, and an image with
two or more faces reported (``multi``) holds at least one false detection; intervals are
Wilson 95%. The lfw rows count faces reported on scikit-image's ``lfw_subset`` (100 face
and 100 non-face 25x25 crops, upscaled bicubically to 100x100). Time is wall-clock per
image including colour conversion, single process, torch limited to one thread; images are
decoded beforehand and not timed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from facelab.core.config import data_root
from facelab.core.io import load_image
from facelab.models.registry import create_model, list_models


def sample_files(root: Path, n_cfd: int, n_fairface: int, seed: int) -> pd.DataFrame:
    """Seeded samples of CFD and FairFace-val image paths."""
    rng = np.random.default_rng(seed)
    cfd = sorted((root / "cfd" / "CFD").glob("*/*.jpg"))
    ff = sorted((root / "fairface" / "val").glob("*.jpg"))
    pick = lambda files, n: [files[i] for i in sorted(rng.choice(len(files), min(n, len(files)),  # noqa: E731
                                                                  replace=False))]
    rows = [("cfd", p) for p in pick(cfd, n_cfd)] + [("fairface", p) for p in pick(ff, n_fairface)]
    return pd.DataFrame(rows, columns=["dataset", "path"])


def lfw_counts(det, size: int = 100) -> tuple[int, int]:
    """Images with >= 1 face reported among lfw_subset's 100 face and 100 non-face crops."""
    import cv2
    from skimage.data import lfw_subset

    crops = lfw_subset()
    out = []
    for block in (crops[:100], crops[100:]):
        n = 0
        for c in block:
            grey = cv2.resize((c * 255).round().astype(np.uint8), (size, size),
                              interpolation=cv2.INTER_CUBIC)
            n += len(det.detect(np.repeat(grey[:, :, None], 3, axis=2))) > 0
        out.append(n)
    return out[0], out[1]


def run(files: pd.DataFrame) -> pd.DataFrame:
    """One row per (detector, dataset): images, detected, rate, Wilson CI, ms per image."""
    import torch

    torch.set_num_threads(1)
    images = [load_image(p) for p in files["path"]]
    rows = []
    for name in list_models("detector")["name"]:
        det = create_model(name)
        det.detect(images[0])  # warm-up
        counts, secs = [], []
        for im in images:
            t0 = time.perf_counter()
            faces = det.detect(im)
            secs.append(time.perf_counter() - t0)
            counts.append(len(faces))
        frame = files.assign(n_faces=counts, secs=secs)
        for ds, g in frame.groupby("dataset"):
            k, n = int((g["n_faces"] > 0).sum()), len(g)
            ci = binomtest(k, n).proportion_ci(method="wilson")
            rows.append({"detector": name, "dataset": ds, "images": n, "detected": k,
                         "rate": k / n, "ci_low": ci.low, "ci_high": ci.high,
                         "multi": int((g["n_faces"] > 1).sum()),
                         "ms_per_image": 1000 * float(np.mean(g["secs"]))})
        faces_on, nonfaces_on = lfw_counts(det)
        rows.append({"detector": name, "dataset": "lfw_subset faces", "images": 100,
                     "detected": faces_on})
        rows.append({"detector": name, "dataset": "lfw_subset non-faces", "images": 100,
                     "detected": nonfaces_on})
        print(pd.DataFrame(rows).tail(4).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-cfd", type=int, default=300)
    ap.add_argument("--n-fairface", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/detection_bench.csv"))
    args = ap.parse_args()
    files = sample_files(data_root(), args.n_cfd, args.n_fairface, args.seed)
    table = run(files)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
