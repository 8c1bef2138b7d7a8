"""The explorer's "What this pruning buys" section shows the engine's numbers (pruning.models.torch_fast)."""

import os
from pathlib import Path
import subprocess
import sys

from streamlit.testing.v1 import AppTest

import pruning
from pruning.models import torch_fast as fast

APP = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
MODEL = "mnist-lenet300-torch"


def metrics(app) -> dict:
    return {m.label: m.value for m in app.metric}


def test_sizes_and_timing_shown_when_opened():
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = MODEL
    at.run()
    assert not at.exception, at.exception
    assert "Sparse CSR, compressed (.npz)" not in metrics(at)  # collapsed: nothing computed
    at.session_state["perf_open"] = True
    at.run()
    m = pruning.load_model(MODEL)
    mask = pruning.compute_mask(m, "large_final", 0.896, scope="layer")
    sizes = fast.file_bytes(m, mask)
    shown = metrics(at)
    assert shown["File: dense float32"] == f"{sizes['dense'] / 1024 ** 2:,.2f} MB"
    assert shown["Sparse CSR, compressed (.npz)"] == f"{sizes['sparse_npz'] / 1024:,.1f} KB"
    at.toggle(key="perf_time").set_value(True).run()
    assert not at.exception, at.exception
    shown = metrics(at)
    assert shown["Pruned (fast path)"].endswith(" ms") and shown["Speed-up"].endswith("x")
    assert float(shown["Speed-up"].rstrip("x")) > 0


def test_default_page_does_not_import_tensorflow():
    """Cold start: the first page (a PyTorch model) never imports TensorFlow or Keras; they load only
    once a Keras model is chosen.  In a fresh process, since other tests may have imported them here."""
    code = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
            f"at = AppTest.from_file({str(APP)!r}, default_timeout=180)\nat.run()\n"
            "assert not at.exception, at.exception\nassert at.metric[0].value.endswith('%')\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=APP.parent.parent, env={**os.environ, "PYTHONPATH": str(APP.parent.parent)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_slider_move_shows_the_new_accuracy_and_the_controls_n():
    """After a slider move the headline is the engine's full-test accuracy at the new stop; the
    controls (random mask, θ0) are the engine's on a 1,000-image stratified subset, and say so."""
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = MODEL
    at.run()
    at.select_slider(key="sparsity_slider").set_value(95.0).run()
    assert not at.exception, at.exception
    m = pruning.load_model(MODEL)
    scope = at.radio(key="scope").value
    mask = pruning.compute_mask(m, "large_final", 0.95, scope=scope)
    assert at.metric[0].value == f"{pruning.evaluate(m, mask).accuracy:.2%}"
    shown = {x.label: x for x in at.metric}
    control = pruning.evaluate(m, pruning.compute_mask(m, "random", 0.95, scope=scope), limit=1000)
    assert shown["Random mask, same sparsity"].value == f"{control.accuracy:.2%}"
    assert "on 1,000 class-stratified test images" in shown["Random mask, same sparsity"].help
    supermask = pruning.evaluate(m, mask, "init", limit=1000)
    assert shown["initial θ0 (supermask)"].value == f"{supermask.accuracy:.2%}"
    assert any("the controls (random mask, other weight sets) on 1,000 of them" in c.value for c in at.caption)
