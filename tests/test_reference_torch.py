"""Masks and evaluation against PyTorch's own implementations on the shipped LeNet-300-100."""

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

import pruning
from pruning import data
from pruning.models.export import save_torch_mask
from pruning.models.torch_model import build, to_input


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


def test_unit_pruning_removes_units_like_a_smaller_network():
    """A unit-granularity mask removes neurons: the result equals a physically smaller LeNet-300-100
    with those rows (and their biases) and the next layer's columns deleted, built in plain torch."""
    import torch

    model = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.compute_mask(model, "large_final", 0.5, granularity="unit")
    state = {k: torch.from_numpy(v.copy()) for k, v in model.states["final"].items()}
    alive = {n: torch.from_numpy(mask[f"{n}.weight"].any(axis=1)) for n in ("fc1", "fc2")}
    assert not alive["fc1"].all() and not alive["fc2"].all()
    w1, b1 = state["fc1.weight"][alive["fc1"]], state["fc1.bias"][alive["fc1"]]
    w2 = state["fc2.weight"][alive["fc2"]][:, alive["fc1"]]
    b2 = state["fc2.bias"][alive["fc2"]]
    w3, b3 = state["fc3.weight"][:, alive["fc2"]], state["fc3.bias"]
    x, y = pruning.data.load("mnist", "test")
    pre = model.info["preprocessing"]
    h = (torch.from_numpy(x.astype("float32")).reshape(len(x), -1) / 255 - pre["mean"][0]) / pre["std"][0]
    logits = torch.relu(torch.relu(h @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
    reference = (logits.argmax(1).numpy() == y).mean()
    result = pruning.evaluate(model, mask)
    assert abs(result.accuracy - reference) <= 2 / len(y)  # float rounding may flip a near-tie
    dense_bias = pruning.evaluate(model, pruning.Mask(dict(mask), {}))  # weight semantics: biases stay
    assert dense_bias.accuracy != result.accuracy


def test_unit_parameters_are_each_kernels_bias_and_following_batch_norm():
    from pruning.models.torch_model import prunable_specs
    from pruning.models.torch_nets import ARCHITECTURES

    specs = prunable_specs(ARCHITECTURES["resnet20"]())
    assert specs["conv1.weight"].unit_params == ("bn1.weight", "bn1.bias")  # no conv bias in a ResNet
    assert specs["blocks.0.conv2.weight"].unit_params == ("blocks.0.bn2.weight", "blocks.0.bn2.bias")
    assert specs["fc.weight"].unit_params == ("fc.bias",)
    assert prunable_specs(ARCHITECTURES["lenet300"]())["fc1.weight"].unit_params == ("fc1.bias",)
