"""FeatureCache: atomic writes, pickle-free entries, corrupt entries detected and removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from facelab.core.provenance import digest_array, digest_bytes
from facelab.extraction.cache import FeatureCache, make_key


def test_roundtrip_and_counters(tmp_path):
    cache = FeatureCache(tmp_path)
    key = make_key(stage="detect", image=digest_bytes(b"abc"), model="m", options={"t": 0.5})
    assert cache.get(key) is None and cache.misses == 1
    rec = {"boxes": np.arange(8, dtype=np.float32).reshape(2, 4), "error": np.array("")}
    path = cache.put(key, rec)
    assert path.parent.name == key[:2] and path.suffix == ".npz"
    got = cache.get(key)
    np.testing.assert_array_equal(got["boxes"], rec["boxes"])
    assert str(got["error"]) == "" and cache.hits == 1
    assert key in cache and cache.keys() == [key]
    assert not list(tmp_path.glob("*/.*.tmp"))  # no temporary file left behind


def test_keys_depend_on_every_part():
    base = dict(stage="detect", image="a" * 64, model="yunet", weights={"f": "1"},
                options={"score_threshold": 0.6})
    k = make_key(**base)
    assert make_key(**base) == k
    for change in ({"image": "b" * 64}, {"model": "haar"}, {"weights": {"f": "2"}},
                   {"options": {"score_threshold": 0.7}}):
        assert make_key(**{**base, **change}) != k
    assert digest_array(np.zeros((2, 2), np.uint8)) != digest_array(np.zeros((2, 2), np.int16))


def test_corrupt_entries_are_detected_and_removed(tmp_path):
    cache = FeatureCache(tmp_path)
    keys = [make_key(i=i) for i in range(4)]
    for k in keys:
        cache.put(k, {"x": np.arange(1000, dtype=np.float64)})
    p0, p1, p2 = (cache.path(k) for k in keys[:3])
    p0.write_bytes(p0.read_bytes()[:100])  # truncated
    data = bytearray(p1.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flipped bits inside the array: zip CRC mismatch
    p1.write_bytes(bytes(data))
    p2.write_bytes(b"not a zip at all")
    # an entry copied under another key's name is rejected too
    cache.path(keys[3]).replace(cache.path(make_key(i=99)).parent.mkdir(parents=True,
                                exist_ok=True) or cache.path(make_key(i=99)))
    assert [cache.get(k) for k in keys[:3]] == [None, None, None]
    assert cache.get(make_key(i=99)) is None
    assert cache.corrupt == 4
    assert not any(cache.path(k).exists() for k in keys[:3])


def test_entries_never_need_pickle(tmp_path):
    cache = FeatureCache(tmp_path)
    key = make_key(x=1)
    cache.put(key, {"s": np.array('{"json": true}'), "v": np.ones(3, np.float32)})
    with np.load(cache.path(key), allow_pickle=False) as npz:
        assert set(npz.files) == {"__key__", "s", "v"}


# --------------------------------------------------------------------------- columnar

WRITER = """
import sys
import numpy as np
from facelab.extraction.cache import ColumnarCache, make_key
root, start, stop, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cache = ColumnarCache(root, flush_every=every)
have = set(cache.keys())
for i in range(start, stop):
    key = make_key(i=i)
    if key not in have:
        cache.put(key, {"i": np.array(i), "v": np.full((3, 4), i, np.float32),
                        "s": np.array(f"entry {i}")})
