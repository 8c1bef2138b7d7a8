"""Train a PyTorch zoo model from its recipe (recipes.py) and write pretrained/<name>/."""

import sys
import time

import numpy as np
from safetensors.torch import save_file
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import data
from ..models.adapter import adapter
from . import zoo_training
from .recipes import RECIPES
from .tracking import Tracker
from ..models.torch_model import build, device, prunable_specs, to_input
from ..models.torch_nets import INITS


def untrainable(model) -> str | None:
    """Training rebuilds the network from its zoo architecture: a torch.export program has none."""
    if not model.info.get("architecture"):
        return "a torch.export program (.pt2) cannot be retrained: use a .safetensors state dict of a zoo architecture"
    return None


def initial_module(recipe: dict) -> torch.nn.Module:
    """θ0: the architecture initialised from the recipe's seed (the same on every machine)."""
    torch.manual_seed(recipe["seed"])
    module = build(recipe)
    INITS[recipe["init"]](module)
    return module


def initial_state(recipe: dict) -> dict:
    """The recipe's initialisation (its seed) as name -> NumPy array."""
    return {k: v.detach().numpy().copy() for k, v in initial_module(recipe).state_dict().items()}


def _optimizer(recipe, params, steps):
    if recipe["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=recipe["lr"], weight_decay=recipe.get("weight_decay", 0.0))
    else:
        opt = torch.optim.SGD(params, lr=recipe["lr"], momentum=recipe.get("momentum", 0.0),
                              weight_decay=recipe.get("weight_decay", 0.0), nesterov=False)
    if recipe["schedule"] == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    return opt, None


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per image: a random crop with 4-pixel zero padding and a horizontal flip; x is (n, c, h, w)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))  # (n, c, h+8, w+8)
    dy, dx = torch.randint(0, 9, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (n, 1, 1, w)
    x = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def train(module, recipe, x, y, *, epochs=None, max_steps=None, on_step=None, on_epoch=None, log=None):
    """Train in place; returns per-epoch mean losses.

    ``on_step(step, module)`` runs after every optimiser step (masks are re-applied there);
    ``on_epoch(epoch, loss, module)`` after every epoch.
    """
    dev = device()
    module.to(dev).train()
    channels_last = any(p.ndim == 4 for p in module.parameters())  # ~15% faster convolutions on a CPU
    if channels_last:
        module.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(recipe["seed"])
    epochs = epochs or recipe["epochs"]
    batch = recipe["batch_size"]
    steps_per_epoch = -(-len(x) // batch)
    total = min(max_steps or epochs * steps_per_epoch, epochs * steps_per_epoch)
    opt, sched = _optimizer(recipe, module.parameters(), total)
    inputs, labels = to_input(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
    augment = recipe.get("augmentation", "none") != "none"
    history, step = [], 0
    for epoch in range(epochs):
        module.train()  # (on_epoch may have switched to eval mode to measure accuracy)
        order = torch.randperm(len(x), generator=gen)
        losses = []
        bar = tqdm(range(0, len(x), batch), desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr,
                   leave=False, disable=log is None)
        for i in bar:
            idx = order[i:i + batch]
            xb = inputs[idx]
            if augment:
                xb = _augment(xb, gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(module(xb.to(dev)), labels[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            step += 1
            losses.append(loss.item())
            if on_step:
                on_step(step, module)
            if step >= total:
                break
        history.append(float(np.mean(losses)))
        if on_epoch:
            on_epoch(epoch + 1, history[-1], module)
        if log:
            log(f"epoch {epoch + 1}: loss {history[-1]:.4f}")
        if step >= total:
            break
    module.eval()
    return history


@torch.inference_mode()
def accuracy(module, x, y, batch=1000) -> float:
    dev = device()
    module.to(dev).eval()
    correct = 0
    for i in range(0, len(x), batch):
        pred = module(to_input(x[i:i + batch]).to(dev)).argmax(1).cpu().numpy()
        correct += int((pred == y[i:i + batch]).sum())
    return correct / len(x)


def _state(module):
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def train_zoo_model(name: str, log=print) -> dict:
    """Train ``name`` from scratch and write init/final(/early).safetensors and model.json."""
    recipe, out, (x, y), (x_test, y_test), subset = zoo_training.start(name)
    module = initial_module(recipe)
    save_file(_state(module), str(out / "init.safetensors"))
    steps_per_epoch = -(-len(x) // recipe["batch_size"])
    early_step = round(recipe.get("early_fraction", 0) * recipe["epochs"] * steps_per_epoch)
    subset_curve = []  # a quick check on the test subset where a full pass is slow (CIFAR on a CPU)

    def on_step(step, m):
        if step == early_step:
            save_file(_state(m), str(out / "early.safetensors"))

    def on_epoch(epoch, loss, m):
        subset_curve.append(accuracy(m, x_test[subset], y_test[subset]))
        if log:
            log(f"epoch {epoch}: test-subset accuracy {subset_curve[-1]:.3f}")

    start = time.time()
    history = train(module, recipe, x, y, on_step=on_step, on_epoch=on_epoch, log=log)
    wall = time.time() - start
    save_file(_state(module), str(out / "final.safetensors"))
    acc = accuracy(module, x_test, y_test)
    specs = prunable_specs(module)
    info = {
        "name": name, "framework": "torch", "dataset": recipe["dataset"],
        "architecture": recipe["architecture"], "preprocessing": recipe["preprocessing"],
        "init": recipe["init"],
        "training": {k: recipe[k] for k in ("optimizer", "lr", "schedule", "batch_size", "epochs",
                                            "augmentation", "weight_decay", "seed", "source")
                     if k in recipe} | {"momentum": recipe.get("momentum"), "early_step": early_step or None,
                                        "loss_per_epoch": history,
                                        "subset_accuracy_per_epoch": subset_curve, "wall_time_s": round(wall, 1),
                                        "hardware": adapter("torch").hardware(), "torch": torch.__version__},
        "test_accuracy": acc, "test_n": int(len(y_test)),
        "test_subset": {"n": int(len(subset)), "accuracy": accuracy(module, x_test[subset], y_test[subset])},
        "parameters": {"total": int(sum(p.numel() for p in module.parameters())),
                       "prunable": int(sum(int(np.prod(s.shape)) for s in specs.values()))},
    }
    return zoo_training.finish(out, info, ".safetensors", log)


def train_seed(name: str, seed: int, *, epochs=None, limit=None):
    """Zoo model ``name``'s recipe trained again from another seed (init and data order), in
    memory: a TorchModel with θ0 and θf, for experiments that need several trained networks."""
    from ..models.torch_model import TorchModel
    from ..models.zoo import info as zoo_info

    recipe = {**RECIPES[name], "seed": seed}
    x, y = data.load(recipe["dataset"], "train")
    if limit:
        x, y = x[:limit], y[:limit]
    module = initial_module(recipe)
    init = {k: v.numpy().copy() for k, v in _state(module).items()}
    train(module, recipe, x, y, epochs=epochs)
    final = {k: v.numpy().copy() for k, v in _state(module).items()}
    meta = {**zoo_info(name), "training": {**zoo_info(name).get("training", {}), "seed": seed}, "sha256": {}}
    return TorchModel(f"{name}@seed{seed}", meta, {"init": init, "final": final})


def start_state(model, rewind: str, seed: int = 0) -> dict:
    """The full state to train from: a stored weight set, or ``random``: a fresh initialisation
    of the same architecture from another seed (the control that shows the ticket matters)."""
    if rewind != "random":
        return model.states[rewind]
    recipe = {**model.info, "seed": 10_000 + seed}
    return {k: v.numpy() for k, v in _state(initial_module(recipe)).items()}


def train_masked(model, state: dict, mask: dict, *, epochs: int, seed: int = 0, limit=None,
                 update=None, on_epoch=None) -> tuple:
    """Train ``model``'s architecture from ``state`` with the pruned weights held at exactly zero.

    update(step, weights) -> new mask or None is called after every optimiser step (schedules);
    on_epoch(record) gets {"epoch", "loss", "accuracy", "sparsity"} after every epoch.
    Returns (trained prunable weights as numpy, history).
    """
    recipe = {**RECIPES.get(model.name, {"optimizer": "adam", "lr": 1.2e-3, "schedule": "constant",
                                          "batch_size": 60, "augmentation": "none"}), "seed": seed}
    module = build(model.info)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    dev = device()
    module.to(dev)
    params = {name: module.get_parameter(name) for name in model.specs}
    keep = {name: torch.from_numpy(np.asarray(m)).to(dev) for name, m in mask.items()}

    @torch.no_grad()
    def apply():
        for name, p in params.items():
            p.mul_(keep[name])

    def current():
        return {name: p.detach().cpu().numpy() for name, p in params.items()}

    def on_step(step, _):
        new = update(step, current) if update else None
        if new is not None:
            keep.update({name: torch.from_numpy(np.asarray(m)).to(dev) for name, m in new.items()})
        apply()

    x, y = data.load(model.dataset, "train")
    if limit:
        x, y = x[:limit], y[:limit]
    x_test, y_test = data.load(model.dataset, "test")
    history = []

    def epoch_done(epoch, loss, m):
        kept = sum(int(k.sum()) for k in keep.values())
        total = sum(k.numel() for k in keep.values())
        history.append({"epoch": epoch, "loss": loss, "accuracy": accuracy(m, x_test, y_test),
                        "sparsity": 1 - kept / total})
        if on_epoch:
            on_epoch(history[-1])

    apply()
    train(module, recipe, x, y, epochs=epochs, on_step=on_step, on_epoch=epoch_done)
    return {name: w.copy() for name, w in current().items()}, history


def train_tracked(model, recipe, state, mask, *, iterations, eval_every, test_every, seed, splits, full_state=False):
    """For IMP runs (experiments/imp_runs.py): train ``state`` with ``mask`` held at zero for
    ``iterations`` steps (the zoo recipe's optimiser and batch).  Returns (trained prunable
    weights, history): every ``eval_every`` steps the validation loss and accuracy, and the test
    accuracy every ``test_every`` steps and at the early-stopping iteration (None elsewhere).
    With ``full_state``, the weights are the whole state dict (biases too), to continue from."""
    (x, y), (xv, yv), (xt, yt) = splits
    module = build(model.info)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    params = {name: module.get_parameter(name) for name in model.specs}
    keep = {name: torch.from_numpy(np.asarray(m, dtype=np.float32)) for name, m in mask.items()}
    val_in, val_y = to_input(xv), torch.from_numpy(np.asarray(yv, dtype=np.int64))
    test_in, test_y = to_input(xt), torch.from_numpy(np.asarray(yt, dtype=np.int64))
    tracker = Tracker(iterations, eval_every, test_every)

    @torch.no_grad()
    def apply():
        for name, p in params.items():
            p.mul_(keep[name])

    @torch.no_grad()
    def test_accuracy():
        return round(float((module(test_in).argmax(1) == test_y).float().mean()), 5)

    @torch.no_grad()
    def measure(step):
        module.eval()
        logits = module(val_in)
        tracker.record(step, F.cross_entropy(logits, val_y), (logits.argmax(1) == val_y).float().mean(), test_accuracy,
                       lambda: {k: v.clone() for k, v in module.state_dict().items()})
        module.train()

    def restore(state):
        module.load_state_dict(state)
        module.eval()

    def on_step(step, _):
        apply()
        if tracker.due(step):
            measure(step)

    apply()
    steps_per_epoch = -(-len(x) // recipe["batch_size"])
    train(module, {**recipe, "seed": seed}, x, y, epochs=-(-iterations // steps_per_epoch), max_steps=iterations,
          on_step=on_step)
    kept = module.state_dict().items() if full_state else params.items()
    weights = {name: p.detach().numpy().copy() for name, p in kept}
    return weights, tracker.finish(restore, test_accuracy)
