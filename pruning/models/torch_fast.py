"""What pruning buys: the pruned model evaluated with smaller or sparse kernels, its measured
inference time and its compressed file size.

    plan = fast.compile(model, mask, weights="final")   # None where unsupported
    fast.evaluate(model, mask, weights, limit)            # an Evaluation, same predictions as pruning.evaluate
    fast.benefit(model, mask, weights, limit)             # seconds and bytes, dense vs pruned

Supported: PyTorch models on the CPU whose zoo architecture ends in a chain Linear -> ReLU -> ... -> Linear (lenet300,
lenet5, conv4); anything else (Keras, ResNet-20, uploaded .pt2) falls back to ``pruning.evaluate``.
The part before the chain (normalisation, convolutions) runs as in the model, with masked weights.
The chain is rewritten by ``fast_chain.rewrite`` (dead units removed, constant ones folded into
the next bias, unread inputs dropped; for ``evaluate``, an MLP's pixels that are the same on every
evaluation image folded too), then each remaining kernel is kept dense, or stored as CSR when it
is at least ``CSR_SPARSITY`` sparse (the CPU crossover measured by benchmarks/live.py; see
docs/performance.md).
Activations are kept transposed, (features, images), so every layer is one ``addmm``.
"""

from dataclasses import dataclass
import io
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .. import memo
from . import fast_chain
from ..core.evaluate import Evaluation, inputs, masked_weights

CSR_SPARSITY = 0.97  # a kernel at least this sparse is multiplied as CSR (measured crossover)
HEADS = {"lenet300": (), "lenet5": ("conv1", "conv2"), "conv4": ("conv1", "conv2", "conv3", "conv4")}
TAIL = ("fc1", "fc2", "fc3")


def supported(model) -> bool:
    """Zoo-architecture PyTorch models held in this process (not uploads, which run in a worker)."""
    from .torch_model import TorchModel

    return isinstance(model, TorchModel) and model.info.get("architecture") in HEADS and str(model.device) == "cpu"


def quicker(model) -> bool:
    """Whether ``evaluate`` here costs less than ``pruning.evaluate``: for the MLP (LeNet-300-100),
    1.6x less CPU at 50% pruned and 24x at 99% (one core); with a convolution head (LeNet-5, Conv-4)
    the convolutions dominate and the plan is no quicker (Conv-4: 1.0-1.1x slower)."""
    return supported(model) and not HEADS[model.info["architecture"]]


@dataclass
class Layer:
    kernel: torch.Tensor  # (out, in) dense or sparse CSR
    bias: torch.Tensor  # (out, 1)
    rows: int
    cols: int
    csr: bool


@dataclass
class Plan:
    """A compiled pruned network: ``head`` weights, the input features read, the rewritten chain."""

    model: object
    head: dict  # conv name -> (weight, bias) tensors
    features: torch.Tensor | None  # positions of the chain's input features read (None: all)
    layers: list  # [Layer]
    folded: bool = False  # inputs constant on the images of ``limit`` were folded in: it evaluates those only
    limit: int | None = None

    def describe(self) -> list:
        return [{"rows": l.rows, "cols": l.cols, "format": "csr" if l.csr else "dense",
                 "stored": int(l.kernel.values().numel()) if l.csr else l.rows * l.cols} for l in self.layers]

    @torch.inference_mode()
    def logits(self, limit: int | None = None) -> np.ndarray:
        """Logits (n, classes) on the evaluation images of ``pruning.evaluate(..., limit=limit)``."""
        if self.folded and limit != self.limit:
            raise ValueError(f"this plan was folded for limit={self.limit}, not {limit}")
        x = _folded(self.model, limit)[0] if self.folded else _prepared(self.model, limit)
        h = _head(self.model, self.head, x)  # (features, n)
        if self.features is not None:
            h = h.index_select(0, self.features)
        for i, layer in enumerate(self.layers):
            h = torch.addmm(layer.bias, layer.kernel, h)
            if i < len(self.layers) - 1:
                h = h.relu_()
        return h.t().numpy()


@memo.lru(maxsize=4)
def _prepared(model, limit):
    """The evaluation images as the first layer sees them; for an MLP flattened and transposed to
    (pixels, n): a copy, 31 MB for MNIST's test set."""
    x = inputs(model, limit)[0]  # TorchModel.prepare has normalised them
    return x.flatten(1).t().contiguous() if not HEADS[model.info["architecture"]] else x


@memo.lru(maxsize=4)
def _folded(model, limit):
    """An MLP's evaluation images without the pixels that are the same on all of them:
    ((varying pixels, n) tensor, ``fast_chain.varying`` of the pixels).  The page asks for two limits
    per model (the headline's whole split, the controls' subset)."""
    x = inputs(model, limit)[0].flatten(1).numpy()  # (n, pixels), normalised
    constants = fast_chain.varying(x)
    return torch.from_numpy(np.ascontiguousarray(x[:, np.isnan(constants)].T)), constants


def _head(model, head: dict, x: torch.Tensor) -> torch.Tensor:
    """(features, n): the convolutions with their masked weights (nothing for an MLP)."""
    if not head:
        return x
    arch, out = model.info["architecture"], []
    for start in range(0, len(x), model.batch_size):  # as the model does: bounded memory
        h = x[start:start + model.batch_size]
        for i, name in enumerate(HEADS[arch]):
            w, b = head[name]
            h = F.relu(F.conv2d(h, w, b, padding=model._module.get_submodule(name).padding))
            if arch == "lenet5" or i % 2 == 1:
                h = F.max_pool2d(h, 2)
        out.append(h.flatten(1))
    return torch.cat(out).t().contiguous()


