"""Train a timm architecture from scratch on expression datasets, seeded and early-stopped.

:func:`train_expression` loads the datasets' manifests, splits them by subject, trains
with a progress bar, keeps the epoch with the lowest validation loss (early stopping
after ``patience`` epochs without improvement), measures held-out accuracy and per-class
recall with Wilson intervals, and writes ``<results>/models/<name>.safetensors`` (weights
+ metadata) and ``<name>.json`` (history, split sizes, held-out files). The model is
registered at once, so ``create_model(name)`` works in the same session.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from facelab.data.schema import EXPRESSIONS
from facelab.models.trained import (
    DEFAULT_MARGIN,
    FORMAT,
    build_backbone,
    read_metadata,
    register_trained,
    trained_models_dir,
)
from facelab.train.data import (
    ExpressionDataset,
    _names,
    expression_manifest,
    manifest_digest,
    split_by_subject,
    split_summary,
)

__all__ = ["TrainConfig", "TrainResult", "train_expression", "train_on_manifest",
           "per_class_recall", "seed_everything", "DEFAULT_BACKBONE"]

#: Default architecture: small enough to train on FER2013 + CK+48 at 48x48 in minutes on
#: two CPU cores (see ``docs`` / the report of issue 8 for the measured wall time).
DEFAULT_BACKBONE = "resnet18"


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in the weights' metadata)."""

    backbone: str = DEFAULT_BACKBONE
    data: tuple[str, ...] = ("fer2013", "ckplus48")
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    img_size: int = 48
    patience: int = 6
    val_frac: float = 0.15
    test_frac: float = 0.15
    limit: int | None = None
    name: str | None = None
    margin: float = DEFAULT_MARGIN
    augment: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        self.data = tuple(_names(self.data))

    def run_name(self) -> str:
        """``name`` or ``<backbone>-<data>-s<seed>``.

        Returns
        -------
        str
            The model's registered name.
        """
        return self.name or f"{self.backbone}-{'+'.join(self.data)}-s{self.seed}"


