"""Training subcommands of ``python -m pruning``: retrain, imp, imp-rounds (a shipped run's table),
gradual (and --dynamic), reproduce."""

import json

from .errors import PruningError
from .fileio import atomic_write, check_regular
from .core.prune import compute_mask
from .training.retrain import REWINDS, dynamic, gradual, imp, retrain
from .core.selection import MAX_WHOLE, check_fraction, check_whole
from .models.zoo import load_model


def add_parsers(sub):
    p = sub.add_parser("retrain", help="retrain a pruned model from θ0, θk, θf or a random init")
    p.add_argument("--model", required=True)
    p.add_argument("--strategy", default="large_final")
    p.add_argument("--sparsity", required=True)
    p.add_argument("--scope", choices=("layer", "global"), default=None)
    p.add_argument("--rewind", default="init", help=", ".join(REWINDS))
    p.add_argument("--epochs", type=_positive, default=None)
    p.add_argument("--limit", type=_positive, default=None, help="train on the first N training examples")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("imp", help="iterative magnitude pruning with rewinding (lottery tickets)")
    p.add_argument("--model", required=True)
    p.add_argument("--rounds", type=_positive, required=True)
    p.add_argument("--rate", default=0.2, help="fraction of the remaining weights pruned per round")
    p.add_argument("--output-rate", default=0.5, help="output layer's rate as a fraction of --rate")
    p.add_argument("--rewind", default="init", help=", ".join(REWINDS))
    p.add_argument("--epochs", type=_positive, default=None)
    p.add_argument("--limit", type=_positive, default=None)
    p.add_argument("--control", action="store_true", help="also train each mask from a random re-init")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("imp-rounds", help="the table of a shipped IMP run, round by round (ticket vs random re-init)")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("gradual", help="prune during training: PolynomialDecay, or --dynamic")
    p.add_argument("--model", required=True)
    p.add_argument("--initial", default=0.5)
    p.add_argument("--final", default=0.8)
    p.add_argument("--epochs", type=_positive, default=None)
    p.add_argument("--limit", type=_positive, default=None)
    p.add_argument("--dynamic", action="store_true", help="prune --rate at 1/3 and 2/3 of training from θ0")
    p.add_argument("--rate", default=0.17)
    p.add_argument("--json", action="store_true")

    from .experiments.reproduce import EXPERIMENTS

    p = sub.add_parser("reproduce", help="re-run a published experiment: " + ", ".join(EXPERIMENTS))
    p.add_argument("name")
    p.add_argument("--quick", action="store_true", help="a small, fast version (a smoke test, not a result)")
    p.add_argument("--out", default=None, help="write the Markdown here (default: standard output)")
    p.add_argument("--seeds", type=lambda t: _whole(t, 1), default=None,
                   help="seeds per setting (default: 5 for MNIST-sized models, 3 for CIFAR-10; 2 with --quick)")
    p.add_argument("--jobs", type=lambda t: _whole(t, 1), default=None,
                   help="run the trials on a Ray instance started here, N at a time (needs ray)")
    p.add_argument("--address", default=None, help="run the trials on an existing Ray cluster (HOST:PORT)")


def _whole(text, minimum):
    import argparse

    try:
        return check_whole(text, "value", minimum)
    except PruningError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from {minimum} to {MAX_WHOLE}, got {text!r:.40}") from None


def _positive(text):
    return _whole(text, 1)


def _seed(text):
    return _whole(text, 0)


def _print_run(run, args, out, extra=None):
    row = {"model": args.model, "accuracy": run.accuracy, "sparsity": run.mask.sparsity,
           "history": run.history, "seconds": round(run.seconds, 2)} | (extra or {})
    if args.json:
        print(json.dumps(row), file=out)
        return
    for h in run.history:
        print(f"epoch {h['epoch']}: loss {h['loss']:.4f}, test accuracy {h['accuracy']:.4f}, "
              f"sparsity {h['sparsity']:.4f}", file=out)
    print(f"{args.model}: test accuracy {run.accuracy:.4f} at sparsity {run.mask.sparsity:.4f}", file=out)


def cmd_retrain(args, out):
    model = load_model(args.model)
    mask = compute_mask(model, args.strategy, args.sparsity, scope=args.scope)
    run = retrain(model, mask, rewind=args.rewind, epochs=args.epochs, seed=args.seed, limit=args.limit)
    _print_run(run, args, out, {"strategy": args.strategy, "rewind": args.rewind})


def cmd_imp(args, out):
    rate, output_rate = check_fraction(args.rate, "rate"), check_fraction(args.output_rate, "output rate")
    model = load_model(args.model)
    rows = imp(model, rounds=args.rounds, rate=rate, output_rate=output_rate, rewind=args.rewind,
               epochs=args.epochs, limit=args.limit, control=args.control,
               on_round=None if args.json else lambda r: print(json.dumps(r), file=out, flush=True))
    if args.json:
        print(json.dumps({"model": args.model, "rounds": rows, "accuracy": rows[-1]["accuracy"],
                          "sparsity": rows[-1]["sparsity"]}), file=out)


def cmd_imp_rounds(args, out):
    from .experiments.imp_runs import load_imp_run
    from .experiments.imp_table import format_table, imp_table

    rows = imp_table(load_imp_run(args.model, args.seed))
    if args.json:
        print(json.dumps({"model": args.model, "seed": args.seed, "rounds": rows}), file=out)
    else:
        out.write(format_table(args.model, rows))


def cmd_gradual(args, out):
    if args.dynamic:  # bad fractions fail before the training data is read
        rate = check_fraction(args.rate, "rate")
    else:
        initial, final = check_fraction(args.initial, "initial sparsity"), check_fraction(args.final, "final sparsity")
    model = load_model(args.model)
    if args.dynamic:
        run = dynamic(model, epochs=args.epochs, rate=rate, limit=args.limit)
    else:
        run = gradual(model, initial=initial, final=final, epochs=args.epochs, limit=args.limit)
    _print_run(run, args, out, {"method": "dynamic" if args.dynamic else "polynomial_decay"})


def cmd_reproduce(args, out):
    from .experiments.reproduce import EXPERIMENTS, run

    EXPERIMENTS.get(args.name)  # an unknown name or output fails before any work
    if args.out:
        check_regular(args.out)
    text = run(args.name, quick=args.quick, seeds=args.seeds, jobs=args.jobs, address=args.address)
    if args.out:
        atomic_write(args.out, lambda f: f.write(text.encode()))
    else:
        out.write(text)


COMMANDS = {"retrain": cmd_retrain, "imp": cmd_imp, "imp-rounds": cmd_imp_rounds, "gradual": cmd_gradual,
            "reproduce": cmd_reproduce}
