"""One contract over every registered criterion x scope x granularity (open_lth / TF-MOT style)."""

import numpy as np
import pytest

import pruning
from pruning.core.criteria import ALIASES, CRITERIA
from conftest import ArrayModel


def make_model(seed=0, shapes=((12, 8, 3, 3), (20, 72), (10, 20))):
    rng = np.random.default_rng(seed)
    init = {f"t{i}.weight": rng.normal(size=s).astype(np.float32) for i, s in enumerate(shapes)}
    final = {k: (v + rng.normal(scale=0.5, size=v.shape)).astype(np.float32) for k, v in init.items()}
    return ArrayModel(init, final, name=f"arrays-{seed}")


STRATEGIES = [*CRITERIA, *ALIASES]
SETTINGS = [(s, scope, g) for s in STRATEGIES for scope in ("layer", "global") for g in ("weight", "unit", "2:4")
            if not (s in ALIASES and scope != ALIASES[s][1])]


def mask_of(model, strategy, sparsity, scope, granularity, **kw):
    return pruning.compute_mask(model, strategy, None if ":" in granularity else sparsity, scope=scope,
                                granularity=granularity, **kw)


@pytest.mark.parametrize("strategy,scope,granularity", SETTINGS)
def test_contract(strategy, scope, granularity):
    model = make_model()
    mask = mask_of(model, strategy, 0.5, scope, granularity)
    # names, shapes, dtype
    assert list(mask) == list(model.specs)
    for name, keep in mask.items():
        assert keep.dtype == np.bool_ and keep.shape == model.specs[name].shape
    # exact sparsity
    if granularity == "weight":
        if scope == "layer":
            for keep in mask.values():
                assert keep.size - keep.sum() == round(0.5 * keep.size)
        else:
            total = sum(k.size for k in mask.values())
            assert total - sum(int(k.sum()) for k in mask.values()) == round(0.5 * total)
    elif granularity == "unit":
        hidden = [n for n in mask if n != model.output_name]
        assert mask[model.output_name].all()  # classes are never removed
        units = {n: mask[n].reshape(mask[n].shape[0], -1) for n in hidden}
        for u in units.values():  # whole units: all kept or all pruned
            assert np.all(u.all(axis=1) | ~u.any(axis=1))
        pruned = {n: int((~u.any(axis=1)).sum()) for n, u in units.items()}
        if scope == "layer":
            assert all(pruned[n] == round(0.5 * units[n].shape[0]) for n in hidden)
        else:
            assert sum(pruned.values()) == round(0.5 * sum(u.shape[0] for u in units.values()))
    else:  # 2:4 along the input axis (canonical axis 1)
        for keep in mask.values():
            if keep.shape[1] % 4 == 0:
                groups = np.moveaxis(keep, 1, -1).reshape(-1, 4)
                assert (groups.sum(axis=1) == 2).all()
            else:
                assert keep.all()  # no whole groups: left dense
    # determinism, with a fresh ranking
    pruning.core.prune.ranking.cache_clear()
    again = mask_of(model, strategy, 0.5, scope, granularity)
    assert all(np.array_equal(mask[n], again[n]) for n in mask)
    # nesting: a higher sparsity prunes a superset
    if granularity != "2:4":
        higher = mask_of(model, strategy, 0.9, scope, granularity)
        assert all(not np.any(higher[n] & ~mask[n]) for n in mask)


def test_extreme_sparsities():
    model = make_model()
    assert pruning.report(pruning.compute_mask(model, "large_final", 0.0))["pruned"] == 0
    assert pruning.report(pruning.compute_mask(model, "large_final", 1.0))["kept"] == 0


def test_output_rate_half_and_excluded():
    model = make_model()
    half = pruning.compute_mask(model, "large_final", 0.8, scope="global", output_rate=0.5)
    out = half[model.output_name]
    assert out.size - out.sum() == round(0.4 * out.size)
    hidden = [n for n in half if n != model.output_name]
    total = sum(half[n].size for n in hidden)
    assert total - sum(int(half[n].sum()) for n in hidden) == round(0.8 * total)
    excluded = pruning.compute_mask(model, "large_final", 0.8, output_rate=0)
    assert excluded[model.output_name].all()


