"""00_tour runs end to end and records real outputs."""

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow


def test_00_tour(tmp_path, data_root):
    run, values = run_notebook("00_tour", {"limit": 8}, tmp_path, data_root)
    assert values["n_faces"] == 1  # the astronaut photo has one face
    v = values["verification"]
    assert v["same"] > v["different"]
    assert v["same"] >= v["threshold"] > v["different"]
    assert values["gallery_size"] == 8
    assert values["search_top1_is_mate"] is True
    analysis = values["analysis"][0]
    assert analysis["gender"] in ("female", "male")
    assert 0 <= analysis["confidence"] <= 1
    assert (run / "figures" / "annotated.png").exists()
    # the identity dataset the pairs and the gallery came from is in the provenance
    import json

    from facelab.data.datasets import load_dataset
    from facelab.report.record import manifest_hash

    manifests = json.loads((run / "provenance.json").read_text())["manifests"]
    assert len(manifests) == 1
    (name, entry), = manifests.items()
    assert name in ("celeba", "lfw")
    frame = load_dataset(name, root=data_root)
    assert entry == {"rows": len(frame), "sha256": manifest_hash(frame)}
