"""The Streamlit explorer, driven headlessly with streamlit.testing.v1.AppTest.

Every check compares what the page shows with what the engine computes for the same settings.
"""

import io
import json
from pathlib import Path
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import headline

import pruning
from pruning import data
from pruning.core.readouts import default_limit

APP = Path(__file__).resolve().parent.parent / "app"
MODEL = "mnist-lenet300-torch"
sys.path.insert(0, str(APP))  # the app's own modules (state, readouts wrappers) for the export test


def engine_accuracy(sparsity, strategy="large_final", scope="layer", granularity="weight", weights="final",
                    model=MODEL):
    m = pruning.load_model(model)
    mask = pruning.compute_mask(m, strategy, sparsity, scope=scope, granularity=granularity)
    return pruning.evaluate(m, mask, weights).accuracy


def curve_names(app) -> list:
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    return [trace.get("name") for trace in spec["data"]]


def test_starts_and_shows_the_engine_numbers(at):
    assert headline(at) == pytest.approx(engine_accuracy(0.896), abs=1e-4)
    labels = [m.label for m in at.metric]
    assert any("Random mask" in label for label in labels) and any("signed constant" in label for label in labels)
    assert "10,000 test images" in " ".join(c.value for c in at.caption)
    assert not at.error


def test_slider_number_box_and_presets_move_the_accuracy(at):
    at.sidebar.select_slider(key="sparsity_slider").set_value(99.0).run()
    assert at.sidebar.number_input(key="sparsity_pct").value == pytest.approx(99.0)
    assert headline(at) == pytest.approx(engine_accuracy(0.99), abs=1e-4)
    at.button(key="preset_20.0").click().run()
    assert headline(at) == pytest.approx(engine_accuracy(0.2), abs=1e-4)
    at.sidebar.number_input(key="sparsity_pct").set_value(97.35).run()
    assert headline(at) == pytest.approx(engine_accuracy(0.9735), abs=1e-4)
    assert not at.exception


def test_criterion_changes_the_curves_and_the_explanation(at):
    assert "large_final (magnitude)" in curve_names(at)
    at.sidebar.selectbox(key="strategy").set_value("movement").run()
    assert "movement" in curve_names(at)
    assert pruning.CRITERIA["movement"].doc in [c.value for c in at.sidebar.caption]
    assert headline(at) == pytest.approx(engine_accuracy(0.896, "movement"), abs=1e-4)


def test_alias_fixes_the_scope(at):
    at.sidebar.selectbox(key="strategy").set_value("smallest_weights_global").run()
    assert not at.exception
    assert headline(at) == pytest.approx(engine_accuracy(0.896, scope="global"), abs=1e-4)


def test_scope_control(at):
    at.sidebar.radio(key="scope").set_value("global").run()
    assert headline(at) == pytest.approx(engine_accuracy(0.896, scope="global"), abs=1e-4)


def test_global_scope_warns_when_a_layer_is_emptied(at):
    at.sidebar.radio(key="scope").set_value("global").run()
    at.button(key="preset_99.33").click().run()
    assert any("99%" in w.value for w in at.warning)


def test_granularity_control_and_bad_pattern(at):
    at.sidebar.radio(key="granularity").set_value("N:M").run()
    assert at.sidebar.select_slider(key="sparsity_slider").disabled
    assert headline(at) == pytest.approx(engine_accuracy(None, granularity="2:4"), abs=1e-4)
    at.sidebar.text_input(key="nm").set_value("5:4").run()
    assert not at.exception and at.sidebar.error  # a visible message, no traceback
    at.sidebar.radio(key="granularity").set_value("unit").run()
    assert headline(at) == pytest.approx(engine_accuracy(0.896, granularity="unit"), abs=1e-4)


def test_weights_control(at):
    at.sidebar.radio(key="weights").set_value("init").run()
    assert "θ0" in at.metric[0].label
    assert headline(at) == pytest.approx(engine_accuracy(0.896, weights="init"), abs=1e-4)


def test_model_picker_lists_the_zoo_and_switches():
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=180)
    app.run()
    picker = app.sidebar.selectbox(key="model")
    assert set(picker.options) == {picker.format_func(r["name"]) for r in pruning.catalogue()}
    others = [r["name"] for r in pruning.catalogue() if r["framework"] == "torch" and r["name"] != MODEL
              and r["dataset"] in ("mnist", "fashion_mnist")]
    if not others:
        pytest.skip("only one PyTorch MNIST-like model in the zoo")
    picker.set_value(others[0]).run()
    assert not app.exception
    assert headline(app) == pytest.approx(engine_accuracy(0.896, model=others[0]), abs=1e-4)


