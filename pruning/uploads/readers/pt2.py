""".pt2: a ``torch.export`` program; only its plain tensors are read (pt2_model.py has the rest).

The visitor's file is never given to torch.  ``check_pt2`` vets it with ``archive.read_zip`` and
checks what torch 2.13's loader (``torch/export/pt2_archive/_package.py``, ``torch/_export/serde/
serialize.py``, ``torch/export/_unlift.py``) would otherwise unpickle, import or execute:

- ``use_pickle`` entries of the weights/constants configs: ``torch.load(weights_only=False)``;
- constants named ``custom_obj_*`` / ``opaque_obj_*``: ``torch._C._pickle_load_obj`` / ``pickle.loads``;
- legacy ``data/weights/<model>.pt``, ``data/constants/<model>.pt``, the pre-2.7 zip layout and the
  sample inputs: ``deserialize_torch_artifact``, which falls back to ``weights_only=False``;
- ``expr_str`` of symbolic sizes in ``models/model.json``: ``sympy.sympify``, that is ``eval``;
- treespec contexts with ``__enum__`` or a defaultdict factory: ``importlib.import_module``;
- ``guards_code`` in ``models/model.json``: ``exec`` when ``ExportedProgram.module()`` is called;
- ``data/aotinductor/``: compiled code;
- node targets and ``as_operator`` arguments, in every graph (nested graphs of higher-order ops
  included): ``deserialize_operator`` walks attributes from ``torch``, ``operator`` or ``math``
  (``torch.os.system`` is one), so only registered ``torch.ops.aten.<op>.<overload>`` operators
  and ``_operator.getitem`` are accepted.
Such members and entries are refused, as are weight and constant members that are missing or
shorter than the tensors their configs view in them (truncated or corrupt files, which torch would
report only as "check the warnings above").  ``read_pt2`` then loads an archive rebuilt from the
vetted members in a private temporary directory, with empty sample inputs and no guards code,
inside ``no_unpickling()``.
"""

from contextlib import contextmanager
import io
import json
import math
import os
from pathlib import Path
import pickle
import re
import tempfile
import threading

from ...errors import PruningError, quote
from .archive import read_zip, write_zip
from .common import _LOADING, MAX_UNPACKED, fail, quiet

REFUSE = "only plain torch.export programs are accepted (no pickled payloads, custom objects or compiled code)"
_PT2_MEMBERS = re.compile(r"[\w.-]+/(archive_format|archive_version|byteorder|\.data/[\w.-]+|models/model\.json|"
                          r"data/weights/(model_weights_config\.json|weight_\d+)|extra/[\w./-]+|"
                          r"data/constants/(model_constants_config\.json|tensor_\d+)|data/sample_inputs/model\.pt)",
                          re.ASCII)
# raw tensor bytes may start like a gzip or zip by chance; the sample inputs are a torch.save zip
_MAY_LOOK_NESTED = re.compile(r"[\w.-]+/data/(weights/weight_\d+|constants/tensor_\d+|sample_inputs/model\.pt)",
                              re.ASCII)
_CONFIGS = {"data/weights/model_weights_config.json": re.compile(r"weight_\d+", re.ASCII),
            "data/constants/model_constants_config.json": re.compile(r"tensor_\d+", re.ASCII)}
MAX_DIM = 2**31  # a declared tensor dimension, stride or offset above this is absurd

# symbolic sizes (srepr of sympy expressions, e.g. "Mul(Integer(16), Symbol('s77', integer=True))"):
# only these names, symbol names like s77 or u0, numbers, short quoted names and arithmetic;
# no attribute access, underscores at the start of a name, '**' or Pow (huge exact powers)
_SYM_TOKEN = re.compile(r"\s+|[A-Za-z]\w*|\d+(\.\d+)?([eE][-+]?\d+)?|'[A-Za-z0-9_.+-]{0,64}'|[-+*/%(),<>=!]",
                        re.ASCII)
_SYM_NAMES = {
    "Symbol", "Integer", "Float", "Rational", "Mul", "Add", "Max", "Min", "Mod", "Eq", "Ne", "Lt", "Le", "Gt",
    "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "Equality", "Unequality", "And",
    "Or", "Not", "Abs", "floor", "ceiling", "Piecewise", "ExprCondPair", "true", "false", "True", "False",
    "BooleanTrue", "BooleanFalse", "oo", "zoo", "nan", "Infinity", "NegativeInfinity", "IntInfinity",
    "NegativeIntInfinity", "NegativeOne", "One", "Zero", "Half", "integer", "positive", "nonnegative",
    "negative", "nonpositive", "real", "finite", "infinite", "precision", "commutative", "zero", "nonzero",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat",
    "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity"}
_SYMBOL = re.compile(r"[a-z]{1,5}\d{1,9}", re.ASCII)
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.(\w+)\.(\w+)", re.ASCII)
ONLY_ATEN = "a program may call aten tensor operators only"


