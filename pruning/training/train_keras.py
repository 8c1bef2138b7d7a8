"""Train a Keras zoo model from its recipe (recipes.py) and write pretrained/<name>/.

A recipe with a ``twin`` starts from the PyTorch twin's θ0 (regenerated from its seed; the twin
need not be trained), converted to Keras layout, so the two frameworks share θ0 exactly.
"""

import time

import numpy as np

from .. import data
from ..errors import PruningError
from ..models.adapter import adapter
from . import zoo_training
from ..models.keras_callback import MaskCallback
from ..models.keras_model import keras, named_variables, prunable_specs, tf, to_input
from ..models.keras_nets import build
from .recipes import RECIPES
from .tracking import Tracker


def untrainable(model) -> str | None:
    """Any Keras model can be trained: the network is rebuilt from its own file."""
    return None


def torch_initial_state(torch_name: str, seed: int | None = None) -> dict:
    """θ0 of a PyTorch zoo model as numpy arrays, state_dict names (deterministic from its seed)."""
    from .train_torch import initial_state

    return initial_state(RECIPES[torch_name] | ({} if seed is None else {"seed": seed}))


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
        load_torch_state(model, torch_initial_state(recipe["twin"], recipe["seed"]))
    return model


def initial_state(recipe: dict) -> dict:
    """The recipe's initialisation (its seed; a twin's is its PyTorch twin's, converted) as
    name -> NumPy array, Keras names and layout."""
    return {k: v.numpy() for k, v in named_variables(initial_model(recipe)).items()}


def save(model: keras.Model, recipe: dict, path) -> None:
    """Write the weights as a .keras file without optimizer state (an uncompiled copy)."""
    copy = build(recipe)
    copy.set_weights(model.get_weights())
    copy.save(str(path))


class _Progress(keras.callbacks.Callback):
    """Saves the early weights after ``early_step`` steps; after each epoch, measures the accuracy
    on a test subset (``curve``) and logs it with the epoch's loss."""

    def __init__(self, recipe, early_step, path, log, x_check, y_check):
        super().__init__()
        self.recipe, self.early_step, self.path, self.log, self.step = recipe, early_step, path, log, 0
        self.x_check, self.y_check, self.curve = x_check, y_check, []

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.early_step:
            save(self.model, self.recipe, self.path)

    def on_epoch_end(self, epoch, logs=None):
        self.curve.append(accuracy(self.model, self.x_check, self.y_check))
        if self.log:
            self.log(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, test-subset accuracy {self.curve[-1]:.3f}")


class _Flipped(keras.utils.PyDataset):
    """Training batches for ``augmentation: horizontal flip``: each epoch a fresh seeded order, and
    each image mirrored left-right with probability 1/2.  x is (n, h, w, c), channels last."""

    def __init__(self, x, y, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size  # batches, the last one partial

    def on_epoch_end(self):
        self.order, self.flip = self.rng.permutation(len(self.x)), self.rng.random(len(self.x)) < 0.5

    def __getitem__(self, i):
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        xb = self.x[rows].astype(np.float32)  # (batch, h, w, c)
        xb[self.flip[rows]] = xb[self.flip[rows], :, ::-1]
        return xb, self.y[rows].astype(np.int64)


def _fit_inputs(recipe: dict, x, y) -> dict:
    """model.fit's data arguments for the recipe's augmentation ('none' or 'horizontal flip')."""
    augmentation = recipe.get("augmentation", "none")
    if augmentation == "none":
        return {"x": np.asarray(x, dtype=np.float32), "y": y.astype(np.int64), "batch_size": recipe["batch_size"],
                "validation_split": recipe.get("validation_split", 0.0), "shuffle": True}
    if augmentation != "horizontal flip" or recipe.get("validation_split"):
        raise PruningError(f"Keras training supports augmentation 'none' or 'horizontal flip' (without a "
                           f"validation split), not {augmentation!r}")
    return {"x": _Flipped(x, y, recipe["batch_size"], recipe["seed"])}


def _best_epoch(history: dict) -> dict:
    """With a validation split: each epoch's validation accuracy and the epoch with the best."""
    if "val_accuracy" not in history:
        return {}
    accuracies = [float(v) for v in history["val_accuracy"]]
    return {"val_accuracy_per_epoch": accuracies, "best_epoch": int(np.argmax(accuracies)) + 1}


def accuracy(model, x, y, batch=1000) -> float:
    logits = model.predict(np.asarray(x, dtype=np.float32), batch_size=batch, verbose=0)  # (n, classes)
    return float(np.mean(logits.argmax(axis=1) == y))


def train_zoo_model(name: str, log=print) -> dict:
    """Train ``name`` from scratch and write init/final(/early).keras and model.json."""
    recipe, out, (x, y), (x_test, y_test), subset = zoo_training.start(name)
    model = initial_model(recipe)
    save(model, recipe, out / "init.keras")
    split = recipe.get("validation_split", 0.0)
    steps_per_epoch = -(-int(len(x) * (1 - split)) // recipe["batch_size"])
    early_step = round(recipe.get("early_fraction", 0) * recipe["epochs"] * steps_per_epoch)
    optimizer = keras.optimizers.Adam(recipe["lr"], epsilon=recipe.get("adam_epsilon", 1e-7))
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=False)
    progress = _Progress(recipe, early_step, out / "early.keras", log, x_test[subset], y_test[subset])
    callbacks = [progress]
    if recipe.get("early_stopping_patience"):  # keep the epoch with the best validation accuracy
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=recipe["early_stopping_patience"],
                                                       restore_best_weights=True))
    start = time.time()
    history = model.fit(**_fit_inputs(recipe, x, y), epochs=recipe["epochs"], verbose=0, callbacks=callbacks)
    wall = time.time() - start
    save(model, recipe, out / "final.keras")
    acc = accuracy(model, x_test, y_test)
    info = {
        "name": name, "framework": "keras", "dataset": recipe["dataset"],
        "architecture": recipe["architecture"], "preprocessing": recipe["preprocessing"],
        "init": recipe["init"] + (f" (θ0 of {recipe['twin']}, converted to Keras layout)"
                                  if recipe.get("twin") else ""),
        "twin": recipe.get("twin"),
        "training": {k: recipe[k] for k in ("optimizer", "lr", "adam_epsilon", "schedule", "batch_size", "epochs",
                                            "validation_split", "early_stopping_patience", "augmentation",
                                            "weight_decay", "seed", "source")
                     if k in recipe} | {"momentum": recipe.get("momentum"), "early_step": early_step or None,
                                        "loss_per_epoch": [float(v) for v in history.history["loss"]],
                                        "subset_accuracy_per_epoch": progress.curve,
                                        **_best_epoch(history.history),
                                        "wall_time_s": round(wall, 1), "hardware": adapter("keras").hardware(),
                                        "keras": keras.__version__, "tensorflow": tf.__version__},
        "test_accuracy": acc, "test_n": int(len(y_test)),
        "test_subset": {"n": int(len(subset)), "accuracy": accuracy(model, x_test[subset], y_test[subset])},
        "parameters": {"total": int(model.count_params()),
                       "prunable": int(sum(s.size for s in prunable_specs(model).values()))},
    }
    return zoo_training.finish(out, info, ".keras", log)