def test_tabs_render(at):
    for tab in ("Weights", "First layer", "Predictions", "Export"):
        at.session_state["tab"] = tab
        at.run()
        assert not at.exception, tab
        assert not at.error, tab
    assert len(at.get("download_button")) == 6  # npz, torch, shrunk .safetensors, onnx, shrunk onnx, csv


def test_guided_tour_renders_and_settings_survive_the_visit(at):
    at.sidebar.radio(key="scope").set_value("global").run()
    at.switch_page("tour.py").run()
    assert not at.exception
    assert len(at.header) >= 4
    assert "%" in at.markdown[0].value
    # the explorer is a callable page, which AppTest.switch_page cannot name: use its registered hash
    explorer = [h for h, info in at._registered_pages.items() if not info.get("script_path")]
    at._page_hash = explorer[0]
    at.run()
    assert at.sidebar.radio(key="scope").value == "global"
    assert headline(at) == pytest.approx(engine_accuracy(0.896, scope="global"), abs=1e-4)


def test_export_reloads_to_the_same_mask_and_accuracy():
    import state  # the app's cached wrappers work outside a running app too

    s = state.Settings(MODEL, "large_final", "global", "weight", 0.9)
    mask = pruning.load_mask(io.BytesIO(state.exported(s, "npz")), pruning.load_model(MODEL))
    expected = state.mask(s)
    assert set(mask) == set(expected) and all(np.array_equal(mask[k], expected[k]) for k in mask)
    assert mask.meta["sparsity"] == pytest.approx(0.9)
    shown = state.evaluation(s).accuracy
    assert pruning.evaluate(pruning.load_model(MODEL), mask).accuracy == shown
    csv = state.report_csv(s).decode().splitlines()
    assert csv[0].startswith("name,shape") and len(csv) == 1 + len(mask)
    torch = pytest.importorskip("torch")
    tensors = torch.load(io.BytesIO(state.exported(s, "torch")), weights_only=True)
    assert all(np.array_equal(tensors[k].numpy(), expected[k]) for k in expected)


def test_missing_dataset_is_a_message_not_a_traceback():
    def page():
        import streamlit as st

        import pruning
        import sections

        with sections.errors_shown():
            raise pruning.DatasetUnavailable("the cifar10 test split is not available")

        st.write("the rest keeps working")

    app = AppTest.from_function(page)
    app.run()
    assert not app.exception
    assert "PRUNING_DATA_DIR" in app.error[0].value
    assert app.markdown[0].value == "the rest keeps working"


def test_keras_model_and_its_export(tmp_path):
    names = sorted(r["name"] for r in pruning.catalogue() if r["framework"] == "keras" and r["dataset"] == "mnist")
    if not names:
        pytest.skip("no Keras MNIST model in the zoo yet")
    import state

    name = "mnist-lenet300-keras" if "mnist-lenet300-keras" in names else names[0]
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = name
    app.session_state["tab"] = "Export"
    app.run()
    assert not app.exception
    assert headline(app) == pytest.approx(engine_accuracy(0.896, model=name), abs=1e-4)
    assert [b.label for b in app.get("download_button")][1].startswith("Pruned Keras model")
    s = state.Settings(name, "large_final", "layer", "weight", 0.896)
    path = tmp_path / "pruned.keras"
    path.write_bytes(state.exported(s, "keras"))
    from pruning.uploads.byo import load_file_model

    reloaded = load_file_model(path, "mnist")
    assert pruning.evaluate(reloaded).accuracy == pytest.approx(state.evaluation(s).accuracy, abs=1e-4)


def test_upload_your_own_model_and_a_refused_pickle(at):
    zoo = Path(pruning.__file__).resolve().parent.parent / "pretrained" / MODEL
    at.sidebar.file_uploader(key="upload_final").upload("mine.safetensors", (zoo / "final.safetensors").read_bytes())
    at.sidebar.file_uploader(key="upload_init").upload("mine-init.safetensors", (zoo / "init.safetensors").read_bytes())
    at.run()
    assert not at.exception and not at.sidebar.error
    assert at.session_state["model"].startswith("upload:")
    picker = at.sidebar.selectbox(key="model")
    assert "your mine.safetensors" in picker.format_func(picker.value)
    assert headline(at) == pytest.approx(engine_accuracy(0.896), abs=1e-4)  # the same weights as the zoo model
    at.sidebar.radio(key="weights").set_value("init").run()
    assert headline(at) == pytest.approx(engine_accuracy(0.896, weights="init"), abs=1e-4)
    at.sidebar.file_uploader(key="upload_final").set_value(("model.pt", b"\x80\x04\x95" + b"\x00" * 64, "x")).run()
    assert not at.exception
    assert "pickle" in at.sidebar.error[0].value.lower()


