"""The ``torch.export`` adapter: a user's ``.pt2`` program, evaluated functionally.

``Pt2Model`` has the interface of ``TorchModel``: the program's ``module()`` is never mutated;
each forward pass hands the weights to ``torch.func.functional_call`` on a per-thread copy, with
fresh copies of the tensors and the input batch, so even in-place operators change nothing shared.

Prunable tensors (the rule, kept simple): a parameter with two or more dimensions that is the
weight argument (the second one) of ``aten.linear``, ``aten.conv1d/2d/3d`` or a non-transposed
``aten.convolution`` in the exported graph, in graph order (the last one is the output layer).
Their layout, (out, in, *kernel), is the canonical one.  A graph may call ``aten`` operators
only (and ``getitem``), none that does I/O, draws random numbers or runs in training mode.

Cost: before it ever sees real data, the program runs once on fake tensors (no memory, no
arithmetic) at its evaluation batch; programs whose largest tensor or whose work per image is
over the budgets of ``uploads/readers/common.py`` are refused.

Input: pixel values as floats in [0, 1] (the program normalises its own input, as the zoo's
PyTorch models do), shaped per example as one of (c, h, w), (h, w, c), (h, w) (grey images
only) or flat (c*h*w, in CHW order).  A static batch dimension is served by padding.
"""

import copy
import operator
import threading

import numpy as np
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import PruningError, quote
from ..uploads.readers.common import EVAL_BATCH, MAX_FLOPS_PER_IMAGE, MAX_INTERMEDIATE, first_line
from ..core.selection import TensorSpec
from .torch_model import device

WEIGHT_OPS = {"aten::linear", "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution"}
IO_OPS = {"aten::from_file", "aten::save", "aten::_print", "aten::warn"}  # aten operators that touch files or logs


def _op(node) -> str:
    schema = getattr(node.target, "_schema", None)
    return schema.name if schema is not None else ""


def _training(node) -> bool:
    """Whether an operator runs in training mode (batch norm, dropout): its ``training``/``train`` flag."""
    for i, arg in enumerate(node.target._schema.arguments):
        if arg.name in ("training", "train"):
            return bool(node.args[i] if i < len(node.args) else node.kwargs.get(arg.name, arg.default_value))
    return False


def check_graph(ep) -> None:
    """Refuse graphs that call anything but ``aten`` operators, aten operators that do I/O, draw
    random numbers, or run in training mode (their results would depend on the batch)."""
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if not _op(node).startswith("aten::") or _op(node) in IO_OPS:
            raise PruningError(f"the program calls {quote(node.target)}; only plain aten tensor operators are accepted")
        if torch.Tag.nondeterministic_seeded in node.target.tags or _training(node):
            raise PruningError(f"the program calls {quote(node.target)} in training mode or with random numbers; "
                               f"export it after model.eval()")


def prunable_specs(ep) -> dict:
    """name -> TensorSpec of each parameter that is the weight of a linear or conv op."""
    params = ep.graph_signature.inputs_to_parameters  # placeholder name -> parameter name
    specs = {}
    for node in ep.graph.nodes:
        if node.op != "call_function" or _op(node) not in WEIGHT_OPS or len(node.args) < 2:
            continue
        if _op(node) == "aten::convolution" and len(node.args) > 6 and node.args[6]:
            continue  # transposed convolution: (in, out, ...) layout
        weight = node.args[1]
        name = params.get(getattr(weight, "name", None))
        if name is not None and name not in specs and ep.state_dict[name].ndim >= 2:
            specs[name] = TensorSpec(name, tuple(ep.state_dict[name].shape), (), _unit_params(node, params))
    return specs


BATCH_NORMS = {"aten::_native_batch_norm_legit_no_training", "aten::batch_norm", "aten::native_batch_norm"}


def _unit_params(node, params: dict) -> tuple:
    """The parameters of one weight call's output units: its bias argument, and the scale and
    shift of a batch norm that is the call's only user."""
    names = [params.get(getattr(node.args[2], "name", None)) if len(node.args) > 2 else None]
    users = list(node.users)
    if len(users) == 1 and _op(users[0]) in BATCH_NORMS and len(users[0].args) > 2:
        names += [params.get(getattr(a, "name", None)) for a in users[0].args[1:3]]
    return tuple(n for n in names if n is not None)


def input_spec(ep) -> tuple:
    """(per-example shape, static batch size or None, dtype) of the program's one tensor input."""
    users = ep.graph_signature.user_inputs
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    vals = [nodes[u].meta.get("val") for u in users if u in nodes]
    if len(users) != 1 or not isinstance(vals[0], torch.Tensor):
        raise PruningError("the program must take exactly one tensor (a batch of images); "
                           f"it takes {len(users)} inputs")
    shape = vals[0].shape
    batch = shape[0] if shape and isinstance(shape[0], int) else None
    if any(not isinstance(d, int) for d in shape[1:]) or not shape:
        raise PruningError(f"the program's input shape {tuple(shape)} must be fixed except for the batch dimension")
    return tuple(int(d) for d in shape[1:]), batch, vals[0].dtype


