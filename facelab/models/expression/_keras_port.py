"""Rebuild a small Keras 2 functional model from its ``.hdf5`` file in PyTorch.

Reads the graph (``model_config``) and the weights with :mod:`h5py` only: no TensorFlow
and no Keras. Supports the layers of the mini-Xception family (Conv2D, SeparableConv2D,
BatchNormalization, Activation, MaxPooling2D, Add, GlobalAveragePooling2D), channels-last
models, ``'same'``/``'valid'`` padding. Keras/TensorFlow conventions reproduced:

* kernels are stored HWIO and become PyTorch OIHW; a depthwise kernel ``(kh, kw, in, m)``
  becomes ``(in * m, 1, kh, kw)`` with output channel ``c * m + j``;
* ``'same'`` padding follows TensorFlow: the total padding
  ``max((ceil(n / s) - 1) * s + k - n, 0)`` is split with the odd pixel on the
  right/bottom (asymmetric for stride-2 layers), max-pooling pads with ``-inf``;
* BatchNormalization uses the epsilon recorded in the layer config.

The module computes in NCHW; feed ``(n, channels, h, w)`` tensors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KerasGraph", "load_keras_hdf5", "tf_same_pad"]

SUPPORTED = ("InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
             "MaxPooling2D", "Add", "GlobalAveragePooling2D")
ERR_UNSUPPORTED = "layer {name!r} of class {cls!r} is not supported (supported: {known})"


def tf_same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor as TensorFlow's ``padding='same'`` does (extra pixel right/bottom)."""
    pads = []
    for n, k, s in zip(x.shape[2:], kernel, stride, strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "softmax":
        return F.softmax(x, dim=1)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    raise ValueError(f"unsupported Keras activation {name!r}")


class _Layer(nn.Module):
    """One Keras layer: its config, its parameters as buffers, and a forward."""

    def __init__(self, cls: str, config: dict, weights: dict[str, np.ndarray]):
        super().__init__()
        self.cls = cls
        self.config = config
        c = config
        if c.get("data_format", "channels_last") != "channels_last":
            raise ValueError(f"layer {c.get('name')!r}: only channels_last models are supported")
        if cls == "Conv2D":
            if tuple(c.get("dilation_rate", (1, 1))) != (1, 1):
                raise ValueError(f"layer {c['name']!r}: dilated convolutions are not supported")
            self.register_buffer("weight", _t(weights["kernel"].transpose(3, 2, 0, 1)))
            self.register_buffer("bias", _t(weights["bias"]) if "bias" in weights else None)
        elif cls == "SeparableConv2D":
            dk = weights["depthwise_kernel"]  # (kh, kw, in, m)
            kh, kw, cin, mult = dk.shape
            self.register_buffer(
                "depthwise", _t(dk.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]))
            self.register_buffer("pointwise", _t(weights["pointwise_kernel"].transpose(3, 2, 0, 1)))
            self.register_buffer("bias", _t(weights["bias"]) if "bias" in weights else None)
        elif cls == "BatchNormalization":
            if c.get("axis", -1) not in (-1, 3):
                raise ValueError(f"layer {c['name']!r}: BatchNormalization axis must be channels")
            n = weights["moving_mean"].shape[0]
            gamma = weights.get("gamma", np.ones(n, np.float32))
            beta = weights.get("beta", np.zeros(n, np.float32))
            scale = gamma / np.sqrt(weights["moving_variance"] + float(c["epsilon"]))
            self.register_buffer("scale", _t(scale))
            self.register_buffer("shift", _t(beta - weights["moving_mean"] * scale))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        c, cls = self.config, self.cls
        x = xs[0]
        if cls == "InputLayer":
            return x
        if cls == "Add":
            out = xs[0]
            for other in xs[1:]:
                out = out + other
            return out
        if cls == "Activation":
            return _activation(c["activation"], x)
        if cls == "BatchNormalization":
            return x * self.scale[None, :, None, None] + self.shift[None, :, None, None]
        if cls == "GlobalAveragePooling2D":
            return x.mean(dim=(2, 3))
        if cls == "MaxPooling2D":
            k, s = tuple(c["pool_size"]), tuple(c["strides"] or c["pool_size"])
            if c["padding"] == "same":
                x = tf_same_pad(x, k, s, value=-math.inf)
            return F.max_pool2d(x, k, s)
        k, s = tuple(c["kernel_size"]), tuple(c["strides"])
        if c["padding"] == "same":
            x = tf_same_pad(x, k, s)
        if cls == "Conv2D":
            x = F.conv2d(x, self.weight, self.bias, stride=s)
        else:  # SeparableConv2D: depthwise (strided) then pointwise 1x1
            x = F.conv2d(x, self.depthwise, None, stride=s, groups=x.shape[1])
            x = F.conv2d(x, self.pointwise, self.bias)
        return _activation(c.get("activation", "linear"), x)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class KerasGraph(nn.Module):
    """A Keras 2 functional ``Model`` replayed layer by layer in PyTorch (inference only)."""

    def __init__(self, layers: list[dict], weights: dict[str, dict[str, np.ndarray]],
                 inputs: list[str], outputs: list[str]):
        super().__init__()
        self.order: list[str] = []
        self.inbound: dict[str, list[str]] = {}
        self.layers = nn.ModuleDict()
        for layer in layers:
            cls, cfg = layer["class_name"], layer["config"]
            name = layer["name"]
            if cls not in SUPPORTED:
                raise ValueError(ERR_UNSUPPORTED.format(name=name, cls=cls,
                                                        known=", ".join(SUPPORTED)))
            nodes = layer.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise ValueError(f"layer {name!r} is shared; shared layers are not supported")
            self.inbound[name] = [n[0] for n in nodes[0]] if nodes else []
            self.layers[name] = _Layer(cls, cfg, weights.get(name, {}))
            self.order.append(name)
        self.inputs, self.outputs = inputs, outputs
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last is the fast layout for CPU convolutions and max-pooling
        values: dict[str, torch.Tensor] = {
            self.inputs[0]: x.contiguous(memory_format=torch.channels_last)}
        for name in self.order:
            if name in values and not self.inbound[name]:
                continue
            values[name] = self.layers[name](*(values[i] for i in self.inbound[name]))
        return values[self.outputs[0]]


