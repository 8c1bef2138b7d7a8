"""The fast evaluations (pruning/models/torch_fast.py, keras_fast.py, both running fast_chain.py's
rewrite) give the same predictions as the plain masked evaluation."""

import sys

import numpy as np
import pytest

import pruning
from pruning.models import fast_chain, keras_fast, torch_fast as fast

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


# --- the contract: every adapter's fast evaluation, the plain evaluation's predictions --------------

FAST = {"torch": (fast, "mnist-lenet300-torch"), "keras": (keras_fast, "mnist-lenet300-keras")}
CONTRACT = [("weight", "global", s, "final", None) for s in (0.0, 0.6, 0.9, 0.99, 0.999)] + \
           [("unit", "layer", s, "final", 1000) for s in (0.5, 0.95, 1.0)] + \
           [("weight", "layer", 0.8, w, 1000) for w in ("init", "signed-constant")] + \
           [("2:4", "layer", None, "final", 500)]


@pytest.mark.parametrize("framework", FAST)
@pytest.mark.parametrize("granularity,scope,sparsity,weights,limit", CONTRACT)
def test_every_fast_evaluation_gives_the_plain_predictions(framework, granularity, scope, sparsity, weights, limit):
    module, name = FAST[framework]
    m = pruning.load_model(name)
    mask = pruning.compute_mask(m, "large_final", sparsity, scope=scope, granularity=granularity)
    got, plain = module.evaluate(m, mask, weights, limit), pruning.evaluate(m, mask, weights, limit)
    assert np.array_equal(got.predictions, plain.predictions) and got.accuracy == plain.accuracy
    assert np.array_equal(got.indices, plain.indices) and got.n == plain.n


def test_keras_fast_folds_the_constant_pixels_and_falls_back_elsewhere():
    m = pruning.load_model("mnist-lenet300-keras")
    assert keras_fast.supported(m)
    for limit, constant in ((None, 116), (1000, 184)):  # MNIST's pixels that are 0 on every image of the set
        x, values = keras_fast._prepared(m, limit)
        assert np.isnan(values).sum() == 784 - constant and tuple(x.shape) == (784 - constant, limit or 10000)
    conv = pruning.load_model("mnist-conv-keras")
    mask = pruning.compute_mask(conv, "large_final", 0.9)
    assert not keras_fast.supported(conv) and keras_fast.logits(conv, mask) is None
    assert np.array_equal(keras_fast.evaluate(conv, mask, limit=300).predictions,
                          pruning.evaluate(conv, mask, limit=300).predictions)


def _reference(kernels, biases, x):
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(zip(kernels, biases, strict=True)):
        h = h @ w.T.astype(np.float64) + b
        h = np.maximum(h, 0) if i < len(kernels) - 1 else h
    return h


def _run(chain, x_varying):
    h = x_varying if chain.features is None else x_varying[:, chain.features]
    return _reference(chain.kernels, chain.biases, h)


def test_the_rewrite_against_the_dense_chain():
    """Constant inputs (non-zero), dead-in and dead-out units and unread inputs, against the dense
    float64 chain: the same logits, and every one of them removed."""
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=s).astype(np.float32) for s in ((12, 9), (8, 12), (3, 8))]
    bs = [rng.normal(size=n).astype(np.float32) for n in (12, 8, 3)]
    ws[0][:4] = 0  # units 0-3 of layer 1 read nothing: constant relu(b)
    ws[0][:, 8] = 0  # input 8 is never read
    ws[1][:, 11] = 0  # unit 11 of layer 1 is never read
    ws[1][:2] = 0  # units 0-1 of layer 2: constant
    x = rng.normal(size=(50, 9)).astype(np.float32)
    x[:, [1, 5]] = [0.7, -1.3]  # the same on every image
    chain = fast_chain.rewrite(ws, bs, fast_chain.varying(x))
    varying = np.isnan(fast_chain.varying(x))
    assert varying.sum() == 7
    np.testing.assert_allclose(_run(chain, x[:, varying]), _reference(ws, bs, x), rtol=1e-5, atol=1e-5)
    assert [w.shape for w in chain.kernels] == [(7, 6), (6, 7), (3, 6)]  # 12-4-1 units, 8-2; inputs 9-2-1
    assert chain.features.tolist() == [0, 1, 2, 3, 4, 5]  # of the varying inputs 0,2,3,4,6,7,8: not 8
    unfolded = fast_chain.rewrite(ws, bs)
    np.testing.assert_allclose(_run(unfolded, x), _reference(ws, bs, x), rtol=1e-5, atol=1e-5)
    assert unfolded.kernels[0].shape == (7, 8)
