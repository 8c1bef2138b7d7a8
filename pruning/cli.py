"""python -m pruning: a thin shell over the Python API.  Bad input: one line on stderr, exit 2."""

import argparse
import json
from pathlib import Path
import sys

from .core.criteria import ALIASES, CRITERIA, MODEL_CRITERIA
from . import cli_train
from .models.adapter import adapter
from .errors import PruningError, quote
from .models.export import FORMATS
from .core.evaluate import WEIGHT_SETS, check_weights, evaluate
from .fileio import check_regular
from .core.batchnorm import DEFAULT_IMAGES, check_images
from .core.compare import overlap
from .core.masks import load, report, save
from .core.prune import compute_mask
from .core.selection import SCOPES, check_fraction, check_sparsity, check_whole
from .core.sensitivity import (CAVEAT, SPARSITIES as SENSITIVITY_SPARSITIES, check_sparsities, plan, scan,
                               suggest_budgets)
from .experiments.sweep import sweep, to_csv, write_csv
from .models.zoo import catalogue, load_model


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def _model_options(p):
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a zoo model name (see: python -m pruning models)")
    source.add_argument("--model-file", help="your own model: .safetensors (a zoo architecture), .pt2 "
                                              "(torch.export) or .keras; needs --dataset")
    p.add_argument("--dataset", help="with --model-file: mnist, fashion_mnist or cifar10")
    p.add_argument("--init-file", help="with --model-file: its initial weights (same format), for θ0-based strategies")


def _mask_options(p):
    _model_options(p)
    p.add_argument("--scope", choices=SCOPES, default=None, help="layer (default) or global")
    p.add_argument("--granularity", default="weight", help="weight (default), unit, or N:M such as 2:4")
    p.add_argument("--norm", default=2, help="norm that ranks units: 2 (default) or 1")
    p.add_argument("--output-rate", default=1.0,
                   help="output layer's rate relative to the others (0.5, 0 = dense), or zhou (1 - 0.9^p vs 1 - 0.8^p)")
    p.add_argument("--seed", default=0, help="seed of the random strategy and of the order of tied scores (default 0)")
    p.add_argument("--budgets", metavar="TABLE.json",
                   help="with --scope sensitivity: the sensitivity table (python -m pruning sensitivity --json) the "
                        "per-layer budgets are derived from (default: the zoo model's shipped sensitivity.json)")


def _bn_option(p):
    p.add_argument("--bn-recalibrate", nargs="?", const=DEFAULT_IMAGES, default=None, metavar="N",
                   help="re-estimate the batch-norm statistics of the pruned network on N class-stratified "
                        f"training images first (default N {DEFAULT_IMAGES}; needs PRUNING_DATA_DIR)")


