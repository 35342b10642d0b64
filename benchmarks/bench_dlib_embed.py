"""dlib ResNet embedding: dlib's own CPU network against its OpenVINO port, side by side.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_dlib_embed.py \
        [--n 500] [--seed 0] [--lfw] [--out benchmarks/results/dlib_embed.md]

The same faces (the largest YuNet face of a seeded sample of ``n`` shared-data images, half
CFD, half FairFace val, cut once into dlib's 150x150 chips by
:func:`facelab.face.align.dlib_chips`) are embedded by

(a) dlib: ``face_recognition_model_v1.compute_face_descriptor`` on the chips
    (``create_model("dlib_resnet", backend="dlib")``);
(b) the port: the same ``.dat`` read by :mod:`facelab.models.embedders._dlib_dnn`, replayed
    in PyTorch, converted once to OpenVINO IR and run at fp32, batches of 32, 1 thread
    (``backend="openvino", threads=1``);
(c) as (b) on every core;
(a') dlib again, last (its mean with (a) is the reference time, so drifting load shows).

Reported per face: wall-clock ms, CPU ms of this process, speed-up over dlib, and the
agreement with (a): max absolute embedding difference, max absolute difference of the
Euclidean distance over all pairs of faces, and pairs whose decision at dlib's distance 0.6
differs. ``--lfw``: LFW View 2 (6,000 pairs, 10 folds) accuracy of (a) and (c) on all LFW
images (:func:`benchmarks.bench_embed.lfw_accuracy`): each fold's threshold maximises the
accuracy on the other nine; plus the accuracy at the fixed distance 0.6 and the number of
pairs whose decision at 0.6 differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script or through `python -m benchmarks`
    sys.path.insert(0, str(ROOT))

from benchmarks._common import load_lines, uptime  # noqa: E402
from benchmarks.bench_embed import RESULTS, aligned_crops, lfw_accuracy  # noqa: E402


def _timed(fn, crops: np.ndarray) -> tuple[np.ndarray, float, float]:
    fn(crops[:4])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(crops)
    return out, time.perf_counter() - t0, time.process_time() - c0


def _distances(e: np.ndarray) -> np.ndarray:
    """Euclidean distances of all pairs ``i < j``, float64."""
    e = e.astype(np.float64)
    sq = np.sum(e * e, axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * e @ e.T, 0))
    return d[np.triu_indices(len(e), 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lfw", action="store_true", help="also LFW View 2 accuracy (slow)")
    ap.add_argument("--out", default=str(RESULTS / "dlib_embed.md"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    from benchmarks.bench_extract import sample
    from facelab.models.embedders.dlib_resnet import DLIB_DISTANCE_THRESHOLD
    from facelab.models.registry import create_model

    up_start = uptime()
    print(up_start, flush=True)
    manifest = sample(args.n, args.seed)
    crops, _, no_face = aligned_crops(manifest["path"].tolist(), "dlib_resnet")
    n = len(crops)
    print(f"{n} faces from {len(manifest)} images ({no_face} without a face)", flush=True)

    dlib_model = create_model("dlib_resnet", backend="dlib")
    t0 = time.perf_counter()
    port_all = create_model("dlib_resnet", backend="openvino")
    load_s = time.perf_counter() - t0
    port_1 = create_model("dlib_resnet", backend="openvino", threads=1)
    sides = []

    def run(label: str, model) -> None:
        emb, wall, cpu = _timed(model.embed_aligned, crops)
        sides.append((label, emb, wall, cpu))
        print(f"{label}: {wall / n * 1e3:.1f} ms/face (CPU {cpu / n * 1e3:.1f})", flush=True)

    run("(a) dlib compute_face_descriptor", dlib_model)
    run("(b) OpenVINO port, fp32, batches of 32, 1 thread", port_1)
    run("(c) OpenVINO port, fp32, batches of 32, all cores", port_all)
    run("(a') dlib again (load drift check)", dlib_model)
    ref = sides[0][1]
    d_ref = _distances(ref)
    t_ref = (sides[0][2] + sides[-1][2]) / 2
    c_ref = (sides[0][3] + sides[-1][3]) / 2
    rows = []
    for label, emb, wall, cpu in sides:
        d = _distances(emb)
        rows.append({"method": label, "wall": wall / n * 1e3, "cpu": cpu / n * 1e3,
                     "speedup": t_ref / wall, "cpu_ratio": c_ref / cpu,
                     "emb": float(np.abs(emb - ref).max()),
                     "dist": float(np.abs(d - d_ref).max()),
                     "flips": int(np.sum((d < DLIB_DISTANCE_THRESHOLD)
                                         != (d_ref < DLIB_DISTANCE_THRESHOLD)))})
        print(rows[-1], flush=True)
    lfw = (lfw_accuracy(dlib_model, port_all, threshold=1 - DLIB_DISTANCE_THRESHOLD,
                        model="dlib_resnet") if args.lfw else None)
    up_end = uptime()
    print(up_end)
    pairs = n * (n - 1) // 2
    lines = [
        "# dlib ResNet embedding: dlib's CPU network vs its OpenVINO port",
        "",
        f"{n} faces: the largest YuNet face of a seeded sample (seed {args.seed}) of "
        f"{len(manifest)} shared-data images (half CFD, half FairFace val; {no_face} without "
        "a face), cut once into dlib's 150x150 chips; only the embedding is timed. "
        f"{os.cpu_count()} CPUs. Produced by `benchmarks/bench_dlib_embed.py"
        f"{' --lfw' if args.lfw else ''}`. Loading the port (OpenVINO IR from the cache, "
        f"compiled): {load_s:.2f} s.",
        "",
        "| method | ms/face (wall) | CPU ms/face | speed-up vs dlib (wall) | CPU ratio | "
        f"max abs embedding diff | max abs distance diff ({pairs:,} pairs) | "
        "decisions at 0.6 that differ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['method']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['speedup']:.2f}x | "
          f"{r['cpu_ratio']:.2f}x | {r['emb']:.2e} | {r['dist']:.2e} | {r['flips']} |"
          for r in rows],
        "",
        "The speed-up uses the mean of (a) and (a'). CPU ms is this process's CPU time "
        "(user + system, all its threads). Differences are against (a).",
        "",
        *load_lines(up_start, up_end),
    ]
    if lfw is not None:
        lines += [
            "## LFW View 2 accuracy (10 folds, threshold chosen on the other nine)",
            "",
            f"{lfw['pairs_used']}/{lfw['pairs']} pairs usable ({lfw['no_face']} of "
            f"{lfw['images']} images without a YuNet face; pairs needing them are left "
            f"out of both rows alike); {lfw['faces']} faces embedded.",
            "",
            "| path | accuracy (mean +- sd over folds) | accuracy at distance 0.6 | "
            "embed seconds |",
            "|---|---:|---:|---:|",
            f"| (a) dlib | {lfw['opencv_acc_mean']:.4f} +- {lfw['opencv_acc_std']:.4f} | "
            f"{lfw['opencv_acc_fixed']:.4f} | {lfw['opencv_seconds']:.0f} |",
            f"| (c) OpenVINO port | {lfw['fast_acc_mean']:.4f} +- {lfw['fast_acc_std']:.4f} | "
            f"{lfw['fast_acc_fixed']:.4f} | {lfw['fast_seconds']:.0f} |",
            "",
            f"Pairs whose same/different decision at distance 0.6 differs: "
            f"{lfw['decisions_differ_fixed']}. Over all LFW faces: max abs embedding "
            f"difference {lfw['emb_absdiff_max']:.2e}; over the used pairs: max abs "
            f"distance difference {lfw['score_absdiff_max']:.2e}.",
            "",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
