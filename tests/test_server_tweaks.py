"""app/server_tweaks.py: Streamlit's after-run hook no longer clears the Keras session (a full
gc.collect() per rerun of every session); matplotlib's figures are still closed."""

from pathlib import Path
import sys
import types

from streamlit.runtime.scriptrunner import script_runner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import server_tweaks  # noqa: E402, F401


def test_after_run_hook_keeps_keras_session(monkeypatch):
    calls = []
    keras = types.SimpleNamespace(backend=types.SimpleNamespace(clear_session=lambda: calls.append("keras")))
    plt = types.SimpleNamespace(close=lambda which: calls.append(f"plt {which}"))
    monkeypatch.setitem(sys.modules, "keras", keras)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    script_runner._clean_problem_modules()  # looked up by name when a run ends, as Streamlit does
    assert calls == ["plt all"]

