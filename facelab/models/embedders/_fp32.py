"""Dequantize a weight-only quantised ONNX graph once into a plain fp32 graph, cached on disk.

OpenCV zoo's ``*_int8bq.onnx`` files store each weight as int8 blocks with a scale per
block and rebuild the fp32 weight at run time (``DequantizeLinear`` with ``block_size``,
opset 21, then ``Reshape``); the activations are fp32 throughout. Runtimes that do not
implement blocked ``DequantizeLinear`` (OpenVINO) or that then run the network one image
at a time gain nothing from the int8 storage. :func:`dequantized_graph` evaluates the
weight-only part of the graph once with the ONNX reference implementation
(:class:`onnx.reference.ReferenceEvaluator`, so the arithmetic is ONNX's own, not
re-written here), stores the resulting fp32 tensors as initializers, removes inference
no-ops (``Dropout``, its ``Constant``) and makes the batch dimension dynamic. The network
computes the same function: embeddings agree with OpenCV's run of the int8 file to a
cosine of 0.99999 (``tests/test_embedders.py``).

The fp32 file lives in ``facelab.core.config.cache_dir()/models/`` and is named by the SHA-256
of the source file, so a new source file gives a new graph; it is written to a temporary
file and renamed (atomic), so concurrent builders or a killed build never leave a torn file.
The weights still come only from the installed package: the cached file is derived data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["dequantized_graph", "CONVERTER_VERSION"]

#: Bumped when the conversion changes (part of the cached file's name).
CONVERTER_VERSION = 1


def _convert(src: Path, dst: Path) -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    # weight-only nodes: every input is an initializer or the output of another such node
    known = set(inits)
    weight_nodes = []
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape", "Cast") and all(
                i in known for i in node.input if i):
            weight_nodes.append(node)
            known.update(node.output)
    rest = [n for n in graph.node if n not in weight_nodes]
    consumed = {i for n in rest for i in n.input}
    wanted = [o for n in weight_nodes for o in n.output if o in consumed]
    new_inits = []
    if weight_nodes:
        sub_inputs = {i for n in weight_nodes for i in n.input if i in inits}
        sub = helper.make_graph(
            weight_nodes, "weights", [],
            [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in wanted],
            initializer=[inits[i] for i in sorted(sub_inputs)])
        values = ReferenceEvaluator(helper.make_model(sub, opset_imports=model.opset_import)
                                    ).run(None, {})
        new_inits = [numpy_helper.from_array(np.asarray(v, np.float32), name)
                     for name, v in zip(wanted, values, strict=True)]
    # inference no-ops: Dropout (identity at inference) and the Constant feeding its ratio
    alias: dict[str, str] = {}
    nodes = []
    for node in rest:
        for k, name in enumerate(node.input):
            node.input[k] = alias.get(name, name)
        if node.op_type == "Dropout":
            alias[node.output[0]] = node.input[0]
            continue
        nodes.append(node)
    used = {i for n in nodes for i in n.input}
    nodes = [n for n in nodes if n.op_type != "Constant" or any(o in used for o in n.output)]
    used = {i for n in nodes for i in n.input}
    initializers = [t for t in graph.initializer if t.name in used] + \
        [t for t in new_inits if t.name in used]
    init_names = {t.name for t in initializers}
    # graph inputs that are really weights stop ORT/OpenVINO from folding them: keep data only
    inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    for value in [*inputs, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "batch"
    out = helper.make_graph(nodes, graph.name, inputs, list(graph.output),
                            initializer=initializers)
    opset = max(17, *(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))
    converted = helper.make_model(out, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="facelab.models.embedders._fp32")
    converted.ir_version = model.ir_version if model.ir_version >= 7 else 8
    onnx.checker.check_model(converted)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(converted.SerializeToString())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dequantized_graph(src: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """The fp32 version of a weight-quantised ONNX file, built once and cached.

    Parameters
    ----------
    src
        The quantised ``.onnx`` file (inside an installed package).
    cache
        Folder for the converted file; default ``facelab.core.config.cache_dir()/models``.

    Returns
    -------
    pathlib.Path
        ``<cache>/<src stem>.fp32-v<CONVERTER_VERSION>-<sha256 of src, 16 hex>.onnx``, with
        fp32 initializers, a dynamic batch dimension and the data input(s) only.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    onnx.checker.ValidationError
        If the converted graph is not valid ONNX.
    """
    from facelab.core.provenance import file_sha256

    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no ONNX file at {src}")
    if cache is None:
        from facelab.core.config import cache_dir

        cache = cache_dir() / "models"
    digest = file_sha256(str(src))
    dst = Path(cache) / f"{src.stem}.fp32-v{CONVERTER_VERSION}-{digest[:16]}.onnx"
    if not dst.is_file():
        _convert(src, dst)
    return dst
