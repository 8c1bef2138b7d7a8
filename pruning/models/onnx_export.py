"""ONNX exports of the zoo's models, masked (dense shapes, pruned weights 0) or shrunk (``shrink.py``),
and running them with onnxruntime.

Each framework has its exporter module, ``onnx_<framework>.py``: ``onnx_torch.py`` uses
``torch.onnx.export(..., dynamo=True)``, ``onnx_keras.py`` ``keras.Model.export(format="onnx")``.
Both graphs take a batch of any size in their framework's input convention (the module's
``INPUT``); ``inputs(model, images)`` converts uint8 test images to it.  Every file is written from a
model this process built itself (``export.own``); nothing here loads an ONNX file from outside.
"""

import importlib

import numpy as np

from ..errors import PruningError
from ..fileio import atomic_write

IMAGE_SHAPES = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3)}


def exporter(model):
    """The ``onnx_<framework>`` module of ``model`` (imported only now)."""
    return importlib.import_module(f"{__package__}.onnx_{model.framework}")


def inputs(model, images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, c) as the ONNX export of ``model`` takes them."""
    return exporter(model).inputs(model, images)


def to_bytes(model, mask, shrunk: bool) -> bytes:
    """The ONNX file of ``model`` under ``mask`` (shrunk: removed units gone)."""
    from .export import check_format

    check_format(model, "shrunk-onnx" if shrunk else "onnx")
    example = inputs(model, np.zeros((2, *IMAGE_SHAPES[model.dataset]), np.uint8))
    return exporter(model).to_bytes(model, mask, shrunk, example)


def write(model, mask, path, shrunk: bool) -> None:
    if not str(path).endswith(".onnx"):
        raise PruningError(f"an ONNX file must end in .onnx, got {path}")
    data = to_bytes(model, mask, shrunk)
    atomic_write(path, lambda f: f.write(data))


def session(data: bytes, threads: int | None = None):
    """An onnxruntime CPU session of an ONNX file this process wrote (``data``: its bytes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run(sess, x: np.ndarray, batch: int) -> np.ndarray:
    """Logits (n, classes) of ``x`` (already as ``inputs`` gives it), ``batch`` images per call."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])
