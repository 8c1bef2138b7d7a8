"""Plotly figures from plain data (lists, arrays, dicts); no engine calls, no Streamlit.

Each figure has a text alternative beside it (``describe_*``: the same plain data in, a short
description out; ``*_table``: the numbers as rows), shown with the chart for readers who cannot see
it.  Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), safe for the
common colour-vision deficiencies, and never the only cue: lines also differ in dash and marker,
bars carry their values or a hatch pattern, the confusion change its signs.  No figure sets a
background or a text colour, so Streamlit's theme makes them read in light and dark mode.
"""

import numpy as np
# Plotly looks pandas up in sys.modules without importing it; while another session's thread is
# still importing pandas it finds a half-initialised module and raises.  Importing it here waits
# for that import to finish (Python's per-module import lock), so figures never see it half-made.
import pandas  # noqa: F401
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Okabe-Ito; black is left out (it vanishes on a dark background), a mid grey stands in for neutral lines
BLUE, ORANGE, SKY, GREEN, YELLOW, VERMILLION, PURPLE = ("#0072B2", "#E69F00", "#56B4E9", "#009E73", "#F0E442",
                                                        "#D55E00", "#CC79A7")
GREY = "#888888"  # contrast 3.5:1 on white, 5.3:1 on Streamlit's dark background
KEPT, PRUNED = BLUE, ORANGE
COLOURS = {"random": GREY, "large_final": BLUE}
OTHER = GREEN
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")
PRUNED_PATTERN = "/"  # hatch on pruned (and reference) bars: a cue besides colour


def _figure(data: list, layout: dict) -> go.Figure:
    """A figure from plain dicts, built without Plotly's property-by-property validation: 10-20x
    faster, for the charts rebuilt on every slider move (the others use Plotly's API, validated).
    tests/test_charts.py validates every chart built here, so a misspelt property still fails a test."""
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def _sizing(height=360, side_legend=False, top=40) -> dict:
    """Size, margins and the legend: at the bottom of the figure (below the axis title), where it
    can wrap on a phone without running under the chart's toolbar at the top; or on the right."""
    legend = (dict(orientation="v", yanchor="top", y=1, x=1.01) if side_legend
              else dict(orientation="h", yref="container", yanchor="bottom", y=0, x=0))
    return dict(height=height, margin=dict(l=10, r=10, t=top, b=10), legend=legend)


def _layout(fig, height=360, side_legend=False, top=40, **kwargs):
    """``_sizing`` applied to a figure built with Plotly's API."""
    fig.update_layout(**_sizing(height, side_legend, top), **kwargs)
    return fig


def _remaining(sparsity):
    return [max(100 * (1 - s), 0.05) for s in sparsity]


def _pruned(s: float) -> str:
    """A sparsity as "% pruned" text: 0.896 -> "89.6%", 0.9 -> "90%", 0.9933 -> "99.33%"."""
    return f"{100 * s:.4g}%"


def _acc(a: float) -> str:
    return f"{a:.1%}"


def _points(c: dict) -> list:
    return sorted(zip(c["sparsity"], c["accuracy"], strict=True))


def _curve_styles(labels) -> dict:
    """label -> (colour, dash, marker symbol): random controls grey, dotted, with crosses; the other
    curves solid, dashed, ... with circles, squares, ... in turn."""
    styles, k = {}, 0
    for label in labels:
        if label.startswith("random"):
            styles[label] = (GREY, "dashdot" if "other scope" in label else "dot", "x")
        else:
            styles[label] = (COLOURS.get(label.split(" ")[0], OTHER), DASHES[k % len(DASHES)],
                             SYMBOLS[k % len(SYMBOLS)])
            k += 1
    return styles


