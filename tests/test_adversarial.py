"""The adversarial suite: hostile uploads, each run end to end through ``pruning.load_upload``
(parsed, loaded and evaluated in a sandboxed worker of a module-wide ``Pool``, one owner), and
hostile files given to the command line in a subprocess under ``resource`` limits.

Every case asserts:
  (1) a ``PruningError`` with one line (no newline, under 400 characters) that says what is wrong
      (a distinctive word or phrase per case);
  (2) no code ran: every payload only creates a marker (an absolute file in tmp_path, and a unique
      relative name, which would land in the worker's home where its audit hook lets it write);
      no marker exists afterwards, and the message does not come from the worker's audit hook
      ("refused in the sandbox" would mean the readers let a payload start);
  (3) time and memory stayed under the limits: the call took less than the pool's timeout; the
      worker's peak resident memory (VmHWM) is under ``limits.memory_mb`` + MEMORY_MARGIN_MB; the
      server process's resident memory grew by less than SERVER_GROWTH_MB;
  (4) the message holds nothing the page would render as Markdown or HTML: no ``](`` and no ``<``.

MEMORY_MARGIN_MB: RLIMIT_DATA bounds a worker's private memory, but VmHWM also counts the shared
libraries it maps.  A worker that loaded the zoo's lenet300 (.safetensors, PyTorch) and two .keras
models (TensorFlow) peaks at VmHWM 1.07 GB, of which 0.64 GB is file-backed (RssFile); the margin,
1024 MB, is that with room to spare.

Cases (CASES below; test_the_table_counts_the_cases keeps this table honest):

| class      | cases | what                                                                                  |
| ---------- | ----- | ------------------------------------------------------------------------------------- |
| pickle     | 13    | raw pickles and torch.save archives under every accepted suffix and pickled ones; init |
| pt2        | 40    | duplicate / case-duplicate members with payloads, use_pickle, pickled sample inputs,   |
|            |       | custom objects, odd and nested members, traversal, bombs, 780 MB unpacked, lying      |
|            |       | sizes, absurd tensor sizes, FLOP and memory budgets, aten I/O ops, torch.os.system as |
|            |       | a node target (also in a nested graph), truncated weights and programs, deep          |
|            |       | programs, sympify code, imports                                                        |
| keras      | 28    | Lambda (marshalled code, as a layer and as an activation), custom objects (os,         |
|            |       | subprocess, builtins), function entries,                                               |
|            |       | duplicate config.json, nested zips, oversized / deep config, 10^9 units, unknown       |
|            |       | classes, huge inputs, a padding bomb, h5 links / external storage / shape bombs, odd   |
|            |       | members, bombs                                                                         |
| safetensors| 21    | header length past the file / huge, 10,000 tensors, dtypes, shapes, offsets, no zoo    |
|            |       | architecture, Markdown / HTML / newline tensor names, bad JSON, int weights, an init  |
| legacy     | 4     | HDF5 files (.h5, .hdf5, and HDF5 bytes named .keras / .safetensors)                    |
| bytes      | 8     | empty, random, truncated files, unsupported suffixes                                   |
| size       | 2     | an upload whose declared size is over the limit (refused before its bytes are read)   |
| name       | 5     | file names with newlines, Markdown, HTML, traversal, 5,000 characters                 |
| cli        | 8     | python -m pruning evaluate --model-file / --mask with hostile files (subprocess)      |

The whole file takes about 25 s on 2 cores (the worker is started once and never killed).
"""

import io
import json
import os
import re
import resource
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import hostile as h
import numpy as np
import pytest
from hostile import Marker

import pruning
from pruning.uploads.sandbox import Limits, Pool

ROOT = Path(__file__).resolve().parent.parent
OWNER = "adversary"
MEMORY_MARGIN_MB = 1024
SERVER_GROWTH_MB = 200
MiB = 2**20


class Upload(io.BytesIO):
    """What Streamlit's file_uploader returns: a BytesIO with a name and a size."""

    def __init__(self, data: bytes, name: str, size: int | None = None):
        super().__init__(data)
        self.name, self.size = name, len(data) if size is None else size


class Unread(Upload):
    """An upload whose bytes must never be read (its declared size is already over the limit)."""

    def getvalue(self):
        raise AssertionError("the bytes of an upload declared over the limit were read")

    def read(self, *args):
        raise AssertionError("the bytes of an upload declared over the limit were read")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the class in the module docstring's table
    name: str  # the uploaded file's name
    build: object  # Marker -> bytes
    word: str  # a regex the message must contain: what is wrong
    init: object = None  # Marker -> (name, bytes) of a hostile init file
    size: int | None = None  # a declared size (an Unread upload)


# --- builders of the cases ---------------------------------------------------------------------

def pt2_plus(*extra):
    return lambda m: h.zip_bytes([*h.members(h.tiny_pt2()), *extra])


def pt2_with_duplicate(name_end, evil, evil_first=False, rename=None):
    """The program with a second copy of the member ending in ``name_end`` (``evil(marker, bytes)``),
    named as the first or as ``rename(name)`` (a case variant)."""
    def build(m):
        entries = []
        for name, data in h.members(h.tiny_pt2()):
            entries.append((name, data))
            if name.endswith(name_end):
                copy = ((rename or (lambda n: n))(name), evil(m, data))
                entries.insert(len(entries) - 1 if evil_first else len(entries), copy)
        return h.zip_bytes(entries)
    return build


