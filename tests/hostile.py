"""Builders of hostile model and mask files, for the adversarial suite (test_adversarial.py).

Every builder returns the file's bytes; nothing here reads or loads them.  Payloads never do
harm: each one only creates a marker file, so a test can tell whether any code ran.

    marker = Marker(tmp_path)          # marker.path: an absolute file in tmp_path; marker.token: a relative name
    pickle_payload(marker)             # a raw pickle whose __reduce__ runs os.system("touch ...")
    torch_payload(marker)              # the same inside a torch.save zip archive
    zip_bytes([(name, data), ...])     # a zip, duplicate names and all
    tiny_pt2()                         # a plain torch.export program (cached), to be edited
    zoo_keras(), zoo_safetensors()     # the zoo's own files, to be edited
"""

import base64
import builtins
import glob
import io
import json
import marshal
import os
import pickle
import random
import struct
import tempfile
import warnings
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "pretrained"


# --- payloads ----------------------------------------------------------------------------------

class Marker:
    """Where a payload leaves its trace: ``path``, an absolute file in ``directory``, and
    ``token``, a unique relative name (a payload that runs in a worker, whose audit hook refuses
    writes outside its home, would still create ``token`` in its working directory)."""

    def __init__(self, directory):
        self.token = f"pwned-{os.urandom(6).hex()}"
        self.path = Path(directory) / self.token

    def places(self) -> list:
        """Every place the marker may appear: the absolute path, the relative name in this
        process's working directory and in every sandboxed worker's home."""
        homes = {tempfile.gettempdir(), "/tmp"}
        found = [self.path, Path(self.token)]
        for home in homes:
            found += [Path(p) for p in glob.glob(os.path.join(home, "pruning-worker-*", self.token))]
        return found

    def fired(self) -> list:
        return [str(p) for p in self.places() if p.exists()]

    @property
    def shell(self) -> str:
        return f"touch {self.path} {self.token}"


class SystemPayload:
    """Unpickled: ``os.system("touch <marker> <token>")``."""

    def __init__(self, marker: Marker):
        self.command = marker.shell

    def __reduce__(self):
        return (os.system, (self.command,))


class OpenPayload:
    """Unpickled: ``builtins.open(<marker>, "w")`` (a plain Python call, no process)."""

    def __init__(self, marker: Marker, relative: bool = False):
        self.target = marker.token if relative else str(marker.path)

    def __reduce__(self):
        return (builtins.open, (self.target, "w"))


def pickle_payload(marker: Marker, protocol: int = 4, opener: bool = False) -> bytes:
    payload = OpenPayload(marker) if opener else SystemPayload(marker)
    return pickle.dumps({"fc1.weight": payload}, protocol=protocol)


def torch_payload(marker: Marker) -> bytes:
    """A torch.save zip archive whose data.pkl runs the payload (torch.load(weights_only=False))."""
    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": SystemPayload(marker), "x": torch.zeros(3)}, buffer)
    return buffer.getvalue()


def marshalled_lambda(marker: Marker, layer: bool = True) -> dict:
    """A ``__lambda__`` entry as Keras writes it: base64 of the marshalled code of a lambda that
    creates the marker (relative and absolute) and returns its input; ``layer``: a Lambda layer's
    ``function`` (``config.code``), else a function named anywhere else, e.g. a Dense layer's
    ``activation`` (``config.value``, which ``serialization_lib`` turns into a function)."""
    source = (f"lambda x: (__import__('builtins').open({str(marker.path)!r}, 'w').close(), "
              f"__import__('builtins').open({marker.token!r}, 'w').close(), x)[-1]")
    code = base64.encodebytes(marshal.dumps(eval(source).__code__)).decode("ascii")
    if layer:
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}
    return {"class_name": "__lambda__", "config": {"value": [code, None, None]}}


# --- zips --------------------------------------------------------------------------------------

def zip_bytes(entries, compression=zipfile.ZIP_STORED, compresslevel=None) -> bytes:
    """A zip of (name, bytes or Blob) entries in this order, duplicate names included."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression, compresslevel=compresslevel) as z:
        warnings.simplefilter("ignore")  # "Duplicate name"
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            if isinstance(data, Blob):
                info._compresslevel = compresslevel
                with z.open(info, "w", force_zip64=data.nbytes > 2**31) as f:
                    for chunk in data.chunks():
                        f.write(chunk)
            else:
                z.writestr(info, data, compress_type=compression, compresslevel=compresslevel)
    return buffer.getvalue()


def members(data: bytes) -> list:
    """(name, bytes) of every member of a zip, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def edit(data: bytes, name_end: str, change) -> bytes:
    """A copy of zip ``data`` whose member ending in ``name_end`` is ``change(bytes)``."""
    return zip_bytes([(n, change(d) if n.endswith(name_end) else d) for n, d in members(data)])