def accuracy_curve(curves: dict, dense: float, live: dict, control: dict | None = None) -> go.Figure:
    """Accuracy vs weights remaining (log axis, sparser to the right), as in the lottery-ticket
    papers.  ``curves``: label -> {"sparsity", "accuracy"}; ``live``/``control``: one point each,
    {"sparsity", "accuracy", "label"}."""
    styles, data = _curve_styles(curves), []
    for label, c in curves.items():
        colour, dash, symbol = styles[label]
        data.append(dict(type="scatter", x=_remaining(c["sparsity"]), y=c["accuracy"], mode="lines+markers",
                         name=label, line=dict(color=colour, dash=dash), marker=dict(symbol=symbol, size=7),
                         customdata=[100 * s for s in c["sparsity"]],
                         hovertemplate="%{customdata:.2f}% pruned<br>accuracy %{y:.2%}<extra>" + label + "</extra>"))
    for point, symbol, colour in ((control, "x", COLOURS["random"]), (live, "star", VERMILLION)):
        if point:
            data.append(dict(type="scatter", x=_remaining([point["sparsity"]]), y=[point["accuracy"]],
                             mode="markers", name=point["label"],
                             marker=dict(symbol=symbol, size=16, color=colour, line=dict(width=1, color=GREY)),
                             hovertemplate=f"{100 * point['sparsity']:.2f}% pruned<br>"
                                           "accuracy %{y:.2%}<extra></extra>"))
    return _figure(data, {**_accuracy_axes_layout(), **_hline(dense, f"dense {dense:.2%}"), **_sizing(400)})


def _hline(y: float, text: str) -> dict:
    """A dashed grey line across the plot at ``y``, labelled at its right end (Plotly's add_hline)."""
    return dict(shapes=[dict(type="line", line=dict(color=GREY, dash="dash", width=1), x0=0, x1=1, xref="x domain",
                             y0=y, y1=y, yref="y")],
                annotations=[dict(showarrow=False, text=text, x=1, xanchor="right", xref="x domain", y=y,
                                  yanchor="bottom", yref="y")])


def _accuracy_axes_layout() -> dict:
    """Test accuracy against weights remaining on a log axis, 100% on the left, 0.1% on the right."""
    return dict(xaxis=dict(type="log", range=[2.05, -1.1], title=dict(text="weights remaining (%, log scale)"),
                           tickvals=[100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1],
                           ticktext=["100", "50", "20", "10", "5", "2", "1", "0.5", "0.2", "0.1"]),
                yaxis=dict(title=dict(text="test accuracy"), tickformat=".0%", range=[0, 1.02]))


def _accuracy_axes(fig):
    """The accuracy axes and size, on a figure built with Plotly's API."""
    fig.update_layout(**_accuracy_axes_layout())
    return _layout(fig, 400)


SIDES = {"A": BLUE, "B": VERMILLION}  # the Compare tab's two settings (also: solid vs dashed, star vs diamond)
JACCARD = GREEN


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
                                    line=dict(width=1, color=GREY)),
                        hovertemplate=f"{side}: {100 * p['sparsity']:.2f}% pruned<br>"
                                      "accuracy %{y:.2%}<extra></extra>")
    for i, (label, accuracy) in enumerate(dense.items()):
        fig.add_hline(y=accuracy, line=dict(color=GREY, dash="dash" if i == 0 else "dot", width=1),
                      annotation_text=f"{label} {accuracy:.2%}",
                      annotation_position="top right" if i == 0 else "bottom right")
    return _accuracy_axes(fig)


def layer_overlap(layers: list) -> go.Figure:
    """Grouped horizontal bars per tensor, first layer on top: the sparsity of A, of B, and the
    Jaccard overlap of the weights they keep (rows of ``pruning.compare_masks(...)["layers"]``)."""
    names = [row["name"] for row in layers][::-1]
    fig = go.Figure()
    for key, label, colour, pattern, fmt in (("jaccard", "Jaccard A/B (kept weights)", JACCARD, ".", "{:.3f}"),
                                             ("sparsity_b", "sparsity B", SIDES["B"], "/", "{:.1%}"),
                                             ("sparsity_a", "sparsity A", SIDES["A"], "", "{:.1%}")):  # bottom-up
        values = [row[key] for row in layers][::-1]
        fig.add_bar(x=values, y=names, orientation="h", name=label, marker_color=colour,
                    marker_pattern=dict(shape=pattern, fillmode="overlay", fgcolor=GREY),
                    text=[fmt.format(v) for v in values], textposition="outside", textfont_size=11,
                    cliponaxis=False, hovertemplate="%{y}: %{text}<extra>" + label + "</extra>")
    fig.update_xaxes(range=[0, 1.15], tickvals=[0, 0.25, 0.5, 0.75, 1], title="sparsity (share pruned) · Jaccard index")
    fig.update_layout(barmode="group", bargap=0.25, legend_traceorder="reversed")
    return _layout(fig, max(300, 100 + 84 * len(layers)))