def pt2_weights_config(change):
    def build(m):
        def apply(config):
            change(h.first_weight(config), m)
        return h.edit_json(h.tiny_pt2(), "model_weights_config.json", apply)
    return build


def set_sizes(sizes):
    def change(entry, m):
        entry["tensor_meta"]["sizes"] = [{"as_int": n} for n in sizes]
    return change


def pickled_config(data: bytes) -> bytes:
    """A weights config whose first tensor is pickled (torch.load(weights_only=False) in torch's loader)."""
    config = json.loads(data)
    h.first_weight(config)["use_pickle"] = True
    return json.dumps(config).encode()


def use_pickle(m):
    data = h.edit(h.tiny_pt2(), "model_weights_config.json", pickled_config)
    return h.edit(data, "weights/weight_0", lambda _: h.torch_payload(m))


SYM = "Symbol('s77', positive=True, integer=True)"


def sympify_code(m):
    code = f"{SYM} + 0*len(__import__('os').system({m.shell!r}) or '')"
    return h.edit(h.tiny_pt2(), "models/model.json", lambda d: d.replace(SYM.encode(), code.encode()))


def enum_import(m):
    def change(program):
        signature = program["graph_module"]["module_call_graph"][0]["signature"]
        protocol, spec = json.loads(signature["in_spec"])
        spec["context"] = json.dumps({"__enum__": True, "fqn": "os:system", "name": m.shell})
        signature["in_spec"] = json.dumps([protocol, spec])
    return h.edit_json(h.tiny_pt2(), "models/model.json", change)


def declared(name_end, size, compression=zipfile.ZIP_DEFLATED):
    def build(m):
        entries = h.members(h.tiny_pt2())
        data = h.zip_bytes(entries, compression)
        return h.declare_size(data, next(n for n, _ in entries if n.endswith(name_end)), size)
    return build


def pt2_member_edit(name_end, change):
    return lambda m: h.edit(h.tiny_pt2(), name_end, change)


def keras_edit(change):
    """The zoo .keras with its config changed by ``change(config, marker)``."""
    def build(m):
        config = h.keras_config(h.zoo_keras())
        change(config, m)
        return h.with_config(config)
    return build


def lambda_layer(config, m):
    layer = h.keras_layer(config, "fc1")
    layer.update(class_name="Lambda", module="keras.layers")
    layer["config"] = {"name": "fc1", "function": h.marshalled_lambda(m), "arguments": {}}


def lambda_activation(config, m):
    """A Dense layer whose activation is a ``__lambda__`` (marshalled code, not a Lambda layer)."""
    h.keras_layer(config, "fc1")["config"]["activation"] = h.marshalled_lambda(m, layer=False)


def custom_layer(module, cls, extra=None):
    def change(config, m):
        layer = h.keras_layer(config, "fc1")
        layer.update(module=module, class_name=cls, registered_name=None)
        layer["config"].update(extra(m) if extra else {})
    return change


def activation(module, name):
    def change(config, m):
        h.keras_layer(config, "fc1")["config"]["activation"] = {"module": module, "class_name": "function",
                                                                "config": name, "registered_name": None}
    return change


def fc1(**values):
    def change(config, m):
        h.keras_layer(config, "fc1")["config"].update(values)
    return change


def keras_layer_class(cls):
    def change(config, m):
        h.keras_layer(config, "fc1")["class_name"] = cls
    return change


def huge_input(config, m):
    h.keras_layer(config, "pixels")["config"]["batch_shape"] = [None, 100_000, 100_000]


def keras_extra(*extra):
    """The zoo .keras with more members."""
    return lambda m: h.zip_bytes([*h.members(h.zoo_keras()), *extra])


def keras_entries(entries):
    return lambda m: h.zip_bytes(entries(m))


def lambda_config(m):
    config = h.keras_config(h.zoo_keras())
    lambda_layer(config, m)
    return json.dumps(config).encode()


def duplicate_config(rename="config.json"):
    def entries(m):
        return [*h.members(h.zoo_keras()), (rename, lambda_config(m))]
    return keras_entries(entries)


def oversized_config(m):
    config = h.keras_config(h.zoo_keras())
    config["padding"] = h.random_bytes(2**20, 1).hex()  # 2 MB that do not compress like a bomb
    return h.with_config(config)