@dataclass
class TrainResult:
    """What a training run produced."""

    name: str
    path: Path
    history: pd.DataFrame
    metrics: dict
    recall: pd.DataFrame
    splits: pd.DataFrame
    seconds: float
    metadata: dict = field(repr=False, default_factory=dict)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data order.

    Parameters
    ----------
    seed : int
        The seed (Python ``random``, numpy's global state, ``torch.manual_seed``).

    Returns
    -------
    torch.Generator
        Seeded with ``seed``; drives the data loader's shuffling.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and shift by up to ``pad`` pixels (seeded by ``gen``)."""
    n, c, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    # every sample's window in one gather (the same pixels as slicing sample by sample)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    windows = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]
    # a fresh (n, c, h, w) tensor with the standard strides: with c == 1 a permuted view
    # counts as contiguous but its strides would steer the convolutions to other kernels
    return torch.empty((n, c, h, w), dtype=x.dtype).copy_(windows.permute(0, 3, 1, 2))


def _evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              batch_size: int = 512) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and predicted labels."""
    net.eval()
    losses, preds = [], []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            logits = net(x[s:s + batch_size])
            losses.append(F.cross_entropy(logits, y[s:s + batch_size], reduction="sum").item())
            preds.append(logits.argmax(1).numpy())
    return sum(losses) / max(len(x), 1), np.concatenate(preds) if preds else np.zeros(0, int)


def per_class_recall(y_true, y_pred, labels) -> pd.DataFrame:
    """Recall per true label with its count and Wilson 95% interval
    (:func:`facelab.metrics.classification.per_class_metrics`).

    Columns: ``label, n, correct, recall, ci_low, ci_high``.

    Parameters
    ----------
    y_true, y_pred : array-like
        ``(n,)`` true and predicted labels.
    labels : sequence
        The classes to report, in order.

    Returns
    -------
    pandas.DataFrame
        One row per label.
    """
    from facelab.metrics.classification import per_class_metrics

    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    table = per_class_metrics(y_true, y_pred, labels=list(labels))
    return pd.DataFrame({
        "label": list(labels), "n": table["support"].to_numpy(),
        "correct": table["n_correct"].to_numpy(), "recall": table["recall"].to_numpy(),
        "ci_low": table["recall_ci_low"].to_numpy(), "ci_high": table["recall_ci_high"].to_numpy(),
    })


def _accuracy(y_true, y_pred) -> dict:
    from facelab.metrics.classification import accuracy

    est = accuracy(np.asarray(y_true), np.asarray(y_pred))
    return {"accuracy": est.rate, "n": est.n, "ci_low": est.ci_low, "ci_high": est.ci_high}


def train_expression(config: TrainConfig | None = None, *, root=None,
                     out_dir: str | Path | None = None, progress: bool = True,
                     reuse: bool = False, **overrides) -> TrainResult:
    """Train an expression classifier from scratch and save it as safetensors.

    Parameters
    ----------
    config
        A :class:`TrainConfig`; keyword ``overrides`` replace its fields
        (e.g. ``train_expression(backbone="resnet10t", epochs=2, limit=200)``).
    root
        Data root (default ``$FACELAB_DATA``).
    out_dir
        Folder for the weights (default ``<results>/models``).
    progress
        Show a tqdm progress bar.
    reuse
        If a model of the same name was already trained with the identical configuration
        on the identical manifest (same ``manifest_sha256``) in ``out_dir``, return it
        instead of training again (reruns of the audit suite stay fast).
    **overrides
        Fields of :class:`TrainConfig` replacing those of ``config``.

    Returns
    -------
    TrainResult
        Name, weights path, per-epoch history, metrics, held-out recall, split table.
    """
    config = config or TrainConfig()
    if overrides:
        config = TrainConfig(**{**asdict(config), **overrides})
    manifest = expression_manifest(config.data, root=root, limit=config.limit, seed=config.seed)
    return train_on_manifest(manifest, config, out_dir=out_dir, progress=progress, reuse=reuse)


def previous_result(manifest: pd.DataFrame, config: TrainConfig,
                    out_dir: str | Path | None = None) -> TrainResult | None:
    """The saved result of an identical earlier run (same name, configuration apart from
    ``threads``, and manifest digest) in ``out_dir``, or ``None``."""
    out = Path(out_dir) if out_dir is not None else trained_models_dir()
    path = out / f"{config.run_name()}.safetensors"
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        saved = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    same_config = ({k: v for k, v in saved.get("config", {}).items() if k != "threads"}
                   == {k: v for k, v in json.loads(json.dumps(asdict(config))).items()
                       if k != "threads"})
    if not same_config or saved.get("manifest_sha256") != manifest_digest(manifest):
        return None
    register_trained(path, override=True)
    return TrainResult(
        name=saved["name"], path=path, history=pd.DataFrame(saved["history"]),
        metrics=saved["metrics"], recall=pd.DataFrame(saved["test_recall"]),
        splits=pd.DataFrame(saved["splits"]), seconds=float(saved.get("train_seconds", 0)),
        metadata=read_metadata(path))


def train_on_manifest(manifest: pd.DataFrame, config: TrainConfig, *,
                      out_dir: str | Path | None = None, progress: bool = True,
                      reuse: bool = False) -> TrainResult:
    """:func:`train_expression` on an already loaded manifest (``path``, ``expression``,
    ``dataset``, ``file``, ``subject`` columns).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Images with their expression labels.
    config : TrainConfig
        What and how to train.
    out_dir, progress, reuse
        As for :func:`train_expression`.

    Returns
    -------
    TrainResult
        As :func:`train_expression`.
    """
    from facelab.core.progress import tqdm

    if reuse and (done := previous_result(manifest, config, out_dir)) is not None:
        return done

    start, cpu_start = time.perf_counter(), time.process_time()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    gen = seed_everything(config.seed)
    labels = tuple(e for e in EXPRESSIONS if e in set(manifest["expression"].astype(str)))
    splits = split_by_subject(manifest, val_frac=config.val_frac, test_frac=config.test_frac,
                              seed=config.seed)
    parts = {s: manifest[splits == s] for s in ("train", "val", "test")}
    data = {s: ExpressionDataset(m, labels, config.img_size).tensors() for s, m in parts.items()}
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]

    net = build_backbone(config.backbone, len(labels))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=max(1, config.epochs) * max(
            1, -(-len(x_tr) // config.batch_size)))
    history, best, best_loss, since_best = [], None, float("inf"), 0
    best_val_pred = np.zeros(0, int)
    bar = tqdm(range(config.epochs), desc=f"train {config.run_name()}", disable=not progress,
               unit="epoch")
    for epoch in bar:
        net.train()
        order = torch.randperm(len(x_tr), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for s in range(0, len(order), config.batch_size):
            idx = order[s:s + config.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb = _augment(x_tr[idx], gen) if config.augment else x_tr[idx]
            logits = net(xb)
            loss = F.cross_entropy(logits, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_tr[idx]).sum())
            seen += len(idx)
        val_loss, val_pred = _evaluate(net, x_va, y_va)
        row = {"epoch": epoch + 1, "train_loss": total / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "val_loss": val_loss,
               "val_accuracy": float((val_pred == y_va.numpy()).mean()) if len(y_va) else np.nan,
               "seconds": time.perf_counter() - start}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_loss=f"{val_loss:.3f}",
                        val_acc=f"{row['val_accuracy']:.3f}")
        if val_loss < best_loss - 1e-4 or best is None:
            best_loss, since_best, best_val_pred = val_loss, 0, val_pred
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since_best += 1
            if since_best >= config.patience:
                break
    bar.close()
    net.load_state_dict(best)
    history = pd.DataFrame(history)
    best_epoch = int(history.loc[history["val_loss"].idxmin(), "epoch"])

    # the kept epoch's validation predictions were made with the kept weights (in eval
    # mode, the same batches): no second pass over the validation set
    val_pred = best_val_pred
    _, test_pred = _evaluate(net, x_te, y_te)
    lab = np.array(labels)
    recall = per_class_recall(lab[y_te.numpy()], lab[test_pred], labels)
    val_acc, test_acc = _accuracy(y_va.numpy(), val_pred), _accuracy(y_te.numpy(), test_pred)
    metrics = {"val_accuracy": val_acc["accuracy"], "val_n": val_acc["n"],
               "test_accuracy": test_acc["accuracy"], "test_n": test_acc["n"],
               "test_accuracy_ci": [test_acc["ci_low"], test_acc["ci_high"]],
               "test_recall": {r.label: r.recall for r in recall.itertuples()},
               "best_epoch": best_epoch, "epochs_run": len(history)}
    seconds = time.perf_counter() - start
    metrics["train_seconds"] = round(seconds, 1)
    metrics["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    metrics["threads"] = torch.get_num_threads()
    name = config.run_name()
    summary = split_summary(manifest, splits)
    meta = _metadata(config, name, labels, manifest, metrics, seconds, summary)
    out = Path(out_dir) if out_dir is not None else trained_models_dir()
    path = _save(net, out, name, meta, history, summary, manifest, splits, recall)
    try:
        register_trained(path, override=True)
    except Exception:  # noqa: BLE001 - registration is a convenience, the file is written
        pass
    return TrainResult(name=name, path=path, history=history, metrics=metrics, recall=recall,
                       splits=summary, seconds=seconds, metadata=meta)


def _metadata(config: TrainConfig, name: str, labels, manifest: pd.DataFrame, metrics: dict,
              seconds: float, summary: pd.DataFrame) -> dict[str, str]:
    import timm

    from facelab.core.provenance import git_commit

    has_subjects = {d: bool(manifest.loc[manifest["dataset"] == d, "subject"].notna().any())
                    for d in config.data}
    split_method = "; ".join(
        f"{d}: {'disjoint by subject' if s else 'random by image (no subject ids)'}"
        for d, s in has_subjects.items())
    meta = {
        "format": FORMAT, "name": name, "backbone": config.backbone,
        "labels": json.dumps(list(labels)), "input_size": str(config.img_size),
        "in_chans": "1", "normalisation": "grey uint8 / 127.5 - 1",
        "margin": str(config.margin), "data": ",".join(config.data),
        "manifest_sha256": manifest_digest(manifest), "n_images": str(len(manifest)),
        "split_method": split_method, "commit": git_commit() or "unknown",
        "seed": str(config.seed), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metrics": json.dumps(metrics), "config": json.dumps(asdict(config)),
        "train_seconds": f"{seconds:.1f}", "torch": torch.__version__, "timm": timm.__version__,
    }
    return meta


def _save(net, out: Path, name: str, meta: dict[str, str], history: pd.DataFrame,
          summary: pd.DataFrame, manifest: pd.DataFrame, splits: pd.Series,
          recall: pd.DataFrame) -> Path:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.safetensors"
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata=meta)
    test = manifest[splits == "test"]
    sidecar = {
        **{k: v for k, v in meta.items() if k not in ("metrics", "labels", "config")},
        "labels": json.loads(meta["labels"]), "metrics": json.loads(meta["metrics"]),
        "config": json.loads(meta["config"]),
        "history": history.to_dict(orient="records"),
        "splits": summary.to_dict(orient="records"),
        "test_recall": recall.to_dict(orient="records"),
        "test_files": {d: sorted(g["file"].astype(str)) for d, g in test.groupby("dataset")},
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1, default=_json_default))
    return path


def _json_default(value):
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return str(value)


