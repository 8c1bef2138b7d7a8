"""app/charts.py builds Plotly figures from plain data, without Streamlit or the engine."""

import json
from pathlib import Path
import sys

import numpy as np
import pytest
import plotly.graph_objects as go

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import charts  # noqa: E402


def names(fig):
    return [trace.name for trace in fig.data]


def test_accuracy_curve_plots_remaining_weights_on_a_log_axis():
    curves = {"large_final (magnitude)": {"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.98, 0.97, 0.8]},
              "random (control)": {"sparsity": [0.0, 0.5], "accuracy": [0.98, 0.6]}}
    live = {"sparsity": 0.999, "accuracy": 0.1, "label": "your mask (live)"}
    fig = charts.accuracy_curve(curves, 0.98, live, None)
    assert isinstance(fig, go.Figure)
    assert names(fig) == ["large_final (magnitude)", "random (control)", "your mask (live)"]
    assert np.allclose(fig.data[0].x, [100, 50, 10])
    assert np.isclose(fig.data[-1].x[0], 0.1) and fig.layout.xaxis.type == "log"


def test_layer_sparsity_marks_nearly_empty_layers():
    layers = [{"name": "a", "sparsity": 0.5, "total": 10}, {"name": "b", "sparsity": 0.995, "total": 1000}]
    bar = charts.layer_sparsity(layers).data[0]
    assert list(bar.y) == ["b", "a"] and bar.marker.color[0] != bar.marker.color[1]


def test_histograms_and_scatter():
    edges = np.linspace(-1, 1, 5)
    hist = {"final": {"edges": edges, "kept": np.array([1, 0, 0, 2]), "pruned": np.array([0, 5, 5, 0])},
            "init": {"edges": edges, "kept": np.array([1, 1, 0, 1]), "pruned": np.array([2, 3, 3, 2])}}
    fig = charts.histograms(hist, "fc1.weight")
    assert names(fig) == ["kept", "pruned", "kept", "pruned"] and fig.layout.barmode == "stack"
    sample = {"init": np.array([0.1, -0.2, 0.3]), "final": np.array([0.5, 0.0, -0.4]),
              "kept": np.array([True, False, True]), "total": 10}
    fig = charts.init_final_scatter(sample, "fc1.weight")
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert len(fig.data[1].x) == 2 and "sample of 10" in fig.layout.title.text


def test_first_layer_dense_and_conv():
    dense = {"kind": "dense", "units": [3, 1], "kept": [5, 4], "masks": np.ones((2, 28, 28), bool),
             "coverage": np.full((28, 28), 0.5)}
    assert len(charts.first_layer(dense).data) == 3
    conv = {"kind": "conv", "units": [0, 1], "kept": [9, 0], "size": 9, "filters": np.zeros((2, 3, 3, 3))}
    assert len(charts.first_layer(conv).data) == 2


def test_predictions_charts():
    names10 = [str(i) for i in range(10)]
    fig = charts.per_class(list(np.full(10, 0.9)), list(np.full(10, 0.5)), names10)
    assert names(fig) == ["dense", "pruned"]
    change = np.zeros((10, 10), int)
    change[1, 2], change[1, 1] = 3, -3
    heat = charts.confusion_change(change, names10).data[0]
    assert heat.zmid == 0 and heat.zmax == 3


def test_compare_curves_two_points_with_or_without_curves():
    curve = {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.9]}
    sides = {"A": {"name": "large_final", "curve": curve, "point": {"sparsity": 0.9, "accuracy": 0.9}},
             "B": {"name": "movement", "curve": None, "point": {"sparsity": 0.99, "accuracy": 0.2}}}
    fig = charts.compare_curves(sides, {"unpruned trained θf": 0.98, "unpruned θ0": 0.1})
    assert names(fig) == ["A: large_final (precomputed)", "A (live)", "B (live)"]
    assert np.isclose(fig.data[-1].x[0], 1) and list(fig.data[-1].y) == [0.2]
    assert len(fig.layout.shapes) == 2 and fig.layout.xaxis.type == "log"


def test_layer_overlap_groups_sparsities_and_jaccard_first_layer_on_top():
    layers = [{"name": "fc1", "sparsity_a": 0.9, "sparsity_b": 0.8, "jaccard": 0.5},
              {"name": "fc2", "sparsity_a": 0.5, "sparsity_b": 0.5, "jaccard": 1.0}]
    fig = charts.layer_overlap(layers)
    assert names(fig) == ["Jaccard A/B (kept weights)", "sparsity B", "sparsity A"]
    assert list(fig.data[0].y) == ["fc2", "fc1"] and list(fig.data[0].x) == [1.0, 0.5]
    assert list(fig.data[2].x) == [0.5, 0.9] and fig.layout.barmode == "group"


