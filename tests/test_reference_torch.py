"""Masks and evaluation against PyTorch's own implementations on the shipped LeNet-300-100."""

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

import pruning
from pruning import data
from pruning.export import save_torch_mask
from pruning.torch_model import build, to_input


@pytest.fixture(scope="module")
def model():
    return pruning.load_model("mnist-lenet300-torch")


def module_with(model, which="final"):
    m = build(model.info)
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.states[which].items()})
    return m.eval()


def torch_masks(module):
    return {f"{name}.weight": m.weight_mask.bool().numpy() for name, m in module.named_modules()
            if hasattr(m, "weight_mask")}


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.9, 0.99])
def test_layer_scope_equals_l1_unstructured(model, sparsity):
    module = module_with(model)
    for m in (module.fc1, module.fc2, module.fc3):
        prune.l1_unstructured(m, "weight", amount=sparsity)
    ours = pruning.compute_mask(model, "large_final", sparsity, scope="layer")
    theirs = torch_masks(module)
    assert all(np.array_equal(ours[n], theirs[n]) for n in ours)


@pytest.mark.parametrize("sparsity", [0.2, 0.8, 0.95])
def test_global_scope_equals_global_unstructured(model, sparsity):
    module = module_with(model)
    params = [(module.fc1, "weight"), (module.fc2, "weight"), (module.fc3, "weight")]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)
    ours = pruning.compute_mask(model, "large_final", sparsity, scope="global")
    theirs = torch_masks(module)
    assert all(np.array_equal(ours[n], theirs[n]) for n in ours)


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("sparsity", [0.3, 0.75])
def test_unit_granularity_equals_ln_structured(model, norm, sparsity):
    module = module_with(model)
    for m in (module.fc1, module.fc2):  # the output layer's units (classes) are never removed
        prune.ln_structured(m, "weight", amount=sparsity, n=norm, dim=0)
    ours = pruning.compute_mask(model, "large_final", sparsity, granularity="unit", norm=norm)
    theirs = torch_masks(module)
    assert all(np.array_equal(ours[n], theirs[n]) for n in theirs)
    assert ours["fc3.weight"].all()


@pytest.mark.parametrize("weights", ["final", "init", "signed-constant"])
def test_evaluation_equals_plain_forward_pass(model, weights):
    mask = pruning.compute_mask(model, "large_final", 0.8, scope="global")
    module = module_with(model, "final" if weights == "final" else "init")
    with torch.no_grad():
        for name, keep in mask.items():
            w = module.get_parameter(name)
            if weights == "signed-constant":
                w.copy_(torch.sign(w) * w.std(unbiased=False))
            w.mul_(torch.from_numpy(keep))
        x, y = data.load("mnist", "test")
        pred = module(to_input(x)).argmax(1).numpy()
    result = pruning.evaluate(model, mask, weights=weights)
    assert result.n == len(y) == 10000
    assert np.array_equal(result.predictions, pred)
    assert result.accuracy == pytest.approx(float(np.mean(pred == y)), abs=0)


def test_dense_accuracy_and_stratified_limit(model):
    dense = pruning.evaluate(model)
    assert dense.accuracy == pytest.approx(model.info["test_accuracy"], abs=1e-9)
    subset = pruning.evaluate(model, limit=1000)
    assert subset.n == 1000
    assert abs(np.bincount(subset.labels, minlength=10) / 1000 - np.bincount(dense.labels) / 10000).max() < 0.001
    assert subset.confusion.sum() == 1000 and subset.confusion.shape == (10, 10)
    assert np.allclose(np.diag(dense.confusion) / dense.confusion.sum(1), dense.per_class)


def test_the_loaded_model_is_never_mutated(model):
    before = {k: v.copy() for k, v in model.states["final"].items()}
    mask = pruning.compute_mask(model, "large_final", 0.99)
    pruning.evaluate(model, mask)
    pruning.evaluate(model, mask, weights="signed-constant")
    assert all(np.array_equal(before[k], model.states["final"][k]) for k in before)
    assert pruning.evaluate(model).accuracy == model.info["test_accuracy"]


def test_readme_torch_recipe(model, tmp_path):
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    path = tmp_path / "mask.pt"
    save_torch_mask(mask, path)
    module = module_with(model)
    masks = torch.load(path, weights_only=True)
    for name, keep in masks.items():
        prune.custom_from_mask(module.get_submodule(name.rsplit(".", 1)[0]), "weight", keep)
    x, y = data.load("mnist", "test")
    with torch.no_grad():
        acc = float((module(to_input(x)).argmax(1).numpy() == y).mean())
    assert acc == pruning.evaluate(model, mask).accuracy
