"""Hostile archives (uploads/readers/archive.py, uploads/readers/pt2.py, pt2_model.py's budget, masks.load): each
is refused with a one-line PruningError, and no payload ever runs (no marker file appears)."""

import io
import json
import os
import pickle
import struct
import threading
import warnings
import zipfile

import numpy as np
import pytest
import torch

import hostile
import pruning
from pruning.uploads import byo
from pruning.core import masks
from pruning.uploads.readers import pt2 as pt2_reader
from pruning.uploads.readers.archive import read_zip, write_zip


class Evil:
    """A pickle that, once unpickled, creates the directory ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


Tiny, Outer, Gram, _ = hostile.modules()  # the programs the adversarial suite uploads too


def export(module, path, batch=None):
    dynamic = None if batch else ({0: torch.export.Dim("batch")},)
    program = torch.export.export(module.eval(), (torch.rand(batch or 2, 1, 28, 28),), dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    torch.manual_seed(0)
    return export(Tiny(), tmp_path_factory.mktemp("pt2") / "tiny.pt2")


def members_of(path) -> list:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def build(path, entries, compression=zipfile.ZIP_STORED):
    """A zip of (name, bytes) entries, duplicates and all."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as z:
        warnings.simplefilter("ignore")  # "Duplicate name"
        for name, data in entries:
            z.writestr(name, data)
    return path


