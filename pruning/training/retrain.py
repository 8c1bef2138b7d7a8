"""Training with a mask: lottery-ticket rewinding, iterative magnitude pruning (IMP), and gradual
and dynamic pruning during training.

The framework glue (an optimiser loop that keeps pruned weights at zero) is
``train_torch.train_masked``; schedules (when and how much) are in ``schedules.py``; which
weights go is decided by the engine's own selection, so every mask here has exact sparsity.
"""

from dataclasses import dataclass, field
import time

import numpy as np

from ..models.adapter import adapter
from ..errors import PruningError
from ..core.masks import Mask, report
from ..core.schedules import Dynamic, PolynomialDecay
from ..core.selection import check_fraction, cut, rank

REWINDS = {
    "init": "rewind to θ0: the lottery ticket (Frankle & Carbin 2019)",
    "early": "rewind to θk, an early iterate (late rewinding, Frankle et al. 2019)",
    "final": "fine-tune from the trained weights θf",
    "random": "a fresh random initialisation with the same mask (the control)",
}


@dataclass
class Run:
    accuracy: float  # test accuracy after the last epoch
    history: list  # per epoch: {"epoch", "loss", "accuracy", "sparsity"}
    mask: Mask
    weights: dict = field(repr=False)  # trained prunable tensors (masked)
    seconds: float = 0.0


def _backend(model):
    """The framework's training glue (``start_state``, ``train_masked``), from its adapter."""
    backend = adapter(model).training()
    why = backend.untrainable(model)
    if why:
        raise PruningError(f"{model.name} cannot be trained here: {why}")
    return backend


def untrainable(model) -> str | None:
    """Why ``model`` cannot be trained in the loop (None when it can), as its adapter says."""
    return adapter(model).training().untrainable(model)


def _epochs(model, epochs):
    epochs = epochs or model.info.get("training", {}).get("epochs") or 1
    if int(epochs) != epochs or epochs < 1:
        raise PruningError(f"epochs must be a positive whole number, got {epochs!r}")
    return int(epochs)


def check_rewind(rewind: str, model) -> str:
    if rewind not in REWINDS:
        raise PruningError(f"unknown rewind {rewind!r}; choose one of: {', '.join(REWINDS)}")
    if rewind in ("init", "early") and rewind not in model.states:
        raise PruningError(f"model {model.name!r} has no {rewind!r} weights to rewind to")
    return rewind


def magnitude_mask(model, weights: dict, sparsity: float, *, within=None, scope="layer", output_rate=1.0):
    """Mask keeping the largest |w| of ``weights`` (native layout); already-pruned weights
    (``within`` False) go first, so successive masks nest."""
    scores = {}
    for name, spec in model.specs.items():
        score = np.abs(weights[name].astype(np.float64))
        if within is not None:
            score = np.where(within[name], score, -np.inf)
        scores[name] = spec.to_canonical(score)
    ranking = rank(scores, scope=scope, output_name=model.output_name, output_rate=output_rate)
    return {name: model.specs[name].to_native(m) for name, m in cut(ranking, sparsity).items()}


def retrain(model, mask: dict, *, rewind="init", epochs=None, seed=0, limit=None, on_epoch=None) -> Run:
    """Train the masked network from a chosen starting point (see REWINDS)."""
    if hasattr(model, "remote_retrain"):  # an upload: trained in its sandboxed worker (pruning.uploads.sandbox)
        return model.remote_retrain(mask, rewind=rewind, epochs=_epochs(model, epochs), seed=seed, limit=limit,
                                    on_epoch=on_epoch)
    backend, epochs = _backend(model), _epochs(model, epochs)
    check_rewind(rewind, model)
    start = time.perf_counter()
    weights, history = backend.train_masked(model, backend.start_state(model, rewind, seed), mask,
                                            epochs=epochs, seed=seed, limit=limit, on_epoch=on_epoch)
    meta = dict(getattr(mask, "meta", {}), rewind=rewind, epochs=epochs)
    return Run(history[-1]["accuracy"], history, Mask(mask, meta), weights, time.perf_counter() - start)


