"""Which units and channels a mask removes for good, so that an export can drop them physically.

A masked network keeps its dense shapes: a pruned unit still takes memory and time.  A *shrunk*
network (structured pruning's "physically smaller model", as Torch-Pruning, Fang et al. 2023,
builds it) has those units gone.  This module decides, per prunable layer of a zoo model, which
output units survive (``rows``) and which input columns of its kernel they leave (``cols``); the
framework modules ``shrink_torch.py`` and ``shrink_keras.py`` then cut the arrays and rebuild the
network.  Everything is in the canonical layout (out, in, *spatial) of ``selection.TensorSpec``.

A hidden unit is removed only when removing it changes no output:
  dead in   all its incoming weights are pruned and it then outputs exactly 0: a unit-granularity
            mask zeroes its bias (``evaluate.removed_units``), or its bias is <= 0 so ReLU gives 0
            (every hidden layer of the zoo is followed by ReLU);
  dead out  every weight that reads it in the next layer is pruned, so its output is never used.
A unit that weight pruning emptied but whose positive bias keeps it at a constant relu(b) > 0
stays: that constant still reaches the next layer.  The output layer's units (the classes) stay.

ResNet-20 (He et al. 2016, option A shortcuts: subsample, then zero-pad channels) couples channels
through its residual additions: a channel of a stage's residual stream can go only if it is zero
everywhere in that stage: its source (the stem's unit, or the previous stage's channel that the
zero padding shifts there, or the padding itself) is zero, and every block of the stage adds a
removed unit (batch norm of nothing <= 0, so the ReLU after the addition keeps it 0).  Channels
inside a block (conv1 -> conv2) are independent of the others.  (Torch-Pruning's dependency graph
treats the channel padding as element-wise and couples stage-1 channel i with stage-2 channel i,
while option A moves it to channel i + 8, so the coupling is derived here.)
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import PruningError

HWC = {("keras", "tfmot_conv")}  # Keras nets that flatten channels last; the others flatten (c, h, w)


@dataclass
class Plan:
    """Kept output units (``rows``) and kept kernel input columns (``cols``) of each prunable
    tensor, canonical indices; ``shortcuts`` maps a ResNet block to the position, among the kept
    input channels, that feeds each kept output channel (-1: the zero padding)."""

    rows: dict
    cols: dict
    removed: int  # hidden units and channels removed
    hidden: int  # hidden units and channels in the dense network
    shortcuts: dict = field(default_factory=dict)


def _canonical(model, arrays: dict) -> dict:
    return {name: spec.to_canonical(np.asarray(arrays[name])) for name, spec in model.specs.items()}


def effective(model, mask) -> tuple[dict, dict]:
    """(prunable tensors as the engine runs them, native; the unit parameters likewise), from the
    trained weights."""
    from ..core.evaluate import masked_weights

    weights = masked_weights(model, mask, "final")
    units = {p: weights.get(p, model.states["final"][p]) for s in model.specs.values() for p in s.unit_params}
    return {k: weights[k] for k in model.specs}, units


def _bias_dead(model, name: str, units: dict) -> np.ndarray:
    """(units,) True where a unit with no incoming weight outputs exactly 0 after ReLU: no bias,
    or a bias <= 0 (the chain networks have a bias and no batch norm)."""
    spec = model.specs[name]
    if len(spec.unit_params) > 1:
        raise PruningError(f"cannot shrink {model.name}: layer {name} has a normalisation after it")
    if not spec.unit_params:
        return np.ones(spec.canonical_shape[0], bool)
    return np.asarray(units[spec.unit_params[0]]) <= 0


def _in_cols(prev_units: int, cols: int, keep: np.ndarray, hwc: bool) -> np.ndarray:
    """The input columns of a kernel with ``cols`` inputs that read kept units ``keep`` of a layer
    with ``prev_units`` units (a flattened (c, h, w) or (h, w, c) map when cols > prev_units)."""
    if cols == prev_units:
        return keep
    positions = cols // prev_units
    grid = np.arange(cols).reshape((positions, prev_units) if hwc else (prev_units, positions))
    return np.sort((grid[:, keep] if hwc else grid[keep]).reshape(-1))


def _cols_of_unit(prev_units: int, cols: int, hwc: bool) -> np.ndarray:
    """(prev_units, positions): the input columns that read each unit."""
    positions = cols // prev_units
    if hwc:
        return np.arange(cols).reshape(positions, prev_units).T
    return np.arange(cols).reshape(prev_units, positions)


def plan(model, mask) -> Plan:
    """The shrink plan of a zoo model under ``mask``; PruningError if the architecture is unknown."""
    arch = model.info.get("architecture")
    if arch == "resnet20":  # the PyTorch net (export.OWN has no Keras ResNet)
        return _plan_resnet(model, mask)
    return _plan_chain(model, mask, (model.framework, arch) in HWC)


def _plan_chain(model, mask, hwc: bool) -> Plan:
    """A chain of dense and conv layers, each hidden one followed by ReLU (and maybe pooling)."""
    names = list(model.specs)
    keep = _canonical(model, mask)
    _, units = effective(model, mask)
    rows, removed, hidden = {}, 0, 0
    for i, name in enumerate(names):
        n = keep[name].shape[0]
        if i == len(names) - 1:
            rows[name] = np.arange(n)
            continue
        nxt = keep[names[i + 1]]
        empty = ~keep[name].reshape(n, -1).any(axis=1)
        dead_in = empty & _bias_dead(model, name, units)
        reads = _cols_of_unit(n, nxt.shape[1], hwc)  # (n, positions)
        dead_out = ~nxt.any(axis=tuple(i for i in range(nxt.ndim) if i != 1))[reads].any(axis=1)
        alive = ~(dead_in | dead_out)
        if not alive.any():
            alive[0] = True  # a layer of width 0 cannot be built; unit 0 outputs 0 or is unread
        rows[name] = np.flatnonzero(alive)
        removed, hidden = removed + int((~alive).sum()), hidden + n
    cols = {names[0]: np.arange(keep[names[0]].shape[1])}
    for prev, name in zip(names, names[1:], strict=False):
        cols[name] = _in_cols(keep[prev].shape[0], keep[name].shape[1], rows[prev], hwc)
    return Plan(rows, cols, removed, hidden)


def _bn_zero(model, units: dict, bn: str) -> np.ndarray:
    """(channels,) the batch norm's output for an input of 0, in eval mode."""
    s = model.states["final"]
    gamma, beta = units[f"{bn}.weight"].astype(np.float64), units[f"{bn}.bias"].astype(np.float64)
    mean, var = s[f"{bn}.running_mean"].astype(np.float64), s[f"{bn}.running_var"].astype(np.float64)
    return beta - gamma * mean / np.sqrt(var + 1e-5)


