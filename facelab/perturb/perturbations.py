"""Image perturbations (degradations) and the recipe that caches their outputs.

:data:`PERTURBATIONS` is the suite: each :class:`Perturbation` is a pure function of the
image, one parameter per severity level, the face's landmarks (occlusions) and a seeded
random generator (noise), so reruns are identical. :class:`PerturbedImage` names one
application (perturbation, parameter, seed, landmarks) and is what the extraction
pipeline receives as a ``transform``.

Cache key of a perturbed image (decided for issue 11 / 16)
----------------------------------------------------------
The features of a perturbed image are cached under the *source* image's content hash
plus :attr:`PerturbedImage.cache_token`: the perturbation's name, parameter, seed, the
landmarks it uses (exact float32 bytes) and a digest of its implementation (the source
code of its function and helpers, :data:`PERTURBATION_CODE_VERSION`, and the OpenCV and
NumPy versions that compute the pixels). A warm rerun therefore reads the features
without loading, perturbing or hashing any perturbed image (hashing the perturbed pixels,
the alternative, would still perturb every image on every rerun), and any change of
name, severity, seed, landmarks or implementation gives a new key, so a stale entry is
never reused. Bump :data:`PERTURBATION_CODE_VERSION` if the pixels change through code
the digest does not cover.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
import pandas as pd

__all__ = ["Perturbation", "PERTURBATIONS", "PERTURBATION_CODE_VERSION", "PerturbedImage",
           "perturb", "list_perturbations", "occlusion_box"]

#: Bumped when a perturbation's output changes through code outside the functions whose
#: source :meth:`PerturbedImage.cache_token` digests.
PERTURBATION_CODE_VERSION = 1


@dataclass(frozen=True)
class Perturbation:
    """A named degradation with one parameter per severity level (level 1 = mildest)."""

    name: str
    params: tuple
    unit: str
    apply: Callable = field(repr=False)
    needs_landmarks: bool = False


def _downscale(image, factor, rng, landmarks):
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _blur(image, frac, rng, landmarks):
    sigma = frac * max(image.shape[:2])
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REPLICATE)


def _noise(image, std, rng, landmarks):
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _jpeg(image, quality, rng, landmarks):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _brightness(image, factor, rng, landmarks):
    return np.clip(np.rint(image.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def occlusion_box(landmarks: np.ndarray, region: str, pad: float) -> np.ndarray:
    """The box an occlusion blacks out.

    Parameters
    ----------
    landmarks
        ``(5, 2)`` landmarks in pixels, :data:`facelab.core.types.LANDMARK_NAMES` order.
    region
        ``"eyes"`` (landmarks 0, 1) or ``"mouth"`` (the mouth corners, 3, 4).
    pad
        Margin on every side, in inter-ocular distances.

    Returns
    -------
    numpy.ndarray
        ``[x1, y1, x2, y2]`` float64 in pixels (not clipped to the image).
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    idx = {"eyes": [0, 1], "mouth": [3, 4]}[region]
    iod = max(float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    pts = lm[idx]
    grow = pad * iod
    return np.array([pts[:, 0].min() - grow, pts[:, 1].min() - grow,
                     pts[:, 0].max() + grow, pts[:, 1].max() + grow])


def _occluder(region: str):
    def occlude(image, pad, rng, landmarks):
        if landmarks is None:
            raise ValueError(f"occluding the {region} needs the face's landmarks")
        out = image.copy()
        h, w = image.shape[:2]
        x1, y1, x2, y2 = occlusion_box(landmarks, region, pad)
        x1, y1 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        x2, y2 = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        out[y1:y2, x1:x2] = 0
        return out
    return occlude


def _identity(image, param, rng, landmarks):
    return image.copy()


#: The suite. Parameters per level 1, 2, 3: downscale factor of each side; Gaussian blur
#: sigma as a fraction of the image's longer side; Gaussian noise sd in grey levels; JPEG
#: quality; brightness multiplier (underexposure); occluder margin around the landmarks in
#: inter-ocular distances (black box, like sunglasses or a mask).
PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("none", (None,), "", _identity),
    Perturbation("downscale", (0.5, 0.25, 0.125), "scale factor", _downscale),
    Perturbation("blur", (0.005, 0.01, 0.02), "sigma / image side", _blur),
    Perturbation("noise", (8.0, 16.0, 32.0), "noise sd (grey levels)", _noise),
    Perturbation("jpeg", (30, 15, 5), "JPEG quality", _jpeg),
    Perturbation("brightness", (0.5, 0.3, 0.15), "brightness factor", _brightness),
    Perturbation("occlude_eyes", (0.25, 0.4, 0.6), "margin (inter-ocular distances)",
                 _occluder("eyes"), needs_landmarks=True),
    Perturbation("occlude_mouth", (0.25, 0.4, 0.6), "margin (inter-ocular distances)",
                 _occluder("mouth"), needs_landmarks=True),
)}


