"""Turning a list of labelled image pairs into the :data:`~facelab.data.schema.PAIR_COLUMNS`
frame."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from facelab.data.schema import PAIR_COLUMNS, Malformed, MalformedEntriesWarning


def pairs_frame(dataset: str, manifest: pd.DataFrame, rows: list[tuple], bad: Malformed,
                key: str = "file") -> pd.DataFrame:
    """``rows`` of ``(entry, name_a, name_b, same, fold)``; names are looked up in
    ``manifest[key]``; unknown names are reported as malformed."""
    lookup = pd.Series(manifest.index, index=manifest[key].to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    out = []
    for entry, a, b, same, fold in rows:
        missing = [n for n in (a, b) if n not in lookup.index]
        if missing:
            bad.add(entry, f"image {missing[0]!r} is not in the dataset")
            continue
        out.append((lookup[a], lookup[b], bool(same), fold))
    ia = np.array([r[0] for r in out], dtype=manifest.index.dtype)
    ib = np.array([r[1] for r in out], dtype=manifest.index.dtype)
    df = pd.DataFrame({
        "dataset": dataset, "index_a": ia, "index_b": ib,
        "path_a": manifest.loc[ia, "path"].to_numpy(),
        "path_b": manifest.loc[ib, "path"].to_numpy(),
        "subject_a": manifest.loc[ia, "subject"].to_numpy(),
        "subject_b": manifest.loc[ib, "subject"].to_numpy(),
        "same": np.array([r[2] for r in out], dtype=bool),
        "fold": pd.array([r[3] for r in out], dtype="Int64"),
    }, columns=list(PAIR_COLUMNS))
    for col in ("dataset", "path_a", "path_b", "subject_a", "subject_b"):
        df[col] = df[col].astype("string")
    df.attrs = {"dataset": dataset, "malformed": list(bad.rows)}
    if len(bad):
        warnings.warn(f"{dataset}: {len(bad)} malformed pairs skipped; see "
                      "facelab.data.datasets.malformed(pairs)", MalformedEntriesWarning,
                      stacklevel=3)
    return df
