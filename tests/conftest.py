"""What several test files share: the explorer under AppTest (the ``at`` fixture), the command
line in-process (``run_cli``), a model over plain arrays (``ArrayModel``), and the explorer in a real
browser (``running_explorer``, the ``server`` fixture, ``explorer_page``).  Test files import the
plain helpers with ``from conftest import ...``; pytest provides the fixtures by name."""

from contextlib import contextmanager
import io
import os
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from streamlit.testing.v1 import AppTest

from pruning.cli import main
from pruning.core.selection import TensorSpec

# AppTests read a page's charts after its first run: draw them there (app/first_paint.py defers them
# to a session's second run; tests/test_first_paint.py and the real servers below keep that on).
os.environ["PRUNING_DEFER_CHARTS"] = "0"

ROOT = Path(__file__).resolve().parent.parent
APP_SCRIPT = ROOT / "app" / "streamlit_app.py"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# --- AppTest -------------------------------------------------------------------------------------

def first_page() -> AppTest:
    """The explorer (AppTest) on its default page with mnist-lenet300-torch, after its first run."""
    app = AppTest.from_file(str(APP_SCRIPT), default_timeout=180)
    app.session_state["model"] = "mnist-lenet300-torch"
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.fixture
def at():
    return first_page()


def headline(app) -> float:
    """The page's headline accuracy (its first metric) as a fraction."""
    return float(app.metric[0].value.rstrip("%")) / 100


# --- the command line and the engine -------------------------------------------------------------

def run_cli(*argv):
    """``python -m pruning *argv`` in this process: (exit code, standard output)."""
    out = io.StringIO()
    try:
        code = main([str(a) for a in argv], out=out)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, out.getvalue()


class ArrayModel:
    """The engine's model interface over plain arrays (no framework): enough to compute masks."""

    framework = "numpy"
    info = {}

    def __init__(self, init: dict, final: dict, name="arrays"):
        self.name = name
        self.specs = {k: TensorSpec(k, v.shape) for k, v in final.items()}
        self.states = {"init": init, "final": final}
        self.output_name = list(final)[-1]

    def weights(self, which="final"):
        return self.states[which]


# --- a real browser ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc, deadline: float, what: str = "streamlit did not start"):
    """Until ``url`` answers Streamlit's health check; fails the test when ``proc`` ends or
    ``deadline`` (time.monotonic()) passes first."""
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(what)
            time.sleep(0.5)


@contextmanager
def running_explorer():
    """``streamlit run app`` on a free loopback port; yields its URL, stops it afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "PRUNING_DEFER_CHARTS": "1"}  # as deployed: a first page's charts follow it
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, time.monotonic() + 90)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def server():
    with running_explorer() as url:
        yield url


@contextmanager
def explorer_page(url: str, height: int):
    """A headless Chromium page showing the explorer at ``url``; the browser closes afterwards."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()
