"""ONNX export of a Keras zoo model through ``keras.Model.export(format="onnx")`` (tf2onnx; Keras
shims it for numpy 2).  The graph takes what the Keras model takes: float32 raw pixels 0..255,
shaped like its input ((n, h, w) or (n, h, w, c), any batch size), and gives the logits."""

import contextlib
import io
from pathlib import Path
import tempfile

import numpy as np

from ..fileio import silenced_stderr
from . import shrink
from .keras_model import to_input
from .shrink_keras import shrunk_keras

INPUT = "float32 raw pixels 0..255, shaped like the Keras model's input"


def inputs(model, images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, c) as the graph takes them."""
    return to_input(images, model.input_shape)


def keras_model(model, mask, shrunk: bool):
    """A new Keras model of a zoo model under ``mask`` (the zoo model is untouched)."""
    if shrunk:
        return shrunk_keras(model, mask)
    kernels, units = shrink.effective(model, mask)
    return model.to_keras({**units, **kernels}, "final")


def to_bytes(model, mask, shrunk: bool, example: np.ndarray) -> bytes:
    net = keras_model(model, mask, shrunk)
    net(example)  # Keras exports only a model that has been called
    with tempfile.TemporaryDirectory() as tmp, silenced_stderr(), contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        net.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()
