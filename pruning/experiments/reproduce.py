"""Published pruning experiments, re-run on the zoo over seeds:

    python -m pruning reproduce NAME [--quick] [--seeds N] [--jobs N | --address HOST:PORT]

Each experiment returns a Markdown section: our numbers as mean ± standard deviation over seeds
(5 for MNIST-sized models, 3 for CIFAR-10; each section says what a seed varies), the published
number beside them, and the protocol differences, one line each.  Nothing is chosen on the test
set unless the text says so.  Trials (one model x setting x seed; a training run is one trial)
are independent and run through an executor (``executors.py``): one after another by default, or
on Ray with ``--jobs`` / ``--address``, with the same results.  ``quick`` shrinks everything so CI
can run it: quick numbers are smoke tests, not results.  Full runs are in docs/reproductions.md.
"""

import time

import numpy as np

from ..models.adapter import adapter
from ..core.evaluate import evaluate
from ..core.prune import compute_mask
from ..models.zoo import info, load_model
from ..registry import Registry
from .executors import executor
from .sweep import sweep

EXPERIMENTS = Registry("experiment")
LTP_LEVELS = (0.20, 0.5578, 0.896, 0.9933)


def seeds_for(seeds, quick: bool, dataset: str = "mnist") -> int:
    """The seeds asked for, or the default: 5 for MNIST-sized models, 3 for CIFAR-10, 2 in quick mode."""
    return seeds or (2 if quick else 3 if dataset == "cifar10" else 5)


