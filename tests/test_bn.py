"""Batch-norm recalibration (pruning/core/batchnorm.py): the re-estimated statistics against a hand-
written reference on a tiny conv + batch-norm network, the cached model left untouched, the seeded
stratified draw, the cases where it does not apply, and the CLI flag."""

import json

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

import pruning
from pruning import cli, data
from pruning.core import batchnorm, evaluate as evaluate_module
from pruning.models import torch_nets
from pruning.models.adapter import recalibration_unavailable
from pruning.models.torch_model import TorchModel


class TinyBN(nn.Module):
    """conv 3->4 -> BN -> relu -> conv 4->5 (stride 2) -> BN -> relu -> mean -> linear 5->10."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.normalize = torch_nets.Normalize(mean, std)
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 10)

    def forward(self, x):  # (n, 3, 32, 32)
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        return self.fc(F.relu(self.bn2(self.conv2(x))).mean(dim=(2, 3)))


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A made-up cifar10.npz (60 training, 20 test images) as PRUNING_DATA_DIR; caches cleared."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10.npz", x_train=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(60) % 10, x_test=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    monkeypatch.setenv(data.ENV, str(tmp_path))
    _clear()
    yield tmp_path
    _clear()


def _clear():
    data.load.cache_clear()
    evaluate_module.inputs.cache_clear()
    batchnorm.forget()


@pytest.fixture
def tiny(monkeypatch):
    """A TorchModel of TinyBN with random weights and non-trivial running statistics."""
    monkeypatch.setitem(torch_nets.ARCHITECTURES, "tinybn", TinyBN)
    torch.manual_seed(0)
    net = TinyBN()
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    for name, c in (("bn1", 4), ("bn2", 5)):
        state[f"{name}.weight"] = np.linspace(0.5, 1.5, c, dtype=np.float32)
        state[f"{name}.bias"] = np.linspace(-0.2, 0.3, c, dtype=np.float32)
        state[f"{name}.running_mean"] = np.full(c, 0.7, np.float32)
        state[f"{name}.running_var"] = np.full(c, 3.0, np.float32)
    info = {"dataset": "cifar10", "architecture": "tinybn",
            "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    return TorchModel("tiny", info, {"final": state})


def _reference(model, mask, x_uint8):
    """Float64, by hand: each BN layer's input mean and unbiased variance over the batch, with every
    BN normalising by the batch's own mean and biased variance (training mode)."""
    s = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in model.states["final"].items()}
    w = {k: torch.from_numpy(np.where(mask[k], model.states["final"][k], 0).astype(np.float64))
         for k in ("conv1.weight", "conv2.weight")}
    x = torch.from_numpy(x_uint8.astype(np.float64) / 255).permute(0, 3, 1, 2)
    x = (x - 0.5) / 0.25
    stats = {}

    def bn(h, name):
        mean, var = h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=False)
        n = h.numel() / h.shape[1]
        stats[f"{name}.running_mean"], stats[f"{name}.running_var"] = mean, var * n / (n - 1)
        h = (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
        return h * s[f"{name}.weight"][None, :, None, None] + s[f"{name}.bias"][None, :, None, None]

    h = F.relu(bn(F.conv2d(x, w["conv1.weight"], padding=1), "bn1"))
    bn(F.conv2d(h, w["conv2.weight"], stride=2, padding=1), "bn2")
    return {k: v.numpy() for k, v in stats.items()}


def _eval_logits(model, mask, stats, x_uint8):
    """Float64 eval-mode forward with the given running statistics."""
    s = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in model.states["final"].items()}
    s.update({k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in stats.items()})
    w = {k: torch.from_numpy(np.where(mask[k], model.states["final"][k], 0).astype(np.float64)) for k in mask}
    x = (torch.from_numpy(x_uint8.astype(np.float64) / 255).permute(0, 3, 1, 2) - 0.5) / 0.25

    def bn(h, name):
        return F.batch_norm(h, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                            s[f"{name}.bias"], training=False, eps=1e-5)

    h = F.relu(bn(F.conv2d(x, w["conv1.weight"], padding=1), "bn1"))
    h = F.relu(bn(F.conv2d(h, w["conv2.weight"], stride=2, padding=1), "bn2")).mean(dim=(2, 3))
    return F.linear(h, w["fc.weight"], s["fc.bias"]).numpy()