def imp(model, *, rounds: int, rate=0.2, epochs=None, rewind="init", scope="layer", output_rate=0.5,
        seed=0, limit=None, control=False, on_round=None) -> list:
    """Iterative magnitude pruning: prune ``rate`` of the remaining weights of the trained network,
    rewind, retrain; ``rounds`` times.  Round 0 is the dense trained model θf.

    ``output_rate`` is the output layer's per-round rate as a fraction of ``rate`` (0.5 as in the
    papers).  With ``control``, every mask is also trained from a random re-initialisation.
    Returns one dict per round: sparsity, accuracy (and control_accuracy).
    """
    if int(rounds) != rounds or rounds < 1:
        raise PruningError(f"rounds must be a positive whole number, got {rounds!r}")
    rate = check_fraction(rate, "rate")
    rows = [{"round": 0, "sparsity": 0.0, "accuracy": model.info["test_accuracy"], "source": "θf"}]
    if on_round:
        on_round(rows[-1])
    weights, mask = model.weights("final"), None
    for r in range(1, int(rounds) + 1):
        target = 1 - (1 - rate) ** r
        out_target = 1 - (1 - rate * output_rate) ** r
        mask = magnitude_mask(model, weights, target, within=mask, scope=scope,
                              output_rate=out_target / target if target else 1.0)
        run = retrain(model, mask, rewind=rewind, epochs=epochs, seed=seed, limit=limit)
        weights = run.weights
        row = {"round": r, "sparsity": report(mask)["sparsity"], "accuracy": run.accuracy,
               "best_accuracy": max(h["accuracy"] for h in run.history)}
        if control:
            ctrl = retrain(model, mask, rewind="random", epochs=epochs, seed=seed, limit=limit)
            row |= {"control_accuracy": ctrl.accuracy,
                    "control_best_accuracy": max(h["accuracy"] for h in ctrl.history)}
        rows.append(row)
        if on_round:
            on_round(row)
    return rows


def _prune_during_training(model, schedule, *, start, epochs, seed, limit, scope, on_epoch):
    backend = _backend(model)
    check_rewind(start, model)
    dense = {name: np.ones(spec.shape, dtype=bool) for name, spec in model.specs.items()}
    state = {"mask": dense}

    def update(step, current):
        target = schedule(step)
        if target is None:
            return None
        state["mask"] = magnitude_mask(model, current(), target, within=state["mask"], scope=scope)
        return state["mask"]

    t0 = time.perf_counter()
    weights, history = backend.train_masked(model, backend.start_state(model, start, seed), dense, epochs=epochs,
                                            seed=seed, limit=limit, update=update, on_epoch=on_epoch)
    return Run(history[-1]["accuracy"], history, Mask(state["mask"], {"model": model.name, "start": start}),
               weights, time.perf_counter() - t0)


def steps_per_epoch(model, limit=None) -> int:
    from .. import data

    n = len(data.load(model.dataset, "train")[1]) if not limit else limit
    from .recipes import RECIPES

    batch = RECIPES.get(model.name, {}).get("batch_size", 60)
    return -(-n // batch)


def gradual(model, *, initial=0.5, final=0.8, epochs=None, start="final", frequency=100, scope="layer",
            seed=0, limit=None, on_epoch=None) -> Run:
    """TF-MOT style: sparsity follows PolynomialDecay(initial -> final, power 3) from the first
    step to 3/4 of training (the rest fine-tunes at the final sparsity), from ``start`` weights."""
    epochs = _epochs(model, epochs)
    total = epochs * steps_per_epoch(model, limit)
    schedule = PolynomialDecay(check_fraction(initial, "initial sparsity"), check_fraction(final, "final sparsity"),
                               begin_step=1, end_step=max(2, round(0.75 * total)), frequency=frequency)
    return _prune_during_training(model, schedule, start=start, epochs=epochs, seed=seed, limit=limit,
                                  scope=scope, on_epoch=on_epoch)


def dynamic(model, *, epochs=None, rate=0.17, at=(1 / 3, 2 / 3), start="init", scope="layer", seed=0,
            limit=None, on_epoch=None) -> Run:
    """Prune ``rate`` of the remaining weights at fractions ``at`` of training, from θ0, no rewinding."""
    epochs = _epochs(model, epochs)
    schedule = Dynamic(epochs * steps_per_epoch(model, limit), tuple(at), check_fraction(rate, "rate"))
    return _prune_during_training(model, schedule, start=start, epochs=epochs, seed=seed, limit=limit,
                                  scope=scope, on_epoch=on_epoch)
