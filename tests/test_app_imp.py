"""The explorer's IMP rounds tab, driven headlessly with AppTest: the table of all rounds against the
shipped run, the slider and step buttons moving the round shown (layer bars, first-layer masks, the
marked point on the curve), Play / Pause, and the message for a model without a shipped run."""

import base64
import json
from pathlib import Path
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning.experiments.imp_table import imp_table

APP = Path(__file__).resolve().parent.parent / "app"
sys.path.insert(0, str(APP))
MODEL = "mnist-lenet300-torch"


def start(model=MODEL, **session):
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=180)
    app.session_state["model"] = model
    app.session_state["tab"] = "IMP rounds"
    for key, value in session.items():
        app.session_state[key] = value
    app.run()
    assert not app.exception, app.exception
    return app


def chart(app, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))


def array(z) -> np.ndarray:
    """A Plotly array from the figure's JSON: a list, or Plotly's typed array {"dtype", "bdata", "shape"}."""
    if isinstance(z, dict):
        shape = [int(n) for n in str(z.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape).astype(float)
    return np.asarray(z, dtype=float)


def shown_round(app, rounds) -> int:
    """The round the bars show, checked against the shipped run's layer sparsity and first-layer mask."""
    r = app.slider(key="imp_round").value
    bars = chart(app, "imp_layers")["data"][0]
    layers = rounds[r]["layer_sparsity"]
    assert bars["y"] == list(layers)[::-1]
    assert bars["x"] == pytest.approx(list(layers.values())[::-1])
    panels = [t for t in chart(app, "imp_first")["data"] if t["type"] == "heatmap"]
    first = next(iter(rounds[r]["mask"]))
    coverage = array(panels[0]["z"])[::-1]  # the first panel: share of units keeping each pixel
    assert coverage == pytest.approx(rounds[r]["mask"][first].mean(axis=0).reshape(28, 28))
    curve = chart(app, "imp_curve")
    star = [t for t in curve["data"] if t.get("marker", {}).get("symbol") == "star"]
    if r:
        assert star[0]["x"] == pytest.approx([100 * (1 - rounds[r]["sparsity"])])
    return r


def test_table_shows_every_shipped_round():
    rounds = pruning.load_imp_run(MODEL)
    app = start()
    table = next(d.value for d in app.dataframe if "ticket accuracy" in d.value.columns)
    rows = imp_table(rounds)
    assert list(table["round"]) == [r["round"] for r in rounds]
    assert list(table["% remaining"]) == [round(100 * (1 - r["sparsity"]), 1) for r in rounds]
    assert list(table["ticket accuracy"]) == [f"{r['ticket']['early_stop']['test_accuracy']:.2%}" for r in rounds]
    assert list(table["random accuracy"])[1:] == [f"{r['random']['early_stop']['test_accuracy']:.2%}"
                                                  for r in rounds[1:]]
    assert table["random accuracy"][0] == "—"  # the dense round has no control
    assert [int(t.split()[0]) for t in table["early stop: ticket"]] == [r["ticket_early_stop"] for r in rows]
    censored = [r["round"] for r in rows if r["random_censored"]]
    assert all("censored" in table["early stop: random"][k] for k in censored)
    assert not app.error


def test_slider_and_step_buttons_change_the_round():
    rounds = pruning.load_imp_run(MODEL)
    app = start()
    assert shown_round(app, rounds) == 0
    assert app.button(key="imp_back").disabled
    app.button(key="imp_forward").click().run()
    assert shown_round(app, rounds) == 1
    app.slider(key="imp_round").set_value(7).run()
    assert shown_round(app, rounds) == 7
    app.button(key="imp_back").click().run()
    assert shown_round(app, rounds) == 6
    last = len(rounds) - 1
    app.slider(key="imp_round").set_value(last).run()
    assert shown_round(app, rounds) == last
    assert app.button(key="imp_forward").disabled
    assert any(f"Round {last} of {last}" in m.value for m in app.markdown)
    assert not app.exception and not app.error


def test_play_and_pause():
    app = start()
    assert app.button(key="imp_play").label == "Play"
    app.button(key="imp_play").click().run()
    assert app.session_state["imp_playing"] and app.button(key="imp_play").label == "Pause"
    app.button(key="imp_play").click().run()
    assert not app.session_state["imp_playing"] and app.button(key="imp_play").label == "Play"
    app.slider(key="imp_round").set_value(len(pruning.load_imp_run(MODEL)) - 1).run()  # Play on the last round
    app.button(key="imp_play").click().run()  # starts from round 0
    assert app.slider(key="imp_round").value == 0 and app.session_state["imp_playing"]
    app.button(key="imp_forward").click().run()  # stepping stops the player
    assert not app.session_state["imp_playing"] and app.slider(key="imp_round").value == 1
    assert not app.exception


def test_play_advances_one_round_per_tick_and_stops_on_the_last():
    import imp_ui

    r, playing, seen = 0, True, []
    while playing:
        r, playing = imp_ui.tick(r, 10)
        seen.append(r)
    assert seen == list(range(1, 11))
    assert imp_ui.tick(9, 10) == (10, False) and imp_ui.tick(10, 10) == (10, False)


def test_model_without_a_run_shows_which_have_one(tmp_path, monkeypatch):
    import shutil

    from pruning.experiments import imp_runs

    for name in ("mnist-lenet300-torch", "fmnist-lenet300-torch"):  # a zoo where only these two have runs
        shutil.copytree(imp_runs.directory(name), tmp_path / name / "imp")
    monkeypatch.setattr(imp_runs, "ZOO", tmp_path)
    app = start("mnist-conv-keras")
    text = " ".join(i.value for i in app.info)
    assert "ship for `fmnist-lenet300-torch`, `mnist-lenet300-torch`:" in text and "Retrain" in text
    assert not app.slider and not any(c.proto.id.endswith("-imp_curve") for c in app.get("plotly_chart"))
    assert not app.exception


def test_tour_points_to_the_tab_with_the_shipped_numbers():
    app = AppTest.from_file(str(APP / "tour.py"), default_timeout=180)
    app.session_state["tour_model"] = MODEL
    app.run()
    assert not app.exception, app.exception
    last = imp_table(pruning.load_imp_run(MODEL))[-1]
    text = next(m.value for m in app.markdown if "IMP rounds" in m.value)
    assert f"{last['ticket_accuracy']:.2%}" in text and f"{last['random_accuracy']:.2%}" in text


def test_curve_and_its_text_follow_the_round():
    import charts

    rows = imp_table(pruning.load_imp_run(MODEL))
    fig = charts.imp_rounds(rows, 4)
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers" and t.yaxis == "y"}
    ticket, random = lines[charts.IMP_SIDES["ticket"][0]], lines[charts.IMP_SIDES["random"][0]]
    assert list(ticket.y) == [r["ticket_accuracy"] for r in rows]
    assert list(random.y) == [r["random_accuracy"] for r in rows[1:]]  # round 0 has no control
    assert ticket.line.dash != random.line.dash and fig.layout.xaxis.type == "log"
    text = charts.describe_imp_rounds(rows, 4)
    assert text.startswith(f"Round 4 of {len(rows) - 1}, {rows[4]['remaining']:.1%}")
    assert f"{rows[4]['ticket_accuracy']:.2%} at iteration {rows[4]['ticket_early_stop']}" in text
    assert "none (dense network)" in charts.describe_imp_rounds(rows, 0)


def test_a_conv_net_run_plays_too():
    """LeNet-5's shipped run (convolutions first): the tab shows its rounds and steps through them."""
    rounds = pruning.load_imp_run("mnist-lenet5-torch")
    app = start("mnist-lenet5-torch")
    assert app.slider(key="imp_round").max == len(rounds) - 1
    app.button(key="imp_forward").click().run()
    assert not app.exception, app.exception
    assert app.slider(key="imp_round").value == 1
    bars = chart(app, "imp_layers")["data"][0]
    assert bars["x"] == pytest.approx(list(rounds[1]["layer_sparsity"].values())[::-1])


def test_a_keras_run_plays_too():
    """The Keras twin's shipped run (kernels stored (in, out)): its rounds, bars and first-layer masks."""
    rounds = pruning.load_imp_run("mnist-lenet300-keras")
    app = start("mnist-lenet300-keras", imp_round=3)
    assert not app.exception, app.exception
    bars = chart(app, "imp_layers")["data"][0]
    assert bars["x"] == pytest.approx(list(rounds[3]["layer_sparsity"].values())[::-1])
    panels = [t for t in chart(app, "imp_first")["data"] if t["type"] == "heatmap"]
    coverage = array(panels[0]["z"])[::-1]  # share of units keeping each pixel: fc1/kernel is (784 pixels, 300 units)
    assert coverage == pytest.approx(rounds[3]["mask"]["fc1/kernel"].mean(axis=1).reshape(28, 28))
