"""The explorer's learned_supermask criterion, driven headlessly with AppTest: offered only for
models that ship learned scores, its page numbers equal the shipped masks' recorded accuracies,
and the sidebar says which trained density's scores are used."""


import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning import data
from pruning.core.readouts import default_limit
from pruning.training import supermask_files

from conftest import ROOT, headline

MODEL = "mnist-lenet300-torch"


def test_selecting_the_learned_supermask_shows_the_shipped_mask(at):
    keep = 0.5
    assert keep in supermask_files.trained_keeps(MODEL)
    assert "learned_supermask" in at.sidebar.selectbox(key="strategy").options
    at.sidebar.selectbox(key="strategy").set_value("learned_supermask").run()
    at.sidebar.radio(key="weights").set_value("init").run()
    at.sidebar.number_input(key="sparsity_pct").set_value(round((1 - keep) * 100, 2)).run()
    assert not at.exception, at.exception
    model = pruning.load_model(MODEL)
    shipped = pruning.load_mask(supermask_files.mask_path(MODEL, keep), model)
    assert headline(at) == pytest.approx(shipped.meta["accuracy"], abs=1e-4)  # the full test set, on θ0
    captions = [c.value for c in at.sidebar.caption]
    assert any("this is the mask learned for 50% pruned" in c for c in captions), captions
    assert any("edge-popup" in c for c in captions)


def test_another_sparsity_uses_the_nearest_trained_density_and_says_so(at):
    at.sidebar.selectbox(key="strategy").set_value("learned_supermask").run()
    at.sidebar.number_input(key="sparsity_pct").set_value(89.6).run()
    assert not at.exception, at.exception
    nearest = min(supermask_files.trained_keeps(MODEL), key=lambda k: abs(k - 0.104))
    assert any(f"the nearest, {1 - nearest:.0%} pruned" in c.value and "89.60% is not a trained density" in c.value
               for c in at.sidebar.caption)
    model = pruning.load_model(MODEL)
    expected = pruning.evaluate(model, pruning.compute_mask(model, "learned_supermask", 0.896), "final").accuracy
    assert headline(at) == pytest.approx(expected, abs=1e-4)


def test_only_models_that_ship_scores_offer_it(at):
    at.sidebar.selectbox(key="strategy").set_value("learned_supermask").run()
    at.sidebar.selectbox(key="model").set_value("mnist-lenet5-torch").run()
    assert not at.exception, at.exception
    assert "learned_supermask" not in at.sidebar.selectbox(key="strategy").options
    assert at.sidebar.selectbox(key="strategy").value == "large_final"  # fell back to the first criterion


def test_the_guided_tour_shows_the_shipped_learned_supermask():
    from streamlit.testing.v1 import AppTest

    from conftest import APP_SCRIPT

    app = AppTest.from_file(str(APP_SCRIPT.parent / "tour.py"), default_timeout=180)
    app.session_state["tour_model"] = MODEL
    app.run()
    assert not app.exception, app.exception
    shipped = pruning.load_mask(supermask_files.mask_path(MODEL, 0.5), pruning.load_model(MODEL))
    text = next(m.value for m in app.markdown if "learned_supermask" in m.value)
    assert "50% of the weights pruned" in text and f"{shipped.meta['accuracy']:.2%}" in text


@pytest.mark.skipif(not data.available("cifar10"), reason="needs the CIFAR-10 test split: set PRUNING_DATA_DIR")
def test_the_cifar_conv4_learned_on_a_gpu_is_offered_on_the_page():
    name, keep = "cifar10-conv4-torch", 0.5
    app = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = name
    app.run()
    app.sidebar.selectbox(key="strategy").set_value("learned_supermask").run()
    app.sidebar.radio(key="weights").set_value("init").run()
    app.sidebar.number_input(key="sparsity_pct").set_value(50.0).run()
    assert not app.exception, app.exception
    model = pruning.load_model(name)
    shipped = pruning.load_mask(supermask_files.mask_path(name, keep), model)
    limit = default_limit(model.dataset, str(model.device))  # a CPU page: a class-stratified subset
    assert headline(app) == pytest.approx(pruning.evaluate(model, shipped, "init", limit=limit).accuracy, abs=1e-4)
    assert headline(app) > 0.6  # untrained weights, a learned half of them: far above chance (0.1)
