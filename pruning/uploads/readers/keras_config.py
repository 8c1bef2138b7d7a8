"""The budget of a .keras file's ``config.json``, checked before Keras builds anything.

``parse_config`` refuses a config over MAX_CONFIG_BYTES (before parsing), nested deeper than
MAX_DEPTH, or holding Python code (``check_code``: Lambda layers, and ``__lambda__`` objects,
marshalled bytecode that Keras turns into a function wherever a function may be named).
``check_budget`` walks the layers (nested Sequential and Functional models included) and computes
the parameters each would create from its config and its ``build_config`` input shape: a layer
class missing from PARAMETERS and WEIGHTLESS cannot be bounded and is refused, as is a total over
MAX_PARAMS, and a declared shape (an Input's, a layer's input, a Reshape target, a tensor between
layers) with a negative or non-integer dimension or more than MAX_ACTIVATIONS values per example.
"""

import json
import math

from ...errors import PruningError, quote
from .common import json_depth

MAX_CONFIG_BYTES = 2**20
MAX_DEPTH = 64
MAX_PARAMS = 50_000_000
MAX_ACTIVATIONS = 20_000_000  # values per example in any declared shape

MODELS = {"Functional", "Sequential"}
WEIGHTLESS = {
    "InputLayer", "Flatten", "Reshape", "Permute", "Identity", "Masking",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "ActivityRegularization",
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "Rescaling", "UnitNormalization",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
}
SHAPE_KEYS = {"batch_shape", "batch_input_shape", "build_input_shape", "input_shape", "shape", "target_shape"}
LAMBDA_LAYERS = {"Lambda", "TFOpLambda"}
CODE = "Lambda functions are arbitrary Python code, which is refused"


def _refuse(label: str, reason: str) -> PruningError:
    return PruningError(f"{label}: {reason}")


# --- size and depth ----------------------------------------------------------------------------

def parse_config(data: bytes, label: str) -> dict:
    """``config.json``'s bytes -> a JSON object, refusing over MAX_CONFIG_BYTES (unparsed), over
    MAX_DEPTH, or with Python code in it (``check_code``)."""
    if len(data) > MAX_CONFIG_BYTES:
        size, cap = f"{len(data) / 2**20:.1f} MB", f"{MAX_CONFIG_BYTES / 2**20:.0f} MB"
        if size == f"{MAX_CONFIG_BYTES / 2**20:.1f} MB":  # 1 MB + 1 byte: exact counts, not "1.0 MB"
            size, cap = f"{len(data):,} bytes", f"{cap} ({MAX_CONFIG_BYTES:,} bytes)"
        raise _refuse(label, f"config.json is {size}; the limit is {cap}")
    try:
        text = data.decode("utf-8")
        if json_depth(text) > MAX_DEPTH:  # counted before parsing, so a deep config is never parsed
            raise _refuse(label, f"config.json nests deeper than {MAX_DEPTH} levels")
        config = json.loads(text)
    except PruningError:
        raise
    except ValueError as exc:
        raise PruningError(f"cannot read {label}: not a valid .keras file (config.json: {quote(exc, 120)})") from None
    if not isinstance(config, dict):
        raise PruningError(f"cannot read {label}: not a valid .keras file (config.json is not a JSON object)")
    check_code(config, label)
    return config


# --- Python code -------------------------------------------------------------------------------

