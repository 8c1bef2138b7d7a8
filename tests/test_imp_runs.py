"""Precomputed IMP runs (pruning/experiments/imp_runs.py): the early-stopping iteration, the stored
format and its loader, the shipped runs, and the "tickets learn faster" table built from them."""

import os

import numpy as np
import pytest

import pruning
from pruning.errors import PruningError
from pruning.experiments import imp_runs
from pruning.experiments.reproduce import _faster_findings, _faster_rows

needs_data = pytest.mark.skipif(not os.environ.get("PRUNING_DATA_DIR"),
                                reason="needs the MNIST training split: set PRUNING_DATA_DIR")


def _h(*losses, test=None):
    """A hand-made history: validation losses every 100 iterations."""
    return [{"iteration": 100 * (i + 1), "val_loss": v, "val_accuracy": 1 - v,
             "test_accuracy": None if test is None else test[i]} for i, v in enumerate(losses)]


def test_early_stop_is_the_iteration_of_least_validation_loss():
    stop = imp_runs.early_stop(_h(0.5, 0.3, 0.2, 0.25, 0.4, test=[0.8, 0.85, 0.9, 0.95, 0.97]))
    assert stop["iteration"] == 300 and stop["test_accuracy"] == 0.9 and not stop["censored"]
    # the test accuracy plays no part: the best test accuracy (0.97 at 500) is not chosen


def test_early_stop_takes_the_first_of_equal_losses_and_flags_a_minimum_at_the_end():
    assert imp_runs.early_stop(_h(0.5, 0.2, 0.3, 0.2))["iteration"] == 200
    last = imp_runs.early_stop(_h(0.5, 0.4, 0.3))
    assert last["iteration"] == 300 and last["censored"]
    with pytest.raises(PruningError):
        imp_runs.early_stop([])


def _fake_run(seed=0, shift=0):
    """A hand-made IMP run of two tensors over two rounds (the format ``imp_run`` returns)."""
    pruned_in = {"a.weight": np.array([[0, 1, 2], [1, 0, 0]], dtype=np.uint8),  # 6 weights: 2 go in round 1, 1 in 2
                 "b.weight": np.array([0, 2, 0, 0], dtype=np.uint8)}

    def side(iteration, acc):
        history = _h(0.4, 0.2 if iteration == 200 else 0.3, 0.25 if iteration == 200 else 0.1,
                     test=[acc - 0.02, acc, acc + 0.01])
        return {"test_accuracy": history[-1]["test_accuracy"], "early_stop": imp_runs.early_stop(history),
                "history": history}

    rounds = [{"round": 0, "sparsity": 0.0, "layer_sparsity": {"a.weight": 0.0, "b.weight": 0.0},
               "ticket": side(300, 0.90 + shift), "random": None}]
    for r, (ticket_stop, sparsity) in enumerate(((200, 0.2), (200, 0.4)), start=1):
        rounds.append({"round": r, "sparsity": sparsity, "layer_sparsity": {},
                       "ticket": side(ticket_stop, 0.91 + shift), "random": side(300, 0.85 + shift)})
    return {"model": "toy", "seed": seed, "protocol": {"rounds": 2}, "rounds": rounds, "pruned_in_round": pruned_in}


