"""Twins: a Keras model and its PyTorch twin share θ0 exactly, compute the same logits, and get the
same masks (after the layout change) for every criterion x scope x granularity."""

import numpy as np
import pytest
from safetensors.numpy import save_file

import pruning
from pruning import data
from pruning.core.criteria import CRITERIA
from pruning.models.keras_model import KerasModel, prunable_specs
from pruning.training.recipes import RECIPES
from pruning.models.torch_model import TorchModel
from pruning.training.train_keras import initial_model, load_torch_state, save, torch_initial_state
from pruning.training.train_torch import initial_module

TWINS = {"mnist": ("mnist-lenet300-keras", "mnist-lenet300-torch"),
         "fashion_mnist": ("fmnist-lenet300-keras", "fmnist-lenet300-torch"),
         "cifar10": ("cifar10-conv4-keras", "cifar10-conv4-torch")}


def need(dataset):
    try:
        data.load(dataset, "test")
    except pruning.DatasetUnavailable as exc:
        pytest.skip(str(exc))


def info(name):
    r = RECIPES[name]
    return {"dataset": r["dataset"], "architecture": r["architecture"], "preprocessing": r["preprocessing"]}


@pytest.fixture(scope="module", params=list(TWINS))
def twins(request, tmp_path_factory):
    """(keras model, torch model) with θ0 = the recipe's and a shared synthetic θf = 1.5 θ0 + noise."""
    keras_name, torch_name = TWINS[request.param]
    tmp = tmp_path_factory.mktemp(keras_name)
    init = torch_initial_state(torch_name)  # PyTorch layout
    rng = np.random.default_rng(1)
    final = {k: (1.5 * v + rng.normal(scale=0.02, size=v.shape)).astype(np.float32) for k, v in init.items()}
    keras_net = initial_model(RECIPES[keras_name])
    files_k, files_t = {}, {}
    for which, state in (("init", init), ("final", final)):
        load_torch_state(keras_net, state)
        save(keras_net, RECIPES[keras_name], tmp / f"{which}.keras")
        save_file(state, str(tmp / f"{which}.safetensors"))
        files_k[which], files_t[which] = tmp / f"{which}.keras", tmp / f"{which}.safetensors"
    return KerasModel(keras_name, info(keras_name), files_k), TorchModel(torch_name, info(torch_name), files_t)


def test_keras_init_is_the_torch_init_converted(twins):
    k, t = twins
    assert len(k.specs) == len(t.specs) and k.output_name == "fc3/kernel"
    for (kn, spec), tn in zip(k.specs.items(), t.specs, strict=True):
        np.testing.assert_array_equal(spec.to_canonical(k.weights("init")[kn]), t.weights("init")[tn])
        np.testing.assert_array_equal(k.states["init"][kn.replace("kernel", "bias")],
                                      t.states["init"][tn.replace("weight", "bias")])


def test_same_logits_at_init_on_real_test_images(twins):
    k, t = twins
    need(k.dataset)
    x, _ = data.load(k.dataset, "test")
    logits_k = k.logits(k.weights("init"), "init", k.prepare(x[:2000]))  # (2000, 10)
    logits_t = t.logits(t.weights("init"), "init", t.prepare(x[:2000]))
    np.testing.assert_allclose(logits_k, logits_t, atol=1e-4, rtol=0)


@pytest.mark.parametrize("granularity", ["weight", "unit", "2:4"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_identical_masks_for_every_criterion(twins, scope, granularity):
    k, t = twins
    for criterion in CRITERIA:
        sparsity = None if granularity == "2:4" else 0.7
        mk = pruning.compute_mask(k, criterion, sparsity, scope=scope, granularity=granularity, output_rate=0.5)
        mt = pruning.compute_mask(t, criterion, sparsity, scope=scope, granularity=granularity, output_rate=0.5)
        assert mk.meta["sparsity"] == mt.meta["sparsity"], criterion
        for (kn, spec), tn in zip(k.specs.items(), t.specs, strict=True):
            assert mk[kn].shape == spec.shape
            np.testing.assert_array_equal(spec.to_canonical(mk[kn]), mt[tn], err_msg=f"{criterion} {kn}")


def test_same_supermask_accuracy(twins):
    k, t = twins
    need(k.dataset)
    mk = pruning.compute_mask(k, "large_final_same_sign", 0.8, scope="global")
    mt = pruning.compute_mask(t, "large_final_same_sign", 0.8, scope="global")
    for weights in ("init", "signed-constant"):
        ek, et = pruning.evaluate(k, mk, weights, limit=2000), pruning.evaluate(t, mt, weights, limit=2000)
        assert np.mean(ek.predictions != et.predictions) <= 1 / 1000  # at most a near-tie or two
        assert abs(ek.accuracy - et.accuracy) <= 1 / 1000


def test_conv4_twin_layout():
    """Conv-4 (not trained here): the converted θ0 gives the torch twin's logits, via Permute."""
    import torch

    from pruning.models.torch_model import to_input

    recipe = RECIPES["cifar10-conv4-keras"]
    keras_net = initial_model(recipe)
    specs = prunable_specs(keras_net)
    assert [s.canonical for s in specs.values()] == [(3, 2, 0, 1)] * 4 + [(1, 0)] * 3
    torch_net = initial_module(RECIPES[recipe["twin"]]).eval()
    x = np.random.default_rng(0).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = torch_net(to_input(x)).numpy()  # (16, 10)
    got = keras_net.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    fc1 = {n: v for n, v in keras_net.get_layer("fc1").get_config().items() if n == "units"}
    assert fc1 == {"units": 256}
    np.testing.assert_array_equal(keras_net.get_layer("fc1").kernel.numpy(), torch_net.fc1.weight.detach().numpy().T)


INIT_ONLY = [name for name in CRITERIA if name in ("large_init", "small_init", "random")]


@pytest.mark.parametrize("keras_name,torch_name", list(TWINS.values()))
def test_zoo_twins_share_init_and_its_masks(keras_name, torch_name):
    """The committed zoo twins: the Keras θ0 is the PyTorch θ0 converted, and every criterion that
    reads only θ0 gives the same mask in both frameworks, at every scope and granularity."""
    k, t = pruning.load_model(keras_name), pruning.load_model(torch_name)
    for (kn, spec), tn in zip(k.specs.items(), t.specs, strict=True):
        np.testing.assert_array_equal(spec.to_canonical(k.weights("init")[kn]), t.weights("init")[tn], err_msg=kn)
    for criterion in INIT_ONLY:
        for scope in ("layer", "global"):
            for granularity in ("weight", "unit", "2:4"):
                sparsity = None if granularity == "2:4" else 0.9
                mk = pruning.compute_mask(k, criterion, sparsity, scope=scope, granularity=granularity)
                mt = pruning.compute_mask(t, criterion, sparsity, scope=scope, granularity=granularity)
                for (kn, spec), tn in zip(k.specs.items(), t.specs, strict=True):
                    np.testing.assert_array_equal(spec.to_canonical(mk[kn]), mt[tn],
                                                  err_msg=f"{criterion} {scope} {granularity} {kn}")