class _Sizes(TorchDispatchMode):
    """Records the largest tensor any operator returns (by its shape, so a huge ``expand`` view
    counts in full) and the elements written in all; refuses as soon as a tensor is over budget."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch, self.largest, self.elements = batch, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                nbytes = t.numel() * t.element_size()
                self.largest, self.elements = max(self.largest, nbytes), self.elements + t.numel()
                if nbytes > MAX_INTERMEDIATE:
                    raise PruningError(f"the program makes a {nbytes / 2**20:.0f} MB tensor ({func}) at batch size "
                                       f"{self.batch}; the limit is {MAX_INTERMEDIATE / 2**20:.0f} MB")
        return out


def check_budget(module, state: dict, image: tuple, batch: int, dtype) -> None:
    """Run ``module`` once on fake tensors (shapes only) with ``state`` and a batch of ``batch``
    inputs of shape ``image``; refuse it if a tensor is over MAX_INTERMEDIATE bytes or its work
    (FLOPs of matmuls and convolutions, plus the elements every operator writes) is over
    MAX_FLOPS_PER_IMAGE per image."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            params = {k: mode.from_tensor(v) for k, v in state.items()}
            x = torch.zeros((batch, *image), dtype=dtype)
            with FlopCounterMode(display=False) as flops, _Sizes(batch) as sizes:
                torch.func.functional_call(module, params, (x,))
    except PruningError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PruningError(f"cannot work out the program's cost on fake tensors at batch size {batch} "
                           f"({first_line(exc)})") from None
    work = (flops.get_total_flops() + sizes.elements) / batch
    if work > MAX_FLOPS_PER_IMAGE:
        raise PruningError(f"the program needs {work / 1e9:.1f} GFLOP per image; the limit is "
                           f"{MAX_FLOPS_PER_IMAGE / 1e9:.0f} GFLOP")


def layout(image: tuple, expected: tuple):
    """A function (n, *image) float tensor -> (n, *expected), or a PruningError naming the choices."""
    if len(image) == 2:
        h, w = image
        choices = {(1, h, w): lambda t: t.unsqueeze(1), (h, w, 1): lambda t: t.unsqueeze(-1),
                   (h, w): lambda t: t, (h * w,): lambda t: t.flatten(1)}
    else:
        h, w, c = image
        chw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
        choices = {(c, h, w): lambda t: chw(t).contiguous(), (h, w, c): lambda t: t,
                   (c * h * w,): lambda t: chw(t).flatten(1)}
    if expected not in choices:
        raise PruningError(f"the program's input is {expected} per example; for images of shape {image} "
                           f"it must be one of: {', '.join(map(str, choices))}")
    return choices[expected]


def to_numpy(state: dict) -> dict:
    """Read-only numpy copies; float16/bfloat16 become float32 (cast back in the forward pass)."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point() and v.dtype not in (torch.float32, torch.float64):
            v = v.float()
        arr = v.numpy().copy()
        arr.setflags(write=False)
        out[k] = arr
    return out


class Pt2Model:
    framework = "torch"

    def __init__(self, name: str, info: dict, programs: dict):
        """``programs`` maps weight-set name ("final", maybe "init") to an ExportedProgram."""
        self.name, self.info, self.dataset = name, info, info["dataset"]
        self.device = device()
        final = programs["final"]
        check_graph(final)
        self.specs = prunable_specs(final)
        if not self.specs:
            raise PruningError("the program has no prunable layer (no linear or convolution weight)")
        self.output_name = list(self.specs)[-1]
        self.input_shape, self.static_batch, self._dtype = input_spec(final)
        self.batch_size = self.static_batch or EVAL_BATCH
        self._module = final.module()
        check_budget(self._module, final.state_dict, self.input_shape, self.batch_size, self._dtype)
        self._dtypes = {k: v.dtype for k, v in final.state_dict.items()}
        self.states = {}
        for which, ep in programs.items():
            shapes = {k: tuple(v.shape) for k, v in ep.state_dict.items()}
            if shapes != {k: tuple(v.shape) for k, v in final.state_dict.items()}:
                raise PruningError(f"the {which} program's parameters differ from the final program's")
            self.states[which] = to_numpy(ep.state_dict)
        self._tensors = {w: {k: self._tensor(k, v) for k, v in s.items()} for w, s in self.states.items()}
        self._local = threading.local()

    def _tensor(self, name, arr):
        arr = arr if arr.flags.writeable and arr.flags.c_contiguous else arr.copy()
        return torch.from_numpy(arr).to(self.device, self._dtypes[name])

    def weights(self, which: str = "final") -> dict:
        return {name: self.states[which][name] for name in self.specs}

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x)
        t = torch.from_numpy(x.astype(np.float32)).div_(255.0)
        return layout(x.shape[1:], self.input_shape)(t).to(self.device, self._dtype)

    def _thread_module(self):
        module = getattr(self._local, "module", None)
        if module is None:
            module = self._local.module = copy.deepcopy(self._module).to(self.device)
        return module

    @torch.inference_mode()
    def logits(self, prunable: dict, base: str, x: torch.Tensor) -> np.ndarray:
        """Logits (n, classes) with ``prunable`` replacing the kernels of weight set ``base``."""
        # fresh copies of every tensor and input batch: an in-place operator in the program must not
        # change what other calls and threads see
        params = {k: v.clone() for k, v in self._tensors[base].items() if k not in prunable}
        params.update({k: self._tensor(k, v) for k, v in prunable.items()})
        module, out = self._thread_module(), []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i:i + self.batch_size].clone()
            n = len(chunk)
            if self.static_batch and n < self.static_batch:  # a static batch: pad, then drop the padding
                chunk = torch.cat([chunk, chunk.new_zeros((self.static_batch - n, *chunk.shape[1:]))])
            y = torch.func.functional_call(module, params, (chunk,))
            if not isinstance(y, torch.Tensor):
                raise PruningError(f"the program must return one tensor of logits, not a {type(y).__name__}")
            out.append(y[:n])
        return torch.cat(out).float().cpu().numpy()