# colour is never the only cue, and no figure forces a light background


def test_curves_differ_in_dash_and_marker_not_only_in_colour():
    curves = {"movement": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.95]},
              "large_final (magnitude)": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.96]},
              "random (control)": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.3]},
              "random (control, other scope)": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.2]}}
    fig = charts.accuracy_curve(curves, 0.98, None)
    styles = [(t.line.dash, t.marker.symbol) for t in fig.data]
    assert len(set(styles)) == len(styles)
    runs = {label: {"history": [{"epoch": 1, "loss": 0.1, "accuracy": 0.9}], "before": None, "colour": "#0072B2"}
            for label in ("a", "b", "c")}  # even in one colour the runs stay apart
    lines = [t for t in charts.retrain_curves(runs, 2, 0.98).data if t.xaxis == "x"]
    assert len({(t.line.dash, t.marker.symbol) for t in lines}) == 3


def test_confusion_change_cells_carry_signs_and_the_colour_bar_says_so():
    change = np.zeros((3, 3), int)
    change[0, 1], change[0, 0], change[2, 1] = 4, -5, -1
    heat = charts.confusion_change(change, ["a", "b", "c"]).data[0]
    assert heat.text[0][1] == "+4" and heat.text[0][0] == "−5" and heat.text[2][1] == "−1" and heat.text[1][1] == ""
    assert "+" in heat.colorbar.title.text and "−" in heat.colorbar.title.text


def test_nearly_empty_layer_is_marked_by_a_sign_and_pruned_bars_by_a_hatch():
    layers = [{"name": "a", "sparsity": 0.5, "total": 10}, {"name": "b", "sparsity": 0.995, "total": 1000}]
    assert charts.layer_sparsity(layers).data[0].text[0].startswith("⚠")
    edges = np.linspace(-1, 1, 3)
    fig = charts.histograms({"final": {"edges": edges, "kept": [1, 2], "pruned": [3, 0]}}, "w")
    assert [t.marker.pattern.shape for t in fig.data] == ["", "/"]


def test_no_figure_hard_codes_black_or_a_background():
    curve = {"large_final": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.9]}}
    live = {"sparsity": 0.9, "accuracy": 0.9, "label": "live"}
    sides = {"A": {"name": "x", "curve": None, "point": {"sparsity": 0.9, "accuracy": 0.9}}}
    run = {"r": {"history": [{"epoch": 1, "loss": 0.1, "accuracy": 0.9}], "before": 0.1, "colour": "#0072B2"}}
    for fig in (charts.accuracy_curve(curve, 0.98, live, live), charts.compare_curves(sides, {"dense": 0.98}),
                charts.retrain_curves(run, 2, 0.98, 0.5), charts.per_class([0.9], [0.8], ["0"])):
        spec = fig.to_plotly_json()
        spec["layout"].pop("template")  # Plotly's default, which Streamlit's theme replaces
        text = json.dumps(spec, default=str).lower()
        assert '"black"' not in text and '"white"' not in text and "#000000" not in text
        assert fig.layout.paper_bgcolor is None and fig.layout.plot_bgcolor is None


# text alternatives


