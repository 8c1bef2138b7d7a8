""".keras: a Keras 3 model, loaded with ``safe_mode=True`` from an archive rebuilt from vetted members.

Before Keras sees anything: the visitor's zip is vetted (archive.py) and may hold only
``config.json``, ``metadata.json``, ``model.weights.h5`` and ``assets/...``; the config is capped in
size and depth, Lambda layers and objects from outside Keras are refused, and the parameters its
layers would create are bounded (keras_config.py); the weights file may hold only plain datasets
(no links to other files, external or virtual datasets) declaring at most MAX_UNPACKED bytes.
Keras then reads a fresh archive written from those members into a private directory, and after
loading, every layer's output must stay under MAX_ACTIVATIONS values per example.
"""

import io
import math
import os
from pathlib import Path
import re
import sys
import tempfile

from ...errors import PruningError, quote
from ...fileio import silenced_stderr
from .archive import read_zip, write_zip
from .common import MAX_UNPACKED, first_line, quiet
from .keras_config import MAX_ACTIVATIONS, check_budget, parse_config

KERAS_MEMBERS = r"config\.json|metadata\.json|model\.weights\.h5|assets/[\w.-]+(/[\w.-]+)*"
MAX_METADATA_BYTES = 64 * 2**10
MAX_H5_LINKS = 100_000
_KERAS_FUNCTIONS = re.compile(r"keras(\.src)?\.(activations|losses|metrics|initializers)(\.|$)")


def check_objects(config, label: str) -> None:
    """Refuse Lambda layers and objects from outside Keras named anywhere in the config."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            cls, module = item.get("class_name"), item.get("module")
            if cls in ("Lambda", "TFOpLambda"):
                raise PruningError(f"{label} has a Lambda layer (arbitrary Python code), which is "
                                   f"refused; rebuild the model from built-in Keras layers")
            if module is not None and (not isinstance(module, str)
                                       or module != "keras" and not module.startswith("keras.")):
                raise PruningError(f"{label} uses {quote(cls)} from {quote(module)}: custom objects are refused; "
                                   f"use built-in Keras layers only")
            if cls == "function" and not _KERAS_FUNCTIONS.match(str(module)):
                raise PruningError(f"{label} calls {quote(item.get('config'))} from {quote(module)}: only Keras "
                                   f"activations, losses, metrics and initializers may be named")
            stack.extend(item.values())


def check_weights(data: bytes, label: str) -> None:
    """``model.weights.h5``: only groups and datasets joined by hard links, no external or virtual
    dataset (their bytes would come from other files), at most MAX_UNPACKED bytes declared in all."""
    import h5py

    problems, declared = [], [0]

    def visit(name, link):
        if len(problems) or declared[0] > MAX_UNPACKED:
            return True  # stop
        if not isinstance(link, h5py.HardLink):
            problems.append(f"its weights file links to {quote(name)} elsewhere ({type(link).__name__})")
            return True
        item = f[name]
        if isinstance(item, h5py.Dataset):
            if item.external or item.is_virtual:
                problems.append(f"its weights file takes {quote(name)} from other files")
                return True
            declared[0] += math.prod(item.shape or ()) * item.dtype.itemsize
        declared.append(0)
        if len(declared) > MAX_H5_LINKS:
            problems.append(f"its weights file holds more than {MAX_H5_LINKS:,} objects")
            return True
        return None

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            f.visititems_links(visit)
    except Exception as exc:  # noqa: BLE001 - a user's file: any failure is bad input
        raise PruningError(f"cannot read {label}: not a valid .keras file (model.weights.h5: "
                           f"{quote(first_line(exc), 120)})") from None
    if problems:
        raise PruningError(f"{label} is refused: {problems[0]}")
    if declared[0] > MAX_UNPACKED:
        raise PruningError(f"{label}: its weights file declares more than {MAX_UNPACKED / 2**20:.0f} MB of arrays")


def read_keras(path) -> dict:
    """The vetted members of a .keras file (name -> bytes), after every check above, or a PruningError."""
    label = Path(path).name
    members = read_zip(path, label, ".keras file", allow=KERAS_MEMBERS,
                       why="a .keras file holds only config.json, metadata.json, model.weights.h5 and assets/")
    if "config.json" not in members:
        raise PruningError(f"cannot read {label}: not a valid .keras file (no config.json)")
    if len(members.get("metadata.json", b"")) > MAX_METADATA_BYTES:
        raise PruningError(f"{label}: metadata.json is over {MAX_METADATA_BYTES // 2**10} KB")
    config = parse_config(members["config.json"], label)
    check_objects(config, label)
    check_budget(config, label)
    if "model.weights.h5" in members:
        check_weights(members["model.weights.h5"], label)
    return members


def check_activations(model, label: str) -> None:
    """Every layer's output (symbolic shapes, nothing computed) holds at most MAX_ACTIVATIONS
    values per example."""
    import keras

    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in node.output_tensors:
                size = math.prod(d or 1 for d in tuple(tensor.shape)[1:])
                if size > MAX_ACTIVATIONS:
                    raise PruningError(f"{label}: layer {quote(layer.name)} gives {size:,} values per example; "
                                       f"the limit is {MAX_ACTIVATIONS:,}")


def _start_tensorflow() -> None:
    if "tensorflow" not in sys.modules:  # TensorFlow's start-up chatter would break one-line errors
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with silenced_stderr():
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")


def keras_model(name, info, path, init_path, architecture=None):
    """A KerasModel read from archives rebuilt from the vetted members of ``path`` (and ``init_path``);
    the rebuilt files live in a private directory kept with the model (its export re-reads them).
    ``architecture`` is unused: a .keras file holds its own."""
    originals = {"final": path, **({"init": init_path} if init_path is not None else {})}
    vetted = {which: read_keras(p) for which, p in originals.items()}
    directory = tempfile.TemporaryDirectory(prefix="pruning-keras-")
    files = {}
    for which, members in vetted.items():
        files[which] = Path(directory.name) / f"{which}.keras"
        write_zip(members, files[which])
    label = Path(path).name

    def named(text: str) -> str:  # messages name the visitor's files, not the rebuilt ones
        for which, p in files.items():
            text = text.replace(str(p), Path(originals[which]).name)
        return text

    _start_tensorflow()
    from ...models.keras_model import KerasModel

    try:
        with quiet():
            model = KerasModel(name, info, files)  # every file has the first one's variables
            check_activations(model._keras, label)
    except PruningError as exc:
        directory.cleanup()
        raise PruningError(named(str(exc))) from None
    except Exception as exc:  # noqa: BLE001
        directory.cleanup()
        first = quote(named(first_line(exc)), 160)
        if "Could not locate" in first or "custom" in first.lower():
            raise PruningError(f"{label} uses a custom object, which is refused ({first})") from None
        raise PruningError(f"cannot read {label}: not a valid .keras model ({first})") from None
    model._vetted_dir = directory  # removed with the model
    return model