# --- training in the loop (the Keras backend of retrain.py; same interface as train_torch) -------

def start_state(model, rewind: str, seed: int = 0) -> dict:
    """The full state to train from: a stored weight set, or ``random``: a fresh initialisation
    from another seed (for a twin, the PyTorch twin's control, converted: the same numbers)."""
    if rewind != "random":
        return model.states[rewind]
    if model.name not in RECIPES:
        raise PruningError(f"model {model.name!r} has no recipe, so it has no random re-initialisation")
    net = initial_model({**RECIPES[model.name], "seed": 10_000 + seed})
    return {k: v.numpy() for k, v in named_variables(net).items()}


class _Masking(MaskCallback):
    """MaskCallback whose mask a schedule may replace after any step, with per-epoch accuracy."""

    def __init__(self, mask, update, current, x_test, y_test, on_epoch):
        super().__init__(mask)
        self.update, self.current, self.on_epoch = update, current, on_epoch
        self.x_test, self.y_test, self.step, self.history = x_test, y_test, 0, []

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.update:
            new = self.update(self.step, self.current)
            if new is not None:
                self.mask, self._pairs = {n: np.asarray(k, dtype=bool) for n, k in new.items()}, None
        self.apply()

    def on_epoch_end(self, epoch, logs=None):
        kept = sum(int(k.sum()) for k in self.mask.values())
        total = sum(k.size for k in self.mask.values())
        self.history.append({"epoch": epoch + 1, "loss": float(logs["loss"]),
                             "accuracy": accuracy(self.model, self.x_test, self.y_test), "sparsity": 1 - kept / total})
        if self.on_epoch:
            self.on_epoch(self.history[-1])


def train_masked(model, state: dict, mask: dict, *, epochs: int, seed: int = 0, limit=None,
                 update=None, on_epoch=None) -> tuple:
    """Train a copy of ``model``'s network from ``state`` with the pruned weights held at exactly zero.

    update(step, current) -> new mask or None is called after every optimiser step (schedules);
    ``current()`` gives the prunable weights as numpy.  on_epoch(record) gets {"epoch", "loss",
    "accuracy", "sparsity"} after every epoch.  Returns (trained prunable weights, history).
    """
    recipe = RECIPES.get(model.name, {"lr": 1.2e-3, "batch_size": 60})
    net = model.to_keras(state, "final")  # a private copy set to ``state``: the loaded model is untouched
    variables = named_variables(net)

    def current():
        return {name: variables[name].numpy() for name in model.specs}

    x, y = data.load(model.dataset, "train")
    x, y = (x[:limit], y[:limit]) if limit else (x, y)
    x_test, y_test = data.load(model.dataset, "test")
    callback = _Masking(mask, update, current, x_test, y_test, on_epoch)
    keras.utils.set_random_seed(seed)
    optimizer = keras.optimizers.Adam(recipe["lr"], epsilon=recipe.get("adam_epsilon", 1e-7))
    net.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(np.asarray(x, dtype=np.float32), y.astype(np.int64), batch_size=recipe["batch_size"], epochs=epochs,
            shuffle=True, verbose=0, callbacks=[callback])
    return {name: variables[name].numpy().copy() for name in model.specs}, callback.history


