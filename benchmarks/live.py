"""Side-by-side performance of the pruning explorer, measured in one run.

    python benchmarks/live.py [--quick] [--json OUT.json] [--markdown OUT.md] [--parts a,b,c,d,e,f,g,h,i,j,k]
                              [--server-cpus 0] [--client-cpus 1] [--models mnist-lenet300-keras,...]

a  live latency (compute_mask + evaluate on the full test set) of every zoo model (CIFAR models,
   once trained, on the explorer's CPU subset and the full set; or --models) vs its dense forward
   pass, its adapter's fast path (pruning.models.torch_fast, keras_fast), torch.nn.utils.prune.global_unstructured
   + evaluation, and a FLOP lower bound from the measured matrix-multiply throughput; plus the CSR crossover.
b  lottery-ticket-pruner calc_prune_mask + model.evaluate (benchmarks/.venv-legacy, a subprocess)
c  sweep throughput: 10 criteria x 20 sparsities on LeNet-300-100
d  memory with all zoo models loaded; explorer cold start and memory (browser.py)
e  explorer round trip slider -> accuracy in headless Chromium, per model family (browser.py)
f  load test: 8 concurrent browser sessions (browser.py)
g  the sandboxed worker's overhead: an uploaded MNIST model evaluated in its worker process
   (pruning.load_upload) vs the same file loaded in-process (pruning.load_file_model)
h  server CPU seconds per slider move vs one full-test evaluation in a plain process, per model
   family (benchmarks/class_load.py; the server pinned to --server-cpus, the generator to --client-cpus)
i  cold start: `streamlit run app` -> first accuracy in Chromium and over the websocket
j  a class: 30 websocket sessions (benchmarks/ws_load.py) on mnist-lenet300-torch, a move every
   3-5 s for 3 minutes; the CIFAR-10 models with 5; the generator beside real Chromium sessions;
   the server's memory after every zoo model was visited
k  what an export saves: ONNX file size, parameters and onnxruntime CPU time (full test set, the
   engine's batches, 1 thread) of the dense, pruned (masked) and shrunk MNIST models side by side,
   each checked against the engine's logits (pruning.models.onnx_measure)
Every time is a median over repeats, measured interleaved so that load on the machine hits all
variants alike. Targets are reported, never asserted.
"""

import argparse
import copy
import functools
import importlib
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PRUNING_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402

import pruning  # noqa: E402
from pruning.models import torch_fast as fast, zoo  # noqa: E402
from pruning.models.adapter import adapter  # noqa: E402
from pruning.core.criteria import CRITERIA  # noqa: E402
from pruning.core.readouts import default_limit  # noqa: E402
from pruning.fileio import atomic_write  # noqa: E402
from pruning.core.prune import ranking  # noqa: E402

E = sys.modules["pruning.core.evaluate"]
LEGACY = ROOT / "benchmarks" / ".venv-legacy" / "bin" / "python"
SPARSITIES = (0.5, 0.9, 0.98, 0.99)


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable; one warm-up each, then rounds that run every callable once."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def matmul_gflops(repeats: int) -> float:
    """Best measured float32 matrix-multiply throughput (GFLOP/s) over a few shapes."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (10000, 784, 300), (1000, 400, 120)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        t = interleaved({"mm": functools.partial(torch.mm, a, b)}, repeats)["mm"]
        best = max(best, 2 * m * k * n / t / 1e9)
    return best


def forward_flops(model) -> int:
    """FLOPs of one image's dense forward pass (multiply-adds x 2, matmuls and convolutions only)."""
    if model.framework == "torch":
        from torch.utils.flop_counter import FlopCounterMode

        x = model.prepare(pruning.data.load(model.dataset, "test")[0][:1])
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model._module(x)
        return int(counter.get_total_flops())
    total = 0
    for layer in model._keras.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        out = layer.output.shape
        spatial = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        total += 2 * int(np.prod(kernel.shape)) * spatial
    return total


def torch_prune_path(model, sparsity: float, limit, y):
    """torch.nn.utils.prune.global_unstructured (L1) on a copy of the module with θf, then evaluate
    the same images as a PyTorch user would: pixels in [0, 1], the network normalising them."""
    from pruning.models.torch_model import to_input

    x = to_input(pruning.data.load(model.dataset, "test")[0][E.inputs(model, limit)[2]])
    module = copy.deepcopy(model._module)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.states["final"].items()}, strict=False)

    def run():
        params = [(m, "weight") for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
        with torch.inference_mode():
            logits = torch.cat([module(x[i:i + model.batch_size]) for i in range(0, len(x), model.batch_size)])
        acc = float((logits.argmax(1).numpy() == y).mean())
        for m, name in params:
            torch_prune.remove(m, name)
        return acc

    def fresh():  # restores θf first (timed with it: a copy of the weights, small next to the evaluation)
        module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.states["final"].items()}, strict=False)
        return run()

    return fresh


