"""The per-layer sensitivity scan, the budget rule, the sensitivity scope and the CLI command."""

import json

import numpy as np
import pytest

import pruning
from pruning import data
from pruning.core.selection import TensorSpec
from pruning.core.sensitivity import check_table, layer_budgets, plan, scan, suggest_budgets
from pruning.experiments import zoo_sensitivity
from pruning.models.zoo import ZOO
from conftest import run_cli as run


class TinyMLP:
    """784 -> 24 -> 10 in NumPy on MNIST (no framework): random first layer, least-squares second,
    so that pruning changes the accuracy.  Enough of the Model protocol for scan and evaluate."""

    framework = "numpy"
    info = {}
    dataset = "mnist"
    device = "cpu"
    name = "tiny-mlp"

    def __init__(self):
        rng = np.random.default_rng(0)
        x, y = data.load("mnist", "test")
        w1 = rng.normal(scale=0.05, size=(24, 784)).astype(np.float32)
        h = np.maximum(self.prepare(x[:2000]) @ w1.T, 0)
        w2 = np.linalg.lstsq(h, np.eye(10)[y[:2000]], rcond=None)[0].T.astype(np.float32)  # (10, 24)
        final = {"fc1": w1, "fc2": w2}
        self.states = {"final": final, "init": {k: v * 0.5 for k, v in final.items()}}
        self.specs = {k: TensorSpec(k, v.shape) for k, v in final.items()}
        self.output_name = "fc2"

    def weights(self, which="final"):
        return self.states[which]

    def prepare(self, x):
        return x.reshape(len(x), -1).astype(np.float32) / 255

    def logits(self, prunable, base, x):
        return np.maximum(x @ prunable["fc1"].T, 0) @ prunable["fc2"].T


def reference_table(model, sparsities, limit):
    """The table by a plain loop: keep the largest |θf| of one layer (argsort), the rest dense."""
    x, y = data.load("mnist", "test")
    idx = data.stratified_indices(y, limit)
    x, y = model.prepare(x[idx]), y[idx]
    w = model.weights("final")
    rows = {}
    for name in w:
        accs = []
        for s in sparsities:
            flat = np.abs(w[name]).ravel()
            keep = np.ones(flat.size, bool)
            keep[np.argsort(flat)[: round(s * flat.size)]] = False
            pruned = {**w, name: w[name] * keep.reshape(w[name].shape)}
            accs.append(float((model.logits(pruned, "final", x).argmax(1) == y).mean()))
        rows[name] = accs
    dense = float((model.logits(w, "final", x).argmax(1) == y).mean())
    return dense, rows


@pytest.fixture(scope="module")
def tiny():
    return TinyMLP()


def test_scan_matches_a_reference_loop(tiny):
    sparsities = [0.25, 0.5, 0.9, 0.99]
    calls = []
    table = scan(tiny, sparsities, limit=1000, progress=lambda done, total: calls.append((done, total)))
    dense, rows = reference_table(tiny, sparsities, 1000)
    assert table["dense_accuracy"] == dense and table["n"] == 1000 and table["criterion"] == "large_final"
    assert [layer["name"] for layer in table["layers"]] == ["fc1", "fc2"]
    assert [layer["parameters"] for layer in table["layers"]] == [24 * 784, 10 * 24] and table["total"] == 24 * 794
    for layer in table["layers"]:
        assert layer["accuracy"] == rows[layer["name"]]
    assert table["layers"][1]["accuracy"][-1] < dense - 0.2  # pruning changes something
    assert calls[-1] == (8, 8) and len(calls) == 8
    json.dumps(table)  # plain data


def test_scan_other_criterion_and_weights(tiny):
    table = scan(tiny, [0.5], "random", weights="init", limit=200, seed=3)
    assert (table["criterion"], table["weights"], table["seed"], table["n"]) == ("random", "init", 3, 200)


@pytest.mark.parametrize("kwargs,message", [
    ({"sparsities": [0.5, 0.4]}, "increasing"), ({"sparsities": [0, 0.5]}, "above 0"),
    ({"sparsities": []}, "1 to 100"), ({"sparsities": [1.5]}, "[0, 1]"), ({"sparsities": "a,b"}, "number"),
    ({"criterion": "nope"}, "unknown criterion"), ({"criterion": "smallest_weights_global"}, "unknown criterion"),
    ({"limit": 0}, "positive"), ({"weights": "best"}, "unknown weights")])
