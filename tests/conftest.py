"""Fixtures shared by several test files."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP_SCRIPT = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"


@pytest.fixture
def at():
    """The explorer (AppTest) on its default page with mnist-lenet300-torch, after its first run."""
    app = AppTest.from_file(str(APP_SCRIPT), default_timeout=180)
    app.session_state["model"] = "mnist-lenet300-torch"
    app.run()
    assert not app.exception, app.exception
    return app
