"""pruning.compare_masks: kept weights of two masks per layer and their Jaccard overlap, by hand."""

import numpy as np
import pytest

import pruning

T, F = True, False


def masks():
    a = {"fc1": np.array([[T, T, F], [F, T, F]]), "fc2": np.array([F, F]), "fc3": np.array([T, F, F, F])}
    b = {"fc1": np.array([[T, F, F], [F, T, T]]), "fc2": np.array([F, F]), "fc3": np.array([F, T, F, F])}
    return a, b


def test_per_layer_and_overall_counts():
    a, b = masks()
    o = pruning.compare_masks(a, b)
    fc1, fc2, fc3 = o["layers"]
    # fc1: A keeps 3, B keeps 3, both keep (0,0) and (1,1); union 4
    assert fc1 == {"name": "fc1", "total": 6, "kept_a": 3, "kept_b": 3, "kept_both": 2, "sparsity_a": 0.5,
                   "sparsity_b": 0.5, "jaccard": 0.5}
    assert (fc2["kept_a"], fc2["kept_b"], fc2["kept_both"], fc2["jaccard"]) == (0, 0, 0, 1.0)  # both keep nothing
    assert (fc3["kept_both"], fc3["jaccard"], fc3["sparsity_a"]) == (0, 0.0, 0.75)  # disjoint
    # overall: 12 weights, 4 kept by each, 2 by both; union 6
    assert (o["total"], o["kept_a"], o["kept_b"], o["kept_both"]) == (12, 4, 4, 2)
    assert o["jaccard"] == pytest.approx(1 / 3) and o["sparsity_a"] == pytest.approx(2 / 3)


def test_symmetric_identical_and_in_mask_order():
    a, b = masks()
    assert pruning.compare_masks(a, b)["jaccard"] == pruning.compare_masks(b, a)["jaccard"]
    assert pruning.compare_masks(a, a)["jaccard"] == 1.0
    reordered = {k: b[k] for k in ("fc3", "fc1", "fc2")}
    assert [row["name"] for row in pruning.compare_masks(a, reordered)["layers"]] == ["fc1", "fc2", "fc3"]


def test_real_masks_magnitude_vs_movement():
    model = pruning.load_model("mnist-lenet300-torch")
    a = pruning.compute_mask(model, "large_final", 0.9)
    b = pruning.compute_mask(model, "movement", 0.9)
    o = pruning.compare_masks(a, b)
    assert [row["name"] for row in o["layers"]] == list(a)
    assert 0 < o["jaccard"] < 1 and o["kept_a"] == pruning.report(a)["kept"]
    both = sum(int(np.count_nonzero(a[k] & b[k])) for k in a)
    assert o["kept_both"] == both


@pytest.mark.parametrize("change, message", [
    (lambda b: b.pop("fc2"), "only in A: `fc2`; only in B: none"),
    (lambda b: b.update(extra=np.ones(2, bool)), "only in A: none; only in B: `extra`"),
    (lambda b: b.update(fc1=np.ones((3, 2), bool)), "`fc1` has shape (2, 3) in mask A but (3, 2) in mask B"),
    (lambda b: b.update(fc1=np.ones((2, 3))), "mask B: `fc1` is not a boolean array"),
])
def test_mismatched_masks_are_one_line_errors(change, message):
    a, b = masks()
    change(b)
    with pytest.raises(pruning.PruningError) as err:
        pruning.compare_masks(a, b)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_not_a_mask():
    with pytest.raises(pruning.PruningError, match="mask A is not a mask"):
        pruning.compare_masks([1, 2], masks()[1])
