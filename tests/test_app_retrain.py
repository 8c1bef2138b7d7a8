"""The explorer's Retrain tab (AppTest) and per-session uploads.

The tab trains the sidebar's mask with ``pruning.training.retrain.retrain``; on a CPU with one thread the
engine is deterministic for a seed, so the page shows exactly the engine's numbers.
"""

import hashlib
import json
import os
from pathlib import Path
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning import data
from pruning.training.retrain import retrain

APP = Path(__file__).resolve().parent.parent / "app"
MODEL = "mnist-lenet300-torch"
ZOO = Path(pruning.__file__).resolve().parent.parent / "pretrained" / MODEL
sys.path.insert(0, str(APP))  # the app's own modules, for the probe of another session
needs_data = pytest.mark.skipif(not os.environ.get(data.ENV), reason="needs the MNIST training split: set "
                                "PRUNING_DATA_DIR")


def app(**state) -> AppTest:
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    at.session_state["model"] = MODEL
    at.session_state["tab"] = "Retrain"
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def train(at, starts, epochs=1, limit=600) -> AppTest:
    at.multiselect(key="rt_starts").set_value(starts)
    at.number_input(key="rt_epochs").set_value(epochs)
    at.selectbox(key="rt_limit_mnist").set_value(limit)
    at.button(key="rt_go").click().run()
    assert not at.exception, at.exception
    return at


def shown(at) -> dict:
    """The comparison table: start -> row."""
    return {row["start"]: row for row in at.dataframe[0].value.to_dict("records")}


def pct(text: str) -> float:
    return float(text.rstrip("%")) / 100


def digest(model) -> str:
    h = hashlib.sha256()
    for which in sorted(model.states):
        for name in sorted(model.states[which]):
            h.update(np.ascontiguousarray(model.states[which][name]).tobytes())
    return h.hexdigest()


def test_retrain_tab_renders():
    at = app()
    assert at.button(key="rt_go").label == "Train"
    assert at.multiselect(key="rt_starts").value == ["init", "final", "random"]
    assert not at.error or "PRUNING_DATA_DIR" in at.error[0].value


@needs_data
def test_one_epoch_shows_the_engine_accuracy_and_leaves_the_model_alone():
    model = pruning.load_model(MODEL)
    before = digest(model)
    at = train(app(), ["init"])
    mask = pruning.compute_mask(model, "large_final", 0.896, scope="layer")  # the sidebar defaults
    expected = retrain(model, mask, rewind="init", epochs=1, limit=600).accuracy
    row = shown(at)["rewind to θ0 (lottery ticket)"]
    assert row["final"] == row["epoch 1"] == f"{expected:.2%}"
    assert [m.value for m in at.metric if m.label.startswith("rewind to θ0")] == [f"{expected:.2%}"]
    assert "Done: 1 epochs" in at.get("progress")[0].proto.text
    assert digest(model) == before  # training built its own network from the stored weights


@needs_data
def test_the_comparison_shows_three_runs_against_dense_and_supermask():
    at = train(app(), ["init", "final", "random"])
    rows = shown(at)
    assert set(rows) == {"rewind to θ0 (lottery ticket)", "fine-tune from θf", "random re-initialisation"}
    model = pruning.load_model(MODEL)
    mask = pruning.compute_mask(model, "large_final", 0.896, scope="layer")  # the sidebar defaults
    dense, supermask = pruning.evaluate(model).accuracy, pruning.evaluate(model, mask, "init").accuracy
    for row in rows.values():  # (shown rounded to 0.01%)
        final = pct(row["final"])
        assert pct(row["vs dense"]) == pytest.approx(final - dense, abs=1.01e-4)
        assert pct(row["vs supermask"]) == pytest.approx(final - supermask, abs=1.01e-4)
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    names = {trace.get("name") for trace in spec["data"]}
    assert {"θ0 · lottery ticket", "θf · fine-tune", "random re-init"} <= names
    alt = at.get("plotly_chart")[-1].proto.alt  # the chart's text alternative: its numbers in words
    assert alt.startswith("Test accuracy per epoch") and f"{pct(rows['fine-tune from θf']['final']):.1%}" in alt


def test_missing_training_data_is_a_message_and_the_page_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    monkeypatch.setattr(data, "_download", lambda name, split: (_ for _ in ()).throw(OSError("offline")))
    data.load.cache_clear()
    try:
        at = app()
        assert "PRUNING_DATA_DIR" in at.error[0].value and "training split" in at.error[0].value
        assert at.button(key="rt_go").disabled
        assert at.metric[0].value.endswith("%")  # the headline above still shows
    finally:
        data.load.cache_clear()


def upload(at, init=True) -> str:
    at.sidebar.file_uploader(key="upload_final").upload("mine.safetensors", (ZOO / "final.safetensors").read_bytes())
    if init:
        at.sidebar.file_uploader(key="upload_init").upload("mine-init.safetensors",
                                                           (ZOO / "init.safetensors").read_bytes())
    at.run()
    assert not at.exception and at.session_state["model"].startswith("upload:")
    return at.session_state["model"]


def test_an_upload_without_init_says_why_there_is_no_rewind():
    at = app()
    upload(at, init=False)
    texts = " ".join(i.value for i in at.info)
    assert "no θ0" in texts and "optional θ0 file" in texts and "recipe" in texts
    assert at.multiselect(key="rt_starts").options == ["θf · fine-tune"]


def test_an_upload_lives_only_in_its_session():
    first = app()
    name = upload(first)
    assert "your mine.safetensors" in first.sidebar.selectbox(key="model").format_func(name)
    second = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    second.session_state["model"] = name  # knowing the name is not enough
    second.query_params["model"] = name
    second.run()
    assert not second.exception
    picker = second.sidebar.selectbox(key="model")
    assert picker.value == MODEL and not any(o.startswith("upload:") for o in picker.options)
    assert second.session_state["_uploaded_models"] == {}  # its own, empty

    def peek(name):
        import streamlit as st

        import pruning
        import state

        try:
            state.model(name)
        except pruning.PruningError as exc:
            st.error(str(exc))

    probe = AppTest.from_function(peek, args=(name,))
    probe.run()
    assert "not in this browser session" in probe.error[0].value
    first.sidebar.file_uploader(key="upload_final").set_value(None).run()  # dropped: the session lets it go
    assert not first.exception and name not in first.session_state["_uploaded_models"]


@needs_data
def test_an_uploaded_state_dict_with_its_init_retrains():
    at = app()
    upload(at)
    assert at.multiselect(key="rt_starts").options == ["θ0 · lottery ticket", "θf · fine-tune"]
    train(at, ["init", "final"])
    assert not at.error and set(shown(at)) == {"rewind to θ0 (lottery ticket)", "fine-tune from θf"}
