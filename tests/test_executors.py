"""Executors (pruning/experiments/executors.py): a Ray run gives the same rows as the serial run."""

import pytest

import pruning
from pruning.experiments.executors import executor

pytest.importorskip("ray")
MODEL = "mnist-lenet300-torch"


def test_a_ray_run_with_two_workers_gives_the_serial_rows():
    args = (["large_final", "random", "large_final_same_sign"], [0, 0.5, 0.9, 0.99], ["final", "init"])
    serial = pruning.sweep(MODEL, *args, scope="global", limit=1000)
    ray_map = executor(jobs=2)
    try:
        assert pruning.sweep(MODEL, *args, scope="global", limit=1000, map=ray_map) == serial
        import ray

        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray_map.close()


def test_a_trials_pruning_error_comes_back_as_one_line():
    ray_map = executor(jobs=1)
    try:
        with pytest.raises(pruning.PruningError, match="^unknown model 'no-such-model'"):
            ray_map(pruning.load_model, ["no-such-model"])
    finally:
        ray_map.close()


def test_no_jobs_is_the_builtin_map():
    assert executor()(abs, [-1, 2, -3]) == [1, 2, 3]
    with pytest.raises(pruning.PruningError, match="--jobs must be positive"):
        executor(jobs=0)
