"""Skin tone (Individual Typology Angle) as a registered model of kind ``"skin_tone"``, so
:func:`facelab.extract` runs and caches it like any other head (``heads=("skin_tone",)``).

It has no weights: the estimate is computed from the face's pixels by
:func:`facelab.face.skin.measure_skin_tone` (method and sources there). The version is part of
the name (``ita-v2``) and so of every cache key: change the method or a default option,
bump the name (v1 accepted faces whose regions were only 25% skin; v2 needs half, so a
minority of brown hair, sunglasses or shadow passing the chroma filter cannot decide the
tone while an over-red face fails it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facelab.core.types import Face
from facelab.face.skin import LIGHTER_DARKER_CUT, SKIN_TONES, skin_tone_table
from facelab.models.registry import register_model

__all__ = ["ItaSkinTone"]


class ItaSkinTone:
    """ITA skin tone per face, from landmark-placed cheek and forehead skin pixels.

    Parameters
    ----------
    min_pixels, min_fraction
        Below either, the face is flagged instead of measured
        (:func:`facelab.face.skin.measure_skin_tone`).
    cut
        Lighter / darker cut in ITA degrees (default 28: Fitzpatrick I-III vs IV-VI, see
        :mod:`facelab.face.skin`).
    """

    labels = SKIN_TONES

    def __init__(self, min_pixels: int = 50, min_fraction: float = 0.5,
                 cut: float = LIGHTER_DARKER_CUT) -> None:
        self.options = {"min_pixels": int(min_pixels), "min_fraction": float(min_fraction),
                        "cut": float(cut)}

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face with :data:`facelab.face.skin.SKIN_COLUMNS` (``tone``, ``category``,
        ``ita`` degrees, median ``L``/``a``/``b``, ``n_pixels``, ``region_pixels``,
        ``fraction``, ``flag``).

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces with landmarks (pixels).

        Returns
        -------
        DataFrame
            One row per face.
        """
        return skin_tone_table(image, faces, **self.options)

    def predict_batch(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
                      ) -> list[pd.DataFrame]:
        """:meth:`predict` for several images.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            ``(h, w, 3)`` RGB uint8 images.
        faces : sequence of sequence of Face
            The faces of each image.

        Returns
        -------
        list of DataFrame
            One table per image, as :meth:`predict` gives.
        """
        return [self.predict(im, fs) for im, fs in zip(images, faces, strict=True)]


@register_model(
    "ita-v2", kind="skin_tone", default=True,
    description="Individual Typology Angle from CIE L*a*b* of cheek and forehead skin pixels "
                "placed by the 5 landmarks (Chardon 1991 bins; Chai & Ngan 1999 skin filter)",
    output="ITA degrees, ITA category (very light .. dark), lighter/darker (cut 28 deg), "
           "skin pixels used, flag when too few are skin",
    input_size="any; original image pixels inside landmark-placed regions",
    package="skimage", weights=("<none: computed from pixels>",),
    licence="no weights (method implemented in facelab, MIT)",
    labels=SKIN_TONES,
)
def create_ita(**options) -> ItaSkinTone:
    return ItaSkinTone(**options)
