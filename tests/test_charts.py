"""app/charts.py builds Plotly figures from plain data, without Streamlit or the engine."""

from pathlib import Path
import sys

import numpy as np
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