def layer_sparsity(layers: list) -> go.Figure:
    """Horizontal bars: the fraction of each tensor pruned (from ``pruning.report(mask)["layers"]``)."""
    names = [row["name"] for row in layers][::-1]
    values = [row["sparsity"] for row in layers][::-1]
    text = [("⚠ " if row["sparsity"] >= 0.99 else "") + f"{row['sparsity']:.1%} of {row['total']:,}"
            for row in layers][::-1]  # the sign, not only the colour, marks a nearly empty layer
    colours = [VERMILLION if v >= 0.99 else PRUNED for v in values]
    bars = dict(type="bar", x=values, y=names, orientation="h", text=text, textposition="auto",
                marker=dict(color=colours), hovertemplate="%{y}: %{x:.2%} pruned<extra></extra>")
    return _figure([bars], dict(xaxis=dict(range=[0, 1], tickformat=".0%", title=dict(text="pruned")),
                                **_sizing(max(220, 60 + 28 * len(layers)))))


def histograms(hist: dict, layer: str) -> go.Figure:
    """Stacked kept/pruned histograms of a tensor's trained and initial weights."""
    titles = {"final": "trained θf", "init": "initial θ0"}  # short: side by side on a phone
    cols, gap = len(hist), 0.1  # side by side, as make_subplots(rows=1, cols=2) lays them out
    panel = (1 - gap * (cols - 1)) / cols
    data, layout = [], dict(barmode="stack", annotations=[], **_sizing(340, side_legend=True, top=60))
    for col, (key, h) in enumerate(hist.items(), start=1):
        n, left = col if col > 1 else "", (col - 1) * (panel + gap)  # Plotly's axes: x, x2, ...
        layout[f"xaxis{n}"] = dict(anchor=f"y{n}", domain=[left, left + panel])
        layout[f"yaxis{n}"] = dict(anchor=f"x{n}", domain=[0.0, 1.0])
        layout["annotations"].append(dict(font=dict(size=16), showarrow=False, text=titles[key], x=left + panel / 2,
                                          xanchor="center", xref="paper", y=1.0, yanchor="bottom", yref="paper"))
        centres = (np.asarray(h["edges"][:-1]) + np.asarray(h["edges"][1:])) / 2
        width = float(h["edges"][1] - h["edges"][0])
        for part, colour, pattern in (("kept", KEPT, ""), ("pruned", PRUNED, PRUNED_PATTERN)):
            data.append(dict(type="bar", x=centres, y=h[part], width=width, name=part, xaxis=f"x{n}", yaxis=f"y{n}",
                             marker=dict(color=colour, pattern=dict(shape=pattern, fillmode="overlay",
                                                                     fgcolor="#ffffff")),
                             showlegend=col == 1, legendgroup=part))
    layout["yaxis"]["title"] = dict(text="weights")
    return _figure(data, layout)  # top=60: subplot titles clear of the toolbar


def init_final_scatter(sample: dict, layer: str) -> go.Figure:
    """θ0 against θf of (a sample of) one tensor's weights, coloured kept / pruned."""
    keep = np.asarray(sample["kept"])
    data = [dict(type="scattergl", x=sample["init"][sel], y=sample["final"][sel], mode="markers", name=part,
                 marker=dict(size=4, color=colour, opacity=0.5, symbol=symbol),
                 hovertemplate="θ0 %{x:.3f}<br>θf %{y:.3f}<extra>" + part + "</extra>")
            for part, sel, colour, symbol in (("pruned", ~keep, PRUNED, "x"), ("kept", keep, KEPT, "circle"))]
    shown = len(keep)
    title = f"{layer}: {shown:,} weights" + ("" if shown == sample["total"] else f" (sample of {sample['total']:,})")
    return _figure(data, dict(xaxis=dict(title=dict(text="initial weight θ0")),
                              yaxis=dict(title=dict(text="trained weight θf")),
                              **_sizing(420, side_legend=True, top=60),  # the title stays clear of the toolbar
                              title=dict(text=title, font=dict(size=13), yref="paper", y=1, yanchor="bottom",
                                         pad=dict(b=8))))


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
    return _layout(fig, 230 * rows + 50, top=60)


