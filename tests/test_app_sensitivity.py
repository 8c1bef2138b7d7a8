"""The explorer's Sensitivity tab, driven headlessly with AppTest: the heatmap against the shipped
table, the budget table against pruning.suggest_budgets, the apply button (sidebar, link, measured
accuracy) and the scan computed on request when no table is shipped."""

import json
from pathlib import Path
import sys

import pytest
from streamlit.testing.v1 import AppTest

import pruning

APP = Path(__file__).resolve().parent.parent / "app"
sys.path.insert(0, str(APP))  # the app's own modules (state), to hide the shipped table
MODEL = "mnist-lenet300-torch"
SHIPPED = Path(__file__).resolve().parent.parent / "pretrained" / MODEL / "sensitivity.json"


def start(**session):
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=180)
    app.session_state["model"] = MODEL
    app.session_state["tab"] = "Sensitivity"
    for key, value in session.items():
        app.session_state[key] = value
    app.run()
    assert not app.exception, app.exception
    return app


def heatmaps(app) -> list:
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return [spec for spec in specs if spec["data"] and spec["data"][0].get("type") == "heatmap"]


def heatmap(app) -> dict:
    return heatmaps(app)[0]


def percent(app, label: str) -> float:
    return float(next(m.value for m in app.metric if m.label.startswith(label)).rstrip("%")) / 100


def test_heatmap_shows_the_shipped_table_with_numbers():
    table = json.loads(SHIPPED.read_text())
    app = start(sens_target=80.0)
    trace = heatmap(app)["data"][0]
    assert trace["y"] == [layer["name"] for layer in table["layers"]]
    assert trace["z"] == [layer["accuracy"] for layer in table["layers"]]
    assert trace["colorscale"][0][1].lower() == "#440154"  # Viridis: sequential, colour-blind safe
    assert trace["text"][2][-1] == f"{100 * table['layers'][2]['accuracy'][-1]:.1f}"  # readable as text
    assert any("cannot see" in w.value for w in app.warning)


def test_budget_table_and_apply_button():
    table = json.loads(SHIPPED.read_text())
    app = start(sens_target=80.0)
    budgets = pruning.suggest_budgets(table, 0.8)
    rows = next(d.value for d in app.dataframe if "budget (% pruned)" in d.value.columns)
    assert list(rows["layer"]) == list(budgets)
    assert list(rows["budget (% pruned)"]) == [round(100 * b, 2) for b in budgets.values()]
    assert sum(rows["pruned"]) == round(0.8 * table["total"])

    app.button(key="sens_apply").click().run()
    assert not app.exception, app.exception
    assert app.sidebar.radio(key="scope").value == "sensitivity"
    assert app.sidebar.number_input(key="sparsity_pct").value == pytest.approx(80.0)
    assert app.query_params["scope"] == "sensitivity" and float(app.query_params["sparsity_pct"]) == 80.0
    m = pruning.load_model(MODEL)
    mask = pruning.compute_mask(m, "large_final", scope="sensitivity", budgets=budgets)
    assert percent(app, "Accuracy") == pytest.approx(pruning.evaluate(m, mask).accuracy, abs=1e-4)
    assert not app.error


def test_link_reproduces_the_budgets():
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=180)
    app.query_params.update({"model": MODEL, "scope": "sensitivity", "sparsity_pct": "95"})
    app.run()
    assert not app.exception and not app.error
    table = json.loads(SHIPPED.read_text())
    m = pruning.load_model(MODEL)
    mask = pruning.compute_mask(m, "large_final", scope="sensitivity", budgets=pruning.suggest_budgets(table, 0.95))
    assert percent(app, "Accuracy") == pytest.approx(pruning.evaluate(m, mask).accuracy, abs=1e-4)


def test_scan_on_request_when_none_is_shipped(monkeypatch):
    import state

    monkeypatch.setattr(state, "_shipped_table", lambda name: None)
    state._scanned().clear()
    app = start()
    assert not heatmaps(app)
    assert any("No precomputed scan" in i.value for i in app.info)
    app.button(key="sens_run").click().run()
    assert not app.exception, app.exception
    table = json.loads(SHIPPED.read_text())  # the same deterministic scan, on the full test set
    assert heatmap(app)["data"][0]["z"] == [layer["accuracy"] for layer in table["layers"]]
    assert "computed here" in " ".join(c.value for c in app.caption)
    assert state._scanned()[MODEL]["dense_accuracy"] == table["dense_accuracy"]
    state._scanned().clear()


def test_sensitivity_scope_without_a_scan_is_a_message(monkeypatch):
    import state

    monkeypatch.setattr(state, "_shipped_table", lambda name: None)
    state._scanned().clear()
    app = start(scope="sensitivity")
    assert not app.exception, app.exception
    assert any("needs this model's sensitivity scan" in e.value for e in app.error)


def test_applied_budgets_are_measured_against_the_other_scopes():
    app = start(scope="sensitivity", sparsity_pct=89.6)
    m = pruning.load_model(MODEL)
    for scope in ("layer", "global"):
        expected = pruning.evaluate(m, pruning.compute_mask(m, "large_final", 0.896, scope=scope)).accuracy
        assert percent(app, f"{scope} scope") == pytest.approx(expected, abs=1e-4)
    budgets = pruning.suggest_budgets(json.loads(SHIPPED.read_text()), 0.896)
    mask = pruning.compute_mask(m, "large_final", scope="sensitivity", budgets=budgets)
    assert percent(app, "sensitivity scope") == pytest.approx(pruning.evaluate(m, mask).accuracy, abs=1e-4)


def test_guided_tour_names_the_sensitivity_budgets():
    app = start()
    app.switch_page("tour.py").run()
    assert not app.exception, app.exception
    text = " ".join(md.value for md in app.markdown)
    budgets = pruning.suggest_budgets(json.loads(SHIPPED.read_text()), 0.896)
    m = pruning.load_model(MODEL)
    mask = pruning.compute_mask(m, "large_final", scope="sensitivity", budgets=budgets)
    accuracy = pruning.evaluate(m, mask).accuracy
    assert "Sensitivity" in text and f"{accuracy:.2%}" in text
