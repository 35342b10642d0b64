"""Image input that never surprises: one loader, one error type.

``load_image`` accepts a path, raw bytes, a PIL image or a NumPy array and returns an
RGB ``uint8`` array of shape ``(H, W, 3)``. EXIF orientation is applied, every common
PIL mode is converted correctly, animated files give their first frame, and absurdly
large images are refused before they are decoded. Every failure raises
:class:`ImageError`, whose message names the source and the reason.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "load_image", "MAX_PIXELS", "set_max_pixels", "describe_source"]

#: Default decompression-bomb limit in pixels (width x height). Override per call with
#: ``max_pixels=`` or globally with :func:`set_max_pixels` or ``FACELAB_MAX_PIXELS``.
MAX_PIXELS: int = int(os.environ.get("FACELAB_MAX_PIXELS", 100_000_000))

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


class ImageError(ValueError):
    """An image could not be loaded. ``source`` names it and ``reason`` says why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


def set_max_pixels(limit: int) -> None:
    """Set the default decompression-bomb limit (pixels) for :func:`load_image`.

    Parameters
    ----------
    limit : int
        Largest accepted image size in pixels (width x height), e.g. ``50_000_000``.

    Raises
    ------
    ValueError
        If ``limit`` is not positive.
    """
    global MAX_PIXELS
    if limit <= 0:
        raise ValueError("max_pixels must be positive")
    MAX_PIXELS = int(limit)


def describe_source(source: Any) -> str:
    """A short human-readable name for an image source, used in error messages.

    Parameters
    ----------
    source : str, os.PathLike, bytes, PIL.Image.Image, numpy.ndarray or any
        The image source as given to :func:`load_image`.

    Returns
    -------
    str
        The path, or ``<N bytes>``, ``<PIL image MODE WxH>``, ``<array DTYPE SHAPE>``, or
        ``<TYPE>``.
    """
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> np.ndarray:
    """Load an image as an RGB ``uint8`` array.

    Parameters
    ----------
    source
        A file path, the encoded bytes of an image file, a PIL image, or an array
        (``H x W`` grey, ``H x W x 3`` RGB or ``H x W x 4`` RGBA; integer or float in
        [0, 1]).
    max_pixels
        Refuse images with more pixels than this (decompression-bomb guard). Defaults to
        :data:`MAX_PIXELS`.

    Returns
    -------
    numpy.ndarray
        Contiguous ``(H, W, 3)`` ``uint8`` RGB array.

    Raises
    ------
    ImageError
        For a missing path, an empty or truncated file, data that is not an image, an
        unsupported format or mode, or an image larger than ``max_pixels``.
    """
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    name = describe_source(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, name, limit)
    if isinstance(source, Image.Image):
        return _from_pil(source, name, limit)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        data = _read_file(Path(source), name)
    else:
        raise ImageError(name, f"unsupported source type {type(source).__name__}; "
                               "give a path, bytes, a PIL image or an array")
    if not data:
        raise ImageError(name, "empty (zero bytes)")
    return _decode(data, name, limit)


def _read_file(path: Path, name: str) -> bytes:
    if not path.exists():
        raise ImageError(name, "file not found")
    if path.is_dir():
        raise ImageError(name, "is a directory, not an image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from exc


def _decode(data: bytes, name: str, limit: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            _check_size(img.size, name, limit)
            img.seek(0)  # first frame of animated GIF/PNG/WebP/TIFF
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(name, f"image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(name, "not an image file, or an unsupported image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            reason = f"truncated image data ({reason})"
        else:
            reason = f"corrupt image data ({reason})"
        raise ImageError(name, reason) from exc
    return _from_pil(img, name, limit)


def _check_size(size: tuple[int, int], name: str, limit: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(name, f"invalid size {w}x{h}")
    if w * h > limit:
        raise ImageError(
            name, f"image too large: {w}x{h} = {w * h:,} pixels exceeds the limit of "
                  f"{limit:,} (raise max_pixels if this is intended)")


def _from_pil(img: Image.Image, name: str, limit: int) -> np.ndarray:
    _check_size(img.size, name, limit)
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img = ImageOps.exif_transpose(img) or img
        rgb = _to_rgb(img, name)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(name, f"corrupt image data ({exc})") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite transparency onto white so transparent areas are not black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            hi = 1.0
        grey = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        return img.convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(name, f"unsupported image mode {mode!r}") from exc


def _from_array(arr: np.ndarray, name: str, limit: int) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(name, "array must be HxW, HxWx3 or HxWx4")
    if arr.size == 0:
        raise ImageError(name, "empty array")
    _check_size((arr.shape[1], arr.shape[0]), name, limit)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(name, "array contains NaN or infinite values")
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        arr = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
    elif arr.dtype == np.uint16:
        arr = np.round(arr / 257.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ImageError(name, f"integer array of dtype {arr.dtype} outside 0..255")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = np.round(arr[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(arr)
