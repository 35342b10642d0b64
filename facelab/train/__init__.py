"""Training facelab's own models (from scratch: no pretrained weights exist offline)."""

from facelab.train.expression import (
    DEFAULT_BACKBONE,
    TrainConfig,
    TrainResult,
    per_class_recall,
    train_expression,
    train_on_manifest,
)

__all__ = ["DEFAULT_BACKBONE", "TrainConfig", "TrainResult", "per_class_recall",
           "train_expression", "train_on_manifest"]
