"""The explorer page's sections: each draws one part of the page from cached engine results."""

from collections.abc import Callable
from contextlib import contextmanager

import streamlit as st

import pruning
from pruning import data
from pruning.errors import quote

import charts
import controls
import first_paint
import state
import turns
from controls import WEIGHT_LABELS
from state import Settings


@contextmanager
def errors_shown():
    """Show bad input or a missing dataset as a message in place of the section, never a traceback."""
    try:
        yield
    except pruning.DatasetUnavailable as exc:
        st.error(f"**Dataset missing.** {exc}. For example: `export {data.ENV}=/path/to/datasets`, then restart.")
    except pruning.PruningError as exc:
        st.error(str(exc))


# Two fixes for readers, in light and dark mode alike.  Plotly draws axis, legend and annotation text
# in Streamlit's muted grey (3.7:1 on white, under the 4.5:1 WCAG 2 asks of text): draw it in the
# page's own text colour, leaving text on bars and heatmap cells (drawn for contrast with their
# cell) alone.  A radio option with the keyboard focus only gets a faint grey background: outline it
# in the accent colour (.streamlit/config.toml; 5.4:1 on white, 3.5:1 on the dark background).
PAGE_STYLE = """<style>
.js-plotly-plot :is(.xtick text, .ytick text, .g-xtitle text, .g-ytitle text, text.legendtext,
                    text.annotation-text, text.gtitle, .cbaxis text, .cbtitle text) { fill: currentColor !important; }
[data-testid="stRadio"] label:has(input:focus-visible) { outline: 2px solid #2b6cb0; outline-offset: 1px; }
</style>"""


def page_style():
    """Once per page: see PAGE_STYLE."""
    st.html(PAGE_STYLE)


def show_chart(fig, key: str, title: str, text: str, table: Callable[[], list] | None = None):
    """A Plotly figure with its text alternative: ``title`` and ``text`` are the chart's accessible
    name, and an expander "Chart as text" under it holds ``text`` and, when given, the numbers as a
    table (a real HTML table, which screen readers can walk) that ``table()`` builds.  The expander's
    content is built and drawn only while it is open (opening it reruns the page, from the caches),
    so a slider move neither builds nor sends four closed tables.  On a session's first run a
    placeholder stands for the figure and the table (``first_paint``)."""
    drawn = first_paint.charts_now()  # a session's first run: placeholders (and no tables) instead
    if drawn:
        st.plotly_chart(fig, key=key, alt=f"{title}. {text}")
    else:
        first_paint.placeholder(fig.layout.height or 450)
    box = st.expander("Chart as text", icon=":material/description:", key=f"{key}_text", on_change="rerun")
    if not box.open:
        return
    with box:
        st.markdown(f"**{title}.** {text}")
        if table and drawn:
            st.table(table(), hide_index=True, alt=title)


def header(s: Settings):
    page_style()
    st.title("Pruning explorer")
    st.markdown("Remove (*prune*) a share of a trained network's weights and see what it can still do. Move "
                "**Prune** in the sidebar: every number and chart below follows.")
    st.caption(f"**{_name(s.model)}** · {s.strategy} · {s.scope} scope · {s.granularity} "
               f"granularity · {s.sparsity:.2%} pruned · mask applied to {WEIGHT_LABELS[s.weights]}")


def _name(model: str) -> str:
    """The model's name for Markdown: an upload's file name in a code span (``errors.quote``), so
    a name like ``www.example.com.safetensors`` cannot become a link in the page."""
    name = state.display_name(model)
    return quote(name, 120) if model.startswith(state.UPLOAD) else name


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _change(new: float, old: float, against: str) -> str:
    return f"{new - old:+.2%} vs {against}"


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:,.2f} MB"


SIZE_HELP = ("Dense: every parameter as float32. Bitmask: 1 bit per prunable weight + kept values as float32. "
             "CSR: kept values (float32) + column indices (int32) + row pointers. Biases and other non-prunable "
             "parameters are stored dense in all three.")