def refused(call, message, marker=None):
    with pytest.raises(pruning.PruningError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
    assert marker is None or not os.path.exists(marker)
    return str(err.value)


def evil_torch(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save({"x": Evil(marker)}, buffer)
    return buffer.getvalue()


def edit(path, dst, name_end, change):
    """A copy of ``path`` whose member ending in ``name_end`` is ``change(bytes)``."""
    return build(dst, [(n, change(d) if n.endswith(name_end) else d) for n, d in members_of(path)])


def edit_json(path, dst, name_end, change):
    def apply(data):
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()
    return edit(path, dst, name_end, apply)


def load(path):
    return byo.load_file_model(path, "mnist")


# --- the zip itself ----------------------------------------------------------------------------

@pytest.mark.parametrize("evil_first", [False, True])
def test_duplicate_member_with_a_pickle_payload_is_refused(pt2, tmp_path, evil_first):
    marker = tmp_path / "pwned"
    entries = []
    for name, data in members_of(pt2):
        entries.append((name, data))
        if name.endswith("sample_inputs/model.pt"):  # torch falls back to weights_only=False on these bytes
            entries.insert(len(entries) - (1 if evil_first else 0), (name, evil_torch(marker)))
    path = build(tmp_path / "dup.pt2", entries)
    refused(lambda: load(path), "holds the member .*model.pt` twice; duplicate names are not accepted", marker)


def test_names_differing_only_in_case_are_refused(tmp_path):
    path = build(tmp_path / "case.zip", [("a/Model.json", b"{}"), ("a/model.json", b"{}")])
    refused(lambda: read_zip(path, "case.zip"), "differ only in case")
    np.savez(tmp_path / "m.npz", **{"fc.weight": np.ones(2, bool), "FC.weight": np.ones(2, bool)})
    refused(lambda: masks.load(tmp_path / "m.npz"), "differ only in case")


def test_nested_archives_are_refused_unless_allowed(pt2, tmp_path):
    inner = io.BytesIO()
    build(inner, [("x", b"1")])
    path = build(tmp_path / "n.zip", [("ok", b"fine"), ("inner", inner.getvalue())])
    refused(lambda: read_zip(path, "n.zip"), "`inner` is itself a zip archive")
    assert read_zip(path, "n.zip", nested=r"inner")["ok"] == b"fine"
    for magic in (b"\x1f\x8b\x08", b"BZh91AY", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"\0" * 257 + b"ustar"):
        refused(lambda magic=magic: read_zip(build(tmp_path / "m.zip", [("m", magic + b"rest")]), "m.zip"), "itself a")
    root = members_of(pt2)[0][0].split("/")[0]
    path = build(tmp_path / "x.pt2", [*members_of(pt2), (f"{root}/extra/more", inner.getvalue())])
    refused(lambda: load(path), "itself a zip archive")


def test_zip_bomb_is_refused(tmp_path):
    path = build(tmp_path / "bomb.zip", [("zeros", b"\0" * (8 << 20))], zipfile.ZIP_DEFLATED)
    refused(lambda: read_zip(path, "bomb.zip"), "unpacks more than 200 times its packed size")
    refused(lambda: read_zip(path, "bomb.zip", max_ratio=None, max_member=2 << 20), "unpacks to more than 2 MB")
    refused(lambda: read_zip(path, "bomb.zip", max_ratio=None, max_total=2 << 20), "bomb.zip unpacks to more than")


def _set_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of a one-member zip in its local and central headers."""
    data = bytearray(data)
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = struct.pack("<L", size)
    data[central + 24:central + 28] = struct.pack("<L", size)
    return bytes(data)


@pytest.mark.parametrize("declared", [10, (1 << 20) + 10, 300 << 20, 2**32 - 1])
def test_lying_declared_size_is_refused(tmp_path, declared):
    buffer = io.BytesIO()
    build(buffer, [("data", os.urandom(1 << 20))], zipfile.ZIP_DEFLATED)
    path = tmp_path / "lie.zip"
    path.write_bytes(_set_size(buffer.getvalue(), declared))
    message = refused(lambda: read_zip(path, "lie.zip", max_member=100 << 20), "lie.zip")
    assert ("unpacks to more than" in message) == (declared > 100 << 20)  # refused before reading


def test_too_many_members_are_refused(tmp_path):
    path = build(tmp_path / "many.zip", [(f"m{i}", b"") for i in range(1001)])
    refused(lambda: read_zip(path, "many.zip"), "has more than 1000 members")
    refused(lambda: read_zip(path, "many.zip", max_members=10), "has more than 10 members")
    assert len(read_zip(path, "many.zip", max_members=2000)) == 1001


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "a/../../evil", "C:/evil", "a\\..\\evil", "a//b",
                                  "a/./b", "bad\x01name"])
def test_path_traversal_and_odd_names_are_refused(tmp_path, name):
    path = build(tmp_path / "t.zip", [("ok", b"1"), (name, b"2")])
    refused(lambda: read_zip(path, "t.zip"), "absolute paths, '..' and odd names are not accepted")


def test_members_outside_the_rule_and_bytes_that_are_no_zip(tmp_path):
    path = build(tmp_path / "r.zip", [("ok.npy", b"1"), ("evil.pkl", b"2")])
    refused(lambda: read_zip(path, "r.zip", allow=r".*\.npy"), "contains `evil.pkl`")
    refused(lambda: read_zip(path, "r.zip", allow=lambda n: n != "evil.pkl", why="no pickles"), "no pickles")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04" + os.urandom(100))
    refused(lambda: read_zip(tmp_path / "junk.zip", "junk.zip", "thing"), "cannot read junk.zip: not a valid thing")
    refused(lambda: read_zip(tmp_path / "none.zip", "none.zip"), "none.zip not found")


def test_write_zip_rebuilds_the_vetted_members(tmp_path):
    members = {"a/b": b"1", "c": b"\0" * 100}
    write_zip(members, tmp_path / "w.zip")
    assert read_zip(tmp_path / "w.zip", "w.zip") == members


# --- .pt2 --------------------------------------------------------------------------------------

def test_pickled_weights_config_is_refused(pt2, tmp_path):
    marker = tmp_path / "pwned"

    def pickled(config):
        next(iter(config["config"].values()))["use_pickle"] = True
    path = edit_json(pt2, tmp_path / "p1.pt2", "model_weights_config.json", pickled)
    path = edit(path, tmp_path / "p.pt2", "weights/weight_0", lambda data: evil_torch(marker))
    refused(lambda: load(path), "holds pickled tensors", marker)


@pytest.mark.parametrize("path_name", ["custom_obj_0", "opaque_obj_0", "../weights/weight_0"])
def test_custom_and_opaque_objects_are_refused(pt2, tmp_path, path_name):
    def custom(config):
        next(iter(config["config"].values()))["path_name"] = path_name
    path = edit_json(pt2, tmp_path / "c.pt2", "model_weights_config.json", custom)
    refused(lambda: load(path), "has a tensor stored as")


@pytest.mark.parametrize("sizes", [[-1, -1], [2**40], [10**6, 10**6]])
def test_absurd_declared_sizes_are_refused(pt2, tmp_path, sizes):
    def absurd(config):
        next(iter(config["config"].values()))["tensor_meta"]["sizes"] = [{"as_int": n} for n in sizes]
    path = edit_json(pt2, tmp_path / "s.pt2", "model_weights_config.json", absurd)
    refused(lambda: load(path), "negative or absurd size|declares more than")


def test_symbolic_sizes_that_would_run_code_are_refused(tmp_path):
    """sympy.sympify evaluates its string: a size expression could run any code."""
    marker = tmp_path / "pwned"
    path = export(Tiny(), tmp_path / "dyn.pt2")
    sym = "Symbol('s77', positive=True, integer=True)"
    code = f"{sym} + 0*len(__import__('os').mkdir({str(marker)!r}) or '')"
    path = edit(path, tmp_path / "s.pt2", "models/model.json", lambda data: data.replace(sym.encode(), code.encode()))
    refused(lambda: load(path), "symbolic size that is not plain arithmetic", marker)


def test_guards_code_never_runs(pt2, tmp_path):
    """ExportedProgram.module() exec's the file's guards code; the rebuilt archive drops it."""
    marker = tmp_path / "pwned"

    def guards(program):
        program["guards_code"] = [f"__import__('os').mkdir({str(marker)!r}) is None"]
    model = load(edit_json(pt2, tmp_path / "g.pt2", "models/model.json", guards))
    assert pruning.evaluate(model, pruning.compute_mask(model, "large_final", 0.5), limit=20).n == 20
    assert not marker.exists()


def test_treespecs_that_import_modules_are_refused(pt2, tmp_path):
    def enum(program):
        signature = program["graph_module"]["module_call_graph"][0]["signature"]
        protocol, spec = json.loads(signature["in_spec"])
        spec["context"] = json.dumps({"__enum__": True, "fqn": "antigravity:x", "name": "y"})
        signature["in_spec"] = json.dumps([protocol, spec])
    path = edit_json(pt2, tmp_path / "e.pt2", "models/model.json", enum)
    refused(lambda: load(path), "names Python classes or factories to import")


@pytest.fixture
def torch_never_loads(monkeypatch):
    """Fail the test if torch is given the program: the reader itself must refuse it."""
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: pytest.fail("torch.export.load was called"))


def _first_node(change):
    """A change of models/model.json: ``change(first node of the graph, graph)``, verifiers emptied."""
    def apply(program):
        program["verifiers"] = []
        graph = program["graph_module"]["graph"]
        change(graph["nodes"][0], graph)
    return apply


@pytest.mark.parametrize("target", [
    "torch.os.system", "builtins.eval", "math.factorial", "_operator.mul", "torch.ops.higher_order.cond",
    "torch.ops.aten.no_such_op.default", "torch.ops.aten.linear.no_such_overload", "torch.ops.aten.linear",
    "torch.ops.aten.linear.__class__", "torch.ops.aten.__class__.__init__", "torch.ops.custom.op.default",
    "#extension", "", None])
def test_call_targets_other_than_aten_are_refused_before_torch_loads(pt2, tmp_path, torch_never_loads, target):
    """torch's deserializer resolves a target by walking attributes from ``torch`` (torch.os.system
    is a function), and only its verifier, which the file may empty, would stop it."""
    path = edit_json(pt2, tmp_path / "t.pt2", "models/model.json",
                     _first_node(lambda node, graph: node.update(target=target)))
    refused(lambda: load(path), r"calls .*, which is not an allowed operator: a program may call aten tensor "
                                r"operators only")


def test_targets_in_nested_graphs_and_operator_arguments_are_refused(pt2, tmp_path, torch_never_loads):
    def nested(node, graph):
        inner = json.loads(json.dumps(graph))
        inner["nodes"][-1]["target"] = "torch.os.system"
        node["inputs"].append({"name": "g", "arg": {"as_graph": {"name": "g", "graph": inner}}, "kind": 1})

    def operator_argument(node, graph):
        node["inputs"].append({"name": "f", "arg": {"as_operator": "torch.os.system"}, "kind": 1})
    for i, change in enumerate((nested, operator_argument)):
        path = edit_json(pt2, tmp_path / f"n{i}.pt2", "models/model.json", _first_node(change))
        refused(lambda p=path: load(p), "calls `torch.os.system`, which is not an allowed operator")
    path = edit_json(pt2, tmp_path / "x.pt2", "models/model.json",
                     _first_node(lambda node, graph: graph.update(nodes={"a": node})))
    refused(lambda: load(path), "holds a graph whose nodes are not a list of objects")


def test_aten_targets_and_the_zoo_architectures_pass(tmp_path):
    """Every zoo architecture, exported with a dynamic batch, passes the target check."""
    from pruning.models.torch_nets import ARCHITECTURES

    assert all(pt2_reader._allowed_target(t) for t in (
        "torch.ops.aten.linear.default", "torch.ops.aten.flatten.using_ints", "torch.ops.aten.add.Tensor",
        "torch.ops.aten.__and__.Tensor", "torch.ops.aten.sym_size.int", "_operator.getitem"))
    for name, cls in ARCHITECTURES.items():
        images = (1, 28, 28) if name in ("lenet300", "lenet5") else (3, 32, 32)
        path = tmp_path / f"{name}.pt2"
        program = torch.export.export(cls().eval(), (torch.rand(2, *images),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, str(path))
        pt2_reader.check_pt2(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d[:len(d) // 2],
     r"truncated or corrupt weights: `weight_0` holds 15,680 bytes; `fc.weight` needs 31,360"),
    (lambda d: d[:-1], r"truncated or corrupt weights: `weight_0` holds 31,359 bytes; `fc.weight` needs 31,360"),
    (lambda d: d + b"\0", r"truncated or corrupt weights: `weight_0` holds 31,361 bytes, not a whole number of 4-byte"),
])
def test_truncated_weights_are_refused_before_torch_loads(pt2, tmp_path, torch_never_loads, change, message):
    path = edit(pt2, tmp_path / "w.pt2", "weights/weight_0", change)
    text = refused(lambda: load(path), r"cannot read w\.pt2: not a valid \.pt2 program \(" + message)
    assert "warnings" not in text


def test_weights_viewed_past_their_record_and_missing_records_are_refused(pt2, tmp_path, torch_never_loads):
    def offset(config):
        config["config"]["fc.bias"]["tensor_meta"]["storage_offset"] = {"as_int": 1}
    path = edit_json(pt2, tmp_path / "o.pt2", "model_weights_config.json", offset)
    refused(lambda: load(path), "truncated or corrupt weights: `weight_1` holds 40 bytes; `fc.bias` needs 44")
    path = build(tmp_path / "m.pt2", [(n, d) for n, d in members_of(pt2) if not n.endswith("weights/weight_1")])
    refused(lambda: load(path), "truncated or corrupt weights: `weight_1`, which holds `fc.bias`, is missing")


def test_weights_sharing_a_record_are_accepted(pt2, tmp_path):
    """Views into one record (torch.export saves tied weights once): each must fit, and they do."""
    def share(config):
        config["config"]["fc.bias"].update(path_name="weight_0")
    program = pt2_reader.read_pt2(edit_json(pt2, tmp_path / "s.pt2", "model_weights_config.json", share))
    state = program.state_dict
    assert torch.equal(state["fc.bias"], state["fc.weight"].flatten()[:10])


def test_torch_reads_a_rebuilt_archive_under_the_unpickling_guard(pt2, monkeypatch):
    seen = []
    real = torch.export.load

    def spy(f, **kw):
        seen.append((f, os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD"), pickle.loads))
        return real(f, **kw)
    monkeypatch.setattr(torch.export, "load", spy)
    pt2_reader.read_pt2(pt2)
    (f, forced, loads), = seen
    assert f != str(pt2) and not os.path.exists(f) and forced == "1" and loads is not pickle.loads


def test_no_unpickling_guard(tmp_path):
    marker = tmp_path / "pwned"
    payload, buffer = pickle.dumps(Evil(marker)), io.BytesIO()
    torch.save(Evil(marker), buffer)
    other = []
    with pt2_reader.no_unpickling():
        for call in (lambda: pickle.loads(payload), lambda: pickle.load(io.BytesIO(payload)),
                     lambda: pickle.Unpickler(io.BytesIO(payload)).load(),
                     lambda: torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)):
            with pytest.raises(pickle.UnpicklingError):
                call()
        thread = threading.Thread(target=lambda: other.append(pickle.loads(pickle.dumps([1, 2]))))
        thread.start()
        thread.join()
    assert not marker.exists() and other == [[1, 2]]
    assert pickle.loads(pickle.dumps({"a": 1})) == {"a": 1}  # restored


def test_programs_over_the_memory_or_work_budget_are_refused_before_real_data(tmp_path, monkeypatch):
    outer, gram = export(Outer(), tmp_path / "outer.pt2"), export(Gram(), tmp_path / "gram.pt2", batch=1)
    monkeypatch.setattr(pruning.models.pt2_model.Pt2Model, "logits", lambda *a, **k: pytest.fail("ran on real data"))
    refused(lambda: load(outer), r"makes a 2345 MB tensor .* at batch size 1000; the limit is 256 MB")
    refused(lambda: load(gram), r"needs 2.9 GFLOP per image; the limit is 2 GFLOP")


def test_resnet20_is_well_within_budget():
    from pruning.models.pt2_model import check_budget
    from pruning.models.torch_nets import ResNet20

    check_budget(ResNet20().eval(), {}, (3, 32, 32), 1000, torch.float32)  # about 0.08 GFLOP, 62 MB


# --- mask files --------------------------------------------------------------------------------

def _meta_npy(text: str) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(text))
    return buffer.getvalue()


def test_hostile_mask_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "obj.npz", a=np.array([Evil(marker)], dtype=object))
    refused(lambda: masks.load(tmp_path / "obj.npz"), "holds object values", marker)
    np.savez(tmp_path / "c.npz", a=np.ones(2, complex))
    refused(lambda: masks.load(tmp_path / "c.npz"), "holds complex128 values")
    build(tmp_path / "huge.npz", [("a.npy", hostile.npy((10**9, 10**9), bool, b"\x01"))])
    refused(lambda: masks.load(tmp_path / "huge.npz"), r"a.npy declares 1000000000000000000 bytes .* but holds 1")
    build(tmp_path / "short.npz", [("a.npy", hostile.npy((3,), "<f4", b"\0" * 4))])
    refused(lambda: masks.load(tmp_path / "short.npz"), "declares 12 bytes")
    build(tmp_path / "big.npz", [("__meta__.npy", _meta_npy(json.dumps({"x": "y" * 70_000}))),
                                 ("a.npy", hostile.npy((1,), bool, b"\1"))])
    refused(lambda: masks.load(tmp_path / "big.npz"), "__meta__ is over 64 KB")
    deep = '{"a": ' + "[" * 25 + "]" * 25 + "}"
    build(tmp_path / "deep.npz", [("__meta__.npy", _meta_npy(deep))])
    refused(lambda: masks.load(tmp_path / "deep.npz"), "__meta__ nests deeper than 20 levels")
    build(tmp_path / "pkl.npz", [("a.npy", hostile.npy((1,), bool, b"\1")), ("evil.pkl", pickle.dumps(Evil(marker)))])
    refused(lambda: masks.load(tmp_path / "pkl.npz"), "contains `evil.pkl`: only .npy arrays", marker)
    ok = '{"a": ' + "[" * 19 + "]" * 19 + ', "s": "[[[[[[[[[[[[[[[[[[[[[[[[[\\""}'
    build(tmp_path / "ok.npz", [("__meta__.npy", _meta_npy(ok)), ("a.npy", hostile.npy((2,), bool, b"\1\0"))])
    mask = masks.load(io.BytesIO((tmp_path / "ok.npz").read_bytes()))
    assert mask["a"].tolist() == [True, False] and mask.meta["s"].startswith("[[[")
