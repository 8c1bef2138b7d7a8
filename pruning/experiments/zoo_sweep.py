"""Precompute a zoo model's accuracy-vs-sparsity table, ``pretrained/<name>/sweep.csv``.

    python -m pruning.experiments.zoo_sweep mnist-lenet300-torch [more names ...]

Runs ``pruning.sweep`` (the same rows as ``python -m pruning sweep``) with the main criteria (layer
scope, plus the global magnitude ranking ``smallest_weights_global``) at the sparsities below, on
the trained and the initial weights, over the full test set.  ``sweep.json`` beside the table
records the exact command, its wall time and the hardware, so the table can be reproduced and
checked.  A full CIFAR-10 pass took 2 CPU cores 20-40 s in the committed sweeps (see
pretrained/README.md), so CIFAR models get a smaller grid: fewer criteria and sparsities.
"""

import json
import math
import shlex
import sys
import time

from ..errors import PruningError
from ..fileio import atomic_write
from ..models.adapter import adapter
from .sweep import sweep, write_csv
from ..models.zoo import ZOO, info

STRATEGIES = ("large_final", "small_final", "large_init", "large_init_large_final", "magnitude_increase",
              "movement", "large_final_same_sign", "random", "smallest_weights_global")
SPARSITIES = ("0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.85", "0.9", "0.92", "0.94",
              "0.95", "0.96", "0.97", "0.98", "0.99")
WEIGHTS = ("final", "init")
CIFAR_STRATEGIES = ("large_final", "random", "smallest_weights_global")  # what the explorer draws
CIFAR_SPARSITIES = ("0", "0.2", "0.4", "0.6", "0.8", "0.9", "0.95", "0.98", "0.99")


def grid(name: str) -> tuple:
    """(strategies, sparsities, weight sets) of ``name``'s table."""
    if info(name)["dataset"] == "cifar10":
        return CIFAR_STRATEGIES, CIFAR_SPARSITIES, WEIGHTS
    return STRATEGIES, SPARSITIES, WEIGHTS


def arguments(name: str, out: str) -> list:
    """The ``python -m pruning`` arguments that write ``name``'s table to ``out``."""
    strategies, sparsities, weights = grid(name)
    return ["sweep", "--model", name, "--strategies", ",".join(strategies), "--sparsities", ",".join(sparsities),
            "--weights", ",".join(weights), "--out", out]


def run(name: str, log=print) -> dict:
    """Write pretrained/<name>/sweep.csv and sweep.json; returns the sweep.json record."""
    info(name)  # an unknown name raises PruningError

    start = time.perf_counter()
    strategies, sparsities, weights = grid(name)
    write_csv(sweep(name, strategies, sparsities, weights), ZOO / name / "sweep.csv")
    record = {"command": "python -m pruning " + shlex.join(arguments(name, f"pretrained/{name}/sweep.csv")),
              "rows": math.prod(len(axis) for axis in grid(name)),  # identical masks are evaluated once
              "wall_time_s": round(time.perf_counter() - start, 1),
              "hardware": adapter(info(name)["framework"]).hardware(),
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if "torch" in sys.modules:  # PyTorch did the work (a PyTorch model) or stood by
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    atomic_write(ZOO / name / "sweep.json", lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    if log:
        log(f"{name}: {record['rows']} rows in {record['wall_time_s']}s")
    return record


def for_each_name(run, module: str, argv=None) -> int:
    """The command line of a per-model generator: ``python -m <module> NAME [NAME ...]`` calls
    ``run(name)`` for each; a PruningError is one line and exit code 2."""
    names = sys.argv[1:] if argv is None else argv
    if not names:
        print(f"usage: python -m {module} NAME [NAME ...]", file=sys.stderr)
        return 2
    try:
        for name in names:
            run(name)
    except PruningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    return for_each_name(run, __name__, argv)


if __name__ == "__main__":
    sys.exit(main())