def metrics(s: Settings) -> dict:
    """The headline numbers; returns the selected, random-control and dense evaluations."""
    top = st.columns(4)
    ev = state.evaluation(s)  # first, so that the headline number shows as early as possible
    base = state.dense(s.model, s.weights, s.limit)
    against = "dense" if s.weights == "final" else "unpruned"
    top[0].metric(f"Accuracy · {WEIGHT_LABELS[s.weights]}", _pct(ev.accuracy),
                  _change(ev.accuracy, base.accuracy, against),
                  help="Test accuracy of the pruned model; the change is against the same weights unpruned.")
    turns.headline_shown()  # in a busy class, the pages that have not shown their accuracy yet go first
    c = state.control(s)  # the controls run on a stratified subset (state.control): a slider move stays cheap
    rand, mine = state.evaluation(c, strategy="random"), state.accuracy_on(s, c)
    top[1].metric("Random mask, same sparsity", _pct(rand.accuracy), _change(rand.accuracy, mine, "criterion"),
                  help=f"The control: a seeded random mask with the same scope, granularity and sparsity, on "
                       f"{rand.n:,} class-stratified test images (where the criterion scores {mine:.2%}).")
    rep, size = state.report(s), state.size(s)
    top[2].metric("Weights remaining", f"{rep['kept']:,}", f"{rep['kept'] / rep['total']:.2%} of {rep['total']:,}",
                  delta_color="off", delta_arrow="off")
    exact = f"Bytes: bitmask + values {size['bitmask']:,}, dense {size['dense']:,}, CSR {size['csr']:,}."
    top[3].metric("Model size (bitmask + values)", _kb(size["bitmask"]),
                  f"dense {_kb(size['dense'])} · CSR {_kb(size['csr'])}", delta_color="off", delta_arrow="off",
                  help=f"{exact} {SIZE_HELP}")
    st.markdown("**The same mask on three weight sets** — does the mask alone carry what the network learned?")
    row = st.columns(4)
    for col, weights in zip(row[:3], pruning.WEIGHT_SETS, strict=True):  # row[3]: the dense model
        if weights != "final" and "init" not in state.model(s.model).states:
            col.metric(WEIGHT_LABELS[weights], "n/a", help="this model has no initial weights")
            continue
        x = s if weights == s.weights else c  # the selected set on the page's images, the others on the subset
        e, d = state.evaluation(x, weights), state.dense(x.model, weights, x.limit)
        col.metric(WEIGHT_LABELS[weights] + (" ✓" if weights == s.weights else ""), _pct(e.accuracy),
                   _change(e.accuracy, d.accuracy, "unpruned"), border=weights == s.weights,
                   help=f"On {e.n:,} test images.")
    row[3].metric("Dense trained model", _pct(state.dense(s.model, "final", s.limit).accuracy),
                  help="No pruning, trained weights θf.")
    subset = " (class-stratified subset)" if s.limit else ""
    controls = "" if rand.n == ev.n else f" · the controls (random mask, other weight sets) on {rand.n:,} of them"
    st.caption(f"Evaluated on {ev.n:,} test images{subset}{controls} · device {ev.device} · {ev.seconds * 1000:.0f} "
               "ms per evaluation. Chance level is 10%.")
    return {"evaluation": ev, "random": rand, "dense": base}


def layer_warning(s: Settings):
    """A visible warning when a layer is (nearly) emptied: the network is then cut in two."""
    empty = state.nearly_empty(s)
    if empty:
        hint = (" Global scope can empty a small or low-magnitude layer long before the overall sparsity gets "
                "there: compare with layer scope." if s.scope == "global" else "")
        has, its = ("has", "its") if len(empty) == 1 else ("have", "their")
        st.warning(f"{', '.join(map(quote, empty))} {has} ≥ 99% of {its} weights pruned: the signal barely passes "
                   f"through, so accuracy collapses towards chance.{hint}", icon="⚠️")


def curve(s: Settings, results: dict):
    st.subheader("Accuracy vs sparsity")
    curves = state.curves(s)
    labels = {s.criterion: s.criterion, "large_final": "large_final (magnitude)", "random": "random (control)",
              "random_other_scope": "random (control, other scope)"}
    shown = {labels[k]: v for k, v in (curves or {}).items()}
    live = {"sparsity": s.sparsity, "accuracy": results["evaluation"].accuracy, "label": "your mask (live)"}
    control = {"sparsity": s.sparsity, "accuracy": results["random"].accuracy, "label": "random mask (live)"}
    dense = results["dense"].accuracy
    show_chart(charts.accuracy_curve(shown, dense, live, control), "curve",
               "Accuracy against the share of weights pruned",
               charts.describe_accuracy_curve(shown, dense, live, control),
               lambda: charts.accuracy_curve_table(shown, live, control))
    if curves is None:
        where = ("uploaded models" if s.model.startswith(state.UPLOAD)
                 else f"{s.model} yet (pretrained/{s.model}/sweep.csv)")
        st.info(f"No precomputed sweep for {where}: only the live points are shown.")
    elif not curves:
        st.info(f"The precomputed sweep has no curves for {s.scope} scope, {s.granularity} granularity on "
                f"{WEIGHT_LABELS[s.weights]}; only the live points are shown.")
    st.caption("Each line is a precomputed sweep (random controls grey and dotted); the star is your current "
               "mask, the cross the random mask. Sparser is to the right: the "
               "further a curve stays near the dashed dense line, the better the criterion picks what matters.")


