"""Pruning explorer engine: masks, criteria, evaluation and the model zoo.

    import pruning
    model = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.compute_mask(model, strategy="large_final", sparsity=0.9, scope="global")
    pruning.evaluate(model, mask, weights="final").accuracy
    pruning.save_mask(mask, "mask.npz"); pruning.load_mask("mask.npz", model)
    pruning.compare_masks(mask, other_mask)["jaccard"]   # overlap of the kept weights, per layer too
    table = pruning.sensitivity(model)                   # each layer pruned alone at 10%..99%
    budgets = pruning.suggest_budgets(table, 0.9)        # per-layer fractions, 90% overall exactly
    pruning.compute_mask(model, "large_final", scope="sensitivity", budgets=budgets)
    pruning.load_imp_run("mnist-lenet300-torch")[3]["mask"]  # a precomputed IMP run, round by round

Where things are (each package's docstring says more):
    core/         the framework-free engine: criteria, selection, masks, compute_mask, evaluate
    models/       the model-adapter contract (models/adapter.py), the PyTorch/Keras/.pt2 adapters, the zoo
    training/     zoo training recipes and glue, and the retraining backend (lottery tickets, IMP)
    experiments/  pruning.sweep (with a pluggable executor), reproductions, the zoo's sweep tables
    uploads/      users' model files: hardened readers and the sandboxed worker for web uploads
    cli.py        python -m pruning ...;  data.py  the datasets

Nothing here imports Streamlit; PyTorch and TensorFlow are imported only by their adapters.
"""

from .uploads.byo import load_file_model
from .core.criteria import ALIASES, CRITERIA, resolve_alias
from .errors import DatasetUnavailable, PruningError
from .core.evaluate import WEIGHT_SETS, Evaluation, evaluate, masked_weights
from .core.compare import overlap as compare_masks
from .core.masks import Mask, report
from .core.prune import check_model, compute_mask
from .uploads.sandbox import load_upload
from .core.selection import SCOPES
from .core.sensitivity import sensitivity, suggest_budgets
from .experiments.sweep import sweep
from .experiments.imp_runs import load_imp_run
from .models.zoo import catalogue, load_model
from .training.supermask import learn_supermask
from .core import masks as _masks


def save_mask(mask, path) -> None:
    """Write a mask (with its metadata) as .npz, atomically."""
    _masks.save(mask, path)


def load_mask(path, model=None) -> Mask:
    """Read a .npz mask; with ``model``, check names, shapes and dtype against it."""
    shapes = None if model is None else {n: s.shape for n, s in check_model(model).specs.items()}
    return _masks.load(path, shapes)


__all__ = ["ALIASES", "CRITERIA", "SCOPES", "WEIGHT_SETS", "DatasetUnavailable", "Evaluation", "Mask",
           "load_file_model", "load_imp_run", "load_upload",
           "PruningError", "catalogue", "compare_masks", "compute_mask", "evaluate", "load_mask", "load_model",
           "learn_supermask", "masked_weights", "report", "resolve_alias", "save_mask", "sensitivity",
           "suggest_budgets", "sweep"]