def test_scan_refuses_bad_input(tiny, kwargs, message):
    with pytest.raises(pruning.PruningError, match=message.replace("[", r"\[")):
        scan(tiny, **{"sparsities": [0.5], **kwargs})


# the budget rule, by hand: A (300 weights) drops 0, 0.1 at 50%, 100%; B (100) drops 0.05, 0.4
HAND = {"dense_accuracy": 0.9, "sparsities": [0.5, 1.0],
        "layers": [{"name": "A", "parameters": 300, "accuracy": [0.9, 0.8]},
                   {"name": "B", "parameters": 100, "accuracy": [0.85, 0.5]}]}


def test_budget_rule_by_hand():
    # tolerance t < 0.05: s_A = 0.5 + 5t, s_B = 10t; 300 s_A + 100 s_B = 200 at t = 0.02
    p = plan(HAND, 0.5)
    assert p["budgets"] == {"A": 0.6, "B": 0.2} and p["sparsity"] == 0.5
    assert p["tolerance"] == pytest.approx(0.02)
    assert p["predicted_drop"] == pytest.approx({"A": 0.02, "B": 0.02})
    np.testing.assert_allclose(layer_budgets(HAND, 0.02), [0.6, 0.2])
    # t = 0 already prunes 0.375 overall: a lower target scales (0.5, 0) down
    assert suggest_budgets(HAND, 0.2) == {"A": 80 / 300, "B": 0.0}
    assert suggest_budgets(HAND, 0.0) == {"A": 0.0, "B": 0.0}
    assert suggest_budgets(HAND, 1.0) == {"A": 1.0, "B": 1.0}


def test_budget_rule_running_maximum():
    """A drop that recovers does not count as recovered: the first crossing of the tolerance wins."""
    table = {"dense_accuracy": 1.0, "sparsities": [0.2, 0.4, 0.6],
             "layers": [{"name": "a", "parameters": 10, "accuracy": [0.9, 1.0, 1.0]}]}
    np.testing.assert_allclose(layer_budgets(table, 0.05), [0.1])  # halfway to the 0.1 drop at 20%
    np.testing.assert_allclose(layer_budgets(table, 0.1), [0.6])  # the drop never exceeds 0.1


def test_budgets_hit_the_target_exactly():
    rng = np.random.default_rng(1)
    for _ in range(40):
        layers = int(rng.integers(1, 6))
        k = int(rng.integers(1, 6))
        sparsities = sorted(set(np.round(rng.uniform(0.05, 1.0, k), 3)))
        acc = 0.95 - np.sort(rng.uniform(0, 0.9, (layers, len(sparsities))), axis=1) * rng.uniform(0, 1, (layers, 1))
        sizes = rng.integers(1, 5000, layers)
        table = {"dense_accuracy": 0.95, "sparsities": sparsities,
                 "layers": [{"name": f"l{i}", "parameters": int(n), "accuracy": list(a)}
                            for i, (n, a) in enumerate(zip(sizes, acc, strict=True))]}
        most = sparsities[-1]
        target = float(rng.uniform(0, most))
        budgets = suggest_budgets(table, target)
        pruned = [round(budgets[f"l{i}"] * n) for i, n in enumerate(sizes)]
        assert sum(pruned) == round(target * sizes.sum())
        # within the scanned range, give or take the one weight that rounding to whole weights moves
        assert all(0 <= budgets[f"l{i}"] <= most + 1 / n + 1e-12 for i, n in enumerate(sizes))


@pytest.mark.parametrize("table,target,message", [
    (HAND, 1.2, "target sparsity"), ({**HAND, "sparsities": [0.5, 0.9]}, 0.95, "above what the scan covers"),
    ({"layers": []}, 0.5, "not a sensitivity table"), ({**HAND, "dense_accuracy": "x"}, 0.5, "not a sensitivity"),
    ({**HAND, "layers": [{"name": "A", "parameters": 3, "accuracy": [0.9]}]}, 0.5, "not a sensitivity table")])
