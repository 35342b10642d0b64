"""Skin tone of a detected face from its pixels: the Individual Typology Angle (ITA).

Method
------
1. **Regions from the landmarks.** The five landmarks fix a similarity transform from the
   ArcFace 112 x 112 template (:data:`facelab.face.align.ARCFACE_TEMPLATE_112`) to the image.
   Three rectangles drawn in template coordinates (:data:`SKIN_REGIONS`: both cheeks
   below the eyes and beside the nose, and the middle of the forehead above the brows)
   are mapped into the image and rasterised; they avoid the eyes, brows, nostrils, mouth
   and (mostly) hair. Only original image pixels are used, none are resampled.
2. **Skin-pixel filter.** Inside the regions a pixel counts as skin when its BT.601
   chroma lies in the skin cluster of Chai & Ngan (1999), ``133 <= Cr <= 173`` and
   ``77 <= Cb <= 127`` (OpenCV ``COLOR_RGB2YCrCb``, 8-bit), and it is neither near-black
   nor clipped (``Y >= 20``, no channel at 255). The rule ignores luminance, so dark and
   light skin pass alike (an RGB rule such as Kovac et al. 2003, ``R > 95``, would reject
   dark skin and bias the very thing measured); it lets brown hair and lips through, which
   is why the summary is a median.
3. **ITA.** Skin pixels are converted to CIE L*a*b* (D65, sRGB assumed) with
   :func:`skimage.color.rgb2lab`; the face's ITA is computed from the **median** L* and
   median b* of the pooled skin pixels: ``ITA = atan2(L* - 50, b*)`` in degrees, which is
   ``arctan((L* - 50) / b*)`` (Chardon et al. 1991) for ``b* > 0`` and keeps the sign of
   ``L* - 50``. Skin has ``b* > 0``; a median ``b* <= 0`` (blue or grey light) leaves the
   angle undefined and the face is flagged.
4. **Flag, never guess.** Fewer than ``min_pixels`` skin pixels, or a skin share of the
   region pixels below ``min_fraction``, or no landmarks, gives ``flag`` set to the reason
   and NaN ITA / missing category and tone.

Categories (Chardon et al. 1991's ITA classes, with the "dark" class below -30 degrees that
Del Bino and colleagues added for the darkest skin, as tabulated in Del Bino & Bernerd
2013): very light
``ITA > 55``, light ``41 < ITA <= 55``, intermediate ``28 < ITA <= 41``, tan
``10 < ITA <= 28``, brown ``-30 < ITA <= 10``, dark ``ITA <= -30`` (:data:`ITA_BINS`).

Lighter / darker split (:data:`LIGHTER_DARKER_CUT`): Buolamwini & Gebru (2018) grouped
Fitzpatrick types I-III as "lighter" and IV-VI as "darker". ITA is a colour angle and the
Fitzpatrick scale a self-reported reaction to sun, so no exact mapping exists (dermatology
studies report poor agreement between the six ITA categories and the six phototypes).
Works that estimate Fitzpatrick types from ITA (e.g. Kinyanjui et al. 2020, "Fairness of
classifiers across skin tones in dermatology", MICCAI) read the three lightest Chardon
categories as types I-III, so the split here is **lighter: ITA > 28 degrees (very light,
light, intermediate); darker: ITA <= 28 (tan, brown, dark)**. 28 is the only Chardon
edge that separates three categories from three; it is an approximation, and ITA from
uncalibrated photographs moves with exposure and white balance (measured in
``docs/models.md``).

Merler et al. (2019), "Diversity in Faces" (IBM, arXiv:1901.10436), computed ITA on face
images in the same way (skin pixels of landmark-defined regions, L*a*b*), as one of their
ten facial coding schemes.

References
----------
Chardon A., Cretois I., Hourseau C. (1991). Skin colour typology and suntanning pathways.
    International Journal of Cosmetic Science 13(4):191-208.
Chai D., Ngan K. N. (1999). Face segmentation using skin-color map in videophone
    applications. IEEE Trans. Circuits and Systems for Video Technology 9(4):551-564.
Del Bino S., Bernerd F. (2013). Variations in skin colour and the biological consequences
    of ultraviolet radiation exposure. British Journal of Dermatology 169(s3):33-40.
Buolamwini J., Gebru T. (2018). Gender Shades: intersectional accuracy disparities in
    commercial gender classification. FAT* 2018, PMLR 81:77-91.
Merler M., Ratha N., Feris R. S., Smith J. R. (2019). Diversity in Faces.
    arXiv:1901.10436.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from facelab.core.types import Face
from facelab.face.align import ARCFACE_TEMPLATE_112

__all__ = ["ITA_BINS", "ITA_CATEGORIES", "LIGHTER_DARKER_CUT", "SKIN_TONES", "SKIN_REGIONS",
           "SKIN_COLUMNS", "ita_from_lab", "ita_category", "lighter_darker", "skin_mask",
           "region_masks", "measure_skin_tone", "skin_tone_table", "SKIN_GROUP_COLUMNS",
           "SKIN_DETECTOR"]

#: ITA category names, lightest first (Chardon et al. 1991).
ITA_CATEGORIES: tuple[str, ...] = ("very light", "light", "intermediate", "tan", "brown",
                                   "dark")
#: Upper-inclusive bin edges in degrees: ``(edge_low, edge_high]`` per category, darkest
#: first as :func:`numpy.digitize` needs them (dark <= -30 < brown <= 10 < tan <= 28 <
#: intermediate <= 41 < light <= 55 < very light).
ITA_BINS: tuple[float, ...] = (-30.0, 10.0, 28.0, 41.0, 55.0)
#: ITA (degrees) above which a face is "lighter" (Fitzpatrick I-III in Gender Shades'
#: split); at or below it, "darker" (IV-VI). See the module docstring for why 28.
LIGHTER_DARKER_CUT: float = 28.0
SKIN_TONES: tuple[str, ...] = ("lighter", "darker")

#: Skin regions as ``(x1, y1, x2, y2)`` rectangles in the ArcFace 112 x 112 template, where
#: the eyes sit at y = 51.6, the nose tip at (56.0, 71.7) and the mouth corners at y = 92.3.
SKIN_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "cheek_left": (27.0, 61.0, 44.0, 81.0),    # below the left eye, left of the nose wing
    "cheek_right": (68.0, 61.0, 85.0, 81.0),   # mirror image about x = 56
    "forehead": (42.0, 22.0, 70.0, 34.0),      # between the brows' tops and the hairline
}

#: Chroma bounds of skin in 8-bit BT.601 YCrCb (Chai & Ngan 1999).
CR_RANGE: tuple[int, int] = (133, 173)
CB_RANGE: tuple[int, int] = (77, 127)
#: Pixels darker than this luma (near-black shadow, no usable colour) are not skin.
MIN_LUMA = 20

#: Columns a study can group by (``group_by: [skin_tone, gender]``), added to a manifest by
#: :func:`add_skin_tone`.
SKIN_GROUP_COLUMNS: tuple[str, ...] = ("skin_tone", "skin_category")
#: Detector whose largest face :func:`add_skin_tone` measures by default.
SKIN_DETECTOR = "yunet"

#: Columns of :func:`measure_skin_tone` (the ``skin_tone`` head adds the prefix ``skin_``).
SKIN_COLUMNS: tuple[str, ...] = ("tone", "category", "ita", "L", "a", "b", "n_pixels",
                                 "region_pixels", "fraction", "flag")


def ita_from_lab(L: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Individual Typology Angle in degrees, ``atan2(L* - 50, b*)`` (Chardon et al. 1991).

    Parameters
    ----------
    L, b
        CIE L* (0-100) and b* (any real) of the same shape (broadcastable).

    Returns
    -------
    numpy.ndarray
        float64 degrees. Equals ``degrees(arctan((L - 50) / b))`` where ``b > 0``, the
        domain of skin colours; where ``b <= 0`` the classic formula is undefined and
        the value returned lies outside (-90, 90), so callers can tell (and
        :func:`measure_skin_tone` flags those faces instead).
    """
    L = np.asarray(L, np.float64)
    b = np.asarray(b, np.float64)
    return np.degrees(np.arctan2(L - 50.0, b))


