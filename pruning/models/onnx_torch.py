"""ONNX export of a PyTorch zoo model through ``torch.onnx.export(..., dynamo=True)`` (the
torch.export-based exporter, which needs onnxscript).  The graph takes float32 (n, c, h, w) pixels
/ 255 in [0, 1] (input "pixels", any batch size) and normalises them itself; output "logits"."""

import contextlib
import io
from pathlib import Path
import tempfile

import numpy as np
import torch

from ..fileio import silenced_stderr
from . import shrink, shrink_torch
from .torch_model import build, to_input

OPSET = 18
INPUT = "float32 (n, c, h, w), pixels / 255 in [0, 1]"


def inputs(model, images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, c) as the graph takes them."""
    return to_input(images).numpy()


def module(model, mask, shrunk: bool) -> torch.nn.Module:
    """The nn.Module (eval mode, normalisation included) of a zoo model under ``mask``."""
    if shrunk:
        return shrink_torch.from_state(*shrink_torch.shrunk_state(model, mask))
    kernels, units = shrink.effective(model, mask)
    state = {k: np.array(v) for k, v in {**model.states["final"], **units, **kernels}.items()}
    net = build(model.info).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return net


def to_bytes(model, mask, shrunk: bool, example: np.ndarray) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    with tempfile.TemporaryDirectory() as tmp, silenced_stderr(), contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(module(model, mask, shrunk), (torch.from_numpy(example),),
                                    input_names=["pixels"], output_names=["logits"], dynamic_shapes=({0: batch},),
                                    dynamo=True, opset_version=OPSET, verbose=False)
        program.save(str(path), external_data=False)
        return path.read_bytes()
