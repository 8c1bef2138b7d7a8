"""`python -m pruning reproduce han`: Han et al. 2015's per-layer densities, reached by nested masks."""

import numpy as np
import pytest

from pruning.experiments.reproduce import HAN_KEPT, _keep_largest


def test_keep_largest_keeps_each_layers_largest_weights_at_its_own_density():
    w = {"a": np.array([[0.1, -0.9, 0.3], [0.5, -0.2, 0.05]]), "b": np.array([1.0, -2.0, 0.5, 0.25])}
    mask = _keep_largest(w, {"a": 0.5, "b": 0.25})
    np.testing.assert_array_equal(mask["a"], [[False, True, True], [True, False, False]])
    np.testing.assert_array_equal(mask["b"], [False, True, False, False])


def test_keep_largest_never_revives_a_pruned_weight():
    w = {"a": np.array([5.0, 4.0, 3.0, 2.0])}
    mask = _keep_largest(w, {"a": 0.5}, within={"a": np.array([False, True, True, True])})
    np.testing.assert_array_equal(mask["a"], [False, True, True, False])  # 5.0 stays pruned


def test_han_densities_are_the_papers_lenet_300_100_table():
    sizes = {"fc1.weight": 784 * 300, "fc2.weight": 300 * 100, "fc3.weight": 100 * 10}
    kept = sum(HAN_KEPT[n] * s for n, s in sizes.items()) / sum(sizes.values())
    assert kept == pytest.approx(0.082, abs=0.001)  # Han et al.: 267K weights -> 22K (92% pruned)
