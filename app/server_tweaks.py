"""Streamlit's after-run hook, adjusted for a server many sessions share.

Importing this module also bounds glibc's malloc for the server (``malloc.py``: at most 2 arenas,
and free memory handed back to the OS after a run, at most once every 10 s).

After every script run of every session, Streamlit calls
``keras.backend.clear_session()`` once Keras is imported
(``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``, a guard for apps that
build a new Keras model per run). ``clear_session`` runs a full ``gc.collect()``: with PyTorch and
TensorFlow loaded that is a large share of a rerun's CPU, paid by every page of every session as
soon as one visitor has chosen a Keras model. The explorer's Keras models are loaded once and never
mutated, so here that call only costs CPU; it is skipped (matplotlib's figures are still closed).
Importing this module applies it once per process; if a Streamlit release moves the hook, nothing is
changed.
"""

import sys

from streamlit.runtime.scriptrunner import script_runner

import malloc


def _clean_problem_modules() -> None:
    malloc.trim_now_and_then()
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: S110  as Streamlit's own hook: never fail a run for this
            pass


malloc.limit_arenas()
if hasattr(script_runner, "_clean_problem_modules"):
    script_runner._clean_problem_modules = _clean_problem_modules