def list_perturbations() -> pd.DataFrame:
    """The suite as a table.

    Returns
    -------
    pandas.DataFrame
        One row per perturbation and level: ``perturbation``, ``level`` (1..3; 0 for
        ``"none"``), ``param`` and its ``unit``.
    """
    return pd.DataFrame([{"perturbation": p.name, "level": i + (p.name != "none"),
                          "param": v, "unit": p.unit}
                         for p in PERTURBATIONS.values() for i, v in enumerate(p.params)])


def perturb(image: np.ndarray, name: str, level: int = 1, *,
            landmarks: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Apply perturbation ``name`` at severity ``level`` to an RGB uint8 image.

    Parameters
    ----------
    image
        RGB uint8 ``(H, W, 3)`` (grey ``(H, W)`` works for all but ``jpeg``).
    name
        A key of :data:`PERTURBATIONS`.
    level
        1 (mild) to 3 (severe); 0 returns an unchanged copy.
    landmarks
        ``(5, 2)`` landmarks of the face, needed by the occlusions.
    seed
        Seed of the random parts (noise): same seed, same output.

    Returns
    -------
    numpy.ndarray
        uint8, same shape as ``image`` (``downscale``: smaller by the level's factor).

    Raises
    ------
    KeyError
        For an unknown perturbation.
    ValueError
        For a level outside ``0..len(params)``, or an occlusion without landmarks.
    """
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    p = PERTURBATIONS[name]
    if level == 0:
        return np.asarray(image).copy()
    if name == "none":
        level = 1
    if not 1 <= level <= len(p.params):
        raise ValueError(f"{name}: level must be 0..{len(p.params)}, got {level}")
    rng = np.random.default_rng(seed)
    return p.apply(np.asarray(image, np.uint8), p.params[level - 1], rng, landmarks)


@dataclass(frozen=True)
class PerturbedImage:
    """One perturbation applied to an image: a picklable
    :class:`facelab.extraction.pipeline.ImageTransform`.

    Attributes
    ----------
    name
        A key of :data:`PERTURBATIONS`.
    param
        The perturbation's parameter (one of its ``params``, or any value in its unit).
    seed
        Seed of the random parts (noise).
    landmarks
        ``(5, 2)`` float32 landmarks in the source image's pixels (occlusions), or None.
    """

    name: str
    param: object
    seed: int = 0
    landmarks: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.name not in PERTURBATIONS:
            raise KeyError(f"unknown perturbation {self.name!r}; known: "
                           f"{', '.join(PERTURBATIONS)}")
        if self.landmarks is not None:
            object.__setattr__(self, "landmarks",
                               np.asarray(self.landmarks, np.float32).reshape(5, 2))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The perturbed copy of an RGB uint8 ``(H, W, 3)`` image (uint8; ``downscale``
        makes it smaller)."""
        p = PERTURBATIONS[self.name]
        return p.apply(np.asarray(image, np.uint8), self.param,
                       np.random.default_rng(self.seed), self.landmarks)

    @cached_property
    def cache_token(self) -> str:
        """What the output pixels depend on besides the source image (see the module
        docstring): name, parameter, seed, landmarks and the implementation's digest."""
        lm = "none" if self.landmarks is None else hashlib.sha256(
            self.landmarks.tobytes()).hexdigest()
        return "|".join([self.name, repr(self.param), str(int(self.seed)), lm,
                         _implementation_digest(self.name)])


_CODE_DIGESTS: dict[str, str] = {}


def _implementation_digest(name: str) -> str:
    """SHA-256 of the source code that computes perturbation ``name`` and the versions of
    the libraries that do the pixel work."""
    if name not in _CODE_DIGESTS:
        p = PERTURBATIONS[name]
        parts = [inspect.getsource(p.apply), str(PERTURBATION_CODE_VERSION), cv2.__version__,
                 np.__version__]
        if p.needs_landmarks:
            parts += [inspect.getsource(_occluder), inspect.getsource(occlusion_box)]
        _CODE_DIGESTS[name] = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return _CODE_DIGESTS[name]
