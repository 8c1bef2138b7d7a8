"""The model-adapter contract: what the engine needs from a loaded model, and the one registry of
adapters, keyed by framework.  Nothing outside the adapters branches on the framework name.

A loaded model (``Model`` below) is read-only and shared: masks are applied functionally, by
passing replacement tensors to ``logits``.  Implementations: ``torch_model.TorchModel`` (zoo and
``.safetensors`` state dicts), ``keras_model.KerasModel``, ``pt2_model.Pt2Model`` (``torch.export``
programs) and ``sandbox.remote.RemoteModel`` (an upload living in a sandboxed worker, which runs
one of the others there).

To add a framework (say JAX): write ``jax_model.py`` with a class providing everything ``Model``
lists and a function ``accelerator()`` (the GPU it computes on, or None; recorded with training runs
and tables), and add one ``ADAPTERS["jax"] = Adapter(...)`` line at the end of this file.  That is
enough to load, prune and evaluate its zoo models.  To also train them (the Retrain tab, IMP,
``python -m pruning train``), name a training module providing ``untrainable``, ``start_state``,
``train_masked`` and ``train_zoo_model`` (as ``training/train_torch.py`` does; ``train_tracked``
and ``initial_state`` for IMP runs); to accept users' files, name their readers in ``uploads``
(as ``uploads/readers/`` does: ``reader(name, info, path, init_path, architecture)`` -> a model).
The zoo, the upload path, training, exports (``export.FORMATS``) and the explorer then find it
here.

Optional capability, batch-norm recalibration (``RecalibratesBatchNorm`` below; the engine side is
``pruning/core/batchnorm.py``): a model that can re-estimate its batch-norm statistics after
pruning provides ``batch_norm_layers`` and ``batch_norm_statistics``, and its ``logits`` accepts
the statistics it returns among the replacement tensors.  ``recalibration_unavailable`` says why
a model cannot (no such layers, or an adapter without the capability).

Optional, a quicker evaluation (``Adapter.fast``): a module with ``quicker(model)`` and
``evaluate(model, mask, weights, limit)``, giving ``pruning.evaluate``'s predictions in less time
where ``quicker`` says so (``torch_fast``: the PyTorch MLPs; ``keras_fast``: the Keras MLPs); the
explorer's page evaluates through it.
"""

from dataclasses import dataclass
import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..registry import Registry


@runtime_checkable
class Model(Protocol):
    """A loaded model, as the engine uses it."""

    name: str  # in masks and reports
    info: dict  # model.json: dataset, architecture, preprocessing, sha256 of the weight files, ...
    dataset: str  # mnist, fashion_mnist or cifar10
    framework: str  # the key of its adapter in ADAPTERS
    device: Any  # where logits are computed ("cpu", "cuda", "cpu, sandboxed worker"); str() shows it
    specs: dict  # name -> selection.TensorSpec of each prunable tensor, in layer order (last: output)
    output_name: str  # the output layer's prunable tensor
    states: dict  # weight set ("final", "init", maybe "early") -> name -> read-only numpy array;
    #               holds at least the prunable tensors and their unit parameters

    def weights(self, which: str = "final") -> dict:
        """The prunable tensors of one weight set, name -> numpy array in the native layout."""

    def prepare(self, x: np.ndarray) -> Any:
        """Test images (uint8, (n, h, w) or (n, h, w, c)) as the first layer takes them; the
        evaluation caches the result, so normalisation happens once."""

    def logits(self, prunable: dict, base: str, x: Any) -> np.ndarray:
        """Logits (n, classes) of prepared inputs ``x`` with the tensors in ``prunable``
        (prunable kernels, maybe unit parameters) replacing those of weight set ``base``."""


@runtime_checkable
class RecalibratesBatchNorm(Protocol):
    """Optional: a model whose batch-norm statistics can be re-estimated after pruning."""

    def batch_norm_layers(self) -> list:
        """Names of its batch-norm layers that keep running statistics ([]: recalibration does not apply)."""

    def batch_norm_statistics(self, prunable: dict, base: str, x: Any, batch_size: int | None = None) -> dict:
        """Running statistics re-estimated on prepared (training) inputs ``x`` with the tensors in
        ``prunable`` replacing those of weight set ``base``, without a gradient step and without
        changing the model: name -> numpy array, which ``logits`` accepts among its replacements."""


