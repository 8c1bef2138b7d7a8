"""A session's first page comes without its Plotly charts, which follow once the browser shows it
(app/first_paint.py): under AppTest the first run has placeholders and the second the charts; in
Chromium the charts appear without any input, on the explorer and on the guided tour."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import CHROMIUM, explorer_page, first_page, headline


def _first_run(monkeypatch, defer: str) -> AppTest:
    monkeypatch.setenv("PRUNING_DEFER_CHARTS", defer)
    return first_page()


def _placeholders(app) -> int:
    return sum(c.value.startswith("Drawing the chart…") for c in app.caption)


def test_the_first_run_has_the_numbers_and_placeholders_and_the_next_the_charts(monkeypatch):
    app = _first_run(monkeypatch, "1")
    accuracy = headline(app)
    charts_tab = 4  # accuracy curve, layer bars; the Weights tab's histograms and scatter
    assert not app.get("plotly_chart") and not app.get("table")  # no Plotly, no Arrow tables yet
    assert _placeholders(app) == charts_tab
    assert [e.type for e in app.main if e.type == "bidi_component"] == ["bidi_component"]  # the browser's signal
    app.run()  # what the signal asks for
    assert len(app.get("plotly_chart")) == charts_tab and not _placeholders(app)
    app.session_state["curve_text"] = True  # a chart's text opened: its table is drawn now
    app.run()
    assert app.get("table")
    assert headline(app) == accuracy
    assert not [e for e in app.main if e.type == "bidi_component"]  # once per session
    app.sidebar.selectbox(key="model").set_value("fmnist-lenet300-torch").run()  # another model: charts at once
    assert len(app.get("plotly_chart")) == charts_tab and not _placeholders(app)


def test_turned_off_the_first_run_draws_the_charts(monkeypatch):
    app = _first_run(monkeypatch, "0")
    assert len(app.get("plotly_chart")) == 4 and not _placeholders(app)
    assert not [e for e in app.main if e.type == "bidi_component"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
@pytest.mark.parametrize("path, charts", [("", 4), ("/tour", 2)])
def test_in_a_browser_the_charts_follow_without_any_input(server, path, charts):
    with explorer_page(server + path, 1300) as page:
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length >= {charts}",
                               timeout=120_000)
        assert not page.get_by_text("Drawing the chart…").count()
        assert page.locator('[data-testid="stMetricValue"]').count() == (8 if path == "" else 0)
        assert not page.locator('[data-testid="stException"]').count()