def nchw_forward(model, x):
    """The dense forward pass in PyTorch's default channels-first memory order: the adapter keeps
    images and conv kernels channels-last, and this shows what that buys."""
    module = model._thread_module()
    params = {k: v.contiguous() for k, v in model._tensors["final"].items()}
    x = x.contiguous()

    def run():
        with torch.inference_mode():
            return [torch.func.functional_call(module, params, (x[i:i + model.batch_size],))
                    for i in range(0, len(x), model.batch_size)]
    return run


def live_path(evaluate, model, sparsity: float, limit):
    """``evaluate`` of a fresh global large_final mask at ``sparsity``, as a callable for interleaved()."""
    return lambda: evaluate(model, pruning.compute_mask(model, "large_final", sparsity, scope="global"), limit=limit)


def fast_path(model):
    """The fast evaluation of the model's adapter (``Adapter.fast``) where it supports the model, or None."""
    module = adapter(model).fast
    module = importlib.import_module(module) if module else None
    return module.evaluate if module is not None and module.supported(model) else None


def part_a(repeats: int, models: list | None = None) -> dict:
    gflops = matmul_gflops(repeats)
    out = {"matmul_gflops": gflops, "models": []}
    for name in models or zoo.names():
        model = pruning.load_model(name)
        quick = fast_path(model)
        limits = [None] if default_limit(model.dataset, "cpu") is None else [default_limit(model.dataset, "cpu"), None]
        for limit in limits:
            x, y, _ = E.inputs(model, limit)
            dense = E.masked_weights(model, None)
            flops = forward_flops(model) * len(y)
            row = {"model": name, "framework": model.framework, "images": int(len(y)), "flops": flops,
                   "flop_bound_seconds": flops / gflops / 1e9, "sparsities": []}
            ranking.cache_clear()
            start = time.perf_counter()
            pruning.compute_mask(model, "large_final", 0.9, scope="global")
            row["first_ranking_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            model.logits(dense, "final", x)
            slow = time.perf_counter() - start > 10  # e.g. a CIFAR net on all 10,000 images on a CPU
            row["reduced"] = slow  # then one sparsity and one repeat keep the run bounded
            for s in (0.9,) if slow else SPARSITIES:
                fns = {"dense_forward": functools.partial(model.logits, dense, "final", x),
                       "live": live_path(pruning.evaluate, model, s, limit)}
                if quick is not None:
                    fns["live_fast"] = live_path(quick, model, s, limit)
                if model.framework == "torch":
                    fns["torch_prune"] = torch_prune_path(model, s, limit, y)
                    if x.ndim == 4 and x.shape[1] > 1:  # colour images: the memory order matters
                        fns["dense_forward_nchw"] = nchw_forward(model, x)
                t = interleaved(fns, 1 if slow else repeats)
                mask = pruning.compute_mask(model, "large_final", s, scope="global")
                t["accuracy"] = pruning.evaluate(model, mask, limit=limit).accuracy
                if "torch_prune" in fns:
                    t["torch_prune_accuracy"] = fns["torch_prune"]()
                t["ratio_live_to_dense"] = t["live"] / t["dense_forward"]
                if "live_fast" in t:
                    t["ratio_fast_to_dense"] = t["live_fast"] / t["dense_forward"]
                if "torch_prune" in t:
                    t["ratio_live_to_torch_prune"] = t["live"] / t["torch_prune"]
                if "dense_forward_nchw" in t:
                    t["ratio_dense_to_nchw"] = t["dense_forward"] / t["dense_forward_nchw"]
                row["sparsities"].append({"sparsity": s, **t})
                print(f"  a {name} n={len(y)} s={s}: " + ", ".join(f"{k}={v:.4f}" for k, v in t.items()),
                      file=sys.stderr)
            out["models"].append(row)
    out["crossover"] = csr_crossover(repeats)
    return out


def csr_crossover(repeats: int) -> list:
    """fc1 of LeNet-300-100 (300 x 784, 10,000 images): dense addmm vs CSR addmm by sparsity."""
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(784, 10000, generator=g), torch.randn(300, 784, generator=g), torch.zeros(300, 1)
    rows = []
    for s in (0.5, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995):
        wm = w * (torch.rand(w.shape, generator=g) >= s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = wm.to_sparse_csr()
        with torch.inference_mode():
            t = interleaved({"dense": functools.partial(torch.addmm, b, wm, x),
                             "csr": functools.partial(torch.addmm, b, c, x)}, repeats)
        rows.append({"sparsity": s, **t, "csr_speedup": t["dense"] / t["csr"]})
    return rows


def part_b(repeats: int) -> dict:
    """lottery-ticket-pruner in its own environment, on the same Keras LeNet-300-100 weights."""
    if not LEGACY.exists():
        return {"error": f"{LEGACY} missing: run benchmarks/setup_legacy.sh (needs PyPI)"}
    model = pruning.load_model("mnist-lenet300-keras")
    x, y = pruning.data.load("mnist", "test")
    cfg = model._keras.get_layer("normalize").get_config()
    arrays = {"x": x, "y": y, "scale": np.float64(np.ravel(cfg["scale"])[0]),
              "offset": np.float64(np.ravel(cfg["offset"])[0])}
    for which in ("init", "final"):
        for layer in ("fc1", "fc2", "fc3"):
            for var in ("kernel", "bias"):
                arrays[f"{which}.{layer}.{var}"] = model.states[which][f"{layer}/{var}"]
    ours = {}
    for s in (0.2, 0.9, 0.99):
        fn = lambda s=s: pruning.evaluate(model, pruning.compute_mask(model, "smallest_weights_global", s))  # noqa: E731
        ours[s] = {"seconds": interleaved({"live": fn}, repeats)["live"], "accuracy": fn().accuracy}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.npz"
        np.savez(path, **arrays)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
        proc = subprocess.run([str(LEGACY), str(ROOT / "benchmarks" / "ltp_legacy.py"), str(path), "0.2,0.9,0.99",
                               str(repeats)], capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in theirs["rows"]:
        row["ours_seconds"], row["ours_accuracy"] = ours[row["sparsity"]]["seconds"], ours[row["sparsity"]]["accuracy"]
        row["ratio_theirs_to_ours"] = row["seconds"] / row["ours_seconds"]
    return theirs


def part_c(sparsity_count: int) -> dict:
    model = pruning.load_model("mnist-lenet300-torch")
    criteria = list(CRITERIA)[:10]
    sparsities = np.linspace(0, 0.99, sparsity_count)
    out = {"criteria": len(criteria), "sparsities": len(sparsities)}
    for label, ev in (("plain", pruning.evaluate), ("fast", fast.evaluate)):
        ranking.cache_clear()
        start = time.perf_counter()
        for c in criteria:
            for s in sparsities:
                ev(model, pruning.compute_mask(model, c, float(s), scope="global"))
        out[f"{label}_seconds"] = time.perf_counter() - start
    out["evaluations"] = len(criteria) * len(sparsities)
    return out


def part_d_engine() -> dict:
    """Resident memory of a fresh process that loads every zoo model and evaluates each once."""
    code = ("import sys, pruning; sys.path.insert(0, '.')\n"
            "from pruning import zoo\n"
            "for n in zoo.names():\n    m = pruning.load_model(n); pruning.evaluate(m, None)\n"
            "status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
            "print(int(status['VmRSS'].split()[0]) * 1024, int(status['VmHWM'].split()[0]) * 1024)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    rss, peak = (int(v) for v in proc.stdout.split()[-2:])
    return {"models": zoo.names(), "rss_bytes": rss, "peak_bytes": peak}


class _Upload:
    def __init__(self, path: Path):
        self.name, self.data = path.name, path.read_bytes()
        self.size = len(self.data)

    def getvalue(self) -> bytes:
        return self.data


def part_g(repeats: int) -> dict:
    """The same uploaded file evaluated in-process and in its sandboxed worker (full test set)."""
    rows = []
    for name in ("mnist-lenet300-torch", "mnist-lenet5-torch", "fmnist-lenet300-torch", "mnist-lenet300-keras",
                 "mnist-conv-keras"):
        directory = zoo.ZOO / name
        suffix = adapter(zoo.info(name)["framework"]).suffix
        final, init = directory / f"final{suffix}", directory / f"init{suffix}"
        dataset = zoo.info(name)["dataset"]
        local = pruning.load_file_model(final, dataset, init)
        start = time.perf_counter()
        remote = pruning.load_upload(_Upload(final), dataset, _Upload(init))
        load_seconds = time.perf_counter() - start
        for sparsity in (0.5, 0.9):
            masks = {k: pruning.compute_mask(m, "large_final", sparsity, scope="global") for k, m in
                     (("local", local), ("remote", remote))}
            accuracy = {k: pruning.evaluate(m, masks[k]).accuracy for k, m in (("local", local), ("remote", remote))}
            t = interleaved({"in_process": functools.partial(pruning.evaluate, local, masks["local"]),
                             "worker": functools.partial(pruning.evaluate, remote, masks["remote"])}, repeats)
            rows.append({"model": name, "sparsity": sparsity, **t, "ratio": t["worker"] / t["in_process"],
                         "same_accuracy": accuracy["local"] == accuracy["remote"], "first_load_seconds": load_seconds})
        remote.close()
    return {"rows": rows}


def part_k(repeats: int) -> dict:
    """Dense vs pruned vs shrunk exports of the MNIST zoo models, measured side by side."""
    from safetensors.numpy import save

    from pruning.models import onnx_measure, shrink_torch

    rows = []
    settings = (("unit", "layer", 0.5), ("unit", "layer", 0.9), ("weight", "global", 0.9))
    for name in ("mnist-lenet300-torch", "mnist-lenet5-torch", "mnist-lenet300-keras", "mnist-conv-keras"):
        model = pruning.load_model(name)
        x, _ = pruning.data.load(model.dataset)
        dense = model.logits({}, "final", model.prepare(x))
        for granularity, scope, sparsity in settings:
            mask = pruning.compute_mask(model, "large_final", sparsity, scope=scope, granularity=granularity)
            pruned = model.logits(pruning.masked_weights(model, mask), "final", model.prepare(x))
            native = None
            if model.framework == "torch":
                try:
                    native = len(save(shrink_torch.shrunk_state(model, mask)[0]))
                except pruning.PruningError:
                    pass
            for row in onnx_measure.measure(model, mask, x, {"dense": dense, "pruned": pruned}, repeats):
                rows.append({"model": name, "setting": f"{granularity} {scope} {sparsity}", **row,
                             "shrunk_safetensors_bytes": native if row["variant"] == "shrunk" else None})
                r = rows[-1]
                print(f"h {name:22} {r['setting']:18} {r['variant']:7} "
                      + (f"{r['onnx_bytes'] / 1e6:7.3f} MB {r['parameters']:>8} params {r['nonzero']:>8} nonzero "
                         f"{r['seconds'] * 1e3:8.1f} ms  max|d| {r['max_abs_diff']:.1e} argmax same {r['same_argmax']}"
                         if "error" not in r else "not built: " + r["error"][:60]), file=sys.stderr)
    return {"rows": rows}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "tensorflow", "keras", "streamlit", "numpy", "playwright", "onnxruntime"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    gpu = "none" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    return {"cores": os.cpu_count(), "cpu": cpu, "gpu": gpu,
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a smaller sweep")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--markdown", metavar="OUT", help="also write the tables as Markdown")
    ap.add_argument("--parts", default="a,b,c,d,e,f,g,k,h,i,j")
    ap.add_argument("--server-cpus", default="0", help="parts h-j: taskset cores of the explorer's server")
    ap.add_argument("--client-cpus", default="1", help="parts h-j: cores of the load generator (and its Chromium)")
    ap.add_argument("--models", help="part a: these zoo models only (comma-separated; default: all)")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    parts = set(args.parts.split(","))
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
               "versions": versions(), "repeats": repeats, "quick": args.quick}

    def save():  # after every part, so a failure late in the run keeps what was measured
        if args.json:
            atomic_write(args.json, lambda f: f.write(json.dumps(results, indent=1, default=float).encode()))

    for part, key, run in (("a", "a_live", lambda: part_a(repeats, args.models and args.models.split(","))),
                           ("b", "b_lottery_ticket_pruner", lambda: part_b(repeats)),
                           ("c", "c_sweep", lambda: part_c(5 if args.quick else 20)),
                           ("d", "d_memory", part_d_engine),
                           ("g", "g_worker", lambda: part_g(repeats)),
                           ("k", "k_exports", lambda: part_k(repeats))):
        if part in parts:
            results[key] = run()
            save()
    if parts & {"d", "e", "f"}:
        from browser import explorer_benchmarks

        results.update(explorer_benchmarks(parts, moves=10, quick=args.quick))
        save()
    if parts & {"h", "i", "j"}:  # last: they pin this process to --client-cpus
        from class_load import run as class_load

        results["class_cpus"] = {"server": args.server_cpus, "client": args.client_cpus}
        class_load(parts, args.quick, args.server_cpus, args.client_cpus, into=results, save=save)
    results["machine"]["load_average_end"] = os.getloadavg()
    save()
    from report import markdown, print_tables

    print_tables(results)
    if args.markdown:
        Path(args.markdown).write_text(markdown(results))


if __name__ == "__main__":
    main()