def parser() -> argparse.ArgumentParser:
    strategies = ", ".join([*CRITERIA, *MODEL_CRITERIA, *ALIASES])
    ap = ArgumentParser(prog="python -m pruning", description="Prune zoo models and measure them.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("evaluate", help="prune a model and measure its test accuracy")
    _mask_options(p)
    p.add_argument("--strategy", default=None, help=strategies + " (default large_final)")
    p.add_argument("--sparsity", default=None, help="fraction of weights pruned, 0..1")
    p.add_argument("--mask", default=None, help="evaluate this saved .npz mask instead (checked against the model)")
    p.add_argument("--weights", default="final", help=", ".join(WEIGHT_SETS))
    p.add_argument("--limit", default=None, help="evaluate a class-stratified subset of this size")
    _bn_option(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sweep", help="accuracy over strategies x sparsities, as a tidy CSV")
    _mask_options(p)
    p.add_argument("--strategies", default="large_final", help="comma-separated: " + strategies)
    p.add_argument("--sparsities", default="0,0.5,0.8,0.9,0.95,0.99", help="comma-separated fractions")
    p.add_argument("--weights", default="final", help="comma-separated: " + ", ".join(WEIGHT_SETS))
    p.add_argument("--limit", default=None)
    _bn_option(p)
    p.add_argument("--out", default=None, help="CSV path (default: standard output)")

    p = sub.add_parser("export", help="write a mask (.npz, torch mask dict) or a pruned model: .keras, .onnx, "
                       "or shrunk (removed units gone) .safetensors, .keras or .onnx")
    _mask_options(p)
    p.add_argument("--strategy", default="large_final", help=strategies)
    p.add_argument("--sparsity", default=None)
    p.add_argument("--format", default="npz", choices=list(FORMATS))
    p.add_argument("--out", required=True)

    p = sub.add_parser("compare", help="two masks of one model side by side: accuracies and overlap per layer")
    _model_options(p)
    side = "comma-separated key=value: " + ", ".join(SIDE_KEYS)
    p.add_argument("--a", default="", help=f"setting A, {side} (e.g. strategy=large_final,sparsity=0.9)")
    p.add_argument("--b", default="", help=f"setting B, {side}; keys it leaves out are A's")
    p.add_argument("--weights", default="final", help="weight set of a side that does not give one: "
                   + ", ".join(WEIGHT_SETS))
    p.add_argument("--limit", default=None, help="evaluate a class-stratified subset of this size")
    _bn_option(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sensitivity", help="each layer pruned alone (the rest dense): accuracy per layer x sparsity")
    _model_options(p)
    p.add_argument("--sparsities", default=",".join(f"{s:g}" for s in SENSITIVITY_SPARSITIES),
                   help="comma-separated, increasing, in (0, 1]")
    p.add_argument("--criterion", default="large_final", help=", ".join(CRITERIA))
    p.add_argument("--weights", default="final", help=", ".join(WEIGHT_SETS))
    p.add_argument("--limit", default=None, help="evaluate a class-stratified subset of this size")
    p.add_argument("--seed", default=0, help="order of tied scores (default 0)")
    p.add_argument("--target", default=None, help="also suggest per-layer budgets for this overall sparsity")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("train", help="train a zoo model from its recipe (needs PRUNING_DATA_DIR)")
    p.add_argument("name")

    p = sub.add_parser("supermask", help="learn a supermask on the untrained weights θ0 by edge-popup "
                                         "(Ramanujan et al. 2020; needs PRUNING_DATA_DIR)")
    p.add_argument("--model", required=True, help="a zoo model name (PyTorch or Keras)")
    p.add_argument("--keep", default=0.5, help="fraction of every layer's weights kept, in (0, 1] (default 0.5)")
    p.add_argument("--epochs", default=3, help="training epochs of the scores (default 3)")
    p.add_argument("--seed", default=0, help="seed of the initial scores and the data order (default 0)")
    p.add_argument("--limit", default=None, help="train on the first N training examples only")
    p.add_argument("--out", default=None, help="write the mask as .npz (reloads with pruning.load_mask)")
    p.add_argument("--json", action="store_true")
    cli_train.add_parsers(sub)
    return ap


def _int_or_none(value, what):
    return None if value is None else check_whole(value, what, 1)


def _model(args):
    """The zoo model named by --model, or the user's file given by --model-file (see byo.py)."""
    if getattr(args, "model_file", None) is None:
        if getattr(args, "dataset", None) or getattr(args, "init_file", None):
            raise PruningError("--dataset and --init-file go with --model-file")
        return load_model(args.model)
    if not args.dataset:
        raise PruningError("--model-file needs --dataset (mnist, fashion_mnist or cifar10)")
    for path in (args.model_file, args.init_file):
        if path is not None:
            check_regular(path, "read")  # a FIFO or a device would block or never end
    from .uploads.byo import load_file_model

    return load_file_model(args.model_file, args.dataset, args.init_file)


def _budgets(args, model, sparsity):
    """The sensitivity scope's per-layer budgets, derived from a table as the explorer does: the one in
    --budgets, else the zoo model's shipped sensitivity.json; None for every other scope."""
    if args.scope != "sensitivity":
        if args.budgets is not None:
            raise PruningError("--budgets goes with --scope sensitivity")
        return None
    if args.budgets is not None:
        check_regular(args.budgets)
        try:
            table = json.loads(Path(args.budgets).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise PruningError(f"--budgets: cannot read a sensitivity table from {quote(args.budgets)}: "
                               f"{quote(exc)}") from None
    else:
        from .experiments.zoo_sensitivity import shipped

        table = shipped(model.name) if args.model else None
        if table is None:
            raise PruningError(f"scope 'sensitivity' needs a sensitivity table: {model.name} ships none; make one "
                               "with python -m pruning sensitivity --json > table.json and pass --budgets table.json")
    if sparsity is None:
        raise PruningError("scope 'sensitivity' needs --sparsity (the overall target)")
    return suggest_budgets(table, check_sparsity(sparsity))


def _mask(args, strategy, sparsity):
    model = _model(args)
    mask = compute_mask(model, strategy, sparsity, scope=args.scope, granularity=args.granularity,
                        norm=args.norm, output_rate=args.output_rate, seed=args.seed,
                        budgets=_budgets(args, model, sparsity))
    return model, mask


def cmd_models(args, out):
    rows = catalogue()
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return
    print(f"{'name':28} {'framework':9} {'dataset':14} {'parameters':>10} {'accuracy':>8}", file=out)
    for r in rows:
        print(f"{r['name']:28} {r['framework']:9} {r['dataset']:14} {r['parameters']:>10} "
              f"{r['test_accuracy']:>8.4f}", file=out)


def cmd_evaluate(args, out):
    weights = check_weights(args.weights)
    limit = _int_or_none(args.limit, "limit")
    bn = check_images(args.bn_recalibrate)
    if args.mask is not None:
        if args.strategy is not None or args.sparsity is not None:
            raise PruningError("--mask gives the mask: leave out --strategy and --sparsity")
        model = _model(args)
        check_regular(args.mask, "read")
        mask = load(args.mask, {name: spec.shape for name, spec in model.specs.items()})
        strategy = mask.meta.get("strategy", "mask file")
    else:
        strategy = args.strategy or "large_final"
        model, mask = _mask(args, strategy, args.sparsity)
    result = evaluate(model, mask, weights=weights, limit=limit, bn_recalibrate=bn)
    rep, meta = report(mask), mask.meta
    row = {"model": model.name, "strategy": strategy, "scope": meta.get("scope"),
           "granularity": meta.get("granularity"), "weights": weights,
           "requested_sparsity": meta.get("requested_sparsity"), "sparsity": rep["sparsity"],
           "accuracy": result.accuracy, "n": result.n, "seed": meta.get("seed"), "device": result.device,
           "seconds": round(result.seconds, 4), "warnings": result.warnings, "bn_recalibrate": bn,
           "layers": [{"name": r["name"], "shape": r["shape"], "sparsity": r["sparsity"]} for r in rep["layers"]]}
    if args.json:
        print(json.dumps(row), file=out)
        return
    recalibrated = f" (batch-norm statistics re-estimated on {bn} training images)" if bn else ""
    print(f"{model.name}: {strategy} ({row['scope']}, {row['granularity']}) on {weights} weights, "
          f"sparsity {row['sparsity']:.4f}: accuracy {row['accuracy']:.4f} on {row['n']} test images{recalibrated}",
          file=out)
    for note in result.warnings:
        print(f"  warning: {note}", file=out)
    for layer in row["layers"]:
        print(f"  {layer['name']:32} {str(tuple(layer['shape'])):22} sparsity {layer['sparsity']:.4f}", file=out)


def _split(text, what):
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise PruningError(f"no {what} given")
    return items


def cmd_sweep(args, out):
    from tqdm import tqdm

    if args.out:
        check_regular(args.out)  # before the work, not after it
    if args.scope == "sensitivity" or args.budgets is not None:
        raise PruningError("sweep cannot use scope 'sensitivity' (its budgets are derived per sparsity): "
                           "use evaluate --scope sensitivity at each sparsity")
    model = _model(args)

    def progress(fn, jobs):
        return tqdm(map(fn, jobs), total=len(jobs), desc=f"sweep {model.name}", file=sys.stderr)

    rows = sweep(model, _split(args.strategies, "strategies"), _split(args.sparsities, "sparsities"),
                 _split(args.weights, "weights"), scope=args.scope, granularity=args.granularity,
                 limit=_int_or_none(args.limit, "limit"), norm=args.norm, output_rate=args.output_rate,
                 seed=args.seed, bn_recalibrate=check_images(args.bn_recalibrate), map=progress)
    if args.out:
        write_csv(rows, args.out)
    else:
        out.write(to_csv(rows))


def cmd_export(args, out):
    check_regular(args.out)
    model, mask = _mask(args, args.strategy, args.sparsity)
    FORMATS.get(args.format)(model, mask, args.out)
    print(f"wrote {args.out}: {args.strategy} mask of {model.name} at sparsity {mask.meta['sparsity']:.4f}",
          file=out)


SIDE_KEYS = ("strategy", "scope", "granularity", "sparsity", "weights")  # what --a and --b may set


def _side(text: str, flag: str) -> dict:
    """The settings one of --a / --b gives: "strategy=movement,scope=global" -> {"strategy": ..., ...}."""
    given = {}
    for item in filter(str.strip, str(text).split(",")):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise PruningError(f"{flag}: {item.strip()!r:.40} is not key=value")
        if key not in SIDE_KEYS:
            raise PruningError(f"{flag}: unknown key {key!r:.40}; use {', '.join(SIDE_KEYS)}")
        if key in given:
            raise PruningError(f"{flag}: {key} is given twice")
        given[key] = value
    return given


def _side_mask(model, values: dict, flag: str):
    """The mask of one side's settings (errors name the side)."""
    try:
        check_weights(values["weights"])
        return compute_mask(model, values["strategy"], values["sparsity"], scope=values["scope"],
                            granularity=values["granularity"])
    except PruningError as exc:
        raise PruningError(f"{flag}: {exc}") from None


def _b_values(a: dict, given: dict) -> dict:
    """B's settings: A's (as used) where B gives none, except where B's own choice fixes them."""
    b = {**a, **given}
    if "scope" not in given and b["strategy"] in ALIASES:
        b["scope"] = None  # smallest_weights... fixes its own scope
    if "sparsity" not in given and "granularity" in given and ":" in b["granularity"]:
        b["sparsity"] = None  # an N:M pattern fixes the sparsity
    return b


def cmd_compare(args, out):
    limit = _int_or_none(args.limit, "limit")
    bn = check_images(args.bn_recalibrate)
    a_given, b_given = _side(args.a, "--a"), _side(args.b, "--b")
    model = _model(args)
    a = {"strategy": "large_final", "scope": None, "granularity": "weight", "sparsity": None,
         "weights": args.weights, **a_given}
    mask_a = _side_mask(model, a, "--a")
    a = {**a, "scope": mask_a.meta["scope"], "granularity": mask_a.meta["granularity"],
         "sparsity": mask_a.meta["requested_sparsity"]}  # A's values as used: what B inherits
    b = _b_values(a, b_given)
    mask_b = _side_mask(model, b, "--b")
    sides = {}
    for label, values, mask in (("a", a, mask_a), ("b", b, mask_b)):
        result = evaluate(model, mask, weights=values["weights"], limit=limit, bn_recalibrate=bn)
        sides[label] = {"strategy": values["strategy"], "scope": mask.meta["scope"],
                        "granularity": mask.meta["granularity"], "weights": values["weights"],
                        "sparsity": mask.meta["sparsity"], "accuracy": result.accuracy, "n": result.n}
    o = overlap(mask_a, mask_b)
    row = {"model": model.name, "bn_recalibrate": bn, "a": sides["a"], "b": sides["b"], "jaccard": o["jaccard"],
           "kept_a": o["kept_a"], "kept_b": o["kept_b"], "kept_both": o["kept_both"], "layers": o["layers"]}
    if args.json:
        print(json.dumps(row), file=out)
        return
    recalibrated = f" (batch-norm statistics re-estimated on {bn} training images)" if bn else ""
    print(f"{model.name} on {sides['a']['n']} test images{recalibrated}", file=out)
    for label, side in sides.items():
        print(f"  {label.upper()}: {side['strategy']} ({side['scope']}, {side['granularity']}) on {side['weights']} "
              f"weights, sparsity {side['sparsity']:.4f}: accuracy {side['accuracy']:.4f}", file=out)
    print(f"  kept weights: A {o['kept_a']}, B {o['kept_b']}, both {o['kept_both']}: Jaccard {o['jaccard']:.4f}",
          file=out)
    print(f"  {'layer':32} {'sparsity A':>10} {'sparsity B':>10} {'Jaccard':>8}", file=out)
    for layer in o["layers"]:
        print(f"  {layer['name']:32} {layer['sparsity_a']:>10.4f} {layer['sparsity_b']:>10.4f} "
              f"{layer['jaccard']:>8.4f}", file=out)


def cmd_sensitivity(args, out):
    from tqdm import tqdm

    sparsities = check_sparsities(args.sparsities)
    target = None if args.target is None else check_fraction(args.target, "target sparsity")
    limit = _int_or_none(args.limit, "limit")
    weights = check_weights(args.weights)
    model = _model(args)
    with tqdm(total=len(model.specs) * len(sparsities), desc=f"sensitivity {model.name}", file=sys.stderr,
              disable=None) as bar:
        table = scan(model, sparsities, args.criterion, weights=weights, limit=limit, seed=args.seed,
                     progress=lambda done, total: bar.update(done - bar.n))
    if target is not None:
        table["suggestion"] = {"target": target, **plan(table, target)}
    if args.json:
        print(json.dumps(table), file=out)
        return
    print(f"{model.name}: {table['criterion']} on {weights} weights, one layer at a time (the rest dense), "
          f"{table['n']} test images; dense accuracy {table['dense_accuracy']:.4f}", file=out)
    print(f"  {'layer':28} {'weights':>9} " + " ".join(f"{s:>6.0%}" if s * 100 == round(s * 100) else f"{s:>6.1%}"
                                                  for s in sparsities), file=out)
    for layer in table["layers"]:
        print(f"  {layer['name']:28} {layer['parameters']:>9} " + " ".join(f"{a:>6.3f}" for a in layer["accuracy"]),
              file=out)
    if target is not None:
        suggestion = table["suggestion"]
        print(f"  budgets for {target:.2%} overall (each layer's drop within {suggestion['tolerance']:.2%} when "
              f"pruned alone):", file=out)
        for name, budget in suggestion["budgets"].items():
            print(f"    {name:28} {budget:.4f}", file=out)
    print(f"  note: {CAVEAT}", file=out)


def cmd_train(args, out):
    from .training.recipes import RECIPES

    if args.name not in RECIPES:
        raise PruningError(f"unknown model {args.name!r}; choose one of: {', '.join(RECIPES)}")
    trainer = adapter(RECIPES[args.name]["framework"]).training()
    trainer.train_zoo_model(args.name, log=lambda line: print(line, file=out, flush=True))


def cmd_supermask(args, out):
    from .training.supermask import check_keep, learn

    if args.out is not None:
        check_regular(args.out)
        folder = Path(args.out).parent
        if not folder.is_dir():
            raise PruningError(f"cannot write {args.out}: directory {folder} does not exist")
    keep, limit = check_keep(args.keep), _int_or_none(args.limit, "limit")
    epochs, seed = check_whole(args.epochs, "epochs", 1), check_whole(args.seed, "seed")
    model = load_model(args.model)
    progress = None if args.json else (lambda h: print(f"epoch {h['epoch']}: loss {h['loss']:.4f}, test accuracy "
                                                       f"on θ0 {h['accuracy']:.4f}", file=out, flush=True))
    mask = learn(model, keep, epochs, seed, limit=limit, on_epoch=progress).mask
    if args.out is not None:
        save(mask, args.out)
    if args.json:
        print(json.dumps({k: v for k, v in mask.meta.items() if k != "weights_sha256"}, indent=2), file=out)
        return
    print(f"{model.name}: learned supermask keeping {keep:g} of every layer, test accuracy on θ0 "
          f"{mask.meta['accuracy']:.4f}" + (f"; wrote {args.out}" if args.out else ""), file=out)


COMMANDS = {"models": cmd_models, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "export": cmd_export,
            "compare": cmd_compare, "sensitivity": cmd_sensitivity, "train": cmd_train,
            "supermask": cmd_supermask, **cli_train.COMMANDS}


def main(argv=None, out=None) -> int:
    args = parser().parse_args(argv)  # argparse itself exits 2 with one usage line on bad flags
    try:
        COMMANDS[args.command](args, out or sys.stdout)
    except PruningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
