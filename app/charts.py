"""Plotly figures from plain data (lists, arrays, dicts); no engine calls, no Streamlit."""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

KEPT, PRUNED = "#2b6cb0", "#e07b39"
COLOURS = {"random": "#8a8a8a", "large_final": "#2b6cb0"}
OTHER = "#2f9e44"


def _layout(fig, height=360, side_legend=False, **kwargs):
    legend = (dict(orientation="v", yanchor="top", y=1, x=1.01) if side_legend
              else dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=legend, **kwargs)
    return fig


def _remaining(sparsity):
    return [max(100 * (1 - s), 0.05) for s in sparsity]


def accuracy_curve(curves: dict, dense: float, live: dict, control: dict | None = None) -> go.Figure:
    """Accuracy vs weights remaining (log axis, sparser to the right), as in the lottery-ticket
    papers.  ``curves``: label -> {"sparsity", "accuracy"}; ``live``/``control``: one point each,
    {"sparsity", "accuracy", "label"}."""
    fig = go.Figure()
    for label, c in curves.items():
        colour = COLOURS.get(label.split(" ")[0], OTHER)
        fig.add_scatter(x=_remaining(c["sparsity"]), y=c["accuracy"], mode="lines+markers", name=label,
                        line=dict(color=colour, dash="dot" if label.startswith("random") else "solid"),
                        customdata=[100 * s for s in c["sparsity"]],
                        hovertemplate="%{customdata:.2f}% pruned<br>accuracy %{y:.2%}<extra>" + label + "</extra>")
    fig.add_hline(y=dense, line=dict(color="black", dash="dash", width=1),
                  annotation_text=f"dense {dense:.2%}", annotation_position="top right")
    for point, symbol, colour in ((control, "x", COLOURS["random"]), (live, "star", "#d62728")):
        if point:
            fig.add_scatter(x=_remaining([point["sparsity"]]), y=[point["accuracy"]], mode="markers",
                            name=point["label"], marker=dict(symbol=symbol, size=16, color=colour,
                                                             line=dict(width=1, color="white")),
                            hovertemplate=f"{100 * point['sparsity']:.2f}% pruned<br>"
                                          "accuracy %{y:.2%}<extra></extra>")
    return _accuracy_axes(fig)


def _accuracy_axes(fig):
    """Test accuracy against weights remaining on a log axis, 100% on the left, 0.1% on the right."""
    fig.update_xaxes(type="log", range=[2.05, -1.1], title="weights remaining (%, log scale)",  # 100% .. 0.1%
                     tickvals=[100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1],
                     ticktext=["100", "50", "20", "10", "5", "2", "1", "0.5", "0.2", "0.1"])
    fig.update_yaxes(title="test accuracy", tickformat=".0%", range=[0, 1.02])
    return _layout(fig, 400)


SIDES = {"A": "#2b6cb0", "B": "#d6336c"}  # the Compare tab's two settings
JACCARD = "#2f9e44"


def compare_curves(sides: dict, dense: dict) -> go.Figure:
    """Two settings on the accuracy-vs-sparsity axes.  ``sides``: "A"/"B" -> {"name": legend text,
    "point": {"sparsity", "accuracy"}, "curve": {"sparsity": [...], "accuracy": [...]} or None};
    ``dense``: label -> accuracy of the unpruned weights (one dashed line each)."""
    fig = go.Figure()
    for side, d in sides.items():
        if d["curve"]:
            c = d["curve"]
            fig.add_scatter(x=_remaining(c["sparsity"]), y=c["accuracy"], mode="lines+markers",
                            name=f"{side}: {d['name']} (precomputed)", opacity=0.6,
                            line=dict(color=SIDES[side], dash="solid" if side == "A" else "dash"),
                            customdata=[100 * s for s in c["sparsity"]],
                            hovertemplate="%{customdata:.2f}% pruned<br>accuracy %{y:.2%}<extra>" + side + "</extra>")
    for side, d in sides.items():  # the live points on top of both curves
        p = d["point"]
        fig.add_scatter(x=_remaining([p["sparsity"]]), y=[p["accuracy"]], mode="markers+text", name=f"{side} (live)",
                        text=[side], textposition="top center", textfont=dict(color=SIDES[side], size=14),
                        marker=dict(symbol="star" if side == "A" else "diamond", size=16, color=SIDES[side],
                                    line=dict(width=1, color="white")),
                        hovertemplate=f"{side}: {100 * p['sparsity']:.2f}% pruned<br>"
                                      "accuracy %{y:.2%}<extra></extra>")
    for i, (label, accuracy) in enumerate(dense.items()):
        fig.add_hline(y=accuracy, line=dict(color="black", dash="dash", width=1),
                      annotation_text=f"{label} {accuracy:.2%}",
                      annotation_position="top right" if i == 0 else "bottom right")
    return _accuracy_axes(fig)


