"""Study logic of ``04_expression_fear``: which models, which labels, who is called afraid."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from facelab.data.sampling import load_datasets
from facelab.metrics.classification import agreement_by_group, label_rate_by_group
from facelab.metrics.findings import Finding, findings_table
from facelab.metrics.groups import GroupedMetric
from facelab.models.registry import create_model, list_models, resolve_model

__all__ = ["expression_models", "available_datasets", "with_demographics",
           "false_label_rate", "pairwise_agreement", "expression_findings"]


def expression_models(names: Sequence[str] | None = None) -> dict[str, object]:
    """Registered expression models by name: ``names`` (registered names or paths of
    ONNX model cards, :mod:`facelab.models.onnx_card`), or every one registered (the fer
    model, models from installed plugins, and any model trained by ``facelab train`` and
    found under results/models)."""

    if names is None:
        names = list(list_models("expression")["name"])
    names = [resolve_model(n, "expression") for n in names]  # model cards (.yaml) too
    return {name: create_model(name, kind="expression") for name in names}


def available_datasets(wanted: Sequence) -> tuple[list, list[str]]:
    """Split dataset specs into those that load and a sentence per built-in dataset
    that is missing (skipped), with :func:`facelab.data.sampling.load_datasets`.

    Parameters
    ----------
    wanted : sequence of specs
        Dataset specs (:mod:`facelab.data.resolve`).

    Returns
    -------
    present : list
        The specs (as given) of the datasets that loaded, in order.
    missing : list of str
        One sentence per built-in dataset that was not found (skipped).

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset named explicitly (a CSV, or a name the suite does not look for by
        default) cannot be loaded.
    """
    manifests, notes = load_datasets(list(wanted), default_splits={})
    present = [m.attrs["spec"] for m in manifests.values()]
    return present, [notes.table.loc[i, "note"] for i in notes.table.index
                     if not notes.table.loc[i, "found"]]


def with_demographics(predictions: pd.DataFrame, datasets: Sequence) -> pd.DataFrame:
    """Add the manifests' ``race`` and ``gender`` labels to per-image predictions
    (joined on dataset label and file; datasets without those labels get NA)."""

    manifests, _ = load_datasets(list(datasets), strict=True, default_splits={})
    parts = [df[["file", "race", "gender"]].assign(test_dataset=label)
             for label, df in manifests.items()]
    labels = pd.concat(parts, ignore_index=True).drop_duplicates(["test_dataset", "file"])
    return predictions.merge(labels, on=["test_dataset", "file"], how="left")


def false_label_rate(predictions: pd.DataFrame, *, label: str = "fear",
                     by: Sequence[str] = ("race", "gender"), min_count: int = 20,
                     true_labels: Sequence[str] | None = None,
                     seed: int = 0) -> dict[str, GroupedMetric]:
    """Per model: how often faces labelled otherwise (or only ``true_labels``, e.g.
    ``["neutral"]``) are given ``label``, by ``by`` groups, with intervals (subjects are
    resampled where known). Only evaluated rows with all ``by`` labels are used."""
    out = {}
    ev = predictions[predictions["status"] == "evaluated"].dropna(subset=list(by))
    if true_labels is not None:
        ev = ev[ev["true"].isin(list(true_labels))]
    for model, block in ev.groupby("model", sort=False):
        if block.empty:
            continue
        subject = "subject" if block["subject"].notna().all() else None
        out[model] = label_rate_by_group(block, true="true", pred="pred", by=list(by),
                                         label=label, subject=subject, min_count=min_count,
                                         seed=seed)
    return out


def pairwise_agreement(predictions: pd.DataFrame, a: str, b: str, *,
                       by: Sequence[str] = ("test_dataset",), min_count: int = 20,
                       seed: int = 0) -> GroupedMetric:
    """Cohen's kappa between models ``a`` and ``b`` on the images both evaluated, by group."""
    keys = ["test_dataset", "file"]
    cols = keys + [c for c in by if c not in keys]
    left = predictions[(predictions["model"] == a) & (predictions["status"] == "evaluated")]
    right = predictions[(predictions["model"] == b) & (predictions["status"] == "evaluated")]
    both = left[cols + ["pred"]].merge(right[keys + ["pred"]], on=keys, suffixes=("_a", "_b"))
    both = both.dropna(subset=list(by))
    return agreement_by_group(both, a="pred_a", b="pred_b", by=list(by), min_count=min_count,
                              seed=seed)


def expression_findings(table: pd.DataFrame, fear_false: pd.DataFrame,
                        robust: pd.DataFrame | None = None, *,
                        label: str = "fear") -> pd.DataFrame:
    """The findings table of ``04_expression_fear``: accuracy and ``label`` recall per
    model and test dataset, ``label`` given to faces labelled otherwise, and the share of
    expressions changed at the strongest (level 3) perturbation.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`facelab.studies.crossdata.cross_dataset_table` (``accuracy``, ``n``,
        ``fear_recall``, ``fear_n`` and their ``*_ci_low`` / ``*_ci_high``).
    fear_false : pandas.DataFrame
        :meth:`GroupedMetric.table` of :func:`false_label_rate` by ``test_dataset``,
        with a ``model`` column (empty when no model was evaluated).
    robust : pandas.DataFrame, optional
        :func:`facelab.perturb.robustness.robustness_table` for expressions.
    label : str
        The label audited (``"fear"``).

    Returns
    -------
    pandas.DataFrame
        :func:`facelab.metrics.findings.findings_table` of the findings.
    """
    how = "the model's top label (argmax of its scores)"
    out = []
    for r in table.itertuples():
        out.append(Finding(f"accuracy of {r.model} on {r.test_dataset}", r.accuracy,
                           metric="accuracy", model=r.model, dataset=r.test_dataset,
                           count=round(r.accuracy * r.n), n=r.n, ci_low=r.accuracy_ci_low,
                           ci_high=r.accuracy_ci_high, threshold_how=how))
        if r.fear_n:
            out.append(Finding(f"fear recall of {r.model} on {r.test_dataset}", r.fear_recall,
                               metric="recall", model=r.model, dataset=r.test_dataset,
                               group="fear", count=round(r.fear_recall * r.fear_n),
                               n=r.fear_n, ci_low=r.fear_ci_low, ci_high=r.fear_ci_high,
                               threshold_how=how))
    for _, r in fear_false.iterrows():
        out.append(Finding(f"{label} given to non-{label} faces, {r['model']} on "
                           f"{r['test_dataset']}", r["value"],
                           metric=f"false '{label}' rate", model=r["model"],
                           dataset=r["test_dataset"], count=r["count"], n=r["n"],
                           ci_low=r["ci_low"], ci_high=r["ci_high"],
                           ci_method=r.get("method", ""), threshold_how=how))
    if robust is not None:
        for r in robust[(robust["group_col"] == "all") & (robust["level"] == 3)
                        & (robust["perturbation"] != "none")].itertuples():
            out.append(Finding(f"top expression changes under {r.perturbation} (level 3)",
                               r.rate, metric="share changed", count=r.changed, n=r.n,
                               ci_low=r.ci_low, ci_high=r.ci_high, threshold_how=how))
    return findings_table(out)