def ita_category(ita: np.ndarray | float | Sequence[float]) -> np.ndarray:
    """ITA category names (Chardon et al. 1991) for angles in degrees.

    Bins: very light > 55, light (41, 55], intermediate (28, 41], tan (10, 28],
    brown (-30, 10], dark <= -30. NaN or angles outside [-90, 90] give ``None``.

    Parameters
    ----------
    ita : array-like or float
        Individual typology angles in degrees.

    Returns
    -------
    numpy.ndarray
        object array of category names (or ``None``), same shape as ``ita``.
    """
    ita = np.asarray(ita, np.float64)
    flat = ita.reshape(-1)
    idx = np.digitize(flat, ITA_BINS, right=True)  # 0 = dark ... 5 = very light
    names = np.array(ITA_CATEGORIES[::-1], dtype=object)[idx]
    names[~np.isfinite(flat) | (np.abs(flat) > 90)] = None
    return names.reshape(ita.shape)


def lighter_darker(ita: np.ndarray | float | Sequence[float],
                   cut: float = LIGHTER_DARKER_CUT) -> np.ndarray:
    """``"lighter"`` where ITA > ``cut`` degrees, ``"darker"`` where ITA <= ``cut``.

    Buolamwini & Gebru 2018's Fitzpatrick I-III / IV-VI split, approximated by ITA (see
    the module docstring).

    Parameters
    ----------
    ita : array-like or float
        Individual typology angles in degrees.
    cut : float
        The cut in degrees (:data:`LIGHTER_DARKER_CUT`).

    Returns
    -------
    numpy.ndarray
        Object array of ``"lighter"``, ``"darker"`` or ``None`` (NaN or outside [-90, 90]),
        same shape as ``ita``.
    """
    ita = np.asarray(ita, np.float64)
    flat = ita.reshape(-1)
    out = np.where(flat > cut, "lighter", "darker").astype(object)
    out[~np.isfinite(flat) | (np.abs(flat) > 90)] = None
    return out.reshape(ita.shape)


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of skin-coloured pixels (Chai & Ngan 1999 chroma rule).

    Parameters
    ----------
    rgb
        uint8 ``(..., 3)`` RGB pixels (an image ``(H, W, 3)`` or a list ``(N, 3)``).

    Returns
    -------
    numpy.ndarray
        bool, shape ``rgb.shape[:-1]``: ``133 <= Cr <= 173``, ``77 <= Cb <= 127``,
        ``Y >= 20`` and no channel saturated at 255.
    Raises
    ------
    ValueError
        When ``rgb`` is not uint8 with 3 channels last.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"skin_mask expects uint8 RGB (..., 3); got {rgb.dtype} {rgb.shape}")
    flat = np.ascontiguousarray(rgb.reshape(-1, 1, 3))
    ycc = cv2.cvtColor(flat, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.int16)
    y, cr, cb = ycc[:, 0], ycc[:, 1], ycc[:, 2]
    ok = ((cr >= CR_RANGE[0]) & (cr <= CR_RANGE[1]) & (cb >= CB_RANGE[0]) & (cb <= CB_RANGE[1])
          & (y >= MIN_LUMA) & (flat.reshape(-1, 3).max(axis=1) < 255))
    return ok.reshape(rgb.shape[:-1])


