"""Selection: which scored weights survive, at what granularity and scope.

Scores come from ``criteria.py``; this module turns them into boolean masks (True = kept).
Every choice is exact and reproducible: a tensor of n prunable items loses exactly
``round(rate * n)`` of them (layer scope), a pool of N items across tensors exactly
``round(s * N)`` (global scope); equal scores are pruned in the order of a random permutation
drawn from ``seed`` (as in Zhou et al.'s code: index order would prune the first rows' tied
weights first), so the same inputs and seed always give the same mask, and a higher sparsity
always prunes a superset of a lower one.

Granularity
  weight  one item per weight (unstructured).
  unit    one item per output unit: a dense layer's neuron or a conv layer's filter, scored by the
          signed L2 (or L1) norm of its weights' scores, L2 by default as in the weight-vs-unit
          study.  In global scope each layer's unit scores are divided by their root mean square,
          so that layers of different fan-in compete on relative, not absolute, norms.  The
          output layer's units are the classes and are never removed.
  N:M     in every group of M consecutive weights along the input-channel axis keep the N
          best-scoring ones (sparsity 1 - N/M).  Tensors whose input axis is not a multiple of M
          stay dense, as in NVIDIA's ASP.

Scope
  layer        every tensor loses the same fraction.
  global       one ranking across all tensors.
  sensitivity  every tensor loses its own fraction, a per-layer budget (name -> fraction) usually
               suggested by a one-layer-at-a-time sensitivity scan (``sensitivity.py``); the
               ranking within each tensor is the layer scope's.

Everything here works in the canonical layout (out, in, *spatial); ``TensorSpec`` converts.
The work is split into ``rank`` (sort once; independent of the sparsity) and ``cut`` (keep the
top of each ranking at a given sparsity), so a slider can move without re-sorting.
"""

from dataclasses import dataclass
import re

import numpy as np

from ..errors import PruningError

SCOPES = ("layer", "global", "sensitivity")  # sensitivity: per-layer budgets (cut's ``budgets``)
PER_TENSOR = ("layer", "sensitivity")  # scopes that rank each tensor on its own
MAX_M = 1024  # the largest N:M group (hardware uses 2:4 and 4:8)
MAX_WHOLE = 2**32 - 1  # the largest seed numpy, PyTorch and Keras all take; also caps limits and epochs


@dataclass(frozen=True)
class TensorSpec:
    """A prunable tensor as its framework names and lays it out.

    ``canonical`` permutes the native axes into the canonical layout (out, in, *spatial): the
    identity for PyTorch, (1, 0) for a Keras Dense kernel (in, out), (3, 2, 0, 1) for a Keras
    Conv2D kernel (kh, kw, in, out).  Criteria, rankings and tie-breaking all work in the
    canonical layout, so twin networks in the two frameworks get identical masks.
    """

    name: str
    shape: tuple  # native shape
    canonical: tuple = ()  # native axes in canonical order; () = already canonical
    unit_params: tuple = ()  # per-output-unit tensors that go with a removed unit: its bias, the
    #                          scale and shift of the batch norm right after it (evaluate.py)

    @property
    def axes(self) -> tuple:
        return self.canonical or tuple(range(len(self.shape)))

    @property
    def canonical_shape(self) -> tuple:
        return tuple(self.shape[a] for a in self.axes)

    def to_canonical(self, arr: np.ndarray) -> np.ndarray:
        return np.transpose(arr, self.axes) if self.canonical else arr

    def to_native(self, arr: np.ndarray) -> np.ndarray:
        return np.transpose(arr, np.argsort(self.axes)) if self.canonical else arr

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Granularity:
    kind: str  # "weight" | "unit" | "nm"
    n: int = 0
    m: int = 0

    def __str__(self):
        return f"{self.n}:{self.m}" if self.kind == "nm" else self.kind


def parse_granularity(text) -> Granularity:
    if isinstance(text, Granularity):
        return text
    if text in ("weight", "unit"):
        return Granularity(text)
    match = re.fullmatch(r"\s*(\d{1,9})\s*:\s*(\d{1,9})\s*", str(text))
    if match:
        n, m = int(match[1]), int(match[2])
        if 0 < n < m <= MAX_M:
            return Granularity("nm", n, m)
        raise PruningError(f"malformed N:M granularity {text!r:.40}: need 0 < N < M <= {MAX_M}, e.g. 2:4")
    raise PruningError(f"unknown granularity {text!r:.40}; choose one of: weight, unit, N:M (e.g. 2:4)")


