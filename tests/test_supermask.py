"""Learned supermasks (edge-popup, Ramanujan et al. 2020): the engine on small runs in both
frameworks, the CLI, and the masks shipped under pretrained/<name>/supermasks/."""

import json
import os

import numpy as np
import pytest

import pruning
from pruning import data
from conftest import run_cli as run
from pruning.core.criteria import MODEL_CRITERIA, model_criteria
from pruning.training import supermask, supermask_files

needs_data = pytest.mark.skipif(not os.environ.get("PRUNING_DATA_DIR"),
                                reason="needs the MNIST training split: set PRUNING_DATA_DIR")
SHIPPED = [(name, keep) for name in ("mnist-lenet300-torch", "fmnist-lenet300-torch", "mnist-lenet300-keras",
                                     "fmnist-lenet300-keras") for keep in supermask_files.trained_keeps(name)]


def small_run(name, keep=0.3, seed=0, epochs=1):
    """A few hundred test images as training data (shipped, so no PRUNING_DATA_DIR needed)."""
    x, y = data.load(pruning.load_model(name).dataset, "test")
    return supermask.learn(pruning.load_model(name), keep, epochs, seed, train=(x[:384], y[:384]),
                           eval_limit=200, hyper={"batch_size": 64})


@pytest.mark.parametrize("name", ["mnist-lenet300-torch", "mnist-lenet300-keras"])
def test_scores_train_weights_stay_and_every_layer_keeps_exactly_keep(name):
    model = pruning.load_model(name)
    before = {k: v.copy() for k, v in model.states["init"].items()}
    learned = small_run(name)
    start = supermask.initial_scores(model, 0)
    assert all(not np.array_equal(learned.scores[k], start[k]) for k in model.specs)  # the scores moved
    for k, v in model.states["init"].items():  # θ0 untouched (the cached model is read-only)
        np.testing.assert_array_equal(v, before[k])
    mask = learned.mask
    assert list(mask) == list(model.specs)
    for k, keep in mask.items():
        assert keep.dtype == np.bool_ and keep.shape == model.specs[k].shape
        assert int(keep.sum()) == keep.size - round(0.7 * keep.size)  # per layer, the output layer too
        # the mask is the top 30% of |learned score| of the layer
        assert np.abs(learned.scores[k][keep]).min() >= np.abs(learned.scores[k][~keep]).max()
    meta = mask.meta
    assert meta["method"] == "edge-popup" and meta["keep"] == 0.3 and meta["epochs"] == 1 and meta["seed"] == 0
    assert meta["data"]["train_examples"] == 384
    assert meta["accuracy"] == pruning.evaluate(model, mask, weights="init").accuracy
    assert len(learned.history) == 1


def test_learning_beats_the_initial_scores():
    """A few hundred images for 3 epochs already make the mask far better than its random start."""
    model = pruning.load_model("mnist-lenet300-torch")
    start = supermask.scores_mask(model, supermask.initial_scores(model, 0), 0.5)
    learned = small_run("mnist-lenet300-torch", keep=0.5, epochs=3)
    before = pruning.evaluate(model, start, weights="init", limit=2000).accuracy
    after = pruning.evaluate(model, learned.mask, weights="init", limit=2000).accuracy
    assert after > before + 0.3, (before, after)


def test_same_seed_same_mask_other_seed_other_mask():
    name = "mnist-lenet300-torch"
    a, b, c = small_run(name), small_run(name), small_run(name, seed=1)
    for k in a.mask:
        np.testing.assert_array_equal(a.mask[k], b.mask[k])
        np.testing.assert_array_equal(a.scores[k], b.scores[k])
    assert any(not np.array_equal(a.mask[k], c.mask[k]) for k in a.mask)


def test_twins_start_from_the_same_scores():
    t, k = pruning.load_model("mnist-lenet300-torch"), pruning.load_model("mnist-lenet300-keras")
    st, sk = supermask.initial_scores(t, 3), supermask.initial_scores(k, 3)
    for (tn, kn) in zip(t.specs, k.specs, strict=True):
        np.testing.assert_array_equal(st[tn], k.specs[kn].to_canonical(sk[kn]))


@pytest.mark.parametrize("kwargs,message", [({"keep": 0}, "keep must be above 0"), ({"keep": 1.5}, "keep must be in"),
                                            ({"epochs": 0}, "epochs must be positive"),
                                            ({"epochs": 2.5}, "epochs must be a whole number"),
                                            ({"seed": -1}, "seed must not be negative")])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(pruning.PruningError, match=message):
        pruning.learn_supermask("mnist-lenet300-torch", **kwargs)


def test_missing_training_data_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path))
    with pytest.raises(pruning.DatasetUnavailable, match="PRUNING_DATA_DIR"):
        pruning.learn_supermask("mnist-lenet300-torch", keep=0.5, epochs=1)




@pytest.mark.parametrize("argv", [["--keep", "0"], ["--keep", "abc"], ["--epochs", "0"], ["--seed", "x"],
                                  ["--out", "/no/such/dir/m.npz"]])
def test_cli_bad_arguments_exit_2_with_one_line(argv, capsys):
    code, _ = run("supermask", "--model", "mnist-lenet300-torch", *argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_cli_without_training_data_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path))
    code, _ = run("supermask", "--model", "mnist-lenet300-torch", "--keep", "0.5", "--epochs", "1")
    err = capsys.readouterr().err
    assert code == 2 and "PRUNING_DATA_DIR" in err and err.count("\n") == 1


