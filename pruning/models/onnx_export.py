"""ONNX exports of the zoo's models, masked (dense shapes, pruned weights 0) or shrunk (``shrink.py``),
and running them with onnxruntime.

PyTorch models go through ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter,
which needs onnxscript); Keras models through ``keras.Model.export(format="onnx")`` (tf2onnx).  Both
graphs take a batch of any size, in the input convention of their framework:
  PyTorch  float32 (n, c, h, w), pixel / 255 in [0, 1]     input name "pixels"
  Keras    float32 (n, h, w) or (n, h, w, c), raw pixels 0..255, as the Keras model takes them
``inputs(model, images)`` converts uint8 test images to it.  Every file is written from a model
this process built itself (``export.own``); nothing here loads an ONNX file from outside.
"""

import contextlib
import io
from pathlib import Path
import tempfile

import numpy as np

from ..errors import PruningError
from ..io import atomic_write, silenced_stderr

OPSET = 18


def inputs(model, images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, c) as the ONNX export of ``model`` takes them."""
    if model.framework == "torch":
        from .torch_model import to_input

        return to_input(images).numpy()
    from .keras_model import to_input

    return to_input(images, model.input_shape)


def torch_module(model, mask, shrunk: bool):
    """The nn.Module (eval mode, normalisation included) of a zoo model under ``mask``."""
    import torch

    from . import shrink, shrink_torch
    from .torch_model import build

    if shrunk:
        return shrink_torch.from_state(*shrink_torch.shrunk_state(model, mask))
    kernels, units = shrink.effective(model, mask)
    state = {k: np.array(v) for k, v in model.states["final"].items()}
    state.update({k: np.array(v) for k, v in {**units, **kernels}.items()})
    module = build(model.info).eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return module


def keras_model(model, mask, shrunk: bool):
    from . import shrink
    from .shrink_keras import shrunk_keras

    if shrunk:
        return shrunk_keras(model, mask)
    kernels, units = shrink.effective(model, mask)
    return model.to_keras({**units, **kernels}, "final")


def _torch_bytes(module, example: np.ndarray) -> bytes:
    import torch

    batch = torch.export.Dim("batch", min=1)
    with tempfile.TemporaryDirectory() as tmp, silenced_stderr(), contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(module, (torch.from_numpy(example),), input_names=["pixels"],
                                    output_names=["logits"], dynamic_shapes=({0: batch},), dynamo=True,
                                    opset_version=OPSET, verbose=False)
        program.save(str(path), external_data=False)
        return path.read_bytes()


def _keras_bytes(kmodel, example: np.ndarray) -> bytes:
    kmodel(example)  # Keras exports only a model that has been called
    with tempfile.TemporaryDirectory() as tmp, silenced_stderr(), contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        kmodel.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()


def to_bytes(model, mask, shrunk: bool) -> bytes:
    """The ONNX file of ``model`` under ``mask`` (shrunk: removed units gone)."""
    from .export import check_format

    check_format(model, "shrunk-onnx" if shrunk else "onnx")
    h, w, *c = _image_shape(model)
    example = inputs(model, np.zeros((2, h, w, *c), np.uint8))
    if model.framework == "torch":
        return _torch_bytes(torch_module(model, mask, shrunk), example)
    return _keras_bytes(keras_model(model, mask, shrunk), example)


def _image_shape(model) -> tuple:
    return {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3)}[model.dataset]


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

