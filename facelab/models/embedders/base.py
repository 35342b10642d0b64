"""What every face embedder shares: input handling, batching and the similarity contract.

An embedder maps each face to a fixed-length ``float32`` vector. Its ``similarity`` is
always *higher = more alike*, and a pair is declared the same person when
``similarity >= threshold`` (the convention of :mod:`facelab.metrics.biometric`).

* ``metric == "cosine"``: vectors are L2-normalised by ``embed``; similarity is their dot
  product, in [-1, 1].
* ``metric == "euclidean"``: vectors are kept as the model gives them; similarity is
  ``1 - ||a - b||`` (so a distance of 0.6 is a similarity of 0.4).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from facelab.core.io import load_image
from facelab.core.types import Face

__all__ = ["BaseEmbedder", "cosine_similarity", "euclidean_similarity", "l2_normalize",
           "distance_to_similarity", "similarity_to_distance"]

_BAD_SHAPES = "cannot compare embeddings of shapes {a} and {b}: give equal shapes " \
              "(row-wise) or use similarity_matrix"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as ``float32``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(dim,)`` or ``(n, dim)`` vectors.

    Returns
    -------
    numpy.ndarray
        float32, same shape.
    """
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def distance_to_similarity(distance: np.ndarray | float) -> np.ndarray | float:
    """Euclidean distance to facelab's similarity: ``1 - distance``.

    Parameters
    ----------
    distance : numpy.ndarray or float
        Euclidean distances between embeddings.

    Returns
    -------
    numpy.ndarray or float
        ``1 - distance`` (dlib's 0.6 distance threshold becomes 0.4).
    """
    return 1.0 - distance