def check_code(config, label: str) -> None:
    """Refuse Python code anywhere in the config: a Lambda layer (its ``function``, in any format,
    is bytecode or names any function), and any ``__lambda__`` object, which Keras turns into a
    function from marshalled bytecode (``python_utils.func_load``) wherever one may be named (an
    activation, an initializer, a loss...); ``safe_mode`` refuses it too, in words that do not say
    which layer.  A legacy ``function_type: lambda`` entry is refused alike."""
    stack = [(config, "the model", None)]
    while stack:
        item, where, key = stack.pop()
        if isinstance(item, list):
            stack.extend((child, where, key) for child in item)
        elif isinstance(item, dict):
            cls, inner = item.get("class_name"), item.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            if isinstance(name, str):
                where = quote(name)
            if cls in LAMBDA_LAYERS:
                raise PruningError(f"{label} has a Lambda layer ({quote(name)}): {CODE}; rebuild the model "
                                   f"from built-in Keras layers")
            if cls == "__lambda__" or any(item.get(k) == "lambda" for k in ("function_type", "output_shape_type")):
                shown = f"as {quote(key, 40)} of {where}" if key is not None else f"in {where}"
                raise PruningError(f"{label} has a Python lambda {shown}: {CODE}; use built-in Keras layers, "
                                   f"activations and initializers")
            stack.extend((value, where, k) for k, value in item.items())


# --- declared shapes ---------------------------------------------------------------------------

def _check_shape(shape, key: str, label: str, where: str) -> None:
    """A declared shape: None, a list of shapes (several inputs), or a list of non-negative ints
    or None (unknown); the batch dimension first, except in a Reshape's ``target_shape``."""
    if shape is None:
        return
    if isinstance(shape, list) and shape and all(isinstance(s, list) or s is None for s in shape):
        for s in shape:
            _check_shape(s, key, label, where)
        return
    minimum = -1 if key == "target_shape" else 0
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(d is None or (type(d) is int and d >= minimum) for d in shape)):
        raise _refuse(label, f"{where} declares the shape {quote(shape)}; dimensions must be non-negative integers")
    per_example = math.prod(abs(d) for d in (shape if key == "target_shape" else shape[1:]) if d is not None)
    if per_example > MAX_ACTIVATIONS:
        raise _refuse(label, f"{where} declares {per_example:,} values per example (shape {quote(shape)}); "
                             f"the limit is {MAX_ACTIVATIONS:,}")


def check_shapes(config, label: str) -> None:
    """Every shape declared anywhere in the config (under SHAPE_KEYS)."""
    stack = [(config, "the model")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, list):
            stack.extend((child, where) for child in item)
        elif isinstance(item, dict):
            if isinstance(item.get("name"), str):
                where = f"layer {quote(item['name'])}"
            for key, value in item.items():
                if key in SHAPE_KEYS:
                    _check_shape(value, key, label, where)
                else:
                    stack.append((value, where))


# --- parameters --------------------------------------------------------------------------------

def _positive(config: dict, key: str, default=None) -> int:
    value = config.get(key, default)
    if type(value) is not int or value < 1:
        raise ValueError(f"its {key} is {quote(value)}, not a positive integer")
    return value


def _kernel(config: dict) -> int:
    """The number of positions in a kernel (``kernel_size`` an int or a list of ints)."""
    size = config.get("kernel_size")
    sizes = size if isinstance(size, list) else [size]
    if not sizes or not all(type(k) is int and k >= 1 for k in sizes):
        raise ValueError(f"its kernel_size is {quote(size)}")
    return math.prod(sizes)


def _dim(shape: list, axis: int) -> int:
    """A known dimension of a layer's input shape."""
    if type(axis) is not int or not -len(shape) <= axis < len(shape):
        raise ValueError(f"its axis {quote(axis)} is outside its input shape {quote(shape)}")
    d = shape[axis]
    if type(d) is not int:
        raise ValueError(f"its input shape {quote(shape)} leaves axis {axis} unknown")
    return d


def _channels(config: dict, shape: list) -> int:
    return _dim(shape, 1 if config.get("data_format") == "channels_first" else -1)


def _axes(config: dict, shape: list, default=-1) -> int:
    """The product of the input's dimensions along ``axis`` (an int, a list or None: none)."""
    axis = config.get("axis", default)
    axes = [] if axis is None else axis if isinstance(axis, list) else [axis]
    return math.prod(_dim(shape, a) for a in axes)


