"""Guided tour: the lottery-ticket and supermask story, told with numbers the engine computes live."""

import streamlit as st

import pruning
from pruning.core.criteria import MODEL_CRITERIA
from pruning.experiments.imp_runs import available
from pruning.experiments.imp_table import imp_table

import charts
import state
from controls import PRESETS, model_label, sorted_models
from sections import chance_jaccard, errors_shown, page_style, show_chart
from state import Settings

SPARSE = 0.896  # lottery-ticket-pruner's third level
LEVELS = [0.0, *(p / 100 for p in PRESETS)]

st.title("Guided tour: lottery tickets and supermasks")
page_style()
rows = sorted_models([r for r in state.catalogue() if r["dataset"] in ("mnist", "fashion_mnist")] or state.catalogue())
by_name = {r["name"]: r for r in rows}
name = st.selectbox("Model for the tour", list(by_name), format_func=lambda n: model_label(by_name[n]),
                    key="tour_model")
magnitude = Settings(name, "large_final", "global", "weight", SPARSE)
supermask = magnitude._replace(strategy="large_final_same_sign")
pct = f"{SPARSE:.1%}"

with errors_shown():
    with st.spinner("Evaluating the masks of this tour…"):
        dense = state.dense(name)
        pruned = state.evaluation(magnitude)
        rand = state.evaluation(magnitude, strategy="random")
        kept = state.report(magnitude)["kept"]
        has_init = "init" in state.model(name).states
    total = state.report(magnitude)["total"]

    st.header("1 · A trained network has many weights it does not need")
    st.markdown(f"`{name}` has **{total:,}** prunable weights and classifies **{dense.accuracy:.2%}** of "
                f"{dense.n:,} test images correctly. Remove the {pct} of weights with the smallest magnitude "
                f"(keep **{kept:,}**) and, without any retraining, it still scores **{pruned.accuracy:.2%}**.")
    st.header("2 · Which weights you keep matters")
    st.markdown(f"A **random** mask that removes just as many weights scores **{rand.accuracy:.2%}** "
                "(chance is 10%). So a pruning criterion is not just counting weights: magnitude tells us "
                "which connections carry what the network learned.")
    if has_init:
        both = state.overlap(magnitude, magnitude._replace(strategy="movement"))
        st.markdown(f"Criteria that work do not agree on *which* weights matter: the magnitude mask and a "
                    f"**movement** mask (keep the weights that changed most in training) of the same {pct} share "
                    f"only **{both['jaccard']:.0%}** of their kept weights (Jaccard index; two random masks would "
                    f"share {chance_jaccard(both):.0%}). The Explorer's **Compare** tab sets two such settings "
                    "side by side, layer by layer.")
    per_layer = state.evaluation(magnitude._replace(scope="layer"))
    st.header("3 · One ranking for the whole network, or one per layer?")
    st.markdown(f"Above, all weights competed in one *global* ranking. Pruning every layer by the same {pct} "
                f"instead (*layer* scope) scores **{per_layer.accuracy:.2%}**. The global ranking let each layer "
                "give up what it could spare:")
    rows = state.report(magnitude)["layers"]
    show_chart(charts.layer_sparsity(rows), "tour_layers", "Share of each weight tensor pruned",
               charts.describe_layer_sparsity(rows), lambda: charts.layer_sparsity_table(rows))
    if state.sensitivity_table(name) is not None:
        budgeted = state.evaluation(magnitude._replace(scope="sensitivity"))
        st.markdown(f"A third way: prune each layer *alone* to measure how much it can take (the Explorer's "
                    f"**Sensitivity** tab), then give each layer its own budget: **{budgeted.accuracy:.2%}** at the "
                    f"same {pct}. A scan of one layer at a time cannot see how layers interact, so the result is "
                    "measured, not promised.")
    if has_init:
        ticket_init = state.evaluation(magnitude, "init")
        init_dense = state.dense(name, "init")
        st.header("4 · The lottery ticket (Frankle & Carbin, 2019)")
        st.markdown(f"Take that magnitude mask and put the weights back to their **initial** values θ0. Untrained, "
                    f"the masked network scores **{ticket_init.accuracy:.2%}** (the full untrained network: "
                    f"{init_dense.accuracy:.2%}). Frankle and Carbin retrained such sparse networks from θ0 and "
                    "matched the dense accuracy, while the same architecture re-initialised at random did not: "
                    "the mask and the initial weights together are a *winning ticket*.")
        if name in available():
            last = imp_table(pruning.load_imp_run(name))[-1]
            st.markdown(f"The Explorer's **IMP rounds** tab plays their iterative version for this model round by "
                        f"round: after {last['round']} rounds ({last['remaining']:.1%} of the weights left) the "
                        f"ticket retrained from θ0 scores **{last['ticket_accuracy']:.2%}**, the same mask from a "
                        f"random initialisation **{last['random_accuracy']:.2%}**.")
        sign_init = state.evaluation(supermask, "init")
        sign_const = state.evaluation(supermask, "signed-constant")
        st.header("5 · Supermasks: a mask can be trained instead of the weights (Zhou et al., 2019)")
        st.markdown(f"Zhou et al. asked which masks work *without any training of the values*. Keep only weights "
                    f"whose sign did not change during training, largest first (`large_final_same_sign`), "
                    f"and apply the mask to θ0: **{sign_init.accuracy:.2%}**. Replace each kept weight by the "
                    f"layer's constant with its initial sign (*signed constant*): **{sign_const.accuracy:.2%}**. "
                    "The values are untrained, yet far above chance: choosing which connections exist is a "
                    "form of learning.")
        keeps = MODEL_CRITERIA["learned_supermask"].trained(state.model(name))
        if keeps:
            keep = min(keeps, key=lambda k: abs(k - 0.5))
            learned = state.evaluation(magnitude._replace(strategy="learned_supermask", scope="layer",
                                                          sparsity=1 - keep), "init")
            st.markdown(f"Ramanujan et al. (2020) took the last step: *train* a score for every connection of the "
                        f"untrained network and keep the best-scoring ones (edge-popup), never changing θ0. The "
                        f"Explorer's criterion `learned_supermask` ships such a mask for this model: "
                        f"with {1 - keep:.0%} of the weights pruned, on θ0, it scores **{learned.accuracy:.2%}**.")
    st.header("6 · How far can you go?")
    with st.spinner("Sweeping four sparsity levels…"):
        curves = {"large_final": state.live_curve(magnitude, LEVELS),
                  "random": state.live_curve(magnitude, LEVELS, strategy="random")}
        if has_init:
            curves["supermask (same sign, signed constant)"] = state.live_curve(
                supermask, LEVELS, weights="signed-constant")
    show_chart(charts.accuracy_curve(curves, dense.accuracy, None), "tour_curve", "Accuracy against the share of "
               "weights pruned", charts.describe_accuracy_curve(curves, dense.accuracy, None),
               lambda: charts.accuracy_curve_table(curves))
    st.caption("Live evaluations at lottery-ticket-pruner's levels (20%, 55.78%, 89.6%, 99.33% pruned), "
               "global scope. Past about 99% every criterion collapses: too few weights remain for the signal "
               "to get through.")
    st.markdown("Networks with batch normalisation (the Explorer's CIFAR-10 ResNet-20) have one more lever: "
                "pruning shifts every layer's activations while batch norm keeps the dense network's statistics. "
                "The sidebar's batch-norm toggle re-estimates them on a few thousand training images, without "
                "any training step, and shows how much accuracy that returns.")
    st.markdown("**Your turn:** open the *Explorer* page (sidebar) to try every criterion, scope and granularity, "
                "and export the mask you like.")
