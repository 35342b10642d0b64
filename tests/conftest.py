"""Shared fixtures: the data root (one setting, FACELAB_DATA) and package-shipped images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "agg")


def missing_data(message: str) -> None:
    """A test's data is not there: skip, but fail when FACELAB_REQUIRE_DATA=1 (CI), where
    every shared dataset must be present."""
    if os.environ.get("FACELAB_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``$FACELAB_DATA``. Skips when unset, but fails when FACELAB_REQUIRE_DATA=1 (CI)."""
    value = os.environ.get("FACELAB_DATA")
    if value and Path(value).is_dir():
        return Path(value).resolve()
    missing_data(f"FACELAB_DATA is not set to a folder (got {value!r})")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo: one frontal face, RGB uint8 512x512."""
    from skimage import data

    return data.astronaut()


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty feature cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FACELAB_CACHE", str(path))
    return path


@pytest.fixture
def face_files(tmp_path, astronaut):
    """The astronaut photo (one face) and a flat grey image (no face), as files."""
    from PIL import Image

    paths = []
    for name, img in (("astronaut.png", astronaut),
                      ("grey.png", np.full((200, 200, 3), 128, np.uint8))):
        Image.fromarray(img).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return pd.DataFrame({"path": paths, "race": ["White", "White"],
                         "gender": ["female", "female"]})