def deep_config(m):
    text = json.dumps(h.keras_config(h.zoo_keras()))
    return h.with_config((text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode())


def weights(build):
    """The zoo .keras with model.weights.h5 replaced by an HDF5 file that ``build(h5py.File, marker)`` writes."""
    def make(m):
        import h5py

        h5 = h.h5_bytes(lambda f: build(f, m, h5py))
        return h.zip_bytes([(n, h5 if n == "model.weights.h5" else d) for n, d in h.members(h.zoo_keras())])
    return make


def external_link(f, m, h5py):
    f.create_group("layers")
    f["layers/fc1"] = h5py.ExternalLink(str(m.path), "/stolen")


def external_storage(f, m, h5py):
    Path(m.path).with_suffix(".raw").write_bytes(bytes(16))  # data from a file of the server's
    f.create_dataset("layers/fc1/vars/0", shape=(4,), dtype="f4", external=[(str(m.path.with_suffix(".raw")), 0, 16)])


def soft_link(f, m, h5py):
    f.create_dataset("layers/fc1/vars/0", data=np.zeros(4, np.float32))
    f["layers/fc2"] = h5py.SoftLink("/layers/fc1")


def shape_bomb(f, m, h5py):
    f.create_dataset("layers/fc1/vars/0", shape=(10**6, 10**6), dtype="f4", chunks=(1, 1000))


def st_zoo_plus(name):
    def build(m):
        state = h.zoo_state()
        state[name] = np.zeros(3, np.float32)
        return h.safetensors_with(state)
    return build


def st_header(header, data=b"", length=None):
    return lambda m: h.safetensors_raw(header, data, length)


def huge_header(m):
    n = 16 * MiB + 1
    return h.safetensors_raw(b"{", bytes(n + 100), length=n)


def many_tensors(m):
    return h.safetensors_raw({f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(10_000)})


def past_the_end(m):
    header = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return h.safetensors_raw(header + bytes(4), length=len(header) + 10)  # less than the file, more than remains


def truncated(data_fn, fraction=0.5):
    def build(m):
        data = data_fn()
        return data[:int(len(data) * fraction)]
    return build


def init_pickle(m):
    return "mine-init.safetensors", h.torch_payload(m)


def init_other_shapes(m):
    return "mine-init.safetensors", h.safetensors_with({"fc1.weight": np.zeros((3, 3), np.float32)})


def zoo_st(m):
    return h.zoo_safetensors()


def pickle_as(opener=False, protocol=4):
    return lambda m: h.pickle_payload(m, protocol, opener)


def pickled_sample(torch_zip: bool):
    """A .pt2 whose data/sample_inputs/model.pt (which torch would unpickle) holds a payload."""
    def build(m):
        payload = h.torch_payload(m) if torch_zip else h.pickle_payload(m)
        return h.edit(h.tiny_pt2(), "sample_inputs/model.pt", lambda d: payload)
    return build


def torch_saved(m):
    return h.torch_payload(m)


def padding_bomb(config, m):
    """Two weightless layers after the output: a Reshape to (10, 1), then ZeroPadding1D adding 10^8
    steps on each side (2 x 10^8 values per example, 800 GB at a batch of 1000); every declared
    shape is small, only Keras's own shape inference shows the size."""
    def tensor(shape, source):
        return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32",
                                                             "keras_history": [source, 0, 0]}}
    config["config"]["layers"] += [
        {"module": "keras.layers", "class_name": "Reshape", "config": {"name": "r", "target_shape": [10, 1]},
         "registered_name": None, "name": "r", "inbound_nodes": [{"args": [tensor([None, 10], "fc3")], "kwargs": {}}]},
        {"module": "keras.layers", "class_name": "ZeroPadding1D", "config": {"name": "pad", "padding": [10**8, 10**8]},
         "registered_name": None, "name": "pad",
         "inbound_nodes": [{"args": [tensor([None, 10, 1], "r")], "kwargs": {}}]}]
    config["config"]["output_layers"] = ["pad", 0, 0]