def layers(s: Settings):
    st.subheader("Sparsity per layer")
    rows = state.report(s)["layers"]
    show_chart(charts.layer_sparsity(rows), "layers", "Share of each weight tensor pruned",
               charts.describe_layer_sparsity(rows), lambda: charts.layer_sparsity_table(rows))
    st.caption("The fraction of each weight tensor pruned (⚠: 99% or more). Layer scope prunes all tensors "
               "equally; global scope lets big, redundant layers (like the first) give up more.")


def weights_tab(s: Settings):
    m = state.model(s.model)
    layer = st.selectbox("Layer", list(m.specs), key="layer")
    hist = state.histogram(s, layer)
    show_chart(charts.histograms(hist, layer), "hist", f"Histograms of the kept and pruned weights of {layer}",
               charts.describe_histograms(hist, layer))
    st.caption("Weight values of this layer, kept (blue) vs pruned (orange, hatched). Magnitude pruning removes "
               "the middle of the trained distribution; on the initial weights the same mask looks far less tidy.")
    if "init" in m.states:
        sample = state.sample(s, layer)
        show_chart(charts.init_final_scatter(sample, layer), "scatter", f"Initial against trained weights of {layer}",
                   charts.describe_init_final_scatter(sample, layer))
        st.caption("Each dot (kept) or cross (pruned) is one weight: where it started (θ0) and where training took "
                   "it (θf). Points far from the diagonal moved a lot; criteria such as movement keep exactly those.")


def first_layer_tab(s: Settings):
    images = state.first_layer(s)
    if images is None:
        st.info("The first layer is neither a dense layer over the image pixels nor a convolution.")
        return
    show_chart(charts.first_layer(images), "first", "The first layer's masks" if images["kind"] == "dense"
               else "The first layer's filters", charts.describe_first_layer(images))
    if images["kind"] == "dense":
        st.caption("Which pixels each hidden unit still sees (white = kept). The first panel shows, per pixel, the "
                   "share of units keeping it: the always-blank border of the images goes first.")
    else:
        st.caption("The first convolution filters with their pruned weights set to zero: blue positive, red "
                   "negative, white zero (hover a pixel for its value; *Chart as text* counts each filter's kept "
                   "positive and negative weights); an all-white filter was removed.")


def predictions_tab(s: Settings):
    c = state.changes(s)
    names = data.CLASS_NAMES[state.model(s.model).dataset]
    left, right = st.columns(2)
    with left:
        dense, pruned = list(c["per_class_dense"]), list(c["per_class_pruned"])
        show_chart(charts.per_class(dense, pruned, names), "pc", "Accuracy per class, dense and pruned",
                   charts.describe_per_class(dense, pruned, names),
                   lambda: charts.per_class_table(dense, pruned, names))
        st.caption("Accuracy per class before (grey, hatched) and after pruning (blue): pruning rarely hurts all "
                   "classes equally.")
    with right:
        show_chart(charts.confusion_change(c["confusion_change"], names), "cm", "Change in the confusion matrix",
                   charts.describe_confusion_change(c["confusion_change"], names),
                   lambda: charts.confusion_change_table(c["confusion_change"], names))
        st.caption("Change in the confusion matrix (row = true class): red cells marked + are new mistakes, blue "
                   "cells marked − on the diagonal are lost correct answers.")
    st.markdown(f"**{c['changed']:,} predictions changed**: {c['broken']:,} became wrong, {c['fixed']:,} became right.")
    if c["examples"]:
        x, _ = state.test_images(state.model(s.model).dataset)
        row = st.container(horizontal=True, wrap=True)  # wraps into rows on a narrow screen
        for ex in c["examples"]:
            cell = row.container(width=96)
            alt = (f"Test image {ex['index']}, a {names[ex['label']]}: the dense model predicts {names[ex['dense']]}, "
                   f"the pruned one {names[ex['pruned']]}")
            cell.image(x[ex["index"]], width=84, clamp=True, alt=alt)
            cell.caption(f"#{ex['index']} true **{names[ex['label']]}**: {names[ex['dense']]} → {names[ex['pruned']]}")


def _describe(s: Settings) -> str:
    return f"{s.strategy} · {s.scope} scope · {s.granularity} · {s.sparsity:.2%} pruned · {WEIGHT_LABELS[s.weights]}"


