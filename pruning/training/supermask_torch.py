"""PyTorch glue of the learned supermask (edge-popup, Ramanujan et al. 2020; see supermask.py):
the forward pass with θ0 * h(s) and the optimiser loop over the scores s alone."""

import numpy as np
import torch
import torch.nn.functional as F

from ..models.torch_model import build, device, to_input


def kth_largest(flat: torch.Tensor, k: int, by_sort: bool | None = None) -> torch.Tensor:
    """The k-th largest entry (k >= 1) of a 1-d tensor: a quickselect (kthvalue) on the CPU, a sort
    on CUDA, where kthvalue runs one thread block per slice: 10.7 ms against 0.18 ms for a sort of
    2,097,152 scores on an H200 (docs/performance.md; pytorch#75599)."""
    if flat.is_cuda if by_sort is None else by_sort:
        return flat.sort().values[flat.numel() - k]
    return flat.kthvalue(flat.numel() - k + 1).values


class TopK(torch.autograd.Function):
    """h: 1 for the k largest entries of the tensor, 0 elsewhere; backward: straight through
    (the authors' ``GetSubnet``, applied to |s|, so the gradient reaches s through the abs)."""

    @staticmethod
    def forward(ctx, scores, k):
        threshold = kth_largest(scores.detach().flatten(), k) if k else torch.inf
        return (scores >= threshold).to(scores.dtype)  # ties at the threshold (measure zero) keep a few more

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _optimizer(hyper, params, steps):
    if hyper["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    else:
        opt = torch.optim.SGD(params, lr=hyper["lr"], momentum=hyper["momentum"], weight_decay=hyper["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if hyper["schedule"] == "cosine" else None
    return opt, sched


def train_scores(model, scores: dict, kept: dict, x, y, *, epochs, seed, hyper, on_epoch=None) -> dict:
    """Train ``scores`` (name -> native numpy array) on (x, y) with θ0 frozen; ``kept``: name ->
    weights kept per layer.  ``on_epoch(epoch, mean loss, scores as numpy)`` after each epoch.
    Returns the trained scores as numpy arrays."""
    dev = device()
    module = build(model.info).to(dev).eval()  # eval: batch norm keeps θ0's statistics, as evaluated
    state = {k: torch.from_numpy(np.array(v)).to(dev) for k, v in model.states["init"].items()}
    s = {name: torch.nn.Parameter(torch.from_numpy(np.array(v, dtype=np.float32)).to(dev))
         for name, v in scores.items()}
    gen = torch.Generator().manual_seed(seed)
    batch = int(hyper["batch_size"])
    steps = -(-len(x) // batch)
    opt, sched = _optimizer(hyper, list(s.values()), epochs * steps)
    images = torch.from_numpy(np.array(x)).to(dev)  # uint8 (n, h, w[, c]), a writable copy, on the device once
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x), generator=gen).to(dev)
        losses = []
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            params = dict(state)
            for name, score in s.items():
                params[name] = state[name] * TopK.apply(score.abs(), kept[name])
            out = torch.func.functional_call(module, params, (to_input(images[idx]),))
            loss = F.cross_entropy(out, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            losses.append(loss.detach())  # no .item() per step: the device is not waited for
        if on_epoch:
            loss = torch.stack(losses).double().mean().item()
            on_epoch(epoch, loss, {k: v.detach().cpu().numpy().copy() for k, v in s.items()})
    return {k: v.detach().cpu().numpy().copy() for k, v in s.items()}
