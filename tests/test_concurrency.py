"""Many users at once: 8 threads evaluating different settings on one shared loaded model get
exactly what running the same settings one after another gives."""

from concurrent.futures import ThreadPoolExecutor
import threading

import numpy as np
import pytest

import pruning
from pruning.models import zoo

SETTINGS = [  # (strategy, sparsity, weights, scope, granularity)
    ("large_final", 0.9, "final", "global", "weight"),
    ("movement", 0.8, "init", "layer", "weight"),
    ("random", 0.5, "final", "layer", "weight"),
    ("large_final_same_sign", 0.7, "signed-constant", "global", "weight"),
    ("magnitude_increase", 0.6, "final", "global", "unit"),
    ("small_final", 0.3, "final", "layer", "weight"),
    ("large_final", None, "final", "layer", "2:4"),
    ("large_init", 0.95, "init", "global", "weight"),
]


def run(model, setting):
    strategy, sparsity, weights, scope, granularity = setting
    mask = pruning.compute_mask(model, strategy, sparsity, scope=scope, granularity=granularity)
    result = pruning.evaluate(model, mask, weights=weights, limit=1000)
    return mask, result


def uploaded_pt2(directory):
    """mnist-lenet300-torch's θ0 and θf as two torch.export programs (a bring-your-own model)."""
    import torch

    from pruning.models.torch_model import build

    zoo_model = pruning.load_model("mnist-lenet300-torch")
    paths = {}
    for which in ("final", "init"):
        module = build(zoo_model.info).eval()
        module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in zoo_model.states[which].items()})
        program = torch.export.export(module, (torch.rand(2, 1, 28, 28),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, str(directory / f"{which}.pt2"))
        paths[which] = directory / f"{which}.pt2"
    return pruning.load_file_model(paths["final"], "mnist", paths["init"])


@pytest.mark.parametrize("name", ["mnist-lenet300-torch", "mnist-lenet300-keras", "uploaded .pt2"])
def test_eight_threads_equal_one_after_another(name, tmp_path):
    if name == "uploaded .pt2":
        model = uploaded_pt2(tmp_path)
    elif name not in zoo.names():
        pytest.skip(f"{name} is not in the zoo")
    else:
        model = pruning.load_model(name)
    before = {k: v.copy() for k, v in model.states["final"].items()}
    expected = [run(model, s) for s in SETTINGS]
    pruning.core.prune.ranking.cache_clear()  # the threads also race to fill the shared caches
    barrier = threading.Barrier(len(SETTINGS))

    def job(setting):
        barrier.wait()
        return run(model, setting)

    with ThreadPoolExecutor(len(SETTINGS)) as pool:
        got = list(pool.map(job, SETTINGS))
    for setting, (mask, result), (mask2, result2) in zip(SETTINGS, expected, got, strict=True):
        assert all(np.array_equal(mask[n], mask2[n]) for n in mask), setting
        assert result.accuracy == result2.accuracy, setting
        assert np.array_equal(result.predictions, result2.predictions), setting
    assert all(np.array_equal(before[k], model.states["final"][k]) for k in before)  # nothing was mutated
    if name == "uploaded .pt2":  # the same network as the zoo model, evaluated through torch.export
        twin = pruning.load_model("mnist-lenet300-torch")
        assert [r.accuracy for _, r in expected] == [run(twin, s)[1].accuracy for s in SETTINGS]
