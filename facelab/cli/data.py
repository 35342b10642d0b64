"""``facelab data check``: what the data root holds, with counts per label."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

LABEL_COLUMNS = ("split", "gender", "race", "race_original", "expression", "age_bin")

data_app = typer.Typer(help="Datasets under the data root (FACELAB_DATA).", no_args_is_help=True)


def summarise(df) -> list[str]:
    """Lines describing one manifest: images, subjects and counts per label column.

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset manifest (:mod:`facelab.data.schema`): ``subject`` and the
        :data:`LABEL_COLUMNS`.

    Returns
    -------
    list of str
        Indented lines: images, subjects (when any image has one) and, per label column
        with values, the count of each value (age bins in their natural order) and of
        missing values. ``race_original`` is left out when it equals ``race``.
    """
    lines = [f"  images: {len(df):,}"]
    subjects = df["subject"].dropna()
    if len(subjects):
        lines.append(f"  subjects: {subjects.nunique():,} "
                     f"({len(subjects):,} images with an identity label)")
    for col in LABEL_COLUMNS:
        counts = df[col].value_counts(dropna=True).sort_index()
        if col == "age_bin":
            from facelab.data.schema import AGE_BINS

            counts = counts.reindex([b for b in AGE_BINS if b in counts.index])
        if col == "race_original" and df["race_original"].equals(df["race"]):
            continue
        if len(counts):
            text = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            missing = int(df[col].isna().sum())
            lines.append(f"  {col}: {text}" + (f" (missing {missing:,})" if missing else ""))
    return lines


def malformed_lines(df) -> list[str]:
    """Lines counting a manifest's malformed entries (skipped when it was loaded), per
    reason with one example each.

    Parameters
    ----------
    df : pandas.DataFrame
        A loaded dataset manifest (:func:`facelab.data.datasets.malformed` reads what
        its loader skipped).

    Returns
    -------
    list of str
        Indented lines; empty when nothing was skipped.
    """
    from facelab.data.datasets import malformed

    bad = malformed(df)
    if not len(bad):
        return []
    lines = [f"  malformed entries skipped: {len(bad)}"]
    for reason, n in bad["reason"].value_counts().items():
        example = bad.loc[bad["reason"] == reason, "entry"].iloc[0]
        lines.append(f"    {n} x {reason} (e.g. {example})")
    return lines


def label_error_lines(df, *, likely: str | None = None, level: float | None = None,
                      show: int = 10) -> list[str]:
    """Lines listing a manifest's label errors (:mod:`facelab.data.label_errors`).

    Certain errors are byte-identical files under different identities (or, without
    identity labels, any byte-identical files); duplicate files of one identity are
    listed as not errors. With ``likely``, the embedder runs on every image (the cached
    pipeline) and pairs of different identities at or above the near-duplicate level are
    listed for review.

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset manifest (``file``, ``subject``, ``path``).
    likely : str, optional
        Embedder for the likely errors; none are computed when omitted.
    level : float, optional
        Similarity at or above which two faces count as near-duplicates; the embedder's
        default (:func:`facelab.data.label_errors.near_duplicate_level`) when omitted.
    show : int
        Groups or pairs listed of each kind.

    Returns
    -------
    list of str
        Indented lines, counts first.
    """
    from facelab.data import label_errors as L

    ident = L.identical_images(df)
    cert = ident[ident["kind"] == "certain"]
    has_ids = df["subject"].notna().any()
    who = "identities" if has_ids else "people"
    what = ("byte-identical files under different identities" if has_ids else
            "byte-identical files; no identity labels, so each file counts as a different "
            "person")
    lines = [f"  label errors, certain ({what}): {cert['sha256'].nunique():,} groups, "
             f"{len(cert):,} images"]
    for _, group in list(cert.groupby("sha256", sort=False))[:show]:
        items = [f"{f}" + (f" [{s}]" if isinstance(s, str) else "")
                 for f, s in zip(group["file"], group["subject"], strict=True)]
        lines.append("    " + " == ".join(items))
    dup = ident[ident["kind"] == "same identity"]
    if len(dup):
        lines.append(f"  duplicate files of one identity (not errors; genuine pairs of score "
                     f"1): {dup['sha256'].nunique():,} groups, e.g. "
                     + " == ".join(dup.groupby("sha256").head(2)["file"].head(2)))
    if likely:
        from facelab.studies.matching import extract_embeddings

        lvl = L.near_duplicate_level(likely, level)
        man = df.copy()
        man.index = man["file"].to_numpy()
        emb = extract_embeddings(man, likely, progress=False)
        found = L.likely_errors(man, emb, lvl)
        lines.append(f"  label errors, likely ({likely} similarity >= {lvl:g} between "
                     f"different {who}; {int((~emb.ok).sum())} images without a face not "
                     f"compared): {len(found):,} pairs")
        for r in found.head(show).itertuples(index=False):
            subj = (f" [{r.subject_a} / {r.subject_b}]"
                    if isinstance(r.subject_a, str) else "")
            lines.append(f"    {r.score:.3f}  {r.file_a} ~ {r.file_b}{subj}")
    return lines


@data_app.command("check")
def check(root: Path | None = typer.Option(None, "--root", help="Data root (default: "
                                            "$FACELAB_DATA)."),
          dataset: str | None = typer.Option(None, "--dataset", "-d",
                                             help="Check only this dataset."),
          likely: str | None = typer.Option(None, "--likely", help="Also list likely label "
                                            "errors: pairs of different identities whose "
                                            "similarity under this embedder (e.g. sface) "
                                            "reaches the near-duplicate level (runs the "
                                            "cached pipeline on every image)."),
          level: float | None = typer.Option(None, "--level", help="Near-duplicate level "
                                             "for --likely (default: the embedder's, "
                                             "facelab.data.label_errors.NEAR_DUPLICATE)."),
          show: int = typer.Option(10, "--show", help="Label errors listed per dataset.")
          ) -> None:
    """List the supported datasets found under the data root, with counts per label, the
    entries that could not be read, how ambiguous labels were handled, and label errors:
    byte-identical files under different identities (certain) and, with --likely, pairs of
    different identities scoring like near-duplicates (likely, for review).
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.

    Parameters
    ----------
    root : pathlib.Path, optional
        ``--root``: data root; ``$FACELAB_DATA`` when omitted.
    dataset : str, optional
        ``--dataset``: check only this dataset (a registered name or alias).
    likely : str, optional
        ``--likely``: embedder for likely label errors (:func:`label_error_lines`).
    level : float, optional
        ``--level``: near-duplicate similarity level for ``--likely``.
    show : int
        ``--show``: label errors listed per dataset and kind.

    Raises
    ------
    typer.BadParameter
        When ``--dataset`` is not a registered dataset (the message lists the known ones;
        exit code 2).
    typer.Exit
        Code 2 without a usable data root; code 1 when no supported dataset is found
        there.
    """
    from facelab.core.config import DataRootError, data_root
    from facelab.data.datasets import MalformedEntriesWarning, dataset_spec, find_datasets

    try:
        base = data_root(root)
    except DataRootError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if dataset is not None:
        try:
            wanted = dataset_spec(dataset).name
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--dataset") from None
    found = find_datasets(base)
    if dataset is not None:
        found = found[found["dataset"] == wanted]
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
        for line in malformed_lines(df):
            typer.echo(line)
        for r in df.attrs.get("label_report", []):
            if r["count"]:
                typer.echo(f"  {r['label']} labels: {r['count']:,} x {r['case']} "
                           f"(e.g. {r['example']})")
        for line in label_error_lines(df, likely=likely, level=level, show=show):
            typer.echo(line)


@data_app.command("fetch")
def fetch(name: str = typer.Argument(..., help="Dataset to download (lfw), or any other "
                                     "dataset to learn where to request it."),
          root: Path | None = typer.Option(None, "--root", help="Data root to download "
                                           "into (default: $FACELAB_DATA; created if missing)."),
          sources: Path | None = typer.Option(None, "--sources", help="Data sources file "
                                              "(default: the one shipped in facelab)."),
          progress: bool = typer.Option(True, "--progress/--no-progress",
                                        help="Show a progress bar per file.")) -> None:
    """Download a public dataset (LFW with pairs.txt and the public gender and race label
    files) into the data root, checking every file's SHA-256; an interrupted download
    resumes when the command is run again. Other datasets need a request or licence form:
    the command says where and how.
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Runs :func:`facelab.data.fetch.fetch_dataset`, then loads the dataset and prints
    :func:`summarise` of it and the malformed entries skipped (:func:`malformed_lines`).

    Parameters
    ----------
    name : str
        Dataset name.
    root : pathlib.Path, optional
        ``--root``: data root to download into; ``$FACELAB_DATA`` when omitted.
    sources : pathlib.Path, optional
        ``--sources``: data sources YAML file; facelab's ``sources.yaml`` when omitted.
    progress : bool
        ``--progress/--no-progress``: a progress bar per file.

    Raises
    ------
    typer.Exit
        Code 1 when the dataset cannot be downloaded (the message says where to request
        it); code 2 when a download or checksum fails or the sources file is invalid.
    """
    from facelab.data.fetch import FetchError, NotFetchableError, SourcesError, fetch_dataset

    try:
        target = fetch_dataset(name, root, sources=sources, progress=progress,
                               say=typer.echo)
    except NotFetchableError as exc:
        typer.echo(str(exc))
        raise typer.Exit(1) from exc
    except (FetchError, SourcesError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    from facelab.data.datasets import MalformedEntriesWarning, load_dataset

    with warnings.catch_warnings():
        # counted below (malformed_lines), with reasons; other warnings are shown
        warnings.simplefilter("ignore", MalformedEntriesWarning)
        df = load_dataset(name, root=target)
    typer.echo(f"{name}: {len(df):,} images readable by facelab")
    for line in summarise(df) + malformed_lines(df):
        typer.echo(line)


@data_app.command("status")
def status(root: Path | None = typer.Option(None, "--root", help="Data root (default: "
                                             "$FACELAB_DATA).")) -> None:
    """Which datasets are under the data root, which audits each feeds, and how to get the
    missing ones (the lines `facelab audit` prints first).
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Prints :func:`facelab.report.datastatus.status_lines`.

    Parameters
    ----------
    root : pathlib.Path, optional
        ``--root``: data root; ``$FACELAB_DATA`` when omitted.
    """
    from facelab.report.datastatus import status_lines

    for line in status_lines(root):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.add_typer(data_app, name="data")
