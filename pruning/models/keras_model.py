"""The Keras adapter (Keras 3, TensorFlow backend): a zoo model's θ0 and θf, and a forward pass
with any weights.

The loaded network is never mutated: each call passes its weights to ``model.stateless_call``
inside one compiled ``tf.function``, so one loaded model can serve many threads at once.

Tensor names.  A variable is named by its Keras path, ``layer/variable`` (``fc1/kernel``), with
the names of the sub-models that contain it in front (``block/dense/kernel`` for a Sequential
``block`` inside a functional model).  This is the path Keras gives a freshly built model; a
reloaded one forgets the sub-model part, so names are rebuilt by walking the layers.

Prunable kernels and their canonical layout (out, in, *spatial), as ``TensorSpec.canonical``:
  Dense                 kernel (in, out)                    -> (1, 0)
  ConvND                kernel (*k, in / groups, out)       -> (N+1, N, *range(N))  e.g. (3, 2, 0, 1)
  ConvNDTranspose       kernel (*k, out, in)                -> (N, N+1, *range(N))
  DepthwiseConvND       kernel (*k, in, multiplier)         -> (N, N+1, *range(N)): (in, mult, *k), the
                        C-order layout of PyTorch's (in * mult, 1, *k), so a "unit" is an input channel's
                        filters and N:M works along the multiplier axis
  SeparableConvND       depthwise_kernel as DepthwiseConvND, pointwise_kernel (*1, in * mult, out) as ConvND
Biases, normalisation and every other variable are not pruned.
"""

import os
import threading
import zipfile

import numpy as np

from ..errors import PruningError, quote
from ..fileio import silenced_stderr
from ..core.selection import TensorSpec


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with silenced_stderr():  # TensorFlow's C++ start-up chatter
    import keras
    import tensorflow as tf

    DEVICE = "/GPU:0" if tf.config.list_physical_devices("GPU") else "cpu"

L = keras.layers
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_TRANSPOSE = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)


def device() -> str:
    return DEVICE


def load(path) -> keras.Model:
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise PruningError(f"cannot load Keras model {path}: {quote(first, 200)}") from None


def _walk(model, prefix=""):
    """(name prefix, layer) for every layer that is not itself a model, nested models included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer, f"{prefix}{layer.name}/")
        else:
            yield prefix, layer


def _path(prefix: str, layer, var) -> str:
    """``prefix`` + the variable's path from its layer on; a helper object's variable (a Dropout's
    ``seed_generator_7/seed_generator_state``, auto-numbered per process) becomes ``drop/seed_generator_state``."""
    parts = var.path.split("/")
    owner = [i for i, p in enumerate(parts[:-1]) if p == layer.name]
    return prefix + "/".join(parts[owner[-1]:] if owner else [layer.name, parts[-1]])


def named_variables(model) -> dict:
    """name -> variable, for every variable of ``model`` (see the module docstring for names)."""
    named, seen = {}, set()
    pairs = [(_path(prefix, layer, v), v) for prefix, layer in _walk(model) for v in layer.variables]
    walked = {id(v) for _, v in pairs}
    pairs += [(v.path, v) for v in model.variables if id(v) not in walked]  # owned by a model itself
    for name, var in pairs:
        if id(var) in seen:
            continue  # a layer shared by two sub-models
        if name in named:
            raise PruningError(f"two variables of model {quote(model.name)} are both named {quote(name)}; "
                               "rename a layer")
        named[name], _ = var, seen.add(id(var))
    return named


def kernel_axes(layer, var) -> tuple | None:
    """Canonical axes of ``var`` if it is a prunable kernel of ``layer``, else None."""
    n = len(var.shape) - 2  # spatial dimensions of a convolution kernel
    conv, flipped = (n + 1, n, *range(n)), (n, n + 1, *range(n))
    if isinstance(layer, L.Dense) and var.name == "kernel":
        return (1, 0)
    if isinstance(layer, _SEPARABLE):
        return {"depthwise_kernel": flipped, "pointwise_kernel": conv}.get(var.name)
    if isinstance(layer, _DEPTHWISE + _TRANSPOSE) and var.name == "kernel":
        return flipped
    if isinstance(layer, _CONV) and var.name == "kernel":
        return conv
    return None


def _unit_params(prefix, layer, after) -> tuple:
    """A Dense or Conv kernel's per-unit tensors: its bias, and the scale and shift of a
    BatchNormalization that comes right after it."""
    if not isinstance(layer, (L.Dense, *_CONV)) or isinstance(layer, _SEPARABLE + _DEPTHWISE + _TRANSPOSE):
        return ()
    params = [_path(prefix, layer, v) for v in layer.variables if v.name == "bias"]
    if isinstance(after, L.BatchNormalization):
        params += [_path(prefix, after, v) for v in after.variables if v.name in ("gamma", "beta")]
    return tuple(params)


def prunable_specs(model) -> dict:
    """name -> TensorSpec of every prunable kernel, in layer order (the last is the output layer)."""
    specs, layers = {}, list(_walk(model))
    for i, (prefix, layer) in enumerate(layers):
        after = layers[i + 1][1] if i + 1 < len(layers) else None
        for var in layer.variables:
            axes = kernel_axes(layer, var)
            if axes is not None:
                name = _path(prefix, layer, var)
                specs[name] = TensorSpec(name, tuple(var.shape), axes, _unit_params(prefix, layer, after))
    return specs


def to_input(x: np.ndarray, input_shape: tuple) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, c) -> float32 pixel values shaped (n, *input_shape)."""
    x = np.asarray(x)
    if None in input_shape:  # a variable-size input: at most add the channel axis
        x = x[..., None] if x.ndim == len(input_shape) else x
        input_shape = tuple(d if d is not None else x.shape[i + 1] for i, d in enumerate(input_shape))
    try:
        return x.astype(np.float32).reshape((len(x), *input_shape))
    except ValueError:
        raise PruningError(f"images of shape {x.shape[1:]} do not fit the model's input {input_shape}") from None


