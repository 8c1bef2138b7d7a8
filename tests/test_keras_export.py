"""Keras zoo models through the engine, the command line, export and ``MaskCallback``."""

import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import pruning
from pruning import data
from pruning.cli import main
from pruning.core.evaluate import masked_weights
from pruning.models.keras_callback import MaskCallback
from pruning.models.keras_model import load
from pruning.models.zoo import ZOO, info
from conftest import run_cli as run

KERAS_ZOO = [n for n in ("mnist-lenet300-keras", "fmnist-lenet300-keras", "mnist-conv-keras")
             if (ZOO / n / "model.json").is_file()]
# Sanity floors.  fmnist-lenet300-keras reached 0.8779 with its twin's exact recipe (the PyTorch twin
# 0.8885): short of the 0.880 aimed for, and deliberately not re-run with other seeds to clear it.
MINIMUM = {"mnist-lenet300-keras": 0.978, "fmnist-lenet300-keras": 0.875, "mnist-conv-keras": 0.970}
NAME = "mnist-lenet300-keras"




@pytest.mark.parametrize("name", KERAS_ZOO)
def test_zoo_model_record(name):
    meta = info(name)
    assert meta["framework"] == "keras" and meta["test_accuracy"] >= MINIMUM[name]
    assert {"init.keras", "final.keras"} <= set(meta["sha256"]) and meta["training"]["seed"] == 0
    for filename in meta["sha256"]:
        keras.saving.load_model(ZOO / name / filename, safe_mode=True)  # self-contained: no custom objects
        assert (ZOO / name / filename).stat().st_size < 4_000_000


@pytest.mark.parametrize("name", KERAS_ZOO)
def test_engine_evaluation_equals_keras_evaluate(name):
    model = pruning.load_model(name)
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    ours = pruning.evaluate(model, mask, limit=2000)
    net = model.to_keras(masked_weights(model, mask, "final"))
    net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = data.load(model.dataset, "test")
    x, y = x[ours.indices], y[ours.indices]  # the stratified subset the engine used
    _, accuracy = net.evaluate(x.astype(np.float32), y, batch_size=1000, verbose=0)
    assert accuracy == pytest.approx(ours.accuracy, abs=1e-6)
    predicted = net.predict(x.astype(np.float32), batch_size=1000, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(predicted, ours.predictions)


def test_export_keras_roundtrip(tmp_path):
    path = tmp_path / "pruned.keras"
    code, _ = run("export", "--model", NAME, "--strategy", "large_final", "--sparsity", 0.8, "--scope", "global",
                  "--format", "keras", "--out", path)
    assert code == 0 and [p.name for p in tmp_path.iterdir()] == ["pruned.keras"]  # no temporary left over
    code, text = run("evaluate", "--model", NAME, "--strategy", "large_final", "--sparsity", 0.8, "--scope",
                     "global", "--json")
    reported = json.loads(text)
    net = keras.saving.load_model(path, safe_mode=True)
    x, y = data.load("mnist", "test")
    accuracy = np.mean(net.predict(x.astype(np.float32), batch_size=1000, verbose=0).argmax(axis=1) == y)
    assert accuracy == pytest.approx(reported["accuracy"], abs=1e-9)
    kernels = [net.get_layer(n).kernel.numpy() for n in ("fc1", "fc2", "fc3")]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(reported["sparsity"], abs=1e-4)


@pytest.mark.parametrize("argv,message", [
    (["--model", "mnist-lenet300-torch", "--format", "keras", "--out", "x.keras"],
     "--format keras is not available for mnist-lenet300-torch, a PyTorch model; use --format npz or torch"),
    (["--model", NAME, "--format", "torch", "--out", "x.pt"],
     "is not available for " + NAME + ", a Keras model; use --format npz or keras"),
    (["--model", NAME, "--format", "keras", "--out", "x.h5"], "must end in .keras"),
    (["--model", NAME, "--format", "keras", "--out", "no/such/dir/x.keras"], "does not exist"),
])
def test_export_refuses_the_wrong_framework(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--sparsity", "0.5", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_mask_callback_keeps_pruned_weights_zero():
    model = pruning.load_model(NAME)
    mask = pruning.compute_mask(model, "large_final", 0.9)
    net = load(ZOO / NAME / "final.keras")
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data.load("mnist", "test")
    before = net.get_layer("fc1").kernel.numpy()
    net.fit(x[:600].astype(np.float32), y[:600], batch_size=60, epochs=2, verbose=0, callbacks=[MaskCallback(mask)])
    for name in ("fc1", "fc2", "fc3"):
        kernel, keep = net.get_layer(name).kernel.numpy(), mask[f"{name}/kernel"]
        assert np.all(kernel[~keep] == 0.0), name  # exactly zero after every step
    assert np.any(net.get_layer("fc1").kernel.numpy()[mask["fc1/kernel"]] != before[mask["fc1/kernel"]])


def test_mask_callback_rejects_a_mask_of_another_model():
    other = pruning.compute_mask(pruning.load_model("mnist-lenet300-torch"), "large_final", 0.5)
    with pytest.raises(pruning.PruningError, match="fc1.weight"):
        MaskCallback(other).apply(load(ZOO / NAME / "final.keras"))


def test_cli_evaluate_json_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "pruning", "evaluate", "--model", NAME, "--strategy", "movement",
                           "--sparsity", "0.9", "--weights", "init", "--limit", "500", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", "TensorFlow's start-up chatter must not reach the terminal"
    row = json.loads(proc.stdout)
    assert row["model"] == NAME and row["n"] == 500 and row["sparsity"] == pytest.approx(0.9, abs=1e-6)
    assert [layer["name"] for layer in row["layers"]] == ["fc1/kernel", "fc2/kernel", "fc3/kernel"]


def test_cli_sweep(tmp_path):
    out = tmp_path / "sweep.csv"
    code, _ = run("sweep", "--model", NAME, "--strategies", "large_final,random", "--sparsities", "0,0.9",
                  "--weights", "final,init", "--limit", 1000, "--out", out)
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 and {r["model"] for r in rows} == {NAME}
    dense = {float(r["accuracy"]) for r in rows if r["weights"] == "final" and float(r["requested_sparsity"]) == 0}
    assert len(dense) == 1 and dense.pop() >= 0.97