def target_os_system(m):
    """A program whose first node's target is ``torch.os.system`` (the deserializer walks attributes
    from ``torch``), with the verifier list emptied: calling the graph would run the command."""
    def rewrite(doc):
        doc["verifiers"] = []
        graph = doc["graph_module"]["graph"]
        node = graph["nodes"][0]
        node.update(target="torch.os.system", inputs=[{"name": "command", "arg": {"as_string": m.shell}, "kind": 1}],
                    outputs=[{"as_tensor": {"name": "status"}}])
        graph["tensor_values"]["status"] = {
            "dtype": 7, "sizes": [{"as_int": 4}], "requires_grad": False, "device": {"type": "cpu", "index": None},
            "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0}, "layout": 7}
    return h.edit_json(h.io_op_pt2("_print", m), "models/model.json", rewrite)


def nested_target_os_system(m):
    """The program's first node given a nested graph (as higher-order operators such as ``cond``
    take their branches) whose first node's target is ``torch.os.system``."""
    def rewrite(doc):
        doc["verifiers"] = []
        graph = doc["graph_module"]["graph"]
        nested = json.loads(json.dumps(graph))
        nested["nodes"][0].update(target="torch.os.system",
                                  inputs=[{"name": "command", "arg": {"as_string": m.shell}, "kind": 1}])
        graph["nodes"][0]["inputs"].append({"name": "branch", "arg": {"as_graph": {"name": "g", "graph": nested}},
                                            "kind": 1})
    return h.edit_json(h.tiny_pt2(), "models/model.json", rewrite)


def deep_program(m):
    def deepen(data):
        return data[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return h.edit(h.tiny_pt2(), "models/model.json", deepen)


def unpacked_then_nested(m):
    """780 MB of members that pack about 110:1 (under every limit, read into the worker's memory),
    then a nested zip: refused only after all of it was unpacked."""
    blobs = [(f"tiny/extra/blob{i}", h.Blob(n * MiB, step=512)) for i, n in enumerate((200, 200, 200, 180))]
    return h.zip_bytes([*h.members(h.tiny_pt2()), *blobs, ("tiny/extra/inner", h.zip_bytes([("x", b"1")]))],
                       zipfile.ZIP_DEFLATED, 1)


def int_weights(m):
    return h.safetensors_with({k: v.astype(np.int64) for k, v in h.zoo_state().items()})


P = "pickle file"  # what byo says of every pickle
ONLY_PLAIN = "only plain"
CASES = [
    # --- raw pickles and torch.save archives, under every accepted suffix and pickled ones ---
    Case("pickle-as-safetensors", "pickle", "model.safetensors", pickle_as(), P),
    Case("pickle-as-pt2", "pickle", "model.pt2", pickle_as(), P),
    Case("pickle-as-keras", "pickle", "model.keras", pickle_as(), P),
    Case("pickle-as-pt", "pickle", "model.pt", pickle_as(), P),
    Case("pickle-open-as-pkl", "pickle", "weights.pkl", pickle_as(opener=True), P),
    Case("pickle-protocol2-as-bin", "pickle", "pytorch_model.bin", pickle_as(protocol=2), P),
    Case("pickle-protocol0-as-pt2", "pickle", "model.pt2", pickle_as(protocol=0), "not a valid .pt2 file"),
    Case("torchsave-as-safetensors", "pickle", "model.safetensors", torch_saved, P),
    Case("torchsave-as-pt2", "pickle", "model.pt2", torch_saved, P),
    Case("torchsave-as-keras", "pickle", "model.keras", torch_saved, P),
    Case("torchsave-as-pth", "pickle", "model.pth", torch_saved, P),
    Case("torchsave-as-ckpt", "pickle", "last.ckpt", torch_saved, P),
    Case("init-is-a-torchsave", "pickle", "mine.safetensors", zoo_st, P, init=init_pickle),
    # --- .pt2: the archive ---
    Case("pt2-duplicate-sample-evil-second", "pt2", "tiny.pt2",
         pt2_with_duplicate("sample_inputs/model.pt", lambda m, d: h.torch_payload(m)), "twice; duplicate names"),
    Case("pt2-duplicate-sample-evil-first", "pt2", "tiny.pt2",
         pt2_with_duplicate("sample_inputs/model.pt", lambda m, d: h.torch_payload(m), evil_first=True),
         "twice; duplicate names"),
    Case("pt2-case-duplicate-sample", "pt2", "tiny.pt2",
         pt2_with_duplicate("sample_inputs/model.pt", lambda m, d: h.torch_payload(m),
                            rename=lambda n: n.replace("model.pt", "MODEL.pt")), "differ only in case"),
    Case("pt2-case-duplicate-root", "pt2", "tiny.pt2",
         pt2_with_duplicate("models/model.json", lambda m, d: d.replace(SYM.encode(), b"__import__('os')"),
                            evil_first=True, rename=lambda n: n.replace("tiny/", "TINY/")), "differ only in case"),
    Case("pt2-duplicate-weights-config-pickled", "pt2", "tiny.pt2",
         pt2_with_duplicate("model_weights_config.json", lambda m, d: pickled_config(d)),
         "twice; duplicate names"),
    Case("pt2-use-pickle", "pt2", "tiny.pt2", use_pickle, "pickled tensors"),
    Case("pt2-torchsave-sample-inputs", "pt2", "tiny.pt2", pickled_sample(torch_zip=True), "not a valid .pt2 program"),
    Case("pt2-raw-pickle-sample-inputs", "pt2", "tiny.pt2", pickled_sample(torch_zip=False),
         "not a valid .pt2 program"),
    Case("pt2-custom-obj", "pt2", "tiny.pt2",
         pt2_weights_config(lambda e, m: e.update(path_name="custom_obj_0")), "stored as"),
    Case("pt2-unexpected-pkl-member", "pt2", "tiny.pt2", pt2_plus(("tiny/evil.pkl", b"\x80\x04N.")), P),
    Case("pt2-unexpected-py-member", "pt2", "tiny.pt2", pt2_plus(("tiny/code/evil.py", b"import os")), ONLY_PLAIN),
    Case("pt2-aotinductor", "pt2", "tiny.pt2", pt2_plus(("tiny/data/aotinductor/model/model.so", b"\x7fELF")),
         ONLY_PLAIN),
    Case("pt2-nested-zip", "pt2", "tiny.pt2", pt2_plus(("tiny/extra/inner", h.zip_bytes([("x", b"1")]))),
         "nested archives"),
    Case("pt2-two-roots", "pt2", "tiny.pt2", pt2_plus(("other/models/model.json", b"{}")), "one folder"),
    Case("pt2-traversal", "pt2", "tiny.pt2", pt2_plus(("tiny/../../../tmp/evil.py", b"x")), "'..' and odd names"),
    Case("pt2-absolute", "pt2", "tiny.pt2", pt2_plus(("/etc/cron.d/evil", b"x")), "absolute paths"),
    Case("pt2-backslash", "pt2", "tiny.pt2", pt2_plus(("tiny\\..\\..\\evil", b"x")), "odd names"),
    Case("pt2-zip-bomb", "pt2", "tiny.pt2",
         lambda m: h.zip_bytes([*h.members(h.tiny_pt2()), ("tiny/extra/zeros", bytes(16 * MiB))],
                               zipfile.ZIP_DEFLATED, 9), "zip bomb"),
    Case("pt2-780MB-unpacked-then-nested", "pt2", "tiny.pt2", unpacked_then_nested, "nested archives"),
    Case("pt2-lying-size-small", "pt2", "tiny.pt2", declared("weights/weight_0", 10), "CRC|header says"),
    Case("pt2-lying-size-300MB", "pt2", "tiny.pt2", declared("weights/weight_0", 300 * MiB),
         "unpacks to more than 200 MB"),
    Case("pt2-lying-size-4GB", "pt2", "tiny.pt2", declared("weights/weight_0", 2**32 - 1), "unpacks to more than"),
    Case("pt2-encrypted", "pt2", "tiny.pt2",
         lambda m: h.flag_encrypted(h.tiny_pt2(), h.members(h.tiny_pt2())[0][0]), "encrypted"),
    Case("pt2-bzip2", "pt2", "tiny.pt2", lambda m: h.zip_bytes(h.members(h.tiny_pt2()), zipfile.ZIP_BZIP2),
         "compression other than"),
    Case("pt2-1001-members", "pt2", "tiny.pt2",
         pt2_plus(*[(f"tiny/extra/m{i}", b"") for i in range(1001)]), "more than 1000 members"),
    # --- .pt2: the program ---
    Case("pt2-absurd-size", "pt2", "tiny.pt2", pt2_weights_config(set_sizes([2**40, 10])), "absurd"),
    Case("pt2-negative-size", "pt2", "tiny.pt2", pt2_weights_config(set_sizes([-1, -1])), "absurd"),
    Case("pt2-declares-4TB", "pt2", "tiny.pt2", pt2_weights_config(set_sizes([10**6, 10**6])),
         "declares more than 800 MB"),
    Case("pt2-over-flop-budget", "pt2", "gram.pt2", lambda m: h.gram_pt2(), "GFLOP per image"),
    Case("pt2-over-memory-budget", "pt2", "outer.pt2", lambda m: h.outer_pt2(), "MB tensor"),
    Case("pt2-aten-print", "pt2", "print.pt2", lambda m: h.io_op_pt2("_print", m), "_print"),
    Case("pt2-aten-save", "pt2", "save.pt2", lambda m: h.io_op_pt2("save", m), "aten.save"),
    Case("pt2-aten-from-file", "pt2", "read.pt2", lambda m: h.io_op_pt2("from_file", m), "aten.from_file"),
    Case("pt2-truncated-program-json", "pt2", "tiny.pt2",
         pt2_member_edit("models/model.json", lambda d: d[:len(d) // 2]),
         "not a valid .pt2 program"),
    Case("pt2-truncated-weights", "pt2", "tiny.pt2", pt2_member_edit("weights/weight_0", lambda d: d[:len(d) // 2]),
         r"truncated or corrupt weights: `weight_0` holds 15,680 bytes; `fc.weight` needs 31,360"),
    Case("pt2-target-os-system", "pt2", "tiny.pt2", target_os_system,
         "calls `torch.os.system`, which is not an allowed operator"),
    Case("pt2-nested-graph-os-system", "pt2", "tiny.pt2", nested_target_os_system,
         "calls `torch.os.system`, which is not an allowed operator"),
    Case("pt2-program-json-100000-deep", "pt2", "tiny.pt2", deep_program, "recursion"),
    Case("pt2-sympify-code", "pt2", "tiny.pt2", sympify_code, "not plain arithmetic"),
    Case("pt2-enum-import", "pt2", "tiny.pt2", enum_import, "classes or factories to import"),
    # --- .keras ---
    Case("keras-lambda-marshalled-code", "keras", "model.keras", keras_edit(lambda_layer),
         "Lambda layer .*arbitrary Python code"),
    Case("keras-lambda-activation", "keras", "model.keras", keras_edit(lambda_activation),
         "Python lambda as `activation` of `fc1`: Lambda functions are arbitrary Python code"),
    Case("keras-custom-os", "keras", "model.keras", keras_edit(custom_layer("os", "system")), "custom objects"),
    Case("keras-custom-subprocess", "keras", "model.keras",
         keras_edit(custom_layer("subprocess", "Popen", lambda m: {"args": ["touch", str(m.path)]})), "custom objects"),
    Case("keras-custom-builtins", "keras", "model.keras",
         keras_edit(custom_layer("builtins", "exec", lambda m: {"source": f"open({str(m.path)!r}, 'w')"})),
         "custom objects"),
    Case("keras-function-os-system", "keras", "model.keras", keras_edit(activation("os", "system")), "custom objects"),
    Case("keras-function-builtins-eval", "keras", "model.keras", keras_edit(activation("builtins", "eval")),
         "custom objects"),
    Case("keras-function-keras-get-file", "keras", "model.keras",
         keras_edit(activation("keras.src.utils.file_utils", "get_file")), "only Keras activations"),
    Case("keras-duplicate-config", "keras", "model.keras", duplicate_config(), "twice; duplicate names"),
    Case("keras-case-duplicate-config", "keras", "model.keras", duplicate_config("CONFIG.json"), "differ only in case"),
    Case("keras-nested-zip", "keras", "model.keras",
         keras_extra(("assets/inner.keras", h.zip_bytes([("config.json", b"{}")]))), "nested archives"),
    Case("keras-oversized-config", "keras", "model.keras", oversized_config, "the limit is 1 MB"),
    Case("keras-too-deep-config", "keras", "model.keras", deep_config, "nests deeper"),
    Case("keras-dense-1e9-units", "keras", "model.keras", keras_edit(fc1(units=10**9)), "parameters; the limit"),
    Case("keras-unknown-layer", "keras", "model.keras", keras_edit(keras_layer_class("EvilLayer")),
         "cannot be bounded"),
    Case("keras-markdown-layer-class", "keras", "model.keras",
         keras_edit(keras_layer_class("![x](http://evil/x.png)<img src=x onerror=alert(1)>")), "cannot be bounded"),
    Case("keras-huge-input", "keras", "model.keras", keras_edit(huge_input), "values per example"),
    Case("keras-zero-padding-bomb", "keras", "model.keras", keras_edit(padding_bomb), "values per example"),
    Case("keras-h5-external-link", "keras", "model.keras", weights(external_link), "ExternalLink"),
    Case("keras-h5-external-storage", "keras", "model.keras", weights(external_storage), "from other files"),
    Case("keras-h5-soft-link", "keras", "model.keras", weights(soft_link), "SoftLink"),
    Case("keras-h5-shape-bomb", "keras", "model.keras", weights(shape_bomb), "declares more than"),
    Case("keras-traversal", "keras", "model.keras", keras_extra(("../config.json", b"{}")), "'..' and odd names"),
    Case("keras-python-member", "keras", "model.keras", keras_extra(("evil.py", b"import os")), "holds only"),
    Case("keras-oversized-metadata", "keras", "model.keras",
         keras_entries(lambda m: [(n, h.random_bytes(70_000).hex().encode() if n == "metadata.json" else d)
                                  for n, d in h.members(h.zoo_keras())]), "metadata.json is over"),
    Case("keras-config-not-json", "keras", "model.keras", lambda m: h.with_config(b'{"class_name": '), "config.json"),
    Case("keras-zip-bomb", "keras", "model.keras",
         lambda m: h.zip_bytes([*h.members(h.zoo_keras()), ("assets/zeros", bytes(16 * MiB))], zipfile.ZIP_DEFLATED, 9),
         "zip bomb"),
    Case("keras-truncated", "keras", "model.keras", truncated(h.zoo_keras), "truncated or corrupt"),
    # --- .safetensors ---
    Case("st-header-past-the-end", "safetensors", "model.safetensors", past_the_end, "past the end"),
    Case("st-header-length-2e63", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), 2**63),
         "truncated or corrupt"),
    Case("st-huge-header", "safetensors", "model.safetensors", huge_header,
         r"declares a header of 16,777,217 bytes; the limit is 16 MB \(16,777,216 bytes\)"),
    Case("st-10000-tensors", "safetensors", "model.safetensors", many_tensors, "10000 tensors; the limit"),
    Case("st-bad-dtype", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16)), "dtype"),
    Case("st-negative-shape", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}, bytes(16)), "non-negative"),
    Case("st-overlapping-offsets", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24)), "overlap"),
    Case("st-out-of-range-offsets", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 2**40]}}, bytes(16)),
         "outside the data section"),
    Case("st-shape-bigger-than-data", "safetensors", "model.safetensors",
         st_header({"a": {"dtype": "F32", "shape": [10**9, 10**9], "data_offsets": [0, 16]}}, bytes(16)),
         "its shape and dtype need"),
    Case("st-no-zoo-architecture", "safetensors", "model.safetensors",
         lambda m: h.safetensors_with({"fc1.weight": np.zeros((7, 7), np.float32)}), "does not match any zoo"),
    Case("st-markdown-image-name", "safetensors", "model.safetensors", st_zoo_plus("![x](http://evil/x.png)"),
         "unexpected"),
    Case("st-markdown-link-name", "safetensors", "model.safetensors",
         st_zoo_plus("[click me](javascript:alert(1))"), "unexpected"),
    Case("st-html-name", "safetensors", "model.safetensors", st_zoo_plus("<img src=x onerror=alert(1)>"), "unexpected"),
    Case("st-newline-name", "safetensors", "model.safetensors", st_zoo_plus("fc1.weight\n\n# pwned\r\n---"),
         "unexpected"),
    Case("st-header-not-json", "safetensors", "model.safetensors", st_header(b"{not json at all}", bytes(4)),
         "not JSON"),
    Case("st-header-deep-json", "safetensors", "model.safetensors",
         st_header(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", bytes(4)), "recursion"),
    Case("st-duplicate-tensor-name", "safetensors", "model.safetensors",
         st_header(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                   b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', bytes(4)), "appears twice"),
    Case("st-metadata-not-strings", "safetensors", "model.safetensors",
         st_header({"__metadata__": {"x": {"y": 1}}}, bytes(4)), "__metadata__"),
    Case("st-zoo-shapes-int64", "safetensors", "model.safetensors", int_weights, "cannot run on a mnist image"),
    Case("st-truncated-zoo", "safetensors", "model.safetensors", truncated(h.zoo_safetensors, 0.6),
         "outside the data section"),
    Case("st-init-other-shapes", "safetensors", "mine.safetensors", zoo_st, "init file does not match",
         init=init_other_shapes),
    # --- legacy .h5 ---
    Case("legacy-h5", "legacy", "model.h5", lambda m: h.legacy_h5(), "legacy Keras .h5"),
    Case("legacy-hdf5", "legacy", "model.hdf5", lambda m: h.legacy_h5(), "legacy Keras .h5"),
    Case("hdf5-named-keras", "legacy", "model.keras", lambda m: h.legacy_h5(), "legacy Keras .h5"),
    Case("hdf5-named-safetensors", "legacy", "model.safetensors", lambda m: h.legacy_h5(), "legacy Keras .h5"),
    # --- empty, random, truncated, unsupported ---
    Case("empty-pt2", "bytes", "model.pt2", lambda m: b"", "is empty"),
    Case("empty-safetensors", "bytes", "model.safetensors", lambda m: b"", "is empty"),
    Case("random-pt2", "bytes", "model.pt2", lambda m: h.random_bytes(4096, 2), "not a valid .pt2 file"),
    Case("random-keras", "bytes", "model.keras", lambda m: h.random_bytes(4096, 3), "not a valid .keras file"),
    Case("random-safetensors", "bytes", "model.safetensors", lambda m: h.random_bytes(4096, 4),
         "not a valid .safetensors file"),
    Case("truncated-pt2", "bytes", "tiny.pt2", truncated(h.tiny_pt2, 0.7), "truncated or corrupt"),
    Case("unsupported-onnx", "bytes", "model.onnx", lambda m: h.random_bytes(64, 5), "unsupported model file type"),
    Case("no-suffix", "bytes", "model", lambda m: h.zoo_safetensors(), "unsupported model file type"),
    # --- declared size ---
    Case("declared-10GB", "size", "model.safetensors", lambda m: b"", "the limit is 200 MB", size=10 * 2**30),
    Case("declared-200MB-plus-1", "size", "model.pt2", lambda m: b"",
         r"is 209,715,201 bytes; the limit is 200 MB \(209,715,200 bytes\)", size=200 * MiB + 1),
    # --- file names ---
    Case("name-newline-markdown", "name", "evil\n![x](http://evil/x.png)\n# Title.safetensors",
         lambda m: h.random_bytes(256, 6), "not a valid .safetensors file"),
    Case("name-html", "name", "<script>alert(1)</script><img src=x onerror=alert(1)>.keras",
         keras_edit(lambda_layer), "Lambda layer"),
    Case("name-markdown-link-pickle", "name", "[click](http://evil).pt", pickle_as(), P),
    Case("name-traversal", "name", "../../../../etc/cron.d/model.pt2", torch_saved, P),
    Case("name-5000-chars", "name", "a" * 5000 + ".keras", keras_edit(lambda_layer), "a{90}.*Lambda layer"),
]


# --- the checks --------------------------------------------------------------------------------

def _status(pid) -> dict:
    """/proc/<pid>/status as name -> kB (the memory rows)."""
    rows = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            rows[key] = int(value.split()[0])
    return rows


def _markup_free(text: str) -> bool:
    """No link, image or HTML outside code spans (inside one, Markdown shows them as plain text),
    and no code span left open."""
    parts = text.split("`")
    outside = parts[::2]
    return len(parts) % 2 == 1 and not any("](" in p or "<" in p or "://" in p for p in outside)


def check_message(text: str, word: str) -> None:
    assert "\n" not in text and "\r" not in text, f"a multi-line message: {text!r}"
    assert len(text) < 400, f"a message of {len(text)} characters: {text[:200]!r}..."
    assert re.search(word, text), f"{word!r} not in {text!r}"
    assert _markup_free(text), f"the page would render markup from {text!r}"
    assert "Traceback" not in text


@pytest.fixture(scope="module")
def pool():
    p = Pool(Limits(timeout_s=60))
    yield p
    p.shutdown()


@pytest.fixture(scope="module", autouse=True)
def programs():
    """Export the programs once, before any case is timed."""
    h.tiny_pt2(), h.outer_pt2(), h.gram_pt2(), h.io_op_pt2("_print", None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_upload_is_refused_in_one_line_within_the_limits(case, pool, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative marker written by the server would land here
    marker = Marker(tmp_path)
    data = case.build(marker)
    upload = Unread(data, case.name, case.size) if case.size else Upload(data, case.name)
    init = None
    if case.init is not None:
        init_name, init_data = case.init(marker)
        init = Upload(init_data, init_name)
    del data
    rss = _status("self")["VmRSS"]
    started = time.monotonic()
    with pytest.raises(pruning.PruningError) as caught:
        model = pruning.load_upload(upload, "mnist", init, owner=OWNER, pool=pool)
        model.close()  # not reached unless the file was accepted: a hole
    elapsed = time.monotonic() - started
    text = str(caught.value)
    # (1) and (4): one line that says what is wrong, without markup
    check_message(text, case.word)
    # (2) no code ran
    assert not marker.fired(), f"a payload ran: {marker.fired()}"
    assert "refused in the sandbox" not in text, f"the audit hook had to stop a payload: {text}"
    # (3) time and memory
    assert elapsed < pool.limits.timeout_s
    worker = pool._workers.get(OWNER)
    if worker is not None and worker.alive:
        peak = _status(worker.process.pid)["VmHWM"] / 1024
        assert peak < pool.limits.memory_mb + MEMORY_MARGIN_MB, f"the worker peaked at {peak:.0f} MB"
    grown = (_status("self")["VmRSS"] - rss) / 1024
    assert grown < SERVER_GROWTH_MB, f"the server grew by {grown:.0f} MB"


# --- the command line --------------------------------------------------------------------------

def _cli_limits():
    """In the child, before it starts: at most 3 GB of heap and 60 s of CPU time, no core dumps."""
    resource.setrlimit(resource.RLIMIT_DATA, (3 * 2**30, 3 * 2**30))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _npz(entries):
    return lambda m: h.zip_bytes(entries(m) if callable(entries) else entries)


# (id, file name, builder, --model-file or --mask, word)
CLI = [
    ("model-file-pickle", "model.pt", pickle_as(), "--model-file", P),
    ("model-file-duplicate-pt2", "tiny.pt2",
     pt2_with_duplicate("sample_inputs/model.pt", lambda m, d: h.torch_payload(m)), "--model-file", "duplicate names"),
    ("model-file-lambda-keras", "model.keras", keras_edit(lambda_layer), "--model-file", "Lambda layer"),
    ("model-file-markdown-safetensors", "model.safetensors", st_zoo_plus("![x](http://evil/x.png)"), "--model-file",
     "unexpected"),
    ("mask-object-dtype", "mask.npz", h.object_npz, "--mask", "object"),
    ("mask-pickle-named-npz", "mask.npz", pickle_as(), "--mask", "not a valid .npz mask"),
    ("mask-zip-bomb", "mask.npz", lambda m: h.deflate_bomb("fc1.weight.npy", 300 * MiB, h.npy((300 * MiB,), bool, b"")),
     "--mask", "unpacks to more than 256 MB"),
    ("mask-huge-declared-shape", "mask.npz", _npz([("fc1.weight.npy", h.npy((10**9, 10**9), bool, b"\x01"))]),
     "--mask", "declares"),
]


@pytest.mark.parametrize("case_id,name,build,flag,word", CLI, ids=[c[0] for c in CLI])
def test_the_command_line_refuses_a_hostile_file_in_one_line(case_id, name, build, flag, word, tmp_path):
    marker = Marker(tmp_path)
    path = tmp_path / name
    path.write_bytes(build(marker))
    source = ["--model-file", str(path), "--dataset", "mnist"] if flag == "--model-file" else \
        ["--model", "mnist-lenet300-torch", "--mask", str(path)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pruning", "evaluate", *source], capture_output=True, text=True,
                         check=False, timeout=120, cwd=tmp_path, env=env, preexec_fn=_cli_limits)
    assert time.monotonic() - started < 120
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    err = out.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, f"stderr is not one line: {out.stderr[-2000:]!r}"
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert re.search(word, err), f"{word!r} not in {err!r}"
    assert len(err) < 400 + len(str(path))
    assert not marker.fired(), f"a payload ran: {marker.fired()}"


LIVE = """
import base64, io, marshal, pickle, sys, types
import numpy as np, torch
data = {name: open(name, "rb").read() for name in sys.argv[1:]}
pickle.loads(data["raw"])
torch.load(io.BytesIO(data["torch"]), weights_only=False)
np.load(io.BytesIO(data["npz"]), allow_pickle=True)["fc1.weight"]
code = marshal.loads(base64.decodebytes(data["lambda"]))
types.FunctionType(code, {"__builtins__": __builtins__})(0)
"""


def test_the_payloads_are_live(tmp_path):
    """Control: unguarded, each kind of payload does create its marker (so the suite is not vacuous)."""
    markers = {kind: Marker(tmp_path) for kind in ("raw", "torch", "npz", "lambda")}
    (tmp_path / "raw").write_bytes(h.pickle_payload(markers["raw"], opener=True))
    (tmp_path / "torch").write_bytes(h.torch_payload(markers["torch"]))
    (tmp_path / "npz").write_bytes(h.object_npz(markers["npz"]))
    (tmp_path / "lambda").write_bytes(h.marshalled_lambda(markers["lambda"])["config"]["code"].encode())
    out = subprocess.run([sys.executable, "-c", LIVE, *markers], capture_output=True, text=True, check=False,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for kind, marker in markers.items():
        assert marker.path.exists(), kind


def test_the_table_counts_the_cases():
    """The module docstring's table says how many cases each class has, and there are 40 or more."""
    table = dict(re.findall(r"^\| (\w+) *\| (\d+) ", __doc__, re.MULTILINE))
    counts = {}
    for case in CASES:
        counts[case.kind] = counts.get(case.kind, 0) + 1
    counts["cli"] = len(CLI)
    assert {k: int(v) for k, v in table.items()} == counts
    assert len(CASES) >= 40 and len(CLI) >= 5
    assert len({c.id for c in CASES}) == len(CASES)
