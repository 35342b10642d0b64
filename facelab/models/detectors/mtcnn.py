"""MTCNN (Zhang et al. 2016) from ``facenet-pytorch`` 2.5.3, run on the CPU.

Only the detector is used: its P-Net, R-Net and O-Net weights (``data/pnet.pt``,
``rnet.pt``, ``onet.pt``) ship inside the wheel. facenet-pytorch's recognition network
(InceptionResnetV1) downloads its weights at run time and is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from facelab.core.types import Face
from facelab.models.registry import register_model

WEIGHTS = ("data/pnet.pt", "data/rnet.pt", "data/onet.pt")


class MTCNNDetector:
    """MTCNN cascade: boxes, O-Net probabilities and five landmarks.

    Parameters
    ----------
    score_threshold
        Minimum final (O-Net) face probability kept. Default 0.9: the cascade's own last
        stage already requires 0.7; 0.9 removes most of the remaining false positives.
    min_face_size
        Smallest face searched for, in pixels (facenet-pytorch default 20).
    thresholds
        P-Net, R-Net and O-Net stage thresholds (facenet-pytorch default 0.6, 0.7, 0.7).
    factor
        Image-pyramid scale step (facenet-pytorch default 0.709).
    num_threads
        torch intra-op threads while detecting (restored afterwards). Default 1: MTCNN runs
        many tiny tensors, and on a shared 2-core machine two threads made it 10x slower
        (4.2 s against 0.38 s per 512 px image); ``None`` leaves torch's setting alone.
    """

    name = "mtcnn"

    def __init__(self, score_threshold: float = 0.9, min_face_size: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 num_threads: int | None = 1):
        self.score_threshold = float(score_threshold)
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.num_threads = num_threads
        self._mtcnn = None

    @property
    def _net(self):
        """facenet-pytorch's MTCNN, built on first use: creating the detector (e.g. to list
        its settings, or for a run that reads every detection from the cache) then does not
        import torch, seconds on a loaded machine."""
        if self._mtcnn is None:
            from facenet_pytorch.models.mtcnn import MTCNN

            self._mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=self.min_face_size,
                                thresholds=list(self.thresholds), factor=self.factor)
            self._mtcnn.eval()
        return self._mtcnn

    def _faces(self, image: np.ndarray, boxes, probs, points) -> list[Face]:
        h, w = image.shape[:2]
        faces = []
        if boxes is None:
            return faces
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or prob < self.score_threshold:
                continue
            faces.append(Face(box=np.clip(np.asarray(box, np.float64), 0, [w, h, w, h]),
                              score=float(np.clip(prob, 0, 1)),
                              landmarks=np.asarray(pts, np.float64), detector=self.name))
        return sorted(faces, key=lambda f: -f.score)

    @contextmanager
    def _torch(self) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(before)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image, highest score first.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8.

        Returns
        -------
        list of Face
            Boxes ``[x1, y1, x2, y2]`` in pixels of ``image``, scores in [0, 1], landmarks
            ``(5, 2)`` pixels when the detector gives them; empty when no face is found.
        """
        with self._torch():
            boxes, probs, points = self._net.detect(np.ascontiguousarray(image), landmarks=True)
        return self._faces(image, boxes, probs, points)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per image, each image through the cascade on its own.

        facenet-pytorch's batched ``MTCNN.detect`` (a stack of equal-size images) gives
        boxes that depend on which images share the batch: on 40 FairFace images, one
        batch of 40 and batches of 32 + 8 differed by up to 8 px, and either differed from
        one image at a time by up to 17 px. A cached detection must not depend on the
        batch it was computed in, and batching gave no speed here (208.6 vs 207.0 ms per
        FairFace image), so every image runs alone.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            ``(h, w, 3)`` RGB uint8 images (sizes may differ).

        Returns
        -------
        list of list of Face
            One list per image, exactly as :meth:`detect` gives.
        """
        return [self.detect(im) for im in images]


@register_model(
    "mtcnn", kind="detector",
    description="MTCNN cascade (P/R/O-Net) from facenet-pytorch, CPU",
    output="box xyxy, score in [0, 1] (O-Net probability), 5 landmarks",
    input_size="any (image pyramid from min_face_size=20 px)",
    package="facenet_pytorch", weights=WEIGHTS,
    licence="MIT (facenet-pytorch code and MTCNN weights)",
    revision="one-image-at-a-time",
)
def create_mtcnn(**options) -> MTCNNDetector:
    """The registered factory of :class:`MTCNNDetector`.

    Parameters
    ----------
    **options
        Passed to :class:`MTCNNDetector` (its constructor's parameters).

    Returns
    -------
    MTCNNDetector
    """
    return MTCNNDetector(**options)