def _plan_resnet(model, mask) -> Plan:
    keep = _canonical(model, mask)
    _, units = effective(model, mask)

    def empty(name):
        k = keep[name]
        return ~k.reshape(k.shape[0], -1).any(axis=1)

    def in_read(name):  # (in,) True where some weight of ``name`` reads the input channel
        return keep[name].any(axis=(0, 2, 3))

    blocks = sorted({int(n.split(".")[1]) for n in keep if n.startswith("blocks.")})
    widths = [keep[f"blocks.{b}.conv2.weight"].shape[0] for b in blocks]
    stages = sorted(set(widths))
    rows, cols, shortcuts = {}, {}, {}
    # residual stream, stage by stage: zero where every writer leaves it at 0
    zero = empty("conv1.weight") & (_bn_zero(model, units, "bn1") <= 0)  # the stem's output
    stream_keep, prev_width = {}, None
    for width in stages:
        stage = [b for b, w in zip(blocks, widths, strict=True) if w == width]
        if prev_width is not None and width != prev_width:
            pad = width - prev_width
            zero = np.concatenate([np.ones(pad // 2, bool), zero, np.ones(pad - pad // 2, bool)])
        for b in stage:
            zero = zero & empty(f"blocks.{b}.conv2.weight") & (_bn_zero(model, units, f"blocks.{b}.bn2") <= 0)
        alive = ~zero
        if not alive.any():
            alive[0] = True
        stream_keep[width] = np.flatnonzero(alive)
        zero = ~alive
        prev_width = width
    removed = hidden = 0
    rows["conv1.weight"] = stream_keep[stages[0]]
    cols["conv1.weight"] = np.arange(keep["conv1.weight"].shape[1])
    c_in = stages[0]
    for b, width in zip(blocks, widths, strict=True):
        c1, c2 = f"blocks.{b}.conv1.weight", f"blocks.{b}.conv2.weight"
        mid = keep[c1].shape[0]
        dead = (empty(c1) & (_bn_zero(model, units, f"blocks.{b}.bn1") <= 0)) | ~in_read(c2)
        alive = ~dead
        if not alive.any():
            alive[0] = True
        rows[c1], cols[c1] = np.flatnonzero(alive), stream_keep[c_in]
        rows[c2], cols[c2] = stream_keep[width], rows[c1]
        removed, hidden = removed + mid - int(alive.sum()), hidden + mid
        if width != c_in:
            pad = (width - c_in) // 2
            position = {int(c): i for i, c in enumerate(stream_keep[c_in])}
            shortcuts[b] = [position.get(int(c) - pad, -1) for c in stream_keep[width]]
        c_in = width
    for width in stages:
        removed, hidden = removed + width - len(stream_keep[width]), hidden + width
    fc = "fc.weight"
    rows[fc], cols[fc] = np.arange(keep[fc].shape[0]), stream_keep[stages[-1]]
    return Plan(rows, cols, removed, hidden, shortcuts)


def check(plan_: Plan, mask) -> Plan:
    """``plan_`` if it removes something, else a one-line PruningError saying why not."""
    if plan_.removed == 0:
        meta = getattr(mask, "meta", {})
        how = f"a {meta.get('granularity', 'weight')}-granularity mask at sparsity {meta.get('sparsity', 0):.4f}"
        raise PruningError(f"nothing to shrink: {how} empties no unit or channel (every unit keeps an input weight "
                           "or a positive bias, and its output is read), so the shrunk model would be the dense one; "
                           "use --granularity unit, or a masked export (--format onnx or npz)")
    return plan_


def sliced(model, plan_: Plan, weights: dict) -> dict:
    """name -> the kept part of each prunable tensor (native layout), from ``weights`` (native)."""
    out = {}
    for name, spec in model.specs.items():
        w = spec.to_canonical(np.asarray(weights[name]))
        out[name] = np.ascontiguousarray(spec.to_native(w[plan_.rows[name]][:, plan_.cols[name]]))
    return out