def per_class(dense: list, pruned: list, names: list) -> go.Figure:
    """Accuracy per class, dense (grey, hatched, left) beside pruned (blue, right)."""
    fig = go.Figure()
    fig.add_bar(x=names, y=dense, name="dense", marker_color=GREY,
                marker_pattern=dict(shape=PRUNED_PATTERN, fillmode="overlay", fgcolor="#ffffff"))
    fig.add_bar(x=names, y=pruned, name="pruned", marker_color=KEPT)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title="accuracy")
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group")
    return _layout(fig, 340)


def confusion_change(change, names: list) -> go.Figure:
    """Pruned minus dense confusion counts (row = true class): red and "+" where pruning added
    predictions, blue and "−" where it took them away (the signs carry it without colour)."""
    change = np.asarray(change)[: len(names), : len(names)]
    off = change - np.diag(np.diag(change))
    limit = float(max(np.abs(off).max(), 1))
    text = [[f"{v:+d}".replace("-", "−") if v else "" for v in row] for row in change.tolist()]
    fig = go.Figure(go.Heatmap(z=change, x=names, y=names, colorscale="RdBu_r", zmid=0, zmin=-limit, zmax=limit,
                               text=text, texttemplate="%{text}",
                               colorbar=dict(title=dict(text="+ more<br>− fewer", side="top"), thickness=12),
                               hovertemplate="true %{y}, predicted %{x}: %{z:+d}<extra></extra>"))
    fig.update_xaxes(title="predicted", type="category")
    fig.update_yaxes(title="true", autorange="reversed", type="category")
    return _layout(fig, 380)


def retrain_curves(runs: dict, epochs: int, dense: float, supermask: float | None = None) -> go.Figure:
    """Test accuracy and training loss per epoch of retraining runs, on axes spanning ``epochs``.
    ``runs``: label -> {"history": [{"epoch", "loss", "accuracy"}], "before": accuracy at epoch 0
    or None, "colour"}; ``dense``/``supermask``: reference lines."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for i, (label, run) in enumerate(runs.items()):
        h, line = run["history"], dict(color=run.get("colour"), dash=DASHES[i % len(DASHES)])
        marker = dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=8)
        start = [] if run.get("before") is None else [(0, run["before"])]
        points = start + [(r["epoch"], r["accuracy"]) for r in h]
        fig.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", name=label,
                        legendgroup=label, line=line, marker=marker, row=1, col=1,
                        hovertemplate="epoch %{x}: %{y:.2%}<extra>" + label + "</extra>")
        fig.add_scatter(x=[r["epoch"] for r in h], y=[r["loss"] for r in h], mode="lines+markers", name=label,
                        legendgroup=label, showlegend=False, line=line, marker=marker, row=1, col=2,
                        hovertemplate="epoch %{x}: loss %{y:.4f}<extra>" + label + "</extra>")
    fig.add_hline(y=dense, line=dict(color=GREY, dash="dash", width=1), row=1, col=1,
                  annotation_text=f"dense {dense:.2%}", annotation_position="bottom right")
    if supermask is not None:
        fig.add_hline(y=supermask, line=dict(color=VERMILLION, dash="dot", width=1), row=1, col=1,
                      annotation_text=f"untrained supermask {supermask:.2%}", annotation_position="top right")
    fig.update_xaxes(title="epoch", range=[-0.2, epochs + 0.2], dtick=1)
    fig.update_yaxes(tickformat=".0%", title="test accuracy", row=1, col=1)
    fig.update_yaxes(title="training loss (epoch mean)", rangemode="tozero", row=1, col=2)
    return _layout(fig, 360)


# Text alternatives: each takes the data of the figure builder of the same name and says what the
# chart shows in a sentence or two; the ``*_table`` functions give the numbers as rows.

def describe_accuracy_curve(curves: dict, dense: float, live: dict | None, control: dict | None = None) -> str:
    """e.g. "Dense accuracy 98.1%. Your mask (live): 97.2% at 89.6% pruned; random mask (live): 11.3%.
    large_final (magnitude): stays within 1 point of dense up to 95% pruned, then falls to 10.1% at 99.9%
    pruned." (1 point = 0.01 accuracy)."""
    parts = [f"Dense accuracy {_acc(dense)}."]
    live_text = [f"{p['label']}: {_acc(p['accuracy'])} at {_pruned(p['sparsity'])} pruned"
                 for p in (live, control) if p]
    if live_text:
        parts.append("; ".join(live_text) + ".")
    for label, c in curves.items():
        points = _points(c)
        if not points:
            continue
        (s0, a0), (s1, a1) = points[0], points[-1]
        held = [s for s, a in points if a >= dense - 0.01]
        if held and held[0] == s0 and s0 < max(held) < s1:
            parts.append(f"{label}: stays within 1 point of dense up to {_pruned(max(held))} pruned, then falls "
                         f"to {_acc(a1)} at {_pruned(s1)} pruned.")
        else:
            verb = "falls" if a1 < a0 - 0.005 else "rises" if a1 > a0 + 0.005 else "stays"
            parts.append(f"{label}: {verb} from {_acc(a0)} at {_pruned(s0)} pruned to {_acc(a1)} at "
                         f"{_pruned(s1)} pruned.")
    return " ".join(parts)


