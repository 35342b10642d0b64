"""Reproduce the figures in docs/models.md.

Usage (from the repo root, FACELAB_DATA set)::

    .venv/bin/python scripts/study_expression_attributes.py margin     # ~6 min
    .venv/bin/python scripts/study_expression_attributes.py fer2013    # ~30 s
    .venv/bin/python scripts/study_expression_attributes.py fairface   # ~2.5 min
    .venv/bin/python scripts/study_expression_attributes.py utkface    # ~2 min
"""

from __future__ import annotations

import re
import sys

import cv2
import numpy as np
import pandas as pd

from facelab.core.config import data_root
from facelab.core.io import load_image
from facelab.metrics.intervals import rate_estimate
from facelab.models.attributes.age_gender import age_band
from facelab.models.expression.fer import FER_LABELS, FerExpression
from facelab.models.registry import create_model

MARGINS = (-0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)


def _largest(faces):
    return max(faces, key=lambda f: f.area)


def margin_study() -> None:
    """Expression accuracy of YuNet + alignment at several margins, on four datasets."""
    root, det, fx = data_root(), create_model("yunet"), FerExpression()
    rng = np.random.default_rng(0)
    lab = {name: i for i, name in enumerate(FER_LABELS)}
    fer = sorted((root / "fer2013" / "test").glob("*/*.jpg"))
    ck = dict(anger="angry", disgust="disgust", fear="fear", happy="happy", sadness="sad",
              surprise="surprise")
    jf = dict(AN="angry", DI="disgust", FE="fear", HA="happy", NE="neutral", SA="sad",
              SU="surprise")
    cf = dict(N="neutral", A="angry", F="fear", HC="happy", HO="happy")
    cfd = [(f, lab[cf[re.search(r"-([A-Z]+)\.jpg$", f.name).group(1)]], 1)
           for f in sorted((root / "cfd" / "CFD").glob("*/*.jpg"))]
    neutral = [c for c in cfd if c[1] == lab["neutral"]]
    sets = {  # (file, label, upscale factor so YuNet finds 48-px faces)
        "FER2013 (700 seeded)": [(fer[i], lab[fer[i].parent.name], 4)
                                 for i in rng.choice(len(fer), 700, replace=False)],
        "CK+48 (no contempt)": [(f, lab[ck[f.parent.name]], 4) for f in sorted(
            (root / "ckplus48" / "CK+48").glob("*/*.png")) if f.parent.name in ck],
        "JAFFE": [(f, lab[jf[f.name.split(".")[1][:2]]], 1)
                  for f in sorted((root / "jaffe" / "jaffe").glob("*.tiff"))],
        "CFD (132 expressive + 132 neutral)": [c for c in cfd if c[1] != lab["neutral"]] + [
            neutral[i] for i in rng.choice(len(neutral), 132, replace=False)],
    }
    for name, items in sets.items():
        crops, labels, native = {m: [] for m in MARGINS}, [], []
        for path, label, up in items:
            img = load_image(path)
            if up > 1:
                img = cv2.resize(img, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
            faces = det.detect(img)
            if not faces:
                continue
            labels.append(label)
            native.append(cv2.cvtColor(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA),
                                       cv2.COLOR_RGB2GRAY))
            for m in MARGINS:
                fx.margin = m
                crops[m].append(fx.crops(img, [_largest(faces)])[0])
        y = np.array(labels)
        accs = {m: (fx.predict_crops(np.stack(c)).argmax(1) == y).mean() for m, c in crops.items()}
        whole = (fx.predict_crops(np.stack(native)).argmax(1) == y).mean()
        print(f"{name}: n={len(items)} detected={len(y)} whole-image={whole:.3f} "
              + " ".join(f"m{m:+.1f}={a:.3f}" for m, a in accs.items()))


def fer2013() -> None:
    """Accuracy and per-class recall on all of FER2013 PrivateTest (images are the crops)."""
    files = sorted((data_root() / "fer2013" / "test").glob("*/*.jpg"))
    y = np.array([FER_LABELS.index(f.parent.name) for f in files])
    imgs = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    pred = FerExpression().predict_crops(imgs).argmax(1)
    print(rate_estimate(int((pred == y).sum()), len(y), name="accuracy"))
    for i, name in enumerate(FER_LABELS):
        print(rate_estimate(int((pred[y == i] == i).sum()), int((y == i).sum()),
                            name=f"{name} recall"))
    print(pd.crosstab(pd.Series(np.array(FER_LABELS)[y], name="true"),
                      pd.Series(np.array(FER_LABELS)[pred], name="predicted")))


def _attributes(files) -> pd.DataFrame:
    det, model, rows = create_model("yunet"), create_model("age-gender"), []
    for f in files:
        img = load_image(f)
        faces = det.detect(img)
        row = {"file": f.name}
        if faces:
            row.update(model.predict(img, [_largest(faces)]).iloc[0].to_dict())
        rows.append(row)
    return pd.DataFrame(rows)


def fairface() -> None:
    """Gender accuracy on all of FairFace val, overall, by gender and by race."""
    root = data_root() / "fairface"
    labels = pd.read_csv(root / "fairface_label_val.csv")
    out = _attributes([root / f for f in labels.file])
    out["true"], out["race"] = labels.gender.str.lower().values, labels.race.values
    print("no face:", int(out.gender.isna().sum()), "of", len(out))
    found = out.dropna(subset=["gender"])
    print(rate_estimate(int((found.gender == found.true).sum()), len(found), name="accuracy"))
    for key in ("true", "race"):
        for g, part in found.groupby(key):
            print(rate_estimate(int((part.gender == part.true).sum()), len(part), name=str(g)))


def utkface() -> None:
    """Age MAE (all faces) and age-band coverage on the held-out half of UTKFace."""
    files = sorted((data_root() / "utkface" / "UTKFace").glob("*.jpg"))
    out = _attributes(files)
    out["true"] = [int(f.name.split("_")[0]) for f in files]
    perm = np.random.default_rng(0).permutation(len(files))
    out["half"] = "held-out"
    out.loc[perm[: len(files) // 2], "half"] = "calibration"
    found = out.dropna(subset=["age"])
    err = (found.age - found.true).abs()
    print(f"no face: {out.age.isna().sum()}; MAE {err.mean():.2f} (n={len(found)}), "
          f"median {err.median():.2f}")
    bins = pd.cut(found.true, [0, 3, 10, 20, 30, 45, 60, 120], right=False)
    print(found.assign(err=err, bias=found.age - found.true).groupby(bins, observed=True)[
        ["err", "bias"]].agg(["mean", "count"]))
    cal = found[found.half == "calibration"]
    resid = np.log1p(cal.true) - np.log1p(cal.age)
    levels = [0.05, 0.1, 0.25, 0.75, 0.9, 0.95]
    print("calibration log-residual quantiles:", levels, np.round(np.quantile(resid, levels), 4))
    held = found[found.half == "held-out"]
    for cov in (0.5, 0.8, 0.9):
        lo, hi = age_band(held.age.to_numpy(), cov)
        inside = (held.true >= lo) & (held.true <= hi)
        print(f"band {cov}: coverage {inside.mean():.3f} ({inside.sum()}/{len(held)}), "
              f"mean width {(hi - lo).mean():.1f} years")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # 2 cores shared with other work: avoid oversubscription
    {"margin": margin_study, "fer2013": fer2013, "fairface": fairface,
     "utkface": utkface}[sys.argv[1]]()