def recalibration_unavailable(model) -> str | None:
    """None if ``model`` can re-estimate batch-norm statistics; else why not, as a sentence part."""
    if not isinstance(model, RecalibratesBatchNorm):
        label = ADAPTERS[model.framework].label if getattr(model, "framework", None) in ADAPTERS else "this"
        where = " held in a sandboxed worker" if "sandboxed" in str(getattr(model, "device", "")) else ""
        return f"re-estimating batch-norm statistics is not implemented for {label} models{where}"
    if not model.batch_norm_layers():
        return "this model has no batch-norm layers, so there are no statistics to re-estimate"
    return None


@dataclass(frozen=True)
class Adapter:
    """One framework: how to load its zoo models, train them, and export a pruned model."""

    framework: str
    label: str  # shown to people: "PyTorch", "Keras"
    suffix: str  # the zoo's weight files: init<suffix>, final<suffix>
    model: str  # "module:Class" of its zoo model class, taking (name, info, files)
    trainer: str  # the module with start_state, train_masked and train_zoo_model
    exports: tuple  # the export.FORMATS it offers besides the framework-free .npz mask
    supermask: str | None = None  # the module with train_scores (learned supermasks), if any
    uploads: tuple = ()  # (file suffix, "module:reader") of the users' files whose models it runs
    fast: str | None = None  # the module with quicker(model) and evaluate(...): a quicker evaluation, if any

    def reader(self, suffix: str):
        """The reader of users' ``suffix`` files (its module is imported only now)."""
        return _resolve(dict(self.uploads)[suffix])

    def load(self, name: str, info: dict, files: dict) -> Model:
        """A zoo model of this framework (the framework is imported only now)."""
        return _resolve(self.model)(name, info, files)

    def training(self):
        """The training glue module (imported only now)."""
        return importlib.import_module(self.trainer)

    def hardware(self) -> str:
        """What this framework computes on: its accelerator (the model module's ``accelerator()``)
        or, without one, ``fileio.cpu_description()``."""
        from ..fileio import cpu_description

        return _resolve(self.model.partition(":")[0] + ":accelerator")() or cpu_description()

    def supermasking(self):
        """The learned-supermask glue module (training/supermask.py), or None."""
        return importlib.import_module(self.supermask) if self.supermask else None

    def quick_evaluation(self, model):
        """A quicker ``pruning.evaluate`` for ``model`` (same arguments, same predictions), or None:
        the ``fast`` module's ``evaluate`` (imported only now) where its ``quicker(model)`` says so."""
        if self.fast is None:
            return None
        fast = importlib.import_module(self.fast)
        return fast.evaluate if fast.quicker(model) else None



def _resolve(path: str):
    """"module:attribute", the module relative to this package or absolute ("pruning.x")."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module if "." in module else f"{__package__}.{module}"), attr)


ADAPTERS = Registry("framework")
READERS = "pruning.uploads.readers"
ADAPTERS["torch"] = Adapter("torch", "PyTorch", ".safetensors", "torch_model:TorchModel",
                            "pruning.training.train_torch", ("torch",),
                            "pruning.training.supermask_torch",
                            ((".safetensors", f"{READERS}.safetensors:safetensors_model"),
                             (".pt2", f"{READERS}.pt2:pt2_model")), "pruning.models.torch_fast")
ADAPTERS["keras"] = Adapter("keras", "Keras", ".keras", "keras_model:KerasModel",
                            "pruning.training.train_keras", ("keras",),
                            "pruning.training.supermask_keras",
                            ((".keras", f"{READERS}.keras:keras_model"),), "pruning.models.keras_fast")


def adapter(model_or_framework) -> Adapter:
    """The adapter of a model (or of a framework name); PruningError naming the choices."""
    framework = getattr(model_or_framework, "framework", model_or_framework)
    return ADAPTERS.get(framework)
