"""Turns (app/turns.py): a class's pages compute in line, as many at once as the server has cores;
where the server lets headlines go first, a page that has not shown its accuracy yet goes before the
rest of the pages ahead of it (for a bounded time); and the long tasks a student starts (scan,
retraining, Measure, recalibration, an upload's check) step out of line so that the other pages go
on meanwhile."""

import os
from pathlib import Path
import sys
import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

import pruning
from pruning import data

APP = Path(__file__).resolve().parent.parent / "app"
sys.path.insert(0, str(APP))
import turns  # noqa: E402

MODEL = "mnist-lenet300-torch"
WAIT = 5  # seconds a thread may take to reach the next step


@pytest.fixture
def one_turn(monkeypatch):
    """One page at a time, as on a one-core server."""
    monkeypatch.setattr(turns, "TURNS", 1)
    monkeypatch.setattr(turns, "_turns", turns.Line(1))
    return turns._turns


def free(turn) -> bool:
    """Whether a page could take the turn now."""
    if turn.acquire(blocking=False):
        turn.release()
        return True
    return False


def in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_the_second_page_waits_until_the_first_is_done(one_turn):
    first_in, first_go, second_in = threading.Event(), threading.Event(), threading.Event()

    def first():
        with turns.turn():
            first_in.set()
            first_go.wait(WAIT)

    def second():
        with turns.turn():
            second_in.set()

    a = in_thread(first)
    assert first_in.wait(WAIT)
    b = in_thread(second)
    assert not second_in.wait(0.3)  # in line
    first_go.set()
    assert second_in.wait(WAIT)
    a.join(WAIT), b.join(WAIT)
    assert free(one_turn)


def test_a_long_task_lets_the_next_page_in_and_then_waits_its_turn(one_turn):
    in_long, long_go, after_long = threading.Event(), threading.Event(), threading.Event()
    second_in, second_go = threading.Event(), threading.Event()

    def first():
        with turns.turn():
            with turns.aside():
                in_long.set()
                long_go.wait(WAIT)
            after_long.set()

    def second():
        with turns.turn():
            second_in.set()
            second_go.wait(WAIT)

    a = in_thread(first)
    assert in_long.wait(WAIT)
    b = in_thread(second)
    assert second_in.wait(WAIT)  # the long task gave its turn away
    long_go.set()
    assert not after_long.wait(0.3)  # back in line while the second page computes
    second_go.set()
    assert after_long.wait(WAIT)
    a.join(WAIT), b.join(WAIT)
    assert free(one_turn)


def queued(line: turns.Line, n: int):
    """Wait until n threads stand in line."""
    deadline = time.monotonic() + WAIT
    while len(line._waiting) != n:
        assert time.monotonic() < deadline, f"{len(line._waiting)} in line, not {n}"
        time.sleep(0.01)


def test_headlines_go_before_the_rest_of_the_pages_ahead(one_turn, monkeypatch):
    monkeypatch.setattr(turns, "HEADLINE_LEAD", 2)
    order, a_in = [], threading.Event()

    def a():
        with turns.turn():
            a_in.set()
            queued(one_turn, 1)  # b waits in line behind a
            order.append("a headline")
            turns.headline_shown()  # b has shown nothing yet: it goes first
            order.append("a rest")

    def b():
        with turns.turn():
            order.append("b headline")
            turns.headline_shown()  # a arrived first and is back in line: a goes on
            order.append("b rest")

    x = in_thread(a)
    assert a_in.wait(WAIT)
    y = in_thread(b)
    x.join(WAIT), y.join(WAIT)
    assert order == ["a headline", "b headline", "a rest", "b rest"]
    assert free(one_turn)


def test_the_lead_is_bounded_so_every_page_finishes(one_turn, monkeypatch):
    """The rest of a page waits as if it had arrived the lead later: a page that arrives within the
    lead goes before it, one that arrives after that goes behind it (a fake clock)."""
    clock = [100.0]
    monkeypatch.setattr(turns, "monotonic", lambda: clock[0])
    order = []

    def waits(name: str, later: float = 0.0):
        def run():
            one_turn.acquire(later=later)
            order.append(name)
            one_turn.release()
        return in_thread(run)

    one_turn.acquire()  # a page computes meanwhile
    rest = waits("rest of a page", later=0.5)  # at 100.0, placed at 100.5
    queued(one_turn, 1)
    clock[0] = 100.1
    early = waits("page within the lead")
    queued(one_turn, 2)
    clock[0] = 100.7
    late = waits("page past the lead")
    queued(one_turn, 3)
    one_turn.release()
    for t in (rest, early, late):
        t.join(WAIT)
    assert order == ["page within the lead", "rest of a page", "page past the lead"]
    assert free(one_turn)


def test_strictly_in_order_with_no_lead(one_turn, monkeypatch):
    monkeypatch.setattr(turns, "HEADLINE_LEAD", 0)
    entered = threading.Event()

    def other():
        one_turn.acquire()
        entered.set()
        one_turn.release()

    with turns.turn():
        t = in_thread(other)
        queued(one_turn, 1)
        turns.headline_shown()  # keeps the turn: the page waiting in line does not get in
        assert not entered.is_set()
    t.join(WAIT)
    assert entered.is_set()
    assert free(one_turn)


def test_a_line_of_several_places():
    line, inside = turns.Line(2), threading.Event()
    assert line.acquire(blocking=False) and line.acquire(blocking=False)
    assert not line.acquire(blocking=False)  # full

    def third():
        line.acquire()
        inside.set()

    in_thread(third)
    queued(line, 1)
    assert not inside.is_set()
    line.release()
    assert inside.wait(WAIT)
    line.release(), line.release()
    with pytest.raises(ValueError):
        line.release()  # more releases than acquisitions


