"""Verification quality of facelab's embedders on CelebA and deepface_pairs.

CelebA (``$FACELAB_DATA/celeba``: ``img_celeba/*.jpg`` + ``identity_CelebA.txt``): the
largest YuNet face of each image is embedded by each model; every genuine pair (same
identity) is scored, and impostor pairs (different identities) are sampled with a fixed
seed. Reported: ROC AUC, EER, and FNMR at the threshold set for FMR <= 1e-3 on those
impostor scores, each with its counts. deepface_pairs (``pairs.csv``): accuracy at the
model's published default threshold. Images without a detected face are counted and
reported, and the pairs that need them are counted as not comparable (never silently
dropped).

Usage::

    .venv/bin/python benchmarks/eval_verification.py [--data DIR] [--identities N]
        [--impostors N] [--seed S] [--no-write]

Writes the table between the ``<!-- eval-verification -->`` markers of
``docs/models.md`` (unless ``--no-write``) and prints it.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
MARK_BEGIN, MARK_END = "<!-- eval-verification:begin -->", "<!-- eval-verification:end -->"
MODELS = ("sface", "dlib_resnet")


def read_celeba(root: Path, n_identities: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``file``, ``identity`` and ``path`` of the CelebA images (optionally a seeded subset
    of identities)."""
    base = root / "celeba"
    ids = pd.read_csv(base / "identity_CelebA.txt", sep=r"\s+", header=None,
                      names=["file", "identity"], dtype={"file": str, "identity": str})
    ids["path"] = [str(base / "img_celeba" / f) for f in ids["file"]]
    ids = ids[[Path(p).is_file() for p in ids["path"]]].reset_index(drop=True)
    if n_identities is not None:
        rng = np.random.default_rng(seed)
        keep = rng.choice(np.sort(ids["identity"].unique()), n_identities, replace=False)
        ids = ids[ids["identity"].isin(keep)].reset_index(drop=True)
    return ids


def detect_all(paths: list[str], detector: str = "yunet") -> tuple[list, list, pd.DataFrame]:
    """Largest face per image (``None`` when there is none) and a failure table."""
    from facelab.core.io import ImageError, load_image
    from facelab.match.verification import get_detector

    det = get_detector(detector)
    images, faces, rows = [], [], []
    for p in paths:
        try:
            im = load_image(p)
            found = det.detect(im)
            reason = "" if found else "no face found"
        except ImageError as exc:
            im, found, reason = None, [], exc.reason
        images.append(im if found else None)
        faces.append(max(found, key=lambda f: f.area) if found else None)
        rows.append({"path": p, "reason": reason})
    return images, faces, pd.DataFrame(rows)


def embed_detected(model: str, images: list, faces: list) -> np.ndarray:
    """``(n, dim)`` embeddings; NaN rows where no face was found."""
    from facelab.match.verification import get_embedder

    emb = get_embedder(model)
    out = np.full((len(images), emb.dim), np.nan, np.float32)
    for i, (im, f) in enumerate(zip(images, faces, strict=True)):
        if f is not None:
            out[i] = emb.embed(im, [f])[0]
    return out