def region_masks(shape: tuple[int, ...], landmarks: np.ndarray
                 ) -> dict[str, np.ndarray] | None:
    """Boolean image masks of :data:`SKIN_REGIONS` placed by the five landmarks.

    Parameters
    ----------
    shape
        Image shape ``(H, W[, C])``.
    landmarks
        ``(5, 2)`` float landmarks in :data:`facelab.core.types.LANDMARK_NAMES` order.

    Returns
    -------
    dict or None
        ``{region: bool (H, W)}`` (pixels outside the image are dropped), or ``None`` when
        the landmarks are degenerate (no similarity transform).
    """
    from skimage.transform import SimilarityTransform

    tform = SimilarityTransform.from_estimate(ARCFACE_TEMPLATE_112,
                                              np.asarray(landmarks, np.float64).reshape(5, 2))
    if not tform:
        return None
    h, w = shape[:2]
    out = {}
    for name, (x1, y1, x2, y2) in SKIN_REGIONS.items():
        corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
        poly = tform(corners)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8,
                     shift=4)
        out[name] = mask.astype(bool)
    return out


def measure_skin_tone(image: np.ndarray, face: Face, *, min_pixels: int = 50,
                      min_fraction: float = 0.5, cut: float = LIGHTER_DARKER_CUT) -> dict:
    """ITA skin tone of one face (method and sources in :mod:`facelab.face.skin`).

    Parameters
    ----------
    image
        RGB uint8 ``(H, W, 3)``.
    face
        The detected face; its five landmarks place the skin regions.
    min_pixels
        Fewest skin pixels for an estimate.
    min_fraction
        Smallest share of the regions' pixels that must pass the skin filter (a face
        covered by hair, a hand, sunglasses or in tinted light fails it). Half: below
        that, the pixels that pass are a minority (shadow, brown hair or frames pass the
        chroma rule too) and would decide the tone; measured share of faces failing it
        on 400 images each: FairFace 10.5%, UTKFace 4.8% (greyscale photos), CFD 0%.
    cut
        Lighter / darker cut in degrees (:data:`LIGHTER_DARKER_CUT`).

    Returns
    -------
    dict
        :data:`SKIN_COLUMNS`: ``tone`` ("lighter"/"darker"), ``category``, ``ita``
        (degrees), median ``L``, ``a``, ``b`` of the skin pixels, ``n_pixels`` (skin pixels
        used), ``region_pixels`` (pixels in the regions), ``fraction`` and ``flag`` (``""``
        when measured, else why not: then ``tone``/``category`` are None, ``ita`` NaN).

    Raises
    ------
    ValueError
        When ``image`` is not RGB uint8 ``(H, W, 3)``.
    """
    from skimage.color import rgb2lab

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"measure_skin_tone expects RGB uint8 (H, W, 3); got {image.dtype} "
                         f"{image.shape}")
    out = {"tone": None, "category": None, "ita": np.nan, "L": np.nan, "a": np.nan,
           "b": np.nan, "n_pixels": 0, "region_pixels": 0, "fraction": np.nan, "flag": ""}
    if face.landmarks is None or not np.isfinite(face.landmarks).all():
        out["flag"] = "no landmarks to place the skin regions"
        return out
    masks = region_masks(image.shape, face.landmarks)
    if masks is None:
        out["flag"] = "degenerate landmarks"
        return out
    region = np.logical_or.reduce(list(masks.values()))
    pixels = image[region]
    skin = skin_mask(pixels)
    n_region, n_skin = int(region.sum()), int(skin.sum())
    out.update(n_pixels=n_skin, region_pixels=n_region,
               fraction=n_skin / n_region if n_region else np.nan)
    if n_skin < min_pixels or n_skin < min_fraction * n_region:
        out["flag"] = (f"too few skin pixels: {n_skin} of {n_region} region pixels (need "
                       f">= {min_pixels} and >= {min_fraction:.0%})")
        return out
    lab = rgb2lab(pixels[skin].reshape(-1, 1, 3)).reshape(-1, 3)
    L, a, b = (float(v) for v in np.median(lab, axis=0))
    out.update(L=L, a=a, b=b)
    if b <= 0:
        out["flag"] = f"median b* = {b:.2f} <= 0: not a skin chromaticity, ITA undefined"
        return out
    ita = float(ita_from_lab(L, b))
    out.update(ita=ita, category=ita_category(ita).item(), tone=lighter_darker(ita, cut).item())
    return out


def skin_tone_table(image: np.ndarray, faces: Sequence[Face], **options) -> pd.DataFrame:
    """:func:`measure_skin_tone` for every face: one row per face.

    Parameters
    ----------
    image : numpy.ndarray
        RGB uint8 ``(H, W, 3)``.
    faces : sequence of Face
        Detected faces with landmarks.
    **options
        ``min_pixels``, ``min_fraction``, ``cut``: see :func:`measure_skin_tone`.

    Returns
    -------
    DataFrame
        Columns :data:`SKIN_COLUMNS` (``ita``, ``L``, ``a``, ``b``, ``fraction`` float64).

    Raises
    ------
    ValueError
        When ``image`` is not RGB uint8 ``(H, W, 3)`` (and there is a face).
    """
    rows = [measure_skin_tone(image, f, **options) for f in faces]
    df = pd.DataFrame(rows, columns=list(SKIN_COLUMNS))
    for col in ("ita", "L", "a", "b", "fraction"):
        df[col] = df[col].astype(np.float64)
    for col in ("n_pixels", "region_pixels"):
        df[col] = df[col].astype(np.int64)
    return df


