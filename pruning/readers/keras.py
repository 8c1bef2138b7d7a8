""".keras: a Keras 3 model, loaded with ``safe_mode=True``; Lambda layers and custom objects are refused."""

import os
from pathlib import Path
import re
import sys
import json
import zipfile

from ..errors import PruningError
from ..io import silenced_stderr
from .common import fail, first_line, quiet


_KERAS_FUNCTIONS = re.compile(r"keras(\.src)?\.(activations|losses|metrics|initializers)(\.|$)")


def check_keras_config(path) -> None:
    """Refuse Lambda layers and objects from outside Keras before Keras reads the file."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except Exception as exc:  # noqa: BLE001
        raise fail(path, ".keras file", exc) from None
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            cls, module = item.get("class_name"), item.get("module")
            if cls in ("Lambda", "TFOpLambda"):
                raise PruningError(f"{Path(path).name} has a Lambda layer (arbitrary Python code), which is "
                                   f"refused; rebuild the model from built-in Keras layers")
            if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
                raise PruningError(f"{Path(path).name} uses {cls} from {module}: custom objects are refused; "
                                   f"use built-in Keras layers only")
            if cls == "function" and not _KERAS_FUNCTIONS.match(str(module)):
                raise PruningError(f"{Path(path).name} calls {item.get('config')} from {module}: only Keras "
                                   f"activations, losses, metrics and initializers may be named")
            stack.extend(item.values())


def keras_model(name, info, path, init_path):
    for p in filter(None, (path, init_path)):
        check_keras_config(p)
    if "tensorflow" not in sys.modules:  # TensorFlow's start-up chatter would break one-line errors
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with silenced_stderr():
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
    from ..keras_model import KerasModel

    files = {"final": path, **({"init": init_path} if init_path is not None else {})}
    try:
        with quiet():
            return KerasModel(name, info, files)
    except PruningError as exc:
        raise PruningError(str(exc).replace(str(path), Path(path).name)) from None
    except Exception as exc:  # noqa: BLE001
        first = first_line(exc)
        if "Could not locate" in first or "custom" in first.lower():
            raise PruningError(f"{Path(path).name} uses a custom object, which is refused ({first})") from None
        raise fail(path, ".keras model", exc) from None
