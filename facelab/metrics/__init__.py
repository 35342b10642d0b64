"""Metrics with defensible statistics: biometric error rates (ISO/IEC 19795-1 names),
disaggregation by group with intervals, and classification audits.

Submodules: :mod:`~facelab.metrics.biometric`, :mod:`~facelab.metrics.groups`,
:mod:`~facelab.metrics.classification`, :mod:`~facelab.metrics.intervals`.
"""

from facelab.metrics.biometric import (
    EqualErrorRate,
    ThresholdChoice,
    det_curve,
    eer,
    fmr_at_threshold,
    fnir,
    fnir_curve,
    fnmr_at_threshold,
    fpir,
    fpir_curve,
    identification_by_gallery_size,
    roc_auc,
    roc_curve,
    threshold_at_fmr,
)
from facelab.metrics.intervals import RateEstimate, binomial_ci, bootstrap_ci, rate_estimate

__all__ = [
    "EqualErrorRate",
    "RateEstimate",
    "ThresholdChoice",
    "binomial_ci",
    "bootstrap_ci",
    "det_curve",
    "eer",
    "fmr_at_threshold",
    "fnir",
    "fnir_curve",
    "fnmr_at_threshold",
    "fpir",
    "fpir_curve",
    "identification_by_gallery_size",
    "rate_estimate",
    "roc_auc",
    "roc_curve",
    "threshold_at_fmr",
]
