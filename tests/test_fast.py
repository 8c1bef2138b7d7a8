"""The fast path (pruning/models/torch_fast.py) gives the same predictions as the plain masked evaluation."""

import sys

import numpy as np
import pytest

import pruning
from pruning.models import torch_fast as fast

E = sys.modules["pruning.core.evaluate"]
CASES = [("weight", "global", s) for s in (0.0, 0.5, 0.9, 0.97, 0.99, 0.999)] + \
        [("unit", "layer", s) for s in (0.3, 0.8, 0.95, 1.0)] + [("2:4", "layer", None)]


def check(model, mask, weights="final", limit=None, csr_sparsity=fast.CSR_SPARSITY):
    plan = fast.compile(model, mask, weights, csr_sparsity=csr_sparsity)
    assert plan is not None
    x, y, _ = E.inputs(model, limit)
    base = "final" if weights == "final" else "init"
    expected = model.logits(E.masked_weights(model, mask, weights), base, x)
    got = plan.logits(limit)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    ev, plain = fast.evaluate(model, mask, weights, limit), pruning.evaluate(model, mask, weights, limit)
    assert np.array_equal(ev.predictions, plain.predictions) and ev.accuracy == plain.accuracy
    return plan


@pytest.mark.parametrize("granularity,scope,sparsity", CASES)
def test_lenet300_same_predictions(granularity, scope, sparsity):
    m = pruning.load_model("mnist-lenet300-torch")
    check(m, pruning.compute_mask(m, "large_final", sparsity, scope=scope, granularity=granularity))


@pytest.mark.parametrize("weights", ["init", "signed-constant"])
@pytest.mark.parametrize("csr", [0.0, 1.01])  # every kernel as CSR / none
def test_weight_sets_and_formats(weights, csr):
    m = pruning.load_model("fmnist-lenet300-torch")
    for strategy, sparsity in (("movement", 0.8), ("random", 0.96)):
        plan = check(m, pruning.compute_mask(m, strategy, sparsity, scope="layer"), weights, csr_sparsity=csr)
        assert all((l["format"] == "csr") == (csr == 0.0) for l in plan.describe() if l["rows"] * l["cols"])


@pytest.mark.parametrize("granularity,sparsity", [("weight", 0.9), ("weight", 0.99), ("unit", 0.7)])
def test_lenet5_same_predictions(granularity, sparsity):
    m = pruning.load_model("mnist-lenet5-torch")
    check(m, pruning.compute_mask(m, "large_final", sparsity, scope="layer", granularity=granularity), limit=2000)


def test_dead_units_are_removed_and_folded():
    m = pruning.load_model("mnist-lenet300-torch")
    plan = check(m, pruning.compute_mask(m, "large_final", 0.9, scope="layer", granularity="unit"))
    assert [(l["rows"], l["cols"]) for l in plan.describe()] == [(30, 784), (10, 30), (10, 10)]


def test_unsupported_falls_back_and_benefit_reports():
    m = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.compute_mask(m, "large_final", 0.95, scope="global")
    out = fast.benefit(m, mask, limit=500, repeats=1)
    assert out["fast"] and out["images"] == 500 and out["dense_seconds"] > 0 and out["pruned_seconds"] > 0
    assert out["sparse_npz_bytes"] < out["dense_npz_bytes"] < out["dense_bytes"] * 1.01
    assert out["dense_bytes"] == 4 * sum(a.size for a in m.states["final"].values())


def test_unsupported_models_fall_back_to_the_plain_evaluation():
    m = pruning.load_model("mnist-lenet300-keras")
    mask = pruning.compute_mask(m, "large_final", 0.9, scope="global")
    assert not fast.supported(m) and fast.compile(m, mask) is None
    assert np.array_equal(fast.evaluate(m, mask, limit=500).predictions,
                          pruning.evaluate(m, mask, limit=500).predictions)
    assert not fast.benefit(m, mask, limit=200, repeats=1)["fast"]