def check_fraction(value, what="sparsity") -> float:
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise PruningError(f"{what} must be a number in [0, 1], got {value!r:.40}") from None
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise PruningError(f"{what} must be in [0, 1], got {value!r:.40}")
    return number


def check_whole(value, what, minimum=0, maximum=MAX_WHOLE) -> int:
    """``value`` (an int, a whole float or a string of digits) as an int in [minimum, maximum]."""
    try:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str, np.integer, np.floating)):
            raise TypeError
        number = int(value)  # a string must be digits; NaN and inf fail here
        if isinstance(value, (float, np.floating)) and number != value:
            raise ValueError  # 2.5
    except (TypeError, ValueError, OverflowError):
        raise PruningError(f"{what} must be a whole number, got {value!r:.40}") from None
    if number < minimum:
        bound = {0: "not be negative", 1: "be positive"}.get(minimum, f"be at least {minimum}")
        raise PruningError(f"{what} must {bound}, got {value!r:.40}")
    if number > maximum:
        raise PruningError(f"{what} must be at most {maximum}, got {value!r:.40}")
    return number


def check_sparsity(sparsity) -> float:
    return check_fraction(sparsity, "sparsity")


ZHOU = "zhou"  # output_rate: the output layer at 1 - 0.9^p while the others are at 1 - 0.8^p (Zhou et al.)
ZHOU_EXPONENT = np.log(0.9) / np.log(0.8)  # 1 - s_out = (1 - s)^ZHOU_EXPONENT


def check_output_rate(value):
    """A fraction of the others' sparsity for the output layer, or "zhou"."""
    return ZHOU if value == ZHOU else check_fraction(value, "output rate")


def pool_sparsity(sparsity: float, factor) -> float:
    """The sparsity of a pool whose rate is ``factor`` (a fraction of ``sparsity``, or "zhou")."""
    return 1 - (1 - sparsity) ** ZHOU_EXPONENT if factor == ZHOU else sparsity * factor


def check_norm(norm) -> int:
    if str(norm) not in ("1", "2"):
        raise PruningError(f"unit norm must be 1 or 2, got {norm!r:.40}")
    return int(norm)


def _clean(scores: np.ndarray) -> np.ndarray:
    """NaN unit scores (inf - inf of overflowing norms) become -inf: such units rank lowest."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)


def _ascending(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Argsort along the last axis with NaN before everything, -inf included (a NaN weight must go
    before an infinite one whose score is -inf), and equal scores in a random order from ``rng``."""
    scores = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(scores)
    if scores.ndim == 1:  # shuffle, then sort stably: ties keep the shuffled order
        perm = rng.permutation(scores.size)
        s, n = scores[perm], nan[perm]
        order = np.argsort(s, kind="stable") if not n.any() else np.lexsort((np.where(n, -np.inf, s), ~n))
        return perm[order]
    return np.lexsort((rng.random(scores.shape), np.where(nan, -np.inf, scores), ~nan), axis=-1)


def unit_scores(scores: np.ndarray, norm: int) -> np.ndarray:
    """Signed p-norm of each output unit's scores: ||s+||_p - ||s-||_p, shape (units,).

    For non-negative scores (large_final, ...) this is the ordinary L1/L2 norm, as in
    ``torch.nn.utils.prune.ln_structured``; for negated ones (small_final) it is minus the norm.
    """
    s = scores.reshape(scores.shape[0], -1)  # (units, fan_in * spatial)
    s = np.nan_to_num(s, nan=-np.inf)
    pos, neg = np.maximum(s, 0.0), np.maximum(-s, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):  # huge scores overflow to inf; inf - inf is NaN
        return _clean(np.linalg.norm(pos, ord=norm, axis=1) - np.linalg.norm(neg, ord=norm, axis=1))


def _rms(units: np.ndarray) -> float:
    """Root mean square of a layer's finite unit scores (1 when there is none or all are 0)."""
    finite = units[np.isfinite(units)]
    rms = float(np.sqrt(np.mean(np.square(finite)))) if finite.size else 0.0
    return rms if rms > 0 and np.isfinite(rms) else 1.0


def _expand_units(keep_units: np.ndarray, shape: tuple) -> np.ndarray:
    return np.broadcast_to(keep_units.reshape(-1, *[1] * (len(shape) - 1)), shape).copy()


