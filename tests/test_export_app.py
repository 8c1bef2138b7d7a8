"""The explorer's Export tab (app/export_ui.py): it offers the shrunk and ONNX formats, says what
each saves, its downloads are the files the engine writes, and it measures the savings on request."""

from pathlib import Path
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning import data
from pruning.models import onnx_export, shrink_torch

APP = Path(__file__).resolve().parent.parent / "app"
MODEL = "mnist-lenet300-torch"
sys.path.insert(0, str(APP))


def export_tab(**settings) -> AppTest:
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = MODEL
    app.session_state["tab"] = "Export"
    app.run()
    for key, value in settings.items():
        app.sidebar.radio(key=key).set_value(value).run()
    assert not app.exception, app.exception
    return app


def buttons(app) -> dict:
    return {b.label: b for b in app.get("download_button")}


def test_export_tab_offers_the_new_formats_and_their_files_work(tmp_path):
    app = export_tab(granularity="unit")
    labels = list(buttons(app))
    assert labels[:5] == ["Mask (.npz + metadata)", "PyTorch mask (.pt)", "Shrunk PyTorch model (.safetensors)",
                          "Pruned ONNX model (.onnx)", "Shrunk ONNX model (.onnx)"]
    assert not any(b.proto.disabled for b in app.get("download_button"))
    captions = " ".join(c.value for c in app.caption)
    assert "dense shapes: same file size, memory and time" in captions
    assert "disk, memory and time: removed units and channels are gone" in captions
    import state

    s = state.Settings(MODEL, "large_final", app.sidebar.radio(key="scope").value, "unit",
                       round(app.session_state["sparsity_pct"] / 100, 6))
    model, mask = state.model(MODEL), state.mask(s)
    x, _ = data.load(model.dataset)
    x = x[:500]
    ref = model.logits(pruning.masked_weights(model, mask), "final", model.prepare(x))
    path = tmp_path / "small.safetensors"
    path.write_bytes(state.exported(s, "shrunk-safetensors"))
    import torch

    from pruning.models.torch_model import to_input

    with torch.no_grad():
        shrunk = shrink_torch.load(path)(to_input(x)).numpy()
    onnx = onnx_export.run(onnx_export.session(state.exported(s, "shrunk-onnx")), onnx_export.inputs(model, x), 500)
    for out in (shrunk, onnx):
        assert (out.argmax(1) == ref.argmax(1)).all() and np.abs(out - ref).max() <= 1e-4


def test_shrunk_downloads_are_disabled_with_the_reason_when_nothing_shrinks():
    app = export_tab(scope="layer")
    app.sidebar.select_slider(key="sparsity_slider").set_value(50.0).run()
    assert not app.exception
    b = buttons(app)
    assert b["Shrunk PyTorch model (.safetensors)"].proto.disabled and b["Shrunk ONNX model (.onnx)"].proto.disabled
    assert not b["Pruned ONNX model (.onnx)"].proto.disabled
    assert any("Shrunk formats unavailable: nothing to shrink" in c.value for c in app.caption)


def test_measure_button_shows_dense_pruned_and_shrunk():
    app = export_tab(granularity="unit")
    app.button(key="measure_exports").click().run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert list(table["model"]) == ["dense", "pruned", "shrunk"]
    assert table["same as engine"].all()
    assert table[".safetensors file (MB)"][1] == "mask only"  # a PyTorch masked export holds no weights
    onnx_mb = list(table["ONNX file (MB)"])
    assert onnx_mb[1] == pytest.approx(onnx_mb[0], rel=0.01) and onnx_mb[2] < onnx_mb[0]
    said = " ".join(m.value for m in app.markdown)
    assert "Measured: the pruned (masked) ONNX model has 100% of the dense file size, 100% of its stored" in said
    assert "the shrunk one has" in said


def test_a_measurement_draws_its_progress_and_is_kept_for_the_next_session(monkeypatch):
    """Every stage moves the progress bar (three exports, three timing rounds); a second session
    with the same settings gets the stored measurement without measuring again."""
    from pruning.models import onnx_measure

    real, stages = onnx_measure.measure, []

    def spy(*args, progress, **kw):
        stages.append([])
        return real(*args, progress=lambda done, total, what: (stages[-1].append((done, total)),
                                                                progress(done, total, what)), **kw)

    monkeypatch.setattr(onnx_measure, "measure", spy)
    for _ in range(2):
        app = export_tab(granularity="unit")
        app.sidebar.select_slider(key="sparsity_slider").set_value(60.0).run()  # a setting no other test measures
        app.button(key="measure_exports").click().run()
        assert not app.exception, app.exception
        assert list(app.dataframe[0].value["model"]) == ["dense", "pruned", "shrunk"]
        assert not app.get("progress")  # the bar is gone once the table is there
    assert stages == [[(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]]


def test_summary_says_when_there_is_no_shrunk_model():
    import export_ui

    rows = [{"variant": "dense", "onnx_bytes": 1000, "parameters": 100, "seconds": 2.0},
            {"variant": "pruned", "onnx_bytes": 1000, "parameters": 100, "seconds": 1.0},
            {"variant": "shrunk", "error": "nothing to shrink: ..."}]
    assert export_ui.summary(rows) == ("Measured: the pruned (masked) ONNX model has 100% of the dense file size, "
                                       "100% of its stored parameters and weight memory, 0.50× its time; "
                                       "no shrunk model (nothing to shrink at this setting).")
