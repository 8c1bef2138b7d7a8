"""train_keras: θ0 is reproducible (twins: the PyTorch twin's, converted), and a miniature training
run writes every file and model.json field the zoo expects (no full training here)."""

import json
import os

import numpy as np
import pytest

import pruning
from pruning import data
from pruning.training import train_keras, zoo_training
from pruning.fileio import sha256
from pruning.models.keras_model import load, named_variables
from pruning.models.keras_nets import ARCHITECTURES
from pruning.training.recipes import RECIPES
from pruning.models.zoo import ZOO

KERAS_RECIPES = [n for n, r in RECIPES.items() if r["framework"] == "keras"]


@pytest.mark.parametrize("name", [n for n in KERAS_RECIPES if (ZOO / n / "init.keras").is_file()])
def test_committed_init_is_reproducible(name):
    fresh = {k: v.numpy() for k, v in named_variables(train_keras.initial_model(RECIPES[name])).items()}
    committed = {k: v.numpy() for k, v in named_variables(load(ZOO / name / "init.keras")).items()}
    assert list(fresh) == list(committed)
    for k in fresh:
        np.testing.assert_array_equal(fresh[k], committed[k], err_msg=k)


def test_every_keras_recipe_builds_and_twins_match_their_torch_twin():
    for name in KERAS_RECIPES:
        recipe = RECIPES[name]
        assert recipe["architecture"] in ARCHITECTURES
        if recipe.get("twin"):
            twin = RECIPES[recipe["twin"]]
            # the network, its data and θ0 must match; the training length and augmentation may not
            # (the Keras Conv-4 trains 8 epochs with flips to reach its minimum accuracy)
            same = ("architecture", "dataset", "preprocessing", "lr", "batch_size", "seed", "init")
            assert {k: recipe[k] for k in same} == {k: twin[k] for k in same}, name


def test_miniature_training_run_writes_the_zoo_files(tmp_path, monkeypatch):
    x, y = data.load("mnist", "test")
    monkeypatch.setattr(zoo_training, "ZOO", tmp_path)
    monkeypatch.setattr(data, "load", lambda name, split="test": (x[:1200], y[:1200]) if split == "train" else (x, y))
    recipe = {**RECIPES["mnist-lenet300-keras"], "epochs": 1, "early_fraction": 0.05}
    monkeypatch.setitem(RECIPES, "tiny-lenet300-keras", recipe)
    meta = train_keras.train_zoo_model("tiny-lenet300-keras", log=None)
    out = tmp_path / "tiny-lenet300-keras"
    assert sorted(p.name for p in out.iterdir()) == ["early.keras", "final.keras", "init.keras", "model.json"]
    assert json.loads((out / "model.json").read_text()) == meta
    reference = json.loads((ZOO / "mnist-lenet300-torch" / "model.json").read_text())
    assert set(reference) <= set(meta) and set(reference["training"]) - {"torch"} <= set(meta["training"])
    assert meta["framework"] == "keras" and meta["training"]["early_step"] == 1  # 5% of 20 steps
    assert meta["parameters"] == {"total": 266610, "prunable": 266200}
    assert meta["sha256"] == {f: sha256(out / f) for f in ("early.keras", "final.keras", "init.keras")}
    assert 0.5 < meta["test_accuracy"] <= 1 and meta["test_n"] == 10000
    init = named_variables(load(out / "init.keras"))["fc1/kernel"].numpy()
    torch_init = train_keras.torch_initial_state("mnist-lenet300-torch")["fc1.weight"]
    np.testing.assert_array_equal(init, torch_init.T)  # θ0 shared exactly with the PyTorch twin


def test_random_control_is_the_torch_twins_converted():
    from pruning.training import train_torch

    keras_model, torch_model = pruning.load_model("mnist-lenet300-keras"), pruning.load_model("mnist-lenet300-torch")
    ours, theirs = train_keras.start_state(keras_model, "random", 3), train_torch.start_state(torch_model, "random", 3)
    np.testing.assert_array_equal(ours["fc2/kernel"], theirs["fc2.weight"].T)
    assert not np.array_equal(ours["fc2/kernel"], keras_model.states["init"]["fc2/kernel"])
    assert train_keras.start_state(keras_model, "early") is keras_model.states["early"]


needs_data = pytest.mark.skipif(not os.environ.get(data.ENV), reason=f"needs the MNIST training split: set {data.ENV}")


@needs_data
def test_retraining_in_the_loop_keeps_pruned_weights_zero():
    from pruning.training import retrain

    assert retrain._backend(pruning.load_model("mnist-lenet300-keras")) is train_keras
    model = pruning.load_model("mnist-lenet300-keras")
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    run = retrain.retrain(model, mask, rewind="init", epochs=1, limit=600)
    for name, keep in mask.items():
        assert np.all(run.weights[name][~keep] == 0) and np.count_nonzero(run.weights[name][keep]) == keep.sum()
    assert run.accuracy > pruning.evaluate(model, mask, "init").accuracy + 0.2
    run = retrain.gradual(model, initial=0.5, final=0.8, epochs=1, limit=600, frequency=2)
    assert run.mask.sparsity == pytest.approx(0.8, abs=1e-6) and run.history[-1]["sparsity"] == run.mask.sparsity
    for name, keep in run.mask.items():
        assert np.all(run.weights[name][~keep] == 0)


def test_flip_batches_mirror_the_marked_images_and_reshuffle_each_epoch():
    x = np.arange(10 * 2 * 3 * 1, dtype=np.uint8).reshape(10, 2, 3, 1)  # (n, h, w, c)
    y = np.arange(10, dtype=np.uint8)
    batches = train_keras._Flipped(x, y, 4, seed=0)
    first = batches.order.copy()
    seen = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert len(batches) == 3 and sorted(seen) == list(range(10))
    xb, yb = batches[0]
    for image, label, flipped in zip(xb, yb, batches.flip[batches.order[:4]], strict=True):
        assert np.array_equal(image, x[label][:, ::-1] if flipped else x[label])
    assert 0 < batches.flip.sum() < 10
    batches.on_epoch_end()
    assert not np.array_equal(batches.order, first)
    with pytest.raises(pruning.PruningError, match="horizontal flip"):
        train_keras._fit_inputs({"augmentation": "random crop", "batch_size": 4, "seed": 0}, x, y)