def test_zhou_output_rate_prunes_the_output_layer_at_1_minus_0_9_to_the_p():
    """Zhou et al.: hidden layers at 1 - 0.8^p, the output layer at 1 - 0.9^p (same p)."""
    model = make_model(shapes=((40, 50), (30, 40), (10, 30)))
    p = 3.0
    sparsity = 1 - 0.8 ** p  # 0.488
    mask = pruning.compute_mask(model, "large_final", sparsity, scope="layer", output_rate="zhou")
    out = mask[model.output_name]
    assert out.size - out.sum() == round((1 - 0.9 ** p) * out.size)  # 0.271 of 300: 81
    assert all(mask[n].size - mask[n].sum() == round(sparsity * mask[n].size) for n in mask if n != model.output_name)


def test_global_unit_scores_are_compared_relative_to_their_layers_rms():
    """Global unit pruning ranks each unit's norm over its layer's RMS unit norm: a layer whose
    weights are all 10x larger loses as many units as it would at 1x (by hand: the 2 of 4 units
    with the smallest relative norms go, one per layer)."""
    a = np.array([[1.0, 0], [2, 0], [3, 0], [4, 0]])  # unit L2 norms 1, 2, 3, 4 (RMS 2.74)
    b = 10 * np.array([[1.5, 0], [2, 0], [3, 0], [4, 0], [5, 0]])  # 15, 20, 30, 40, 50 (RMS 33.5)
    weights = {"a": a, "b": b, "out": np.ones((3, 5))}
    model = ArrayModel(weights, weights)
    mask = pruning.compute_mask(model, "large_final", 2 / 9, scope="global", granularity="unit")
    # relative norms: a 0.37, 0.73, 1.10, 1.46; b 0.45, 0.60, 0.89, 1.19, 1.49: the two smallest are
    # a[0] and b[0] (raw norms would take a[0] and a[1])
    assert mask["a"][:, 0].tolist() == [False, True, True, True]
    assert mask["b"][:, 0].tolist() == [False, True, True, True, True]
    assert mask["out"].all()


def test_each_criterion_declares_whether_it_needs_init_and_aliases_resolve_in_one_place():
    assert {n for n, f in CRITERIA.items() if not f.needs_init} == {"large_final", "small_final", "random"}
    no_init = make_model()
    no_init.states = {"final": no_init.states["final"]}
    for name, f in CRITERIA.items():
        if f.needs_init:
            with pytest.raises(pruning.PruningError, match="needs the initial weights"):
                pruning.compute_mask(no_init, name, 0.5)
        else:
            assert pruning.compute_mask(no_init, name, 0.5)
    assert pruning.resolve_alias("smallest_weights_global") == ("large_final", "global")
    assert pruning.resolve_alias("movement") == ("movement", None)


def test_ties_are_broken_at_random_but_reproducibly():
    """Zhou et al.'s code breaks ties at random: with index order, the first rows' tied weights
    would always go first."""
    w = {"a.weight": np.ones((40, 50), np.float32), "b.weight": np.ones((30, 40), np.float32)}
    model = ArrayModel(w, w)
    mask = pruning.compute_mask(model, "large_final", 0.25, scope="global")
    again = pruning.compute_mask(model, "large_final", 0.25, scope="global")
    assert all((mask[n] == again[n]).all() for n in mask)  # same seed, same mask
    flat = np.concatenate([mask["a.weight"].ravel(), mask["b.weight"].ravel()])
    assert (~flat).sum() == round(0.25 * flat.size)
    other = pruning.compute_mask(model, "large_final", 0.25, scope="global", seed=1)
    assert any((mask[n] != other[n]).any() for n in mask) and other.meta["seed"] == 1


def test_tied_scores_are_pruned_uniformly_at_random():
    """Every position of a tensor of equal weights is pruned with the same frequency over seeds:
    a chi-square test of the per-position counts (99.9% quantile for 99 degrees of freedom)."""
    w = {"a.weight": np.zeros((10, 10), np.float32)}
    model = ArrayModel(w, w)
    seeds = 400
    counts = sum((~pruning.compute_mask(model, "large_final", 0.3, seed=s)["a.weight"]).ravel().astype(int)
                 for s in range(seeds))
    expected = seeds * 0.3
    chi2 = float((((counts - expected) ** 2) / expected).sum() / 0.7)  # binomial variance n p (1 - p)
    assert chi2 < 148.2, chi2
    half = np.concatenate([counts[:50], counts[50:]])  # the first rows are not favoured
    assert abs(half[:50].sum() - half[50:].sum()) < 0.1 * half.sum()


