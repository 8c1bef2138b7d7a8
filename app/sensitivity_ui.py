"""The Sensitivity tab: each layer pruned alone at a range of sparsities (the rest dense), as a
heatmap, and per-layer budgets for a target overall sparsity that one click applies to the mask.

The table is ``pretrained/<name>/sensitivity.json`` when the zoo ships one, else it is computed on
request (``pruning.sensitivity``, with a progress bar) and cached per model (``state.sensitivity_table``).
Applying the budgets switches the sidebar to the ``sensitivity`` scope at the target sparsity; the
budgets are derived again from the same table wherever they are needed (``state.budgets``), so the
address bar (``scope=sensitivity&sparsity_pct=...``) reproduces them, and an exported mask records
them in its metadata.
"""

import plotly.graph_objects as go
import streamlit as st

import pruning
from pruning.core.readouts import default_limit
from pruning.core.sensitivity import CAVEAT, SPARSITIES, plan

import sections
import state
from state import Settings
import turns

TARGET = "sens_target"  # the target overall sparsity input (%)


def heatmap(table: dict) -> go.Figure:
    """Layers (rows, input to output) x sparsity (columns) -> accuracy, each cell labelled with its
    number.  Viridis: sequential and colour-blind safe (dark = low accuracy)."""
    names = [layer["name"] for layer in table["layers"]]
    columns = [f"{100 * s:g}%" for s in table["sparsities"]]
    z = [layer["accuracy"] for layer in table["layers"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=names, zmin=0, zmax=1, colorscale="Viridis",
        text=[[f"{100 * a:.1f}" for a in row] for row in z], texttemplate="%{text}", textfont=dict(size=11),
        colorbar=dict(title="accuracy", tickformat=".0%"),
        hovertemplate="%{y} alone at %{x} pruned<br>accuracy %{z:.2%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=None, type="category")
    fig.update_xaxes(title="this layer's weights pruned (all other layers dense)", type="category")
    fig.update_layout(height=max(240, 60 + 28 * len(names)), margin=dict(l=10, r=10, t=30, b=10),
                      title=dict(text=f"accuracy (%) · dense {table['dense_accuracy']:.2%}", font=dict(size=13)))
    return fig


def describe(table: dict) -> str:
    """The heatmap in words, from its numbers: per layer, how far it can be pruned alone within one
    point of the dense accuracy, and what is left at the scan's last sparsity."""
    dense, sparsities = table["dense_accuracy"], table["sparsities"]
    parts = [f"Test accuracy with one layer pruned and all others dense, at {len(sparsities)} sparsities from "
             f"{sparsities[0]:.0%} to {sparsities[-1]:.0%}; dense {dense:.2%}."]
    for layer in table["layers"]:
        within = [s for s, a in zip(sparsities, layer["accuracy"], strict=True) if a >= dense - 0.01]
        reach = f"stays within 1 point of dense up to {within[-1]:.0%} pruned" if within else \
            "loses more than 1 point already at the first sparsity"
        parts.append(f"{layer['name']} {reach}; {layer['accuracy'][-1]:.1%} at {sparsities[-1]:.0%}.")
    return " ".join(parts)


def table_rows(table: dict) -> list:
    """The heatmap's numbers: one row per layer, one column per sparsity (accuracy in %)."""
    return [{"layer": layer["name"], **{f"{100 * s:g}% pruned": f"{100 * a:.1f}"
                                        for s, a in zip(table["sparsities"], layer["accuracy"], strict=True)}}
            for layer in table["layers"]]


def _scan(s: Settings, m) -> None:
    """Run the scan now, with a progress bar, and keep it for this model."""
    limit = default_limit(m.dataset, str(m.device))
    bar = st.progress(0.0, text="Scanning…")

    def progress(done, total):
        bar.progress(done / total, text=f"Scanning: {done} of {total} evaluations")

    with turns.aside():  # a long task the student asked for: the other pages go on meanwhile
        table = pruning.sensitivity(m, SPARSITIES, "large_final", limit, progress=progress)
    state.set_sensitivity_table(s.model, table)
    bar.empty()


def _apply(target_pct: float, strategy: str) -> None:
    """The sidebar's setting switched to the sensitivity scope at the target (a button callback)."""
    st.session_state.strategy = pruning.resolve_alias(strategy)[0]  # an alias fixes its scope: keep its criterion
    st.session_state.scope = "sensitivity"
    st.session_state.granularity = "weight"
    st.session_state.sparsity_pct = round(target_pct, 2)
    st.session_state.sensitivity_applied = round(target_pct, 2)


def budget_rows(table: dict, suggestion: dict) -> list:
    """One row per layer: weights, budget, weights pruned, scanned drop alone at the budget."""
    return [{"layer": layer["name"], "weights": layer["parameters"],
             "budget (% pruned)": round(100 * suggestion["budgets"][layer["name"]], 2),
             "pruned": round(suggestion["budgets"][layer["name"]] * layer["parameters"]),
             "drop alone (pp)": round(100 * suggestion["predicted_drop"][layer["name"]], 2)}
            for layer in table["layers"]]


def tab(s: Settings):
    m = state.model(s.model)
    st.markdown("Which layers can take how much pruning? Each row prunes **one layer alone** by magnitude "
                "(`large_final`) at the sparsities across the top, with every other layer dense, and shows the "
                "test accuracy (Han et al. 2015; the sensitivity analysis of Distiller and NNI). Dark cells hurt.")
    table = state.sensitivity_table(s.model)
    if table is None:
        limit = default_limit(m.dataset, str(m.device))
        images = f"{limit:,} class-stratified test images" if limit else "the full test set"
        st.info(f"No precomputed scan for this model. Running it evaluates {len(m.specs)} layers × {len(SPARSITIES)} "
                f"sparsities on {images}; it is kept for this model while the server runs.")
        if not st.button("Run the sensitivity scan", key="sens_run", type="primary"):
            return
        _scan(s, m)
        table = state.sensitivity_table(s.model)
    source = ("precomputed (`pretrained/" + s.model + "/sensitivity.json`)"
              if not s.model.startswith(state.UPLOAD) and state._shipped_table(s.model) else "computed here")
    sections.show_chart(heatmap(table), "sens_heatmap", "Accuracy of each layer pruned alone", describe(table),
                        lambda: table_rows(table))
    st.caption(f"Scan {source}: criterion {table['criterion']} on {table['weights']} weights, {table['n']:,} test "
               f"images{' (class-stratified subset)' if table.get('limit') else ''}; dense accuracy "
               f"{table['dense_accuracy']:.2%}. Numbers are accuracy in %.")
    st.warning(f"**What this scan cannot see.** {CAVEAT}", icon="⚠️")

    st.subheader("Per-layer budgets for a target")
    most = 100 * table["sparsities"][-1]  # every layer at the end of the scan
    st.session_state.setdefault(TARGET, min(round(100 * s.sparsity, 2), round(most, 2)))
    target = st.number_input("Target overall sparsity (% of weights pruned)", min_value=0.0,
                             max_value=float(min(99.9, round(most, 2))), step=1.0, format="%.2f", key=TARGET,
                             help="Each layer gets the largest sparsity whose accuracy drop (alone) stays within one "
                                  "tolerance; the tolerance is searched so that the weighted total hits the target.")
    with sections.errors_shown():
        suggestion = plan(table, target / 100)
        st.markdown(f"Every layer pruned as far as its accuracy drop *alone* stays within "
                    f"**{100 * suggestion['tolerance']:.2f} points**: {suggestion['sparsity']:.2%} of the weights "
                    f"overall.")
        st.dataframe(budget_rows(table, suggestion), hide_index=True, key="sens_budgets")
        st.button("Apply these budgets to the current mask", key="sens_apply", type="primary",
                  on_click=_apply, args=(target, s.strategy),
                  help="Switches the sidebar to the sensitivity scope at this target: each layer is pruned at its "
                       "budget with the sidebar's criterion.")
    if s.scope == "sensitivity":
        st.success(f"The sidebar is on the sensitivity scope at {s.sparsity:.2%}: each layer is pruned at the budget "
                   "suggested for that target. Measured, all layers pruned together (which the single-layer drops "
                   "cannot predict), against the same sparsity in the other scopes:")
        with sections.errors_shown():
            cols = st.columns(3)
            for col, scope in zip(cols, ("sensitivity", "layer", "global"), strict=True):
                ev = state.evaluation(s._replace(scope=scope))
                col.metric(f"{scope} scope, {s.sparsity:.2%} pruned", f"{ev.accuracy:.2%}",
                           help=f"{s.strategy} on {s.weights} weights, {ev.n:,} test images")
    link = ("The link (`scope=sensitivity&sparsity_pct=…`) reproduces the budgets: they are derived again from "
            "this model's precomputed scan." if "precomputed" in source else
            "The link carries `scope=sensitivity` and the target, but the budgets need this scan: a new session "
            "must run it again before the link shows the same mask.")
    st.caption(f"{link} An exported mask records the budgets in its metadata (`budgets`), so "
               "`pruning.compute_mask(model, strategy, scope=\"sensitivity\", budgets=meta[\"budgets\"])` rebuilds it.")