class KerasModel:
    framework = "keras"

    def __init__(self, name: str, info: dict, files: dict):
        """``files`` maps weight-set name ("init", "final", maybe "early") to a .keras path."""
        if not files:
            raise PruningError(f"model {name!r} has no .keras weight files")
        self.name, self.info, self.dataset = name, info, info["dataset"]
        self.device, self.files = device(), dict(files)
        self.states, self._keras = {}, None
        with tf.device(self.device):
            for which, path in files.items():
                model = load(path)
                variables = named_variables(model)
                if self._keras is None:
                    self._keras, self._variables = model, variables
                elif [(k, v.shape) for k, v in variables.items()] != [(k, v.shape) for k, v in self._variables.items()]:
                    raise PruningError(f"{path} does not have the variables of {self.files[next(iter(files))]}")
                state = {k: np.array(v.numpy()) for k, v in variables.items()}
                for arr in state.values():
                    arr.setflags(write=False)
                self.states[which] = state
            self._tensors = {which: {k: tf.constant(v) for k, v in s.items()} for which, s in self.states.items()}
        self.specs = prunable_specs(self._keras)
        self.output_name = list(self.specs)[-1] if self.specs else None
        names = {id(v): k for k, v in self._variables.items()}
        self._trainable = [names[id(v)] for v in self._keras.trainable_variables]
        self._fixed = [names[id(v)] for v in self._keras.non_trainable_variables]
        self.input_shape = tuple(self._keras.inputs[0].shape[1:])
        self.batch_size = 10000 if info.get("architecture") == "lenet300" else 1000
        self._forward, self._lock = None, threading.Lock()

    def weights(self, which: str = "final") -> dict:
        """The prunable tensors of one weight set, name -> numpy array (read-only)."""
        return {name: self.states[which][name] for name in self.specs}

    def prepare(self, x: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return tf.constant(to_input(x, self.input_shape))

    def _function(self):
        """The forward pass, traced once: (trainable values, non-trainable values, x) -> logits."""
        with self._lock:
            if self._forward is None:
                model, v = self._keras, self._variables

                def forward(trainable, fixed, x):
                    return model.stateless_call(trainable, fixed, x, training=False)[0]

                spec = [[tf.TensorSpec(v[k].shape, v[k].dtype) for k in names]
                        for names in (self._trainable, self._fixed)]
                spec.append(tf.TensorSpec((None, *self.input_shape), tf.float32))
                self._forward = tf.function(forward, input_signature=spec)
            return self._forward

    def logits(self, prunable: dict, base: str, x) -> np.ndarray:
        """Logits (n, classes) with ``prunable`` replacing the kernels of weight set ``base``."""
        forward = self._function()
        with tf.device(self.device):
            values = dict(self._tensors[base])
            values.update({k: tf.constant(np.asarray(w, dtype=self.states[base][k].dtype))
                           for k, w in prunable.items()})
            trainable, fixed = [values[k] for k in self._trainable], [values[k] for k in self._fixed]
            out = [forward(trainable, fixed, x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in out])

    def to_keras(self, prunable: dict | None = None, base: str = "final") -> keras.Model:
        """A new Keras model (loaded from the ``base`` file) with ``prunable`` kernels set."""
        model = load(self.files[base])
        for name, var in named_variables(model).items():
            var.assign(prunable[name] if prunable and name in prunable else self.states[base][name])
        return model


def accelerator() -> str | None:
    """The GPU TensorFlow computes on (``Adapter.hardware``), or None."""
    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else None
