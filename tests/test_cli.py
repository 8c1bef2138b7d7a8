"""The command line: JSON output, CSV sweeps, exports, and one-line errors with exit code 2."""

import csv
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import pruning
from conftest import run_cli as run

MODEL = "mnist-lenet300-torch"




def test_models_json():
    code, out = run("models", "--json")
    rows = json.loads(out)
    assert code == 0
    row = next(r for r in rows if r["name"] == MODEL)
    assert row["framework"] == "torch" and row["dataset"] == "mnist"
    assert row["parameters"] == 266610 and row["test_accuracy"] >= 0.978


def test_evaluate_json_matches_the_api():
    code, out = run("evaluate", "--model", MODEL, "--strategy", "large_final", "--sparsity", "0.9",
                    "--scope", "global", "--weights", "init", "--limit", "2000", "--json")
    row = json.loads(out)
    assert code == 0
    for key in ("model", "strategy", "scope", "granularity", "weights", "sparsity", "accuracy", "n", "layers"):
        assert key in row
    model = pruning.load_model(MODEL)
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    assert row["accuracy"] == pruning.evaluate(model, mask, weights="init", limit=2000).accuracy
    assert row["n"] == 2000 and row["sparsity"] == pytest.approx(0.9, abs=1e-6)
    assert [layer["name"] for layer in row["layers"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert row["layers"][0]["shape"] == [300, 784]


def test_sweep_csv(tmp_path):
    path = tmp_path / "sweep.csv"
    code, _ = run("sweep", "--model", MODEL, "--strategies", "large_final,random", "--sparsities", "0,0.5,0.9",
                  "--weights", "final,init", "--limit", "500", "--out", str(path))
    rows = list(csv.DictReader(path.open()))
    assert code == 0 and len(rows) == 2 * 3 * 2
    assert {r["strategy"] for r in rows} == {"large_final", "random"}
    dense = [float(r["accuracy"]) for r in rows if r["requested_sparsity"] == "0.0" and r["weights"] == "final"]
    assert dense[0] == dense[1] == pruning.evaluate(pruning.load_model(MODEL), limit=500).accuracy


def test_sweep_evaluates_identical_masks_once(tmp_path, monkeypatch):
    engine = sys.modules["pruning.experiments.sweep"]  # pruning.sweep is the function
    calls = []
    real = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: calls.append(k["weights"]) or real(*a, **k))
    code, _ = run("sweep", "--model", MODEL, "--strategies", "large_final,random,smallest_weights_global",
                  "--sparsities", "0,0.5", "--weights", "final,init", "--limit", "300",
                  "--out", str(tmp_path / "s.csv"))
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert code == 0 and len(rows) == 3 * 2 * 2
    assert sorted(calls) == ["final"] * 4 + ["init"] * 4  # one dense pass per weight set, not three
    for weights in ("final", "init"):
        dense = {r["accuracy"] for r in rows if r["requested_sparsity"] == "0.0" and r["weights"] == weights}
        assert len(dense) == 1


def test_export_npz_and_torch(tmp_path):
    model = pruning.load_model(MODEL)
    expected = pruning.compute_mask(model, "movement", 0.7, scope="global")
    assert run("export", "--model", MODEL, "--strategy", "movement", "--sparsity", "0.7", "--scope", "global",
               "--out", str(tmp_path / "m.npz"))[0] == 0
    loaded = pruning.load_mask(tmp_path / "m.npz", model)
    assert all(np.array_equal(loaded[n], expected[n]) for n in expected)
    meta = loaded.meta
    assert ((meta["model"], meta["strategy"], meta["scope"], meta["granularity"])
            == (MODEL, "movement", "global", "weight"))
    assert meta["requested_sparsity"] == 0.7 and meta["sparsity"] == pytest.approx(0.7, abs=1e-6)
    assert meta["weights_sha256"]["final.safetensors"] == model.info["sha256"]["final.safetensors"]
    assert run("export", "--model", MODEL, "--sparsity", "0.7", "--format", "torch",
               "--out", str(tmp_path / "m.pt"))[0] == 0
    masks = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(masks) == set(expected) and all(t.dtype == torch.bool for t in masks.values())


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--model", "nope", "--sparsity", "0.5"], "unknown model 'nope'; choose one of:"),
    (["evaluate", "--model", MODEL, "--strategy", "nope", "--sparsity", "0.5"], "unknown strategy 'nope'"),
    (["evaluate", "--model", MODEL, "--sparsity", "1.5"], "sparsity must be in [0, 1]"),
    (["evaluate", "--model", MODEL, "--sparsity", "abc"], "sparsity must be a number"),
    (["evaluate", "--model", MODEL, "--sparsity", "nan"], "sparsity must be in [0, 1]"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--scope", "model"], "invalid choice: 'model'"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--granularity", "3:2"], "malformed N:M"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--weights", "best"], "unknown weights 'best'"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--limit", "-3"], "limit must be positive"),
    (["evaluate", "--model", MODEL], "a sparsity in [0, 1] is required"),
    (["sweep", "--model", MODEL, "--strategies", "large_final,nope"], "unknown strategy 'nope'"),
    (["evaluate", "--bogus"], "one of the arguments --model --model-file is required"),
])
def test_bad_input_one_line_exit_2(argv, message, capsys):
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_unwritable_output_leaves_no_file(tmp_path, capsys):
    target = tmp_path / "missing-dir" / "mask.npz"
    code, _ = run("export", "--model", MODEL, "--sparsity", "0.5", "--out", str(target))
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not target.exists()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import pruning.core.masks

    def boom(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pruning.core.masks.np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        pruning.save_mask(pruning.Mask({"a": np.ones(3, bool)}), tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_real_process_prints_no_traceback():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "pruning", "evaluate", "--model", MODEL, "--sparsity", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "error: sparsity must be in [0, 1], got '2'\n"


def test_sweep_with_a_custom_map_gives_the_default_rows(monkeypatch):
    """``map`` is the executor seam: a thread pool, and a process pool given the zoo name, get the
    same rows as the built-in map (and the CLI's sweep writes those rows)."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    import multiprocessing

    args = (["large_final", "random", "large_init"], [0, 0.5, 0.9], ["final", "init"])
    default = pruning.sweep(MODEL, *args, scope="global", limit=500)
    assert len(default) == 18 and {r["n"] for r in default} == {500}
    calls = []

    def reversed_map(fn, jobs):  # runs the jobs in the opposite order, returns them in order
        jobs = list(jobs)
        calls.append(len(jobs))
        return [fn(j) for j in jobs[::-1]][::-1]

    assert pruning.sweep(MODEL, *args, scope="global", limit=500, map=reversed_map) == default
    assert calls == [14]  # 18 rows, 14 distinct (weights, mask): the six sparsity-0 rows share two
    with ThreadPoolExecutor(2) as pool:
        assert pruning.sweep(MODEL, *args, scope="global", limit=500, map=pool.map) == default
    # a spawned child re-runs __main__; after an AppTest in this process that is the Streamlit page
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pruning.sweep(MODEL, *args, scope="global", limit=500, map=pool.map) == default


def test_compare_json_matches_the_api():
    code, out = run("compare", "--model", MODEL, "--a", "strategy=large_final,sparsity=0.9",
                    "--b", "strategy=movement,scope=global", "--limit", "1000", "--json")
    row = json.loads(out)
    assert code == 0
    model = pruning.load_model(MODEL)
    a = pruning.compute_mask(model, "large_final", 0.9)
    b = pruning.compute_mask(model, "movement", 0.9, scope="global")  # B's sparsity is A's
    assert row["a"]["accuracy"] == pruning.evaluate(model, a, limit=1000).accuracy
    assert row["b"]["accuracy"] == pruning.evaluate(model, b, limit=1000).accuracy
    assert (row["a"]["scope"], row["b"]["scope"], row["b"]["weights"], row["a"]["n"]) == ("layer", "global", "final",
                                                                                         1000)
    expected = pruning.compare_masks(a, b)
    assert row["jaccard"] == expected["jaccard"] and 0 < row["jaccard"] < 1
    assert row["layers"] == expected["layers"]


def test_compare_b_inherits_what_its_own_choice_does_not_fix():
    code, out = run("compare", "--model", MODEL, "--a", "strategy=smallest_weights_global,sparsity=0.8",
                    "--b", "strategy=movement", "--weights", "init", "--limit", "500", "--json")
    row = json.loads(out)
    assert code == 0 and row["b"]["scope"] == "global" and row["b"]["weights"] == "init"  # A's, as used
    assert row["b"]["sparsity"] == pytest.approx(0.8)
    code, out = run("compare", "--model", MODEL, "--a", "scope=global,sparsity=0.9", "--b",
                    "granularity=2:4", "--limit", "500", "--json")
    row = json.loads(out)
    assert code == 0 and row["b"]["granularity"] == "2:4" and row["b"]["sparsity"] == pytest.approx(0.5)
    code, out = run("compare", "--model", MODEL, "--a", "sparsity=0.9", "--b", "strategy=smallest_weights",
                    "--limit", "500", "--json")
    assert code == 0 and json.loads(out)["b"]["scope"] == "layer"  # the alias fixes its own scope


def test_compare_prints_accuracies_and_jaccard_per_layer():
    code, out = run("compare", "--model", MODEL, "--a", "sparsity=0.9", "--b", "strategy=movement", "--limit", "500")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("  A: large_final") and lines[2].startswith("  B: movement")
    assert "Jaccard" in lines[3] and [line.split()[0] for line in lines[5:]] == ["fc1.weight", "fc2.weight",
                                                                                 "fc3.weight"]


@pytest.mark.parametrize("b, message", [
    ("foo=1", "--b: unknown key 'foo'; use strategy, scope, granularity, sparsity, weights"),
    ("strategy=nope", "--b: unknown strategy 'nope'"),
    ("sparsity=2", "--b: sparsity must be in [0, 1]"),
    ("sparsity=nan", "--b: sparsity must be in [0, 1]"),
    ("weights=best", "--b: unknown weights 'best'"),
    ("scope=model", "--b: unknown scope 'model'"),
    ("granularity=3:2", "--b: malformed N:M"),
    ("sparsity", "--b: 'sparsity' is not key=value"),
    ("strategy=random,strategy=movement", "--b: strategy is given twice"),
])
def test_compare_bad_input_one_line_exit_2(b, message, capsys):
    code, _ = run("compare", "--model", MODEL, "--a", "sparsity=0.9", "--b", b)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_compare_needs_a_sparsity_somewhere(capsys):
    code, _ = run("compare", "--model", MODEL, "--b", "sparsity=0.9")
    assert code == 2 and "--a: a sparsity in [0, 1] is required" in capsys.readouterr().err