def edit_json(data: bytes, name_end: str, change) -> bytes:
    def apply(raw):
        doc = json.loads(raw)
        doc = change(doc) or doc
        return json.dumps(doc).encode()
    return edit(data, name_end, apply)


def _headers(data: bytes, name: str) -> tuple:
    """(local header offset, central directory entry offset) of member ``name``."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        local = z.getinfo(name).header_offset
    at = data.index(b"PK\x01\x02")
    while at >= 0:
        n = struct.unpack("<H", data[at + 28:at + 30])[0]
        if data[at + 46:at + 46 + n].decode() == name:
            return local, at
        at = data.find(b"PK\x01\x02", at + 46)
    raise KeyError(name)


def declare_size(data: bytes, name: str, size: int) -> bytes:
    """Member ``name``'s uncompressed size rewritten, in its local and central headers: a lie."""
    data = bytearray(data)
    local, central = _headers(bytes(data), name)
    data[local + 22:local + 26] = struct.pack("<L", size)
    data[central + 24:central + 28] = struct.pack("<L", size)
    return bytes(data)


def flag_encrypted(data: bytes, name: str) -> bytes:
    """Member ``name`` marked as encrypted (general purpose flag bit 0)."""
    data = bytearray(data)
    local, central = _headers(bytes(data), name)
    for at in (local + 6, central + 8):
        data[at] |= 1
    return bytes(data)


class Blob:
    """``nbytes`` of generated data for ``zip_bytes``, written in 8 MB chunks (never whole in memory):
    zeros (deflate packs them about 1000:1, a bomb), or zeros with a random byte every ``step``
    bytes (about 110:1 at step 512, under the readers' 200:1 bomb ratio), after ``prefix``."""

    def __init__(self, nbytes: int, step: int | None = None, prefix: bytes = b""):
        self.nbytes, self.step, self.prefix = nbytes, step, prefix

    def chunks(self):
        chunk = np.zeros(8 << 20, np.uint8)
        if self.step:
            chunk[::self.step] = np.random.default_rng(0).integers(1, 256, len(chunk[::self.step]))
        chunk = chunk.tobytes()
        yield self.prefix
        left = self.nbytes - len(self.prefix)
        while left > 0:
            yield chunk[:min(left, len(chunk))]
            left -= len(chunk)


def deflate_bomb(name: str, nbytes: int, prefix: bytes = b"") -> bytes:
    """A zip holding ``prefix`` and then zeros, ``nbytes`` in all, deflated (about 1000:1)."""
    return zip_bytes([(name, Blob(nbytes, prefix=prefix))], zipfile.ZIP_DEFLATED, 9)


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# --- .pt2 --------------------------------------------------------------------------------------

def _export(module, name: str, batch=None, example=None) -> bytes:
    import torch

    example = torch.rand(batch or 2, 1, 28, 28) if example is None else example
    dynamic = None if batch else ({0: torch.export.Dim("batch")},)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=dynamic)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.pt2"  # the archive's root folder is named after the file
        torch.export.save(program, str(path))
        return path.read_bytes()


def modules():
    """Tiny .pt2 programs: a plain one, two over the budgets (memory, FLOPs) and one calling an I/O operator."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class Outer(Tiny):
        """Each image's outer product with itself: a 784 x 784 view per image (2.4 GB at batch 1000)."""

        def forward(self, x):
            h = x.flatten(1)
            return self.fc(h.unsqueeze(2).expand(-1, 784, 784).sum(2))

    class Gram(Tiny):
        """Three (784 x 784) @ (784 x 784) matmuls per image: about 2.9 GFLOP, small tensors."""

        def forward(self, x):
            h = x.flatten(1)
            g = h.T @ h
            return self.fc(h @ (g @ g + g @ g + g @ g))

    class Printer(Tiny):
        """Calls ``aten::_print`` (an I/O operator), which torch.export keeps in the graph."""

        def forward(self, x):
            torch.ops.aten._print("hello")
            return self.fc(x.flatten(1))

    return Tiny, Outer, Gram, Printer


@cache
def _program(kind: str) -> bytes:
    import torch

    torch.manual_seed(0)
    tiny, outer, gram, printer = modules()
    if kind == "tiny":
        return _export(tiny(), "tiny")
    if kind == "outer":
        return _export(outer(), "tiny")
    if kind == "gram":
        return _export(gram(), "tiny", batch=1)
    if kind == "printer":
        return _export(printer(), "tiny")
    raise KeyError(kind)


def tiny_pt2() -> bytes:
    """A plain torch.export program (Linear 784 -> 10, dynamic batch); its root folder is ``tiny/``."""
    return _program("tiny")


