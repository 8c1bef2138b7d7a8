"""Shrunk exports (pruning.models.shrink*): removed units and channels are physically gone, and the
smaller network predicts what the masked one does in the engine, on real test images (the shipped
MNIST / Fashion-MNIST splits; CIFAR-10 needs PRUNING_DATA_DIR, else those checks skip)."""

import io
import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import pruning
from pruning import data
from pruning.cli import main
from pruning.models import export, shrink, shrink_torch, zoo

ZOO = zoo.names()
TORCH = [n for n in ZOO if zoo.info(n)["framework"] == "torch"]
KERAS = [n for n in ZOO if zoo.info(n)["framework"] == "keras"]


def images(dataset: str, n: int = 500) -> np.ndarray:
    try:
        x, _ = data.load(dataset)
    except data.DatasetUnavailable:
        pytest.skip(f"{dataset} test images need PRUNING_DATA_DIR")
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def engine(model, mask, x) -> np.ndarray:
    return model.logits(pruning.masked_weights(model, mask), "final", model.prepare(x))


def agree(out, ref):
    assert out.shape == ref.shape
    assert (out.argmax(1) == ref.argmax(1)).all()
    assert np.abs(out - ref).max() <= 1e-4


def unit_mask(model, sparsity=0.5):
    return pruning.compute_mask(model, "large_final", sparsity, scope="layer", granularity="unit")


@pytest.mark.parametrize("name", ZOO)
def test_shrunk_shapes_are_the_kept_units(name):
    """No data needed: every hidden layer loses the units the plan removes, and nothing else."""
    model = zoo.load_model(name)
    mask = unit_mask(model)
    plan = shrink.check(shrink.plan(model, mask), mask)
    assert 0 < plan.removed < plan.hidden
    small = shrink.sliced(model, plan, model.weights())
    for layer, spec in model.specs.items():
        canonical = spec.to_canonical(small[layer]).shape
        assert canonical[:2] == (len(plan.rows[layer]), len(plan.cols[layer]))
    assert sum(w.size for w in small.values()) < sum(w.size for w in model.weights().values())
    assert len(plan.rows[model.output_name]) == model.specs[model.output_name].canonical_shape[0]  # classes stay


@pytest.mark.parametrize("name", TORCH)
def test_torch_shrunk_file_round_trip(name, tmp_path):
    model = zoo.load_model(name)
    mask = unit_mask(model)
    path = tmp_path / "small.safetensors"
    export.FORMATS.get("shrunk-safetensors")(model, mask, path)
    with safe_open(str(path), "np") as f:  # plain tensors and a JSON header, no pickle
        arch = json.loads(f.metadata()[shrink_torch.KEY])
        smaller = sum(f.get_tensor(k).size for k in f.keys())  # noqa: SIM118
    assert smaller < sum(v.size for v in model.states["final"].values())
    assert arch["widths"] == {k.rsplit(".", 1)[0]: len(r) for k, r in shrink.plan(model, mask).rows.items()}
    module = shrink_torch.load(path)
    x = images(model.dataset)
    import torch

    from pruning.models.torch_model import to_input

    with torch.no_grad():
        agree(module(to_input(x)).numpy(), engine(model, mask, x))


@pytest.mark.parametrize("name", KERAS)
def test_keras_shrunk_file_round_trip(name, tmp_path):
    import keras

    model = zoo.load_model(name)
    mask = unit_mask(model)
    path = tmp_path / "small.keras"
    export.FORMATS.get("shrunk-keras")(model, mask, path)
    small = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    assert small.count_params() < model._keras.count_params()
    x = images(model.dataset)
    agree(np.asarray(small(model.prepare(x))), engine(model, mask, x))


@pytest.mark.parametrize("name", ["mnist-lenet5-torch", "mnist-conv-keras"])
def test_units_emptied_by_weight_pruning_are_removed(name):
    """A weight-granularity mask at high sparsity empties whole units: they go, exactly."""
    model = zoo.load_model(name)
    mask = pruning.compute_mask(model, "large_final", 0.95, scope="layer")
    plan = shrink.check(shrink.plan(model, mask), mask)
    assert plan.removed > 0
    x = images(model.dataset, 300)
    if model.framework == "torch":
        import torch

        from pruning.models.torch_model import to_input

        with torch.no_grad():
            out = shrink_torch.from_state(*shrink_torch.shrunk_state(model, mask))(to_input(x)).numpy()
    else:
        from pruning.models.shrink_keras import shrunk_keras

        out = np.asarray(shrunk_keras(model, mask)(model.prepare(x)))
    agree(out, engine(model, mask, x))


