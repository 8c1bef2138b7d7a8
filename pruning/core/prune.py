"""compute_mask: criterion (criteria.py) x scope and granularity (selection.py) on a model."""


import numpy as np

from .. import memo
from .criteria import ALIASES, CRITERIA, MODEL_CRITERIA, resolve_alias
from ..errors import PruningError, quote
from .masks import Mask, report
from .selection import (SCOPES, check_fraction, check_norm, check_output_rate, check_sparsity, check_whole, cut,
                        parse_granularity, rank)


def check_model(model):
    """A model from ``load_model``, ``load_file_model`` or ``load_upload`` (anything with their interface)."""
    if not all(hasattr(model, a) for a in ("specs", "states", "weights")):
        raise PruningError(f"expected a model from pruning.load_model or pruning.load_file_model, "
                           f"got {type(model).__name__}")
    return model


def resolve_strategy(strategy: str, scope: str | None) -> tuple:
    """(criterion, scope): lottery-ticket-pruner names fix their scope."""
    if not isinstance(strategy, str):
        raise PruningError(f"strategy must be a name such as 'large_final', got {strategy!r:.40}")
    if scope is not None and (not isinstance(scope, str) or scope not in SCOPES):
        raise PruningError(f"unknown scope {scope!r:.40}; choose one of: {', '.join(SCOPES)}")
    if strategy in ALIASES:
        criterion, alias_scope = resolve_alias(strategy)
        if scope not in (None, alias_scope):
            raise PruningError(f"strategy {strategy!r} is {criterion} with scope {alias_scope}; "
                               f"it cannot be used with scope {scope!r}")
        return criterion, alias_scope
    if strategy not in CRITERIA and strategy not in MODEL_CRITERIA:
        valid = ", ".join([*CRITERIA, *MODEL_CRITERIA, *ALIASES])
        raise PruningError(f"unknown strategy {strategy!r:.40}; choose one of: {valid}")
    return strategy, scope or "layer"


def scores(model, criterion: str, seed: int = 0, trained=None) -> dict:
    """name -> score array of every prunable tensor, canonical layout (out, in, ...); higher = keep.
    ``trained``: for a criterion learned per model (MODEL_CRITERIA), the trained density whose
    scores to use (default: the first shipped)."""
    if criterion in MODEL_CRITERIA:
        learned = MODEL_CRITERIA[criterion]
        return learned.scores(model, learned.nearest(model, 1.0) if trained is None else trained)
    score = CRITERIA.get(criterion)
    rng = np.random.default_rng(seed)
    final = model.weights("final")
    init = model.weights("init") if "init" in model.states else final
    if score.needs_init and "init" not in model.states:
        raise PruningError(f"strategy {criterion!r} needs the initial weights, which model {model.name!r} lacks")
    return {name: score(spec.to_canonical(init[name]), spec.to_canonical(final[name]), rng)
            for name, spec in model.specs.items()}


@memo.lru(maxsize=16)
def ranking(model, criterion, scope, granularity, norm, output_rate, seed, trained=None):
    """Sort once per setting; moving the sparsity slider only re-cuts (see selection.py)."""
    return rank(scores(model, criterion, seed, trained), scope=scope, granularity=granularity, norm=norm,
                output_name=model.output_name, output_rate=output_rate, seed=seed)


def forget() -> None:
    """Drop every cached ranking (they hold references to models)."""
    ranking.cache_clear()


def check_budgets(model, budgets) -> dict:
    """Per-layer budgets of the sensitivity scope: a fraction in [0, 1] for every prunable tensor of
    ``model`` and nothing else (name -> float, in the model's tensor order)."""
    if not isinstance(budgets, dict):
        raise PruningError("scope 'sensitivity' needs budgets: a dict of layer name -> fraction pruned "
                           "(see pruning.suggest_budgets)")
    missing = [n for n in model.specs if n not in budgets]
    unexpected = [n for n in budgets if n not in model.specs]
    if missing or unexpected:
        parts = ([f"missing {', '.join(quote(n) for n in missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(quote(n) for n in unexpected[:5])}"] if unexpected else [])
        raise PruningError("budgets do not match the model's prunable tensors: " + "; ".join(parts))
    return {n: check_fraction(budgets[n], f"budget of {quote(n)}") for n in model.specs}