def mean_std(values) -> str:
    """'0.812 ± 0.004': the mean and the sample standard deviation (0 for one value)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return "n/a"
    return f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _differences(*lines) -> str:
    return "Protocol differences from the source:\n" + "\n".join(f"- {line}" for line in lines)


def _training(quick, epochs):
    return {"epochs": 1, "limit": 3000} if quick else {"epochs": epochs, "limit": None}


def _model(name: str, seed: int, quick: bool):
    """The zoo model for seed 0; for another seed the same recipe trained again from that seed."""
    if seed == 0:
        return load_model(name)
    trainer = adapter(info(name)["framework"]).training()
    return trainer.train_seed(name, seed, epochs=1 if quick else None, limit=3000 if quick else None)


# --- lottery-ticket-pruner ---------------------------------------------------------------------

class _EarlyAsFinal:
    """A zoo model seen with its early weights (θ a few hundred steps into training) as θf, so that
    ``compute_mask`` ranks |θ_early|: the mask of a network that has barely trained."""

    def __init__(self, model):
        self.name, self.framework, self.info = f"{model.name}@early", model.framework, model.info
        self.specs, self.output_name = model.specs, model.output_name
        self.states = {**model.states, "final": model.states["early"]}

    def weights(self, which: str = "final") -> dict:
        return {name: self.states[which][name] for name in self.specs}


def _ltp_trial(item):
    from ..training.retrain import retrain

    model = load_model("mnist-lenet300-torch")
    early = _EarlyAsFinal(model)
    out = {}
    for strategy in ("large_final", "smallest_weights_global"):  # smallest_weights is large_final's mask
        for level in LTP_LEVELS:
            mask = compute_mask(model, strategy, level, seed=item["seed"])
            run = retrain(model, mask, rewind="init", epochs=item["epochs"], limit=item["limit"], seed=item["seed"])
            early_mask = compute_mask(early, strategy, level, seed=item["seed"])
            out[(strategy, level)] = (run.accuracy, evaluate(model, mask, weights="init").accuracy,
                                      evaluate(model, early_mask, weights="init").accuracy)
    return out


@EXPERIMENTS.register("lottery-ticket-pruner", "lottery-ticket-pruner's README tables on MNIST")
def lottery_ticket_pruner(quick, seeds, run):
    seeds, train = seeds_for(seeds, quick), _training(quick, 5)
    results = run(_ltp_trial, [{"seed": s, **train} for s in range(seeds)])
    published_trained = {"large_final": (0.935, 0.936, 0.936, 0.936), "smallest_weights": (0.936, 0.936, 0.937, 0.937),
                         "smallest_weights_global": (0.939, 0.939, 0.939, 0.939)}
    published_untrained = {"large_final": (0.760, 0.911, 0.744, 0.176),
                           "smallest_weights": (0.737, 0.899, 0.703, 0.164),
                           "smallest_weights_global": (0.722, 0.920, 0.925, 0.098)}
    trained, untrained = [], []
    for strategy in published_trained:
        ours = "large_final" if strategy == "smallest_weights" else strategy
        for i, level in enumerate(LTP_LEVELS):
            cells = [r[(ours, level)] for r in results]
            trained.append([f"{level:.2%}", strategy, published_trained[strategy][i], mean_std(c[0] for c in cells)])
            untrained.append([f"{level:.2%}", strategy, published_untrained[strategy][i],
                              mean_std(c[1] for c in cells), mean_std(c[2] for c in cells)])
    from ..training.recipes import RECIPES

    early_step = info("mnist-lenet300-torch")["training"]["early_step"]
    steps = round(early_step / RECIPES["mnist-lenet300-torch"]["early_fraction"])  # the whole training run
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch` (dense {info('mnist-lenet300-torch')['test_accuracy']:.4f}). Trained: the "
        f"mask from θf, the network rewound to θ0 and retrained {train['epochs']} epoch(s) with the mask held at zero. "
        f"Untrained: θ0 with the mask of θf, the quantity the explorer shows as the supermask. {seeds} seeds; a seed "
        "varies the retraining's data order and the order of tied scores (one trained network). `smallest_weights` "
        "is magnitude pruning of θf layer by layer, i.e. the same mask as `large_final`.",
        _differences(
            "Network: LeNet-300-100 (dense 0.98) here; the package's example is a small conv net "
            "(Conv32-Conv64-Dense128) trained with Adadelta and early stopping (dense 0.937).",
            f"Retraining: {train['epochs']} epochs of Adam 1.2e-3 per mask here; the package retrains until "
            "early stopping.",
            "Masks: held at zero after every optimiser step here; the package's callback re-applies them at epoch "
            "boundaries, so pruned weights drift within an epoch.",
            "Untrained table: both are θ0 with the mask of θf, of different networks and initialisations; theirs "
            "scores far higher. A likely reason, which the last column tests on our network: their example reaches "
            "only 0.937 (the same layers reach about 0.99 when trained to convergence, a number from memory), so "
            "their θf has moved little from θ0, and the mask of weights that barely moved keeps those that grew "
            "along their initial sign, which makes θ0 itself work (Zhou et al.'s supermask effect). The mask of "
            f"our network's early weights (θ after {early_step} of its {steps:,} training steps, "
            "`early.safetensors`) on θ0 shows the same pattern: far above the mask of the fully trained θf at low "
            "and middle sparsity.",
            "At 99.33% our output layer is pruned to 7 of its 1,000 weights, which no retraining recovers."),
        "**Trained after pruning**\n\n"
        + _table(["pruned", "strategy", "published", f"measured ({seeds} seeds)"], trained),
        "**θ0 with the mask of θf (untrained)**, and with the mask of the early weights\n\n"
        + _table(["pruned", "strategy", "published", f"measured ({seeds} seeds)",
                  f"mask of θ after {early_step} steps, on θ0 ({seeds} seeds)"], untrained),
    ])


# --- supermasks ----------------------------------------------------------------------------------

SUPERMASK_RATES = (0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
SCHEDULES = {0.5: "output at half rate", "zhou": "output at 1-0.9^p (Zhou)"}


def _supermask_trial(item):
    rows = sweep(item["model"], ["large_final_same_sign"], item["rates"], ["signed-constant", "init"],
                 scope=item["scope"], output_rate=item["output_rate"], seed=item["seed"], limit=item["limit"])
    return {(r["requested_sparsity"], r["weights"]): r["accuracy"] for r in rows}


CIFAR_SUPERMASK_IMAGES = 2000  # the CIFAR-10 supermask's test subset: 120 Conv-4 evaluations fit a CPU budget


def _supermask_section(name, rates, seeds, quick, run, published, extra):
    cifar = info(name)["dataset"] == "cifar10"
    limit = (500 if cifar else 2000) if quick else (CIFAR_SUPERMASK_IMAGES if cifar else None)
    seeds = seeds_for(seeds, quick, info(name)["dataset"])
    settings = [(scope, schedule) for scope in ("layer", "global") for schedule in SCHEDULES]
    items = [{"model": name, "rates": rates, "scope": scope, "output_rate": schedule, "seed": s, "limit": limit}
             for scope, schedule in settings for s in range(seeds)]
    results = run(_supermask_trial, items)
    by_setting = {setting: results[i * seeds:(i + 1) * seeds] for i, setting in enumerate(settings)}
    header = ["pruned (hidden)"] + [f"{scope}, {SCHEDULES[schedule]}" for scope, schedule in settings]
    tables = []
    for weights, title in (("signed-constant", "signed constant: sign(θ0) × std of the layer"), ("init", "θ0")):
        rows = [[f"{p:.0%}"] + [mean_std(r[(p, weights)] for r in by_setting[s]) for s in settings] for p in rates]
        tables.append(f"**{title}** (mean ± std over {seeds} seeds)\n\n" + _table(header, rows))
    means = {(s, p): np.mean([r[(p, "signed-constant")] for r in by_setting[s]]) for s in settings for p in rates}
    (scope, schedule), p = max(means, key=means.get)
    best = (f"Highest mean on the signed constant: **{means[((scope, schedule), p)]:.3f}** at {p:.0%} pruned, {scope} "
            f"scope, {SCHEDULES[schedule]}; published {published}. This maximum is chosen on the test set (as the "
            "paper's curves show it), so it is optimistic; every cell above is reported.")
    return "\n\n".join([
        f"Model: `{name}` (dense {info(name)['test_accuracy']:.4f}), no training: the `large_final_same_sign` mask "
        f"of θf applied to untrained weights. {seeds} seeds; a seed varies the random order of tied scores (every "
        "sign-flipped weight scores 0), on one trained network.",
        _differences(*extra, "The paper's runs vary the trained network too; here one trained network per model.",
                     "Evaluated on " + ("a stratified subset (quick)." if quick else
                                        f"a class-stratified subset of {limit:,} test images (a CPU budget: "
                                        f"{len(items) * len(rates) * 2} evaluations of a conv net); the paper uses "
                                        "the full test set." if limit else "the full test set.")),
        *tables, best])


@EXPERIMENTS.register("supermask", "Zhou et al. 2019: supermasks (large_final_same_sign) on MNIST")
def supermask(quick, seeds, run):
    return _supermask_section("mnist-lenet300-torch", SUPERMASK_RATES, seeds, quick, run,
                              "0.86 (Zhou et al. 2019, MNIST FC)",
                              ["Network: LeNet-300-100 trained 20 epochs (Adam 1.2e-3, batch 60) as in Frankle & "
                               "Carbin; Zhou et al. use the same network and recipe."])


@EXPERIMENTS.register("cifar-supermask", "Zhou et al. 2019: supermasks on the CIFAR-10 Conv-4")
def cifar_supermask(quick, seeds, run):
    return _supermask_section("cifar10-conv4-torch", (0.5, 0.7, 0.8, 0.9, 0.95), seeds, quick, run,
                              "0.41 (Zhou et al. 2019, the best of their Conv2/4/6 on CIFAR-10)",
                              ["Network: the zoo's Conv-4 with batch norm, trained on a CPU budget; the paper's Conv-4 "
                               "has no batch norm and is trained per Frankle & Carbin."])


# --- weight vs unit pruning ----------------------------------------------------------------------

WVU_LEVELS = (0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


def _wvu_trial(item):
    model = _model(item["name"], item["seed"], item["quick"])
    return {(g, r["requested_sparsity"]): r["accuracy"] for g in ("weight", "unit")
            for r in sweep(model, ["large_final"], WVU_LEVELS, granularity=g, output_rate=0, limit=item["limit"])}


@EXPERIMENTS.register("weight-vs-unit", "weight pruning vs unit pruning on MNIST and Fashion-MNIST")
def weight_vs_unit(quick, seeds, run):
    names, seeds = ("mnist-lenet300-torch", "fmnist-lenet300-torch"), seeds_for(seeds, quick)
    items = [{"name": n, "seed": s, "quick": quick, "limit": 2000 if quick else None}
             for n in names for s in range(seeds)]
    results = run(_wvu_trial, items)
    sections = []
    for i, name in enumerate(names):
        mine = results[i * seeds:(i + 1) * seeds]
        rows = [[f"{k:.0%}", mean_std(r[("weight", k)] for r in mine), mean_std(r[("unit", k)] for r in mine)]
                for k in WVU_LEVELS]
        sections.append(f"**{name}** (mean ± std over {seeds} seeds: {seeds} trained networks)\n\n"
                        + _table(["pruned (k)", "weight pruning", "unit pruning"], rows))
    return "\n\n".join([
        "Magnitude pruning of trained LeNet-300-100s without retraining: weight pruning removes the k% smallest "
        "weights of each hidden layer; unit pruning removes the k% of its neurons whose incoming weights have the "
        "smallest L2 norm, with their biases. The output layer is left dense in both. A seed is a whole training "
        "run (initialisation and data order; seed 0 is the zoo's model). Published claim: weight pruning keeps "
        "accuracy to far higher sparsity than unit pruning (no number to compare with for these networks).",
        _differences("Network and training: the zoo's LeNet-300-100 recipe (20 epochs, Adam); the study trained its "
                     "own MLP of the same shape.",
                     "Units ranked by the L2 norm of their incoming weights, as in the study."),
        *sections])


# --- 2:4 one-shot --------------------------------------------------------------------------------

def _nm_trial(item):
    rows = sweep(item["model"], ["large_final", "random"], [0.5], granularity="2:4", seed=item["seed"],
                 limit=item["limit"])
    out = {r["strategy"]: r["accuracy"] for r in rows}
    if item["seed"] == 0:
        out["dense"] = evaluate(load_model(item["model"]), None, limit=item["limit"]).accuracy
    return out


@EXPERIMENTS.register("2-4", "2:4 structured sparsity, one shot (no fine-tuning), across the zoo")
def two_four(quick, seeds, run):
    from ..models.zoo import names

    models = names()
    counts = {m: seeds_for(seeds, quick, info(m)["dataset"]) for m in models}
    items = [{"model": m, "seed": s, "limit": (500 if quick else None)} for m in models for s in range(counts[m])]
    results = run(_nm_trial, items)
    rows, i = [], 0
    for m in models:
        mine, i = results[i:i + counts[m]], i + counts[m]
        rows.append([f"`{m}`", f"{mine[0]['dense']:.3f}", mean_std(r["large_final"] for r in mine),
                     mean_std(r["random"] for r in mine), counts[m]])
    return "\n\n".join([
        "Every zoo model pruned one shot to NVIDIA's 2:4 pattern (in every group of 4 consecutive input weights "
        "keep the 2 of largest |θf|), evaluated on θf without fine-tuning, against a random 2:4 mask. A seed "
        "varies tie-breaking and the random mask. Published (Mishra et al. 2021, NVIDIA ASP): 2:4 *with* "
        "fine-tuning matches dense accuracy across vision and language models; one shot is their starting point.",
        _differences("No fine-tuning here (the explorer's Retrain tab or `python -m pruning retrain` adds it).",
                     "Tensors whose input axis is not a multiple of 4 stay dense, as in ASP.",
                     f"Evaluated on {'500-image subsets (quick)' if quick else 'the full test sets'}."),
        _table(["model", "dense", "2:4 large_final", "2:4 random", "seeds"], rows)])


# --- training experiments ----------------------------------------------------------------------

@EXPERIMENTS.register("lottery-ticket", "Frankle & Carbin 2019: IMP on LeNet-300-100 vs random re-initialisation")
def lottery_ticket(quick, seeds, run):
    seeds, train = seeds_for(seeds, quick), _training(quick, 5)
    rounds = 2 if quick else 12
    rows_by_seed = run(_imp_trial, [{"seed": s, "rounds": rounds, **train} for s in range(seeds)])
    dense = np.mean([rows[0]["accuracy"] for rows in rows_by_seed])
    table = []
    for r in range(rounds + 1):
        ticket = [rows[r]["accuracy"] for rows in rows_by_seed]
        control = [rows[r].get("control_accuracy") for rows in rows_by_seed]
        table.append([r, f"{1 - rows_by_seed[0][r]['sparsity']:.1%}", mean_std(ticket), mean_std(control),
                      f"{(np.mean(ticket) - dense) * 100:+.2f}"])
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch`. {rounds} rounds of: prune 20% of the remaining weights of each layer (the "
        f"output layer 10%) by magnitude, rewind to θ0, retrain {train['epochs']} epoch(s) (Adam 1.2e-3, batch 60). "
        f"Control: the same masks trained from a random re-initialisation. {seeds} seeds; a seed varies the "
        "retraining's data order and the control's initialisation. Published claim: the ticket stays within 0.5 "
        "points of dense down to 7% of weights remaining or fewer, and the random re-initialisation is clearly worse.",
        _differences("Retraining: a fixed number of epochs per round; the paper trains 50,000 iterations and reports "
                     "the accuracy at early stopping (validation loss).",
                     f"Dense baseline: round 0 is the zoo's network, trained 20 epochs; each round retrains "
                     f"{train['epochs']} epoch(s), so the first rounds sit below it partly because they train less "
                     "(`imp-rounds` below compares at equal training)."),
        _table(["round", "weights remaining", "ticket (rewind to θ0)", "random re-init", "ticket vs dense (points)"],
               table)])


def _imp_trial(item):
    from ..training.retrain import imp

    return imp(load_model("mnist-lenet300-torch"), rounds=item["rounds"], rate=0.2, output_rate=0.5,
               epochs=item["epochs"], limit=item["limit"], control=True, seed=item["seed"])


def _dynamic_trial(item):
    from ..training.retrain import dynamic, retrain

    model, seed, train = load_model("mnist-lenet300-torch"), item["seed"], item["train"]
    dyn = dynamic(model, epochs=train["epochs"], rate=item["rate"], limit=train["limit"], seed=seed)
    sparsity = dyn.mask.sparsity
    out = {"sparsity": sparsity, "dynamic": dyn.accuracy}
    for label, strategy, rewind in (("ticket", "large_final", "init"), ("random", "random", "init")):
        mask = compute_mask(model, strategy, sparsity, seed=seed)
        out[label] = retrain(model, mask, rewind=rewind, epochs=train["epochs"], limit=train["limit"],
                             seed=seed).accuracy
    dense = compute_mask(model, "large_final", 0.0)
    out["dense"] = retrain(model, dense, rewind="init", epochs=train["epochs"], limit=train["limit"],
                           seed=seed).accuracy
    return out


@EXPERIMENTS.register("dynamic", "dynamic pruning during training vs lottery-ticket retraining, same budget")
def dynamic_vs_ticket(quick, seeds, run):
    seeds, train = seeds_for(seeds, quick), _training(quick, 6)
    rates = (0.17, 0.5) if quick else (0.17, 0.5, 0.7)
    results = run(_dynamic_trial, [{"rate": r, "seed": s, "train": train} for r in rates for s in range(seeds)])
    rows = []
    for i, rate in enumerate(rates):
        mine = results[i * seeds:(i + 1) * seeds]
        rows.append([f"{rate:.0%} twice", f"{np.mean([r['sparsity'] for r in mine]):.3f}",
                     *(mean_std(r[k] for r in mine) for k in ("dynamic", "ticket", "random", "dense"))])
    return "\n\n".join([
        f"Model: `mnist-lenet300-torch`, {train['epochs']} epoch(s) per run (the same budget for every column). "
        "Dynamic: from θ0, prune the given rate of each layer's remaining weights by magnitude at 1/3 and 2/3 of "
        "training, no rewinding. Ticket: the mask of θf at the same sparsity, rewound to θ0, retrained. Random: a "
        "random mask of the same sparsity from θ0 (the control). Dense: no mask, the same budget from θ0. "
        f"{seeds} seeds (data order, random masks). Published claim (class project): pruning during training "
        "reaches the lottery ticket's accuracy without the extra rewinding runs; no number to compare with.",
        _differences("The class project pruned once at 31%; here also at higher rates, where methods can differ."),
        _table(["rate at 1/3 and 2/3", "sparsity", "dynamic", "ticket", "random mask", "dense"], rows)])


@EXPERIMENTS.register("resnet-l1", "post-training L1 pruning of the CIFAR-10 ResNet-20, 0 to 100% in 5% steps")
def resnet_l1(quick, seeds, run):
    name = "cifar10-resnet20-torch"
    limit = 500 if quick else None
    levels = [step / 20 for step in range(0, 21, 4 if quick else 1)]
    rows_by_scope = run(_l1_trial, [{"model": name, "scope": s, "levels": levels, "limit": limit}
                                    for s in ("layer", "global")])
    acc = {(r["scope"], r["requested_sparsity"]): r["accuracy"] for rows in rows_by_scope for r in rows}
    rows = [[f"{k:.0%}", f"{acc[('layer', k)]:.3f}", f"{acc[('global', k)]:.3f}"] for k in levels]
    return "\n\n".join([
        f"Model: `{name}` (dense {info(name)['test_accuracy']:.4f}), no retraining; all convolution kernels pruned by "
        f"|w|, the output layer excluded; evaluated on {'a 500-image subset' if quick else 'the full test set'}. "
        "One trained network and no seed: magnitude ranks of trained weights have no ties, so the numbers are exact "
        "for this network; a spread over training runs would need more ResNet-20s than this CPU budget trained.",
        _table(["pruned", "layer-wise L1", "global L1"], rows)])


def _l1_trial(item):
    return sweep(item["model"], ["large_final"], item["levels"], scope=item["scope"], output_rate=0,
                 limit=item["limit"])


# --- batch-norm recalibration ----------------------------------------------------------------

BN_MODEL = "cifar10-resnet20-torch"
BN_LEVELS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
BN_TEST_IMAGES = 1000  # class-stratified test subset: what the shared 2-core CPU afforded


def _bn_trial(item):
    """One scope x sparsity: the accuracy without recalibration and with it for each draw seed."""
    model = load_model(item["model"])
    mask = compute_mask(model, "large_final", item["sparsity"], scope=item["scope"], output_rate=0)
    out = {"without": evaluate(model, mask, limit=item["limit"]).accuracy, "sparsity": mask.meta["sparsity"]}
    out["with"] = [evaluate(model, mask, limit=item["limit"], bn_recalibrate=item["images"], bn_seed=s).accuracy
                   for s in range(item["seeds"])]
    return out


def bn_items(quick: bool, seeds) -> list:
    """The trials of ``reproduce bn-recalibration``: global scope first, then layer-wise."""
    seeds = seeds_for(seeds, quick, "cifar10")
    levels, limit, images = ((0.0, 0.5, 0.9), 500, 500) if quick else (BN_LEVELS, BN_TEST_IMAGES, 2000)
    return [{"model": BN_MODEL, "scope": scope, "sparsity": p, "limit": limit, "images": images, "seeds": seeds}
            for scope in ("global", "layer") for p in levels]


def bn_section(items: list, results: list) -> str:
    """The Markdown of the trials ``items`` and their ``results`` (a prefix of ``bn_items`` works too)."""
    rows = []
    for item, r in zip(items, results, strict=True):
        gain = (np.mean(r["with"]) - r["without"]) * 100
        rows.append([f"{item['sparsity']:.0%}", item["scope"], f"{r['without']:.3f}", mean_std(r["with"]),
                     f"{gain:+.1f}"])
    first, seeds = items[0], items[0]["seeds"]
    test = "the full test set" if first["limit"] is None else f"a {first['limit']:,}-image class-stratified test subset"
    return "\n\n".join([
        f"Model: `{BN_MODEL}` (dense {info(BN_MODEL)['test_accuracy']:.4f} on the full test set), no retraining; all "
        "convolution kernels pruned by |θf| (`large_final`, global or layer-wise), the output layer left dense, as "
        "in `resnet-l1`. Without: the pruned network with the dense network's batch-norm statistics. With: the "
        "same pruned network after its batch-norm running means and variances are re-estimated on "
        f"{first['images']:,} class-stratified training images in one forward pass in training mode as a single "
        "batch (no gradient step; weights and batch-norm scale and shift unchanged; Li et al. 2020's adaptive batch "
        f"norm). {seeds} seeds; a seed draws the calibration images (the mask has no randomness). Evaluated on "
        f"{test}, the same images in both columns.",
        _table(["pruned", "scope", "without", f"with recalibration ({seeds} draws)", "gain (points)"], rows)])


@EXPERIMENTS.register("bn-recalibration", "batch-norm recalibration after pruning the CIFAR-10 ResNet-20")
def bn_recalibration(quick, seeds, run):
    items = bn_items(quick, seeds)
    return bn_section(items, run(_bn_trial, items))


def run(name: str, quick: bool = False, seeds: int | None = None, jobs=None, address=None) -> str:
    """The Markdown section of experiment ``name`` (trials on Ray with ``jobs`` or ``address``)."""
    experiment = EXPERIMENTS.get(name)
    execute = executor(jobs, address)
    start = time.perf_counter()
    try:
        body = experiment(quick, seeds, execute)
    finally:
        getattr(execute, "close", lambda: None)()
    mode = " (quick mode: a smoke test, not a result)" if quick else ""
    flags = f"{' --quick' if quick else ''}{f' --seeds {seeds}' if seeds else ''}"
    return (f"## {experiment.doc}{mode}\n\nCommand: `python -m pruning reproduce {name}{flags}` "
            f"({time.perf_counter() - start:.0f} s)\n\n{body}\n")


# --- TF-MOT pruning tutorial -----------------------------------------------------------------------

TFMOT = {"initial": 0.5, "final": 0.8, "epochs": 2, "batch_size": 128, "validation_split": 0.1, "frequency": 100}


def _tfmot_trial(item):
    """Fine-tune ``mnist-conv-keras`` as the tutorial does, pruning along PolynomialDecay(50% -> 80%)
    from step 0 to the end of fine-tuning; returns the test accuracy and the final sparsity."""
    from .. import data
    from ..core.masks import report
    from ..core.schedules import PolynomialDecay
    model, p = load_model("mnist-conv-keras"), TFMOT
    prune_while_finetuning = adapter(model).training().prune_while_finetuning
    x, y = data.load("mnist", "train")
    n = int(len(x) * (1 - p["validation_split"]))  # Keras's validation_split holds out the last 10%
    x, y = (x[:n], y[:n]) if not item["limit"] else (x[:item["limit"]], y[:item["limit"]])
    end_step = -(-len(x) // p["batch_size"]) * item["epochs"]  # the tutorial's end_step: the end of fine-tuning
    schedule = PolynomialDecay(p["initial"], p["final"], begin_step=0, end_step=end_step, frequency=p["frequency"])
    accuracy, mask = prune_while_finetuning(model, schedule, x, y, data.load("mnist", "test"), epochs=item["epochs"],
                                            batch_size=p["batch_size"], seed=item["seed"])
    return {"accuracy": accuracy, "sparsity": report(mask)["sparsity"],
            "layers": {row["name"]: row["sparsity"] for row in report(mask)["layers"]}}


@EXPERIMENTS.register("tfmot", "the TF Model Optimization pruning tutorial: PolynomialDecay 50% -> 80% on MNIST")
def tfmot(quick, seeds, run):
    seeds = seeds_for(seeds, quick)
    epochs, limit = (1, 2000) if quick else (TFMOT["epochs"], None)
    results = run(_tfmot_trial, [{"seed": s, "epochs": epochs, "limit": limit} for s in range(seeds)])
    dense = info("mnist-conv-keras")["test_accuracy"]
    layers = results[0]["layers"]
    return "\n\n".join([
        "Model: `mnist-conv-keras`, the tutorial's network (Conv 12 3x3, max-pool, Dense 10) trained as the tutorial "
        "trains it (4 epochs, Adam, batch 32, validation_split 0.1). Fine-tuning as in the tutorial: "
        f"{epochs} epoch(s), batch 128, Adam 1e-3, on the first 90% of the training set (the tutorial's "
        "validation_split 0.1), every kernel pruned layer by layer by |w| along PolynomialDecay(50% -> 80%, power 3) "
        "from step 0 to the last step of fine-tuning, every 100 steps. "
        f"{seeds} seeds of the fine-tuning (data order) on one trained network; final sparsity "
        f"{np.mean([r['sparsity'] for r in results]):.4f} ("
        + ", ".join(f"{k} {v:.3f}" for k, v in layers.items()) + ").",
        _differences(
            "Pruning: the engine's layer-wise magnitude selection with exact counts (nested masks); TF-MOT thresholds "
            "each layer's |w| (the same weights up to ties).",
            "Schedule: also pruned to the final 80% after the last step (TF-MOT's last update is at step 800 of 844, "
            "at 79.996%); the difference is about one weight.",
            "No validation pass during fine-tuning (it does not change training).",
            "The tutorial's numbers come from one run of its notebook (dense and pruned once); ours fine-tune one "
            f"trained network {seeds} times.",
            "Evaluated on the full test set"
            + (" after a 2,000-image, 1-epoch fine-tuning (quick)." if quick else ".")),
        _table(["", "tutorial (one run)", f"measured ({seeds} seeds)"],
               [["dense", 0.9726, f"{dense:.4f} (one trained network)"],
                ["pruned to 80%, fine-tuned", 0.9689, mean_std(r["accuracy"] for r in results)],
                ["change (points)", "-0.37",
                 f"{(np.mean([r['accuracy'] for r in results]) - dense) * 100:+.2f}"]])])


# --- IMP round by round: "winning tickets learn faster" ---------------------------------------------

# seeds and rounds per model: 2 x rounds + 1 trainings a seed; LeNet-300-100 on MNIST, the paper's own
# case, goes to 3.5% of its hidden weights remaining (Frankle & Carbin's figures reach 3.6% and below);
# the Keras twins start from the same θ0 (and the same controls) as their PyTorch twins
IMP_MODELS = {name: {"seeds": 5, "rounds": 15} for name in (
    "mnist-lenet300-torch", "fmnist-lenet300-torch", "mnist-lenet5-torch",
    "mnist-lenet300-keras", "fmnist-lenet300-keras", "mnist-conv-keras")}


def _imp_rounds_trial(item):
    from . import imp_runs

    if item["quick"]:
        run = imp_runs.imp_run(item["name"], seed=item["seed"], rounds=2, iterations=100, eval_every=25, limit=600)
    else:  # a new run comes back whole, masks included, and the driver stores it (imp_rounds)
        run = imp_runs.get_run(item["name"], item["seed"], rounds=item["rounds"], store=False)
    return run


def _iteration(values) -> str:
    """'1200 ± 141': mean and sample standard deviation of early-stopping iterations."""
    v = np.asarray(list(values), dtype=np.float64)
    return f"{v.mean():.0f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.0f}"


def _faster_rows(runs):
    """Per round: remaining weights, the early-stopping iteration and the test accuracy there, for the
    ticket and the random re-initialisation (mean ± std over runs), and how many runs were censored."""
    rows = []
    for r, row in enumerate(runs[0]["rounds"]):
        ticket = [run["rounds"][r]["ticket"]["early_stop"] for run in runs]
        random = [run["rounds"][r]["random"]["early_stop"] for run in runs] if row["random"] else None
        censored = sum(e["censored"] for e in ticket + (random or []))
        rows.append([r, f"{1 - row['sparsity']:.1%}", _iteration(e["iteration"] for e in ticket),
                     mean_std(e["test_accuracy"] for e in ticket),
                     _iteration(e["iteration"] for e in random) if random else "(dense)",
                     mean_std(e["test_accuracy"] for e in random) if random else "(dense)", censored])
    return rows


def _faster_findings(runs) -> list:
    """Frankle & Carbin's findings for LeNet-300-100 (Section 2, Figures 3-4; paraphrased) beside ours."""
    def mean(r, side, key):
        return float(np.mean([run["rounds"][r][side]["early_stop"][key] for run in runs]))

    rounds = range(len(runs[0]["rounds"]))
    left = {r: 1 - runs[0]["rounds"][r]["sparsity"] for r in rounds}
    fastest = min(rounds, key=lambda r: mean(r, "ticket", "iteration"))
    best = max(rounds, key=lambda r: mean(r, "ticket", "test_accuracy"))
    last, dense_it, dense_acc = max(rounds), mean(0, "ticket", "iteration"), mean(0, "ticket", "test_accuracy")
    pruned = [r for r in rounds if r]
    flags = [run["rounds"][r][side]["early_stop"]["censored"] for run in runs for r in rounds
             for side in ("ticket", "random") if run["rounds"][r][side]]  # one per training
    censored, trained = sum(flags), len(flags)
    slower = sum(mean(r, "random", "iteration") > mean(r, "ticket", "iteration") for r in pruned)
    later = sum(mean(r, "random", "iteration") > dense_it for r in pruned)
    return [
        ["a ticket learns faster than the dense network (51.3% remaining: faster), fastest at about 21.1%",
         f"dense stops at iteration {dense_it:.0f}; tickets earliest at {left[fastest]:.1%} remaining "
         f"(iteration {mean(fastest, 'ticket', 'iteration'):.0f})"],
        ["below 21.1% remaining learning slows; at 3.6% a ticket is back to the dense network's performance",
         f"at the sparsest round here ({left[last]:.1%} remaining): iteration {mean(last, 'ticket', 'iteration'):.0f}"],
        ["test accuracy at early stopping rises with pruning (by more than 0.3 points at 13.5%), then falls",
         f"dense {dense_acc:.4f}; highest mean {mean(best, 'ticket', 'test_accuracy'):.4f} at {left[best]:.1%} "
         f"remaining ({(mean(best, 'ticket', 'test_accuracy') - dense_acc) * 100:+.2f} points; the highest of "
         f"{len(pruned) + 1} rounds, chosen on the test set)"],
        ["random re-initialisations learn increasingly slower than the dense network and lose test accuracy "
         "after little pruning",
         f"random stops later than the dense network in {later} and later than the ticket in {slower} of "
         f"{len(pruned)} rounds; at {left[last]:.1%} remaining {mean(last, 'random', 'test_accuracy'):.4f} vs the "
         f"ticket's {mean(last, 'ticket', 'test_accuracy'):.4f}"],
        ["(the early-stopping iterations compare only where few runs are censored)",
         f"{censored} of {trained} trainings censored"
         + (": most runs were still improving at the last iteration, so only the accuracies compare"
            if censored > trained / 2 else "")],
    ]


