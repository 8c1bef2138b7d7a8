"""The explorer's batch-norm recalibration toggle (app/bn_ui.py), driven with AppTest: shown only for
models with batch norm, disabled with a reason without training data, and when flipped it shows the
engine's recalibrated accuracy beside the plain one."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning import data
from pruning.core import batchnorm
from pruning.core.readouts import default_limit

APP = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
RESNET = "cifar10-resnet20-torch"
needs_cifar = pytest.mark.skipif(not data.available("cifar10", "test"), reason="needs PRUNING_DATA_DIR (CIFAR-10)")


def start(model: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.session_state["model"] = model
    app.run()
    assert not app.exception, app.exception
    return app


def metric(app, label: str) -> float:
    found = [m for m in app.metric if m.label == label]
    assert len(found) == 1, [m.label for m in app.metric]
    return float(found[0].value.rstrip("%")) / 100


def test_no_toggle_for_a_model_without_batch_norm():
    app = start("mnist-lenet300-torch")
    assert not [t for t in app.sidebar.toggle if t.key == "bn_recalibrate"]


@needs_cifar
def test_flipping_the_toggle_shows_the_recalibrated_accuracy():
    app = start(RESNET)
    app.sidebar.radio(key="scope").set_value("global").run()
    app.sidebar.select_slider(key="sparsity_slider").set_value(90.0).run()
    toggle = app.sidebar.toggle(key="bn_recalibrate")
    assert not toggle.disabled and not toggle.value
    assert not [m for m in app.metric if m.label == "With recalibration"]
    toggle.set_value(True).run()
    assert not app.exception, app.exception
    app.sidebar.selectbox(key="bn_images").set_value(500).run()
    assert not app.exception and not app.error, (app.exception, app.error)
    model = pruning.load_model(RESNET)
    limit = default_limit("cifar10", str(model.device))  # the sidebar's default for CIFAR-10
    mask = pruning.compute_mask(model, "large_final", 0.9, scope="global")
    plain = pruning.evaluate(model, mask, limit=limit)
    recal = pruning.evaluate(model, mask, limit=limit, bn_recalibrate=500)
    assert metric(app, "Without recalibration") == pytest.approx(plain.accuracy, abs=1e-4)
    assert metric(app, "With recalibration") == pytest.approx(recal.accuracy, abs=1e-4)
    assert recal.accuracy > plain.accuracy + 0.2  # 90% pruned: the dense statistics are far off
    assert "500 class-stratified training images" in " ".join(c.value for c in app.caption)


@needs_cifar
def test_disabled_with_a_reason_without_training_data(monkeypatch):
    test_only = data.available
    monkeypatch.setattr(data, "available", lambda name, split="test": split != "train" and test_only(name, split))
    app = start(RESNET)
    toggle = app.sidebar.toggle(key="bn_recalibrate")
    assert toggle.disabled
    assert any("needs the cifar10 training split" in c.value and data.ENV in c.value for c in app.sidebar.caption)


@needs_cifar
def test_the_recalibration_draws_its_three_steps_on_a_progress_bar(monkeypatch):
    from streamlit.delta_generator import DeltaGenerator

    drawn, real = [], DeltaGenerator.progress

    def spy(self, value, text=None):
        drawn.append((round(value, 3), (text or "")[:12]))
        return real(self, value, text=text)

    monkeypatch.setattr(DeltaGenerator, "progress", spy)
    app = start(RESNET)
    app.sidebar.select_slider(key="sparsity_slider").set_value(80.0).run()
    app.sidebar.toggle(key="bn_recalibrate").set_value(True).run()
    assert not app.exception and not app.error, (app.exception, app.error)
    steps = [d for d in drawn if d[1].startswith("Step")]
    assert steps == [(0.0, "Step 1 of 3:"), (0.333, "Step 2 of 3:"), (0.667, "Step 3 of 3:")]
    assert [m for m in app.metric if m.label == "With recalibration"] and not app.get("progress")


@needs_cifar
def test_a_shared_link_carries_the_toggle_and_its_images():
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.query_params.update({"model": RESNET, "bn_recalibrate": "True", "bn_images": "500"})
    app.run()
    assert not app.exception, app.exception
    assert app.sidebar.toggle(key="bn_recalibrate").value and app.sidebar.selectbox(key="bn_images").value == 500
    assert [m for m in app.metric if m.label == "With recalibration"]
    app.sidebar.toggle(key="bn_recalibrate").set_value(False).run()
    assert app.query_params["bn_recalibrate"] == "False"  # the address bar follows, so the link can be shared
    for query, on, images in (({"bn_recalibrate": "on"}, False, None),  # values a control could not take
                              ({"bn_recalibrate": "True", "bn_images": "123"}, True, batchnorm.DEFAULT_IMAGES)):
        app = AppTest.from_file(str(APP), default_timeout=300)
        app.query_params.update({"model": RESNET, **query})
        app.run()
        assert not app.exception, app.exception
        assert app.sidebar.toggle(key="bn_recalibrate").value == on
        if images:
            assert app.sidebar.selectbox(key="bn_images").value == images