def chance_jaccard(o: dict) -> float:
    """The Jaccard index two independent random masks keeping o's shares of weights would have on average:
    keeping shares a and b, they share a·b of the weights, so J = ab / (a + b - ab)."""
    a, b = o["kept_a"] / o["total"], o["kept_b"] / o["total"]
    return a * b / (a + b - a * b) if a + b > 0 else 1.0


def compare_tab(s: Settings):
    """Setting A (the sidebar) against a setting B of the same model: accuracies, both points on the
    accuracy curves, per-layer sparsities and how far the two masks keep the same weights."""
    m = state.model(s.model)
    st.markdown("Set **B** below and compare it with the sidebar's setting **A** on the same model: do two "
                "criteria that reach a similar accuracy keep the *same* weights?")
    available = [w for w in pruning.WEIGHT_SETS if w == "final" or "init" in m.states]
    b = controls.compare_ui(s, available)
    if b is None:
        return
    ev_a, ev_b, o = state.evaluation(s), state.evaluation(b), state.overlap(s, b)
    cols = st.columns(4)
    cols[0].metric("Accuracy A", _pct(ev_a.accuracy), help=f"A (sidebar): {_describe(s)}")
    cols[1].metric("Accuracy B", _pct(ev_b.accuracy), _change(ev_b.accuracy, ev_a.accuracy, "A"),
                   help=f"B: {_describe(b)}")
    cols[2].metric("Jaccard overlap", f"{o['jaccard']:.3f}",
                   f"random masks: {chance_jaccard(o):.3f}", delta_color="off", delta_arrow="off",
                   help="Weights kept by both / weights kept by either: 1 = the same weights, 0 = none in common. "
                        "Below: what two independent random masks of these sparsities would share on average.")
    cols[3].metric("Kept by both", f"{o['kept_both']:,}", f"A keeps {o['kept_a']:,}, B {o['kept_b']:,}",
                   delta_color="off", delta_arrow="off")
    st.caption(f"**A** (sidebar): {_describe(s)}  \n**B**: {_describe(b)} · both on {ev_a.n:,} test images.")
    chart, bars = st.columns([3, 2])
    with chart:
        curves = {side: (state.curves(x) or {}).get(x.criterion) for side, x in (("A", s), ("B", b))}
        sides = {side: {"name": x.criterion, "curve": curves[side], "point": {"sparsity": x.sparsity,
                                                                               "accuracy": ev.accuracy}}
                 for side, x, ev in (("A", s, ev_a), ("B", b, ev_b))}
        dense = {f"unpruned {WEIGHT_LABELS[w]}": state.dense(s.model, w, s.limit).accuracy
                 for w in dict.fromkeys([s.weights, b.weights])}
        show_chart(charts.compare_curves(sides, dense), "compare_curve", "Settings A and B on the accuracy curves",
                   charts.describe_compare_curves(sides, dense))
        missing = [side for side, c in curves.items() if not c]
        if missing:
            st.caption(f"No precomputed curve for {' and '.join(missing)} (no sweep table for this setting): "
                       "only the live point is shown.")
    with bars:
        show_chart(charts.layer_overlap(o["layers"]), "compare_layers",
                   "Sparsity of A and B and their overlap per layer",
                   charts.describe_layer_overlap(o["layers"]), lambda: charts.layer_overlap_table(o["layers"]))
    st.caption("Per layer: the share of weights each setting prunes, and the Jaccard overlap of the weights they keep. "
               "Magnitude (large_final) and movement can prune the same share of a layer yet keep different weights.")


def export_tab(s: Settings, accuracy: float, n: int):
    import export_ui  # the downloads and the measured savings (issue 18), kept in their own file

    m = state.model(s.model)
    granularity = s.granularity.replace(":", "of")
    stem = f"{s.model.replace(':', '-')}-{s.strategy}-{s.scope}-{granularity}-{s.sparsity * 100:.2f}"
    st.markdown(f"The mask below gives **{accuracy:.2%}** on {n:,} test images with {WEIGHT_LABELS[s.weights]}.")
    export_ui.downloads(s, stem)
    st.download_button("Per-layer report (.csv)", lambda: state.report_csv(s), f"{stem}-layers.csv",
                       "text/csv", key="dl_csv", on_click="ignore")
    export_ui.savings(s)
    load = (f"pruning.load_file_model({m.name!r}, {m.dataset!r})" if s.model.startswith(state.UPLOAD)
            else f"pruning.load_model({s.model!r})")
    st.code(f"import pruning\nmodel = {load}\nmask = pruning.load_mask({stem + '.npz'!r}, model)\n"
            f"pruning.core.evaluate(model, mask, weights={s.weights!r}, limit={s.limit!r}).accuracy  # {accuracy:.4f}",
            language="python")
