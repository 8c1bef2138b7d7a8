"""Fine-tune a pruned Keras model with ``model.fit``: ``MaskCallback`` keeps pruned weights at zero.

    mask = pruning.load_mask("mask.npz")            # or pruning.compute_mask(...)
    model.fit(x, y, callbacks=[MaskCallback(mask)])

Like lottery-ticket-pruner's ``PrunerCallback``: the mask is applied when training starts and
again after every training batch, so an optimizer step never revives a pruned weight.  Mask names
are the engine's Keras tensor names (``fc1/kernel``; ``block/dense/kernel`` inside a sub-model).
"""

import numpy as np

from ..errors import PruningError
from .keras_model import keras, named_variables


class MaskCallback(keras.callbacks.Callback):
    def __init__(self, mask: dict):
        super().__init__()
        self.mask = {name: np.asarray(keep, dtype=bool) for name, keep in mask.items()}
        self._pairs, self._bound = None, None  # [(variable, float mask of its shape and dtype)], model

    def apply(self, model=None) -> None:
        """Zero the pruned weights of ``model`` (default: the model being trained)."""
        model = model or self.model
        if self._pairs is None or model is not self._bound:
            self._pairs, self._bound = self._bind(model), model
        for var, keep in self._pairs:
            var.assign(var * keep)

    def _bind(self, model):
        variables = named_variables(model)
        problems = [f"{n} (not in the model)" for n in self.mask if n not in variables]
        problems += [f"{n} has shape {tuple(variables[n].shape)}, the mask {k.shape}"
                     for n, k in self.mask.items() if n in variables and tuple(variables[n].shape) != k.shape]
        if problems:
            raise PruningError("mask does not match the model: " + "; ".join(problems))
        return [(variables[n], keras.ops.convert_to_tensor(k, dtype=variables[n].dtype)) for n, k in self.mask.items()]

    def on_train_begin(self, logs=None):
        self.apply()

    def on_train_batch_end(self, batch, logs=None):
        self.apply()
