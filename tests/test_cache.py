"""FeatureCache: atomic writes, pickle-free entries, corrupt entries detected and removed."""

from __future__ import annotations

import numpy as np

from facelab.cache import FeatureCache, digest_array, digest_bytes, make_key


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
