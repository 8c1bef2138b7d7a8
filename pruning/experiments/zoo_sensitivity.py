"""Precompute a zoo model's per-layer sensitivity table, ``pretrained/<name>/sensitivity.json``.

    python -m pruning.experiments.zoo_sensitivity mnist-lenet300-torch [more names ...]

Runs ``pruning.sensitivity`` (the same table as ``python -m pruning sensitivity --json``) with
``large_final`` at the default sparsities on the full test set for MNIST-like models; CIFAR-10
models get a coarser grid (``CIFAR_SPARSITIES``, as ``zoo_sweep`` does) on a class-stratified
subset of 500 test images, the explorer's default on a CPU (the full set would take a shared CPU
hours: 20 layers x 12 sparsities of ResNet-20).  The file records the exact
command, the wall time and the hardware beside the table, so it can be reproduced and checked.
"""

import json
import shlex
import sys

from ..fileio import atomic_write
from ..models.adapter import adapter
from ..models.zoo import ZOO, info, load_model
from ..core.sensitivity import SPARSITIES, scan

CIFAR_LIMIT = 500  # class-stratified CIFAR-10 test images: the explorer's default subset on a CPU
CIFAR_SPARSITIES = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def limit(name: str) -> int | None:
    return CIFAR_LIMIT if info(name)["dataset"] == "cifar10" else None


def sparsities(name: str) -> tuple:
    return CIFAR_SPARSITIES if info(name)["dataset"] == "cifar10" else SPARSITIES


def arguments(name: str) -> list:
    """The ``python -m pruning`` arguments that print ``name``'s table."""
    extra = ["--limit", str(limit(name))] if limit(name) else []
    grid = ",".join(f"{s:g}" for s in sparsities(name))
    return ["sensitivity", "--model", name, "--sparsities", grid, *extra, "--json"]


def shipped(name: str) -> dict | None:
    """The zoo model's precomputed table (``pretrained/<name>/sensitivity.json``), or None."""
    path = ZOO / name / "sensitivity.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run(name: str, log=print) -> dict:
    """Write pretrained/<name>/sensitivity.json; returns the table with its record."""
    info(name)  # an unknown name raises PruningError

    table = scan(load_model(name), sparsities(name), "large_final", limit=limit(name))
    images = (f"a class-stratified subset of {table['n']} test images (data.stratified_indices)"
              if limit(name) else f"the full test set ({table['n']} images)")
    table["record"] = {"command": "python -m pruning " + shlex.join(arguments(name)), "images": images,
                       "regenerate": f"python -m pruning.experiments.zoo_sensitivity {name}",
                       "wall_time_s": table["seconds"], "hardware": adapter(info(name)["framework"]).hardware()}
    if "torch" in sys.modules:
        table["record"]["torch_threads"] = sys.modules["torch"].get_num_threads()
    atomic_write(ZOO / name / "sensitivity.json", lambda f: f.write((json.dumps(table, indent=1) + "\n").encode()))
    if log:
        log(f"{name}: {len(table['layers'])} layers x {len(table['sparsities'])} sparsities on {table['n']} images "
            f"in {table['seconds']}s")
    return table


def main(argv=None) -> int:
    from .zoo_sweep import for_each_name

    return for_each_name(run, __name__, argv)


if __name__ == "__main__":
    sys.exit(main())
