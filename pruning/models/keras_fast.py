"""A quicker evaluation of the Keras MLP (LeNet-300-100 of keras_nets.py): the adapter's optional
fast evaluation (``Adapter.fast``), the same predictions as ``pruning.evaluate``.

    keras_fast.evaluate(model, mask, weights, limit)   # an Evaluation

The model's own layers normalise and flatten the evaluation images once per image set (cached);
the pruned Dense chain is rewritten by ``fast_chain.rewrite`` (pixels that are the same on every
image folded into the first bias, dead units removed, unread inputs dropped) and multiplied with
TensorFlow, eagerly: each layer one matmul, with no traced function to call per batch.
Activations are kept transposed, (features, images), as in torch_fast: selecting the features read
is then a copy of whole rows (1.4 ms for MNIST's test set; 25 ms for columns).  On the
MNIST test set 116 of the 784 pixels are the same (0) on every image; 184 on the explorer's
1,000-image control subset.
"""

import numpy as np
import tensorflow as tf

from .. import memo
from ..core.evaluate import Evaluation, inputs, masked_weights
from . import fast_chain

TAIL = ("fc1", "fc2", "fc3")  # keras_nets.lenet300: normalize -> flatten -> Dense relu, relu, linear
ACTIVATIONS = ("relu", "relu", "linear")


def supported(model) -> bool:
    """Zoo LeNet-300-100 Keras models on the CPU (uploads run in a worker and are not KerasModels)."""
    from .keras_model import KerasModel

    if not (isinstance(model, KerasModel) and model.info.get("architecture") == "lenet300" and model.device == "cpu"):
        return False
    names = [layer.name for layer in model._keras.layers]
    return names == ["pixels", "normalize", "flatten", *TAIL] and all(
        model._keras.get_layer(n).activation.__name__ == a for n, a in zip(TAIL, ACTIVATIONS, strict=True))


def quicker(model) -> bool:
    """Whether ``evaluate`` here costs less than ``pruning.evaluate``: for LeNet-300-100 on the
    MNIST test set 0.7-0.8x of its CPU at 50-90% pruned, less where units die (docs/performance.md)."""
    return supported(model)


@memo.lru(maxsize=4)
def _prepared(model, limit):
    """((varying pixels, n) tensor, ``fast_chain.varying`` of the pixels): the evaluation images
    normalised and flattened by the model's own layers, without the pixels that are the same on
    every image.  The page asks for two limits per model (the headline's split, the controls')."""
    net = model._keras
    with tf.device(model.device):
        x = net.get_layer("flatten")(net.get_layer("normalize")(inputs(model, limit)[0])).numpy()  # (n, 784)
        constants = fast_chain.varying(x)
        return tf.constant(np.ascontiguousarray(x[:, np.isnan(constants)].T)), constants


def logits(model, mask: dict | None, weights: str = "final", limit: int | None = None) -> np.ndarray | None:
    """Logits (n, 10) of the evaluation images of ``limit``; None if unsupported or if any weight
    or bias is NaN or infinite (the plain evaluation handles those)."""
    if not supported(model):
        return None
    prunable = masked_weights(model, mask, weights)  # kernels, and biases a unit mask zeroes
    arrays = {**model.states["final" if weights == "final" else "init"], **prunable}
    kernels = [np.asarray(arrays[f"{n}/kernel"]).T for n in TAIL]  # (out, in)
    biases = [arrays[f"{n}/bias"] for n in TAIL]
    if not all(np.isfinite(a).all() for a in kernels + biases):
        return None
    x, constants = _prepared(model, limit)
    chain = fast_chain.rewrite(kernels, biases, constants)
    with tf.device(model.device):
        h = x if chain.features is None else tf.gather(x, chain.features)  # (features, n)
        for i, (w, b) in enumerate(zip(chain.kernels, chain.biases, strict=True)):
            h = tf.matmul(w, h) + b[:, None]  # (out, n)
            if i < len(chain.kernels) - 1:
                h = tf.nn.relu(h)
        return h.numpy().T


def evaluate(model, mask: dict | None = None, weights: str = "final", limit: int | None = None) -> Evaluation:
    """``pruning.evaluate`` through the rewritten chain (the plain evaluation where there is none)."""
    return fast_chain.evaluation(logits, model, mask, weights, limit)