def _read_weights(group: h5py.Group) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for raw in group.attrs["layer_names"]:
        lname = raw.decode() if isinstance(raw, bytes) else str(raw)
        lg = group[lname]
        arrays = {}
        for wraw in lg.attrs.get("weight_names", []):
            wname = wraw.decode() if isinstance(wraw, bytes) else str(wraw)
            short = wname.rsplit("/", 1)[-1].split(":", 1)[0]  # ".../kernel:0" -> "kernel"
            arrays[short] = np.asarray(lg[wname], dtype=np.float32)
        out[lname] = arrays
    return out


def load_keras_hdf5(path: str | Path) -> tuple[KerasGraph, dict[str, Any]]:
    """Read a Keras 2 functional model saved with ``model.save`` (``.hdf5``).

    Returns
    -------
    (graph, info)
        The PyTorch module in eval mode, and ``info`` with ``keras_version``, ``backend``
        and the parsed ``model_config``.
    """
    with h5py.File(path, "r") as fh:
        config = json.loads(_str(fh.attrs["model_config"]))
        weights = _read_weights(fh["model_weights"] if "model_weights" in fh else fh)
        info = {"keras_version": _str(fh.attrs.get("keras_version", "")),
                "backend": _str(fh.attrs.get("backend", "")), "model_config": config}
    if config["class_name"] != "Model":
        raise ValueError(f"only functional Keras models are supported, got "
                         f"{config['class_name']!r}")
    cfg = config["config"]
    graph = KerasGraph(cfg["layers"], weights, [i[0] for i in cfg["input_layers"]],
                       [o[0] for o in cfg["output_layers"]])
    return graph, info


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
