"""pruning.core.readouts: the plain numbers behind the explorer's charts."""

from types import SimpleNamespace

import numpy as np
import pytest

import pruning
from pruning.core import readouts

MODEL = "mnist-lenet300-torch"


@pytest.fixture(scope="module")
def model():
    return pruning.load_model(MODEL)


@pytest.fixture(scope="module")
def mask(model):
    return pruning.compute_mask(model, "large_final", 0.9, scope="global")


def test_fixed_sparsity_and_default_limit():
    assert readouts.fixed_sparsity("2:4") == 0.5 and readouts.fixed_sparsity("1:4") == 0.75
    assert readouts.fixed_sparsity("weight") is None and readouts.fixed_sparsity("unit") is None
    with pytest.raises(pruning.PruningError):
        readouts.fixed_sparsity("4:2")
    assert readouts.default_limit("mnist", "cpu") is None
    assert readouts.default_limit("cifar10", "cpu") == 500 and readouts.default_limit("cifar10", "cuda:0") is None


def test_model_size(model, mask):
    size = readouts.model_size(model, mask)
    total, prunable = model.info["parameters"]["total"], 266200
    kept = pruning.report(mask)["kept"]
    assert size["dense"] == 4 * total and size["kept"] == kept and size["prunable"] == prunable
    bits = (235200 + 30000 + 1000) // 8
    assert size["bitmask"] == 4 * (total - prunable) + bits + 4 * kept
    assert size["csr"] == 4 * (total - prunable) + 8 * kept + 4 * (300 + 100 + 10 + 3)
    assert size["bitmask"] < size["dense"]


def test_nearly_empty_layers_and_report_csv():
    mask = {"a": np.zeros((10, 10), bool), "b": np.ones((2, 2), bool)}
    mask["a"][0, 0] = True
    assert readouts.nearly_empty_layers(mask) == ["a"]
    assert readouts.nearly_empty_layers(mask, threshold=1.0) == []
    text = readouts.report_csv(pruning.report(mask))
    assert text.splitlines() == ["name,shape,total,kept,pruned,sparsity", "a,10x10,100,1,99,0.990000",
                                 "b,2x2,4,4,0,0.000000"]


def test_weight_histogram_counts_every_weight(model, mask):
    hist = readouts.weight_histogram(model, mask, "fc2.weight", bins=30)
    kept = int(mask["fc2.weight"].sum())
    for which in ("final", "init"):
        h = hist[which]
        assert len(h["edges"]) == 31 and h["kept"].sum() == kept and h["pruned"].sum() == 30000 - kept


def test_weight_sample(model, mask):
    small = readouts.weight_sample(model, mask, "fc3.weight")
    assert small["total"] == 1000 and len(small["final"]) == 1000
    assert np.array_equal(small["final"], model.weights("final")["fc3.weight"].reshape(-1))
    big = readouts.weight_sample(model, mask, "fc1.weight", max_points=500)
    assert len(big["init"]) == len(big["kept"]) == 500 and big["total"] == 235200
    again = readouts.weight_sample(model, mask, "fc1.weight", max_points=500)
    assert np.array_equal(big["final"], again["final"])  # seeded


def test_first_layer_images_dense(model, mask):
    images = readouts.first_layer_images(model, mask, count=4)
    assert images["kind"] == "dense" and images["masks"].shape == (4, 28, 28)
    per_unit = mask["fc1.weight"].sum(axis=1)
    assert images["kept"] == sorted(per_unit, reverse=True)[:4]
    assert images["kept"][0] == images["masks"][0].sum()
    assert images["coverage"].shape == (28, 28) and images["coverage"].max() <= 1
    # the empty top-left corner of MNIST is pruned by magnitude pruning
    assert images["coverage"][0, 0] < images["coverage"][14, 14]


def test_first_layer_images_conv():
    spec = SimpleNamespace(to_canonical=lambda a: a)
    w = np.arange(4 * 1 * 3 * 3, dtype=np.float32).reshape(4, 1, 3, 3)
    fake = SimpleNamespace(specs={"conv.weight": spec}, weights=lambda which: {"conv.weight": w})
    keep = np.ones_like(w, dtype=bool)
    keep[1] = False
    images = readouts.first_layer_images(fake, {"conv.weight": keep}, count=3)
    assert images["kind"] == "conv" and images["filters"].shape == (3, 3, 3)
    assert images["kept"] == [9, 0, 9] and not images["filters"][1].any()


def _evaluation(pred, labels):
    pred, labels = np.array(pred), np.array(labels)
    return pruning.Evaluation(float(np.mean(pred == labels)), len(labels), pred, labels, np.arange(len(labels)) + 100)


def test_compare():
    dense = _evaluation([0, 1, 2, 3, 1], [0, 1, 2, 3, 4])
    pruned = _evaluation([0, 2, 2, 1, 4], [0, 1, 2, 3, 4])
    c = readouts.compare(dense, pruned, count=2)
    assert (c["broken"], c["fixed"], c["changed"]) == (2, 1, 3)
    assert [e["index"] for e in c["examples"]] == [101, 103]  # broken ones first
    assert c["examples"][0] == {"index": 101, "label": 1, "dense": 1, "pruned": 2}
    assert c["confusion_change"].sum() == 0 and c["confusion_change"][1, 2] == 1 and c["confusion_change"][1, 1] == -1
    with pytest.raises(ValueError):
        readouts.compare(dense, pruning.Evaluation(1.0, 1, np.zeros(1, int), np.zeros(1, int), np.zeros(1, int)))


def test_sweep_curves(tmp_path, monkeypatch):
    monkeypatch.setattr(readouts, "ZOO", tmp_path)
    assert readouts.sweep("nothing") is None
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "sweep.csv").write_text(
        "model,strategy,scope,granularity,weights,requested_sparsity,sparsity,accuracy,n,seed\n"
        "m,random,layer,weight,final,0.5,0.5,0.6,10,0\n"
        "m,random,layer,weight,final,0.5,0.5,0.8,10,1\n"
        "m,random,layer,weight,final,0.0,0.0,0.9,10,0\n"
        "m,smallest_weights_global,global,weight,final,0.5,0.5,0.85,10,0\n"
        "m,random,layer,weight,init,0.5,0.5,0.1,10,0\n")
    rows = readouts.sweep("m")
    curves = readouts.sweep_curves(rows, ["random", "large_final"], "layer", "weight", "final")
    assert list(curves) == ["random"]
    assert curves["random"]["sparsity"] == [0.0, 0.5] and curves["random"]["accuracy"] == pytest.approx([0.9, 0.7])
    glob = readouts.sweep_curves(rows, ["large_final"], "global", "weight", "final")
    assert glob["large_final"]["accuracy"] == [0.85]  # the alias counts as its criterion
