"""load_image: every supported input converts correctly; every bad input raises ImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facelab.core.io import ImageError, load_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    arr[:10, :15] = (255, 0, 0)
    return arr


def test_path_bytes_pil_and_array_agree(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes(), Image.fromarray(rgb), rgb):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
        np.testing.assert_array_equal(out, rgb)


def test_exif_orientation_is_applied(tmp_path):
    # A 40x20 landscape image stored with orientation 6 (rotate 90 CW to display).
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    assert out.shape == (40, 20, 3)  # rotated to portrait
    # after rotating 90 degrees clockwise the red (left) half is on top
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60
    assert out[35, 10, 0] < 60


def test_greyscale_and_one_bit():
    grey = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    out = load_image(_encode(Image.fromarray(grey, "L"), "PNG"))
    np.testing.assert_array_equal(out[..., 0], grey)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    bits = Image.fromarray((grey > 127).astype(np.uint8) * 255, "L").convert("1")
    out1 = load_image(_encode(bits, "PNG"))
    assert set(np.unique(out1)) == {0, 255}
    np.testing.assert_array_equal(out1[..., 0] == 255, grey > 127)


def test_sixteen_bit_is_scaled_not_clipped():
    arr16 = np.full((8, 8), 65535, dtype=np.uint16)
    arr16[:4] = 32768
    img = Image.fromarray(arr16)  # mode I;16
    out = load_image(_encode(img, "PNG"))
    assert out[6, 0, 0] == 255
    assert abs(int(out[0, 0, 0]) - 128) <= 1
    out_arr = load_image(arr16)
    assert out_arr[6, 0, 0] == 255 and abs(int(out_arr[0, 0, 0]) - 128) <= 1


def test_palette_and_cmyk(rgb):
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = load_image(_encode(pal, "PNG"))
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_encode(cmyk, "JPEG", quality=100))
    assert out[0, 0, 0] > 230 and out[0, 0, 1] < 30 and out[0, 0, 2] < 30


def test_alpha_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top opaque red, bottom transparent
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[3, 0], [255, 255, 255])
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    out_la = load_image(_encode(la, "PNG"))
    np.testing.assert_array_equal(out_la[3, 0], [255, 255, 255])


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


def test_float_and_bool_arrays():
    f = np.full((3, 3), 0.5)
    assert load_image(f)[0, 0, 0] == 128
    b = np.eye(3, dtype=bool)
    assert load_image(b)[0, 0, 0] == 255 and load_image(b)[0, 1, 0] == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p / "missing.jpg", "file not found"),
        (lambda p: _write(p / "empty.jpg", b""), "empty"),
        (lambda p: _write(p / "notes.txt", b"hello, I am not an image\n" * 10), "not an image"),
        (lambda p: _write(p / "trunc.png", _png_bytes()[:60]), "truncated"),
        (lambda p: _write(p / "corrupt.jpg", _corrupt_jpeg()), "image"),
        (lambda p: p, "directory"),
    ],
)
def test_bad_inputs_raise_one_error_naming_file_and_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert reason in err.value.reason.lower()
    assert err.value.source == str(path)


def test_decompression_bomb_limit_is_configurable(tmp_path):
    data = _encode(Image.new("L", (400, 300)), "PNG")
    with pytest.raises(ImageError, match="too large"):
        load_image(data, max_pixels=100_000)
    assert load_image(data, max_pixels=120_000).shape == (300, 400, 3)
    with pytest.raises(ImageError, match="too large"):
        load_image(np.zeros((400, 300), np.uint8), max_pixels=1000)


def test_bad_arrays_and_types():
    with pytest.raises(ImageError, match="HxW"):
        load_image(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2), np.nan))
    with pytest.raises(ImageError, match="unsupported source"):
        load_image(12345)  # type: ignore[arg-type]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _png_bytes() -> bytes:
    rng = np.random.default_rng(1)
    return _encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")


def _corrupt_jpeg() -> bytes:
    data = bytearray(_encode(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG"))
    for i in range(200, len(data) - 2, 7):
        data[i] = 0xFF if data[i] != 0xFF else 0x00
    return bytes(data)