def test_describe_accuracy_curve_says_where_each_curve_falls():
    curves = {"large_final (magnitude)": {"sparsity": [0.0, 0.5, 0.9, 0.99], "accuracy": [0.981, 0.98, 0.975, 0.4]},
              "random (control)": {"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.981, 0.6, 0.113]}}
    live = {"sparsity": 0.896, "accuracy": 0.969, "label": "your mask (live)"}
    control = {"sparsity": 0.896, "accuracy": 0.121, "label": "random mask (live)"}
    text = charts.describe_accuracy_curve(curves, 0.981, live, control)
    assert text == ("Dense accuracy 98.1%. your mask (live): 96.9% at 89.6% pruned; random mask (live): 12.1% at "
                    "89.6% pruned. large_final (magnitude): stays within 1 point of dense up to 90% pruned, then "
                    "falls to 40.0% at 99% pruned. random (control): falls from 98.1% at 0% pruned to 11.3% at "
                    "90% pruned.")
    rows = charts.accuracy_curve_table(curves, live, control)
    assert [row["% pruned"] for row in rows] == ["0%", "50%", "89.6%", "90%", "99%"]
    assert rows[2] == {"% pruned": "89.6%", "large_final (magnitude)": "", "random (control)": "",
                       "your mask (live)": "96.9%", "random mask (live)": "12.1%"}
    assert rows[4]["large_final (magnitude)"] == "40.0%" and rows[4]["random (control)"] == ""
    assert charts.describe_accuracy_curve({}, 0.5, None) == "Dense accuracy 50.0%."
    flat = {"x": {"sparsity": [0.5, 0.9], "accuracy": [0.3, 0.3]}}
    text = charts.describe_accuracy_curve(flat, 0.9, None)
    assert "x: stays from 30.0% at 50% pruned to 30.0% at 90% pruned." in text


def test_describe_layers_and_overlap():
    layers = [{"name": "fc1", "sparsity": 0.921, "total": 235200}, {"name": "fc2", "sparsity": 0.995, "total": 30000},
              {"name": "fc3", "sparsity": 0.45, "total": 1000}]
    assert charts.describe_layer_sparsity(layers) == (
        "3 tensors. Most pruned: fc2, 99.5% of 30,000; least pruned: fc3, 45.0% of 1,000. "
        "Nearly empty (≥ 99% pruned): fc2.")
    same = [{"name": n, "sparsity": 0.9, "total": 10} for n in "ab"]
    assert charts.describe_layer_sparsity(same) == "All 2 tensors are pruned 90.0%."
    assert charts.layer_sparsity_table(layers)[0] == {"tensor": "fc1", "weights": "235,200", "pruned": "92.10%"}
    overlap = [{"name": "fc1", "sparsity_a": 0.9, "sparsity_b": 0.8, "jaccard": 0.31},
               {"name": "fc2", "sparsity_a": 0.5, "sparsity_b": 0.5, "jaccard": 0.92}]
    assert charts.describe_layer_overlap(overlap) == ("Jaccard overlap of the kept weights from 0.310 (fc1) to 0.920 "
                                                      "(fc2); the sparsities of A and B differ by at most 10.0 "
                                                      "points in a layer.")
    assert charts.layer_overlap_table(overlap)[1]["Jaccard"] == "0.920"


def test_describe_compare_curves():
    sides = {"A": {"name": "large_final", "curve": {"sparsity": [0.0], "accuracy": [0.98]},
                   "point": {"sparsity": 0.896, "accuracy": 0.972}},
             "B": {"name": "movement", "curve": None, "point": {"sparsity": 0.9, "accuracy": 0.95}}}
    assert charts.describe_compare_curves(sides, {"unpruned trained θf": 0.981}) == (
        "A (large_final): 97.2% at 89.6% pruned. B (movement): 95.0% at 90% pruned, 2.2 points below A "
        "(no precomputed curve). unpruned trained θf: 98.1%.")


def test_describe_weights_histograms_and_scatter():
    edges = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])  # centres -0.75, -0.25, 0.25, 0.75
    hist = {"final": {"edges": edges, "kept": np.array([2, 0, 0, 2]), "pruned": np.array([0, 3, 3, 0])}}
    assert charts.describe_histograms(hist, "fc1") == ("Trained θf of fc1: 4 kept (mean |w| ≈ 0.75), 6 pruned "
                                                       "(≈ 0.25), values from -1 to 1.")
    sample = {"init": np.array([0.1, -0.2, 0.3, 0.0]), "final": np.array([0.5, 0.0, -0.4, 0.1]),
              "kept": np.array([True, False, True, False]), "total": 10}
    assert charts.describe_init_final_scatter(sample, "fc1") == (
        "fc1: 4 weights (a sample of 10), 2 kept and 2 pruned. Kept weights moved a mean |θf − θ0| of 0.55 and "
        "end at a mean |θf| of 0.45. Pruned weights moved a mean |θf − θ0| of 0.15 and end at a mean |θf| of 0.05.")


def test_describe_first_layer_dense_and_conv():
    coverage = np.zeros((2, 2))
    coverage[0, 0], coverage[1, 1] = 0.5, 1.0
    dense = {"kind": "dense", "units": [3], "kept": [2], "masks": np.ones((1, 2, 2), bool), "coverage": coverage}
    assert charts.describe_first_layer(dense) == ("Share of hidden units keeping each of the 4 input pixels: from "
                                                  "0% to 100%, mean 38%; 2 pixels are cut off entirely. Of 4 "
                                                  "inputs, unit 3 keeps 2.")
    filters = np.zeros((2, 3, 3, 3))
    filters[0].flat[:9] = [1, -2, 3, -4, 5, 6, 7, 8, 9]
    conv = {"kind": "conv", "units": [0, 1], "kept": [9, 0], "size": 27, "filters": filters}
    assert charts.describe_first_layer(conv) == ("Of the 27 weights of each first-layer filter, filter 0 keeps 9 "
                                                 "(7 positive, 2 negative), filter 1 keeps 0 (0 positive, 0 negative)"
                                                 "; 1 of the 2 filters shown are removed entirely.")