def compile(model, mask: dict | None, weights: str = "final", csr_sparsity: float = CSR_SPARSITY,
            fold: bool = False, limit: int | None = None) -> Plan | None:
    """The fast plan of ``model`` with ``mask`` on weight set ``weights``; None if unsupported or if
    any weight or bias is NaN or infinite (the plain evaluation handles those).  ``fold`` (an MLP):
    pixels that are the same on every evaluation image of ``limit`` are folded into the first bias,
    and the plan evaluates those images only (``benefit`` times plans that do not fold: its speed-up
    is what pruning buys)."""
    if not supported(model):
        return None
    prunable = masked_weights(model, mask, weights)
    base = model.states["final" if weights == "final" else "init"]
    arrays = {**{k: v for k, v in base.items() if k.endswith(".bias")}, **prunable}
    if not all(np.isfinite(a).all() for a in arrays.values()):
        return None
    head = {n: (torch.from_numpy(arrays[f"{n}.weight"].copy()), torch.from_numpy(arrays[f"{n}.bias"].copy()))
            for n in HEADS[model.info["architecture"]]}
    fold = fold and not head  # a convolution head's outputs depend on the mask
    chain = fast_chain.rewrite([arrays[f"{n}.weight"] for n in TAIL], [arrays[f"{n}.bias"] for n in TAIL],
                               _folded(model, limit)[1] if fold else None)
    layers = []
    for w, b in zip(chain.kernels, chain.biases, strict=True):
        dense = torch.from_numpy(w)
        sparse = dense.numel() > 0 and 1 - np.count_nonzero(w) / w.size >= csr_sparsity
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            kernel = dense.to_sparse_csr() if sparse else dense
        layers.append(Layer(kernel, torch.from_numpy(b).reshape(-1, 1), *w.shape, bool(sparse)))
    features = None if chain.features is None else torch.from_numpy(chain.features)
    return Plan(model, head, features, layers, fold, limit)


def _logits(model, mask: dict | None, weights: str, limit: int | None) -> np.ndarray | None:
    plan = compile(model, mask, weights, fold=True, limit=limit)
    return None if plan is None else plan.logits(limit)


def evaluate(model, mask: dict | None = None, weights: str = "final", limit: int | None = None) -> Evaluation:
    """``pruning.evaluate`` through the fast plan (the plain evaluation where there is none)."""
    return fast_chain.evaluation(_logits, model, mask, weights, limit)


def _seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def file_bytes(model, mask: dict | None, weights: str = "final") -> dict:
    """Bytes of the model's parameters: ``dense`` float32, ``dense_npz`` (np.savez_compressed of the
    dense masked arrays) and ``sparse_npz`` (np.savez_compressed of each prunable tensor as CSR:
    values float32, column indices int16/int32, row pointers int32; other parameters dense)."""
    prunable = masked_weights(model, mask, weights)
    base = model.states["final" if weights == "final" else "init"]
    full = {k: np.asarray(prunable.get(k, v), dtype=np.float32) for k, v in base.items()}
    sparse = {k: v for k, v in full.items() if k not in prunable}
    for name, w in prunable.items():
        m = model.specs[name].to_canonical(np.asarray(w, dtype=np.float32))
        m = m.reshape(m.shape[0], -1)
        rows, cols = np.nonzero(m)
        sparse[f"{name}.values"] = m[rows, cols]
        sparse[f"{name}.indices"] = cols.astype(np.int16 if m.shape[1] < 2 ** 15 else np.int32)
        counts = np.bincount(rows, minlength=m.shape[0])
        sparse[f"{name}.indptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        sparse[f"{name}.shape"] = np.array(w.shape, dtype=np.int32)

    def npz(arrays):
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k.replace("/", "__"): v for k, v in arrays.items()})
        return buf.getbuffer().nbytes

    return {"dense": int(sum(v.nbytes for v in full.values())), "dense_npz": npz(full), "sparse_npz": npz(sparse)}


def benefit(model, mask: dict | None, weights: str = "final", limit: int | None = None, repeats: int = 3) -> dict:
    """Measured here and now: median seconds of the dense forward pass over the evaluation images vs
    the pruned model's fast path (``fast`` False where there is none: then the pruned time is the
    plain masked evaluation), and the file sizes of ``file_bytes``."""
    x, _, _ = inputs(model, limit)
    dense_weights = masked_weights(model, None, weights)
    base = "final" if weights == "final" else "init"
    dense = _seconds(lambda: model.logits(dense_weights, base, x), repeats)
    plan = compile(model, mask, weights)
    if plan is not None:
        pruned = _seconds(lambda: plan.logits(limit), repeats)
    else:
        pruned_weights = masked_weights(model, mask, weights)
        pruned = _seconds(lambda: model.logits(pruned_weights, base, x), repeats)
    return {"dense_seconds": dense, "pruned_seconds": pruned, "speedup": dense / pruned if pruned else float("inf"),
            "fast": plan is not None, "layers": plan.describe() if plan else [], "images": int(len(x)),
            **{f"{k}_bytes": v for k, v in file_bytes(model, mask, weights).items()}}
