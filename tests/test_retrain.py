"""Training in the loop: masks stay applied, IMP and schedules hit their sparsities exactly."""

import os

import numpy as np
import pytest

import pruning
from pruning.training import retrain
from pruning.cli import main
from pruning.core.schedules import ConstantSparsity, Dynamic, PolynomialDecay

needs_data = pytest.mark.skipif(not os.environ.get("PRUNING_DATA_DIR"),
                                reason="needs the MNIST training split: set PRUNING_DATA_DIR")


@pytest.fixture(scope="module")
def model():
    return pruning.load_model("mnist-lenet300-torch")


def test_polynomial_decay_follows_the_documented_formula():
    s = PolynomialDecay(initial=0.5, final=0.8, begin_step=100, end_step=1100, frequency=100)
    assert s(100) == 0.5 and s(1100) == pytest.approx(0.8)
    assert s(600) == pytest.approx(0.8 + (0.5 - 0.8) * 0.5 ** 3)  # half way: 0.7625
    assert s(150) is None and s(99) is None and s(1200) is None  # only on pruning turns, inside the range
    assert ConstantSparsity(0.3, begin_step=10, end_step=30, frequency=10)(20) == 0.3
    assert ConstantSparsity(0.3, begin_step=10, end_step=30, frequency=10)(40) is None


def test_dynamic_prunes_a_fraction_of_the_remaining_weights_at_chosen_points():
    s = Dynamic(total_steps=300, at=(1 / 3, 2 / 3), rate=0.17)
    assert [step for step in range(1, 301) if s(step) is not None] == [100, 200]
    assert s(100) == pytest.approx(0.17) and s(200) == pytest.approx(1 - 0.83 ** 2) == s.final


def test_bad_schedule_and_rewind_are_clear_errors(model):
    with pytest.raises(pruning.PruningError, match="end step"):
        PolynomialDecay(initial=0.1, final=0.5, begin_step=10, end_step=10)
    with pytest.raises(pruning.PruningError, match="final sparsity must be in"):
        PolynomialDecay(initial=0.1, final=1.5, begin_step=0, end_step=10)
    with pytest.raises(pruning.PruningError, match="choose one of: init, early, final, random"):
        retrain.retrain(model, pruning.compute_mask(model, "large_final", 0.5), rewind="yesterday")


@needs_data
@pytest.mark.parametrize("rewind", ["init", "early", "final", "random"])
def test_pruned_weights_stay_exactly_zero_through_training(model, rewind):
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    run = retrain.retrain(model, mask, rewind=rewind, epochs=1, limit=600)
    for name, keep in mask.items():
        assert np.all(run.weights[name][~keep] == 0)
        assert np.count_nonzero(run.weights[name][keep]) == keep.sum()  # the kept ones did train
    assert [h["epoch"] for h in run.history] == [1] and 0 <= run.accuracy <= 1


@needs_data
def test_a_short_retraining_beats_the_untrained_supermask(model):
    mask = pruning.compute_mask(model, "large_final", 0.8)
    untrained = pruning.evaluate(model, mask, weights="init").accuracy
    trained = retrain.retrain(model, mask, rewind="init", epochs=1, limit=3000).accuracy
    assert trained > untrained + 0.2


@needs_data
def test_imp_prunes_exactly_per_round(model):
    rows = retrain.imp(model, rounds=2, rate=0.2, output_rate=0.5, epochs=1, limit=600)
    assert [r["round"] for r in rows] == [0, 1, 2]
    specs = model.specs
    hidden = sum(specs[n].size for n in ("fc1.weight", "fc2.weight"))
    out = specs["fc3.weight"].size
    for r, row in zip((1, 2), rows[1:], strict=True):
        pruned = sum(round((1 - 0.8 ** r) * specs[n].size) for n in ("fc1.weight", "fc2.weight"))
        pruned += round((1 - 0.9 ** r) * out)
        assert row["sparsity"] == pytest.approx(pruned / (hidden + out), abs=1e-12)


@needs_data
def test_gradual_and_dynamic_end_at_their_final_sparsity(model):
    run = retrain.gradual(model, initial=0.5, final=0.8, epochs=1, limit=1200, frequency=5)
    for name, keep in run.mask.items():
        assert keep.size - keep.sum() == round(0.8 * keep.size)
        assert np.all(run.weights[name][~keep] == 0)
    dyn = retrain.dynamic(model, epochs=1, limit=1200)
    assert dyn.mask.sparsity == pytest.approx(1 - 0.83 ** 2, abs=1e-3)
    assert [h["sparsity"] for h in dyn.history] == [pytest.approx(dyn.mask.sparsity)]


@needs_data
def test_retrain_cli_json(capsys):
    code = main(["retrain", "--model", "mnist-lenet300-torch", "--strategy", "large_final", "--sparsity", "0.5",
                 "--rewind", "init", "--epochs", "1", "--limit", "600", "--json"])
    import json

    row = json.loads(capsys.readouterr().out)
    assert code == 0 and 0 <= row["accuracy"] <= 1 and len(row["history"]) == 1
    assert row["history"][0]["accuracy"] == row["accuracy"]


@needs_data
@pytest.mark.parametrize("name", ["supermask", "weight-vs-unit", "lottery-ticket-pruner", "lottery-ticket", "dynamic",
                                  "han"])
def test_reproduce_quick_runs_the_mnist_experiments(name, tmp_path):
    """Every reproduction reports mean ± std over seeds and its protocol differences."""
    out = tmp_path / "r.md"
    assert main(["reproduce", name, "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## ") and "quick mode" in text and "| --- |" not in text and "|---|" in text
    assert " ± " in text and "Protocol differences from the source:" in text and "2 seeds" in text


@needs_data
def test_reproduce_on_ray_gives_the_serial_section(tmp_path):
    """--jobs 2 runs the trials on a Ray instance: the tables are the same as the serial run's."""
    pytest.importorskip("ray")
    serial, parallel = tmp_path / "serial.md", tmp_path / "ray.md"
    assert main(["reproduce", "supermask", "--quick", "--seeds", "2", "--out", str(serial)]) == 0
    assert main(["reproduce", "supermask", "--quick", "--seeds", "2", "--jobs", "2", "--out", str(parallel)]) == 0
    tables = [[line for line in p.read_text().splitlines() if line.startswith("|")] for p in (serial, parallel)]
    assert tables[0] == tables[1] and len(tables[0]) > 20
