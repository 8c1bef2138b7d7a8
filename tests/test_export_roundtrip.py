"""Every zoo model in every export format it offers: the written file reads back to what was
exported.  The masked formats are checked here (npz: the same mask; torch: the same tensors; keras:
the engine's predictions on real test images); the shrunk and ONNX formats, whose checks need
onnxruntime and per-architecture care, in test_export_shrink.py and test_export_onnx.py."""

import numpy as np
import pytest

import pruning
from pruning import data
from pruning.models import export, zoo

CHECKED_ELSEWHERE = {"shrunk-safetensors", "shrunk-keras", "onnx", "shrunk-onnx"}


@pytest.mark.parametrize("name", zoo.names())
def test_every_offered_format_round_trips(name, tmp_path):
    model = zoo.load_model(name)
    mask = pruning.compute_mask(model, "large_final", 0.5, scope="layer", granularity="unit")
    offered = export.offered(model)
    assert {"npz", "onnx", "shrunk-onnx", export.SHRUNK[model.framework]} <= set(offered)
    for fmt in (f for f in offered if f not in CHECKED_ELSEWHERE):
        path = tmp_path / f"model{export.SUFFIXES[fmt]}"
        export.FORMATS.get(fmt)(model, mask, path)
        assert path.stat().st_size > 0, fmt
        if fmt == "npz":
            back = pruning.load_mask(path, model)
            assert all(np.array_equal(back[k], mask[k]) for k in mask)
        elif fmt == "torch":
            import torch

            back = torch.load(path, weights_only=True)
            assert all(np.array_equal(back[k].numpy(), mask[k]) for k in mask)
        elif fmt == "keras":
            import keras

            try:
                x, _ = data.load(model.dataset)
            except data.DatasetUnavailable:
                continue  # CIFAR-10 without PRUNING_DATA_DIR: written, not compared
            x = x[:300]
            net = keras.saving.load_model(str(path), safe_mode=True, compile=False)
            ref = model.logits(pruning.masked_weights(model, mask), "final", model.prepare(x))
            out = np.asarray(net(model.prepare(x)))
            assert (out.argmax(1) == ref.argmax(1)).all() and np.abs(out - ref).max() <= 1e-4
        else:
            raise AssertionError(f"format {fmt} has no round-trip check")
