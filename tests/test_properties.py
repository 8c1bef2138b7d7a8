"""Property tests (hypothesis) of masks over every criterion x scope x granularity, on random
small tensors of 1-4 dimensions in float16/32/64, with ties, zeros and extreme values (inf,
huge, tiny, NaN): exact sparsity, determinism, nesting, and no NaN in what is evaluated."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import pruning
from pruning.core.criteria import ALIASES, CRITERIA
from conftest import ArrayModel

SETTINGS = [(s, scope, g) for s in [*CRITERIA, *ALIASES] for scope in ("layer", "global")
            for g in ("weight", "unit", "2:4") if not (s in ALIASES and scope != ALIASES[s][1])]
DTYPES = [np.float16, np.float32, np.float64]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, overflowing casts: on purpose
PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tensors(draw, dtype, shape):
    """An array of ``shape``: random values, all equal (ties), or a mix with extremes."""
    info = np.finfo(dtype)
    special = [0.0, -0.0, 1.0, -1.0, float(info.max), -float(info.max), float(info.tiny),
               float(info.smallest_subnormal), np.inf, -np.inf, np.nan]
    kind = draw(st.sampled_from(["random", "ties", "extreme"]))
    if kind == "ties":
        return np.full(shape, draw(st.sampled_from(special[:8])), dtype)
    finite = st.floats(-4, 4, width=np.finfo(dtype).bits)
    elements = finite if kind == "random" else st.one_of(finite, st.sampled_from(special))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def models(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shapes = draw(st.lists(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5), min_size=1, max_size=3))
    shapes = [(s[0], 4 * s[1], *s[2:]) if len(s) > 1 and draw(st.booleans()) else s for s in shapes]  # 2:4 groups
    init = {f"t{i}.weight": draw(tensors(dtype, s)) for i, s in enumerate(shapes)}
    final = {k: draw(tensors(dtype, v.shape)) for k, v in init.items()}
    return ArrayModel(init, final, name="hypothesis")


def mask_of(model, strategy, sparsity, scope, granularity):
    return pruning.compute_mask(model, strategy, None if ":" in granularity else sparsity, scope=scope,
                                granularity=granularity, seed=7)


def check_exact(model, mask, sparsity, scope, granularity):
    if granularity == "weight":
        pools = [[k] for k in mask] if scope == "layer" else [list(mask)]
        for names in pools:
            total = sum(mask[n].size for n in names)
            assert total - sum(int(mask[n].sum()) for n in names) == round(sparsity * total)
    elif granularity == "unit":
        assert mask[model.output_name].all()
        units = {n: mask[n].reshape(mask[n].shape[0], -1) for n in mask if n != model.output_name}
        assert all(np.all(u.all(axis=1) | ~u.any(axis=1)) for u in units.values())
        pools = [[n] for n in units] if scope == "layer" else [list(units)]
        for names in pools:
            total = sum(units[n].shape[0] for n in names)
            assert sum(int((~units[n].any(axis=1)).sum()) for n in names) == round(sparsity * total)
    else:
        for keep in mask.values():
            if keep.ndim > 1 and keep.shape[1] % 4 == 0:
                assert (np.moveaxis(keep, 1, -1).reshape(-1, 4).sum(axis=1) == 2).all()
            else:
                assert keep.all()


@PROFILE
@given(model=models(), setting=st.sampled_from(SETTINGS),
       sparsities=st.lists(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)), min_size=2, max_size=2))
def test_masks_are_exact_deterministic_nested_and_finite(model, setting, sparsities):
    strategy, scope, granularity = setting
    low, high = sorted(sparsities)
    mask = mask_of(model, strategy, low, scope, granularity)
    assert list(mask) == list(model.specs)
    assert all(m.dtype == np.bool_ and m.shape == model.specs[n].shape for n, m in mask.items())
    check_exact(model, mask, low, scope, granularity)
    assert np.isfinite(mask.meta["sparsity"]) and 0 <= mask.meta["sparsity"] <= 1
    # determinism: a fresh model with equal arrays (no shared cache) gives the same mask
    twin = ArrayModel({k: v.copy() for k, v in model.states["init"].items()},
                      {k: v.copy() for k, v in model.states["final"].items()})
    again = mask_of(twin, strategy, low, scope, granularity)
    assert all(np.array_equal(mask[n], again[n]) for n in mask)
    # nesting: a higher sparsity prunes a superset (N:M fixes its own sparsity)
    if ":" not in granularity:
        higher = mask_of(model, strategy, high, scope, granularity)
        check_exact(model, higher, high, scope, granularity)
        assert all(not np.any(higher[n] & ~mask[n]) for n in mask)
    # what is evaluated: pruned weights are exactly 0 (even NaN or inf ones), no new NaN
    for weights in pruning.WEIGHT_SETS:
        source = model.states["final" if weights == "final" else "init"]
        for name, w in pruning.masked_weights(model, mask, weights).items():
            assert w.dtype == source[name].dtype and w.shape == source[name].shape
            assert np.all(w[~mask[name]] == 0)
            if np.isfinite(source[name]).all():
                assert not np.isnan(w).any()


@PROFILE
@given(model=models(), strategy=st.sampled_from([*CRITERIA]), sparsity=st.floats(0, 1))
def test_nan_weights_are_pruned_before_any_finite_weight(model, strategy, sparsity):
    """A NaN score ranks lowest: with weight granularity, no NaN-scored weight survives while a
    finite-scored one of the same pool is pruned."""
    from pruning.core.prune import scores

    mask = mask_of(model, strategy, sparsity, "global", "weight")
    s = scores(model, strategy, seed=7)
    flat_s = np.concatenate([np.asarray(s[n], np.float64).ravel() for n in mask])
    flat_m = np.concatenate([mask[n].ravel() for n in mask])
    nan_kept = np.isnan(flat_s) & flat_m
    finite_pruned = ~np.isnan(flat_s) & ~flat_m
    assert not (nan_kept.any() and finite_pruned.any())


@settings(max_examples=60, deadline=None)
@given(value=st.sampled_from([0.0, 1.0, -3.5, 1e-30, 1e30]), dtype=st.sampled_from(DTYPES),
       shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), sparsity=st.floats(0, 1),
       seed=st.integers(0, 2**32 - 1))
def test_all_equal_weights_prune_exactly_k_and_nest(value, dtype, shape, sparsity, seed):
    """Equal weights: exactly round(s * n) pruned, in a seeded random order that nests."""
    w = {"a.weight": np.full(shape, value, dtype)}
    model = ArrayModel(w, w)
    mask = pruning.compute_mask(model, "large_final", sparsity, seed=seed)["a.weight"]
    assert (~mask).sum() == round(sparsity * mask.size)
    lower = pruning.compute_mask(model, "large_final", sparsity / 2, seed=seed)["a.weight"]
    assert (~lower <= ~mask).all()


def test_a_unit_whose_norm_is_undefined_ranks_lowest():
    """+inf and -inf scores in one unit (magnitude_increase with inf weights) make its signed norm
    inf - inf = NaN; like a NaN weight score, it is pruned first."""
    init = {"a.weight": np.array([[np.inf, 0.0], [1.0, 1.0], [1.0, 1.0]]), "out.weight": np.ones((2, 3))}
    final = {"a.weight": np.array([[1.0, np.inf], [2.0, 2.0], [1.5, 1.5]]), "out.weight": np.ones((2, 3))}
    mask = pruning.compute_mask(ArrayModel(init, final), "magnitude_increase", 1 / 3, granularity="unit")
    assert mask["a.weight"].all(axis=1).tolist() == [False, True, True]


@PROFILE
@given(model=models(), setting=st.sampled_from(SETTINGS), sparsity=st.floats(0, 1), data=st.data())
def test_a_twin_with_another_native_layout_gets_the_transposed_mask(model, setting, sparsity, data):
    """As a Keras twin of a PyTorch model: the same canonical tensors stored in another axis order."""
    from pruning.core.selection import TensorSpec

    perms = {n: tuple(data.draw(st.permutations(range(a.ndim)))) for n, a in model.states["final"].items()}
    native = {w: {n: np.transpose(a, perms[n]) for n, a in s.items()} for w, s in model.states.items()}
    twin = ArrayModel(native["init"], native["final"])
    identity = {n: p == tuple(range(len(p))) for n, p in perms.items()}
    twin.specs = {n: TensorSpec(n, native["final"][n].shape, () if identity[n] else tuple(np.argsort(p)))
                  for n, p in perms.items()}
    strategy, scope, granularity = setting
    mask = mask_of(model, strategy, sparsity, scope, granularity)
    theirs = mask_of(twin, strategy, sparsity, scope, granularity)
    assert all(np.array_equal(theirs[n], np.transpose(mask[n], perms[n])) for n in mask)
