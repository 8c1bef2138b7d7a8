"""A session's first page comes without its Plotly charts; they follow in a second run as soon as
the browser has put the page on screen.

Why: Streamlit's browser code loads its Plotly chunk (4.7 MB) only when a page first holds a
Plotly chart, and it shows a batch of new elements only once every element in it can render.  With
charts in the first run, a new visitor's headline accuracy waited about 3 s for that chunk to be
fetched and compiled and for the charts to be drawn (docs/performance.md, part i); without them it
shows about 0.5 s after the server sent it.

How: the first run draws a light placeholder where each chart goes (``placeholder``), and at the
end of the page mounts ``signal``: a component of a few lines (``st.components.v2``) whose script
runs when the browser mounts it, that is once the page is on screen, and asks for the next run.
Any other rerun (a slider move) draws the charts as well, so a client that runs no script (AppTest,
the benchmark's websocket generator) has them from its second run on.

``PRUNING_DEFER_CHARTS=0`` turns this off (charts in the first run); the test suite does so, except
in the tests of this module.
"""

import os

import streamlit as st

DRAWN = "first_paint_drawn"  # session state: a run of this session has reached signal()
DEFERRED = "first_paint_deferred"  # session state: this run left a chart to the next one
PLACEHOLDER = "Drawing the chart… (if it stays empty, move any control)"

_JS = """
export default function (component) {
    component.setTriggerValue("shown", true);
}
"""
_signal = st.components.v2.component("pruning_first_paint", js=_JS)


def enabled() -> bool:
    return os.environ.get("PRUNING_DEFER_CHARTS", "1") != "0"


def charts_now() -> bool:
    """Whether this run draws the page's charts: every run once one of the session's runs has reached
    ``signal`` (a session's first run, and runs cut short before it, draw placeholders)."""
    return not enabled() or st.session_state.get(DRAWN, False)


def placeholder(height: int):
    """Where a chart will be drawn: an empty box of its height, so nothing below it moves."""
    st.session_state[DEFERRED] = True
    with st.container(height=height, border=False):
        st.caption(PLACEHOLDER)


def signal():
    """At the end of the page: later runs draw the charts, and when this one left any to them, the
    browser asks for the next run as soon as it shows this page."""
    if charts_now():
        return
    st.session_state[DRAWN] = True
    if st.session_state.pop(DEFERRED, False):
        _signal(key="first_paint", on_shown_change=lambda: None, height=0)