def celeba_pairs(identity: np.ndarray, n_impostor: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """All genuine index pairs, and ``n_impostor`` seeded distinct impostor pairs."""
    identity = np.asarray(identity)
    genuine = [pair for idx in pd.Series(np.arange(len(identity))).groupby(identity).groups
               .values() for pair in itertools.combinations(sorted(idx), 2)]
    rng = np.random.default_rng(seed)
    n = len(identity)
    n_possible = n * (n - 1) // 2 - len(genuine)
    n_impostor = min(n_impostor, n_possible)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n_impostor:
        a = rng.integers(0, n, 2 * n_impostor)
        b = rng.integers(0, n, 2 * n_impostor)
        for i, j in zip(a, b, strict=True):
            if identity[i] != identity[j]:
                chosen.add((int(min(i, j)), int(max(i, j))))
                if len(chosen) == n_impostor:
                    break
    return np.array(genuine, dtype=np.int64).reshape(-1, 2), np.array(sorted(chosen))


def pair_scores(model: str, emb: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, int]:
    """Similarity of each comparable pair, and how many pairs involve a failed image."""
    from facelab.match.verification import get_embedder

    ok = np.isfinite(emb).all(axis=1)
    keep = ok[pairs[:, 0]] & ok[pairs[:, 1]]
    p = pairs[keep]
    s = get_embedder(model).similarity(emb[p[:, 0]], emb[p[:, 1]])
    return np.asarray(s, dtype=float), int((~keep).sum())


def celeba_quality(model: str, emb: np.ndarray, genuine: np.ndarray, impostor: np.ndarray,
                   target_fmr: float = 1e-3) -> dict:
    """AUC, EER and FNMR at FMR <= ``target_fmr`` with counts."""
    from facelab.metrics.biometric import eer, fnmr_at_threshold, roc_auc, threshold_at_fmr

    gs, g_lost = pair_scores(model, emb, genuine)
    is_, i_lost = pair_scores(model, emb, impostor)
    e = eer(gs, is_)
    choice = threshold_at_fmr(is_, target_fmr, reference="CelebA sampled impostors")
    fnmr = fnmr_at_threshold(gs, choice)
    return {
        "model": model, "n_genuine": len(gs), "n_impostor": len(is_),
        "genuine_not_comparable": g_lost, "impostor_not_comparable": i_lost,
        "auc": roc_auc(gs, is_), "eer": e.eer, "eer_threshold": e.threshold,
        "threshold_fmr": choice.threshold, "achieved_fmr": choice.achieved_fmr,
        "false_matches": choice.n_false_matches,
        "fnmr": fnmr.rate, "fnmr_count": fnmr.count, "fnmr_low": fnmr.ci_low,
        "fnmr_high": fnmr.ci_high,
    }


def deepface_accuracy(root: Path, models=MODELS) -> pd.DataFrame:
    """Accuracy at each model's default threshold on deepface_pairs' pairs.csv."""
    from facelab.match.verification import get_embedder
    from facelab.metrics.intervals import rate_estimate

    base = root / "deepface_pairs"
    pairs = pd.read_csv(base / "pairs.csv")
    files = sorted(set(pairs["file_x"]) | set(pairs["file_y"]))
    images, faces, fails = detect_all([str(base / "dataset" / f) for f in files])
    pos = {f: i for i, f in enumerate(files)}
    rows = []
    for model in models:
        emb = embed_detected(model, images, faces)
        idx = np.array([[pos[a], pos[b]] for a, b in zip(pairs["file_x"], pairs["file_y"],
                                                         strict=True)])
        ok = np.isfinite(emb[idx[:, 0]]).all(1) & np.isfinite(emb[idx[:, 1]]).all(1)
        s = get_embedder(model).similarity(emb[idx[ok, 0]], emb[idx[ok, 1]])
        t = get_embedder(model).default_threshold
        same = pairs["same"].to_numpy()[ok].astype(bool)
        correct = int(((s >= t) == same).sum())
        acc = rate_estimate(correct, int(ok.sum()), name="accuracy")
        rows.append({"model": model, "threshold": t, "pairs": len(pairs),
                     "compared": int(ok.sum()), "not_comparable": int((~ok).sum()),
                     "images_without_face": int((fails["reason"] != "").sum()),
                     "correct": correct, "accuracy": acc.rate, "ci_low": acc.ci_low,
                     "ci_high": acc.ci_high,
                     "fnmr_at_default": f"{int(((s < t) & same).sum())}/{int(same.sum())}",
                     "fmr_at_default": f"{int(((s >= t) & ~same).sum())}/{int((~same).sum())}"})
    return pd.DataFrame(rows)


def markdown(celeba: pd.DataFrame, n_images: int, n_ids: int, n_noface: int,
             deepface: pd.DataFrame, seed: int, n_imp: int, seconds: float) -> str:
    lines = [
        f"CelebA (`celeba/`): {n_images:,} images of {n_ids} identities; "
        f"{n_noface} image(s) with no YuNet face (their pairs are counted as not comparable). "
        f"All genuine pairs; {n_imp:,} impostor pairs sampled with seed {seed}. FNMR is at "
        "the threshold set for FMR <= 1e-3 on these impostor scores (Wilson 95% interval).",
        "",
        "| model | genuine | impostor | not comparable (gen/imp) | ROC AUC | EER | "
        "threshold @ FMR<=1e-3 (false matches) | FNMR @ FMR<=1e-3 [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in celeba.itertuples():
        lines.append(
            f"| {r.model} | {r.n_genuine:,} | {r.n_impostor:,} | {r.genuine_not_comparable}/"
            f"{r.impostor_not_comparable} | {r.auc:.4f} | {r.eer:.4f} | "
            f"{r.threshold_fmr:.4f} ({r.false_matches}) | {r.fnmr:.4f} "
            f"({r.fnmr_count:,}/{r.n_genuine:,}) [{r.fnmr_low:.4f}, {r.fnmr_high:.4f}] |")
    lines += [
        "",
        "deepface_pairs (`deepface_pairs/pairs.csv`, 140 same / 388 different): accuracy at "
        "each model's **published default threshold** (SFace cosine 0.363; dlib similarity "
        "0.4 = distance 0.6), not tuned on these pairs.",
        "",
        "| model | threshold | pairs compared / total | images without face | accuracy "
        "[95% CI] | FNMR | FMR |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in deepface.itertuples():
        lines.append(
            f"| {r.model} | {r.threshold:g} | {r.compared}/{r.pairs} | {r.images_without_face}"
            f" | {r.accuracy:.4f} ({r.correct}/{r.compared}) [{r.ci_low:.4f}, {r.ci_high:.4f}]"
            f" | {r.fnmr_at_default} | {r.fmr_at_default} |")
    lines += ["", f"Computed by `benchmarks/eval_verification.py` in {seconds:.0f} s."]
    return "\n".join(lines)


def write_doc(table: str, doc: Path = DOC) -> None:
    text = doc.read_text() if doc.exists() else f"{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    doc.write_text(f"{head}{MARK_BEGIN}\n{table}\n{MARK_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    from facelab.core.config import data_root

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--identities", type=int, default=None)
    ap.add_argument("--impostors", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    root = data_root(args.data)
    t0 = time.perf_counter()
    ids = read_celeba(root, args.identities, args.seed)
    images, faces, fails = detect_all(ids["path"].tolist())
    genuine, impostor = celeba_pairs(ids["identity"].to_numpy(), args.impostors, args.seed)
    rows = []
    for model in MODELS:
        emb = embed_detected(model, images, faces)
        rows.append(celeba_quality(model, emb, genuine, impostor))
        print(rows[-1], flush=True)
    celeba = pd.DataFrame(rows)
    deepface = deepface_accuracy(root)
    print(deepface.to_string(), flush=True)
    table = markdown(celeba, len(ids), ids["identity"].nunique(),
                     int((fails["reason"] != "").sum()), deepface, args.seed,
                     len(impostor), time.perf_counter() - t0)
    noface = fails[fails["reason"] != ""]
    if len(noface):
        table += "\n\nCelebA images without a face: " + ", ".join(
            f"`{Path(p).name}`" for p in noface["path"]) + "."
    print(table)
    if not args.no_write:
        write_doc(table)
    return 0


if __name__ == "__main__":
    main()  # no sys.exit: `python -m benchmarks` runs scripts in one process
