"""Keras architectures of the zoo (Keras 3).  Inputs are raw pixel values, float32 in [0, 255],
channels last; each network normalises its own input with a ``Rescaling`` layer built from its
model.json preprocessing, so a saved .keras file is self-contained and loads with
``keras.saving.load_model(path, safe_mode=True)`` (no Lambda layers, no custom objects).

Layer names follow the PyTorch twins (``fc1`` <-> ``fc1.weight``), and Conv-4 flattens in
channels-first order (``Permute``), so a twin is a pure layout change: a Dense kernel is the
transposed ``nn.Linear`` weight, a Conv2D kernel the ``nn.Conv2d`` weight permuted (2, 3, 1, 0).
"""

from . import keras_model  # noqa: F401  (imports TensorFlow quietly)

import keras  # noqa: E402
from keras import layers  # noqa: E402


def normalize(preprocessing: dict, channels: int) -> layers.Rescaling:
    """x -> (x * scale - mean) / std, as one Rescaling layer (x * a + b)."""
    mean, std, scale = preprocessing["mean"], preprocessing["std"], preprocessing["scale"]
    a = [scale / s for s in std]
    b = [-m / s for m, s in zip(mean, std, strict=True)]
    if channels == 1:
        a, b = a[0], b[0]
    return layers.Rescaling(a, b, name="normalize")


def lenet300(preprocessing: dict, init="glorot_uniform") -> keras.Model:
    """LeNet-300-100 (Frankle & Carbin 2019): 784-300-100-10, ReLU; input (n, 28, 28)."""
    x = inputs = keras.Input((28, 28), name="pixels")
    x = layers.Flatten(name="flatten")(normalize(preprocessing, 1)(x))  # (n, 784)
    x = layers.Dense(300, "relu", kernel_initializer=init, name="fc1")(x)
    x = layers.Dense(100, "relu", kernel_initializer=init, name="fc2")(x)
    return keras.Model(inputs, layers.Dense(10, kernel_initializer=init, name="fc3")(x), name="lenet300")


def tfmot_conv(preprocessing: dict, init="glorot_uniform") -> keras.Model:
    """The TF Model Optimization pruning tutorial's MNIST net; input (n, 28, 28)."""
    x = inputs = keras.Input((28, 28), name="pixels")
    x = layers.Reshape((28, 28, 1), name="reshape")(normalize(preprocessing, 1)(x))
    x = layers.Conv2D(12, 3, activation="relu", kernel_initializer=init, name="conv")(x)  # (n, 26, 26, 12)
    x = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(x))  # (n, 13*13*12)
    return keras.Model(inputs, layers.Dense(10, kernel_initializer=init, name="fc")(x), name="tfmot_conv")


def conv4(preprocessing: dict, init="glorot_uniform") -> keras.Model:
    """Conv-4 of Frankle & Carbin 2019: 64,64,pool,128,128,pool, FC 256,256,10; input (n, 32, 32, 3)."""
    x = inputs = keras.Input((32, 32, 3), name="pixels")
    x = normalize(preprocessing, 3)(x)
    for i, filters in enumerate((64, 64, 128, 128), 1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init, name=f"conv{i}")(x)
        if i % 2 == 0:
            x = layers.MaxPooling2D(2, name=f"pool{i // 2}")(x)  # (n, 16, 16, 64), then (n, 8, 8, 128)
    x = layers.Permute((3, 1, 2), name="to_chw")(x)  # (n, 128, 8, 8): flatten like PyTorch
    x = layers.Flatten(name="flatten")(x)  # (n, 128*8*8)
    x = layers.Dense(256, "relu", kernel_initializer=init, name="fc1")(x)
    x = layers.Dense(256, "relu", kernel_initializer=init, name="fc2")(x)
    return keras.Model(inputs, layers.Dense(10, kernel_initializer=init, name="fc3")(x), name="conv4")


ARCHITECTURES = {"lenet300": lenet300, "tfmot_conv": tfmot_conv, "conv4": conv4}


def build(info: dict, init="glorot_uniform") -> keras.Model:
    """An untrained model of the architecture described in a model.json or recipe."""
    return ARCHITECTURES[info["architecture"]](info["preprocessing"], init)