def accuracy_curve_table(curves: dict, live: dict | None = None, control: dict | None = None) -> list:
    """One row per sparsity (sparsest last), one column per curve and live point ("" where it has
    no value)."""
    columns = {label: dict(_points(c)) for label, c in curves.items()}
    columns |= {p["label"]: {p["sparsity"]: p["accuracy"]} for p in (live, control) if p}
    sparsities = sorted({s for values in columns.values() for s in values})
    return [{"% pruned": _pruned(s)} | {label: _acc(values[s]) if s in values else "" for label, values in
                                        columns.items()} for s in sparsities]


def describe_compare_curves(sides: dict, dense: dict) -> str:
    """e.g. "A (large_final): 97.2% at 89.6% pruned. B (movement): 95.0% at 90% pruned, 2.2 points below A.
    unpruned trained θf: 98.1%."."""
    parts = []
    for side, d in sides.items():
        p = d["point"]
        text = f"{side} ({d['name']}): {_acc(p['accuracy'])} at {_pruned(p['sparsity'])} pruned"
        if side != "A" and "A" in sides:
            diff = 100 * (p["accuracy"] - sides["A"]["point"]["accuracy"])
            text += (f", {abs(diff):.1f} points {'above' if diff > 0 else 'below'} A" if abs(diff) >= 0.05
                     else ", the same as A")
        parts.append(text + ("" if d["curve"] else " (no precomputed curve)") + ".")
    parts.append("; ".join(f"{label}: {_acc(a)}" for label, a in dense.items()) + ".")
    return " ".join(parts)


def describe_layer_sparsity(layers: list) -> str:
    """e.g. "3 tensors. Most pruned: fc1.weight, 92.1% of 235,200; least pruned: fc3.weight, 45.0% of 1,000.
    Nearly empty (≥ 99% pruned): fc2.weight."."""
    if not layers:
        return "No prunable tensors."
    values = [row["sparsity"] for row in layers]
    if max(values) - min(values) < 0.0005:
        text = f"All {len(layers)} tensors are pruned {values[0]:.1%}."
    else:
        hi, lo = max(layers, key=lambda r: r["sparsity"]), min(layers, key=lambda r: r["sparsity"])
        text = (f"{len(layers)} tensors. Most pruned: {hi['name']}, {hi['sparsity']:.1%} of {hi['total']:,}; "
                f"least pruned: {lo['name']}, {lo['sparsity']:.1%} of {lo['total']:,}.")
    empty = [row["name"] for row in layers if row["sparsity"] >= 0.99]
    return text + (f" Nearly empty (≥ 99% pruned): {', '.join(empty)}." if empty else "")


def layer_sparsity_table(layers: list) -> list:
    return [{"tensor": row["name"], "weights": f"{row['total']:,}", "pruned": f"{row['sparsity']:.2%}"}
            for row in layers]


