"""Every registered model loads and runs offline, and states where it comes from."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from facelab.models.registry import KINDS, ModelError, create_model, list_models, model_spec

MODELS = list_models()
NAMES = list(MODELS["name"])


class NetworkBlocked(OSError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkBlocked(f"network access attempted: {args!r}")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or open a connection raises."""
    for obj, attr in [(socket.socket, "connect"), (socket.socket, "connect_ex"),
                      (socket, "create_connection"), (socket, "getaddrinfo")]:
        monkeypatch.setattr(obj, attr, _refuse)


@pytest.fixture(scope="module")
def astronaut_faces(astronaut):
    return create_model("yunet").detect(astronaut)


def test_network_block_works(no_network):
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("pypi.org", 443), timeout=1)
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("pypi.org", 443)


def test_every_kind_has_a_model_and_one_default():
    for kind in ("detector", "expression"):
        rows = MODELS[MODELS["kind"] == kind]
        assert len(rows) >= 1, kind
        assert rows["default"].sum() == 1, kind
    assert set(MODELS["kind"]) <= set(KINDS)


@pytest.mark.parametrize("name", NAMES)
def test_model_runs_offline(name, no_network, astronaut, astronaut_faces):
    spec = model_spec(name)
    model = create_model(name)
    assert model.spec is spec
    if spec.kind == "detector":
        faces = model.detect(astronaut)
        assert len(faces) >= 1
        assert all(0 <= f.score <= 1 for f in faces)
    elif spec.kind in ("expression", "attribute"):
        out = model.predict(astronaut, astronaut_faces)
        assert isinstance(out, pd.DataFrame) and len(out) == len(astronaut_faces)
        if spec.kind == "expression" and spec.labels:
            assert list(out.columns[: len(spec.labels)]) == list(spec.labels)
            probs = out[list(spec.labels)].to_numpy()
            assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-3)
        if spec.kind == "attribute":
            assert {"gender", "gender_confidence", "age", "age_low", "age_high"} <= set(out)
    elif spec.kind == "skin_tone":
        out = model.predict(astronaut, astronaut_faces)
        assert len(out) == len(astronaut_faces) and (out["flag"] == "").all()
        assert out["tone"].isin(["lighter", "darker"]).all() and (out["n_pixels"] > 0).all()
    elif spec.kind == "embedder":
        emb = model.embed(astronaut, astronaut_faces)
        assert emb.shape == (len(astronaut_faces), model.dim)
        assert np.isfinite(emb).all()
    else:  # pragma: no cover
        pytest.fail(f"unknown kind {spec.kind}")


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete_and_weights_exist(name):
    spec = model_spec(name)
    for field in ("description", "output", "input_size", "package", "licence"):
        assert getattr(spec, field).strip(), f"{name}: empty {field}"
    assert spec.weights, f"{name}: no weights listed"
    paths = spec.weight_paths()
    real = [w for w in spec.weights if not w.startswith("<")]
    assert len(paths) == len(real)
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0, p


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelError) as err:
        create_model("no-such-model")
    for name in NAMES:
        assert name in str(err.value)
    with pytest.raises(ModelError, match="yunet"):
        create_model("no-such-detector", kind="detector")
    with pytest.raises(ModelError, match="known detector models"):
        create_model("fer-mini-xception", kind="detector")


def test_licences_name_non_commercial_weights():
    """dlib's 68-point predictor (iBUG 300-W data) is not for commercial use; any model
    that lists it must say so."""
    for name in NAMES:
        spec = model_spec(name)
        if any("68_face_landmarks" in w for w in spec.weights):
            assert "commercial" in spec.licence.lower(), name
