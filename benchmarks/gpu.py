"""One prepared run on a machine with an NVIDIA GPU, inside a fixed time budget.

    python benchmarks/gpu.py all --out DIR --budget SECONDS   # everything below, in this order
    python benchmarks/gpu.py zoo --json FILE                  # this process's device (CUDA_VISIBLE_DEVICES= : the CPU)
    python benchmarks/gpu.py supermask --keep 0.5 --seed 0 --epochs 100 --out DIR
    python benchmarks/gpu.py compare CPU.json CUDA.json       # Markdown; exit 1 if an accuracy differs by > 1e-3

1. zoo: every zoo model this machine can load, its accuracy on the full test set at a few settings
   (dense θf; global large_final 50%, 90%, 99% on θf; layer-wise large_final 90% on θ0) and the
   live path's time (compute_mask + evaluate of the full test set at 90%, median of 5), once on
   CUDA and once on the CPU in another process, compared to 1e-3 (issue 19).
2. supermask: edge-popup on the untrained cifar10-conv4-torch, the paper's 100 epochs, keeps 0.5,
   0.3, 0.7 x seeds 0, 1, 2, all at once on the GPU, in this priority order; while they run, the
   lowest-priority run still going is stopped whenever the runs' recent pace says they would not
   all end before the budget's share, and a run stopped so is reported as not done (issue 17).
3. load: the explorer's server pinned to 2 cores, the websocket generator (ws_load.py) on others:
   30 sessions on mnist-lenet300-torch and on cifar10-conv4-torch, a move every 3-5 s, and the
   server's CPU seconds per move; only if the budget has the time left (issue 19).
Everything lands in DIR: zoo-cpu.json, zoo-cuda.json, zoo-compare.md, supermask/ (per run a record
and a log; the seed-0 masks and scores under supermask/pretrained/, the layout of pretrained/),
load.json, and gpu.log.
"""

import argparse
import asyncio
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402

MODEL = "cifar10-conv4-torch"
JOBS = [(0.5, 0), (0.5, 1), (0.5, 2), (0.3, 0), (0.7, 0), (0.3, 1), (0.7, 1), (0.3, 2), (0.7, 2)]  # priority
SETTINGS = [("dense", "final", None, None), ("global 50%", "final", 0.5, "global"),
            ("global 90%", "final", 0.9, "global"), ("global 99%", "final", 0.99, "global"),
            ("layer 90% on θ0", "init", 0.9, "layer")]
TOLERANCE = 1e-3


def zoo(path: str, names=None) -> None:
    import pruning
    from pruning.models import zoo as z
    from pruning.models.torch_model import accelerator

    out = {"device": accelerator() or "cpu", "models": []}
    for name in names or z.names():
        try:
            model = pruning.load_model(name)
        except Exception as exc:  # e.g. a Keras model where TensorFlow is not installed
            out["models"].append({"model": name, "skipped": f"{type(exc).__name__}: {str(exc)[:120]}"})
            continue
        row = {"model": name, "accuracy": {}}
        for label, weights, sparsity, scope in SETTINGS:
            mask = None if sparsity is None else pruning.compute_mask(model, "large_final", sparsity, scope=scope)
            row["accuracy"][label] = pruning.evaluate(model, mask, weights=weights, limit=None).accuracy

        def live(model=model):
            return pruning.evaluate(model, pruning.compute_mask(model, "large_final", 0.9, scope="global"), limit=None)

        live()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            live()
            times.append(time.perf_counter() - start)
        row["live_seconds"] = float(np.median(times))
        out["models"].append(row)
        print(f"zoo {out['device']} {name}: {row}", flush=True)
    Path(path).write_text(json.dumps(out, indent=1))


