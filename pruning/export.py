"""Export a mask for use outside this tool."""

import torch

from .io import atomic_write


def save_torch_mask(mask: dict, path) -> None:
    """A dict name -> bool tensor that ``torch.load(path, weights_only=True)`` reads.

    Apply it to your own module with ``torch.nn.utils.prune.custom_from_mask``:
        masks = torch.load("mask.pt", weights_only=True)
        for name, m in masks.items():
            prune.custom_from_mask(model.get_submodule(name.rsplit(".", 1)[0]), "weight", m)
    """
    tensors = {name: torch.from_numpy(arr.copy()) for name, arr in mask.items()}
    atomic_write(path, lambda f: torch.save(tensors, f))
