"""The command line with files: --model-file/--dataset/--init-file, and evaluate --mask."""

import csv
import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

import pruning
from conftest import run_cli as run

MODEL = "mnist-lenet300-torch"
ZOO = pruning.models.zoo.ZOO / MODEL
FILE = ["--model-file", str(ZOO / "final.safetensors"), "--dataset", "mnist"]
WITH_INIT = [*FILE, "--init-file", str(ZOO / "init.safetensors")]




def test_evaluate_a_model_file_equals_the_zoo_model():
    args = ["--strategy", "movement", "--sparsity", "0.8", "--scope", "global", "--limit", "500", "--json"]
    code, out = run("evaluate", *WITH_INIT, *args)
    mine = json.loads(out)
    zoo = json.loads(run("evaluate", "--model", MODEL, *args)[1])
    assert code == 0 and mine["model"] == "final.safetensors" and mine["warnings"] == []
    assert (mine["accuracy"], mine["sparsity"], mine["layers"]) == (zoo["accuracy"], zoo["sparsity"], zoo["layers"])


def test_sweep_and_export_with_a_model_file(tmp_path):
    code, _ = run("sweep", *FILE, "--strategies", "large_final", "--sparsities", "0,0.9", "--limit", "300",
                  "--out", str(tmp_path / "s.csv"))
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert code == 0 and [r["model"] for r in rows] == ["final.safetensors"] * 2
    assert run("export", *FILE, "--sparsity", "0.5", "--out", str(tmp_path / "m.npz"))[0] == 0
    mask = pruning.load_mask(tmp_path / "m.npz", pruning.load_model(MODEL))
    assert mask.meta["model"] == "final.safetensors" and "final.safetensors" in mask.meta["weights_sha256"]


def test_evaluate_a_saved_mask(tmp_path):
    model = pruning.load_model(MODEL)
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    pruning.save_mask(mask, tmp_path / "m.npz")
    code, out = run("evaluate", "--model", MODEL, "--mask", str(tmp_path / "m.npz"), "--weights", "init",
                    "--limit", "400", "--json")
    row = json.loads(out)
    assert code == 0 and row["strategy"] == "large_final" and row["scope"] == "global"
    assert row["accuracy"] == pruning.evaluate(model, mask, "init", limit=400).accuracy
    bare = pruning.Mask({k: v for k, v in mask.items()})  # no metadata: still evaluated
    pruning.save_mask(bare, tmp_path / "bare.npz")
    code, out = run("evaluate", *FILE, "--mask", str(tmp_path / "bare.npz"), "--limit", "400")
    assert code == 0 and "final.safetensors: mask file (None, None)" in out


def _err(argv, capsys):
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_mismatched_masks_name_every_problem(tmp_path, capsys):
    arrays = {"fc1.weight": np.ones((300, 784), bool), "fc2.weight": np.ones((100, 30), bool),
              "fc9.weight": np.ones(3, bool)}
    pruning.save_mask(pruning.Mask(arrays), tmp_path / "bad.npz")
    err = _err(["evaluate", "--model", MODEL, "--mask", str(tmp_path / "bad.npz")], capsys)
    for part in ("missing `fc3.weight`", "unexpected `fc9.weight`",
                 "`fc2.weight` has shape (100, 30), the model's is (100, 300)"):
        assert part in err
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04junk")
    assert "not a valid .npz mask" in _err(["evaluate", "--model", MODEL, "--mask", str(tmp_path / "junk.npz")], capsys)
    assert "mask file not found" in _err(["evaluate", "--model", MODEL, "--mask", str(tmp_path / "no.npz")], capsys)
    assert "leave out --strategy and --sparsity" in _err(
        ["evaluate", "--model", MODEL, "--mask", str(tmp_path / "bad.npz"), "--sparsity", "0.5"], capsys)


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--model-file", str(ZOO / "final.safetensors"), "--sparsity", "0.5"], "--model-file needs --dataset"),
    (["evaluate", "--model", MODEL, "--dataset", "mnist", "--sparsity", "0.5"],
     "--dataset and --init-file go with --model-file"),
    (["evaluate", "--model", MODEL, *FILE, "--sparsity", "0.5"], "not allowed with argument --model"),
    (["evaluate", *FILE[:2], "--dataset", "svhn", "--sparsity", "0.5"], "unknown dataset 'svhn'"),
    (["evaluate", *FILE[:2], "--dataset", "cifar10", "--sparsity", "0.5"], "cannot run on a cifar10 image"),
    (["evaluate", *FILE, "--strategy", "movement", "--sparsity", "0.5"], "needs the initial weights"),
    (["evaluate", *FILE, "--weights", "init", "--sparsity", "0.5"], "has no initial weights"),
    (["sweep", *FILE, "--weights", "signed-constant", "--sparsities", "0.5"], "has no initial weights"),
    (["sweep", *FILE, "--strategies", "large_final,movement", "--sparsities", "0.5"], "needs the initial weights"),
    (["evaluate", "--model-file", "/nonexistent/m.safetensors", "--dataset", "mnist", "--sparsity", "0.5"],
     "not found"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--seed", "-1"], "seed must not be negative"),
])
def test_bad_input_one_line_exit_2(argv, message, capsys):
    assert message in _err(argv, capsys)


