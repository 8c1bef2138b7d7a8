"""Published pruning experiments, re-run on the zoo: ``python -m pruning reproduce NAME [--quick]``.

Each experiment is one function returning a Markdown section: our measured numbers beside the
published ones (or the published claim, where the source states no number).  ``quick`` shrinks
training (fewer epochs, a slice of the training set, a test subset) so CI can run it; quick
numbers are smoke tests, not results.  The full runs' output is committed in docs/reproductions.md.
"""

import time

from ..core.evaluate import evaluate
from ..core.prune import compute_mask
from ..registry import Registry
from .sweep import sweep
from ..models.zoo import load_model

EXPERIMENTS = Registry("experiment")
LTP_LEVELS = (0.20, 0.5578, 0.896, 0.9933)


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x):
    return "n/a" if x is None else f"{x:.3f}"


def _training(quick, epochs):
    return {"epochs": 1, "limit": 3000} if quick else {"epochs": epochs, "limit": None}


@EXPERIMENTS.register("lottery-ticket-pruner", "lottery-ticket-pruner's README tables on MNIST")
def lottery_ticket_pruner(quick=False):
    from ..training.retrain import retrain

    model = load_model("mnist-lenet300-torch")
    train = _training(quick, 5)
    published_trained = {"large_final": (0.935, 0.936, 0.936, 0.936), "smallest_weights": (0.936, 0.936, 0.937, 0.937),
                         "smallest_weights_global": (0.939, 0.939, 0.939, 0.939)}
    published_untrained = {"large_final": (0.760, 0.911, 0.744, 0.176), "smallest_weights": (0.737, 0.899, 0.703, 0.164),
                           "smallest_weights_global": (0.722, 0.920, 0.925, 0.098)}
    trained, untrained = [], []
    for strategy in published_trained:
        for i, level in enumerate(LTP_LEVELS):
            mask = compute_mask(model, strategy, level)
            run = retrain(model, mask, rewind="init", epochs=train["epochs"], limit=train["limit"])
            trained.append([f"{level:.2%}", strategy, published_trained[strategy][i], _pct(run.accuracy)])
            untrained.append([f"{level:.2%}", strategy, published_untrained[strategy][i],
                              _pct(evaluate(model, mask, weights="init").accuracy)])
    dense_init = evaluate(model, weights="init").accuracy
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch` (LeNet-300-100, dense test accuracy {model.info['test_accuracy']:.4f}; "
        "lottery-ticket-pruner used a smaller dense net trained 100 epochs, dense 0.937). Trained: the mask is "
        f"computed from θf, the network rewound to θ0 and retrained {train['epochs']} epoch(s) with the mask "
        "held at zero (the package's PrunerCallback flow). Here `smallest_weights` is magnitude pruning of θf "
        "layer by layer, i.e. the same mask as `large_final`.",
        "**Trained after pruning**\n\n" + _table(["pruned", "strategy", "published", "measured"], trained),
        f"**Pruned untrained initial weights** (no pruning, random weights: measured {dense_init:.3f}, "
        "published 0.121)\n\n" + _table(["pruned", "strategy", "published", "measured"], untrained),
    ])


@EXPERIMENTS.register("supermask", "Zhou et al. 2019: large_final_same_sign with signed-constant weights")
def supermask(quick=False):
    model = load_model("mnist-lenet300-torch")
    sparsities = (0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    acc = {(r["scope"], r["requested_sparsity"], r["weights"]): r["accuracy"] for scope in ("layer", "global")
           for r in sweep(model, ["large_final_same_sign"], sparsities, ["signed-constant", "init"], scope=scope,
                          output_rate=0.5, limit=2000 if quick else None)}
    rows = [[f"{p:.0%}", *(_pct(acc[(scope, p, w)]) for scope in ("layer", "global") for w in ("signed-constant", "init"))]
            for p in sparsities]
    best = max((a, p, scope) for (scope, p, w), a in acc.items() if w == "signed-constant")
    return "\n\n".join([
        "Model: `mnist-lenet300-torch`, no training; the output layer pruned at half the rate, as in the papers. "
        "Published: 86% test accuracy for the `large_final_same_sign` mask with signed-constant weights "
        "(Zhou et al. 2019); our target is at least 80%.",
        _table(["pruned", "layer: signed-constant", "layer: θ0", "global: signed-constant", "global: θ0"], rows),
        f"Best measured: **{best[0]:.3f}** at {best[1]:.0%} pruned, {best[2]} scope (published 0.86).",
    ])


@EXPERIMENTS.register("lottery-ticket", "Frankle & Carbin 2019: IMP on LeNet-300-100 vs random re-initialisation")
def lottery_ticket(quick=False):
    from ..training.retrain import imp

    model = load_model("mnist-lenet300-torch")
    train = _training(quick, 5)
    rounds = 2 if quick else 12
    start = time.perf_counter()
    rows = imp(model, rounds=rounds, rate=0.2, output_rate=0.5, epochs=train["epochs"], limit=train["limit"],
               control=True)
    dense = rows[0]["accuracy"]
    table = [[r["round"], f"{1 - r['sparsity']:.1%}", _pct(r["accuracy"]), _pct(r.get("control_accuracy")),
              f"{(r['accuracy'] - dense) * 100:+.2f}"] for r in rows]
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch`. {rounds} rounds of: prune 20% of the remaining weights of each layer "
        "(the output layer 10%) by magnitude, rewind to θ0, retrain "
        f"{train['epochs']} epoch(s) (Adam 1.2e-3, batch 60). Control: the same masks trained from a random "
        "re-initialisation. Published claim: the ticket stays within 0.5 points of the dense accuracy down to 7% "
        "of weights remaining or fewer, and the random re-initialisation is clearly worse.",
        _table(["round", "weights remaining", "ticket (rewind to θ0)", "random re-init", "ticket vs dense (points)"], table),
        f"Wall time {time.perf_counter() - start:.0f} s.",
    ])