def test_budget_rule_refuses(table, target, message):
    with pytest.raises(pruning.PruningError, match=message):
        suggest_budgets(table, target)


def test_sensitivity_scope(tiny, tmp_path):
    budgets = {"fc1": 0.9, "fc2": 0.25}
    mask = pruning.compute_mask(tiny, "large_final", scope="sensitivity", budgets=budgets)
    assert int((~mask["fc1"]).sum()) == round(0.9 * 24 * 784) and int((~mask["fc2"]).sum()) == 60
    assert mask.meta["scope"] == "sensitivity" and mask.meta["budgets"] == budgets
    assert mask.meta["sparsity"] == pytest.approx((round(0.9 * 24 * 784) + 60) / (24 * 794))
    # each layer's cut is the layer scope's ranking at its budget
    for name, b in budgets.items():
        assert (mask[name] == pruning.compute_mask(tiny, "large_final", b, scope="layer")[name]).all()
    # reproducible from its metadata, after a round trip through a file
    pruning.save_mask(mask, tmp_path / "m.npz")
    meta = pruning.load_mask(tmp_path / "m.npz").meta
    again = pruning.compute_mask(tiny, meta["strategy"], meta["sparsity"], scope=meta["scope"],
                                 budgets=meta["budgets"], seed=meta["seed"])
    assert all((again[n] == mask[n]).all() for n in mask)
    # the whole path: a table, budgets for 50%, a mask with exactly 50% pruned
    table = scan(tiny, [0.5, 0.9, 0.99], limit=300)
    fit = pruning.compute_mask(tiny, "large_final", 0.5, scope="sensitivity", budgets=suggest_budgets(table, 0.5))
    assert pruning.report(fit)["pruned"] == round(0.5 * 24 * 794)


@pytest.mark.parametrize("kwargs,message", [
    ({}, "needs budgets"), ({"budgets": {"fc1": 0.5}}, "missing `fc2`"),
    ({"budgets": {"fc1": 0.5, "fc2": 0.5, "x": 0.1}}, "unexpected `x`"),
    ({"budgets": {"fc1": 1.5, "fc2": 0.5}}, "budget of `fc1`"),
    ({"budgets": {"fc1": 0.5, "fc2": 0.5}, "granularity": "unit"}, "single weights"),
    ({"budgets": {"fc1": 0.5, "fc2": 0.5}, "output_rate": 0.5}, "output rate"),
    ({"budgets": {"fc1": 0.5, "fc2": 0.5}, "sparsity": 0.9}, "does not match the budgets"),
    ({"budgets": {"fc1": 0.5, "fc2": 0.5}, "scope": "layer", "sparsity": 0.5}, "budgets are for scope")])
def test_sensitivity_scope_refuses(tiny, kwargs, message):
    kwargs = {"scope": "sensitivity", **kwargs}
    with pytest.raises(pruning.PruningError, match=message):
        pruning.compute_mask(tiny, "large_final", **kwargs)




