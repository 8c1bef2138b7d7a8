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
