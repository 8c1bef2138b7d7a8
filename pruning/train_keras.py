"""Train a Keras zoo model from its recipe (recipes.py) and write pretrained/<name>/.

A recipe with a ``twin`` starts from the PyTorch twin's θ0 (regenerated from its seed; the twin
need not be trained), converted to Keras layout, so the two frameworks share θ0 exactly.
"""

import json
import os
import platform
import time

import numpy as np

from . import data
from .io import sha256
from .keras_model import keras, named_variables, prunable_specs, tf
from .keras_nets import build
from .recipes import RECIPES
from .zoo import ZOO


def torch_initial_state(torch_name: str) -> dict:
    """θ0 of a PyTorch zoo model as numpy arrays, state_dict names (deterministic from its seed)."""
    from .train_torch import initial_module

    return {k: v.detach().cpu().numpy() for k, v in initial_module(RECIPES[torch_name]).state_dict().items()}


def load_torch_state(model: keras.Model, state: dict) -> None:
    """Set ``model`` (a Keras twin) to a PyTorch state dict: ``fc1.weight`` -> ``fc1/kernel`` in
    Keras layout (Dense: W.T; Conv2D: W.permute(2, 3, 1, 0)), ``fc1.bias`` -> ``fc1/bias``."""
    specs = prunable_specs(model)
    variables = named_variables(model)
    torch_names = {k.replace(".weight", "/kernel").replace(".bias", "/bias"): k for k in state}
    if set(torch_names) != set(variables):
        raise ValueError(f"not twins: {sorted(torch_names)} vs {sorted(variables)}")
    for name, var in variables.items():
        value = state[torch_names[name]]
        var.assign(specs[name].to_native(value) if name in specs else value)


def initial_model(recipe: dict) -> keras.Model:
    """θ0: the architecture initialised from the recipe's seed (or its PyTorch twin's θ0)."""
    keras.utils.set_random_seed(recipe["seed"])
    model = build(recipe, "glorot_uniform" if recipe["init"] == "glorot_uniform" else "glorot_normal")
    if recipe.get("twin"):
        load_torch_state(model, torch_initial_state(recipe["twin"]))
    return model


def save(model: keras.Model, recipe: dict, path) -> None:
    """Write the weights as a .keras file without optimizer state (an uncompiled copy)."""
    copy = build(recipe)
    copy.set_weights(model.get_weights())
    copy.save(str(path))


class _Progress(keras.callbacks.Callback):
    """Saves the early weights after ``early_step`` steps and logs each epoch's loss."""

    def __init__(self, recipe, early_step, path, log):
        super().__init__()
        self.recipe, self.early_step, self.path, self.log, self.step = recipe, early_step, path, log, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.early_step:
            save(self.model, self.recipe, self.path)

    def on_epoch_end(self, epoch, logs=None):
        if self.log:
            self.log(f"epoch {epoch + 1}: loss {logs['loss']:.4f}")


def accuracy(model, x, y, batch=1000) -> float:
    logits = model.predict(np.asarray(x, dtype=np.float32), batch_size=batch, verbose=0)  # (n, classes)
    return float(np.mean(logits.argmax(axis=1) == y))


def train_zoo_model(name: str, log=print) -> dict:
    """Train ``name`` from scratch and write init/final(/early).keras and model.json."""
    recipe = RECIPES[name]
    out = ZOO / name
    out.mkdir(parents=True, exist_ok=True)
    x, y = data.load(recipe["dataset"], "train")
    x_test, y_test = data.load(recipe["dataset"], "test")
    model = initial_model(recipe)
    save(model, recipe, out / "init.keras")
    split = recipe.get("validation_split", 0.0)
    steps_per_epoch = -(-int(len(x) * (1 - split)) // recipe["batch_size"])
    early_step = round(recipe.get("early_fraction", 0) * recipe["epochs"] * steps_per_epoch)
    optimizer = keras.optimizers.Adam(recipe["lr"], epsilon=recipe.get("adam_epsilon", 1e-7))
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.time()
    history = model.fit(np.asarray(x, dtype=np.float32), y.astype(np.int64), batch_size=recipe["batch_size"],
                        epochs=recipe["epochs"], validation_split=split, shuffle=True, verbose=0,
                        callbacks=[_Progress(recipe, early_step, out / "early.keras", log)])
    wall = time.time() - start
    save(model, recipe, out / "final.keras")
    acc = accuracy(model, x_test, y_test)
    files = sorted(p.name for p in out.glob("*.keras"))
    info = {
        "name": name, "framework": "keras", "dataset": recipe["dataset"],
        "architecture": recipe["architecture"], "preprocessing": recipe["preprocessing"],
        "init": recipe["init"] + (f" (θ0 of {recipe['twin']}, converted to Keras layout)" if recipe.get("twin") else ""),
        "twin": recipe.get("twin"),
        "training": {k: recipe[k] for k in ("optimizer", "lr", "adam_epsilon", "schedule", "batch_size", "epochs",
                                            "validation_split", "augmentation", "weight_decay", "seed", "source")
                     if k in recipe} | {"momentum": recipe.get("momentum"), "early_step": early_step or None,
                                        "loss_per_epoch": [float(v) for v in history.history["loss"]],
                                        "wall_time_s": round(wall, 1), "hardware": _hardware(),
                                        "keras": keras.__version__, "tensorflow": tf.__version__},
        "test_accuracy": acc, "test_n": int(len(y_test)),
        "parameters": {"total": int(model.count_params()),
                       "prunable": int(sum(s.size for s in prunable_specs(model).values()))},
        "sha256": {f: sha256(out / f) for f in files},
    }
    (out / "model.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    if log:
        log(f"{name}: test accuracy {acc:.4f} after {wall:.0f}s")
    return info


def _hardware() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (CPU only)"
