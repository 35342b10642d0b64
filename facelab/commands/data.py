"""``facelab data check``: what the data root holds, with counts per label."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

LABEL_COLUMNS = ("split", "gender", "race", "race_original", "expression", "age_bin")

data_app = typer.Typer(help="Datasets under the data root (FACELAB_DATA).", no_args_is_help=True)


def summarise(df) -> list[str]:
    """Lines describing one manifest: images, subjects and counts per label column."""
    lines = [f"  images: {len(df):,}"]
    subjects = df["subject"].dropna()
    if len(subjects):
        lines.append(f"  subjects: {subjects.nunique():,} "
                     f"({len(subjects):,} images with an identity label)")
    for col in LABEL_COLUMNS:
        counts = df[col].value_counts(dropna=True).sort_index()
        if col == "age_bin":
            from facelab.datasets.schema import AGE_BINS

            counts = counts.reindex([b for b in AGE_BINS if b in counts.index])
        if col == "race_original" and df["race_original"].equals(df["race"]):
            continue
        if len(counts):
            text = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            missing = int(df[col].isna().sum())
            lines.append(f"  {col}: {text}" + (f" (missing {missing:,})" if missing else ""))
    return lines


@data_app.command("check")
def check(root: Path | None = typer.Option(None, "--root", help="Data root (default: "
                                            "$FACELAB_DATA)."),
          dataset: str | None = typer.Option(None, "--dataset", "-d",
                                             help="Check only this dataset.")) -> None:
    """List the supported datasets found under the data root, with counts per label and
    the entries that could not be read."""
    from facelab.config import DataRootError, data_root
    from facelab.datasets import MalformedEntriesWarning, dataset_spec, find_datasets
    from facelab.datasets import malformed as malformed_of

    try:
        base = data_root(root)
    except DataRootError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    found = find_datasets(base)
    if dataset is not None:
        found = found[found["dataset"] == dataset_spec(dataset).name]
    typer.echo(f"data root: {base}")
    if found.empty:
        typer.echo("no supported dataset found (see data/README.md for the layouts)")
        raise typer.Exit(1)
    for row in found.itertuples():
        typer.echo(f"\n== {row.dataset}  ({row.path})")
        if row.images < 0:
            typer.echo(f"  cannot be read: {row.note}")
            continue
        spec = dataset_spec(row.dataset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MalformedEntriesWarning)
            df = spec.loader(Path(row.path), split=None, allow_outside_root=False,
                             **spec.count_options)
        for line in summarise(df):
            typer.echo(line)
        if spec.pairs is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MalformedEntriesWarning)
                pairs = spec.pairs(Path(row.path), df)
            same = int(pairs["same"].sum())
            typer.echo(f"  pairs: {len(pairs):,} ({same:,} same, {len(pairs) - same:,} different)")
        bad = malformed_of(df)
        if len(bad):
            typer.echo(f"  malformed entries skipped: {len(bad)}")
            for reason, n in bad["reason"].value_counts().items():
                example = bad.loc[bad["reason"] == reason, "entry"].iloc[0]
                typer.echo(f"    {n} x {reason} (e.g. {example})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
