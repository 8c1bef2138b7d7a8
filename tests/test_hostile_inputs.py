"""Hostile input from a public demo's visitors and from scripts: shared links, command-line values and
Python API arguments.  Each is either used or refused with one PruningError line; never a traceback,
never a crashed page, never a file written where it must not be."""

import os
from pathlib import Path
import stat
import subprocess
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning.errors import PruningError

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "streamlit_app.py"
MODEL = "mnist-lenet300-torch"

# --- shared links ---------------------------------------------------------------------------------

# (query, the controls' values afterwards): every unusable value is ignored, the rest still applies
LINKS = [
    ({"sparsity_pct": "1e999"}, {"sparsity_pct": 89.6}),
    ({"sparsity_pct": "-inf"}, {"sparsity_pct": 89.6}),
    ({"sparsity_pct": "nan", "strategy": "movement"}, {"sparsity_pct": 89.6, "strategy": "movement"}),
    ({"sparsity_pct": "9" * 5000}, {"sparsity_pct": 89.6}),
    ({"sparsity_pct": "250"}, {"sparsity_pct": 99.9}),
    ({"sparsity_pct": ["1", "2"]}, {"sparsity_pct": 2.0}),  # repeated keys: the last one
    ({"sparsity_pct": ""}, {"sparsity_pct": 89.6}),
    ({"model": "no-such-model", "sparsity_pct": "50"}, {"sparsity_pct": 50.0}),
    ({"model": "../pretrained/" + MODEL}, {}),
    ({"model": "upload:0123456789abcdef"}, {}),
    ({"model": ""}, {}),
    ({"strategy": "evil\x00\x1b[31m\u202e"}, {"strategy": "large_final"}),
    ({"strategy": "movement" * 1000}, {"strategy": "large_final"}),
    ({"scope": "x" * 100_000, "strategy": "movement"}, {"scope": "layer", "strategy": "movement"}),
    ({"weights": "init\n"}, {"weights": "final"}),
    ({"granularity": "N:M", "nm": "999999999:1000000000"}, {"granularity": "N:M", "nm": "2:4"}),
    ({"granularity": "N:M", "nm": "1" * 5000 + ":" + "2" * 5000}, {"granularity": "N:M", "nm": "2:4"}),
    ({"granularity": "N:M", "nm": "2:4\x00"}, {"granularity": "N:M", "nm": "2:4"}),
    ({"granularity": "N:M", "nm": " 4 : 8 "}, {"granularity": "N:M", "nm": "4:8"}),
    ({"granularity": "unit\r\n"}, {"granularity": "weight"}),
    ({"bn_recalibrate": "1" * 5000, "bn_images": "1e999"}, {}),
    ({"bn_recalibrate": "yes", "bn_images": "-500"}, {}),
]