def test_bad_files_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "m.pth").write_bytes(pickle.dumps({"w": [1.0]}))
    assert "is a pickle file" in _err(["evaluate", "--model-file", str(tmp_path / "m.pth"), "--dataset", "mnist",
                                       "--sparsity", "0.5"], capsys)
    data = (ZOO / "final.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 3])
    assert "not a valid .safetensors file" in _err(["export", "--model-file", str(tmp_path / "t.safetensors"),
                                                    "--dataset", "mnist", "--sparsity", "0.5",
                                                    "--out", str(tmp_path / "m.npz")], capsys)
    assert not (tmp_path / "m.npz").exists()
    assert "m.pth is a pickle file" in _err(["evaluate", *FILE, "--init-file", str(tmp_path / "m.pth"),
                                             "--sparsity", "0.5"], capsys)


def test_real_process_refuses_a_pickle_in_one_line(tmp_path):
    (tmp_path / "model.pt").write_bytes(pickle.dumps([1, 2]))
    proc = subprocess.run([sys.executable, "-m", "pruning", "evaluate", "--model-file", str(tmp_path / "model.pt"),
                           "--dataset", "mnist", "--sparsity", "0.5"], capture_output=True, text=True, timeout=120,
                          cwd=ZOO.parent.parent)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: model.pt is a pickle file")


def test_hostile_mask_files_are_clear_errors(tmp_path, monkeypatch, capsys):
    model = pruning.load_model(MODEL)
    shapes = {n: s.shape for n, s in model.specs.items()}
    np.save(tmp_path / "m.npy", np.ones(3, bool))  # not an .npz at all
    with pytest.raises(pruning.PruningError, match="not a valid .npz mask"):
        pruning.core.masks.load(tmp_path / "m.npy", shapes)
    np.savez(tmp_path / "meta.npz", __meta__=np.array("[1, 2]"), **{n: np.ones(s, bool) for n, s in shapes.items()})
    with pytest.raises(pruning.PruningError, match="__meta__ is not a JSON object"):
        pruning.core.masks.load(tmp_path / "meta.npz", shapes)
    mask = pruning.compute_mask(model, "large_final", 0.5)
    pruning.save_mask(mask, tmp_path / "ok.npz")
    with open(tmp_path / "ok.npz", "rb") as f:  # an uploaded file object works too
        assert pruning.core.masks.load(io.BytesIO(f.read()), shapes).meta["strategy"] == "large_final"
    monkeypatch.setattr(pruning.core.masks, "MAX_UNPACKED", 1000)  # a zip bomb: refused before decompressing
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("decompressed"))
    assert "unpacks to more than" in _err(["evaluate", "--model", MODEL, "--mask", str(tmp_path / "ok.npz")], capsys)


def test_output_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    err = _err(["export", *FILE, "--sparsity", "0.5", "--out", str(tmp_path / "out")], capsys)
    assert "cannot write" in err and "Is a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary file left behind


def test_fuzzed_options_exit_0_or_2_with_one_line(capsys):
    """Random option values: never a traceback; exit 0, or exit 2 with exactly one line on stderr."""
    from hypothesis import given, settings, strategies as st

    junk = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
    value = lambda *good: st.one_of(st.sampled_from(good), junk)  # noqa: E731

    @settings(max_examples=60, deadline=None)
    @given(strategy=value("large_final", "movement", "random", "smallest_weights_global"),
           sparsity=value("0", "0.5", "1", "-1", "nan", "1e-9"), scope=value("layer", "global"),
           granularity=value("weight", "unit", "2:4", "0:4", "4:2"), norm=value("1", "2", "3"),
           rate=value("0", "0.5", "1", "2"), seed=value("0", "7", "-3", "1.5"), weights=value("final", "init"),
           limit=value("50", "0", "-5"))
    def check(strategy, sparsity, scope, granularity, norm, rate, seed, weights, limit):
        argv = ["evaluate", "--model", MODEL, "--strategy", strategy, "--sparsity", sparsity, "--scope", scope,
                "--granularity", granularity, "--norm", norm, "--output-rate", rate, "--seed", seed,
                "--weights", weights, "--limit", limit]
        code, _ = run(*argv)
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, err)
        assert code == 0 or (err.count("\n") == 1 and err.startswith("error: ")), (argv, err)

    check()