def _imp_recipes(names) -> str:
    """'Adam 1.2e-3, batch 60 for a, b; Adam 0.001, batch 64 for c': the recipes of the IMP models."""
    from ..training.recipes import RECIPES

    groups = {}
    for name in names:
        r = RECIPES[name]
        groups.setdefault(f"{r['optimizer'].capitalize()} {r['lr']:g}, batch {r['batch_size']}", []).append(name)
    return "; ".join(f"{recipe} for {', '.join(members)}" for recipe, members in groups.items())


@EXPERIMENTS.register("imp-rounds", "Frankle & Carbin 2019: IMP round by round; winning tickets learn faster")
def imp_rounds(quick, seeds, run):
    counts = {name: seeds or (seeds_for(None, True) if quick else m["seeds"]) for name, m in IMP_MODELS.items()}
    items = [{"name": name, "seed": s, "quick": quick, "rounds": IMP_MODELS[name]["rounds"]}
             for name, n in counts.items() for s in range(n)]
    from . import imp_runs

    # resumption on the driver: runs stored here are read back; only the others are trials, and
    # the driver stores what they return (with --address they ran on other machines)
    done = {i: imp_runs.stored_run(it["name"], it["seed"], rounds=it["rounds"]) for i, it in enumerate(items)
            if not quick}
    todo = [i for i in range(len(items)) if done.get(i) is None]
    for i, r in zip(todo, run(_imp_rounds_trial, [items[i] for i in todo]), strict=True):
        if not quick and not r.get("stored"):  # (a node may have found the run on its own disk)
            imp_runs.save(r, masks=r["seed"] == 0)
        done[i] = r
    results = [done[i] for i in range(len(items))]
    for r in results:
        r.pop("pruned_in_round", None)
        r.pop("stored", None)
    p = results[0]["protocol"]
    sections, reached, i = [], [], 0
    for name, n in counts.items():
        runs, i = results[i:i + n], i + n
        reached.append(f"{len(runs[0]['rounds']) - 1} rounds reach {1 - runs[0]['rounds'][-1]['sparsity']:.1%} "
                       f"of the weights remaining for {name}")
        sections.append(f"**{name}** (mean ± std over {n} seed(s))\n\n" + _table(
            ["round", "weights remaining", "ticket: early-stop iteration", "ticket: test accuracy there",
             "random re-init: early-stop iteration", "random re-init: test accuracy there", "censored"],
            _faster_rows(runs)))
        sections.append(_table(["Frankle & Carbin (LeNet-300-100, MNIST)", f"{name}, ours"], _faster_findings(runs)))
    return "\n\n".join([
        f"IMP as in Frankle & Carbin 2019: train from θ0; each round prune {p['rate']:.0%} of the remaining weights "
        f"of each layer by |w| (the output layer {p['rate'] * p['output_rate']:.0%}), rewind to θ0 and train "
        f"again ({'; '.join(reached)}); the control trains each round's mask from a fresh random initialisation. "
        f"Every training run: {p['iterations']} iterations of the model's own recipe ({_imp_recipes(counts)}), "
        f"on the first "
        f"{p['train_images']:,} training images (the last {p['validation']:,} are the validation split), measured "
        f"every {p['eval_every']} iterations (the test accuracy every {p['test_every']} and at the early-stopping "
        "iteration). "
        "The early-stopping iteration is the measurement with the least validation loss; the test accuracy is "
        "read there (nothing is chosen on the test set). A seed varies θ0 (seed 0: the zoo's θ0), the data order "
        "and the control's initialisation. 'censored': how many runs (ticket and random) had their least "
        "validation loss at the last measurement, where the true early-stopping iteration may be later. "
        "The runs are stored in `pretrained/<model>/imp/` (masks of every round, every history; "
        "`pruning.load_imp_run`); this command reuses stored runs of the same protocol and recomputes missing ones.",
        _differences(
            f"Training data: {p['train_images']:,} of the 55,000 training images (a CPU budget: the network "
            "overfits, so validation loss reaches its minimum, within a short run); the paper trains on all 55,000.",
            f"Training length: {p['iterations']} iterations per run; the paper trains 50,000, so a late "
            "early-stopping iteration is censored here (counted in the last column).",
            f"Sparsity: {'; '.join(reached)}; the paper's figures go to 3.6% remaining and below.",
            "Runs: the paper averages five trials for tickets and ten random re-initialisations; here "
            + ", ".join(f"{n} for {name}" for name, n in counts.items()) + ", one control per ticket.",
            "Validation split: the last 5,000 training images (the paper holds out 5,000, chosen at random)."),
        *sections])