def describe_layer_overlap(layers: list) -> str:
    """e.g. "Jaccard overlap of the kept weights from 0.31 (fc1.weight) to 0.92 (fc3.weight); the sparsities
    of A and B differ by at most 0.0 points in a layer."."""
    if not layers:
        return "No prunable tensors."
    lo, hi = min(layers, key=lambda r: r["jaccard"]), max(layers, key=lambda r: r["jaccard"])
    gap = max(abs(r["sparsity_a"] - r["sparsity_b"]) for r in layers)
    jaccard = (f"Jaccard overlap of the kept weights {lo['jaccard']:.3f} in every layer" if lo is hi or
               lo["jaccard"] == hi["jaccard"] else
               f"Jaccard overlap of the kept weights from {lo['jaccard']:.3f} ({lo['name']}) to {hi['jaccard']:.3f} "
               f"({hi['name']})")
    return f"{jaccard}; the sparsities of A and B differ by at most {100 * gap:.1f} points in a layer."


def layer_overlap_table(layers: list) -> list:
    return [{"tensor": r["name"], "A pruned": f"{r['sparsity_a']:.2%}", "B pruned": f"{r['sparsity_b']:.2%}",
             "Jaccard": f"{r['jaccard']:.3f}"} for r in layers]


def _mean_magnitude(centres, counts) -> float | None:
    counts = np.asarray(counts, dtype=float)
    return float((np.abs(centres) * counts).sum() / counts.sum()) if counts.sum() else None