def layer_overlap(layers: list) -> go.Figure:
    """Grouped horizontal bars per tensor, first layer on top: the sparsity of A, of B, and the
    Jaccard overlap of the weights they keep (rows of ``pruning.compare_masks(...)["layers"]``)."""
    names = [row["name"] for row in layers][::-1]
    fig = go.Figure()
    for key, label, colour, fmt in (("jaccard", "Jaccard A/B (kept weights)", JACCARD, "{:.3f}"),
                                    ("sparsity_b", "sparsity B", SIDES["B"], "{:.1%}"),
                                    ("sparsity_a", "sparsity A", SIDES["A"], "{:.1%}")):  # drawn bottom-up
        values = [row[key] for row in layers][::-1]
        fig.add_bar(x=values, y=names, orientation="h", name=label, marker_color=colour,
                    text=[fmt.format(v) for v in values], textposition="outside", textfont_size=11,
                    cliponaxis=False, hovertemplate="%{y}: %{text}<extra>" + label + "</extra>")
    fig.update_xaxes(range=[0, 1.15], tickvals=[0, 0.25, 0.5, 0.75, 1], title="sparsity (share pruned) · Jaccard index")
    fig.update_layout(barmode="group", bargap=0.25, legend_traceorder="reversed")
    return _layout(fig, max(300, 100 + 84 * len(layers)))


def layer_sparsity(layers: list) -> go.Figure:
    """Horizontal bars: the fraction of each tensor pruned (from ``pruning.report(mask)["layers"]``)."""
    names = [row["name"] for row in layers][::-1]
    values = [row["sparsity"] for row in layers][::-1]
    text = [f"{row['sparsity']:.1%} of {row['total']:,}" for row in layers][::-1]
    colours = ["#d62728" if v >= 0.99 else PRUNED for v in values]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", text=text, textposition="auto",
                           marker_color=colours, hovertemplate="%{y}: %{x:.2%} pruned<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="pruned")
    return _layout(fig, max(220, 60 + 28 * len(layers)))


def histograms(hist: dict, layer: str) -> go.Figure:
    """Stacked kept/pruned histograms of a tensor's trained and initial weights."""
    titles = {"final": f"trained θf of {layer}", "init": f"initial θ0 of {layer}"}
    fig = make_subplots(rows=1, cols=len(hist), subplot_titles=[titles[k] for k in hist])
    for col, (_, h) in enumerate(hist.items(), start=1):
        centres = (np.asarray(h["edges"][:-1]) + np.asarray(h["edges"][1:])) / 2
        width = float(h["edges"][1] - h["edges"][0])
        for part, colour in (("kept", KEPT), ("pruned", PRUNED)):
            fig.add_bar(x=centres, y=h[part], width=width, name=part, marker_color=colour, row=1, col=col,
                        showlegend=col == 1, legendgroup=part)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="weights", row=1, col=1)
    return _layout(fig, 320, side_legend=True)


def init_final_scatter(sample: dict, layer: str) -> go.Figure:
    """θ0 against θf of (a sample of) one tensor's weights, coloured kept / pruned."""
    fig = go.Figure()
    keep = np.asarray(sample["kept"])
    for part, sel, colour in (("pruned", ~keep, PRUNED), ("kept", keep, KEPT)):
        fig.add_trace(go.Scattergl(x=sample["init"][sel], y=sample["final"][sel], mode="markers", name=part,
                                   marker=dict(size=3, color=colour, opacity=0.5),
                                   hovertemplate="θ0 %{x:.3f}<br>θf %{y:.3f}<extra>" + part + "</extra>"))
    shown = len(keep)
    title = f"{layer}: {shown:,} weights" + ("" if shown == sample["total"] else f" (sample of {sample['total']:,})")
    fig.update_xaxes(title="initial weight θ0")
    fig.update_yaxes(title="trained weight θf")
    return _layout(fig, 420, side_legend=True, title=dict(text=title, font=dict(size=13)))


