"""A class at once (benchmarks/live.py parts h, i, j): the explorer's server under many sessions.

h  server CPU seconds per slider move (one websocket session, default page and tab, every move a
   stop not seen before) vs the CPU seconds of one full-test-set evaluation of the same model in a
   plain process pinned to the same cores, per model family
i  cold start: ``streamlit run app`` -> first accuracy on screen in Chromium (and over the
   websocket), and whether TensorFlow was loaded for the first page
j  30 concurrent websocket sessions (benchmarks/ws_load.py) on mnist-lenet300-torch, a move every
   3-5 s for 3 minutes: p50, p95, errors, cross-session mix-ups; the CIFAR-10 models with 5 sessions
   for a minute (each expected accuracy costs the generator a CIFAR evaluation up front); the
   generator checked against real Chromium sessions (same scenario, latencies side by side); the
   server's memory after every zoo model was visited

The server runs pinned to ``server_cpus`` and the generator (with any Chromium it starts) to
``client_cpus`` (sched_setaffinity, inherited by children), so the generator does not take the
server's CPU.  Targets are reported, never asserted.
"""

import asyncio
import json
import os
from pathlib import Path
import subprocess
import sys
import time

import numpy as np

import ws_load as W

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = {"MNIST MLP": "mnist-lenet300-torch", "MNIST conv": "mnist-lenet5-torch",
            "Keras": "mnist-lenet300-keras", "CIFAR conv (Conv-4)": "cifar10-conv4-torch",
            "CIFAR ResNet-20": "cifar10-resnet20-torch"}

# One full-test-set evaluation in a plain process: CPU seconds (user + system, all threads) of
# pruning.evaluate alone, median over fresh masks at slider stops the server does not use.
PLAIN = """
import json, sys, time
import numpy as np
import pruning
from pruning.core.readouts import default_limit
m = pruning.load_model(sys.argv[1]); repeats = int(sys.argv[2])
page = default_limit(m.dataset, str(m.device))
out = {}
for label, limit in (("full", None), ("page", page)):
    masks = [pruning.compute_mask(m, "large_final", p, scope="layer") for p in (0.305, 0.405, 0.505, 0.605, 0.705)]
    pruning.evaluate(m, masks[0], limit=limit)  # warm: the prepared inputs are cached once
    cpu, wall = [], []
    for i in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        pruning.evaluate(m, masks[i % len(masks)], limit=limit)
        cpu.append(time.process_time() - c); wall.append(time.perf_counter() - w)
    out[label] = {"images": int(10000 if limit is None else limit), "cpu_seconds": float(np.median(cpu)),
                  "wall_seconds": float(np.median(wall))}
print(json.dumps(out))
"""


def plain_evaluation(model: str, cpus: str, repeats: int) -> dict:
    cmd = [sys.executable, "-c", PLAIN, model, str(repeats)]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part_h(server_cpus: str, moves: int, repeats: int) -> dict:
    """Server CPU per slider move vs one plain full-test evaluation, per model family."""
    rows = []
    proc, url, _ = W.start_server(server_cpus)
    try:
        for family, model in FAMILIES.items():
            try:
                move = asyncio.run(W.cpu_per_move(url, proc.pid, model, moves))
                plain = plain_evaluation(model, server_cpus, repeats)
            except (Exception, asyncio.TimeoutError) as exc:  # reported; the other families go on
                rows.append({"family": family, "model": model, "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
                print(f"  h {family}: {rows[-1]['error']}", file=sys.stderr)
                continue
            rows.append({"family": family, **move, "plain": plain,
                         "ratio_to_full": move["cpu_seconds_per_move"] / plain["full"]["cpu_seconds"],
                         "ratio_to_page_set": move["cpu_seconds_per_move"] / plain["page"]["cpu_seconds"]})
            print(f"  h {family}: {move['cpu_seconds_per_move']:.3f} s CPU per move, plain full evaluation "
                  f"{plain['full']['cpu_seconds']:.3f} s -> {rows[-1]['ratio_to_full']:.2f}x", file=sys.stderr)
    finally:
        W.stop_server(proc)
    return {"server_cpus": server_cpus, "rows": rows}


def tensorflow_loaded(pid: int) -> bool:
    return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def part_i(server_cpus: str, repeats: int) -> dict:
    """Cold start, ``repeats`` times each: to the accuracy in Chromium, and to the headline over the websocket."""
    from browser import ARGS, CHROMIUM, METRIC
    from playwright.sync_api import sync_playwright

    chromium, websocket, tf, opened, received = [], [], [], [], []
    timeout_ms = 300_000  # a busy machine can take minutes; a quiet one seconds
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(repeats):
            proc, url, started = W.start_server(server_cpus)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1300})
                frames = []  # when the page's websocket opened, and when each server message arrived

                def on_websocket(ws, frames=frames):
                    frames.append(("open", time.perf_counter()))
                    ws.on("framereceived", lambda _: frames.append(("message", time.perf_counter())))

                page.on("websocket", on_websocket)
                page.goto(url, timeout=timeout_ms)
                page.locator(METRIC).first.wait_for(timeout=timeout_ms)
                shown = time.perf_counter()
                chromium.append(shown - started)
                opened.append(min(t for kind, t in frames if kind == "open") - started)
                received.append(max(t for kind, t in frames if kind == "message" and t <= shown) - started)
                tf.append(tensorflow_loaded(proc.pid))
                page.close()
            finally:
                W.stop_server(proc)
        browser.close()
    for _ in range(repeats):
        proc, url, started = W.start_server(server_cpus)
        try:
            visitor = W.Visitor(url)
            websocket.append(asyncio.run(_first_headline(visitor)).headline_at - started)
        finally:
            W.stop_server(proc)
    return {"chromium_seconds": chromium, "chromium_median": float(np.median(chromium)),
            "chromium_websocket_open_median": float(np.median(opened)),
            "chromium_last_message_median": float(np.median(received)),
            "websocket_seconds": websocket, "websocket_median": float(np.median(websocket)),
            "tensorflow_loaded": any(tf)}