def test_cli_json():
    code, out = run("sensitivity", "--model", "mnist-lenet300-torch", "--sparsities", "0.5,0.95", "--limit", "300",
                    "--target", "0.6", "--json")
    table = json.loads(out)
    assert code == 0 and table["n"] == 300 and table["sparsities"] == [0.5, 0.95]
    assert [layer["name"] for layer in table["layers"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert table["suggestion"]["sparsity"] == pytest.approx(round(0.6 * table["total"]) / table["total"])
    m = pruning.load_model("mnist-lenet300-torch")
    assert table["dense_accuracy"] == pruning.evaluate(m, limit=300).accuracy
    fc3 = pruning.compute_mask(m, "large_final", 0.95, scope="layer")["fc3.weight"]
    alone = {n: np.ones(s.shape, bool) for n, s in m.specs.items()} | {"fc3.weight": fc3}
    assert table["layers"][2]["accuracy"][1] == pruning.evaluate(m, alone, limit=300).accuracy


def test_cli_text():
    code, out = run("sensitivity", "--model", "mnist-lenet300-torch", "--sparsities", "0.5", "--limit", "100")
    assert code == 0 and "fc2.weight" in out and "interactions between layers" in out


@pytest.mark.parametrize("argv,message", [
    (["--model", "nope"], "unknown model"), (["--model", "mnist-lenet300-torch", "--sparsities", "0.9,0.5"],
                                             "increasing"),
    (["--model", "mnist-lenet300-torch", "--sparsities", "0.5", "--target", "0.9"], "above what the scan covers"),
    (["--model", "mnist-lenet300-torch", "--criterion", "best"], "unknown criterion"),
    (["--model", "mnist-lenet300-torch", "--limit", "-3"], "positive")])
def test_cli_bad_input_is_one_line(capsys, argv, message):
    code, _ = run("sensitivity", *argv, "--limit", "50") if "--limit" not in argv else run("sensitivity", *argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_evaluate_with_sensitivity_scope_uses_the_shipped_table(capsys):
    """From the command line the scope derives its budgets as the explorer does: from the model's
    shipped table (or --budgets TABLE.json), so both give the same mask and accuracy."""
    name, target = "mnist-lenet300-torch", 0.8
    code, out = run("evaluate", "--model", name, "--sparsity", str(target), "--scope", "sensitivity", "--json")
    shown = json.loads(out)
    model = pruning.load_model(name)
    budgets = suggest_budgets(zoo_sensitivity.shipped(name), target)
    expected = pruning.evaluate(model, pruning.compute_mask(model, scope="sensitivity", sparsity=target,
                                                           budgets=budgets))
    assert code == 0 and shown["scope"] == "sensitivity" and shown["accuracy"] == pytest.approx(expected.accuracy,
                                                                                                abs=1e-4)


def test_budgets_file_gives_the_same_mask(capsys, tmp_path):
    name = "mnist-lenet300-torch"
    table = tmp_path / "table.json"
    table.write_text(json.dumps(zoo_sensitivity.shipped(name)))
    outs = []
    for extra in ([], ["--budgets", str(table)]):
        path = tmp_path / f"mask{len(outs)}.npz"
        assert run("export", "--model", name, "--sparsity", "0.7", "--scope", "sensitivity", "--out", str(path),
                   *extra)[0] == 0
        outs.append(pruning.load_mask(path))
    assert outs[0].keys() == outs[1].keys() and all((outs[0][k] == outs[1][k]).all() for k in outs[0])
    assert outs[1].meta["budgets"] == suggest_budgets(zoo_sensitivity.shipped(name), 0.7)


@pytest.mark.parametrize("argv, message", [
    (["--model", "mnist-lenet300-torch", "--sparsity", "0.5", "--budgets", "x.json"], "goes with --scope"),
    (["--model", "mnist-lenet300-torch", "--scope", "sensitivity", "--sparsity", "0.5", "--budgets", "nope.json"],
     "cannot read"),
    (["--model", "mnist-lenet300-torch", "--scope", "sensitivity"], "needs --sparsity")])
def test_sensitivity_scope_cli_errors_are_one_line(capsys, argv, message):
    code, _ = run("evaluate", *argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_sweep_refuses_the_sensitivity_scope(capsys):
    code, _ = run("sweep", "--model", "mnist-lenet300-torch", "--scope", "sensitivity")
    err = capsys.readouterr().err
    assert code == 2 and "sweep cannot use scope 'sensitivity'" in err and err.count("\n") == 1


SHIPPED = sorted(p.parent.name for p in ZOO.glob("*/sensitivity.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_tables(name):
    """Each pretrained/<name>/sensitivity.json fits its model and records how it was made."""
    table = check_table(json.loads((ZOO / name / "sensitivity.json").read_text()))
    m = pruning.load_model(name)
    assert [(layer["name"], layer["parameters"]) for layer in table["layers"]] == [
        (n, s.size) for n, s in m.specs.items()]
    assert (table["model"], table["criterion"], table["limit"]) == (name, "large_final", zoo_sensitivity.limit(name))
    assert table["n"] == (500 if m.dataset == "cifar10" else 10000)
    assert table["record"]["command"] == "python -m pruning " + " ".join(zoo_sensitivity.arguments(name))
    assert str(table["n"]) in table["record"]["images"]
    assert suggest_budgets(table, 0.9)  # usable by the explorer's scope


def test_zoo_sensitivity_refuses_an_unknown_model(capsys):
    assert zoo_sensitivity.main(["nope"]) == 2 and "unknown model" in capsys.readouterr().err