def test_a_task_aside_after_the_headline_queues_again_with_the_lead(one_turn, monkeypatch):
    monkeypatch.setattr(turns, "HEADLINE_LEAD", 2)
    waits, real = [], one_turn.acquire

    def acquire(blocking=True, later=0.0):
        if blocking:
            waits.append(later)
        return real(blocking, later)

    monkeypatch.setattr(one_turn, "acquire", acquire)
    with turns.turn():
        turns.headline_shown()
        with turns.aside():
            assert free(one_turn)
    assert waits == [0.0, 2, 2]  # the page, the rest after its headline, back from the task aside
    assert free(one_turn)


def test_an_interrupted_page_gives_its_turn_back(one_turn):
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException  # how Streamlit stops a run

    with pytest.raises(RerunException):
        with turns.turn():
            with turns.aside():
                raise RerunException(None)
    assert free(one_turn)


def test_nesting_and_a_stray_aside_are_harmless(one_turn):
    with turns.aside():  # no turn held: nothing to give away
        assert free(one_turn)
    with turns.turn():
        with turns.turn():  # the same thread: no second turn, no deadlock
            assert not free(one_turn)
        assert not free(one_turn)
    assert free(one_turn)


def test_zero_turns_means_no_line(monkeypatch, one_turn):
    monkeypatch.setattr(turns, "TURNS", 0)
    with turns.turn():
        assert free(one_turn)


# --- in the explorer (AppTest): the page computes in its turn, the long tasks outside it ---------

def page(tab: str | None = None, model: str = MODEL) -> AppTest:
    app = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=300)
    app.session_state["model"] = model
    if tab:
        app.session_state["tab"] = tab
    return app


def spy(monkeypatch, owner, name: str, seen: list, turn):
    """Wrap ``owner.name`` to record whether the turn was free while it ran."""
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        seen.append(free(turn))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize("lead", [0, 2])
def test_the_page_computes_in_its_turn(monkeypatch, one_turn, lead):
    import sections

    monkeypatch.setattr(turns, "HEADLINE_LEAD", lead)  # 2: the turn is given up and taken again

    import state

    seen, shown, controls = [], [], []
    spy(monkeypatch, sections, "metrics", seen, one_turn)  # drawn on every run (evaluations may be cached)
    spy(monkeypatch, turns, "headline_shown", shown, one_turn)
    spy(monkeypatch, state, "control", controls, one_turn)  # the controls, after the headline
    app = page()
    app.run()
    assert not app.exception, app.exception
    assert seen == [False]  # the page's metrics were computed in the turn
    assert shown == [False]  # the headline let the waiting pages go first, once
    assert controls and not any(controls)  # and the rest of the page was computed in a turn again
    assert app.metric[0].label.startswith("Accuracy")
    assert free(one_turn)  # and the run gave it back


def test_a_sensitivity_scan_steps_aside(monkeypatch, one_turn):
    import state

    seen = []
    monkeypatch.setattr(state, "_shipped_table", lambda name: None)
    state._scanned().clear()
    spy(monkeypatch, pruning, "sensitivity", seen, one_turn)
    app = page("Sensitivity")
    app.run()
    app.button(key="sens_run").click().run()
    assert not app.exception, app.exception
    assert seen == [True]
    state._scanned().clear()


def test_measuring_the_exports_steps_aside(monkeypatch, one_turn):
    import export_ui

    seen = []
    spy(monkeypatch, export_ui, "_measured", seen, one_turn)
    app = page("Export")
    app.run()
    app.sidebar.select_slider(key="sparsity_slider").set_value(70.0).run()
    app.button(key="measure_exports").click().run()
    assert not app.exception, app.exception
    assert seen and all(seen)


def test_checking_an_upload_steps_aside(monkeypatch, one_turn):
    import controls

    seen = []
    spy(monkeypatch, controls, "register_upload", seen, one_turn)
    app = page()
    app.run()
    zoo = Path(pruning.__file__).resolve().parent.parent / "pretrained" / MODEL
    app.sidebar.file_uploader(key="upload_final").upload("turn.safetensors", (zoo / "final.safetensors").read_bytes())
    app.run()
    assert not app.exception, app.exception
    assert seen == [True]


@pytest.mark.skipif(not data.available("mnist", "train"), reason="needs the MNIST training split: set PRUNING_DATA_DIR")
def test_a_live_retraining_steps_aside(monkeypatch, one_turn):
    import retrain_ui

    seen = []
    spy(monkeypatch, retrain_ui, "retrain", seen, one_turn)
    app = page("Retrain")
    app.run()
    app.multiselect(key="rt_starts").set_value(["init"])
    app.number_input(key="rt_epochs").set_value(1)
    app.selectbox(key="rt_limit_mnist").set_value(600)
    app.button(key="rt_go").click().run()
    assert not app.exception, app.exception
    assert seen == [True]


@pytest.mark.skipif(not data.available("cifar10", "train") or not os.environ.get("PRUNING_DATA_DIR"),
                    reason="needs the CIFAR-10 training split: set PRUNING_DATA_DIR")
def test_batch_norm_recalibration_steps_aside(monkeypatch, one_turn):
    from pruning.core import batchnorm

    seen = []
    spy(monkeypatch, batchnorm, "statistics", seen, one_turn)
    app = page(model="cifar10-resnet20-torch")
    app.run()
    app.sidebar.select_slider(key="sparsity_slider").set_value(75.0).run()  # a setting no other test recalibrates
    app.sidebar.toggle(key="bn_recalibrate").set_value(True).run()
    assert not app.exception, app.exception
    assert seen and all(seen)