def test_a_run_is_stored_small_and_loaded_as_plain_rounds_with_nested_masks(tmp_path):
    imp_runs.save(_fake_run(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0.json", "seed0.npz"]
    rounds = pruning.load_imp_run("toy", folder=tmp_path)
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[0]["random"] is None
    np.testing.assert_array_equal(rounds[0]["mask"]["a.weight"], np.ones((2, 3), dtype=bool))
    np.testing.assert_array_equal(rounds[1]["mask"]["a.weight"], [[True, False, True], [False, True, True]])
    np.testing.assert_array_equal(rounds[2]["mask"]["a.weight"], [[True, False, False], [False, True, True]])
    np.testing.assert_array_equal(rounds[2]["mask"]["b.weight"], [True, False, True, True])
    assert rounds[1]["ticket"]["history"] == _fake_run()["rounds"][1]["ticket"]["history"]  # records again
    assert rounds[1]["ticket"]["early_stop"]["iteration"] == 200
    assert imp_runs.seeds_stored("toy", tmp_path) == [0]


def test_loading_a_run_that_does_not_exist_is_a_one_line_error(tmp_path):
    with pytest.raises(PruningError, match="no precomputed IMP run"):
        pruning.load_imp_run("no-such-model", folder=tmp_path)


def test_the_learn_faster_table_reads_the_early_stopping_iteration_of_every_run():
    runs = [_fake_run(0), _fake_run(1, shift=0.01)]
    rows = _faster_rows(runs)
    assert rows[0][:3] == [0, "100.0%", "300 ± 0"] and rows[0][4] == "(dense)"
    assert rows[1][2] == "200 ± 0" and rows[1][3] == "0.915 ± 0.007"  # ticket: 0.91 and 0.92 at iteration 200
    assert rows[1][4] == "300 ± 0" and rows[1][6] == 2  # the random runs stop at their last entry: censored
    findings = _faster_findings(runs)
    assert "earliest at 80.0% remaining (iteration 200)" in findings[0][1]
    assert "later than the ticket in 2 of 2 rounds" in findings[3][1]


def test_shipped_runs_match_their_models_and_stay_small():
    """Every shipped run: masks of the model's shapes, nested, at the recorded per-layer sparsity."""
    shipped = imp_runs.available()
    assert "mnist-lenet300-torch" in shipped
    for name in shipped:
        model = pruning.load_model(name)
        folder = imp_runs.directory(name)
        assert sum(p.stat().st_size for p in folder.iterdir()) < 400_000 * len(imp_runs.seeds_stored(name))
        rounds = pruning.load_imp_run(name)
        previous = None
        for row in rounds:
            assert {n: m.shape for n, m in row["mask"].items()} == {n: s.shape for n, s in model.specs.items()}
            assert pruning.report(row["mask"])["sparsity"] == pytest.approx(row["sparsity"])
            for n, m in row["mask"].items():
                assert 1 - m.mean() == pytest.approx(row["layer_sparsity"][n])
                assert previous is None or not (m & ~previous[n]).any()  # a pruned weight stays pruned
            previous = row["mask"]
            stop = row["ticket"]["early_stop"]
            assert stop in [{**h, "censored": stop["censored"]} for h in row["ticket"]["history"]]
        expected = {n: 0.1 if n == model.output_name else 0.2 for n in model.specs}  # the output at half rate
        assert rounds[1]["layer_sparsity"] == pytest.approx(expected, abs=0.01)


TWINS = ["mnist-lenet300-torch", "mnist-lenet300-keras"]  # one model per trainer with train_tracked


@needs_data
@pytest.mark.parametrize("name", TWINS)
def test_a_tiny_imp_run_prunes_each_round_and_records_histories(name):
    run = imp_runs.imp_run(name, rounds=2, iterations=20, eval_every=10, limit=300)
    rounds, (fc1, fc2, fc3) = run["rounds"], pruning.load_model(name).specs
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[2]["layer_sparsity"] == pytest.approx({fc1: 0.36, fc2: 0.36, fc3: 0.19}, abs=1e-3)
    for r in rounds[1:]:
        for side in ("ticket", "random"):
            assert [h["iteration"] for h in r[side]["history"]] == [10, 20]
            assert r[side]["early_stop"]["test_accuracy"] is not None
    assert (run["pruned_in_round"][fc3] == 1).mean() == pytest.approx(0.1, abs=1e-3)


@needs_data
@pytest.mark.parametrize("name", TWINS)
def test_tracked_training_learns_with_the_pruned_weights_held_at_zero(name):
    """The contract of every trainer's ``train_tracked``: pruned weights are exactly zero after
    training, the validation loss falls, the history has an entry every ``eval_every`` steps, the
    test accuracy every ``test_every`` steps and at the early-stopping iteration."""
    from pruning.models.adapter import adapter
    from pruning.training.recipes import RECIPES

    model = pruning.load_model(name)
    rng = np.random.default_rng(0)
    mask = {n: rng.random(s.shape) < 0.5 for n, s in model.specs.items()}
    splits = imp_runs._split(model.dataset, limit=1200)
    weights, history = adapter(model).training().train_tracked(
        model, RECIPES[name], dict(model.states["init"]), mask, iterations=60, eval_every=20, test_every=40,
        seed=0, splits=splits)
    assert all(not w[~mask[n]].any() for n, w in weights.items())
    assert all(w[mask[n]].all() for n, w in weights.items())  # the kept ones did train (none left at 0)
    assert [h["iteration"] for h in history] == [20, 40, 60]
    assert [h["test_accuracy"] is None for h in history] == [True, False, False]
    assert history[-1]["val_loss"] < history[0]["val_loss"] and history[-1]["val_accuracy"] > 0.6
    assert imp_runs.early_stop(history)["test_accuracy"] is not None


def test_the_keras_twins_start_from_their_pytorch_twins_initialisation_for_every_seed():
    from pruning.training import train_keras, train_torch
    from pruning.training.recipes import RECIPES

    keras_state = train_keras.initial_state({**RECIPES["mnist-lenet300-keras"], "seed": 3})
    torch_state = train_torch.initial_state({**RECIPES["mnist-lenet300-torch"], "seed": 3})
    np.testing.assert_array_equal(keras_state["fc2/kernel"], torch_state["fc2.weight"].T)
    np.testing.assert_array_equal(keras_state["fc3/bias"], torch_state["fc3.bias"])
    other = train_torch.initial_state({**RECIPES["mnist-lenet300-torch"], "seed": 4})
    assert not np.array_equal(keras_state["fc2/kernel"], other["fc2.weight"].T)


@pytest.mark.skipif(not (os.environ.get("PRUNING_DATA_DIR") and os.environ.get("PRUNING_SLOW_TESTS")),
                    reason="trains 20 small runs (about 30 s): set PRUNING_DATA_DIR and PRUNING_SLOW_TESTS=1")
def test_imp_rounds_quick_reports_both_models_and_writes_nothing(tmp_path):
    from pruning.cli import main

    before = {p: p.stat().st_mtime_ns for p in imp_runs.ZOO.glob("*/imp/*")}
    out = tmp_path / "imp.md"
    assert main(["reproduce", "imp-rounds", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "quick mode" in text and "**mnist-lenet300-torch** (mean ± std over 2 seed(s))" in text
    assert "Protocol differences from the source:" in text and "random re-init: early-stop iteration" in text
    assert {p: p.stat().st_mtime_ns for p in imp_runs.ZOO.glob("*/imp/*")} == before


def test_get_run_leaves_storing_to_the_caller_on_request_and_resumes_from_what_is_stored(tmp_path, monkeypatch):
    """``store=False``: a trial on a cluster node computes the run and hands it back whole; the driver
    stores it, and the next call finds it (``stored``) instead of computing it again."""
    made = []
    monkeypatch.setattr(imp_runs, "directory", lambda name: tmp_path / name)
    monkeypatch.setattr(imp_runs, "imp_run", lambda name, seed, **kw: made.append(seed) or
                        {**_fake_run(seed), "protocol": {**imp_runs.PROTOCOL, "limit": None}})
    run = imp_runs.get_run("toy", 1, store=False)
    assert run["stored"] is False and made == [1] and not (tmp_path / "toy").exists()
    imp_runs.save(run, masks=True)  # what the driver does
    again = imp_runs.get_run("toy", 1)
    assert again["stored"] is True and made == [1]
    assert again["rounds"] == run["rounds"] and "stored" not in (tmp_path / "toy" / "seed1.json").read_text()


def test_the_tracker_tests_the_weights_of_the_least_validation_loss():
    """training/tracking.py: an entry every eval_every steps, a test every test_every steps, and the
    early-stopping step's test accuracy read on that step's restored weights."""
    from pruning.training.tracking import Tracker

    weights, restored = {"w": 0}, []
    tracker = Tracker(iterations=50, eval_every=10, test_every=40)
    for step, loss in zip(range(10, 51, 10), (0.5, 0.2, 0.3, 0.4, 0.45), strict=True):
        weights["w"] = step
        assert tracker.due(step) and not tracker.due(step - 5)
        tracker.record(step, loss, 1 - loss, lambda: f"test at {weights['w']}", lambda: dict(weights))
    history = tracker.finish(lambda w: (restored.append(w), weights.update(w)), lambda: f"test at {weights['w']}")
    assert [h["test_accuracy"] for h in history] == [None, "test at 20", None, "test at 40", "test at 50"]
    assert restored == [{"w": 20}] and imp_runs.early_stop(history)["iteration"] == 20