def _safe_sym_expr(text) -> bool:
    """Whether ``sympy.sympify`` may see ``text``: every token a known name, symbol, number or operator."""
    if not isinstance(text, str) or len(text) > 10_000:
        return False
    at = 0
    while at < len(text):
        token = _SYM_TOKEN.match(text, at)
        if token is None:
            return False
        word = token.group()
        if word[0].isalpha() and word not in _SYM_NAMES and not _SYMBOL.fullmatch(word):
            return False
        at = token.end()
    return True


def _allowed_target(target) -> bool:
    """Whether a serialized call target is ``_operator.getitem`` or a registered aten operator
    overload, ``torch.ops.aten.<op>.<overload>`` (checked in the operator registry first, so
    nothing is looked up by a name from the file that is not an aten operator)."""
    import torch

    if target == "_operator.getitem":
        return True
    match = _ATEN_TARGET.fullmatch(target) if isinstance(target, str) else None
    if match is None:
        return False
    op, overload = match.groups()
    schemas = torch._C._jit_get_schemas_for_operator(f"aten::{op}")
    if not any((s.overload_name or "default") == overload for s in schemas):
        return False
    return isinstance(getattr(getattr(torch.ops.aten, op, None), overload, None), torch._ops.OpOverload)


def _check_targets(item: dict, label: str) -> None:
    """The call targets of a graph (``nodes``) and operators passed as arguments (``as_operator``)."""
    targets = []
    if "nodes" in item:
        nodes = item["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
            raise PruningError(f"{label} holds a graph whose nodes are not a list of objects: {REFUSE}")
        targets += [node.get("target") for node in nodes]
    if "as_operator" in item:
        targets.append(item["as_operator"])
    for target in targets:
        if not _allowed_target(target):
            raise PruningError(f"{label} calls {quote(target, 80)}, which is not an allowed operator: {ONLY_ATEN}")


def _check_program_json(doc, label: str) -> None:
    """Refuse symbolic sizes that are not plain arithmetic, treespecs that would import modules
    (also inside JSON strings nested in the program, as treespecs are), and call targets that are
    not aten operators (in every graph and operator argument)."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__enum__" in item or "default_factory_module" in item:
                raise PruningError(f"{label} names Python classes or factories to import: {REFUSE}")
            _check_targets(item, label)
            if "expr_str" in item and not _safe_sym_expr(item["expr_str"]):
                raise PruningError(f"{label} holds a symbolic size that is not plain arithmetic "
                                   f"({quote(item['expr_str'], 60)}): {REFUSE}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.strip()[:1] in ("{", "["):
            try:
                stack.append(json.loads(item))
            except ValueError:
                pass


def _element_size(meta: dict) -> int:
    import torch
    from torch._export.serde.schema import ScalarType
    from torch._export.serde.serialize import deserialize_scalar_type

    return torch.empty(0, dtype=deserialize_scalar_type(ScalarType(meta["dtype"]))).element_size()


def _layout(meta: dict, label: str) -> tuple:
    """(sizes, strides, storage offset) of a tensor as its config declares it; refuses negative or
    absurd sizes, strides and offsets."""
    sizes = [d["as_int"] for d in meta["sizes"]]
    strides = [d["as_int"] for d in meta["strides"]]
    offset = meta["storage_offset"]["as_int"]
    if len(sizes) > 16 or any(type(n) is not int or not 0 <= n <= MAX_DIM for n in [*sizes, *strides, offset]):
        raise PruningError(f"{label} declares a tensor with a negative or absurd size, stride or offset "
                           f"({quote(sizes, 60)})")
    return sizes, strides, offset


def _check_config(config: dict, path_rule, label: str) -> int:
    """Refuse pickled entries and entries that name other records; return the declared bytes."""
    declared = 0
    for entry in config["config"].values():
        if entry.get("use_pickle"):
            raise PruningError(f"{label} holds pickled tensors: {REFUSE}")
        if not isinstance(entry.get("path_name"), str) or not path_rule.fullmatch(entry["path_name"]):
            raise PruningError(f"{label} has a tensor stored as {quote(entry.get('path_name'), 60)}: {REFUSE}")
        sizes, _, _ = _layout(entry["tensor_meta"], label)
        declared += math.prod(sizes) * _element_size(entry["tensor_meta"])
    return declared


def _check_records(config: dict, label: str, stored: dict) -> None:
    """Refuse records missing, or shorter than the tensors viewed in them (``stored``: record name
    -> its size in bytes), before torch reads them: torch reads a record as a flat storage of the
    dtype of the first entry naming it (an empty record: zeros of that entry's size), and each
    entry as a strided view into it, which must fit."""
    storage_meta = {}
    for fqn, entry in config["config"].items():
        record, meta = entry["path_name"], entry["tensor_meta"]
        if record not in stored:
            raise PruningError(f"cannot read {label}: not a valid .pt2 program (truncated or corrupt weights: "
                               f"{quote(record, 40)}, which holds {quote(fqn, 60)}, is missing)")
        item, have = _element_size(storage_meta.setdefault(record, meta)), stored[record]
        if have == 0:
            continue
        sizes, strides, offset = _layout(meta, label)
        # a hostile file's sizes and strides may differ in length: checked first below, before `need` is used
        need = 0 if 0 in sizes else (offset + sum((n - 1) * s for n, s in zip(sizes, strides, strict=False)) + 1) * item
        if len(sizes) != len(strides):
            problem = f"holds {quote(fqn, 60)} with {len(sizes)} sizes but {len(strides)} strides"
        elif have < need:
            problem = f"holds {have:,} bytes; {quote(fqn, 60)} needs {need:,}"
        elif have % item:
            problem = f"holds {have:,} bytes, not a whole number of {item}-byte values"
        else:
            continue
        raise PruningError(f"cannot read {label}: not a valid .pt2 program (truncated or corrupt weights: "
                           f"{quote(record, 40)} {problem})")


@contextmanager
def no_unpickling():
    """While a vetted program loads: ``torch.load`` is forced to ``weights_only`` (via
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), and in this thread ``pickle.load``/``loads``, the globals of
    any ``pickle.Unpickler`` and torch's C++ ``_pickle_load_obj`` refuse.  Other threads keep
    plain pickle; one load at a time."""
    import torch

    me = threading.get_ident()

    def refusing(original):
        def call(*args, **kwargs):
            if threading.get_ident() == me:
                raise pickle.UnpicklingError("unpickling is refused while a visitor's program loads")
            return original(*args, **kwargs)
        return call

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if threading.get_ident() == me:
                raise pickle.UnpicklingError(f"unpickling {quote(f'{module}.{name}')} is refused "
                                             "while a visitor's program loads")
            return super().find_class(module, name)

    with _LOADING:
        patched = [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch._C, "_pickle_load_obj")]
        saved = [getattr(obj, name) for obj, name in patched]
        env = {k: os.environ.get(k) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
        try:
            pickle.load, pickle.loads = refusing(pickle.load), refusing(pickle.loads)
            pickle.Unpickler, torch._C._pickle_load_obj = Unpickler, refusing(torch._C._pickle_load_obj)
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
            yield
        finally:
            for (obj, name), value in zip(patched, saved, strict=True):
                setattr(obj, name, value)
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def check_pt2(path) -> dict:
    """Vet a .pt2 and return its members, ready for ``write_zip``: the sample inputs emptied (torch
    then unpickles nothing of them) and the guards code dropped.  Refuses a .pt2 whose loading
    would unpickle anything, import modules, evaluate code or load compiled code."""
    import torch

    name = Path(path).name
    members = read_zip(path, name, ".pt2 program", allow=_PT2_MEMBERS, why=REFUSE, nested=_MAY_LOOK_NESTED)
    roots = {n.split("/", 1)[0] for n in members}
    if len(roots) != 1:
        raise PruningError(f"{name} is not a torch.export program (its members are not in one folder)")
    root = roots.pop() + "/"
    if root + "models/model.json" not in members:
        raise PruningError(f"{name} is not a torch.export program (no models/model.json)")
    try:
        configs = {config: json.loads(members[root + config]) for config in _CONFIGS if root + config in members}
        declared = sum(_check_config(config, _CONFIGS[where], name) for where, config in configs.items())
        if declared > MAX_UNPACKED:  # empty records are allocated at their declared size
            raise PruningError(f"{name} declares more than {MAX_UNPACKED / 2**20:.0f} MB of tensors")
        for where, config in configs.items():
            folder = root + where.rsplit("/", 1)[0] + "/"
            _check_records(config, name, {n[len(folder):]: len(data) for n, data in members.items()
                                          if n.startswith(folder)})
        program = json.loads(members[root + "models/model.json"])
        _check_program_json(program, name)
        program["guards_code"] = []  # exec'd by ExportedProgram.module(); only needed to check inputs
        members[root + "models/model.json"] = json.dumps(program).encode()
        sample = members.get(root + "data/sample_inputs/model.pt")
        if sample:
            with no_unpickling():
                torch.load(io.BytesIO(sample), weights_only=True)
            members[root + "data/sample_inputs/model.pt"] = b""  # no example inputs: nothing to unpickle
    except PruningError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise fail(path, ".pt2 program", exc) from None
    return members


def read_pt2(path):
    """The ``ExportedProgram`` of a vetted .pt2, loaded from a fresh archive of its vetted members."""
    import torch

    members = check_pt2(path)
    try:
        with tempfile.TemporaryDirectory(prefix="pruning-pt2-") as tmp:
            rebuilt = Path(tmp) / "model.pt2"
            write_zip(members, rebuilt)
            with quiet(), no_unpickling():
                return torch.export.load(str(rebuilt))
    except Exception as exc:  # noqa: BLE001
        raise fail(path, ".pt2 program", exc) from None


def pt2_model(name, info, path, init_path, architecture=None):
    """A Pt2Model of the vetted programs of ``path`` (and ``init_path``); ``architecture`` is unused:
    a program holds its own."""
    from ...models.pt2_model import Pt2Model

    programs = {"final": read_pt2(path)}
    if init_path is not None:
        programs["init"] = read_pt2(init_path)
    return Pt2Model(name, info, programs)