def test_an_uploads_file_name_and_its_tensor_names_are_code_spans_in_the_page(at):
    """Markdown turns bare www./http text into links: a visitor's file name (and the tensor names in
    the empty-layer warning) reach the page only inside code spans."""
    zoo = Path(pruning.__file__).resolve().parent.parent / "pretrained" / MODEL
    name = "www.evil.example.safetensors"
    at.sidebar.file_uploader(key="upload_final").upload(name, (zoo / "final.safetensors").read_bytes())
    at.run()
    assert not at.exception and not at.sidebar.error
    assert f"**`your {name}`**" in at.caption[0].value
    at.sidebar.number_input(key="sparsity_pct").set_value(99.9).run()
    warning = next(w.value for w in at.warning if "99%" in w.value)
    assert warning.startswith("`fc")


@pytest.mark.parametrize("tab", ["Weights", "First layer", "Predictions", "IMP rounds", "Compare", "Sensitivity"])
def test_every_chart_of_every_tab_has_a_text_alternative(tab):
    """Each Plotly chart carries an accessible name (``alt``) that says what it shows in words (the
    Retrain tab's chart: tests/test_app_retrain.py)."""
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = MODEL
    app.session_state["tab"] = tab
    app.run()
    assert not app.exception
    charts = app.get("plotly_chart")
    assert len(charts) >= 3  # the curve and the layer bars above the tabs, and the tab's own
    for chart in charts:
        assert len(chart.proto.alt) > 40 and "\n" not in chart.proto.alt, chart.proto.alt
    if tab == "Sensitivity":
        alt = charts[-1].proto.alt
        assert alt.startswith("Accuracy of each layer pruned alone") and all(
            f"fc{i}.weight" in alt for i in (1, 2, 3))


@pytest.mark.parametrize("row", pruning.catalogue(), ids=lambda row: row["name"])
def test_every_zoo_model_renders(row):
    """New zoo models are picked up by themselves: each one renders its model-specific parts."""
    if not data.available(row["dataset"]):
        pytest.skip(f"the {row['dataset']} test split is not shipped: set {data.ENV} to run this test")
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = row["name"]
    app.session_state["tab"] = "First layer"
    app.session_state[f"limit_{row['dataset']}_cpu"] = 500  # a small stratified subset: rendering is the point
    app.run()
    assert not app.exception and not app.error
    assert app.metric[0].value.endswith("%")


def test_a_shared_link_sets_the_controls_and_follows_them():
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=180)
    app.query_params.update({"model": MODEL, "strategy": "movement", "scope": "global", "sparsity_pct": "97.35",
                             "weights": "init", "granularity": "no-such-thing"})
    app.run()
    assert not app.exception
    assert app.sidebar.select_slider(key="sparsity_slider").value == pytest.approx(97.3)  # nearest stop
    assert app.sidebar.radio(key="granularity").value == "weight"  # a bad value is ignored
    assert headline(app) == pytest.approx(engine_accuracy(0.9735, "movement", "global", weights="init"), abs=1e-4)
    app.button(key="preset_20.0").click().run()
    assert app.query_params["sparsity_pct"] == "20.0" and app.query_params["strategy"] == "movement"


@pytest.mark.parametrize("row", [r for r in pruning.catalogue() if r["dataset"] == "cifar10"] or
                         [pytest.param(None, marks=pytest.mark.skip(reason="no CIFAR-10 model in the zoo yet"))])
def test_cifar_on_cpu_uses_a_stratified_subset_or_says_what_to_set(row):
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=600)
    app.session_state["model"] = row["name"]
    app.run()
    assert not app.exception
    if str(pruning.load_model(row["name"]).device) == "cpu":
        assert app.sidebar.selectbox(key="limit_cifar10_cpu").value == default_limit("cifar10", "cpu")
    try:
        pruning.data.load("cifar10", "test")
    except pruning.DatasetUnavailable:
        assert "PRUNING_DATA_DIR" in app.error[0].value  # and the sidebar still works
        return
    assert "class-stratified subset" in " ".join(c.value for c in app.caption)


def test_chart_as_text_is_drawn_when_opened(at):
    """Each chart's "Chart as text" expander is drawn closed and empty, so a slider move does not
    send its table; opened, it holds the chart's description and its numbers as a table."""
    assert [e.label for e in at.expander].count("Chart as text") == 4  # curve, layer bars, the Weights tab's two
    assert not at.table and not [m for m in at.markdown if m.value.startswith("**Share of each weight tensor")]
    at.session_state["layers_text"] = True
    at.run()
    assert not at.exception
    assert [m for m in at.markdown if m.value.startswith("**Share of each weight tensor pruned.** ")]
    m = pruning.load_model(MODEL)
    mask = pruning.compute_mask(m, "large_final", 0.896, scope=at.sidebar.radio(key="scope").value)
    shown = at.table[0].value
    assert list(shown["tensor"]) == list(m.specs)
    assert list(shown["pruned"]) == [f"{row['sparsity']:.2%}" for row in pruning.report(mask)["layers"]]