def nm_mask(scores: np.ndarray, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Keep the n best of every m consecutive weights along the input axis (canonical axis 1)."""
    if scores.ndim < 2 or scores.shape[1] % m:
        return np.ones(scores.shape, dtype=bool)  # no input axis or no whole groups: left dense
    fan_in = scores.shape[1]
    s = np.moveaxis(np.asarray(scores, dtype=np.float64), 1, -1)  # (out, *spatial, fan_in)
    groups = s.reshape(*s.shape[:-1], fan_in // m, m)  # (..., fan_in/m, m)
    order = _ascending(groups, rng)  # the first m-n of each group are pruned
    keep = np.ones(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[..., : m - n], False, axis=-1)
    return np.moveaxis(keep.reshape(s.shape), -1, 1)


@dataclass
class Ranking:
    """Pruning order of each pool of items: ``order[pool]`` lists item indices, first pruned first."""

    granularity: Granularity
    pools: list  # [(tensor names, order, sizes, rate_factor)]: items of one or more tensors
    shapes: dict  # name -> canonical shape
    fixed: dict  # name -> mask for tensors whose mask does not depend on sparsity (N:M, kept dense)


def rank(scores: dict, *, scope="layer", granularity="weight", norm=2, output_name=None,
         output_rate=1.0, seed=0) -> Ranking:
    """Sort items once.  ``scores``: name -> array in canonical layout (out, in, *spatial), in the
    model's tensor order.  ``output_rate`` scales the output layer's sparsity (0 = never pruned;
    "zhou": 1 - 0.9^p where the others are at 1 - 0.8^p).  ``seed`` orders equal scores."""
    if scope not in SCOPES:
        raise PruningError(f"unknown scope {scope!r:.40}; choose one of: {', '.join(SCOPES)}")
    g = parse_granularity(granularity)
    norm, output_rate = check_norm(norm), check_output_rate(output_rate)
    rng = np.random.default_rng([check_whole(seed, "seed"), 1])  # not the random criterion's stream
    if not scores:
        raise PruningError("the model has no prunable tensor (no dense or convolution kernel)")

    fixed, items = {}, {}
    for name, score in scores.items():
        if g.kind == "nm":
            fixed[name] = nm_mask(score, g.n, g.m, rng)
        elif g.kind == "unit" and name == output_name:
            fixed[name] = np.ones(score.shape, dtype=bool)  # classes are never removed
        elif g.kind == "unit":
            units = unit_scores(score, norm)
            items[name] = units / _rms(units) if scope == "global" else units
        else:
            items[name] = np.asarray(score, dtype=np.float64).reshape(-1)

    def pool(names, factor):
        flat = np.concatenate([items[n] for n in names])
        return (names, _ascending(flat, rng), [items[n].size for n in names], factor)

    pools = []
    if scope in PER_TENSOR:
        pools = [pool([n], output_rate if n == output_name else 1.0) for n in items]
    else:
        shared = [n for n in items if n != output_name or output_rate == 1.0]
        if shared:
            pools.append(pool(shared, 1.0))
        if output_name in items and output_name not in shared:
            pools.append(pool([output_name], output_rate))
    return Ranking(g, pools, {name: score.shape for name, score in scores.items()}, fixed)


def cut(ranking: Ranking, sparsity: float, budgets: dict | None = None) -> dict:
    """Masks (canonical layout) at ``sparsity``: each pool loses exactly round(rate * items) of its
    lowest ranked items.  ``budgets`` (name -> fraction, for a ranking of one tensor per pool: the
    sensitivity scope) gives each tensor its own rate instead; ``sparsity`` is then unused."""
    sparsity = check_sparsity(sparsity)
    masks = dict(ranking.fixed)
    for names, order, sizes, factor in ranking.pools:
        rate = pool_sparsity(sparsity, factor) if budgets is None else check_sparsity(budgets[names[0]])
        keep = np.ones(order.size, dtype=bool)
        keep[order[: round(rate * order.size)]] = False
        for name, part in zip(names, np.split(keep, np.cumsum(sizes)[:-1]), strict=True):
            shape = ranking.shapes[name]
            masks[name] = _expand_units(part, shape) if ranking.granularity.kind == "unit" else part.reshape(shape)
    return {name: masks[name] for name in ranking.shapes}  # the model's tensor order
