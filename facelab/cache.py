"""A content-addressed, crash-safe, on-disk cache of per-image results.

Each entry is one ``.npz`` file (NumPy arrays, read with ``allow_pickle=False``; never
pickle) named by a key: the SHA-256 of a JSON description of what was computed (the
image bytes' hash, the model name, its weights' checksums and its parameters; see
:func:`make_key`). Entries are written to a temporary file in the same folder and then
renamed with :func:`os.replace`, so a reader sees either the complete entry or none:
a run killed half-way leaves only whole entries, and a rerun resumes where it stopped.
An entry that fails to read (truncated, bit-flipped: zip CRC errors, or a key that does
not match its name) is counted as corrupt, deleted and recomputed by the caller.

Layout: ``<root>/<key[:2]>/<key>.npz``; default root ``facelab.config.cache_dir()/features``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FeatureCache", "make_key", "digest_bytes", "digest_array", "KEY_VERSION"]

#: Bumped when the meaning of cached records changes, which invalidates old entries.
KEY_VERSION = 1
_KEY_FIELD = "__key__"


def digest_bytes(data: bytes) -> str:
    """SHA-256 hex digest of raw bytes (the content address of an image file)."""
    return hashlib.sha256(data).hexdigest()


def digest_array(arr: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (for images held in memory)."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def make_key(**parts: Any) -> str:
    """Cache key: SHA-256 of the canonical JSON of ``parts`` plus :data:`KEY_VERSION`."""
    text = json.dumps({"v": KEY_VERSION, **parts}, sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """Read and write cache entries (dicts of NumPy arrays) by key.

    Attributes
    ----------
    hits, misses, corrupt, writes
        Counters since the object was created.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            from facelab.config import cache_dir

            root = cache_dir() / "features"
        self.root = Path(root).expanduser()
        self.hits = self.misses = self.corrupt = self.writes = 0

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or ``None`` when absent or corrupt (a corrupt file is removed)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
                zipfile.LargeZipFile):
            return self._corrupt(path)
        stored = arrays.pop(_KEY_FIELD, None)
        if stored is None or str(stored) != key:
            return self._corrupt(path)
        self.hits += 1
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write an entry atomically (temporary file + :func:`os.replace`)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **{_KEY_FIELD: np.array(key)}, **dict(arrays))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1
        return path

    def keys(self) -> list[str]:
        """Keys of every complete entry on disk."""
        return sorted(p.stem for p in self.root.glob("*/*.npz"))

    def remove_temp(self) -> int:
        """Delete temporary files left by killed runs; returns how many were removed."""
        n = 0
        for p in self.root.glob("*/.*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def _corrupt(self, path: Path) -> None:
        self.corrupt += 1
        path.unlink(missing_ok=True)
        return None

    def stats(self) -> dict[str, int]:
        """Counters as a dict (hits, misses, corrupt, writes)."""
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt,
                "writes": self.writes}