def test_resnet_residual_channels_stay_consistent():
    """ResNet-20 without CIFAR data (random images): a residual channel goes only when every block
    of its stage and its source leave it at 0, and then the option-A shortcut maps the kept
    channels of the next stage correctly (a wrong shift would change the logits)."""
    name = "cifar10-resnet20-torch"
    if name not in ZOO:
        pytest.skip("no ResNet-20 in the zoo")
    model = zoo.load_model(name)
    mask = pruning.Mask({k: np.ones(s.shape, bool) for k, s in model.specs.items()}, {"granularity": "unit"})
    gone = [3, 7]  # stage-1 residual channels: the stem's units and every stage-1 block's conv2 units
    for layer in ["conv1.weight"] + [f"blocks.{b}.conv2.weight" for b in range(3)]:
        mask[layer][gone] = False
    mask["blocks.4.conv1.weight"][5] = False  # a unit inside a stage-2 block
    plan = shrink.check(shrink.plan(model, mask), mask)
    assert [c for c in range(16) if c not in plan.rows["conv1.weight"]] == gone
    assert 5 not in plan.rows["blocks.4.conv1.weight"]
    assert len(plan.rows["blocks.3.conv2.weight"]) == 32  # stage 2's channels 8+3, 8+7 are written by its blocks
    x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    import torch

    from pruning.models.torch_model import to_input

    with torch.no_grad():
        out = shrink_torch.from_state(*shrink_torch.shrunk_state(model, mask))(to_input(x)).numpy()
    agree(out, engine(model, mask, x))


def test_resnet_unit_mask_on_cifar_images():
    name = "cifar10-resnet20-torch"
    if name not in ZOO:
        pytest.skip("no ResNet-20 in the zoo")
    model = zoo.load_model(name)
    x = images("cifar10", 300)
    mask = pruning.compute_mask(model, "large_final", 0.6, scope="global", granularity="unit")
    import torch

    from pruning.models.torch_model import to_input

    with torch.no_grad():
        out = shrink_torch.from_state(*shrink_torch.shrunk_state(model, mask))(to_input(x)).numpy()
    agree(out, engine(model, mask, x))


def test_nothing_to_shrink_is_one_line(tmp_path):
    argv = ["export", "--model", "mnist-lenet300-torch", "--sparsity", "0.5", "--format", "shrunk-safetensors",
            "--out", str(tmp_path / "x.safetensors")]
    assert main(argv, out=io.StringIO()) == 2
    model = zoo.load_model("mnist-lenet300-torch")
    with pytest.raises(pruning.PruningError, match="nothing to shrink: a weight-granularity mask at sparsity 0.5000"):
        export.FORMATS.get("shrunk-safetensors")(model, pruning.compute_mask(model, "large_final", 0.5),
                                                 tmp_path / "y.safetensors")
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()


def test_cli_shrunk_formats(tmp_path):
    for name, fmt, suffix in (("mnist-lenet5-torch", "shrunk-safetensors", ".safetensors"),
                              ("mnist-lenet300-keras", "shrunk-keras", ".keras")):
        path = tmp_path / f"small{suffix}"
        out = io.StringIO()
        assert main(["export", "--model", name, "--granularity", "unit", "--sparsity", "0.5", "--format", fmt,
                     "--out", str(path)], out=out) == 0
        assert path.stat().st_size > 0 and "wrote" in out.getvalue()


def test_wrong_framework_and_foreign_files_are_refused(tmp_path):
    keras_model = zoo.load_model("mnist-lenet300-keras")
    mask = unit_mask(keras_model)
    with pytest.raises(pruning.PruningError, match="not available for mnist-lenet300-keras"):
        export.FORMATS.get("shrunk-safetensors")(keras_model, mask, tmp_path / "x.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(plain))
    with pytest.raises(pruning.PruningError, match="cannot load a shrunk model"):
        shrink_torch.load(plain)