@EXPERIMENTS.register("weight-vs-unit", "weight pruning vs unit pruning on MNIST and Fashion-MNIST")
def weight_vs_unit(quick=False):
    levels = (0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
    sections = []
    for name in ("mnist-lenet300-torch", "fmnist-lenet300-torch"):
        acc = {(g, r["requested_sparsity"]): r["accuracy"] for g in ("weight", "unit")
               for r in sweep(name, ["large_final"], levels, granularity=g, output_rate=0, limit=2000 if quick else None)}
        rows = [[f"{k:.0%}", _pct(acc[("weight", k)]), _pct(acc[("unit", k)])] for k in levels]
        sections.append(f"**{name}**\n\n" + _table(["pruned (k)", "weight pruning", "unit pruning"], rows))
    return "\n\n".join([
        "Magnitude pruning of the trained LeNet-300-100 without retraining: weight pruning removes the k% "
        "smallest weights of each hidden layer; unit pruning removes the k% of its neurons whose incoming weights "
        "have the smallest L2 norm (their biases removed with them). The output layer is left dense in both. Published claim: weight pruning keeps "
        "accuracy to far higher sparsity than unit pruning.", *sections])


@EXPERIMENTS.register("resnet-l1", "post-training L1 pruning of the CIFAR-10 ResNet-20, 0 to 100% in 5% steps")
def resnet_l1(quick=False):
    model = load_model("cifar10-resnet20-torch")
    limit = 500 if quick else None
    levels = [step / 20 for step in range(0, 21, 4 if quick else 1)]
    acc = {(scope, r["requested_sparsity"]): r["accuracy"] for scope in ("layer", "global")
           for r in sweep(model, ["large_final"], levels, scope=scope, output_rate=0, limit=limit)}
    rows = [[f"{k:.0%}", _pct(acc[("layer", k)]), _pct(acc[("global", k)])] for k in levels]
    return "\n\n".join([
        f"Model: `cifar10-resnet20-torch` (dense {model.info['test_accuracy']:.4f}), no retraining; all convolution "
        "kernels pruned by |w|, the output layer excluded; evaluated on "
        f"{'a 500-image subset' if quick else 'the full 10,000-image test set'}.",
        _table(["pruned", "layer-wise L1", "global L1"], rows)])


@EXPERIMENTS.register("dynamic", "dynamic pruning during training vs lottery-ticket retraining, same budget")
def dynamic_vs_ticket(quick=False):
    from ..training.retrain import dynamic, retrain

    model = load_model("mnist-lenet300-torch")
    train = _training(quick, 6)
    dyn = dynamic(model, epochs=train["epochs"], rate=0.17, limit=train["limit"])
    sparsity = dyn.mask.sparsity
    ticket_mask = compute_mask(model, "large_final", sparsity)
    ticket = retrain(model, ticket_mask, rewind="init", epochs=train["epochs"], limit=train["limit"])
    rows = [["dynamic: prune 17% at 1/3 and 2/3 of training, from θ0, no rewinding", f"{sparsity:.4f}",
             _pct(dyn.accuracy)],
            ["lottery ticket: mask from θf at the same sparsity, rewind to θ0, retrain", f"{ticket_mask.sparsity:.4f}",
             _pct(ticket.accuracy)]]
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch`, {train['epochs']} epoch(s) each (the same budget). Published claim (class "
        "project): pruning during training reaches the lottery ticket's accuracy without the extra rewinding runs.",
        _table(["method", "sparsity", "test accuracy (measured)"], rows)])


def run(name: str, quick: bool = False) -> str:
    experiment = EXPERIMENTS.get(name)
    start = time.perf_counter()
    body = experiment(quick)
    mode = " (quick mode: a smoke test, not a result)" if quick else ""
    return f"## {experiment.doc}{mode}\n\nCommand: `python -m pruning reproduce {name}{' --quick' if quick else ''}`" \
           f" ({time.perf_counter() - start:.0f} s)\n\n{body}\n"

