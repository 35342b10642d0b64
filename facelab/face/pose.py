"""Head pose (yaw, pitch, roll in degrees) from the five landmarks.

Method (closed form, weak perspective, one generic face):

1. ``roll`` is the angle of the line from the left to the right eye.
2. The landmarks are rotated by ``-roll`` about the eye midpoint.
3. ``yaw`` comes from the nose's horizontal offset ``dx`` from the face's midline (the
   mean x of the eye midpoint and the mouth midpoint). The nose tip sits ``c`` in front
   of the eye/mouth plane, so turning by ``yaw`` moves it by ``c sin(yaw)`` while the eye
   distance shrinks to ``D cos(yaw)``: ``yaw = atan((dx / D_seen) / (c / D))``.
4. ``pitch`` comes from the nose's vertical position between the eye line and the mouth
   line, ``t = (nose_y - eye_y) / (mouth_y - eye_y)``, compared with the frontal value
   ``t0``: ``pitch = atan((t0 - t) / (c_eye / L))``.

The generic face: frontal ``(x, y)`` from the ArcFace 112x112 template
(:data:`facelab.face.align.ARCFACE_TEMPLATE_112`: eye distance ``D`` = 35.24 px, eye-to-mouth
``L`` = 40.67 px, ``t0`` = 0.495); depths from the generic head model of OpenCV's head-pose
tutorials (Mallick 2016: eyes 135 and mouth corners 125 units behind the nose tip, eye
outer corners 450 units apart) rescaled with an eye-centre distance of 0.69 x the
outer-corner distance (adult anthropometry): eyes ``c_eye`` = 15.3 px and mouth corners
14.2 px behind the nose tip (``c`` = 14.75, their mean). Only ratios are used, so the
face's size and the camera do not enter.

Angles, for a face seen by the camera (a frontal face is ``(0, 0, 0)``):

* ``yaw`` > 0: the face turns towards the image's right (the nose points right);
* ``pitch`` > 0: the face tilts up (chin up, the nose moves towards the eyes);
* ``roll`` > 0: the head tilts clockwise in the image (the image-right eye is lower).

Limits: every face is given the same generic shape, so individual anatomy (nose length
and position, smiling mouth corners) shifts yaw and pitch by several degrees, pitch the
most; the weak-perspective model ignores perspective distortion of close faces; beyond
about 45 degrees of yaw or pitch the landmark detectors themselves degrade and the
estimates are unreliable. Roll, set by the eye line alone, is the most reliable angle.
Derived landmarks (BlazeFace mouth corners) make pitch less reliable. No landmarks -> no
pose. Use these angles to flag non-frontal faces, not as measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facelab.core.types import Face
from facelab.face.align import ARCFACE_TEMPLATE_112

__all__ = ["Pose", "estimate_pose", "face_pose"]

_T = ARCFACE_TEMPLATE_112
_D = float(np.linalg.norm(_T[1] - _T[0]))                      # eye distance
_EYE_MID, _MOUTH_MID = (_T[0] + _T[1]) / 2, (_T[3] + _T[4]) / 2
_L = float(_MOUTH_MID[1] - _EYE_MID[1])                        # eye line to mouth line
_T0 = float((_T[2, 1] - _EYE_MID[1]) / _L)                     # frontal nose position
_EYE_DEPTH, _MOUTH_DEPTH = 15.3, 14.2                          # behind the nose tip, px
_YAW_K = (_EYE_DEPTH + _MOUTH_DEPTH) / 2 / _D                  # c / D
_PITCH_K = _EYE_DEPTH / _L                                     # c_eye / L


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees (see the module docstring for method and sign conventions)."""

    yaw: float
    pitch: float
    roll: float

    def to_dict(self) -> dict:
        """The angles rounded to 0.1 degree.

        Returns
        -------
        dict
            ``{"yaw": ..., "pitch": ..., "roll": ...}`` in degrees.
        """
        return {k: round(v, 1) for k, v in asdict(self).items()}


def estimate_pose(landmarks: np.ndarray) -> Pose | None:
    """Pose of one face from its five landmarks (method: the module docstring).

    Parameters
    ----------
    landmarks : numpy.ndarray
        ``(5, 2)`` ``(x, y)`` in pixels, :data:`facelab.core.types.LANDMARK_NAMES` order.

    Returns
    -------
    Pose or None
        Yaw, pitch and roll in degrees; ``None`` for non-finite or degenerate landmarks
        (coincident eyes, mouth not below the eyes).
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(pts).all():
        return None
    eye_vec = pts[1] - pts[0]
    dist = float(np.hypot(*eye_vec))
    if dist < 1e-6:
        return None
    roll = float(np.arctan2(eye_vec[1], eye_vec[0]))
    c, s = np.cos(-roll), np.sin(-roll)
    eye_mid = (pts[0] + pts[1]) / 2
    p = (pts - eye_mid) @ np.array([[c, s], [-s, c]])          # rotate by -roll
    mouth_mid = (p[3] + p[4]) / 2
    height = float(mouth_mid[1])                                 # eye midpoint is (0, 0)
    if height <= 1e-6:
        return None
    dx = float(p[2, 0] - mouth_mid[0] / 2)                       # nose vs midline
    t = float(p[2, 1] / height)
    yaw = np.degrees(np.arctan((dx / dist) / _YAW_K))
    pitch = np.degrees(np.arctan((_T0 - t) / _PITCH_K))
    return Pose(yaw=float(yaw), pitch=float(pitch), roll=float(np.degrees(roll)))


def face_pose(face: Face) -> Pose | None:
    """:func:`estimate_pose` for a :class:`~facelab.core.types.Face`.

    Parameters
    ----------
    face : Face
        A detected face.

    Returns
    -------
    Pose or None
        ``None`` when the face has no landmarks or they are degenerate.
    """
    return None if face.landmarks is None else estimate_pose(face.landmarks)
