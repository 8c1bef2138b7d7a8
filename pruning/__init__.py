"""Pruning explorer engine: masks, criteria, evaluation and the model zoo.

    import pruning
    model = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.compute_mask(model, strategy="large_final", sparsity=0.9, scope="global")
    pruning.evaluate(model, mask, weights="final").accuracy
    pruning.save_mask(mask, "mask.npz"); pruning.load_mask("mask.npz", model)

Nothing here imports Streamlit; PyTorch and TensorFlow are imported only by their adapters.
"""

from .byo import load_file_model
from .criteria import ALIASES, CRITERIA
from .errors import DatasetUnavailable, PruningError
from .evaluate import WEIGHT_SETS, Evaluation, evaluate, masked_weights
from .masks import Mask, report
from .prune import compute_mask
from .sandbox import load_upload
from .selection import SCOPES
from .sweep import sweep
from .zoo import catalogue, load_model
from . import masks as _masks


def save_mask(mask, path) -> None:
    """Write a mask (with its metadata) as .npz, atomically."""
    _masks.save(mask, path)


def load_mask(path, model=None) -> Mask:
    """Read a .npz mask; with ``model``, check names, shapes and dtype against it."""
    shapes = None if model is None else {n: s.shape for n, s in model.specs.items()}
    return _masks.load(path, shapes)


__all__ = ["ALIASES", "CRITERIA", "SCOPES", "WEIGHT_SETS", "DatasetUnavailable", "Evaluation", "Mask",
           "load_file_model", "load_upload",
           "PruningError", "catalogue", "compute_mask", "evaluate", "load_mask", "load_model",
           "masked_weights", "report", "save_mask", "sweep"]