def test_statistics_match_the_exact_batch_statistics(tiny, tiny_data):
    mask = pruning.compute_mask(tiny, "large_final", 0.6, scope="global")
    stats = batchnorm.statistics(tiny, mask, images=30, seed=1)
    assert sorted(stats) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    x, y = data.load("cifar10", "train")
    idx = batchnorm.calibration_indices(y, 30, seed=1)
    expected = _reference(tiny, mask, x[idx])
    for k, v in expected.items():
        np.testing.assert_allclose(stats[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    assert not np.allclose(stats["bn2.running_var"], 3.0)  # really re-estimated
    # the evaluation uses them: its predictions are those of an eval-mode forward with these statistics
    result = pruning.evaluate(tiny, mask, bn_recalibrate=30, bn_seed=1)
    xt, yt = data.load("cifar10", "test")
    np.testing.assert_array_equal(result.predictions, _eval_logits(tiny, mask, expected, xt).argmax(axis=1))
    assert result.recalibration == {"images": 30, "seed": 1}
    plain = pruning.evaluate(tiny, mask)
    np.testing.assert_array_equal(plain.predictions, _eval_logits(tiny, mask, {}, xt).argmax(axis=1))
    assert plain.recalibration is None


def test_the_cached_model_is_untouched(tiny, tiny_data):
    mask = pruning.compute_mask(tiny, "large_final", 0.5, scope="layer")
    states = {k: v.copy() for k, v in tiny.states["final"].items()}
    tensors = {k: v.clone() for k, v in tiny._tensors["final"].items()}
    buffers = {k: v.clone() for k, v in tiny._module.state_dict().items()}
    before = pruning.evaluate(tiny, mask).predictions
    pruning.evaluate(tiny, mask, bn_recalibrate=40)
    batchnorm.statistics(tiny, None, images=20, seed=3)
    for k, v in tiny.states["final"].items():
        np.testing.assert_array_equal(v, states[k])
        assert not v.flags.writeable
    for k, v in tiny._tensors["final"].items():
        assert torch.equal(v, tensors[k]), k
    for k, v in tiny._module.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    assert not tiny._module.training
    np.testing.assert_array_equal(pruning.evaluate(tiny, mask).predictions, before)


def test_statistics_are_cached_deterministic_and_keyed_by_the_mask(tiny, tiny_data):
    a = pruning.compute_mask(tiny, "large_final", 0.5, scope="global")
    b = pruning.compute_mask(tiny, "large_final", 0.8, scope="global")
    first = batchnorm.statistics(tiny, a, images=30, seed=0)
    assert batchnorm.statistics(tiny, a, images=30, seed=0) is first  # cached
    assert not first["bn1.running_mean"].flags.writeable
    batchnorm.forget()
    again = batchnorm.statistics(tiny, a, images=30, seed=0)
    assert again is not first and all(np.array_equal(again[k], first[k]) for k in first)  # recomputed, equal
    assert not np.allclose(batchnorm.statistics(tiny, b, images=30, seed=0)["bn2.running_mean"],
                           first["bn2.running_mean"])
    assert not np.allclose(batchnorm.statistics(tiny, a, images=30, seed=5)["bn1.running_mean"],
                           first["bn1.running_mean"])


def test_calibration_draw_is_seeded_and_class_stratified():
    y = np.repeat(np.arange(10), [100, 100, 100, 100, 100, 100, 100, 100, 100, 300])  # class 9 has 25%
    idx = batchnorm.calibration_indices(y, 200, seed=0)
    assert len(idx) == len(set(idx)) == 200 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(y[idx]), [17] * 6 + [16] * 3 + [50])  # largest remainders
    np.testing.assert_array_equal(idx, batchnorm.calibration_indices(y, 200, seed=0))
    assert not np.array_equal(idx, batchnorm.calibration_indices(y, 200, seed=1))
    assert idx[-1] > 300  # drawn, not the first examples of each class


def test_images_are_checked():
    assert batchnorm.check_images(None) is None and batchnorm.check_images(False) is None
    assert batchnorm.check_images(True) == batchnorm.DEFAULT_IMAGES
    assert batchnorm.check_images("500") == 500
    for bad in (0, 1, -3, 2.5, "many", batchnorm.MAX_IMAGES + 1):
        with pytest.raises(pruning.PruningError, match="bn_recalibrate"):
            batchnorm.check_images(bad)


def test_models_without_batch_norm_say_it_does_not_apply():
    lenet = pruning.load_model("mnist-lenet300-torch")
    assert "no batch-norm layers" in recalibration_unavailable(lenet)
    with pytest.raises(pruning.PruningError, match="does not apply: this model has no batch-norm layers"):
        pruning.evaluate(lenet, None, bn_recalibrate=100)

    class Other:
        framework, name, device = "keras", "k", "cpu"

    assert "not implemented for Keras models" in recalibration_unavailable(Other())


def test_missing_training_data_is_one_error(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV, str(tmp_path))  # holds nothing
    _clear()
    assert recalibration_unavailable(tiny) is None
    with pytest.raises(pruning.DatasetUnavailable, match="needs the cifar10 training split: set PRUNING_DATA_DIR"):
        pruning.evaluate(tiny, None, bn_recalibrate=True)


def test_cli_without_training_data_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    _clear()
    argv = ["evaluate", "--model", "cifar10-resnet20-torch", "--sparsity", "0.5", "--bn-recalibrate", "--limit", "10"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: batch-norm recalibration needs the cifar10 training split") and err.count("\n") == 1
    assert cli.main(["evaluate", "--model", "mnist-lenet300-torch", "--sparsity", "0.5", "--bn-recalibrate", "50"]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", "cifar10-resnet20-torch", "--bn-recalibrate", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert cli.main(["compare", "--model", "cifar10-resnet20-torch", "--a", "sparsity=0.5", "--bn-recalibrate"]) == 2
    assert capsys.readouterr().err.startswith("error: batch-norm recalibration needs the cifar10 training split")
    assert cli.main(["sweep", "--model", "cifar10-resnet20-torch", "--sparsities", "0.5", "--bn-recalibrate"]) == 2
    assert capsys.readouterr().err.startswith("error: batch-norm recalibration needs the cifar10 training split")
    _clear()


needs_data = pytest.mark.skipif(not data.available("cifar10", "train"), reason="needs PRUNING_DATA_DIR (CIFAR-10)")


@needs_data
def test_cli_flag_recalibrates_resnet20(capsys):
    _clear()
    base = ["--model", "cifar10-resnet20-torch", "--strategy", "large_final", "--sparsity", "0.9", "--scope",
            "global", "--limit", "200"]
    assert cli.main(["evaluate", *base, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert cli.main(["evaluate", *base, "--bn-recalibrate", "500", "--json"]) == 0
    recal = json.loads(capsys.readouterr().out)
    assert plain["bn_recalibrate"] is None and recal["bn_recalibrate"] == 500
    model = pruning.load_model("cifar10-resnet20-torch")
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    assert recal["accuracy"] == pruning.evaluate(model, mask, limit=200, bn_recalibrate=500).accuracy
    assert recal["accuracy"] > plain["accuracy"] + 0.2  # at 90% the dense statistics are far off
    assert cli.main(["sweep", "--model", "cifar10-resnet20-torch", "--sparsities", "0.9", "--scope", "global",
                     "--limit", "200", "--bn-recalibrate", "500"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",bn_recalibrate") and lines[1].split(",")[7] == str(recal["accuracy"])
    assert lines[1].endswith(",500")
    _clear()


@needs_data
def test_reproduce_trial_and_table():
    from pruning.experiments import reproduce

    items = reproduce.bn_items(False, None)
    assert [i["scope"] for i in items] == ["global"] * 7 + ["layer"] * 7 and {i["seeds"] for i in items} == {3}
    item = {**items[5], "limit": 100, "images": 100, "seeds": 2}  # 90% global, shrunk
    result = reproduce._bn_trial(item)
    model = pruning.load_model("cifar10-resnet20-torch")
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global", output_rate=0)
    assert result["without"] == pruning.evaluate(model, mask, limit=100).accuracy
    assert result["with"] == [pruning.evaluate(model, mask, limit=100, bn_recalibrate=100, bn_seed=s).accuracy
                              for s in (0, 1)]
    table = reproduce.bn_section([item], [result])
    assert f"| 90% | global | {result['without']:.3f} | {reproduce.mean_std(result['with'])} |" in table
    assert "100-image class-stratified test subset" in table and "2 seeds" in table
    _clear()
