"""Hostile .safetensors files (pruning/uploads/readers/safetensors.py) and errors.quote: every refusal is
one line, and a header that does not fit is refused before any tensor is loaded."""

import json

import numpy as np
import pytest
import safetensors.torch
from safetensors.numpy import save_file

import pruning
from pruning.uploads import byo
from pruning.errors import PruningError, quote
from pruning.uploads.readers import safetensors as reader

ZOO = pruning.models.zoo.ZOO / "mnist-lenet300-torch"


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if any tensor is loaded."""
    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("a tensor was loaded"))


def refused(path, message, **kw):
    with pytest.raises(PruningError, match=message) as err:
        byo.load_file_model(path, "mnist", **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def header_refused(path, message):
    """read_header itself refuses (defence in depth: not only byo.check_file's sniffing)."""
    with pytest.raises(PruningError, match=message) as err:
        reader.read_header(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def write(path, header, data=b"", length=None):
    """A .safetensors file with this header (a dict, or raw bytes) and data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(raw) if length is None else length).to_bytes(8, "little") + raw + data)
    return path


def entry(shape, begin=0, dtype="F32", itemsize=4):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, begin + int(np.prod(shape)) * itemsize]}


# --- quote -------------------------------------------------------------------------------------

def test_quote_makes_one_printable_code_span():
    assert quote("fc1.weight") == "`fc1.weight`"
    assert quote("a\nb\r\tc\x00d\u202ee\u2028") == "`a?b??c?d?e?`"
    assert quote("x` [click](http://evil) ![i](http://e/i.png) <img src=x>`") == \
        "`x [click](http://evil) ![i](http://e/i.png) <img src=x>`"
    long = quote("n" * 500)
    assert long == "`" + "n" * 79 + "…`" and len(quote("m" * 500, limit=10)) == 12
    assert quote("") == "(empty)" and quote("```") == "(empty)" and quote(12) == "`12`"
    for text in ("a\nb", "`" * 3 + "\n", "é" * 100):
        q = quote(text)
        assert q.isprintable() and q.count("`") in (0, 2)


# --- headers -----------------------------------------------------------------------------------

def test_header_length_beyond_the_file(tmp_path, no_loading):
    path = write(tmp_path / "m.safetensors", {"a": entry([2])}, bytes(8), length=5000)
    header_refused(path, r"not a valid \.safetensors file \(its header of 5000 bytes runs past the end")
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    header_refused(tmp_path / "short.safetensors", "shorter than the 8 bytes")


def test_a_100_mb_header_is_refused_without_reading_it(tmp_path, no_loading):
    path = write(tmp_path / "m.safetensors", {"a": entry([2])}, bytes(8), length=100 * 2**20)
    header_refused(path, "declares a header of 100 MB; the limit is 16 MB")


def test_a_header_one_byte_over_the_limit_says_so_exactly(tmp_path, no_loading):
    path = write(tmp_path / "m.safetensors", {"a": entry([2])}, bytes(8), length=reader.MAX_HEADER + 1)
    header_refused(path, r"declares a header of 16,777,217 bytes; the limit is 16 MB \(16,777,216 bytes\)$")


@pytest.mark.parametrize("nbytes, message", [
    (200 * 2**20 + 1, r"^model.pt2 is 209,715,201 bytes; the limit is 200 MB \(209,715,200 bytes\)$"),
    (201 * 2**20, r"^model.pt2 is 201 MB; the limit is 200 MB$"),
    (10 * 2**30, r"^model.pt2 is 10240 MB; the limit is 200 MB$"),
])
def test_file_size_messages_read_right_near_the_limit(nbytes, message):
    """byo.check_size: a rounded size equal to the rounded limit is given in exact bytes."""
    with pytest.raises(PruningError, match=message):
        byo.check_size(nbytes, "model.pt2")
    byo.check_size(byo.MAX_BYTES, "model.pt2")


def test_ten_thousand_tensors(tmp_path, no_loading):
    header = {f"t{i}": entry([1], 4 * i) for i in range(10_000)}
    path = write(tmp_path / "m.safetensors", header, bytes(40_000))
    header_refused(path, "holds 10000 tensors; the limit is 1000")
    refused(path, "holds 10000 tensors")


@pytest.mark.parametrize("header, message", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": 1}}, "is not described by exactly"),
    ({"a": {"dtype": "PICKLE", "shape": [2], "data_offsets": [0, 8]}}, "has dtype `PICKLE`; accepted: F64"),
    ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, "has dtype"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
     r"has shape `\[-2\]`; expected at most 8 non-negative"),
    ({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, "non-negative integers"),
    ({"a": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, "non-negative integers"),
    ({"a": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, "at most 8"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}},
     r"data_offsets `\[0, 80\]`, outside the data section \(0 to 16\)"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, "outside the data section"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "outside the data section"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "has 8 bytes of data; its shape and dtype need 12"),
    ({"a": {"dtype": "F32", "shape": [10**30], "data_offsets": [0, 8]}}, "need 4" + "0" * 30),
    ({"a": entry([2]), "b": entry([2], 4)}, "tensors `a` and `b` overlap"),
    ({"a": entry([2]), "b": entry([2])}, "overlap"),
    ([1, 2], "its header is not a JSON object"),
    ({"__metadata__": {"k": 1}}, "__metadata__ is not an object of strings"),
    (b'{"a": 1, "a": 2}', r"not JSON: ``a` appears twice`|appears twice"),
    (b"[" * 100_000 + b"]" * 100_000, "its header is not JSON"),
    (b"\xff\xfe{}", "its header is not JSON"),
])
def test_bad_headers_are_one_line_refusals(tmp_path, no_loading, header, message):
    path = write(tmp_path / "m.safetensors", header, bytes(16))
    header_refused(path, message)
    refused(path, "not a valid .safetensors file|declares|holds")


def test_names_from_the_file_are_quoted(tmp_path, no_loading):
    name = "x\n[click](http://evil)`" + "y" * 200
    path = write(tmp_path / "m.safetensors", {name: {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4))
    text = header_refused(path, r"tensor `x\?\[click\]\(http://evil\)y+…` has shape")
    assert text.count("`") == 4


# --- matching from the header alone ------------------------------------------------------------

def test_shapes_matching_no_zoo_architecture_are_refused_before_loading(tmp_path, no_loading):
    shapes = dict(reader.read_header(ZOO / "final.safetensors"), **{"fc1.weight": (300, 785), "evil\nname": (2,)})
    header, end = {}, 0
    for name, shape in shapes.items():
        header[name] = entry(list(shape), end)
        end = header[name]["data_offsets"][1]
    path = write(tmp_path / "m.safetensors", header, bytes(end))
    text = refused(path, "does not match any zoo architecture")
    assert "unexpected `evil?name`" in text and "fc1.weight has shape (300, 785), expected (300, 784)" in text


def test_init_file_is_matched_from_its_header_before_loading(tmp_path, no_loading):
    write(tmp_path / "init.safetensors", {"fc1.weight": entry([3, 3])}, bytes(36))
    refused(ZOO / "final.safetensors", "the init file does not match the model: missing fc1.bias",
            init_path=tmp_path / "init.safetensors")


def test_read_header_gives_the_zoo_shapes():
    shapes = reader.read_header(ZOO / "final.safetensors")
    assert reader.match_architecture(shapes) == "lenet300" and shapes["fc1.weight"] == (300, 784)


def test_valid_file_loads_after_its_header_is_checked(tmp_path):
    state = {"w": np.arange(6, dtype=np.float16).reshape(2, 3), "n": np.array(7, np.int64),
             "e": np.zeros((0, 4), np.float32)}
    save_file(state, tmp_path / "ok.safetensors")
    assert reader.read_header(tmp_path / "ok.safetensors") == {"w": (2, 3), "n": (), "e": (0, 4)}
    loaded = reader.read_safetensors(tmp_path / "ok.safetensors")
    assert loaded["w"].dtype == np.float32 and loaded["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert int(loaded["n"]) == 7 and loaded["e"].shape == (0, 4)