def prune_while_finetuning(model, schedule, x, y, test, *, epochs: int, batch_size: int, seed: int,
                           learning_rate: float = 1e-3) -> tuple:
    """TF-MOT's ``prune_low_magnitude`` loop on the engine (the TF-MOT pruning tutorial): fine-tune a
    private copy of the model's θf with Adam, pruning every layer by |w| to ``schedule(step)`` (nested
    masks, applied at step 0 and after every batch; a core.schedules schedule).  Returns (test
    accuracy on ``test`` = (x, y), the final mask)."""
    from ..models.keras_callback import MaskCallback
    from .retrain import magnitude_mask

    net = model.to_keras()  # a private copy of θf
    variables = named_variables(net)

    def current():
        return {name: variables[name].numpy() for name in model.specs}

    class Pruning(MaskCallback):  # TF-MOT prunes at step 0 (before the first batch), then at its frequency
        step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            target = schedule(self.step)
            if target is not None:
                self.mask, self._pairs = magnitude_mask(model, current(), target, within=self.mask), None
            self.apply()

    callback = Pruning(magnitude_mask(model, current(), schedule.target(0)))
    keras.utils.set_random_seed(seed)
    net.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(np.asarray(x, dtype=np.float32), np.asarray(y).astype(np.int64), batch_size=batch_size, epochs=epochs,
            shuffle=True, verbose=0, callbacks=[callback])
    return accuracy(net, *test), callback.mask


def train_tracked(model, recipe, state, mask, *, iterations, eval_every, test_every, seed, splits, full_state=False):
    """For IMP runs (experiments/imp_runs.py), as train_torch.train_tracked: train ``state`` with
    ``mask`` held at zero for ``iterations`` steps (the recipe's Adam and batch, a seeded order
    reshuffled every epoch).  Returns (trained prunable weights, history): every ``eval_every``
    steps the validation loss and accuracy, and the test accuracy every ``test_every`` steps and
    at the early-stopping iteration (None elsewhere).  With ``full_state``, all variables.

    One compiled step (forward, gradient, Adam, the mask multiplied in) instead of ``model.fit``
    with a callback: the same arithmetic without Python between the update and the mask."""
    if recipe["optimizer"] != "adam" or recipe["schedule"] != "constant" or recipe.get("weight_decay"):
        raise PruningError(f"Keras tracked training runs a constant-rate Adam recipe without weight decay, not "
                           f"{recipe['optimizer']} with a {recipe['schedule']} schedule")
    (x, y), (xv, yv), (xt, yt) = splits
    net = model.to_keras(state, "final")  # a private copy set to ``state`` (every variable)
    variables = named_variables(net)
    pairs = [(variables[n], tf.constant(np.asarray(m), dtype=variables[n].dtype)) for n, m in mask.items()]
    optimizer = keras.optimizers.Adam(recipe["lr"], epsilon=recipe.get("adam_epsilon", 1e-7))
    optimizer.build(net.trainable_variables)
    loss_of = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    inputs = tf.constant(to_input(x, model.input_shape))
    labels = tf.constant(np.asarray(y, dtype=np.int64))
    val_in, test_in = (tf.constant(to_input(v, model.input_shape)) for v in (xv, xt))
    val_y, test_y = np.asarray(yv), np.asarray(yt)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)], jit_compile=False)
    def step(rows):  # rows: (batch,) int indices into the training set
        with tf.GradientTape() as tape:
            loss = loss_of(tf.gather(labels, rows), net(tf.gather(inputs, rows), training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables,
                                      strict=True))
        for var, keep in pairs:
            var.assign(var * keep)

    @tf.function(jit_compile=False)
    def logits_of(batch):
        return net(batch, training=False)

    def test_accuracy():
        return round(float(np.mean(np.asarray(logits_of(test_in)).argmax(1) == test_y)), 5)

    def restore(state):
        for var, value in zip(net.variables, state, strict=True):
            var.assign(value)

    tracker = Tracker(iterations, eval_every, test_every)

    for var, keep in pairs:
        var.assign(var * keep)
    rng, batch, step_no = np.random.default_rng(seed), recipe["batch_size"], 0
    while step_no < iterations:
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            step(tf.constant(order[i:i + batch]))
            step_no += 1
            if tracker.due(step_no):
                logits = logits_of(val_in)
                tracker.record(step_no, loss_of(val_y, logits), np.mean(np.asarray(logits).argmax(1) == val_y),
                               test_accuracy, lambda: [v.numpy() for v in net.variables])
            if step_no == iterations:
                break
    names = variables if full_state else model.specs
    weights = {name: variables[name].numpy().copy() for name in names}
    return weights, tracker.finish(restore, test_accuracy)
