"""Matching: 1:1 verification (:mod:`.verification`), 1:N search in a gallery (:mod:`.gallery`)
and the search indexes behind it (:mod:`.index`: exact and faiss).

Imports run one way inside this layer: ``index`` <- ``verification`` <- ``gallery``.
"""

from facelab.match.gallery import Gallery
from facelab.match.verification import NoFaceError, Verification, verify

__all__ = ["Gallery", "NoFaceError", "Verification", "verify"]
