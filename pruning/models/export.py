"""Export a mask for use outside this tool: the mask as .npz, a PyTorch mask dict, a pruned
Keras model, a shrunk model (removed units physically gone: ``shrink.py``) as .safetensors or
.keras, or an ONNX model, masked or shrunk (``onnx_export.py``).  ``FORMATS`` holds each format as
``write(model, mask, path)``; an adapter (``adapter.py``) lists the formats its models offer
besides .npz, and ``offered`` adds the shrunk and ONNX formats for the server's own models.

What each saves (measured in benchmarks/live.py part h and the explorer's Export tab): a masked
model (npz, torch, keras, onnx) keeps every dense shape, so it is no smaller on disk or in memory
and no faster; only a shrunk model, whose removed units and channels are gone, is."""

import os
from pathlib import Path
import shutil
import tempfile

from .adapter import ADAPTERS, adapter
from ..errors import PruningError
from ..fileio import atomic_write
from ..registry import Registry

FORMATS = Registry("export format")
SUFFIXES = {"npz": ".npz", "torch": ".pt", "keras": ".keras", "shrunk-safetensors": ".safetensors",
            "shrunk-keras": ".keras", "onnx": ".onnx", "shrunk-onnx": ".onnx"}
# formats that hold the (trained) weights, not only the mask
HOLDS_WEIGHTS = {"keras", "shrunk-safetensors", "shrunk-keras", "onnx", "shrunk-onnx"}
SHRUNK = {"torch": "shrunk-safetensors", "keras": "shrunk-keras"}
# the architectures the shrunk and ONNX exports know (their layer chains, see shrink.py)
OWN = {"torch": ("lenet300", "lenet5", "conv4", "resnet20"), "keras": ("lenet300", "tfmot_conv", "conv4")}


def _check_framework(mask: dict, framework: str, fmt: str) -> None:
    made_for = getattr(mask, "meta", {}).get("framework", framework)
    if made_for != framework:
        model = getattr(mask, "meta", {}).get("model", "?")
        offered = ", ".join([*ADAPTERS.get(made_for).exports, "npz"]) if made_for in ADAPTERS else "npz"
        raise PruningError(f"--format {fmt} needs a {framework} model, but {model} is a {made_for} model; "
                           f"use --format {offered}")


def own(model) -> bool:
    """True for a model this process loaded itself from a known architecture (the zoo, or a CLI
    user's state dict): shrunk and ONNX exports run the model's framework here, so an upload, which
    lives in its sandboxed worker, never gets them."""
    return (type(model).__name__ in ("TorchModel", "KerasModel") and not hasattr(model, "keras_bytes")
            and model.info.get("architecture") in OWN.get(model.framework, ()))


def offered(model) -> tuple:
    """The formats ``model`` can be exported in, npz first."""
    extra = (SHRUNK[model.framework], "onnx", "shrunk-onnx") if own(model) else ()
    return ("npz", *adapter(model).exports, *extra)


def check_format(model, fmt: str) -> str:
    """``fmt`` if ``model`` offers it (npz always), else a PruningError naming what it offers."""
    choices = offered(model)
    if fmt not in choices:
        if fmt in (*SHRUNK.values(), "onnx", "shrunk-onnx") and not own(model):
            raise PruningError(f"--format {fmt} is offered for the zoo's architectures only ({model.name} is not "
                               "one, or is an upload, which only runs in its sandboxed worker); "
                               f"use --format {' or '.join(choices)}")
        raise PruningError(f"--format {fmt} is not available for {model.name}, a {adapter(model).label} model; "
                           f"use --format {' or '.join(choices)}")
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
    _save_keras(model.to_keras(masked_weights(model, mask, "final"), "final"), path)


def _save_keras(pruned, path) -> None:
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


@FORMATS.register("shrunk-safetensors", "Shrunk PyTorch model (.safetensors)")
def shrunk_torch(model, mask, path) -> None:
    """The network with removed units gone: smaller tensors plus the architecture JSON in the
    file's metadata; ``pruning.models.shrink_torch.load(path)`` rebuilds it (no pickle)."""
    check_format(model, "shrunk-safetensors")
    from .shrink_torch import save_shrunk

    save_shrunk(model, mask, path)


@FORMATS.register("shrunk-keras", "Shrunk Keras model (.keras)")
def shrunk_keras(model, mask, path) -> None:
    """A .keras model rebuilt with fewer units and filters (``keras.saving.load_model``)."""
    check_format(model, "shrunk-keras")
    if not str(path).endswith(".keras"):
        raise PruningError(f"a Keras model file must end in .keras, got {path}")
    from .shrink_keras import shrunk_keras as build

    _save_keras(build(model, mask), path)


@FORMATS.register("onnx", "Pruned ONNX model (.onnx)")
def onnx_masked(model, mask, path) -> None:
    """The masked (dense-shaped) network as ONNX; see ``onnx_export`` for its input."""
    check_format(model, "onnx")
    from .onnx_export import write

    write(model, mask, path, shrunk=False)


@FORMATS.register("shrunk-onnx", "Shrunk ONNX model (.onnx)")
def onnx_shrunk(model, mask, path) -> None:
    check_format(model, "shrunk-onnx")
    from .onnx_export import write

    write(model, mask, path, shrunk=True)