# --- Han et al. 2015: iterative pruning and fine-tuning --------------------------------------------

# Han et al. 2015, Table 2: the share of weights kept per layer, the dense and the pruned error. Their
# LeNet-5 is Caffe's (20 and 50 filters, a 500-unit layer); the zoo's is LeCun's (6 and 16 filters,
# 120 and 84 units): the convolutions and the first dense layer take their densities, the zoo's extra
# dense layer fc2 the first's (8%) and the output layer their output layer's (19%).
HAN = {
    "mnist-lenet300-torch": {"kept": {"fc1.weight": 0.08, "fc2.weight": 0.09, "fc3.weight": 0.26},
                             "dense_error": 1.64, "pruned_error": 1.59, "caffe": "LeNet-300-100"},
    "mnist-lenet5-torch": {"kept": {"conv1.weight": 0.66, "conv2.weight": 0.12, "fc1.weight": 0.08,
                                    "fc2.weight": 0.08, "fc3.weight": 0.19},
                           "dense_error": 0.80, "pruned_error": 0.77, "caffe": "LeNet-5 (20-50-500)"},
}
HAN_KEPT = HAN["mnist-lenet300-torch"]["kept"]


def _keep_largest(weights: dict, density: dict, within=None) -> dict:
    """Per tensor, keep the round(density * size) largest |w| (already pruned weights go first)."""
    mask = {}
    for name, w in weights.items():
        score = np.abs(w.astype(np.float64)).ravel()
        if within is not None:
            score[~within[name].ravel()] = -np.inf
        keep = np.zeros(score.size, dtype=bool)
        keep[np.argsort(-score, kind="stable")[:round(density[name] * score.size)]] = True
        mask[name] = keep.reshape(w.shape)
    return mask