def _dense(c, s):
    units, n_in, rank = _positive(c, "units"), _dim(s, -1), c.get("lora_rank") or 0
    return n_in * units + units + (rank * (n_in + units) if type(rank) is int and rank > 0 else 0)


def _conv(c, s):
    filters, groups, n_in = _positive(c, "filters"), _positive(c, "groups", 1), _channels(c, s)
    return _kernel(c) * (n_in // groups if n_in % groups == 0 else n_in) * filters + filters


def _conv_transpose(c, s):
    filters = _positive(c, "filters")
    return _kernel(c) * _channels(c, s) * filters + filters


def _depthwise(c, s):
    return (_kernel(c) + 1) * _channels(c, s) * _positive(c, "depth_multiplier", 1)


def _separable(c, s):
    inner, filters = _channels(c, s) * _positive(c, "depth_multiplier", 1), _positive(c, "filters")
    return _kernel(c) * inner + inner * filters + filters


PARAMETERS = {  # class -> (config, input shape) -> an upper bound on the parameters it creates
    "Dense": _dense,
    "Conv1D": _conv, "Conv2D": _conv, "Conv3D": _conv,
    "Conv1DTranspose": _conv_transpose, "Conv2DTranspose": _conv_transpose, "Conv3DTranspose": _conv_transpose,
    "DepthwiseConv1D": _depthwise, "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
    "BatchNormalization": lambda c, s: 4 * _axes(c, s),
    "LayerNormalization": lambda c, s: 2 * _axes(c, s),
    "GroupNormalization": lambda c, s: 2 * _axes(c, s),
    "Normalization": lambda c, s: 2 * _axes(c, s) + 1,
    "PReLU": lambda c, s: math.prod(_dim(s, i) for i in range(1, len(s))),
    "Embedding": lambda c, s: _positive(c, "input_dim") * _positive(c, "output_dim"),
}


def _layers(config: dict):
    """Every layer config that is not itself a model, nested models included."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and item.get("class_name") in MODELS:
            layers = (item.get("config") or {}).get("layers")
            stack.extend(reversed(layers) if isinstance(layers, list) else [])
        else:
            yield item


def count_parameters(config: dict, label: str) -> int:
    """An upper bound on the parameters the config's layers create, or a PruningError."""
    total, unknown = 0, []
    for layer in _layers(config):
        if not isinstance(layer, dict):
            raise PruningError(f"cannot read {label}: not a valid .keras file (a layer is not a JSON object)")
        cls, layer_config = layer.get("class_name"), layer.get("config")
        name = quote(layer_config.get("name") if isinstance(layer_config, dict) else None)
        if cls in WEIGHTLESS:
            continue
        if cls not in PARAMETERS:
            unknown.append(quote(cls, 40))
            continue
        build = layer.get("build_config")
        shape = build.get("input_shape") if isinstance(build, dict) else None
        if not isinstance(layer_config, dict) or not isinstance(shape, list) or not shape:
            raise _refuse(label, f"layer {name} ({cls}) has no input shape (build_config); "
                                 f"save the model after it is built")
        try:
            total += PARAMETERS[cls](layer_config, shape)
        except (ValueError, TypeError) as exc:
            raise _refuse(label, f"layer {name} ({cls}) cannot be sized: {exc}") from None
    if unknown:
        shown = ", ".join(dict.fromkeys(unknown))
        raise _refuse(label, f"uses layers whose size cannot be bounded here ({shown}); accepted: "
                             f"{', '.join(PARAMETERS)}, and layers without weights such as Flatten or MaxPooling2D")
    return total


def check_budget(config: dict, label: str) -> int:
    """Refuse absurd declared shapes and more than MAX_PARAMS parameters; the parameter bound."""
    check_shapes(config, label)
    total = count_parameters(config, label)
    if total > MAX_PARAMS:
        raise _refuse(label, f"the model declares {total:,} parameters; the limit is {MAX_PARAMS:,}")
    return total
