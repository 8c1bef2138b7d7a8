"""One sweep: every strategy x sparsity x weight set of one model, evaluated; rows as plain dicts.

    rows = pruning.sweep(model, ["large_final", "random"], [0, 0.5, 0.9], ["final", "init"])
    rows = pruning.sweep("mnist-lenet300-torch", ..., map=pool.map)   # a process pool, Ray, ...

Masks are computed here (cheap: one ranking per strategy, cut at each sparsity); identical masks
(every strategy at sparsity 0, for instance) are evaluated once.  ``map(fn, jobs)`` runs the
evaluations and is the only thing an executor replaces: the built-in ``map`` by default, or any
function with its signature that returns results in order.  A job is a plain tuple (model,
mask, weight set, limit, bn_recalibrate); when ``model`` is given by its zoo name, each process resolves it
with ``load_model`` (cached per process), so jobs pickle small and nothing framework-bound crosses.
With ``bn_recalibrate`` (training images; see core/batchnorm.py) rows get a ``bn_recalibrate`` column.
"""

import csv
import hashlib
import io

import numpy as np

from ..errors import PruningError
from ..core.batchnorm import check_available, check_images
from ..core.evaluate import check_weights, evaluate, masked_weights
from ..fileio import atomic_write
from ..core.prune import check_model, compute_mask, resolve_strategy, scores
from ..core.selection import check_sparsity
from ..models.zoo import load_model

FIELDS = ["model", "strategy", "scope", "granularity", "weights", "requested_sparsity", "sparsity",
          "accuracy", "n", "seed"]


def digest(mask: dict) -> str:
    """A fingerprint of the mask's contents: equal masks give equal digests."""
    h = hashlib.sha256()
    for name in sorted(mask):
        h.update(name.encode() + np.packbits(np.asarray(mask[name], dtype=bool)).tobytes())
    return h.hexdigest()


def evaluate_job(job: tuple) -> dict:
    """One evaluation: (model or zoo name, mask, weight set, limit, bn_recalibrate) -> {"accuracy", "n"}."""
    model, mask, weights, limit, bn = job
    model = load_model(model) if isinstance(model, str) else model
    result = evaluate(model, mask, weights=weights, limit=limit, bn_recalibrate=bn)
    return {"accuracy": result.accuracy, "n": result.n}


def _items(values, what: str) -> list:
    values = [values] if isinstance(values, (str, int, float)) else list(values)
    if not values:
        raise PruningError(f"no {what} given")
    return values


def sweep(model, strategies, sparsities, weight_sets=("final",), *, scope=None, granularity="weight",
          limit=None, norm=2, output_rate=1.0, seed=0, bn_recalibrate=None, map=map) -> list:
    """Rows (keys: ``FIELDS``, as the CLI's sweep CSV) for every strategy x sparsity x weight set,
    in that order.  ``model``: a loaded model or a zoo name.  Bad input fails before any evaluation."""
    loaded = load_model(model) if isinstance(model, str) else check_model(model)
    strategies = _items(strategies, "strategies")
    sparsities = [check_sparsity(s) for s in _items(sparsities, "sparsities")]
    weight_sets = [check_weights(w) for w in _items(weight_sets, "weight sets")]
    for s in strategies:  # a strategy that needs θ0 the model lacks, or a weight set it lacks: now
        scores(loaded, resolve_strategy(s, scope)[0])
    for w in weight_sets:
        masked_weights(loaded, None, w)
    bn = check_images(bn_recalibrate)
    if bn:
        check_available(loaded)
    settings, jobs, index = [], [], {}
    for strategy in strategies:
        for sparsity in sparsities:
            mask = compute_mask(loaded, strategy, sparsity, scope=scope, granularity=granularity, norm=norm,
                                output_rate=output_rate, seed=seed)
            for weights in weight_sets:
                key = (weights, digest(mask))
                if key not in index:
                    index[key] = len(jobs)
                    jobs.append((model, mask, weights, limit, bn))
                settings.append((strategy, sparsity, weights, mask.meta, index[key]))
    results = list(map(evaluate_job, jobs))
    if len(results) != len(jobs):
        raise PruningError(f"the executor returned {len(results)} results for {len(jobs)} evaluations")
    return [{"model": loaded.name, "strategy": strategy, "scope": meta["scope"], "granularity": meta["granularity"],
             "weights": weights, "requested_sparsity": sparsity, "sparsity": meta["sparsity"],
             "accuracy": results[i]["accuracy"], "n": results[i]["n"], "seed": meta["seed"],
             **({"bn_recalibrate": bn} if bn else {})}
            for strategy, sparsity, weights, meta, i in settings]


def to_csv(rows: list) -> str:
    text = io.StringIO()
    extra = [k for k in ("bn_recalibrate",) if any(k in r for r in rows)]
    writer = csv.DictWriter(text, fieldnames=FIELDS + extra, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_csv(rows: list, path) -> None:
    """The rows as CSV, written atomically."""
    text = to_csv(rows)
    atomic_write(path, lambda f: f.write(text.encode()))