def compare(cpu_path: str, cuda_path: str) -> int:
    cpu, cuda = (json.loads(Path(p).read_text()) for p in (cpu_path, cuda_path))
    rows = {r["model"]: r for r in cpu["models"]}
    lines = [f"| model | setting | CPU | {cuda['device']} | difference |", "|---|---|---|---|---|"]
    worst = 0.0
    for g in cuda["models"]:
        c = rows[g["model"]]
        if "skipped" in g or "skipped" in c:
            lines.append(f"| `{g['model']}` | not run: {g.get('skipped') or c.get('skipped')} | | | |")
            continue
        for label, acc in g["accuracy"].items():
            diff = abs(acc - c["accuracy"][label])
            worst = max(worst, diff)
            lines.append(f"| `{g['model']}` | {label} | {c['accuracy'][label]:.4f} | {acc:.4f} | {diff:.4f} |")
    lines += ["", "| model | live path on the CPU (16 cores) | on the GPU | speed-up |", "|---|---|---|---|"]
    for g in cuda["models"]:
        c = rows[g["model"]]
        if "live_seconds" in g and "live_seconds" in c:
            lines.append(f"| `{g['model']}` | {c['live_seconds'] * 1e3:.1f} ms | {g['live_seconds'] * 1e3:.1f} ms | "
                         f"{c['live_seconds'] / g['live_seconds']:.1f}x |")
    print("\n".join(lines) + f"\n\nlargest difference {worst:.4f} (tolerance {TOLERANCE})")
    return int(worst > TOLERANCE)


def supermask(keep: float, seed: int, epochs: int, out: str, limit=None) -> None:
    import pruning
    from pruning.models.torch_model import accelerator
    from pruning.training import supermask_files as files
    from pruning.training.supermask import learn

    folder = Path(out)
    log = open(folder / f"keep-{keep}-seed-{seed}.log", "w")
    start = time.perf_counter()

    def on_epoch(h):
        print(json.dumps(h | {"wall": time.perf_counter() - start}), file=log, flush=True)

    learned = learn(pruning.load_model(MODEL), keep=keep, epochs=epochs, seed=seed, limit=limit, on_epoch=on_epoch)
    meta = learned.mask.meta
    record = {k: meta[k] for k in ("keep", "seed", "epochs", "accuracy", "test_n", "sparsity", "seconds", "history",
                                   "method", "hyper", "data")} | {"shipped": seed == 0, "device": accelerator()}
    if seed == 0:  # the files to ship, under OUT/pretrained/ (runs.json is assembled from the records afterwards)
        files.ZOO = folder / "pretrained"
        files.save(learned.mask, learned.scores)
    (folder / f"keep-{keep}-seed-{seed}.json").write_text(json.dumps(record))


def epochs_done(log: Path) -> list:
    """(epoch, wall seconds) of each finished epoch in a run's log."""
    if not log.is_file():
        return []
    return [(h["epoch"], h["wall"]) for h in map(json.loads, log.read_text().splitlines())]


