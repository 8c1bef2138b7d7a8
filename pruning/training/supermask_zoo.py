"""Generate the learned supermasks shipped under pretrained/<name>/supermasks/ (supermask_files.py).

    PRUNING_DATA_DIR=... python -m pruning.training.supermask_zoo mnist-lenet300-torch \\
        --keeps 0.1,0.3,0.5,0.7 --epochs 10 --seeds 0 --extra-seeds 1,2 --main 0.5

Seed 0 (the first of --seeds) of every density is shipped; every run, --extra-seeds of the
--main density included, is recorded in runs.json (for the mean ± std in docs/reproductions.md).
A run already in runs.json (same keep, seed and epochs) is skipped, so the command resumes.
"""

import argparse
import sys
import time

from ..fileio import write_json
from . import supermask_files as files
from .supermask import learn


def _floats(text):
    return [float(v) for v in text.split(",") if v]


def _ints(text):
    return [int(v) for v in text.split(",") if v]


def run(name: str, keeps, epochs: int, seeds, extra_seeds, main: float, eval_limit=None, log=print) -> list:
    import pruning

    model = pruning.load_model(name)
    runs = files.runs(name)
    jobs = [(keep, seed, seed == seeds[0]) for keep in keeps for seed in seeds]
    jobs += [(main, seed, False) for seed in extra_seeds]
    for keep, seed, ship in jobs:
        if any(r["keep"] == keep and r["seed"] == seed and r["epochs"] == epochs for r in runs):
            continue
        t0 = time.time()
        learned = learn(model, keep=keep, epochs=epochs, seed=seed, eval_limit=eval_limit,
                                  on_epoch=lambda h, k=keep, s=seed: log(f"{name} keep {k} seed {s}: {h}"))
        meta = learned.mask.meta
        runs = [r for r in runs if not (r["keep"] == keep and r["seed"] == seed)]
        runs.append({k: meta[k] for k in ("keep", "seed", "epochs", "accuracy", "test_n", "sparsity", "seconds",
                                          "history", "method", "hyper", "data")} | {"shipped": ship})
        runs.sort(key=lambda r: (r["keep"], r["seed"]))
        if ship:
            files.save(learned.mask, learned.scores, runs)
        else:
            files.folder(name).mkdir(parents=True, exist_ok=True)
            write_json(files.folder(name) / "runs.json", runs, indent=1)
        log(f"{name} keep {keep} seed {seed}: accuracy {meta['accuracy']:.4f} in {time.time() - t0:.0f}s")
    return runs


def table(names) -> str:
    """Markdown: per model and density, the shipped run's accuracy and mean ± std over all seeds."""
    import numpy as np

    lines = ["| model | keep (pruned) | seeds | test accuracy on θ0, mean ± std | shipped mask (seed 0) | "
             "epochs | wall time per run |", "|---|---|---|---|---|---|---|"]
    for name in names:
        runs = files.runs(name)
        for keep in sorted({r["keep"] for r in runs}):
            rows = [r for r in runs if r["keep"] == keep]
            acc = np.array([r["accuracy"] for r in rows])
            shipped = next((r["accuracy"] for r in rows if r.get("shipped")), None)
            spread = f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f}" if len(acc) > 1 else f"{acc[0]:.4f} (one seed)"
            lines.append(f"| `{name}` | {keep:g} ({1 - keep:.0%}) | {len(rows)} | {spread} | "
                         f"{'' if shipped is None else f'{shipped:.4f}'} | {rows[0]['epochs']} | "
                         f"{np.mean([r['seconds'] for r in rows]):.0f} s |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--keeps", type=_floats, default=[0.1, 0.3, 0.5, 0.7])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=_ints, default=[0])
    p.add_argument("--extra-seeds", type=_ints, default=[1, 2])
    p.add_argument("--main", type=float, default=0.5)
    p.add_argument("--eval-limit", type=int, default=None, help="per-epoch accuracy on a stratified subset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", action="store_true", help="only print the measured runs as a Markdown table")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.models))
        return
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        pass
    for name in a.models:
        run(name, a.keeps, a.epochs, a.seeds, a.extra_seeds, a.main, a.eval_limit,
            log=lambda m: print(m, flush=True, file=sys.stdout))


if __name__ == "__main__":
    main()
