"""Pruning explorer: pick a model and a pruning strategy, see what the pruned network can still do.

Run with ``streamlit run app``.  This file only describes the pages; controls live in
controls.py, sections in sections.py, the Retrain tab in retrain_ui.py, the IMP rounds player in imp_ui.py,
figures in charts.py, cached engine calls in state.py.
"""

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the engine package beside app/

import streamlit as st  # noqa: E402

import bn_ui  # noqa: E402
import controls  # noqa: E402
import first_paint  # noqa: E402
import imp_ui  # noqa: E402
import perf  # noqa: E402
import retrain_ui  # noqa: E402
import sections  # noqa: E402
import sensitivity_ui  # noqa: E402
import server_tweaks  # noqa: E402, F401  no keras.backend.clear_session() + gc.collect() after every run
import turns  # noqa: E402


def explorer():
    settings = controls.sidebar_ui()
    if settings is None:
        st.title("Pruning explorer")
        st.info("The pruned model appears here once the sidebar's message is resolved.")
        return
    sections.header(settings)
    with sections.errors_shown():
        results = sections.metrics(settings)
        bn_ui.section(settings, results)  # batch-norm recalibration: models with batch norm only
        sections.layer_warning(settings)
        chart, bars = st.columns([3, 2])
        with chart:
            sections.curve(settings, results)
        with bars:
            sections.layers(settings)
        tabs = {"Weights": sections.weights_tab, "First layer": sections.first_layer_tab,
                "Predictions": sections.predictions_tab, "Retrain": retrain_ui.tab, "IMP rounds": imp_ui.tab,
                "Compare": sections.compare_tab,
                "Sensitivity": sensitivity_ui.tab,
                "Export": lambda s: sections.export_tab(s, results["evaluation"].accuracy, results["evaluation"].n)}
        for tab, show in zip(st.tabs(list(tabs), key="tab", on_change="rerun"), tabs.values(), strict=True):
            if tab.open:  # only the open tab is computed, so the sliders stay fast
                with tab:
                    show(settings)
        perf.section(settings)


st.set_page_config(page_title="Pruning explorer", page_icon="✂️", layout="wide", initial_sidebar_state=370)
with turns.turn():  # a class's pages compute in line, as many at once as the server has cores
    st.navigation([st.Page(explorer, title="Explorer", icon=":material/content_cut:", default=True),
                   st.Page("tour.py", title="Guided tour", icon=":material/school:")]).run()
    first_paint.signal()  # a session's first run: its charts follow once the browser shows the page
