"""The PyTorch adapter: a zoo model's θ0 and θf, and a forward pass with any weights.

The loaded network is never mutated: each call passes its weights to
``torch.func.functional_call`` on a per-thread copy of the module, so one loaded model can serve
many threads (Streamlit sessions) at once.  Models with batch norm also offer the adapter
contract's optional recalibration capability (``batch_norm_layers``, ``batch_norm_statistics``;
see ``pruning/core/batchnorm.py``), which writes only into fresh tensors.
"""

import copy
import threading

import numpy as np
from safetensors.numpy import load_file
import torch
from torch import nn

from ..core.selection import TensorSpec
from .torch_nets import ARCHITECTURES

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORM = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d (and SyncBatchNorm)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(info: dict) -> nn.Module:
    """An untrained module of the architecture described in a model.json."""
    pre = info["preprocessing"]
    return ARCHITECTURES[info["architecture"]](mean=pre["mean"], std=pre["std"])


def prunable_specs(module: nn.Module) -> dict:
    """Kernels of dense and convolution layers by state_dict name; PyTorch's layout (out, in, ...)
    is the canonical one.  A kernel's unit parameters are its bias and the affine batch norm
    registered right after it (conv -> bn, as in the zoo's networks), if that norm has one
    channel per output unit."""
    modules, specs = list(module.named_modules()), {}
    for i, (name, m) in enumerate(modules):
        if not isinstance(m, PRUNABLE):
            continue
        params = [f"{name}.bias"] if m.bias is not None else []
        after_name, after = modules[i + 1] if i + 1 < len(modules) else (None, None)
        if (isinstance(after, nn.modules.batchnorm._BatchNorm) and after.affine
                and after.num_features == m.weight.shape[0]):
            params += [f"{after_name}.weight", f"{after_name}.bias"]
        specs[f"{name}.weight"] = TensorSpec(f"{name}.weight", tuple(m.weight.shape), (), tuple(params))
    return specs