@pytest.mark.parametrize("query,expected", LINKS, ids=[str(i) for i in range(len(LINKS))])
def test_a_hostile_link_opens_a_working_page(query, expected):
    app = AppTest.from_file(str(APP), default_timeout=180)
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    assert not app.exception, app.exception
    assert app.metric and app.metric[0].label.startswith("Accuracy")
    assert 0.0 <= float(app.metric[0].value.rstrip("%")) <= 100.0
    for key, value in expected.items():
        assert app.session_state[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert app.session_state["model"] in [r["name"] for r in pruning.catalogue()]


# --- command line ---------------------------------------------------------------------------------


def cli(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pruning", *argv], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def assert_refused(proc, message=""):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and message in proc.stderr
    assert proc.stdout == ""


def _targets(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "devlink").symlink_to(os.devnull)
    return {"dir": str(tmp_path / "dir"), "fifo": str(tmp_path / "fifo"), "devnull": os.devnull,
            "devlink": str(tmp_path / "devlink")}


EXPORT = ["export", "--model", MODEL, "--sparsity", "0.5", "--out"]
SWEEP = ["sweep", "--model", MODEL, "--sparsities", "0.5", "--limit", "100", "--out"]


@pytest.mark.parametrize("target", ["dir", "fifo", "devnull", "devlink"])
@pytest.mark.parametrize("command", [EXPORT, SWEEP, ["reproduce", "supermask", "--quick", "--out"]],
                         ids=["export", "sweep", "reproduce"])
def test_out_that_is_not_a_regular_file_is_refused(command, target, tmp_path):
    path = _targets(tmp_path)[target]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_refused(cli(*command, path), "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file left either
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert not any((tmp_path / "dir").iterdir())


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--model", "../pretrained/" + MODEL, "--sparsity", "0.5"], "unknown model"),
    (["evaluate", "--model", "../../x", "--sparsity", "0.5"], "unknown model"),
    (["evaluate", "--model", str(ROOT / "pretrained" / MODEL), "--sparsity", "0.5"], "unknown model"),
    (["retrain", "--model", "/etc", "--sparsity", "0.5"], "unknown model"),
    (["evaluate", "--model", MODEL, "--sparsity", "nan"], "sparsity must be in [0, 1]"),
    (["evaluate", "--model", MODEL, "--sparsity", "1e999"], "sparsity must be in [0, 1]"),
    (["evaluate", "--model", MODEL, "--sparsity=-inf"], "sparsity must be in [0, 1]"),
    (["sweep", "--model", MODEL, "--sparsities", "0.5,inf"], "sparsity must be in [0, 1]"),
    (["sweep", "--model", MODEL, "--sparsities", "0.5,-0.1"], "sparsity must be in [0, 1]"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--limit", "nan"], "limit must be a whole number"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--limit", "inf"], "limit must be a whole number"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--limit", "9" * 30], "limit must be at most"),
    (["sweep", "--model", MODEL, "--limit", "-5"], "limit must be positive"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--seed", "1e999"], "seed must be a whole number"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--seed", "9" * 5000], "seed must be a whole number"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--seed", "9" * 30], "seed must be at most"),
    (["evaluate", "--model", MODEL, "--granularity", "1" * 5000 + ":" + "2" * 5000], "granularity"),
    (["evaluate", "--model", MODEL, "--granularity", "999999999:1000000000"], "granularity"),
    (["evaluate", "--model", MODEL, "--sparsity", "0.5", "--output-rate", "nan"], "output rate"),
    (["retrain", "--model", MODEL, "--sparsity", "0.5", "--epochs", "nan"], "--epochs"),
    (["retrain", "--model", MODEL, "--sparsity", "0.5", "--epochs", "9" * 30], "--epochs"),
    (["retrain", "--model", MODEL, "--sparsity", "0.5", "--seed", "-1"], "--seed"),
    (["retrain", "--model", MODEL, "--sparsity", "0.5", "--limit", "-1"], "--limit"),
    (["imp", "--model", MODEL, "--rounds", "1e999"], "--rounds"),
    (["imp", "--model", MODEL, "--rounds", "2", "--rate", "nan"], "rate must be in [0, 1]"),
    (["imp", "--model", MODEL, "--rounds", "2", "--output-rate", "inf"], "output rate must be in [0, 1]"),
    (["gradual", "--model", MODEL, "--initial", "inf"], "initial sparsity must be in [0, 1]"),
    (["gradual", "--model", MODEL, "--dynamic", "--rate", "-1"], "rate must be in [0, 1]"),
], ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None)
def test_bad_values_one_line_exit_2(argv, message):
    assert_refused(cli(*argv), message)


def test_mask_and_model_files_that_are_not_regular_files_are_refused(tmp_path):
    fifo = _targets(tmp_path)["fifo"]
    assert_refused(cli("evaluate", "--model", MODEL, "--mask", fifo), "cannot read")
    assert_refused(cli("evaluate", "--model-file", fifo, "--dataset", "mnist", "--sparsity", "0.5"), "cannot read")
    assert_refused(cli("evaluate", "--model", MODEL, "--mask", "/dev/zero"), "cannot read")


# --- Python API -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return pruning.load_model(MODEL)


@pytest.fixture(scope="module")
def mask(model):
    return pruning.compute_mask(model, "large_final", 0.5)


nan, inf = float("nan"), float("inf")
API = {
    "sparsity NaN": lambda m, k: pruning.compute_mask(m, "large_final", nan),
    "sparsity inf": lambda m, k: pruning.compute_mask(m, "large_final", inf),
    "sparsity True": lambda m, k: pruning.compute_mask(m, "large_final", True),
    "sparsity a list": lambda m, k: pruning.compute_mask(m, "large_final", [0.5]),
    "sparsity None": lambda m, k: pruning.compute_mask(m, "large_final", None),
    "sparsity a string": lambda m, k: pruning.compute_mask(m, "large_final", "lots"),
    "strategy a list": lambda m, k: pruning.compute_mask(m, ["large_final"], 0.5),
    "strategy a float": lambda m, k: pruning.compute_mask(m, 1.5, 0.5),
    "strategy None": lambda m, k: pruning.compute_mask(m, None, 0.5),
    "scope a list": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, scope=["global"]),
    "scope empty": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, scope=""),
    "granularity None": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, granularity=None),
    "granularity 5000 digits": lambda m, k: pruning.compute_mask(m, granularity="1" * 5000 + ":" + "2" * 5000),
    "norm inf": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, granularity="unit", norm=inf),
    "output_rate NaN": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, output_rate=nan),
    "output_rate True": lambda m, k: pruning.compute_mask(m, "large_final", 0.5, output_rate=True),
    "seed inf": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=inf),
    "seed NaN": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=nan),
    "seed 1.5": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=1.5),
    "seed True": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=True),
    "seed huge": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=10**30),
    "seed negative": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=-1),
    "seed None": lambda m, k: pruning.compute_mask(m, "random", 0.5, seed=None),
    "model None": lambda m, k: pruning.compute_mask(None, "large_final", 0.5),
    "model a name": lambda m, k: pruning.compute_mask(MODEL, "large_final", 0.5),
    "evaluate model None": lambda m, k: pruning.evaluate(None, k),
    "evaluate mask a list": lambda m, k: pruning.evaluate(m, [True, False]),
    "evaluate mask of lists": lambda m, k: pruning.evaluate(m, {n: a.tolist() for n, a in k.items()}),
    "evaluate weights a list": lambda m, k: pruning.evaluate(m, k, weights=["final"]),
    "evaluate weights None": lambda m, k: pruning.evaluate(m, k, weights=None),
    "limit NaN": lambda m, k: pruning.evaluate(m, k, limit=nan),
    "limit inf": lambda m, k: pruning.evaluate(m, k, limit=inf),
    "limit True": lambda m, k: pruning.evaluate(m, k, limit=True),
    "limit a list": lambda m, k: pruning.evaluate(m, k, limit=[100]),
    "limit 2.5": lambda m, k: pruning.evaluate(m, k, limit=2.5),
    "limit 0": lambda m, k: pruning.evaluate(m, k, limit=0),
    "limit huge": lambda m, k: pruning.evaluate(m, k, limit=10**30),
    "masked_weights empty mask": lambda m, k: pruning.masked_weights(m, {}, "final"),
    "masked_weights model a name": lambda m, k: pruning.masked_weights(MODEL, None),
    "masked_weights weights 1.5": lambda m, k: pruning.masked_weights(m, k, 1.5),
    "load_model None": lambda m, k: pruning.load_model(None),
    "load_model a list": lambda m, k: pruning.load_model([MODEL]),
    "load_model a float": lambda m, k: pruning.load_model(1.5),
    "load_model ../": lambda m, k: pruning.load_model("../pretrained/" + MODEL),
    "load_model absolute": lambda m, k: pruning.load_model(str(ROOT / "pretrained" / MODEL)),
    "report None": lambda m, k: pruning.report(None),
    "report a list": lambda m, k: pruning.report([1, 2]),
    "report of lists": lambda m, k: pruning.report({"fc1.weight": [True, False]}),
    "load_mask None": lambda m, k: pruning.load_mask(None),
    "load_mask a number": lambda m, k: pruning.load_mask(3),
    "load_mask model a string": lambda m, k: pruning.load_mask(ROOT / "pretrained" / MODEL / "sweep.csv", "abc"),
    "compare_masks None": lambda m, k: pruning.compare_masks(None, k),
    "compare_masks a list": lambda m, k: pruning.compare_masks(k, [1]),
    "load_file_model None": lambda m, k: pruning.load_file_model(None, "mnist"),
    "load_file_model dataset None": lambda m, k: pruning.load_file_model("x.safetensors", None),
    "load_imp_run None": lambda m, k: pruning.load_imp_run(None),
    "load_imp_run NaN": lambda m, k: pruning.load_imp_run(nan),
    "load_imp_run seed NaN": lambda m, k: pruning.load_imp_run(MODEL, nan),
    "load_imp_run seed a string": lambda m, k: pruning.load_imp_run(MODEL, "../x"),
    "load_upload None": lambda m, k: pruning.load_upload(None, "mnist"),
    "load_upload dataset a list": lambda m, k: pruning.load_upload(b"x", ["mnist"]),
    "sensitivity None": lambda m, k: pruning.sensitivity(None),
    "suggest_budgets None": lambda m, k: pruning.suggest_budgets(None, 0.9),
    "sweep None": lambda m, k: pruning.sweep(None, ["large_final"], [0.5], ["final"]),
    "sweep sparsities NaN": lambda m, k: pruning.sweep(m, ["large_final"], [nan], ["final"], limit=100),
}