async def _first_headline(visitor) -> W.Run:
    try:
        return await visitor.open()
    finally:
        await visitor.close()


def chromium_check(url: str, sessions: int, moves: int, scope: str) -> dict:
    """The same scenario in real Chromium sessions (benchmarks/browser.py's load test: the exact-%
    box, its own settings), to set the generator's latencies beside the browser's."""
    from browser import load_test

    return asyncio.run(load_test(url, sessions, moves, scope, 600))


def visit_all(url: str, pid: int, sessions: int) -> dict:
    """Every zoo model visited by ``sessions`` sessions at once (a few moves each, every shown accuracy
    checked); the server's memory after each model and at the end."""
    sys.path.insert(0, str(ROOT))
    from pruning.models import zoo

    after = {}
    for model in zoo.names():  # the page's own sparsity echo is checked; accuracies are checked in the load runs
        out = asyncio.run(W.load(url, model, sessions, seconds=3, think=(1.0, 2.0), expect=lambda pct: None))
        after[model] = {**W.memory(pid), "moves": out["moves"], "errors": out["errors"], "mixups": out["mixups"]}
        print(f"  j memory after {model}: {after[model]['VmRSS'] / 2**20:,.0f} MB", file=sys.stderr)
    return {"models": list(after), "after_each": after, **W.memory(pid)}


def part_j(server_cpus: str, sessions: int, seconds: float, cifar_sessions: int, cifar_seconds: float,
           browsers: int, check_seconds: float) -> dict:
    out = {"server_cpus": server_cpus}
    proc, url, _ = W.start_server(server_cpus)
    try:
        out["mnist"] = asyncio.run(W.load(url, "mnist-lenet300-torch", sessions, seconds))
        print(f"  j mnist-lenet300-torch x{sessions}: p50 {out['mnist']['p50']}, p95 {out['mnist']['p95']}, "
              f"{len(out['mnist']['errors'])} errors, {len(out['mnist']['mixups'])} mix-ups", file=sys.stderr)
        out["memory_after_mnist"] = W.memory(proc.pid)
        out["cifar"] = []
        for model in ("cifar10-conv4-torch", "cifar10-resnet20-torch"):
            row = asyncio.run(W.load(url, model, cifar_sessions, cifar_seconds))
            out["cifar"].append(row)
            print(f"  j {model} x{cifar_sessions}: p50 {row['p50']}, p95 {row['p95']}", file=sys.stderr)
        out["memory"] = visit_all(url, proc.pid, sessions)
    finally:
        W.stop_server(proc)
    # the generator beside real Chromium: the same number of sessions, the same kind of move, on a fresh server
    proc, url, _ = W.start_server(server_cpus)
    try:
        moves = max(2, int(check_seconds / 4))
        first = asyncio.run(W.load(url, "mnist-lenet300-torch", 1, 1))
        browser = chromium_check(url, browsers, moves, first["scope"])
        alone = chromium_check(url, 1, moves, first["scope"])  # one browser: the client core is all its own
        generator = asyncio.run(W.load(url, "mnist-lenet300-torch", browsers, check_seconds))
        out["chromium_check"] = {"chromium": browser, "chromium_alone": alone, "websocket": generator}
    finally:
        W.stop_server(proc)
    return out


def run(parts: set, quick: bool, server_cpus: str = "0", client_cpus: str = "1", into: dict | None = None,
        save=lambda: None) -> dict:
    """Parts h, i, j as benchmarks/live.py asks for them, each stored in ``into`` and ``save()``d as it ends."""
    W.pin(client_cpus)
    os.environ.setdefault("PRUNING_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    out = {} if into is None else into
    if "h" in parts:
        out["h_cpu_per_move"] = part_h(server_cpus, moves=5 if quick else 20, repeats=3 if quick else 7)
        save()
    if "i" in parts:
        out["i_cold_start"] = part_i(server_cpus, repeats=1 if quick else 3)
        save()
    if "j" in parts:
        out["j_class"] = part_j(server_cpus, sessions=5 if quick else 30, seconds=30 if quick else 180,
                                cifar_sessions=2 if quick else 5, cifar_seconds=20 if quick else 60,
                                browsers=2 if quick else 3,
                                check_seconds=20 if quick else 60)
        save()
    return out