def describe_histograms(hist: dict, layer: str) -> str:
    """Per weight set: how many weights are kept and pruned and their mean magnitude (from the bin
    centres, so approximate), e.g. "Trained θf of fc1.weight: 23,520 kept (mean |w| ≈ 0.061), 211,680
    pruned (≈ 0.013)."."""
    titles = {"final": "Trained θf", "init": "Initial θ0"}
    parts = []
    for key, h in hist.items():
        edges = np.asarray(h["edges"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        kept, pruned = _mean_magnitude(centres, h["kept"]), _mean_magnitude(centres, h["pruned"])
        text = f"{titles.get(key, key)} of {layer}: {int(np.sum(h['kept'])):,} kept"
        text += f" (mean |w| ≈ {kept:.3g})" if kept is not None else ""
        text += f", {int(np.sum(h['pruned'])):,} pruned" + (f" (≈ {pruned:.3g})" if pruned is not None else "")
        parts.append(text + f", values from {edges[0]:.3g} to {edges[-1]:.3g}.")
    return " ".join(parts)


def describe_init_final_scatter(sample: dict, layer: str) -> str:
    """How far the kept and the pruned weights moved in training (mean |θf − θ0|) and how large they
    ended (mean |θf|)."""
    keep = np.asarray(sample["kept"], dtype=bool)
    init, final = np.asarray(sample["init"], dtype=float), np.asarray(sample["final"], dtype=float)
    shown = f"{len(keep):,} weights" + ("" if len(keep) == sample["total"] else f" (a sample of {sample['total']:,})")
    parts = [f"{layer}: {shown}, {int(keep.sum()):,} kept and {int((~keep).sum()):,} pruned."]
    for part, sel in (("Kept", keep), ("Pruned", ~keep)):
        if sel.any():
            parts.append(f"{part} weights moved a mean |θf − θ0| of {np.abs(final[sel] - init[sel]).mean():.3g} "
                         f"and end at a mean |θf| of {np.abs(final[sel]).mean():.3g}.")
    return " ".join(parts)


def describe_first_layer(images: dict) -> str:
    """Dense: the share of units keeping each pixel and each shown unit's kept inputs; conv: the kept
    weights of each shown filter."""
    if images["kind"] == "dense":
        coverage = np.asarray(images["coverage"], dtype=float)
        units = ", ".join(f"unit {u} keeps {k:,}" for u, k in zip(images["units"], images["kept"], strict=True))
        return (f"Share of hidden units keeping each of the {coverage.size:,} input pixels: from "
                f"{coverage.min():.0%} to {coverage.max():.0%}, mean {coverage.mean():.0%}; "
                f"{(coverage == 0).sum():,} pixels are cut off entirely. Of {coverage.size:,} inputs, {units}.")
    kept = list(images["kept"])
    signs = [(int((np.asarray(f) > 0).sum()), int((np.asarray(f) < 0).sum())) for f in images["filters"]]
    filters = ", ".join(f"filter {u} keeps {k} ({p} positive, {n} negative)"
                        for u, k, (p, n) in zip(images["units"], kept, signs, strict=True))
    removed = sum(1 for k in kept if k == 0)
    return (f"Of the {images['size']} weights of each first-layer filter, {filters}"
            + (f"; {removed} of the {len(kept)} filters shown are removed entirely." if removed else "."))


def describe_per_class(dense: list, pruned: list, names: list) -> str:
    """e.g. "Mean accuracy per class falls from 98.1% to 96.0%. Hurt most: 8 (97.5% → 90.1%); least: 1
    (99.0% → 99.1%)."."""
    change = [p - d for d, p in zip(dense, pruned, strict=True)]
    worst, best = int(np.argmin(change)), int(np.argmax(change))
    before, after = float(np.mean(dense)), float(np.mean(pruned))
    verb = "falls" if after < before - 0.0005 else "rises" if after > before + 0.0005 else "stays"
    return (f"Mean accuracy per class {verb} from {_acc(before)} to {_acc(after)}. Hurt most: {names[worst]} "
            f"({_acc(dense[worst])} → {_acc(pruned[worst])}); least: {names[best]} ({_acc(dense[best])} → "
            f"{_acc(pruned[best])}).")


def per_class_table(dense: list, pruned: list, names: list) -> list:
    return [{"class": n, "dense": _acc(d), "pruned": _acc(p), "change": f"{100 * (p - d):+.1f} points"}
            for n, d, p in zip(names, dense, pruned, strict=True)]


def describe_confusion_change(change, names: list) -> str:
    """e.g. "On the diagonal, 412 correct answers lost and 0 gained; off it, 415 new mistakes (+) and 3
    fewer (−). Largest new mistake: true 4 predicted as 9 (+37)."."""
    change = np.asarray(change)[: len(names), : len(names)]
    diagonal = np.diag(change)
    off = change - np.diag(diagonal)
    lost, added, removed = int(-diagonal[diagonal < 0].sum()), int(off[off > 0].sum()), int(-off[off < 0].sum())
    gained = int(diagonal[diagonal > 0].sum())
    if not np.any(change):
        return "No prediction changed class."
    text = (f"On the diagonal, {lost:,} correct answers lost and {gained:,} gained; off it, {added:,} new "
            f"mistakes (+) and {removed:,} fewer (−).")
    if added:
        t, p = np.unravel_index(int(np.argmax(off)), off.shape)
        text += f" Largest new mistake: true {names[t]} predicted as {names[p]} (+{int(off[t, p])})."
    return text


def confusion_change_table(change, names: list, top: int = 10) -> list:
    """The ``top`` largest changes off the diagonal, largest first."""
    change = np.asarray(change)[: len(names), : len(names)]
    cells = [(int(change[t, p]), t, p) for t in range(len(names)) for p in range(len(names))
             if t != p and change[t, p]]
    cells.sort(key=lambda c: (-abs(c[0]), c[1], c[2]))
    return [{"true": names[t], "predicted": names[p], "change": f"{v:+d}"} for v, t, p in cells[:top]]


def describe_retrain_curves(runs: dict, epochs: int, dense: float, supermask: float | None = None) -> str:
    """e.g. "θ0 · lottery ticket: 12.0% untrained, 97.5% after epoch 2 of 2. Dense 98.1%; untrained
    supermask 12.0%."."""
    parts = []
    for label, run in runs.items():
        h = run["history"]
        if not h:
            parts.append(f"{label}: not trained yet.")
            continue
        start = "" if run.get("before") is None else f"{_acc(run['before'])} before training, "
        parts.append(f"{label}: {start}{_acc(h[-1]['accuracy'])} after epoch {h[-1]['epoch']} of {epochs} "
                     f"(training loss {h[-1]['loss']:.3g}).")
    parts.append(f"Dense {_acc(dense)}" + ("" if supermask is None else f"; untrained supermask {_acc(supermask)}")
                 + ".")
    return " ".join(parts)


IMP_SIDES = {"ticket": ("winning ticket (rewound to θ0)", BLUE, "solid", "circle"),
             "random": ("random re-initialisation", GREY, "dot", "x")}


def imp_rounds(rows: list, current: int) -> go.Figure:
    """Frankle & Carbin 2019, Figures 3-4: test accuracy (top) and iteration (bottom) at early stopping
    against weights remaining (log axis, sparser to the right), ticket against random re-initialisation;
    ``rows`` from ``imp_table``, the round ``current`` marked by a vertical line and stars."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["test accuracy at early stopping", "early-stopping iteration"])
    for side, (label, colour, dash, symbol) in IMP_SIDES.items():
        part = [r for r in rows if r[f"{side}_accuracy"] is not None]
        x = [100 * r["remaining"] for r in part]
        rounds = [r["round"] for r in part]
        for row, key, fmt in ((1, "accuracy", "%{y:.2%}"), (2, "early_stop", "%{y}")):
            fig.add_scatter(x=x, y=[r[f"{side}_{key}"] for r in part], mode="lines+markers", name=label,
                            line=dict(color=colour, dash=dash), marker=dict(symbol=symbol, size=7),
                            legendgroup=side, showlegend=row == 1, customdata=rounds, row=row, col=1,
                            hovertemplate="round %{customdata}: %{x:.1f}% remaining<br>" + fmt
                                          + "<extra>" + label + "</extra>")
    now = next(r for r in rows if r["round"] == current)
    for side in IMP_SIDES:
        if now[f"{side}_accuracy"] is not None:
            for row, key in ((1, "accuracy"), (2, "early_stop")):
                fig.add_scatter(x=[100 * now["remaining"]], y=[now[f"{side}_{key}"]], mode="markers",
                                marker=dict(symbol="star", size=15, color=VERMILLION, line=dict(width=1, color=GREY)),
                                name=f"round {current}", legendgroup="now", showlegend=row == 1 and side == "ticket",
                                hoverinfo="skip", row=row, col=1)
    fig.add_vline(x=100 * now["remaining"], line=dict(color=VERMILLION, dash="dash", width=1))
    low = min(100 * r["remaining"] for r in rows)
    ticks = [t for t in (100, 80, 64, 51, 41, 33, 26, 21, 17, 13.5, 10.8, 8.6, 7, 5.5, 4.4, 3.5) if t >= low * 0.98]
    fig.update_xaxes(type="log", range=[np.log10(110), np.log10(low * 0.9)], tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks])
    fig.update_xaxes(title="weights remaining (%, log scale)", row=2, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=1)
    fig.update_yaxes(title="iteration", row=2, col=1)
    fig.update_annotations(font_size=12)
    return _layout(fig, 520, top=60)


def describe_imp_rounds(rows: list, current: int) -> str:
    """The current round's numbers, then where the ticket and the random re-initialisation end."""
    now = next(r for r in rows if r["round"] == current)
    last, dense = rows[-1], rows[0]

    def side(r, s):
        if r[f"{s}_accuracy"] is None:
            return f"{IMP_SIDES[s][0]}: none (dense network)"
        return (f"{IMP_SIDES[s][0]} {r[f'{s}_accuracy']:.2%} at iteration {r[f'{s}_early_stop']}"
                + (" (censored: the last measurement)" if r[f"{s}_censored"] else ""))

    text = (f"Round {current} of {last['round']}, {now['remaining']:.1%} of the weights remaining: "
            f"{side(now, 'ticket')}; {side(now, 'random')}.")
    if last["random_accuracy"] is not None:
        text += (f" Dense network: {dense['ticket_accuracy']:.2%} at iteration {dense['ticket_early_stop']}. "
                 f"At {last['remaining']:.1%} remaining the ticket scores {last['ticket_accuracy']:.2%} "
                 f"(iteration {last['ticket_early_stop']}), the random re-initialisation "
                 f"{last['random_accuracy']:.2%} (iteration {last['random_early_stop']}).")
    return text


def imp_rounds_table(rows: list) -> list:
    """Every round as display rows (the IMP rounds tab's table and its chart's text alternative)."""
    def it(r, s):
        n = r[f"{s}_early_stop"]
        return "—" if n is None else f"{n}" + (" (censored)" if r[f"{s}_censored"] else "")

    return [{"round": r["round"], "% remaining": round(100 * r["remaining"], 1),
             "ticket accuracy": "—" if r["ticket_accuracy"] is None else f"{r['ticket_accuracy']:.2%}",
             "random accuracy": "—" if r["random_accuracy"] is None else f"{r['random_accuracy']:.2%}",
             "early stop: ticket": it(r, "ticket"), "early stop: random": it(r, "random")} for r in rows]