def supermasks(out: Path, until: float, epochs: int, limit=None, say=print, jobs=JOBS) -> dict:
    """All JOBS at once; the lowest-priority run still going is stopped whenever the slowest run's
    recent pace (its last 3 epochs) says it would end after ``until`` (a perf_counter time)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra = ["--limit", str(limit)] if limit else []
    procs = {job: subprocess.Popen([sys.executable, __file__, "supermask", "--keep", str(job[0]), "--seed", str(job[1]),
                                    "--epochs", str(epochs), "--out", str(out), *extra], env=env,
                                   stderr=open(out / f"keep-{job[0]}-seed-{job[1]}.err", "w"))
             for job in jobs}
    stopped = []
    while any(p.poll() is None for p in procs.values()):
        time.sleep(5)
        running = [job for job in jobs if procs[job].poll() is None]
        if not running:
            break
        now, late = time.perf_counter(), False
        if now > until:
            late = True
        for job in running:
            done = epochs_done(out / f"keep-{job[0]}-seed-{job[1]}.log")
            if len(done) >= 4:
                pace = (done[-1][1] - done[-4][1]) / 3
                late |= now + pace * (epochs - done[-1][0] + 1) > until  # + 1: the final evaluation
        if late:
            victim = running[-1] if now <= until else None
            for job in [victim] if victim else running:
                procs[job].kill()
                stopped.append(job)
                say(f"supermask: stopped keep {job[0]} seed {job[1]} ({'pace' if victim else 'out of time'})")
    failed = [j for j in jobs if procs[j].returncode not in (0, None) and j not in stopped]
    return {"epochs": epochs, "finished": [j for j in jobs if procs[j].returncode == 0], "stopped": stopped,
            "failed": failed}


def load(seconds: float, server_cpus: str, client_cpus: str, say=print) -> dict:
    import ws_load as W

    if shutil.which("taskset") is None:  # no pinning: the server and the generator share the cores
        server_cpus = client_cpus = None
    W.pin(client_cpus)
    result = {"server_cpus": server_cpus, "generator_cpus": client_cpus}
    proc, url, _ = W.start_server(server_cpus)
    try:
        for model in ("mnist-lenet300-torch", MODEL):
            result[model] = {"cpu_per_move": asyncio.run(W.cpu_per_move(url, proc.pid, model, 10)),
                             "class": asyncio.run(W.load(url, model, 30, seconds))}
            row = result[model]["class"]
            say(f"load {model}: cpu/move {result[model]['cpu_per_move']['cpu_seconds_per_move']:.3f} s, 30 sessions "
                f"p50 {row['p50']} p95 {row['p95']}, {len(row['errors'])} errors, {len(row['mixups'])} mix-ups")
        result["memory"] = W.memory(proc.pid)
    finally:
        W.stop_server(proc)
    return result


def run_all(out: Path, budget: float, epochs: int, limit=None, load_seconds: float = 60, models=None,
            server_cpus: str = "0-1", client_cpus: str = "2-15", jobs=JOBS, zoo_check: bool = True) -> None:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    logfile = open(out / "gpu.log", "a")

    def say(text):
        line = f"[{time.perf_counter() - start:6.1f}s] {text}"
        print(line, flush=True)
        print(line, file=logfile, flush=True)

    import torch

    say(f"torch {torch.__version__}, " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))
    chosen = ["--models", models] if models else []
    if zoo_check:
        cpu = subprocess.Popen([sys.executable, __file__, "zoo", "--json", str(out / "zoo-cpu.json"), *chosen],
                               env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        subprocess.run([sys.executable, __file__, "zoo", "--json", str(out / "zoo-cuda.json"), *chosen], check=False)
        cpu.wait()
        say("zoo: done")
    if (out / "zoo-cpu.json").is_file() and (out / "zoo-cuda.json").is_file():
        with open(out / "zoo-compare.md", "w") as f:
            subprocess.run([sys.executable, __file__, "compare", str(out / "zoo-cpu.json"), str(out / "zoo-cuda.json")],
                           stdout=f, check=False)
    load_cost = 2 * load_seconds + 90  # two classes, the server's start, the moves timed alone
    result = supermasks(out / "supermask", start + budget - load_cost, epochs, limit, say, jobs)
    say(f"supermask: {result}")
    (out / "supermask" / "summary.json").write_text(json.dumps(result))
    if start + budget - time.perf_counter() > load_cost:
        try:
            (out / "load.json").write_text(json.dumps(load(load_seconds, server_cpus, client_cpus, say), indent=1))
        except Exception as exc:  # reported; what was measured before stays
            say(f"load: {type(exc).__name__}: {str(exc)[:300]}")
    else:
        say("load: no time left in the budget")
    say("all: done")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("all")
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, required=True, help="seconds for the whole run")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--limit", type=int, default=None, help="supermask training examples (a smoke run)")
    p.add_argument("--load-seconds", type=float, default=60)
    p.add_argument("--models", default=None, help="zoo models to compare, comma-separated (default: all)")
    p.add_argument("--jobs", default=None, help="supermask runs keep:seed,... in priority order (default: JOBS)")
    p.add_argument("--no-zoo", action="store_true", help="skip the zoo comparison")
    p.add_argument("--server-cpus", default="0-1")
    p.add_argument("--client-cpus", default="2-15")
    p = sub.add_parser("zoo")
    p.add_argument("--json", required=True)
    p.add_argument("--models", default=None)
    p = sub.add_parser("compare")
    p.add_argument("cpu")
    p.add_argument("cuda")
    p = sub.add_parser("supermask")
    p.add_argument("--keep", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.command == "all":
        jobs = [(float(k), int(s)) for k, s in (j.split(":") for j in a.jobs.split(","))] if a.jobs else JOBS
        run_all(Path(a.out), a.budget, a.epochs, a.limit, a.load_seconds, a.models, a.server_cpus, a.client_cpus,
                jobs, not a.no_zoo)
    elif a.command == "zoo":
        zoo(a.json, a.models.split(",") if a.models else None)
    elif a.command == "compare":
        return compare(a.cpu, a.cuda)
    else:
        import torch

        torch.set_num_threads(1)
        supermask(a.keep, a.seed, a.epochs, a.out, a.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