def compute_mask(model, strategy="large_final", sparsity=None, *, scope=None, granularity="weight",
                 norm=2, output_rate=1.0, seed=0, budgets=None) -> Mask:
    """The mask of ``strategy`` at ``sparsity`` (fraction pruned, 0..1) on a loaded model.

    scope        "layer" (each tensor at the same rate), "global" (one ranking) or "sensitivity"
                 (each tensor at its own rate, from ``budgets``).
    budgets      with scope "sensitivity" only: layer name -> fraction pruned, for every prunable
                 tensor (``pruning.suggest_budgets`` derives them from a sensitivity scan);
                 ``sparsity`` may then be left out (if given it must be the budgets' overall
                 sparsity, within one weight).  Recorded in the mask's metadata, so
                 ``compute_mask(model, meta["strategy"], scope="sensitivity", budgets=meta["budgets"],
                 seed=meta["seed"])`` rebuilds the same mask.
    granularity  "weight", "unit" (whole neurons / filters) or "N:M" such as "2:4" (the pattern
                 fixes the sparsity at 1 - N/M; leave ``sparsity`` out or pass that value).
    norm         2 (default, as in the weight-vs-unit study) or 1: the norm that ranks units.
    output_rate  the output layer's sparsity as a fraction of the others' (0.5 as in the
                 lottery-ticket papers, 0 to leave it dense), or "zhou": 1 - 0.9^p while the
                 others are at 1 - 0.8^p (Zhou et al.'s supermask schedule).
    seed         draws the ``random`` strategy and the order of equal scores (ties are broken
                 at random, as in Zhou et al.'s code); recorded in the mask's metadata.
    """
    check_model(model)
    criterion, scope = resolve_strategy(strategy, scope)
    g = parse_granularity(granularity)
    if budgets is not None and scope != "sensitivity":
        raise PruningError(f"budgets are for scope 'sensitivity', not {scope!r}")
    if scope == "sensitivity":
        budgets = check_budgets(model, budgets)
        if g.kind != "weight":
            raise PruningError(f"scope 'sensitivity' prunes single weights; granularity {g} cannot be used with it")
        if check_output_rate(output_rate) != 1.0:
            raise PruningError("scope 'sensitivity' sets the output layer's rate in its budgets; "
                               "leave the output rate out")
        sizes = {n: spec.size for n, spec in model.specs.items()}
        pruned = sum(round(budgets[n] * sizes[n]) for n in sizes)
        overall = pruned / sum(sizes.values())
        if sparsity is not None and abs(check_sparsity(sparsity) - overall) > 1 / sum(sizes.values()) + 1e-12:
            raise PruningError(f"sparsity {sparsity!r:.20} does not match the budgets, whose overall sparsity "
                               f"is {overall:.6f}; leave the sparsity out")
        sparsity = overall
    if g.kind == "nm":
        implied = 1 - g.n / g.m
        if sparsity is not None and abs(check_sparsity(sparsity) - implied) > 1e-9:
            raise PruningError(f"granularity {g} fixes the sparsity at {implied:g}; leave the sparsity out")
        sparsity = implied
    elif sparsity is None:
        raise PruningError("a sparsity in [0, 1] is required")
    sparsity = check_sparsity(sparsity)
    seed = check_whole(seed, "seed")
    norm, output_rate = check_norm(norm), check_output_rate(output_rate)
    learned = {}
    if criterion in MODEL_CRITERIA:  # scores learned at a few densities: those of the nearest one
        trained = MODEL_CRITERIA[criterion].nearest(model, sparsity)
        learned = {"trained_keep": trained, "trained_sparsity": round(1 - trained, 6)}
    # the sensitivity scope ranks each tensor as the layer scope does (one cached ranking for both)
    r = ranking(model, criterion, "layer" if scope == "sensitivity" else scope, g, norm, output_rate, seed,
                learned.get("trained_keep"))
    arrays = {name: model.specs[name].to_native(keep) for name, keep in cut(r, sparsity, budgets).items()}
    meta = {"model": model.name, "framework": model.framework, "strategy": strategy, "criterion": criterion,
            "scope": scope, "granularity": str(g), "norm": norm, "output_rate": output_rate,
            "requested_sparsity": sparsity, "sparsity": report(arrays)["sparsity"], "seed": seed,
            "weights_sha256": {k: v for k, v in model.info.get("sha256", {}).items()}} | learned
    if budgets is not None:
        meta["budgets"] = budgets
    return Mask(arrays, meta)
