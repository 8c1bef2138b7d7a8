"""The Keras adapter on small models built here: nested sub-models, layers without kernels,
every convolution kind, thread safety, and a loaded model that is never mutated."""

from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
from keras import layers

import pruning
from pruning import data
from pruning.core.evaluate import masked_weights
from pruning.models.keras_model import KerasModel, prunable_specs

INFO = {"dataset": "mnist", "architecture": "tiny"}


def nested_model(seed):
    """A Sequential ``head`` inside a functional model, with BatchNorm, pooling and Flatten layers."""
    keras.utils.set_random_seed(seed)
    head = keras.Sequential([layers.Dense(16, activation="relu", name="dense"), layers.Dropout(0.5, name="drop"),
                             layers.Dense(10, name="out")], name="head")
    x = inputs = keras.Input((28, 28), name="pixels")
    x = layers.Reshape((28, 28, 1), name="reshape")(layers.Rescaling(1 / 255, name="scale")(x))
    x = layers.BatchNormalization(name="bn")(layers.Conv2D(4, 3, name="conv")(x))
    x = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(x))  # (n, 13*13*4)
    x = layers.Dense(8, name="dense")(x)  # the same layer name as in the head
    return keras.Model(inputs, head(x), name="nested")


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nested")
    for which, seed in (("init", 0), ("final", 1)):
        net = nested_model(seed)
        bn = net.get_layer("bn")
        bn.moving_mean.assign(np.full(4, 0.1 * seed, np.float32))  # non-trainable state must travel too
        net.save(tmp / f"{which}.keras")
    return KerasModel("nested", INFO, {"init": tmp / "init.keras", "final": tmp / "final.keras"})


def test_specs_walk_nested_models_and_skip_layers_without_kernels(nested):
    assert list(nested.specs) == ["conv/kernel", "dense/kernel", "head/dense/kernel", "head/out/kernel"]
    assert nested.output_name == "head/out/kernel"
    assert [s.canonical_shape for s in nested.specs.values()] == [(4, 1, 3, 3), (8, 676), (16, 8), (10, 16)]
    assert "bn/moving_mean" in nested.states["final"]
    assert nested.states["final"]["bn/moving_mean"][0] == np.float32(0.1)
    assert not nested.weights("final")["conv/kernel"].flags.writeable


def test_engine_logits_equal_keras_predict_and_leave_the_model_untouched(nested):
    x, _ = data.load("mnist", "test")
    mask = pruning.compute_mask(nested, "large_final", 0.6, scope="global")
    prunable = masked_weights(nested, mask, "final")
    before = [v.numpy().copy() for v in nested._keras.variables]
    got = nested.logits(prunable, "final", nested.prepare(x[:300]))  # (300, 10)
    expected = nested.to_keras(prunable).predict(x[:300].astype(np.float32), verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for var, old in zip(nested._keras.variables, before, strict=True):
        np.testing.assert_array_equal(var.numpy(), old)
    result = pruning.evaluate(nested, mask, "init", limit=100)
    assert result.n == 100 and 0 <= result.accuracy <= 1


def test_thread_safe(nested):
    x = nested.prepare(data.load("mnist", "test")[0][:200])
    masks = [pruning.compute_mask(nested, "random", s, seed=round(10 * s)) for s in (0.0, 0.3, 0.6, 0.9)]
    alone = [nested.logits(masked_weights(nested, m), "final", x) for m in masks]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda m: nested.logits(masked_weights(nested, m), "final", x), masks * 3))
    for i, out in enumerate(together):
        np.testing.assert_array_equal(out, alone[i % 4])


def test_every_convolution_kind_has_a_canonical_layout():
    x = inputs = keras.Input((8, 8, 4))
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)  # (n, 8, 8, 8)
    x = layers.SeparableConv2D(6, 3, depth_multiplier=1, name="sep")(x)  # (n, 6, 6, 6)
    x = layers.Conv2DTranspose(5, 3, name="up")(x)  # (n, 8, 8, 5)
    x = layers.Conv2D(6, 3, groups=1, name="c2")(x)
    x = layers.Reshape((36, 6))(x)
    x = layers.Conv1D(7, 3, name="c1")(x)
    y = layers.Conv3D(2, 3, name="c3")(layers.Reshape((8, 8, 4, 1))(inputs))
    x = layers.Concatenate()([layers.Flatten()(x), layers.Flatten()(y)])
    specs = prunable_specs(keras.Model(inputs, layers.Dense(3, name="fc")(x)))
    canonical = {name: spec.canonical_shape for name, spec in specs.items()}
    assert canonical == {
        "dw/kernel": (4, 2, 3, 3),  # (in, multiplier, kh, kw): PyTorch's (in * mult, 1, kh, kw) in C order
        "sep/depthwise_kernel": (8, 1, 3, 3), "sep/pointwise_kernel": (6, 8, 1, 1),
        "up/kernel": (5, 6, 3, 3), "c2/kernel": (6, 5, 3, 3), "c1/kernel": (7, 6, 3),
        "c3/kernel": (2, 1, 3, 3, 3), "fc/kernel": (3, 7 * 34 + 2 * 6 * 6 * 2)}
    for spec in specs.values():
        a = np.arange(spec.size).reshape(spec.shape)
        np.testing.assert_array_equal(spec.to_native(spec.to_canonical(a)), a)


def test_bad_files_raise_one_line_errors(tmp_path):
    bad = tmp_path / "final.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(pruning.PruningError, match="cannot load Keras model"):
        KerasModel("bad", INFO, {"final": bad})
    with pytest.raises(pruning.PruningError, match="no .keras weight files"):
        KerasModel("bad", INFO, {})


def test_export_and_callback_find_nested_kernels(nested, tmp_path):
    from pruning.models.export import save_keras_model
    from pruning.models.keras_callback import MaskCallback

    x, y = data.load("mnist", "test")
    mask = pruning.compute_mask(nested, "large_final", 0.5, scope="layer")
    save_keras_model(nested, mask, tmp_path / "nested.keras")
    net = keras.saving.load_model(tmp_path / "nested.keras", safe_mode=True)
    expected = nested.logits(masked_weights(nested, mask), "final", nested.prepare(x[:100]))
    np.testing.assert_allclose(net.predict(x[:100].astype(np.float32), verbose=0), expected, atol=1e-5)
    net.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x[:64].astype(np.float32), y[:64], batch_size=32, verbose=0, callbacks=[MaskCallback(mask)])
    kernel = net.get_layer("head").get_layer("dense").kernel.numpy()
    assert np.all(kernel[~mask["head/dense/kernel"]] == 0) and np.any(kernel[mask["head/dense/kernel"]] != 0)