def test_quadrant_criteria_use_one_percentile_for_both_magnitudes():
    """Hand-checked: |θf| is about 3x |θ0| here, so min(|θ0|, |θf|) would rank by |θ0| alone;
    the quadrant rule keeps the weights above the same percentile in both."""
    init = {"a.weight": np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])}
    final = {"a.weight": np.array([[2.4, 2.1, 1.8, 1.5, 1.2, 0.9, 0.6, 0.3]])}  # reversed order, larger
    model = ArrayModel(init, final)
    # percentiles (in eighths): init 1..8, final 8..1; min = [1,2,3,4,4,3,2,1]; max = [8,7,6,5,5,6,7,8]
    big = pruning.compute_mask(model, "large_init_large_final", 0.75)["a.weight"]
    assert big.tolist() == [[False, False, False, True, True, False, False, False]]
    small = pruning.compute_mask(model, "small_init_small_final", 0.75)["a.weight"]
    assert small.tolist() == [[False, False, False, True, True, False, False, False]]
    quarter = pruning.compute_mask(model, "large_init_large_final", 0.5)["a.weight"]
    assert quarter.tolist() == [[False, False, True, True, True, True, False, False]]
    # the old rule, min(|θ0|, |θf|) = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.3], would keep the 0.5/0.6s


def test_large_final_same_sign_prunes_sign_flips_first():
    init = {"a.weight": np.array([[1.0, -1.0, 2.0, -2.0]], np.float32)}
    final = {"a.weight": np.array([[0.5, 3.0, 0.1, -0.2]], np.float32)}
    mask = pruning.compute_mask(ArrayModel(init, final), "large_final_same_sign", 0.25)
    assert mask["a.weight"].tolist() == [[True, False, True, True]]  # the flipped -1 -> 3 goes first


def test_random_is_seeded_and_seed_recorded():
    model = make_model()
    a = pruning.compute_mask(model, "random", 0.5, seed=1)
    b = pruning.compute_mask(model, "random", 0.5, seed=2)
    assert a.meta["seed"] == 1 and b.meta["seed"] == 2
    assert any(not np.array_equal(a[n], b[n]) for n in a)


def test_aliases_fix_their_scope():
    model = make_model()
    alias = pruning.compute_mask(model, "smallest_weights_global", 0.7)
    plain = pruning.compute_mask(model, "large_final", 0.7, scope="global")
    assert all(np.array_equal(alias[n], plain[n]) for n in alias)
    with pytest.raises(pruning.PruningError, match="scope global"):
        pruning.compute_mask(model, "smallest_weights_global", 0.7, scope="layer")


@pytest.mark.parametrize("kwargs,message", [
    ({"strategy": "biggest"}, "choose one of: large_final, small_final"),
    ({"sparsity": 1.5}, r"sparsity must be in \[0, 1\]"),
    ({"sparsity": float("nan")}, r"sparsity must be in \[0, 1\]"),
    ({"sparsity": "lots"}, "sparsity must be a number"),
    ({"scope": "model"}, "choose one of: layer, global"),
    ({"granularity": "block"}, "choose one of: weight, unit, N:M"),
    ({"granularity": "4:2", "sparsity": None}, "malformed N:M"),
    ({"granularity": "2:4", "sparsity": 0.9}, "fixes the sparsity at 0.5"),
    ({"norm": 3}, "norm must be 1 or 2"),
    ({"output_rate": 2}, r"output rate must be in \[0, 1\]"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"strategy": "large_final", "sparsity": 0.5} | kwargs
    with pytest.raises(pruning.PruningError, match=message):
        pruning.compute_mask(make_model(), args.pop("strategy"), args.pop("sparsity"), **args)


def test_nan_weights_are_pruned_first_and_never_crash():
    model = make_model()
    final = {k: v.copy() for k, v in model.states["final"].items()}
    final["t1.weight"][0, :5] = np.nan
    mask = pruning.compute_mask(ArrayModel(model.states["init"], final), "large_final", 0.1)
    assert not mask["t1.weight"][0, :5].any()


@pytest.mark.parametrize("scope, granularity", [("layer", "weight"), ("global", "weight"), ("layer", "3:4")])
def test_a_nan_weight_goes_before_an_infinite_one(scope, granularity):
    """small_final scores an infinite weight -inf; a NaN weight must still be pruned first (a
    regression found by the Hypothesis property test: NaN and -inf used to tie)."""
    final = {"a.weight": np.array([[np.inf, np.nan, 1.0, 2.0]]), "b.weight": np.array([[1.0, 2.0, 3.0, 4.0]])}
    model = ArrayModel({k: v.copy() for k, v in final.items()}, final)
    mask = pruning.compute_mask(model, "small_final", None if ":" in granularity else 0.25, scope=scope,
                                granularity=granularity, output_rate=0.0)
    assert mask["a.weight"].tolist() == [[True, False, True, True]]
