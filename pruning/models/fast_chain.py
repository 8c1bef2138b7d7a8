"""The exact rewrite behind the fast evaluations (torch_fast.py, keras_fast.py): a pruned chain
Linear -> ReLU -> ... -> Linear made smaller, giving the same logits up to float rounding.

    chain = rewrite(kernels, biases, inputs)   # NumPy in, NumPy out; the frameworks run it
    evaluation(logits, model, mask, weights, limit)   # their logits -> pruning.evaluate's Evaluation

1. an input feature with the same value on every evaluation image (``inputs``; MNIST's border
   pixels: 116 of 784 on the test set) contributes a constant: W[:, j] x value is added to the first
   bias and the feature is dropped;
2. a hidden unit whose incoming weights are all pruned (or read only dropped features) outputs
   relu(bias), a constant: it is removed and relu(bias) x its column of the next kernel is added to
   the next bias;
3. a hidden unit whose outgoing weights are all pruned is never read: it is removed;
4. input features no kept weight reads are dropped.
Folded constants are summed in float64.  A kept weight that is exactly 0 counts as pruned (it
contributes nothing either).
"""

from dataclasses import dataclass
import time

import numpy as np

from ..core.evaluate import Evaluation, evaluate as plain_evaluate, inputs


@dataclass
class Chain:
    """The rewritten chain: run h = x[:, features] (or x), then h = relu(h @ W.T + b) for each
    layer, the last without ReLU."""

    features: np.ndarray | None  # positions, among the input features that vary, of those read (None: all)
    kernels: list  # [(out, in) float32, C-contiguous and writable]
    biases: list  # [(out,) float32]


def varying(x: np.ndarray) -> np.ndarray:
    """(n, features) evaluation inputs -> (features,) the value of each feature that is the same on
    every image, NaN where it varies: ``rewrite``'s ``inputs``."""
    same = (x == x[:1]).all(axis=0)
    return np.where(same, x[0], np.nan).astype(np.float64)


def rewrite(kernels: list, biases: list, inputs: np.ndarray | None = None) -> Chain:
    """The chain of masked ``kernels`` [(out, in) float32, pruned weights 0] and ``biases``
    [(out,)], every layer but the last followed by ReLU; ``inputs``: (in,) from ``varying`` (None:
    every input varies).  Weights, biases and constants must be finite."""
    ws = list(kernels)
    bs = [np.asarray(b, dtype=np.float64) for b in biases]
    varies = np.ones(ws[0].shape[1], dtype=bool) if inputs is None else np.isnan(inputs)
    if not varies.all():
        bs[0] = bs[0] + ws[0][:, ~varies].astype(np.float64) @ inputs[~varies]
    keeps = [w != 0 for w in ws]
    # forward: constant units (no incoming weight from a live unit) fold relu(bias) into the next bias
    live_in, constant = varies, []
    for k in range(len(ws) - 1):
        const = ~keeps[k][:, live_in].any(axis=1)
        bs[k + 1] = bs[k + 1] + ws[k + 1][:, const].astype(np.float64) @ np.maximum(bs[k][const], 0.0)
        constant.append(const)
        live_in = ~const
    # backward: a unit is kept if it is not constant and a kept unit of the next layer reads it
    alive = [np.ones(ws[-1].shape[0], dtype=bool)]
    for k in range(len(ws) - 2, -1, -1):
        alive.insert(0, keeps[k + 1][alive[0]].any(axis=0) & ~constant[k])
    read = keeps[0][alive[0]].any(axis=0) & varies
    cols, out_w, out_b = read, [], []
    for k in range(len(ws)):
        out_w.append(_select(ws[k], alive[k], cols))
        out_b.append(bs[k][alive[k]].astype(np.float32))
        cols = alive[k]
    features = None if read[varies].all() else np.flatnonzero(read[varies])
    return Chain(features, out_w, out_b)


def evaluation(logits, model, mask: dict | None, weights: str, limit: int | None) -> Evaluation:
    """``pruning.evaluate``'s Evaluation from a fast path's ``logits(model, mask, weights, limit)``
    ((n, classes), or None where it does not apply: then the plain evaluation)."""
    start = time.perf_counter()  # as pruning.evaluate's: masking included
    out = logits(model, mask, weights, limit)
    if out is None:
        return plain_evaluate(model, mask, weights, limit)
    _, y, idx = inputs(model, limit)
    pred = out.argmax(axis=1)
    return Evaluation(accuracy=float(np.mean(pred == y)), n=int(len(y)), predictions=pred, labels=y, indices=idx,
                      seconds=time.perf_counter() - start, device=str(model.device))


def _select(w: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``w[rows][:, cols]`` (boolean selections) as a C-contiguous, writable float32 array of the
    chain's own, copying no more than needed: at moderate sparsity every unit is kept, and the
    masked kernel is used as it is."""
    if not rows.all():
        w = w[rows]
    if not cols.all():
        w = w[:, cols]
    return np.require(w, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
