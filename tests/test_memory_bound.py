"""Bounded caches for a server the whole zoo is visited on: at most MAX_LOADED zoo models stay
loaded (least recently used dropped), and a dropped model is loaded again, equal, when asked."""

import numpy as np

import pruning
from pruning.models import zoo

TORCH = ["mnist-lenet300-torch", "mnist-lenet5-torch", "fmnist-lenet300-torch", "cifar10-conv4-torch"]


def test_lru_of_loaded_models():
    names = [n for n in TORCH if n in zoo.names()]
    assert len(names) > zoo.MAX_LOADED, "needs more zoo models than the bound"
    zoo._load.cache_clear()
    first = pruning.load_model(names[0])
    assert pruning.load_model(names[0]) is first  # held while recently used
    for name in names[1:]:
        pruning.load_model(name)
    assert zoo._load.cache_len() == zoo.MAX_LOADED
    again = pruning.load_model(names[0])  # dropped as least recently used, loaded afresh
    assert again is not first
    assert all(np.array_equal(first.states["final"][k], again.states["final"][k]) for k in first.states["final"])