cache.flush()
"""


def _check(entry: dict, i: int) -> None:
    assert int(entry["i"]) == i and entry["i"].shape == ()
    np.testing.assert_array_equal(entry["v"], np.full((3, 4), i, np.float32))
    assert str(entry["s"]) == f"entry {i}"


def test_columnar_roundtrip_legacy_npz_and_migrate(tmp_path):
    from facelab.extraction.cache import ColumnarCache

    old = FeatureCache(tmp_path)
    old.put(make_key(i=-1), {"x": np.arange(3), "error": np.array("")})
    cache = ColumnarCache(tmp_path)
    rec = {"boxes": np.arange(8, dtype=np.float32).reshape(2, 4), "error": np.array(""),
           "t": np.arange(6).reshape(2, 3).T, "empty": np.zeros((0, 5, 2), np.float32)}
    cache.put(make_key(i=1), rec)
    assert cache.get(make_key(i=1))["boxes"].shape == (2, 4)  # served from the buffer
    cache.flush()
    assert not list(cache.dir.glob(".*.tmp"))
    fresh = ColumnarCache(tmp_path)
    got = fresh.get_many([make_key(i=1), make_key(i=-1), make_key(i=2)])
    assert set(got) == {make_key(i=1), make_key(i=-1)}
    for name, arr in rec.items():
        assert got[make_key(i=1)][name].dtype == arr.dtype
        np.testing.assert_array_equal(got[make_key(i=1)][name], arr)
    assert str(got[make_key(i=-1)]["error"]) == "" and fresh.legacy_hits == 1
    assert fresh.misses == 1 and fresh.hits == 2
    assert ColumnarCache(tmp_path).migrate(remove=True) == 1
    assert old.keys() == []
    again = ColumnarCache(tmp_path)
    np.testing.assert_array_equal(again.get(make_key(i=-1))["x"], np.arange(3))
    assert again.legacy_hits == 0 and len(again.keys()) == 2


def test_columnar_two_processes_writing_at_once_lose_nothing(tmp_path):
    from facelab.extraction.cache import ColumnarCache

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(a), str(b), "7"],
                              env=env) for a, b in ((0, 300), (150, 450))]  # overlap 150
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cache = ColumnarCache(root)
    got = cache.get_many([make_key(i=i) for i in range(450)])
    assert len(got) == 450 and cache.corrupt == 0
    for i in (0, 149, 150, 299, 449):
        _check(got[make_key(i=i)], i)
    before = len(cache.segments())
    assert before >= 2 * (300 // 7) and cache.compact() == before  # both writers' segments
    assert len(ColumnarCache(root).segments()) == 1
    assert len(ColumnarCache(root).get_many([make_key(i=i) for i in range(450)])) == 450


def test_columnar_sigkill_mid_run_leaves_whole_segments_and_resumes(tmp_path):
    from facelab.extraction.cache import ColumnarCache

    script = tmp_path / "writer.py"
    script.write_text(WRITER.replace("cache.put(", "time.sleep(0.002); cache.put(")
                      .replace("import sys", "import sys, time"))
    root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(root), "0", "100000", "5"],
                            env=env)
    deadline = time.time() + 60
    while len(list(root.glob("columnar/seg-*.parquet"))) < 4 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = ColumnarCache(root)
    keys = set(cache.keys())
    assert 20 <= len(keys) < 100000 and cache.corrupt == 0  # whole segments only
    done = sorted(i for i in range(100000) if make_key(i=i) in keys)
    n = len(done)
    # resume: a rerun over a smaller range writes only what is missing
    subprocess.run([sys.executable, str(script), str(root), "0", str(n + 40), "5"], env=env,
                   check=True, timeout=120)
    cache = ColumnarCache(root)
    got = cache.get_many([make_key(i=i) for i in range(n + 40)])
    assert len(got) == n + 40 and cache.corrupt == 0
    _check(got[make_key(i=n + 39)], n + 39)
    cache.remove_temp()
    assert not list(root.glob("columnar/.*.tmp"))


def test_columnar_compacts_only_the_given_segments(tmp_path):
    from facelab.extraction.cache import ColumnarCache

    other = ColumnarCache(tmp_path)
    other.put(make_key(i=-1), {"i": np.array(-1)})
    other.flush()
    cache = ColumnarCache(tmp_path, flush_every=2)
    for i in range(6):
        cache.put(make_key(i=i), {"i": np.array(i)})
    assert len(cache.written) == 3 and len(cache.segments()) == 4
    assert cache.compact(segments=cache.written) == 3
    assert len(cache.segments()) == 2 and cache.written == []
    got = ColumnarCache(tmp_path).get_many([make_key(i=i) for i in range(-1, 6)])
    assert sorted(int(v["i"]) for v in got.values()) == list(range(-1, 6))
