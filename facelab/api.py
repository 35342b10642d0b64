"""The public verbs of facelab, one documented one-liner each (issue 11).

The pattern follows deepface's ``DeepFace.py``: every verb a user types
(``facelab.detect``, ``facelab.represent``, ``facelab.verify``, ``facelab.analyze``,
``facelab.search``, ``facelab.extract``, ``facelab.load_dataset``, ``facelab.audit``)
is defined here with its full documentation and hands the work to the floor that owns it
(:mod:`facelab.models`, :mod:`facelab.match`, :mod:`facelab.extraction`,
:mod:`facelab.data`, :mod:`facelab.report`). This module sits on the top floor
(``api`` in ``.importlinter``): no other module of the package imports it.

``import facelab`` does not import this module; the first use of a verb does
(``facelab/__init__.py`` resolves names lazily).

Examples
--------
>>> import facelab
>>> from skimage import data
>>> img = data.astronaut()
>>> faces = facelab.detect(img)                  # list of Face, highest score first
>>> rep = facelab.represent(img)                 # rep.embeddings: (n_faces, 128) float32
>>> facelab.verify(img, img[:, ::-1]).same       # one person: True
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from facelab.core.config import results_dir
from facelab.core.io import ImageSource, load_image
from facelab.core.types import Face
from facelab.data import datasets as _datasets
from facelab.extraction import analysis as _analysis
from facelab.extraction import pipeline as _pipeline
from facelab.match import verification as _verification
from facelab.match.gallery import Gallery
from facelab.report import audits as _audits
from facelab.report import runner as _runner
from facelab.report import runs_index as _runs_index

__all__ = ["Representation", "detect", "represent", "verify", "analyze", "search", "find",
           "extract", "load_dataset", "audit"]


class Representation(NamedTuple):
    """What :func:`represent` returns: the embeddings and the faces they describe.

    Attributes
    ----------
    embeddings : numpy.ndarray
        ``(n, dim)`` float32, one row per face in the order of ``faces`` (``dim`` = 128
        for ``sface`` and ``dlib_resnet``). ``(0, dim)`` when the image has no face.
    faces : list of Face
        The faces embedded (box in pixels of the original image, detection score,
        five landmarks), in the detector's order (highest score first) unless given.
    model : str
        Registered name of the embedder.
    metric : str
        ``"cosine"`` (similarity = dot product of L2-normalised rows) or
        ``"euclidean"``, as the model defines it.
    threshold : float
        The model's published same-person threshold on its similarity (SFace 0.363
        cosine, OpenCV zoo; dlib 0.4 = distance 0.6, dlib's documentation).
    """

    embeddings: np.ndarray
    faces: list[Face]
    model: str
    metric: str
    threshold: float


def detect(image: ImageSource, *, detector: Any = "yunet",
           min_score: float | None = None) -> list[Face]:
    """Find every face in one image.

    Parameters
    ----------
    image
        Path, bytes, PIL image or ``(h, w, 3)`` uint8 RGB array (anything
        :func:`facelab.core.io.load_image` reads).
    detector
        Registered detector name (:func:`facelab.list_models` ``("detector")``: ``yunet``,
        ``haar``, ``dlib-hog``, ``mtcnn``, ``blazeface``, ...) or a detector instance.
        Built once per name and reused.
    min_score
        Drop faces whose detection score (in [0, 1]) is below this; ``None`` keeps what
        the detector's own threshold kept.

    Returns
    -------
    list of Face
        One :class:`facelab.core.types.Face` per face: ``box`` ``[x1, y1, x2, y2]`` in
        pixels (float32), ``score``, ``landmarks`` ``(5, 2)`` float32 pixels or ``None``.
        Empty when no face is found (a failure to acquire, not an error).

    Raises
    ------
    facelab.core.io.ImageError
        When the image cannot be read (the message names it).
    facelab.models.registry.ModelError
        For an unknown detector name.

    Examples
    --------
    >>> faces = facelab.detect(skimage.data.astronaut())
    >>> len(faces), faces[0].box.round()        # doctest: +SKIP
    (1, array([178.,  63., 268., 176.], dtype=float32))
    """
    return [f for f in _verification.get_detector(detector).detect(load_image(image))
            if min_score is None or f.score >= float(min_score)]


def represent(image: ImageSource, faces: Sequence[Face] | None = None, *,
              model: Any = "sface", detector: Any = "yunet") -> Representation:
    """Embeddings (face templates) of every face in one image.

    deepface's ``represent`` returns one dict per face; facelab returns one ``(n, dim)``
    float32 array with the faces beside it, ready for :func:`verify`,
    :meth:`facelab.Gallery.enrol` and numpy.

    Parameters
    ----------
    image
        Path, bytes, PIL image or ``(h, w, 3)`` uint8 RGB array.
    faces
        Faces to embed (e.g. from :func:`detect`); ``None`` detects them with ``detector``.
    model
        Registered embedder name (``sface``, ``dlib_resnet``, ...) or an instance.
    detector
        Registered detector name or instance, used only when ``faces`` is ``None``.

    Returns
    -------
    Representation
        ``embeddings`` ``(n, dim)`` float32 (row ``i`` describes ``faces[i]``; ``(0, dim)``
        when no face is found), ``faces``, ``model``, ``metric`` and the model's published
        ``threshold``.

    Raises
    ------
    facelab.core.io.ImageError
        When the image cannot be read.
    facelab.models.registry.ModelError
        For an unknown model or detector name.

    Examples
    --------
    >>> rep = facelab.represent(skimage.data.astronaut())
    >>> rep.embeddings.shape, rep.embeddings.dtype
    ((1, 128), dtype('float32'))
    """
    emb, rgb = _verification.get_embedder(model), load_image(image)
    found = list(_verification.get_detector(detector).detect(rgb) if faces is None else faces)
    return Representation(np.asarray(emb.embed(rgb, found), np.float32).reshape(-1, emb.dim),
                          found, getattr(emb, "name", str(model)), emb.metric,
                          float(emb.default_threshold))


def verify(a: Any, b: Any, *, model: Any = "sface", detector: Any = "yunet",
           threshold: float | None = None, target_fmr: float | None = None,
           reference: Any = None) -> _verification.Verification:
    """1:1 verification: is the largest face of ``a`` the same person as that of ``b``?

    Parameters
    ----------
    a, b
        Images (path, bytes, PIL image, array) or 1-D float embeddings ``(dim,)`` of
        ``model`` (e.g. rows of :func:`represent`).
    model, detector
        Registered embedder and detector names (or instances).
    threshold
        Similarity threshold; ``score >= threshold`` is a match. Default: the model's
        published value (SFace 0.363 cosine, OpenCV zoo; dlib 0.4 = distance 0.6).
    target_fmr, reference
        Instead of ``threshold``: the threshold whose false match rate on the
        ``reference`` impostor (non-mated) similarity scores is at most ``target_fmr``.

    Returns
    -------
    facelab.match.verification.Verification
        ``score``, ``same``, ``threshold`` and ``threshold_how`` (where it came from),
        the two faces used.

    Raises
    ------
    facelab.match.verification.NoFaceError
        When an image has no detectable face.
    facelab.core.io.ImageError
        When an image cannot be read.
    ValueError
        For both ``threshold`` and ``target_fmr``, or an embedding of the wrong size, NaN,
        infinite or all zeros.

    Examples
    --------
    >>> facelab.verify("a.jpg", "b.jpg", target_fmr=1e-3, reference=impostor_scores)
    """
    return _verification.verify(a, b, model=model, detector=detector, threshold=threshold,
                                target_fmr=target_fmr, reference=reference)


def analyze(image: ImageSource, *, detector: Any = "yunet",
            expression: Any = "fer-mini-xception", attributes: Any = "age-gender",
            min_score: float | None = None) -> list[_analysis.FaceAnalysis]:
    """Detect every face and describe it: box, landmarks, head pose (degrees), quality,
    expression scores, apparent gender and age (years).

    Expression and gender describe how a face looks in the image, not a person's inner
    emotional state or gender identity.

    Parameters
    ----------
    image
        Path, bytes, PIL image or ``(h, w, 3)`` uint8 RGB array.
    detector, expression, attributes
        Registered model names or instances; ``None`` skips expression or attributes.
    min_score
        Drop faces whose detection score (in [0, 1]) is below this.

    Returns
    -------
    list of facelab.extraction.analysis.FaceAnalysis
        One record per face (``to_dict()`` / ``to_json()`` for output); empty when none.

    Raises
    ------
    facelab.core.io.ImageError
        When the image cannot be read.

    Examples
    --------
    >>> [f.top_emotion for f in facelab.analyze("group.jpg")]
    """
    return _analysis.analyze(image, detector=detector, expression=expression,
                             attributes=attributes, min_score=min_score)


def search(probes: Any, gallery: Gallery | str | os.PathLike, k: int = 5, *,
           threshold: float | None = None, target_fmr: float | None = None,
           reference: Any = None) -> pd.DataFrame:
    """1:N identification: the ``k`` best enrolled subjects for each probe.

    Parameters
    ----------
    probes
        Image sources (largest face of each) or an ``(m, dim)`` float array of embeddings
        of the gallery's model.
    gallery
        A :class:`facelab.Gallery`, or the path of one written by ``Gallery.save``.
    k
        Candidates (distinct subjects) per probe, ``k >= 1``.
    threshold, target_fmr, reference
        How ``above_threshold`` is decided, as in :func:`verify`.

    Returns
    -------
    pandas.DataFrame
        One row per (probe, candidate), best first: ``probe``, ``candidate_rank``,
        ``subject``, ``template``, ``template_source``, ``score``, ``threshold``,
        ``above_threshold``, ``error`` (a probe without a face gives one row
        with NaN score and the reason). ``attrs["threshold_how"]`` says how the threshold
        was set.

    Raises
    ------
    ValueError
        For ``k < 1``, inconsistent threshold arguments or a bad probe embedding.
    OSError
        When a gallery path cannot be read.

    Examples
    --------
    >>> g = facelab.Gallery(); g.enrol(["ann1.jpg", "bob1.jpg"], ["ann", "bob"])
    >>> facelab.search(["ann2.jpg"], g, k=1)
    """
    g = gallery if isinstance(gallery, Gallery) else Gallery.load(gallery)
    return g.search(probes, k, threshold=threshold, target_fmr=target_fmr, reference=reference)


#: deepface's name for :func:`search`.
find = search


def extract(manifest: pd.DataFrame | Sequence[str | os.PathLike] | str | os.PathLike,
            **options: Any) -> pd.DataFrame:
    """Detect faces and run the requested heads over every image of a manifest, cached.

    Parameters
    ----------
    manifest
        A manifest DataFrame (``path`` column, e.g. from :func:`load_dataset`) or image
        paths.
    **options
        ``detector``, ``heads`` (``"embedding"``, ``"expression"``, ``"attributes"``,
        ``"skin_tone"``), ``models``, ``batch_size``, ``cache``, ``engine``, ``workers``,
        ``face_policy``, ...: see :func:`facelab.extraction.pipeline.extract`.

    Returns
    -------
    pandas.DataFrame
        One row per manifest row (per face with ``face_policy="all"``): the manifest's
        columns, detection columns and one column per head (``embedding``: ``(dim,)``
        float32 per row; :func:`facelab.stack_embeddings` stacks them). Failed images are
        rows with their reason, never dropped silently.

    Raises
    ------
    ValueError
        For an unknown head, engine or face policy.

    Examples
    --------
    >>> feats = facelab.extract(facelab.load_dataset("lfw").head(100))
    """
    return _pipeline.extract(manifest, **options)


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 split: str | list[str] | None = None, **options: Any) -> pd.DataFrame:
    """Read a dataset in its native layout into a manifest, one row per image.

    Parameters
    ----------
    name
        A registered dataset (:func:`facelab.list_datasets`: ``"lfw"``, ``"fairface"``,
        ``"utkface"``, ``"cfd"``, ``"celeba"``, ``"fer2013"``, ...) or ``"csv"``.
    root
        The dataset folder or the data root holding it (default ``$FACELAB_DATA``).
    split
        Keep only this split or these splits.
    **options
        Adapter options: see :func:`facelab.data.datasets.load_dataset`.

    Returns
    -------
    pandas.DataFrame
        Columns ``path``, ``subject``, ``gender``, ``race``, ``age`` (years), ``age_bin``,
        ``expression``, ``split`` first, then dataset extras; ``attrs["malformed"]``
        counts the rows dropped and why.

    Raises
    ------
    ValueError
        For an unknown dataset name or split.
    facelab.data.datasets.DatasetNotFoundError (a FileNotFoundError)
        When the dataset folder is missing (the message says where to get it).

    Examples
    --------
    >>> facelab.load_dataset("lfw").subject.nunique()  # the shared copy; full LFW: 5749
    4281
    """
    return _datasets.load_dataset(name, root, split, **options)


def audit(name: str, parameters: Mapping[str, Any] | None = None, *,
          results_root: str | os.PathLike | None = None, force: bool = True) -> Path:
    """Run one audit notebook (papermill) into its own run folder.

    Unlike ``facelab audit`` on the command line, this runs the notebook every time by
    default; ``force=False`` returns the newest ``ok`` run folder whose inputs are
    unchanged instead, when there is one (:mod:`facelab.report.uptodate`).

    Parameters
    ----------
    name
        Audit name: a number (``"02"``), a notebook stem or a unique part of it
        (``"verification"``); see ``facelab audit --help``.
    parameters
        Notebook parameters overriding its ``parameters`` cell (e.g. ``{"limit": 200}``).
    results_root
        Folder of run folders (default ``$FACELAB_RESULTS`` or ``results/``).
    force
        ``True`` (default): always execute. ``False``: reuse an up-to-date run.

    Returns
    -------
    pathlib.Path
        The run folder: executed notebook, ``metrics.json``, HTML report, figures,
        ``provenance.json`` and ``model_card.md``.

    Raises
    ------
    ValueError
        When ``name`` matches no notebook or several, a parameter is not one of the
        notebook's or its value does not fit the default's kind
        (:func:`facelab.report.audits.check_parameters`).
    papermill.PapermillExecutionError
        When the notebook fails (its executed copy and provenance are still written).

    Examples
    --------
    >>> run = facelab.audit("00_tour", {"limit": 20})
    >>> (run / "metrics.json").exists()
    True
    """
    notebook = _audits.resolve_audits([name])[0]
    _audits.check_parameters([notebook], parameters or {})
    if not force:
        run = _runner.latest_up_to_date(notebook, parameters, results_root)
        if run is not None:
            return run
    try:
        return _runner.run_audit(notebook, parameters=parameters, results_root=results_root)
    finally:  # results/index.html lists every run, this one included (even a failed one)
        _runs_index.write_index(Path(results_root) if results_root else results_dir())
