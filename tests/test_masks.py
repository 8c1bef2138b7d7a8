"""Mask files: round trip with metadata, validation naming every mismatch, corrupt files."""

import json

import numpy as np
import pytest

import pruning
from pruning.core import masks
from pruning.data import stratified_indices


def test_round_trip_keeps_arrays_and_meta(tmp_path):
    mask = pruning.Mask({"fc1.weight": np.eye(3, dtype=bool), "block/dense/kernel": np.zeros((2, 2), bool)},
                        {"model": "m", "seed": 3})
    pruning.save_mask(mask, tmp_path / "m.npz")
    back = pruning.load_mask(tmp_path / "m.npz")
    assert list(back) == list(mask) and back.meta == {"model": "m", "seed": 3}
    assert all(np.array_equal(back[k], mask[k]) and back[k].dtype == np.bool_ for k in mask)


def test_validation_names_every_mismatch():
    shapes = {"a": (2, 3), "b": (4,), "c": (1,)}
    bad = {"a": np.ones((3, 2), bool), "b": np.ones(4, np.float32), "z": np.ones(1, bool)}
    with pytest.raises(pruning.PruningError) as err:
        masks.validate(bad, shapes)
    text = str(err.value)
    for fragment in ("missing `c`", "unexpected `z`", "`a` has shape (3, 2), the model's is (2, 3)",
                     "`b` has dtype float32, expected bool"):
        assert fragment in text


def test_load_against_a_model_validates(tmp_path):
    model = pruning.load_model("mnist-lenet300-torch")
    pruning.save_mask(pruning.Mask({"fc1.weight": np.ones((300, 784), bool)}), tmp_path / "m.npz")
    with pytest.raises(pruning.PruningError, match="missing `fc2.weight`; missing `fc3.weight`"):
        pruning.load_mask(tmp_path / "m.npz", model)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_corrupt_files_are_a_clear_error(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(pruning.PruningError, match="not a valid .npz mask"):
        pruning.load_mask(path)


def test_truncated_real_file(tmp_path):
    pruning.save_mask(pruning.Mask({"a": np.ones((100, 100), bool)}, {"x": 1}), tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(pruning.PruningError):
        pruning.load_mask(tmp_path / "t.npz")


def test_pickled_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "m.npz", a=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(pruning.PruningError):
        pruning.load_mask(tmp_path / "m.npz")


def test_report_counts():
    rep = pruning.report({"a": np.array([True, False, False, True]), "b": np.zeros((2, 2), bool)})
    assert (rep["total"], rep["kept"], rep["pruned"], rep["sparsity"]) == (8, 2, 6, 0.75)
    assert rep["layers"][1] == {"name": "b", "shape": [2, 2], "total": 4, "kept": 0, "pruned": 4, "sparsity": 1.0}
    json.dumps(rep)


def test_stratified_subset_is_proportional_and_deterministic():
    y = np.repeat(np.arange(3), [50, 30, 20])
    idx = stratified_indices(y, 10)
    assert np.bincount(y[idx]).tolist() == [5, 3, 2]
    assert np.array_equal(idx, stratified_indices(y, 10))
    assert len(stratified_indices(y, 7)) == 7
    assert len(stratified_indices(y, None)) == 100


def test_a_lying_npy_header_is_refused_before_the_member_is_unpacked(tmp_path):
    """The .npy header says 10 bools; the zip says the member unpacks to 100 MB (zeros, ~1000:1).
    The header is judged against the declared size first, so the 100 MB are never allocated."""
    import tracemalloc

    import hostile as h

    path = tmp_path / "mask.npz"
    path.write_bytes(h.deflate_bomb("fc1.weight.npy", 100 * 2**20, h.npy((10,), bool, b"")))
    tracemalloc.start()
    try:
        with pytest.raises(pruning.PruningError, match=r"declares 10 bytes of data \(shape \(10,\)\) but holds"):
            masks.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"{peak / 2**20:.0f} MB allocated"


@pytest.mark.parametrize("member,message", [
    (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 8000, "the .npy header of fc1.weight.npy is over 4096 bytes"),
    (b"\x93NUMPY\x01\x00" + b"\xff" * 40, "over 4096 bytes"),  # its length field says 65,535
    (b"\x93NUMPY\x01\x00\x20\x00" + b"\xff" * 40, "not a valid .npz mask"),  # 32 bytes of header, unreadable
    (b"GARBAGE" * 1000, "not a valid .npz mask"),  # long but no .npy header at all
])
def test_a_npy_header_that_is_over_4_kb_or_unreadable_is_one_line(tmp_path, member, message):
    import hostile as h

    path = tmp_path / "mask.npz"
    path.write_bytes(h.zip_bytes([("fc1.weight.npy", member)]))
    with pytest.raises(pruning.PruningError, match=message) as info:
        masks.load(path)
    assert "\n" not in str(info.value)