@needs_data
def test_cli_tiny_run_writes_a_mask_that_reloads(tmp_path):
    path = tmp_path / "mask.npz"
    code, out = run("supermask", "--model", "mnist-lenet300-torch", "--keep", "0.5", "--epochs", "1", "--seed", "2",
                    "--limit", "600", "--out", str(path), "--json")
    assert code == 0
    meta = json.loads(out)
    model = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.load_mask(path, model)
    assert mask.meta["keep"] == meta["keep"] == 0.5 and meta["seed"] == 2 and meta["data"]["train_examples"] == 600
    assert mask.sparsity == pytest.approx(0.5, abs=1e-5)
    assert pruning.evaluate(model, mask, weights="init").accuracy == meta["accuracy"]


def test_shipped_masks_exist_for_the_mnist_and_fashion_lenets():
    for name in ("mnist-lenet300-torch", "fmnist-lenet300-torch"):
        assert len(supermask_files.trained_keeps(name)) >= 3, name
        assert model_criteria(pruning.load_model(name)) == ["learned_supermask"]
    assert model_criteria(pruning.load_model("mnist-lenet5-torch")) == []


@pytest.mark.parametrize("name,keep", SHIPPED)
def test_a_shipped_mask_reproduces_its_recorded_accuracy(name, keep):
    model = pruning.load_model(name)
    mask = pruning.load_mask(supermask_files.mask_path(name, keep), model)  # the ordinary mask loader
    assert mask.meta["method"] == "edge-popup" and mask.meta["keep"] == keep and mask.meta["model"] == name
    assert pruning.evaluate(model, mask, weights="init").accuracy == mask.meta["accuracy"]
    assert os.path.getsize(supermask_files.mask_path(name, keep)) < 80_000
    assert os.path.getsize(supermask_files.scores_path(name, keep)) < 160_000
    # the criterion cut per layer at the trained density is exactly the shipped mask
    again = pruning.compute_mask(model, "learned_supermask", 1 - keep, scope="layer")
    for k in mask:
        np.testing.assert_array_equal(again[k], mask[k])
    assert again.meta["trained_keep"] == keep


def test_the_criterion_uses_the_nearest_trained_density():
    name = "mnist-lenet300-torch"
    model = pruning.load_model(name)
    keeps = supermask_files.trained_keeps(name)
    learned = MODEL_CRITERIA["learned_supermask"]
    sparsity = 1 - keeps[0] + 0.02  # a little sparser than the sparsest trained density
    mask = pruning.compute_mask(model, "learned_supermask", sparsity)
    assert mask.meta["trained_keep"] == keeps[0] and mask.sparsity == pytest.approx(sparsity, abs=1e-5)
    shipped = pruning.load_mask(supermask_files.mask_path(name, keeps[0]), model)
    for k in mask:  # cut from the same scores: a subset of the trained mask
        assert not (mask[k] & ~shipped[k]).any()
    assert "not a trained density" in learned.note(model, sparsity)
    assert "not a trained density" not in learned.note(model, 1 - keeps[0])


def test_a_model_without_shipped_scores_says_so():
    with pytest.raises(pruning.PruningError, match="no learned supermask is shipped"):
        pruning.compute_mask(pruning.load_model("mnist-lenet5-torch"), "learned_supermask", 0.5)


def test_levels_keep_the_mask_and_the_order():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 9)).astype(np.float32)
    keep = np.abs(s) >= np.quantile(np.abs(s), 0.6)
    levels = supermask_files.encode(keep, s)
    np.testing.assert_array_equal(levels >= supermask_files.HALF, keep)
    np.testing.assert_array_equal(supermask_files.unpack(supermask_files.pack(levels), s.shape), levels)
    order = np.argsort(np.abs(s).ravel())
    assert (np.diff(levels.ravel()[order].astype(int)) >= 0).all()  # monotone in |s|


@pytest.mark.parametrize("k", [1, 2, 500, 999, 1000])
def test_the_sort_used_on_cuda_picks_the_same_threshold_as_the_quickselect(k):
    import torch

    from pruning.training.supermask_torch import kth_largest

    flat = torch.from_numpy(np.random.default_rng(k).standard_normal(1000).astype(np.float32)).abs()
    flat[:10] = flat[10]  # ties
    expected = np.sort(flat.numpy())[::-1][k - 1]
    assert kth_largest(flat, k, by_sort=True).item() == expected
    assert kth_largest(flat, k, by_sort=False).item() == expected


@pytest.mark.skipif(not data.available("cifar10", "test"), reason="needs the CIFAR-10 test split: set PRUNING_DATA_DIR")
@pytest.mark.parametrize("keep", supermask_files.trained_keeps("cifar10-conv4-torch"))
def test_the_cifar_conv4_masks_learned_on_a_gpu_reproduce_on_this_machine(keep):
    name = "cifar10-conv4-torch"
    model = pruning.load_model(name)
    mask = pruning.load_mask(supermask_files.mask_path(name, keep), model)
    assert mask.meta["method"] == "edge-popup" and mask.meta["keep"] == keep and mask.meta["epochs"] == 30
    # learned and measured on an NVIDIA H200; the CPU may flip an image or two (benchmarks/gpu.py: 1e-3)
    assert pruning.evaluate(model, mask, weights="init").accuracy == pytest.approx(mask.meta["accuracy"], abs=1e-3)
    again = pruning.compute_mask(model, "learned_supermask", 1 - keep, scope="layer")
    for k in mask:
        np.testing.assert_array_equal(again[k], mask[k])
    runs = [r for r in supermask_files.runs(name) if r["keep"] == keep]
    assert [r["accuracy"] for r in runs if r["shipped"]] == [mask.meta["accuracy"]]
