"""app/server_tweaks.py: Streamlit's after-run hook no longer clears the Keras session (a full
gc.collect() per rerun of every session); matplotlib's figures are still closed; and app/malloc.py
bounds glibc's malloc (2 arenas, a trim after a run at most every few seconds); the deployments start
the server with one arena."""

from pathlib import Path
import re
import sys
import types

import pytest
from streamlit.runtime.scriptrunner import script_runner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "app"))
import malloc  # noqa: E402
import server_tweaks  # noqa: E402, F401


def test_after_run_hook_keeps_keras_session(monkeypatch):
    calls = []
    keras = types.SimpleNamespace(backend=types.SimpleNamespace(clear_session=lambda: calls.append("keras")))
    plt = types.SimpleNamespace(close=lambda which: calls.append(f"plt {which}"))
    monkeypatch.setitem(sys.modules, "keras", keras)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    script_runner._clean_problem_modules()  # looked up by name when a run ends, as Streamlit does
    assert calls == ["plt all"]



def rss_mb() -> float:
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmRSS"].split()[0]) / 1024


@pytest.mark.skipif(malloc.LIBC is None, reason="glibc only")
def test_after_run_hook_trims_malloc_at_most_every_few_seconds(monkeypatch):
    trims = []
    monkeypatch.setattr(malloc, "LIBC", types.SimpleNamespace(malloc_trim=lambda pad: trims.append(pad)))
    monkeypatch.setattr(malloc, "_last_trim", float("-inf"))
    assert malloc.trim_now_and_then(now=100.0) and trims == [0]
    assert not malloc.trim_now_and_then(now=100.0 + malloc.TRIM_EVERY / 2)
    assert malloc.trim_now_and_then(now=100.0 + malloc.TRIM_EVERY) and trims == [0, 0]
    monkeypatch.setattr(malloc, "_last_trim", float("-inf"))
    script_runner._clean_problem_modules()  # the end of a script run
    assert trims == [0, 0, 0]


@pytest.mark.skipif(malloc.LIBC is None, reason="glibc only")
def test_an_explicit_malloc_arena_max_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not malloc.limit_arenas()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert malloc.limit_arenas()


@pytest.mark.skipif(malloc.LIBC is None or not Path("/proc/self/status").exists(), reason="glibc on Linux only")
def test_trimming_hands_freed_memory_back():
    """200 MB in 100 kB blocks (under malloc's mmap threshold, so from the heap), freed below a block
    still in use: the heap cannot shrink from its top, and the pages stay resident until a trim."""
    blocks = [bytearray(100_000) for _ in range(2000)]
    fence = bytearray(1000)  # noqa: F841  kept alive above the freed blocks
    before = rss_mb()
    del blocks
    freed = rss_mb()
    malloc.LIBC.malloc_trim(0)
    trimmed = rss_mb()
    assert before - trimmed > 100, (before, freed, trimmed)


def test_every_deployment_starts_the_server_with_one_malloc_arena():
    """glibc reads MALLOC_ARENA_MAX only at start (see app/malloc.py): the container image, the
    Procfile, the replicas script and the benchmarks' server all set it the same way."""
    assert 'DEPLOYED = {"MALLOC_ARENA_MAX": "1"}' in (ROOT / "benchmarks" / "ws_load.py").read_text()
    assert re.search(r"^ENV .*\bMALLOC_ARENA_MAX=1\b", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert (ROOT / "Procfile").read_text().startswith("web: MALLOC_ARENA_MAX=1 streamlit run app ")
    assert "export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-1}" in (ROOT / "deploy" / "replicas.sh").read_text()
