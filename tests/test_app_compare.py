"""The explorer's Compare tab, driven headlessly with AppTest: setting B's controls, its numbers
against the engine's (pruning.evaluate, pruning.compare_masks) and B's settings in a shared link."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pruning

APP = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
MODEL = "mnist-lenet300-torch"


@pytest.fixture
def at():
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.session_state["model"] = MODEL
    app.session_state["tab"] = "Compare"
    app.run()
    assert not app.exception, app.exception
    return app


def metric(app, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def percent(app, label: str) -> float:
    return float(metric(app, label).rstrip("%")) / 100


def mask(sparsity, strategy="large_final", scope="layer", granularity="weight"):
    return pruning.compute_mask(pruning.load_model(MODEL), strategy, sparsity, scope=scope, granularity=granularity)


def accuracy(m, weights="final") -> float:
    return pruning.evaluate(pruning.load_model(MODEL), m, weights).accuracy


def figure(app, trace_name: str) -> dict:
    """The Plotly figure (as JSON) holding a trace named ``trace_name``."""
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return next(spec for spec in specs if trace_name in [t.get("name") for t in spec["data"]])


def trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def test_b_starts_as_the_sidebar_setting(at):
    assert at.selectbox(key="b_strategy").value == at.sidebar.selectbox(key="strategy").value == "large_final"
    assert at.radio(key="b_scope").value == "layer" and at.radio(key="b_granularity").value == "weight"
    assert at.number_input(key="b_sparsity_pct").value == pytest.approx(89.6)
    assert percent(at, "Accuracy A") == percent(at, "Accuracy B")
    assert percent(at, "Accuracy A") == pytest.approx(accuracy(mask(0.896)), abs=1e-4)
    assert metric(at, "Jaccard overlap") == "1.000"
    assert not at.error


def test_b_controls_give_the_engine_numbers(at):
    at.selectbox(key="b_strategy").set_value("movement").run()
    at.radio(key="b_scope").set_value("global").run()
    at.number_input(key="b_sparsity_pct").set_value(95.0).run()
    assert not at.exception and not at.error
    a, b = mask(0.896), mask(0.95, "movement", "global")
    assert percent(at, "Accuracy A") == pytest.approx(accuracy(a), abs=1e-4)
    assert percent(at, "Accuracy B") == pytest.approx(accuracy(b), abs=1e-4)
    expected = pruning.compare_masks(a, b)
    assert float(metric(at, "Jaccard overlap")) == pytest.approx(expected["jaccard"], abs=5e-4)
    assert metric(at, "Kept by both") == f"{expected['kept_both']:,}"
    bars = figure(at, "Jaccard A/B (kept weights)")
    jaccard = trace(bars, "Jaccard A/B (kept weights)")
    assert jaccard["y"] == [row["name"] for row in expected["layers"]][::-1]  # first layer on top
    assert jaccard["x"] == [row["jaccard"] for row in expected["layers"]][::-1]
    assert trace(bars, "sparsity B")["x"] == [row["sparsity_b"] for row in expected["layers"]][::-1]
    curves = figure(at, "B (live)")
    assert trace(curves, "B (live)")["y"] == [accuracy(b)] and trace(curves, "A (live)")["y"] == [accuracy(a)]
    names = {t["name"] for t in curves["data"]}
    assert "A: large_final (precomputed)" in names and "B: movement (precomputed)" not in names  # no global sweep
    assert any("No precomputed curve for B" in c.value for c in at.caption)
    assert at.query_params["b_strategy"] == "movement" and at.query_params["b_sparsity_pct"] == "95.0"
    at.radio(key="b_scope").set_value("layer").run()
    assert "B: movement (precomputed)" in {t["name"] for t in figure(at, "B (live)")["data"]}


def test_b_granularity_and_weights(at):
    at.radio(key="b_granularity").set_value("N:M").run()
    assert at.number_input(key="b_sparsity_pct").disabled
    assert percent(at, "Accuracy B") == pytest.approx(accuracy(mask(None, granularity="2:4")), abs=1e-4)
    at.text_input(key="b_nm").set_value("5:4").run()
    assert not at.exception and at.error  # a visible message, no traceback
    at.radio(key="b_granularity").set_value("unit").run()
    at.radio(key="b_weights").set_value("init").run()
    assert percent(at, "Accuracy B") == pytest.approx(accuracy(mask(0.896, granularity="unit"), "init"), abs=1e-4)
    assert not at.error


def test_b_survives_another_tab(at):
    at.selectbox(key="b_strategy").set_value("random").run()
    at.session_state["tab"] = "Weights"
    at.run()
    assert at.query_params["b_strategy"] == "random"
    at.session_state["tab"] = "Compare"
    at.run()
    assert at.selectbox(key="b_strategy").value == "random"


def test_a_link_sets_b_and_hostile_values_are_ignored():
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.query_params.update({"model": MODEL, "sparsity_pct": "90", "b_strategy": "movement", "b_scope": "global",
                             "b_weights": "init", "b_sparsity_pct": "97.35"})
    app.session_state["tab"] = "Compare"
    app.run()
    assert not app.exception
    assert app.selectbox(key="b_strategy").value == "movement" and app.radio(key="b_scope").value == "global"
    assert app.radio(key="b_weights").value == "init"
    assert app.number_input(key="b_sparsity_pct").value == pytest.approx(97.35)
    b = mask(0.9735, "movement", "global")
    assert percent(app, "Accuracy B") == pytest.approx(accuracy(b, "init"), abs=1e-4)
    assert float(metric(app, "Jaccard overlap")) == pytest.approx(pruning.compare_masks(mask(0.9), b)["jaccard"],
                                                                  abs=5e-4)

    hostile = AppTest.from_file(str(APP), default_timeout=180)
    hostile.query_params.update({"model": MODEL, "b_strategy": "<script>alert(1)</script>", "b_scope": "model",
                                 "b_granularity": "x" * 500, "b_nm": "5:4", "b_weights": "__class__",
                                 "b_sparsity_pct": "nan"})
    hostile.session_state["tab"] = "Compare"
    hostile.run()
    assert not hostile.exception and not hostile.error
    assert hostile.selectbox(key="b_strategy").value == "large_final"  # A's values instead
    assert hostile.radio(key="b_scope").value == "layer" and hostile.radio(key="b_granularity").value == "weight"
    assert hostile.radio(key="b_weights").value == "final"
    assert hostile.number_input(key="b_sparsity_pct").value == pytest.approx(89.6)
    assert hostile.session_state["b_nm"] == "2:4"  # "5:4" keeps more than it has
    assert metric(hostile, "Jaccard overlap") == "1.000"


def test_a_link_with_an_n_m_pattern_for_b():
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.query_params.update({"model": MODEL, "b_granularity": "N:M", "b_nm": "1 : 4"})
    app.session_state["tab"] = "Compare"
    app.run()
    assert not app.exception and app.text_input(key="b_nm").value == "1:4"
    assert percent(app, "Accuracy B") == pytest.approx(accuracy(mask(None, granularity="1:4")), abs=1e-4)


def test_guided_tour_compares_magnitude_and_movement_and_names_batch_norm():
    from conftest import APP_SCRIPT

    app = AppTest.from_file(str(APP_SCRIPT), default_timeout=300)
    app.session_state["model"] = MODEL
    app.run()
    app.switch_page("tour.py").run()
    assert not app.exception, app.exception
    text = " ".join(md.value for md in app.markdown)
    m = pruning.load_model(MODEL)
    a = pruning.compute_mask(m, "large_final", 0.896, scope="global")
    b = pruning.compute_mask(m, "movement", 0.896, scope="global")
    assert f"only **{pruning.compare_masks(a, b)['jaccard']:.0%}** of their kept weights" in text
    assert "**Compare** tab" in text and "batch-norm toggle" in text