def test_filters_are_blue_positive_red_negative_white_zero_as_the_caption_says():
    """The caption names the colours, so the colour scale must be the one it describes."""
    conv = {"kind": "conv", "units": [0], "kept": [2], "size": 4, "filters": [np.array([[-1.0, 0], [0, 1]])]}
    scale = charts.first_layer(conv).data[0].colorscale
    low, middle, high = scale[0][1], scale[len(scale) // 2][1], scale[-1][1]
    rgb = [tuple(int(v) for v in c[4:-1].split(",")) for c in (low, middle, high)]
    assert rgb[0][0] > rgb[0][2] and rgb[2][2] > rgb[2][0] and min(rgb[1]) > 240  # red, white, blue


def test_describe_predictions():
    names = ["0", "1", "2"]
    assert charts.describe_per_class([0.99, 0.98, 0.97], [0.99, 0.90, 0.975], names) == (
        "Mean accuracy per class falls from 98.0% to 95.5%. Hurt most: 1 (98.0% → 90.0%); least: 2 (97.0% → 97.5%).")
    assert charts.per_class_table([0.99], [0.9], ["0"]) == [
        {"class": "0", "dense": "99.0%", "pruned": "90.0%", "change": "-9.0 points"}]
    change = np.array([[-5, 4, 1], [0, 2, -2], [1, 0, -1]])
    assert charts.describe_confusion_change(change, names) == (
        "On the diagonal, 6 correct answers lost and 2 gained; off it, 6 new mistakes (+) and 2 fewer (−). "
        "Largest new mistake: true 0 predicted as 1 (+4).")
    assert charts.confusion_change_table(change, names, top=2) == [
        {"true": "0", "predicted": "1", "change": "+4"}, {"true": "1", "predicted": "2", "change": "-2"}]
    assert charts.describe_confusion_change(np.zeros((3, 3), int), names) == "No prediction changed class."


def test_describe_retrain_curves():
    runs = {"θ0 · lottery ticket": {"history": [{"epoch": 1, "loss": 0.31, "accuracy": 0.95},
                                                {"epoch": 2, "loss": 0.12, "accuracy": 0.975}], "before": 0.12},
            "random re-init": {"history": [], "before": None}}
    assert charts.describe_retrain_curves(runs, 2, 0.981, 0.12) == (
        "θ0 · lottery ticket: 12.0% before training, 97.5% after epoch 2 of 2 (training loss 0.12). "
        "random re-init: not trained yet. Dense 98.1%; untrained supermask 12.0%.")


def test_legends_sit_below_the_chart_clear_of_its_toolbar():
    curve = {"large_final": {"sparsity": [0.0, 0.9], "accuracy": [0.98, 0.9]}}
    for fig in (charts.accuracy_curve(curve, 0.98, None), charts.per_class([0.9], [0.8], ["0"])):
        assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0
        assert fig.layout.legend.yanchor == "bottom"


def test_charts_built_without_validation_are_valid_plotly_figures():
    """accuracy_curve, layer_sparsity, histograms and init_final_scatter skip Plotly's validation
    for speed (charts._figure); rebuilding their output with validation must accept every property."""
    curves = {"large_final layer": {"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.98, 0.97, 0.8]},
              "random layer": {"sparsity": [0.0, 0.5], "accuracy": [0.98, 0.6]}}
    live = {"sparsity": 0.9, "accuracy": 0.8, "label": "your mask (live)"}
    control = {"sparsity": 0.9, "accuracy": 0.2, "label": "random mask"}
    edges = np.linspace(-1, 1, 5)
    hist = {"final": {"edges": edges, "kept": np.array([1, 0, 0, 2]), "pruned": np.array([0, 5, 5, 0])},
            "init": {"edges": edges, "kept": np.array([1, 1, 0, 1]), "pruned": np.array([2, 3, 3, 2])}}
    sample = {"init": np.array([0.1, -0.2, 0.3]), "final": np.array([0.5, 0.0, -0.4]),
              "kept": np.array([True, False, True]), "total": 3}
    figures = [charts.accuracy_curve(curves, 0.98, live, control), charts.accuracy_curve({}, 0.5, None, None),
               charts.layer_sparsity([{"name": "a", "sparsity": 0.5, "total": 10}]),
               charts.histograms(hist, "fc1.weight"), charts.histograms({"final": hist["final"]}, "fc1.weight"),
               charts.init_final_scatter(sample, "fc1.weight")]
    for fig in figures:
        spec = fig.to_dict()
        assert go.Figure(spec).to_dict() == spec  # raises ValueError on any property Plotly does not know
    assert fig.layout.title.text.startswith("fc1.weight: 3 weights")  # attribute access works as on any figure


def test_the_validity_check_catches_a_misspelt_property():
    bad = charts._figure([dict(type="scatter", x=[1], colour="red")], {})
    with pytest.raises(ValueError, match="colour"):
        go.Figure(bad.to_dict())
