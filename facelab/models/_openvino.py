"""PyTorch ports converted once to OpenVINO IR, cached on disk, and run on OpenVINO's CPU.

Shared by the models that replay their original weights in PyTorch and run them in
OpenVINO (:mod:`facelab.models.expression.fer`, :mod:`facelab.models.embedders.dlib_resnet`).
:func:`torch_ir` traces the module on an example batch with ``openvino.convert_model``
(dynamic batch dimension) and keeps the IR in ``facelab.core.config.cache_dir()/models/``,
named by the model, a converter version, the SHA-256 of the source weights file and the
OpenVINO version: the conversion runs once per weights file and OpenVINO version, and
later loads read the IR (derived data: the weights still come from the installed package).
:func:`compile_request` compiles an IR for the CPU at fp32 precision.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["default_threads", "torch_ir", "compile_request"]


def default_threads(threads: int | None = None) -> int:
    """Intra-op threads for a runtime: ``threads`` if given, else ``$OMP_NUM_THREADS``.

    Parameters
    ----------
    threads
        Explicit count (``0`` = the runtime's default, every core).

    Returns
    -------
    int
        ``threads``, else ``$OMP_NUM_THREADS`` when it is a positive integer (the pipeline's
        process workers set it to 1), else 0.
    """
    if threads is not None:
        return int(threads)
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 0


def torch_ir(build: Callable[[], object], example_shape: Sequence[int], name: str,
             source: str | os.PathLike, converter_version: int,
             cache: str | os.PathLike | None = None) -> Path:
    """A PyTorch module converted to OpenVINO IR once and kept in the cache folder.

    Parameters
    ----------
    build
        Returns the ``torch.nn.Module`` (in eval mode) to convert; called only when the IR
        is not cached yet.
    example_shape
        Shape of the float32 example input, batch first (e.g. ``(2, 3, 150, 150)``); the
        batch dimension of the IR is dynamic.
    name
        Model name, the start of the file name.
    source
        The weights file the module was built from (its SHA-256 names the IR).
    converter_version
        Bumped by the caller when its conversion changes.
    cache
        Folder; default ``facelab.core.config.cache_dir()/models``.

    Returns
    -------
    pathlib.Path
        ``<cache>/<name>.ov-v<converter_version>-<sha256 of source, 16 hex>-<openvino
        version>.xml`` (with its ``.bin``). Written in a temporary folder and moved into
        place, the ``.bin`` before the ``.xml``, so a reader that finds the ``.xml`` finds a
        whole model, and a killed conversion leaves no torn file.
    """
    import openvino as ov

    from facelab.core.provenance import file_sha256

    if cache is None:
        from facelab.core.config import cache_dir

        cache = cache_dir() / "models"
    folder = Path(cache)
    digest = file_sha256(str(source))[:16]
    version = ov.get_version().split("-")[0]
    xml = folder / f"{name}.ov-v{converter_version}-{digest}-{version}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml  # a cached IR needs no torch
    import torch

    net = build()
    example = torch.zeros(tuple(example_shape), dtype=torch.float32)
    with warnings.catch_warnings():  # tracing warns about Python-side shape arithmetic
        warnings.simplefilter("ignore")
        model = ov.convert_model(net, example_input=example,
                                 input=[ov.PartialShape([-1, *example_shape[1:]])])
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".{name}-ov-") as tmp:
        ov.save_model(model, str(Path(tmp) / xml.name), compress_to_fp16=False)
        os.replace(Path(tmp) / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
        os.replace(Path(tmp) / xml.name, xml)
    return xml


def compile_request(xml: str | os.PathLike, threads: int | None = None):
    """An OpenVINO CPU infer request for an IR, fp32 precision, latency hint.

    Parameters
    ----------
    xml
        The IR (``.xml`` next to its ``.bin``).
    threads
        Inference threads (see :func:`default_threads`; 0 = every core).

    Returns
    -------
    openvino.InferRequest
        Not thread-safe: callers hold a lock around ``infer``.
    """
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    threads = default_threads(threads)
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(xml), "CPU", config).create_infer_request()