def _han_trial(item):
    """Prune θf of ``item["name"]`` towards Han et al.'s per-layer densities in ``steps`` equal
    ratios (|w| per layer, masks nested), fine-tuning ``epochs`` after each step from the previous
    step's weights."""
    from ..core.masks import report
    from ..training.recipes import RECIPES
    from .imp_runs import _split

    name = item["name"]
    model, recipe, kept = load_model(name), RECIPES[name], HAN[name]["kept"]
    trainer = adapter(model).training()
    (x, y), _, test = _split(model.dataset)  # fine-tune on the first 55,000 training images
    if item["limit"]:
        x, y = x[:item["limit"]], y[:item["limit"]]
    splits = ((x, y), (x[-1000:], y[-1000:]), test)  # (a validation loss is measured but not used)
    iterations = item["epochs"] * -(-len(x) // recipe["batch_size"])
    one_shot = _keep_largest(model.weights("final"), kept)
    state, mask = dict(model.states["final"]), None
    for k in range(1, item["steps"] + 1):
        density = {n: d ** (k / item["steps"]) for n, d in kept.items()}
        mask = _keep_largest({n: state[n] for n in model.specs}, density, within=mask)
        state, history = trainer.train_tracked(model, recipe, state, mask, iterations=iterations,
                                               eval_every=iterations, test_every=iterations, seed=item["seed"],
                                               splits=splits, full_state=True)
    return {"accuracy": history[-1]["test_accuracy"], "sparsity": report(mask)["sparsity"],
            "layers": {row["name"]: row["sparsity"] for row in report(mask)["layers"]},
            "one_shot": evaluate(model, one_shot, weights="final", limit=item["limit"] and 2000).accuracy}


def _densities(kept: dict) -> str:
    return ", ".join(f"{n.removesuffix('.weight')} {d:.0%}" for n, d in kept.items())


@EXPERIMENTS.register("han", "Han et al. 2015: iterative pruning and fine-tuning of LeNet-300-100 and LeNet-5")
def han(quick, seeds, run):
    seeds = seeds_for(seeds, quick)
    steps, epochs, limit = (2, 1, 1200) if quick else (4, 1, None)
    items = [{"name": name, "seed": s, "steps": steps, "epochs": epochs, "limit": limit} for name in HAN
             for s in range(seeds)]
    results = run(_han_trial, items)
    rows = []
    for i, (name, paper) in enumerate(HAN.items()):
        runs = results[i * seeds:(i + 1) * seeds]
        dense, err = info(name)["test_accuracy"], [1 - r["accuracy"] for r in runs]
        spread = np.std(err, ddof=1) if len(err) > 1 else 0
        pruned = np.mean([r["sparsity"] for r in runs])
        rows += [[f"`{name}`", "dense error", f"{paper['dense_error']:.2f}%",
                  f"{(1 - dense) * 100:.2f}% (one trained network)"],
                 [f"`{name}`", f"pruned {pruned:.1%}, no fine-tuning (one shot)", "-",
                  f"{(1 - runs[0]['one_shot']) * 100:.2f}% (deterministic)"],
                 [f"`{name}`", f"pruned {pruned:.1%}, iteratively fine-tuned", f"{paper['pruned_error']:.2f}%",
                  f"{np.mean(err) * 100:.2f}% ± {spread * 100:.2f}%"]]
    lenet5 = HAN["mnist-lenet5-torch"]
    return "\n\n".join([
        f"Models: `mnist-lenet300-torch` and `mnist-lenet5-torch`. From θf, {steps} pruning steps towards Han et "
        f"al.'s per-layer densities (LeNet-300-100: {_densities(HAN_KEPT)}; LeNet-5: {_densities(lenet5['kept'])} "
        f"of the weights kept; step k keeps density^(k/{steps}) of each layer, by |w|, nested), each followed by "
        f"{epochs} epoch(s) of fine-tuning (each model's zoo recipe: Adam at its learning rate and batch size, "
        "on the first 55,000 training images) from the previous step's weights, pruned weights held at zero. "
        f"{seeds} seeds of the fine-tuning (data order) on one trained network per model.",
        _differences(
            "Pruning rule: the k largest |w| per layer at Han et al.'s final densities; Han et al. prune below a "
            "threshold of a quality parameter times the layer's standard deviation, which reaches those densities.",
            f"Fine-tuning: Adam (the zoo recipe), {epochs} epoch per step; Han et al. retrain with SGD at a lower "
            "learning rate, with L2 regularisation and dropout, for longer (Caffe).",
            f"Steps: {steps} here; Han et al. iterate pruning and retraining without a fixed count for LeNet.",
            "Dense networks: the zoo's, trained with Adam; Han et al.'s are Caffe models (LeNet-300-100 error 1.64%, "
            "LeNet-5 0.80%).",
            f"LeNet-5: Han et al.'s is {lenet5['caffe']} (431K weights); the zoo's is LeCun's (6-16 filters, "
            "120-84 units, 61K weights): its convolutions and first dense layer take their densities, its extra "
            "dense layer fc2 the first's (8%), its output layer their output layer's (19%).",
            "Evaluated on the full test set" + (" after fine-tuning on 1,200 images; the one-shot rows on a "
                                                "2,000-image subset (quick)." if quick else ".")),
        _table(["model", "", "Han et al. 2015", f"measured ({seeds} seeds)"], rows)])
