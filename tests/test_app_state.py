"""app/state.py's shortcuts equal the engine: the per-layer histogram from bins found once, and the
criterion's accuracy on the controls' subset read off the full evaluation's predictions."""

from pathlib import Path
import sys

import numpy as np
import pytest

import pruning
from pruning.core import readouts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import state  # noqa: E402

MODEL = "mnist-lenet300-torch"


@pytest.mark.parametrize("sparsity", [0.0, 0.6, 0.97])
def test_histogram_equals_readouts(sparsity):
    m = pruning.load_model(MODEL)
    s = state.Settings(MODEL, sparsity=sparsity, scope="layer")
    mask = pruning.compute_mask(m, "large_final", sparsity, scope="layer")
    for layer in m.specs:
        got, want = state.histogram(s, layer), readouts.weight_histogram(m, mask, layer)
        assert got.keys() == want.keys() == {"final", "init"}
        for which in want:
            for field in ("edges", "kept", "pruned"):
                assert np.array_equal(got[which][field], want[which][field]), (layer, which, field)


def test_accuracy_on_the_control_subset():
    m = pruning.load_model(MODEL)
    s = state.Settings(MODEL, sparsity=0.9, scope="layer")
    c = state.control(s)
    assert c.limit == state.CONTROL_IMAGES and state.control(c) == c
    mask = pruning.compute_mask(m, "large_final", 0.9, scope="layer")
    assert state.accuracy_on(s, c) == pruning.evaluate(m, mask, limit=c.limit).accuracy


def test_evaluations_at_once_bounded(monkeypatch):
    """However many sessions ask, at most the server's evaluation slots run at once (memory: each
    evaluation holds its own activations)."""
    import threading
    import time
    import types

    slots = state._slots._initial_value
    lock, active, peak, done = threading.Lock(), [0], [0], []

    def fake_evaluate(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        done.append(1)

    monkeypatch.setattr(pruning, "evaluate", fake_evaluate)
    m = types.SimpleNamespace(framework="keras")  # no fast plan: pruning.evaluate
    threads = [threading.Thread(target=state._evaluate, args=(m, None, "final", None)) for _ in range(3 * slots + 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(done) == len(threads) and 1 <= peak[0] <= slots


@pytest.mark.parametrize("name, planned", [(MODEL, True), ("mnist-lenet5-torch", False),
                                           ("mnist-lenet300-keras", True), ("mnist-conv-keras", False)])
def test_the_page_evaluates_mlps_through_the_fast_plan(monkeypatch, name, planned):
    """The page's evaluations of the MLPs go through their adapter's quicker evaluation
    (torch_fast's plan, keras_fast's chain: a fraction of the CPU), of the conv nets not (no
    quicker); the same predictions as ``pruning.evaluate`` either way."""
    from pruning.models import keras_fast, torch_fast

    compiled = []
    def counted(f):
        return lambda *a, **k: compiled.append(1) or f(*a, **k)

    monkeypatch.setattr(torch_fast, "compile", counted(torch_fast.compile))
    monkeypatch.setattr(keras_fast, "logits", counted(keras_fast.logits))
    m = pruning.load_model(name)
    for sparsity, weights in [(0.5, "final"), (0.95, "init"), (0.99, "final")]:
        mask = pruning.compute_mask(m, "large_final", sparsity)
        got, want = state._evaluate(m, mask, weights, 1000), pruning.evaluate(m, mask, weights, limit=1000)
        assert np.array_equal(got.predictions, want.predictions) and got.n == want.n == 1000
    assert len(compiled) == (3 if planned else 0)