def first_layer(images: dict) -> go.Figure:
    """Dense: each chosen hidden unit's input mask as an image (white = kept), plus the fraction of
    units keeping each pixel.  Conv: the kept weights of the first filters."""
    if images["kind"] == "dense":
        coverage = images["coverage"]
        panels = [(f"all units: share kept (max {coverage.max():.0%})", coverage, float(coverage.max()) or 1.0)]
        panels += [(f"unit {u}: {k} kept", m.astype(float), 1.0) for u, k, m in
                   zip(images["units"], images["kept"], images["masks"], strict=True)]
        colourscale, zmin = "gray", 0.0
    else:
        limit = float(np.abs(images["filters"]).max()) or 1.0
        panels = [(f"filter {u}: {k}/{images['size']} kept", f, limit) for u, k, f in
                  zip(images["units"], images["kept"], images["filters"], strict=True)]
        colourscale, zmin = "RdBu", -limit
    cols = min(len(panels), 5)
    rows = (len(panels) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _, _ in panels],
                        horizontal_spacing=0.01, vertical_spacing=0.08)
    for i, (_, img, zmax) in enumerate(panels):
        img = np.asarray(img, dtype=float)
        if img.ndim == 3:  # RGB filter: show its mean over colour channels
            img = img.mean(axis=-1)
        fig.add_heatmap(z=img[::-1], colorscale=colourscale, zmin=zmin, zmax=zmax, showscale=False,
                        hovertemplate="value %{z:.3f}<extra></extra>", row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    fig.update_annotations(font_size=11)
    return _layout(fig, 230 * rows + 30)


def per_class(dense: list, pruned: list, names: list) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=names, y=dense, name="dense", marker_color="#9aa5b1")
    fig.add_bar(x=names, y=pruned, name="pruned", marker_color=KEPT)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title="accuracy")
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group")
    return _layout(fig, 340)


def confusion_change(change, names: list) -> go.Figure:
    """Pruned minus dense confusion counts (row = true class): red where pruning added mistakes."""
    change = np.asarray(change)[: len(names), : len(names)]
    off = change - np.diag(np.diag(change))
    limit = float(max(np.abs(off).max(), 1))
    fig = go.Figure(go.Heatmap(z=change, x=names, y=names, colorscale="RdBu_r", zmid=0, zmin=-limit, zmax=limit,
                               text=change, texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{z:+d}<extra></extra>"))
    fig.update_xaxes(title="predicted", type="category")
    fig.update_yaxes(title="true", autorange="reversed", type="category")
    return _layout(fig, 380)


def retrain_curves(runs: dict, epochs: int, dense: float, supermask: float | None = None) -> go.Figure:
    """Test accuracy and training loss per epoch of retraining runs, on axes spanning ``epochs``.
    ``runs``: label -> {"history": [{"epoch", "loss", "accuracy"}], "before": accuracy at epoch 0
    or None, "colour"}; ``dense``/``supermask``: reference lines."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for label, run in runs.items():
        h, line = run["history"], dict(color=run.get("colour"))
        start = [] if run.get("before") is None else [(0, run["before"])]
        points = start + [(r["epoch"], r["accuracy"]) for r in h]
        fig.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", name=label,
                        legendgroup=label, line=line, row=1, col=1,
                        hovertemplate="epoch %{x}: %{y:.2%}<extra>" + label + "</extra>")
        fig.add_scatter(x=[r["epoch"] for r in h], y=[r["loss"] for r in h], mode="lines+markers", name=label,
                        legendgroup=label, showlegend=False, line=line, row=1, col=2,
                        hovertemplate="epoch %{x}: loss %{y:.4f}<extra>" + label + "</extra>")
    fig.add_hline(y=dense, line=dict(color="black", dash="dash", width=1), row=1, col=1,
                  annotation_text=f"dense {dense:.2%}", annotation_position="bottom right")
    if supermask is not None:
        fig.add_hline(y=supermask, line=dict(color="#d62728", dash="dot", width=1), row=1, col=1,
                      annotation_text=f"untrained supermask {supermask:.2%}", annotation_position="top right")
    fig.update_xaxes(title="epoch", range=[-0.2, epochs + 0.2], dtick=1)
    fig.update_yaxes(tickformat=".0%", title="test accuracy", row=1, col=1)
    fig.update_yaxes(title="training loss (epoch mean)", rangemode="tozero", row=1, col=2)
    return _layout(fig, 360)