def layout(t: torch.Tensor) -> torch.Tensor:
    """Image batches and convolution kernels (4-d) in channels-last memory order: oneDNN's CPU
    convolutions are faster on it (Conv-4 and ResNet-20 up to 1.5x, benchmarks/live.py part a);
    the values and shapes are unchanged, only the strides differ."""
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def to_input(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (n, h, w) or (n, h, w, c), a NumPy array or a tensor on any device -> floats in
    [0, 1], (n, c, h, w), on the same device."""
    t = (x.float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x).astype(np.float32))).div_(255.0)
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


class TorchModel:
    framework = "torch"

    def __init__(self, name: str, info: dict, files: dict):
        """``files`` maps weight-set name ("init", "final", maybe "early") to a .safetensors path
        or to an already loaded state dict of numpy arrays (an uploaded file, see byo.py)."""
        self.name, self.info, self.dataset = name, info, info["dataset"]
        self.device = device()
        self._module = build(info).eval().to(self.device)  # its normalisation constants too
        self.specs = prunable_specs(self._module)
        self.output_name = list(self.specs)[-1]
        self.states = {}  # weight set -> full state dict of numpy arrays (read-only)
        for which, path in files.items():
            state = dict(path) if isinstance(path, dict) else load_file(str(path))
            for arr in state.values():
                arr.setflags(write=False)
            self.states[which] = state
        self._tensors = {which: {k: layout(torch.from_numpy(v.copy()).to(self.device)) for k, v in s.items()}
                         for which, s in self.states.items()}
        self._local = threading.local()
        # images per forward pass: the MLP is one matrix product per layer, best in one batch; the
        # convolution nets are faster (cache) and hold a fifth of the activations in batches of 100
        # (measured: Conv-4 on 500 CIFAR-10 images 0.55 s vs 0.74 s and 60 MB vs 200 MB more resident)
        self.batch_size = 10000 if info["architecture"] == "lenet300" else 100

    def weights(self, which: str = "final") -> dict:
        """The prunable tensors of one weight set, name -> numpy array (read-only)."""
        return {name: self.states[which][name] for name in self.specs}

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        """Inputs as the first layer sees them: the network's own normalisation runs once here
        (the evaluation caches prepared inputs), and ``logits`` skips it."""
        with torch.no_grad():
            return layout(self._module.normalize(to_input(x).to(self.device)))

    def _thread_module(self) -> nn.Module:
        module = getattr(self._local, "module", None)
        if module is None:
            module = self._local.module = copy.deepcopy(self._module)  # on self.device, as the original
            module.normalize = nn.Identity()  # done by prepare
        return module

    @torch.inference_mode()
    def logits(self, prunable: dict, base: str, x: torch.Tensor) -> np.ndarray:
        """Logits (n, classes) with ``prunable`` replacing the kernels of weight set ``base``."""
        params = dict(self._tensors[base])
        for k, v in prunable.items():  # torch wants writable arrays; it never writes to them here
            array = v if v.flags.writeable and v.flags.c_contiguous else v.copy()
            params[k] = layout(torch.from_numpy(array).to(self.device))
        module = self._thread_module()
        out = [torch.func.functional_call(module, params, (x[i:i + self.batch_size],))
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).float().cpu().numpy()

    def batch_norm_layers(self) -> list:
        """Names of the batch-norm layers that keep running statistics, in module order ([]: none,
        so recalibration does not apply)."""
        return [name for name, m in self._module.named_modules()
                if isinstance(m, BATCH_NORM) and m.track_running_stats]

    def _calibration_module(self) -> nn.Module:
        """A per-thread copy in training mode whose batch norms average cumulatively (momentum None)."""
        module = getattr(self._local, "calibration", None)
        if module is None:
            module = copy.deepcopy(self._module).train()
            module.normalize = nn.Identity()  # done by prepare
            for m in module.modules():
                if isinstance(m, BATCH_NORM):
                    m.momentum = None
            self._local.calibration = module
        return module

    @torch.inference_mode()
    def batch_norm_statistics(self, prunable: dict, base: str, x: torch.Tensor, batch_size: int | None = None) -> dict:
        """Re-estimated running statistics of every batch-norm layer with ``prunable`` replacing the
        tensors of weight set ``base``: ``{layer}.running_mean`` and ``{layer}.running_var`` -> numpy
        arrays (channels,), ready to pass to ``logits`` with the pruned kernels.

        One forward pass in training mode over the prepared inputs ``x`` with every batch norm's
        momentum None, as ``torch.optim.swa_utils.update_bn`` does: each batch norm normalises by the
        statistics of the current batch and its running mean and (unbiased) variance become the
        average over batches of the batch means and variances.  ``batch_size`` None: all of ``x`` is
        one batch, so the statistics are exactly the mean and unbiased variance of each layer's input
        over ``x`` (memory grows with ``len(x)``).  The running statistics are fresh tensors, so the
        loaded model and its cached tensors are never written to."""
        params = dict(self._tensors[base])
        for k, v in prunable.items():
            array = v if v.flags.writeable and v.flags.c_contiguous else v.copy()
            params[k] = layout(torch.from_numpy(array).to(self.device))
        module = self._calibration_module()
        fresh = {}
        for name in self.batch_norm_layers():
            channels = module.get_submodule(name).num_features
            fresh[f"{name}.running_mean"] = torch.zeros(channels, device=self.device)
            fresh[f"{name}.running_var"] = torch.ones(channels, device=self.device)
            fresh[f"{name}.num_batches_tracked"] = torch.zeros((), dtype=torch.long, device=self.device)
        params.update(fresh)
        step = len(x) if batch_size is None else batch_size
        for i in range(0, len(x), step):
            torch.func.functional_call(module, params, (x[i:i + step],))
        return {k: v.cpu().numpy() for k, v in fresh.items() if not k.endswith(".num_batches_tracked")}


def accelerator() -> str | None:
    """The GPU PyTorch computes on (``Adapter.hardware``), or None."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
