"""The model-adapter contract (pruning/models/adapter.py): every adapter gives a ``Model``, and nothing
outside the adapters branches on the framework name."""

from pathlib import Path
import re

import numpy as np
import pytest

import pruning
from pruning.models.adapter import ADAPTERS, Model, adapter

ROOT = Path(pruning.__file__).resolve().parent.parent
# The adapters (and the format-specific readers of uploaded files) may know their framework.
ADAPTER_FILES = {"adapter.py", "torch_model.py", "keras_model.py", "pt2_model.py", "train_torch.py", "train_keras.py",
                 "torch_nets.py", "keras_nets.py", "keras_callback.py", "torch_fast.py",
                 "keras_fast.py"}
BRANCH = re.compile(r"""framework["']?\]?\s*[!=]=|[!=]=\s*["'](torch|keras)["']|framework\s+(not\s+)?in\s+[(\[{]""")


def test_no_framework_branching_outside_the_adapters():
    offenders = []
    for path in sorted([*(ROOT / "pruning").rglob("*.py"), *(ROOT / "app").rglob("*.py")]):
        if path.name in ADAPTER_FILES or "readers" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "framework branching outside the adapters:\n" + "\n".join(offenders)


def test_the_pattern_catches_a_branch():
    assert BRANCH.search('if model.framework == "torch":') and BRANCH.search("if meta['framework'] != x:")
    assert not BRANCH.search('framework = adapter(model).framework')


@pytest.mark.parametrize("name", ["mnist-lenet300-torch", "mnist-lenet300-keras"])
def test_every_adapter_gives_a_model(name):
    model = pruning.load_model(name)
    assert isinstance(model, Model)
    how = adapter(model)
    assert how is ADAPTERS[model.framework] and model.framework in ADAPTERS
    for which, state in model.states.items():
        weights = model.weights(which)
        assert list(weights) == list(model.specs)
        for spec in model.specs.values():
            assert weights[spec.name].shape == spec.shape
            assert all(state[p].shape == (spec.canonical_shape[0],) for p in spec.unit_params)
    x = model.prepare(pruning.data.load(model.dataset, "test")[0][:7])
    logits = model.logits(model.weights("final"), "final", x)
    assert logits.shape == (7, 10) and np.isfinite(logits).all()
    assert how.training().untrainable(model) is None


def test_an_unknown_framework_names_the_choices():
    with pytest.raises(pruning.PruningError, match="choose one of: torch, keras"):
        adapter("jax")