def similarity_to_distance(similarity: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`distance_to_similarity`: ``distance = 1 - similarity``.

    Parameters
    ----------
    similarity : numpy.ndarray or float
        facelab similarities of a Euclidean model.

    Returns
    -------
    numpy.ndarray or float
        ``1 - similarity``.
    """
    return 1.0 - similarity


def _rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise ValueError(_BAD_SHAPES.format(a=a.shape, b=b.shape))
    return a, b


def cosine_similarity(a: np.ndarray, b: np.ndarray, *, matrix: bool = False) -> np.ndarray:
    """Cosine similarity of rows (``matrix=False``: ``a[i]`` vs ``b[i]``) or of every pair
    (``matrix=True``: ``(len(a), len(b))``).

    Parameters
    ----------
    a, b : numpy.ndarray
        Embeddings, ``(dim,)`` or ``(n, dim)`` (``matrix=False``: same shape).
    matrix : bool
        Every pair instead of matching rows.

    Returns
    -------
    numpy.ndarray
        float32 in [-1, 1]: ``(n,)`` (a scalar array for 1-D input) or ``(len(a), len(b))``.

    Raises
    ------
    ValueError
        When ``matrix=False`` and the shapes differ.
    """
    if matrix:
        return l2_normalize(np.atleast_2d(a)) @ l2_normalize(np.atleast_2d(b)).T
    a, b = _rows(a, b)
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def euclidean_similarity(a: np.ndarray, b: np.ndarray, *, matrix: bool = False) -> np.ndarray:
    """``1 - Euclidean distance`` of rows or (``matrix=True``) of every pair.

    Parameters
    ----------
    a, b : numpy.ndarray
        Embeddings, ``(dim,)`` or ``(n, dim)`` (``matrix=False``: same shape).
    matrix : bool
        Every pair instead of matching rows.

    Returns
    -------
    numpy.ndarray
        float32 ``1 - distance``: ``(n,)`` or ``(len(a), len(b))``.

    Raises
    ------
    ValueError
        When ``matrix=False`` and the shapes differ.
    """
    if matrix:
        a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        sq = (np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :]
              - 2.0 * (a @ b.T))
        return distance_to_similarity(np.sqrt(np.maximum(sq, 0.0))).astype(np.float32)
    a, b = _rows(a, b)
    return distance_to_similarity(np.linalg.norm(a - b, axis=-1))


class BaseEmbedder(ABC):
    """Shared behaviour; subclasses set the class attributes and implement ``_crops`` and
    ``_embed_crops``."""

    name: str = ""
    dim: int = 128
    metric: str = "cosine"
    crop_size: int = 112
    default_threshold: float = 0.0
    threshold_source: str = ""

    # -- to implement ---------------------------------------------------------------
    @abstractmethod
    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Aligned crops of ``faces`` in the model's input format."""

    @abstractmethod
    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 embeddings of aligned crops."""

    # -- public ---------------------------------------------------------------------
    def align(self, image, faces: Sequence[Face]) -> np.ndarray:
        """The aligned crops this model embeds, ``(n, crop_size, crop_size, 3)`` RGB uint8.

        Parameters
        ----------
        image : str, os.PathLike, bytes, PIL.Image.Image or numpy.ndarray
            The image the faces were detected in (anything :func:`facelab.core.io.load_image`
            reads).
        faces : sequence of Face
            Detected faces (box and landmarks in pixels of ``image``).

        Returns
        -------
        numpy.ndarray
            ``(n, crop_size, crop_size, 3)`` RGB uint8.
        """
        return self._crops(load_image(image), list(faces))

    def embed(self, image, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of ``faces`` found in ``image`` (any :func:`facelab.core.io.load_image`
        source), ``(len(faces), dim)`` float32, in the order of ``faces``.

        Parameters
        ----------
        image : str, os.PathLike, bytes, PIL.Image.Image or numpy.ndarray
            The image the faces were detected in (anything :func:`facelab.core.io.load_image`
            reads).
        faces : sequence of Face
            Detected faces (box and landmarks in pixels of ``image``).

        Returns
        -------
        numpy.ndarray
            ``(len(faces), dim)`` float32 (L2-normalised for cosine models); ``(0, dim)`` for
            no faces.

        Raises
        ------
        facelab.core.io.ImageError
            When the image cannot be read.
        """
        faces = list(faces)
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_aligned(self._crops(load_image(image), faces))

    def embed_batch(self, images: Sequence, faces_per_image: Sequence[Sequence[Face]]
                    ) -> list[np.ndarray]:
        """:meth:`embed` for several images: one ``(n_i, dim)`` array per image.

        Parameters
        ----------
        images : sequence
            Image sources, one per entry of ``faces_per_image``.
        faces_per_image : sequence of sequence of Face
            The faces of each image.

        Returns
        -------
        list of numpy.ndarray
            One ``(n_i, dim)`` float32 array per image.

        Raises
        ------
        ValueError
            When the two sequences differ in length.
        """
        images, faces_per_image = list(images), [list(f) for f in faces_per_image]
        if len(images) != len(faces_per_image):
            raise ValueError(f"{len(images)} images but {len(faces_per_image)} face lists")
        crops = [self._crops(load_image(im), fs) for im, fs in
                 zip(images, faces_per_image, strict=True) if fs]
        if not crops:
            return [np.zeros((0, self.dim), np.float32) for _ in images]
        emb = self.embed_aligned(np.concatenate(crops))
        out, start = [], 0
        for fs in faces_per_image:
            out.append(emb[start:start + len(fs)])
            start += len(fs)
        return out

    def embed_aligned(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of already aligned RGB uint8 crops (``crop_size`` square, as made by
        :meth:`align`), ``(n, dim)`` float32.

        Parameters
        ----------
        crops : numpy.ndarray or sequence of numpy.ndarray
            ``(n, crop_size, crop_size, 3)`` (or one ``(crop_size, crop_size, 3)``) RGB uint8.

        Returns
        -------
        numpy.ndarray
            ``(n, dim)`` float32 (L2-normalised for cosine models).

        Raises
        ------
        ValueError
            For crops of another shape.
        """
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.ndim == 3:
            crops = crops[None]
        want = (self.crop_size, self.crop_size, 3)
        if crops.ndim != 4 or crops.shape[1:] != want:
            raise ValueError(f"{self.name} expects aligned crops of shape (n, {want[0]}, "
                             f"{want[1]}, 3); got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        emb = np.asarray(self._embed_crops(crops), dtype=np.float32).reshape(-1, self.dim)
        return l2_normalize(emb) if self.metric == "cosine" else emb

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of matching rows of ``a`` and ``b`` (same shape; 1-D gives a scalar
        array). Higher = more alike; same person when ``>= threshold``.

        Parameters
        ----------
        a, b : numpy.ndarray
            Embeddings, ``(dim,)`` or ``(n, dim)`` (``matrix=False``: same shape).

        Returns
        -------
        numpy.ndarray
            float32 similarity per row (cosine, or ``1 - distance`` for Euclidean models).

        Raises
        ------
        ValueError
            When the shapes differ.
        """
        fn = cosine_similarity if self.metric == "cosine" else euclidean_similarity
        return fn(a, b)

    def similarity_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of every row of ``a`` with every row of ``b``: ``(len(a), len(b))``.

        Parameters
        ----------
        a, b : numpy.ndarray
            ``(n, dim)`` and ``(m, dim)`` embeddings.

        Returns
        -------
        numpy.ndarray
            ``(n, m)`` float32.
        """
        fn = cosine_similarity if self.metric == "cosine" else euclidean_similarity
        return fn(a, b, matrix=True)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, "
                f"metric={self.metric!r}, default_threshold={self.default_threshold})")
