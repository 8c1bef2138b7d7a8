"""A shrunk PyTorch zoo model (``shrink.py`` decides what goes) as one ``.safetensors`` file.

The file holds the smaller tensors under the zoo's state_dict names, and in its header metadata
(``__metadata__["pruning.architecture"]``) a small JSON: the architecture name, the input
normalisation and, for ResNet-20, which input channel feeds each kept channel of a down-sampling
block's shortcut.  Layer widths are the tensors' shapes.  No pickle is involved; load it with

    from pruning.models.shrink_torch import load
    module = load("model-shrunk.safetensors")    # an nn.Module in eval mode
    logits = module(x)                           # x: float32 (n, c, h, w) in [0, 1]
"""

import json

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import PruningError, quote
from ..fileio import atomic_write
from . import shrink
from .torch_nets import ARCHITECTURES, BasicBlock

KEY = "pruning.architecture"
FORMAT = "pruning.shrunk-torch/1"


class ShrunkBlock(BasicBlock):
    """A ResNet basic block whose option-A shortcut places the kept input channels at given
    positions of the kept output channels (``index``: input position per output channel, -1 = 0)."""

    def __init__(self, block: BasicBlock, index):
        nn.Module.__init__(self)
        self.conv1, self.bn1, self.conv2, self.bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        self.stride, self.pad = block.stride, 0
        index = [i if i >= 0 else block.conv1.in_channels for i in index]  # the zero channel comes last
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    def forward(self, x):  # (n, c_in, h, w)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))  # (n, c_out, h', w')
        short = x[:, :, :: self.stride, :: self.stride]
        zero = torch.zeros_like(short[:, :1])
        short = torch.cat([short, zero], 1).index_select(1, self.index)  # (n, c_out, h', w')
        return F.relu(out + short)


def _replace(module: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, new)


def build(arch: dict, shapes: dict) -> nn.Module:
    """The network of ``arch`` with the layer widths of ``shapes`` (state_dict name -> shape)."""
    name = arch.get("architecture")
    if arch.get("format") != FORMAT or name not in ARCHITECTURES:
        raise PruningError(f"not a shrunk model of this tool (architecture {quote(str(name), 40)})")
    pre = arch["preprocessing"]
    module = ARCHITECTURES[name](mean=pre["mean"], std=pre["std"])
    for path, m in list(module.named_modules()):
        if f"{path}.weight" not in shapes:
            continue
        shape = shapes[f"{path}.weight"]
        if isinstance(m, nn.Linear):
            new = nn.Linear(shape[1], shape[0], bias=m.bias is not None)
        elif isinstance(m, nn.Conv2d):
            new = nn.Conv2d(shape[1], shape[0], m.kernel_size, m.stride, m.padding, bias=m.bias is not None)
        elif isinstance(m, nn.BatchNorm2d):
            new = nn.BatchNorm2d(shape[0], m.eps, m.momentum)
        else:
            continue
        _replace(module, path, new)
    for block, index in arch.get("shortcuts", {}).items():
        _replace(module, f"blocks.{int(block)}", ShrunkBlock(module.blocks[int(block)], index))
    return module.eval()


def shrunk_state(model, mask) -> tuple[dict, dict]:
    """(state dict of numpy arrays with removed units gone, architecture JSON) of a zoo model."""
    plan = shrink.check(shrink.plan(model, mask), mask)
    kernels, units = shrink.effective(model, mask)
    state = {k: np.asarray(v) for k, v in model.states["final"].items()}
    state.update(units)
    state.update(shrink.sliced(model, plan, kernels))
    for name, spec in model.specs.items():
        rows = plan.rows[name]
        per_unit = list(spec.unit_params)
        for p in spec.unit_params:
            if p.endswith(".weight"):  # a batch norm: its running statistics go with its scale
                per_unit += [p[: -len("weight")] + "running_mean", p[: -len("weight")] + "running_var"]
        for p in per_unit:
            state[p] = np.ascontiguousarray(state[p][rows])
    pre = model.info["preprocessing"]
    arch = {"format": FORMAT, "architecture": model.info["architecture"], "source": model.name,
            "preprocessing": {"mean": list(pre["mean"]), "std": list(pre["std"])},
            "widths": {name.rsplit(".", 1)[0]: len(rows) for name, rows in plan.rows.items()},  # for reading
            "shortcuts": {str(b): idx for b, idx in plan.shortcuts.items()},
            "removed_units": plan.removed, "hidden_units": plan.hidden}
    return state, arch


def save_shrunk(model, mask, path) -> None:
    state, arch = shrunk_state(model, mask)
    data = save(state, metadata={KEY: json.dumps(arch)})
    atomic_write(path, lambda f: f.write(data))


def from_state(state: dict, arch: dict) -> nn.Module:
    module = build(arch, {k: tuple(v.shape) for k, v in state.items()})
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return module


def load(path) -> nn.Module:
    """The shrunk network stored in ``path`` (written by ``save_shrunk``), in eval mode."""
    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        arch = json.loads(meta[KEY])
    except (OSError, KeyError, ValueError) as exc:
        raise PruningError(f"cannot load a shrunk model from {path}: {quote(str(exc), 120)}") from None
    return from_state(state, arch)