@pytest.mark.parametrize("case", list(API))
def test_api_refuses_bad_arguments_with_a_pruning_error(case, model, mask):
    with pytest.raises(PruningError) as err:
        API[case](model, mask)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [[1], {"a": "yes"}, {"a": [True, False]}, {"a": np.array(["x"])}, None])
def test_save_mask_refuses_what_is_not_a_mask_and_writes_nothing(bad, tmp_path):
    with pytest.raises(PruningError, match="a mask must be a dict of name -> boolean numpy array"):
        pruning.save_mask(bad, tmp_path / "mask.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_mask_refuses_a_fifo_and_a_directory(mask, tmp_path):
    fifo = _targets(tmp_path)["fifo"]
    for path in (fifo, tmp_path / "dir", os.devnull, None):
        with pytest.raises(PruningError):
            pruning.save_mask(mask, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devlink", "dir", "fifo"]


def test_good_values_still_work(model):
    assert pruning.compute_mask(model, "random", "0.5", seed="7").meta["seed"] == 7  # the CLI passes strings
    assert pruning.compute_mask(model, "random", np.float32(0.5), seed=np.int64(3)).meta["seed"] == 3
    assert pruning.evaluate(model, limit=100.0).n == 100
    assert pruning.compute_mask(model, granularity=" 2 : 4 ").meta["granularity"] == "2:4"
