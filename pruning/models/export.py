"""Export a mask for use outside this tool: the mask as .npz, a PyTorch mask dict, or a pruned
Keras model.  ``FORMATS`` holds each format as ``write(model, mask, path)``; an adapter
(``adapter.py``) lists the formats its models offer besides .npz."""

import os
from pathlib import Path
import shutil
import tempfile

from .adapter import ADAPTERS, adapter
from ..errors import PruningError
from ..io import atomic_write
from ..registry import Registry

FORMATS = Registry("export format")
SUFFIXES = {"npz": ".npz", "torch": ".pt", "keras": ".keras"}
HOLDS_WEIGHTS = {"keras"}  # formats that hold the (trained) weights, not only the mask


def _check_framework(mask: dict, framework: str, fmt: str) -> None:
    made_for = getattr(mask, "meta", {}).get("framework", framework)
    if made_for != framework:
        model = getattr(mask, "meta", {}).get("model", "?")
        offered = ", ".join([*ADAPTERS.get(made_for).exports, "npz"]) if made_for in ADAPTERS else "npz"
        raise PruningError(f"--format {fmt} needs a {framework} model, but {model} is a {made_for} model; "
                           f"use --format {offered}")


def check_format(model, fmt: str) -> str:
    """``fmt`` if ``model`` offers it (npz always), else a PruningError naming what it offers."""
    offered = ("npz", *adapter(model).exports)
    if fmt not in offered:
        raise PruningError(f"--format {fmt} is not available for {model.name}, a {adapter(model).label} model; "
                           f"use --format {' or '.join(offered)}")
    return fmt


def save_torch_mask(mask: dict, path) -> None:
    """A dict name -> bool tensor that ``torch.load(path, weights_only=True)`` reads.

    Apply it to your own module with ``torch.nn.utils.prune.custom_from_mask``:
        masks = torch.load("mask.pt", weights_only=True)
        for name, m in masks.items():
            prune.custom_from_mask(model.get_submodule(name.rsplit(".", 1)[0]), "weight", m)
    """
    import torch

    _check_framework(mask, "torch", "torch")
    tensors = {name: torch.from_numpy(arr.copy()) for name, arr in mask.items()}
    atomic_write(path, lambda f: torch.save(tensors, f))


def save_keras_model(model, mask: dict, path) -> None:
    """The Keras ``model`` with its final weights times ``mask`` (pruned weights exactly zero), as a
    self-contained .keras file: ``keras.saving.load_model(path)`` scores what
    ``pruning.evaluate(model, mask)`` reports.  Fine-tune it with ``keras_callback.MaskCallback``."""
    check_format(model, "keras")
    if not str(path).endswith(".keras"):
        raise PruningError(f"a Keras model file must end in .keras, got {path}")
    from ..core.evaluate import masked_weights
    from ..core.masks import validate

    validate(mask, {name: spec.shape for name, spec in model.specs.items()})
    if hasattr(model, "keras_bytes"):  # an upload: its sandboxed worker writes the file
        data = model.keras_bytes(masked_weights(model, mask, "final"))
        atomic_write(path, lambda f: f.write(data))
        return
    pruned = model.to_keras(masked_weights(model, mask, "final"), "final")

    def write(f):  # Keras writes only to a named .keras file: save beside the target, then copy
        fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".keras")
        os.close(fd)
        try:
            pruned.save(tmp)
            with open(tmp, "rb") as src:
                shutil.copyfileobj(src, f)
        finally:
            Path(tmp).unlink(missing_ok=True)

    atomic_write(path, write)


@FORMATS.register("npz", "Mask (.npz + metadata)")
def npz(model, mask, path) -> None:
    from ..core.masks import save

    save(mask, path)


@FORMATS.register("torch", "PyTorch mask (.pt)")
def torch_mask(model, mask, path) -> None:
    check_format(model, "torch")
    save_torch_mask(mask, path)


@FORMATS.register("keras", "Pruned Keras model (.keras)")
def keras_model(model, mask, path) -> None:
    save_keras_model(model, mask, path)
