"""Criteria: how important is each weight?  (Zhou et al. 2019, "Deconstructing Lottery Tickets")

A criterion is one plain function ``score(init, final, rng) -> scores``: arrays of one tensor's
initial weights θ0 and trained weights θf in, a float64 array of the same shape out.
Higher score = more worth keeping.  Selection (which scores survive: per layer, global, units,
N:M) lives in ``selection.py``; a new criterion is one function and one registry line here, which
says whether it reads θ0 (``needs_init``: a model without initial weights cannot use it).

Checked against the paper's definitions (Zhou et al. 2019, section 2 and figure 2): large_final,
small_final, large_init, small_init, magnitude_increase (|θf| - |θ0|), movement (|θf - θ0|),
large_final_same_sign and random score exactly as defined; large_init_large_final and
small_init_small_final keep the quadrant above (below) one shared percentile of |θ0| and |θf|.
Equal scores are broken by a seeded random permutation in the selection, as in the paper's code
(large_final_same_sign gives every sign-flipped weight the same score 0).
"""

import numpy as np

from ..registry import Registry

CRITERIA = Registry("strategy")


def _abs(a):
    return np.abs(a.astype(np.float64))


def _percentile(a):
    """Each weight's percentile of magnitude within its tensor, in (0, 1]: the fraction of the
    tensor's |w| that are at most its own (equal magnitudes share one value)."""
    m = _abs(a).reshape(-1)
    ordered = np.sort(m)
    return (np.searchsorted(ordered, m, side="right") / max(m.size, 1)).reshape(np.shape(a))


@CRITERIA.register("large_final", "keep the largest trained weights |θf| (magnitude pruning)", needs_init=False)
def large_final(init, final, rng):
    return _abs(final)


@CRITERIA.register("small_final", "keep the smallest trained weights (a control: usually terrible)", needs_init=False)
def small_final(init, final, rng):
    return -_abs(final)


@CRITERIA.register("large_init", "keep the largest initial weights |θ0|", needs_init=True)
def large_init(init, final, rng):
    return _abs(init)


@CRITERIA.register("small_init", "keep the smallest initial weights", needs_init=True)
def small_init(init, final, rng):
    return -_abs(init)


@CRITERIA.register("large_init_large_final",
                   "keep weights above the same percentile of |θ0| and of |θf| (both large)", needs_init=True)
def large_init_large_final(init, final, rng):
    """Zhou et al.'s quadrant: kept weights are above one percentile p in both |θ0| and |θf|, with
    p such that the kept fraction is exact.  Keeping the top scores of min(P0, Pf), the two
    percentiles within the tensor, is that rule (raw magnitudes are not: |θf| is 2-3x |θ0|)."""
    return np.minimum(_percentile(init), _percentile(final))


@CRITERIA.register("small_init_small_final",
                   "keep weights below the same percentile of |θ0| and of |θf| (both small)", needs_init=True)
def small_init_small_final(init, final, rng):
    """The opposite quadrant: below one percentile p in both, i.e. the top scores of -max(P0, Pf)."""
    return -np.maximum(_percentile(init), _percentile(final))


@CRITERIA.register("magnitude_increase", "keep weights whose magnitude grew most in training: |θf| - |θ0|",
                   needs_init=True)
def magnitude_increase(init, final, rng):
    return _abs(final) - _abs(init)


@CRITERIA.register("movement", "keep weights that moved most in training: |θf - θ0|", needs_init=True)
def movement(init, final, rng):
    return np.abs(final.astype(np.float64) - init.astype(np.float64))


@CRITERIA.register(
    "large_final_same_sign",
    "keep only weights whose sign did not change in training, largest |θf| first (Zhou's best supermask)",
    needs_init=True,
)
def large_final_same_sign(init, final, rng):
    same = np.sign(init) == np.sign(final)
    return np.where(same, _abs(final), 0.0)  # sign flipped: score 0, pruned before any survivor


@CRITERIA.register("random", "keep a uniformly random subset (seeded; the control every criterion must beat)",
                   needs_init=False)
def random(init, final, rng):
    return rng.random(np.shape(final))


# Names used by the `lottery-ticket-pruner` package: both prune the smallest-magnitude trained
# weights; they differ only in scope (each layer at the same rate vs one global ranking).
ALIASES = {
    "smallest_weights": ("large_final", "layer"),
    "smallest_weights_global": ("large_final", "global"),
}
def resolve_alias(strategy: str) -> tuple:
    """(criterion, the scope the name fixes, or None): the one place an alias is resolved
    (``smallest_weights_global`` -> ("large_final", "global"); ``movement`` -> ("movement", None))."""
    return ALIASES.get(strategy, (strategy, None))


ALIAS_DOCS = {
    "smallest_weights": "lottery-ticket-pruner's name for large_final pruned layer by layer",
    "smallest_weights_global": "lottery-ticket-pruner's name for large_final with one global ranking",
}


# Criteria whose scores were learned for one model and ship with it (not a function of θ0 and θf
# alone): each entry has ``doc``, ``trained(model) -> [densities]`` (empty: not available for
# this model) and ``scores(model, keep) -> name -> canonical scores`` at one trained density.
MODEL_CRITERIA = Registry("strategy")


class LearnedSupermask:
    """Edge-popup scores learned on θ0 with the weights frozen (Ramanujan et al. 2020, "What's
    hidden in a randomly weighted neural network?"; training/supermask.py).  They need no θf.
    Each shipped density ``keep`` has its own scores, stored as 16 levels per weight with the
    kept ones above the pruned ones (training/supermask_files.py): cut per layer at its trained
    density they give exactly the learned mask; another sparsity is cut from the scores of the
    nearest trained density (``nearest``), which were not trained for it."""

    doc = ("edge-popup scores learned on the untrained weights θ0 (Ramanujan et al. 2020); "
           "shipped for some zoo models at a few densities")

    def trained(self, model) -> list:
        from ..training.supermask_files import trained_keeps

        return trained_keeps(model.name) if "init" in getattr(model, "states", {}) else []

    def nearest(self, model, sparsity: float) -> float:
        """The trained density closest to 1 - sparsity."""
        keeps = self.trained(model)
        if not keeps:
            from ..errors import PruningError

            raise PruningError(f"no learned supermask is shipped for model {model.name!r}; "
                               "learn one with: python -m pruning supermask")
        return min(keeps, key=lambda k: (abs(k - (1 - sparsity)), k))

    def note(self, model, sparsity: float) -> str:
        """One line for the page: the trained densities, and which one's scores are used."""
        keeps = self.trained(model)
        trained = ", ".join(f"{1 - k:.0%}" for k in keeps)
        keep = self.nearest(model, sparsity)
        if abs((1 - keep) - sparsity) < 5e-5:
            return (f"Learned supermask (edge-popup on θ0) trained at {trained} pruned; this is the mask "
                    f"learned for {1 - keep:.0%} pruned.")
        return (f"Learned supermask (edge-popup on θ0) trained at {trained} pruned: {sparsity:.2%} is not a "
                f"trained density, so the scores learned for the nearest, {1 - keep:.0%} pruned, are cut at "
                f"{sparsity:.2%}.")

    def scores(self, model, keep: float) -> dict:
        from ..training.supermask_files import load_levels

        return {name: model.specs[name].to_canonical(levels).astype(np.float64)
                for name, levels in load_levels(model, keep).items()}


MODEL_CRITERIA["learned_supermask"] = LearnedSupermask()


def model_criteria(model) -> list:
    """The names of MODEL_CRITERIA available for ``model`` (their scores ship with it)."""
    return [name for name, entry in MODEL_CRITERIA.items() if entry.trained(model)]
