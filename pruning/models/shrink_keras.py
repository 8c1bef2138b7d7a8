"""A shrunk Keras zoo model (``shrink.py`` decides what goes): the model rebuilt from its own
config with fewer Dense units and Conv2D filters, then given the kept weights.  The result is an
ordinary ``.keras`` file: ``keras.saving.load_model(path, safe_mode=True)`` loads it, and it takes
the same raw pixels as the zoo model."""

import numpy as np

from ..errors import PruningError
from . import shrink
from .keras_model import keras, load, named_variables


def shrunk_keras(model, mask) -> keras.Model:
    """A new, smaller Keras model that computes what ``model`` computes under ``mask``."""
    if not hasattr(model, "files"):
        raise PruningError("only a zoo Keras model can be shrunk")
    plan = shrink.check(shrink.plan(model, mask), mask)
    kernels, units = shrink.effective(model, mask)
    base = load(model.files["final"])
    config = base.get_config()
    widths = {name.split("/")[-2]: len(plan.rows[name]) for name in model.specs}  # layer -> kept units
    for layer in config["layers"]:
        cfg, name = layer["config"], layer["config"].get("name")
        layer.pop("build_config", None)  # the input widths it records change; rebuilding infers them
        if name in widths:
            key = "units" if layer["class_name"] == "Dense" else "filters"
            if key not in cfg:
                raise PruningError(f"cannot shrink layer {name} of {model.name} ({layer['class_name']})")
            cfg[key] = widths[name]
    small = keras.Model.from_config(config)
    values = dict(model.states["final"])
    values.update(units)
    values.update(shrink.sliced(model, plan, kernels))
    for name, spec in model.specs.items():
        for p in spec.unit_params:
            values[p] = np.asarray(values[p])[plan.rows[name]]
    for name, var in named_variables(small).items():
        var.assign(np.asarray(values[name], dtype=var.dtype))
    return small
