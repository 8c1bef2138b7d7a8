"""Criteria: how important is each weight?  (Zhou et al. 2019, "Deconstructing Lottery Tickets")

A criterion is one plain function ``score(init, final, rng) -> scores``: arrays of one tensor's
initial weights θ0 and trained weights θf in, a float64 array of the same shape out.
Higher score = more worth keeping.  Selection (which scores survive: per layer, global, units,
N:M) lives in ``selection.py``; a new criterion is one function and one registry line here.
"""

import numpy as np

from .registry import Registry

CRITERIA = Registry("strategy")


def _abs(a):
    return np.abs(a.astype(np.float64))


@CRITERIA.register("large_final", "keep the largest trained weights |θf| (magnitude pruning)")
def large_final(init, final, rng):
    return _abs(final)


@CRITERIA.register("small_final", "keep the smallest trained weights (a control: usually terrible)")
def small_final(init, final, rng):
    return -_abs(final)


@CRITERIA.register("large_init", "keep the largest initial weights |θ0|")
def large_init(init, final, rng):
    return _abs(init)


@CRITERIA.register("small_init", "keep the smallest initial weights")
def small_init(init, final, rng):
    return -_abs(init)


@CRITERIA.register("large_init_large_final", "keep weights large both at init and after training: min(|θ0|, |θf|)")
def large_init_large_final(init, final, rng):
    return np.minimum(_abs(init), _abs(final))


@CRITERIA.register("small_init_small_final", "keep weights small both at init and after training: -max(|θ0|, |θf|)")
def small_init_small_final(init, final, rng):
    return -np.maximum(_abs(init), _abs(final))


@CRITERIA.register("magnitude_increase", "keep weights whose magnitude grew most in training: |θf| - |θ0|")
def magnitude_increase(init, final, rng):
    return _abs(final) - _abs(init)


@CRITERIA.register("movement", "keep weights that moved most in training: |θf - θ0|")
def movement(init, final, rng):
    return np.abs(final.astype(np.float64) - init.astype(np.float64))


@CRITERIA.register(
    "large_final_same_sign",
    "keep only weights whose sign did not change in training, largest |θf| first (Zhou's best supermask)",
)
def large_final_same_sign(init, final, rng):
    same = np.sign(init) == np.sign(final)
    return np.where(same, _abs(final), 0.0)  # sign flipped: score 0, pruned before any survivor


@CRITERIA.register("random", "keep a uniformly random subset (seeded; the control every criterion must beat)")
def random(init, final, rng):
    return rng.random(np.shape(final))


# Names used by the `lottery-ticket-pruner` package: both prune the smallest-magnitude trained
# weights; they differ only in scope (each layer at the same rate vs one global ranking).
ALIASES = {
    "smallest_weights": ("large_final", "layer"),
    "smallest_weights_global": ("large_final", "global"),
}
ALIAS_DOCS = {
    "smallest_weights": "lottery-ticket-pruner's name for large_final pruned layer by layer",
    "smallest_weights_global": "lottery-ticket-pruner's name for large_final with one global ranking",
}