def outer_pt2() -> bytes:
    """A program whose largest tensor is 2.4 GB at the evaluation batch (over the memory budget)."""
    return _program("outer")


def gram_pt2() -> bytes:
    """A program needing 2.9 GFLOP per image (over the work budget)."""
    return _program("gram")


def io_op_pt2(op: str, marker: Marker) -> bytes:
    """A program whose first node calls an aten I/O operator: ``_print`` as exported, or the node
    rewritten in models/model.json to ``save`` (writes the marker from C++, unseen by Python's
    audit hooks) or ``from_file`` (reads a file of the server)."""
    data = _program("printer")
    if op == "_print":
        return data

    def rewrite(doc):
        graph = doc["graph_module"]["graph"]
        node = graph["nodes"][0]
        assert node["target"] == "torch.ops.aten._print.default"
        node["target"] = f"torch.ops.aten.{op}.default"
        if op == "save":
            node["inputs"] = [{"name": "item", "arg": {"as_tensor": {"name": "x"}}, "kind": 1},
                              {"name": "filename", "arg": {"as_string": str(marker.path)}, "kind": 1}]
        else:
            node["inputs"] = [{"name": "filename", "arg": {"as_string": "/etc/hostname"}, "kind": 1},
                              {"name": "shared", "arg": {"as_none": True}, "kind": 1},
                              {"name": "size", "arg": {"as_int": 4}, "kind": 1}]
            node["outputs"] = [{"as_tensor": {"name": "stolen"}}]
            graph["tensor_values"]["stolen"] = {
                "dtype": 7, "sizes": [{"as_int": 4}], "requires_grad": False, "device": {"type": "cpu", "index": None},
                "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0}, "layout": 7}
    return edit_json(data, "models/model.json", rewrite)


def first_weight(config: dict) -> dict:
    return next(iter(config["config"].values()))


# --- .keras ------------------------------------------------------------------------------------

def zoo_keras() -> bytes:
    return (ZOO / "mnist-lenet300-keras" / "final.keras").read_bytes()


def keras_config(data: bytes) -> dict:
    return json.loads(dict(members(data))["config.json"])


def with_config(config, data: bytes | None = None, extra=()) -> bytes:
    """The zoo .keras file (or ``data``) with this config.json (a dict or raw bytes), plus ``extra`` members."""
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    entries = [(n, raw if n == "config.json" else d) for n, d in members(data or zoo_keras())]
    return zip_bytes([*entries, *extra])


def keras_layer(config: dict, name: str) -> dict:
    """The layer called ``name`` in a Functional config (edited in place by the caller)."""
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def h5_bytes(build) -> bytes:
    """An HDF5 file written by ``build(h5py.File)``, as bytes."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def legacy_h5() -> bytes:
    """What Keras 2's model.save("model.h5") writes: a model config attribute and weight groups."""
    def build(f):
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("model_weights/fc1/kernel", data=np.zeros((784, 300), np.float32))
    return h5_bytes(build)


# --- .safetensors ------------------------------------------------------------------------------

def zoo_safetensors(which: str = "final") -> bytes:
    return (ZOO / "mnist-lenet300-torch" / f"{which}.safetensors").read_bytes()


def safetensors_raw(header, data: bytes = b"", length: int | None = None) -> bytes:
    """A .safetensors file: 8 bytes of header length (``length`` may lie), the header, the data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def safetensors_header(data: bytes) -> tuple:
    """(header dict, data section) of a .safetensors file."""
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_with(tensors: dict) -> bytes:
    """A valid .safetensors file of these arrays (float32/bool/int), written by hand."""
    header, chunks, at = {}, [], 0
    kinds = {np.dtype(np.float32): "F32", np.dtype(np.bool_): "BOOL", np.dtype(np.int64): "I64"}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.tobytes()
        header[name] = {"dtype": kinds[arr.dtype], "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    return safetensors_raw(header, b"".join(chunks))


def zoo_state() -> dict:
    """The zoo lenet300's tensors (float32 arrays), read from its file by hand."""
    header, data = safetensors_header(zoo_safetensors())
    header.pop("__metadata__", None)
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], np.float32).reshape(v["shape"])
            for k, v in header.items()}


# --- .npz masks --------------------------------------------------------------------------------

def npy(shape, dtype, payload: bytes) -> bytes:
    """A .npy member whose header declares ``shape`` and ``dtype``, followed by ``payload`` (may lie)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def object_npz(marker: Marker) -> bytes:
    """np.savez of an object array holding a pickle payload (np.load(allow_pickle=True) runs it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{"fc1.weight": np.array([SystemPayload(marker)], dtype=object)})
    return buffer.getvalue()
