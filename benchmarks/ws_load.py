"""A load generator that speaks Streamlit's own websocket protocol, as the browser does.

Each simulated visitor opens ``/_stcore/stream`` (subprotocol ``streamlit``), asks for the first
script run with a ``BackMsg.rerun_script`` (its ``ClientState`` carries the address bar's query,
e.g. ``model=cifar10-conv4-torch``), reads the ``ForwardMsg`` stream (deltas, ``script_finished``)
and then, for every move, sends a ``rerun_script`` whose ``WidgetStates`` hold the sparsity
control's new value: the exact-% number box (``double_value``), or the slider itself
(``string_array_value``, its formatted stop such as ``"90.1%"``).  A move's latency is the time from
sending it to the arrival of the headline accuracy of the run it started; its full run ends with
``script_finished``.  Like the browser, a visitor tells the server which large cacheable messages it
already holds (``cached_message_hashes``), so unchanged figures are sent as references.

No session may ever be shown another's result: every move goes to a setting not seen before by
the server, each shown accuracy is compared with the engine's own value for that session's
setting (computed before the run) and the page's header caption must echo the session's sparsity.

    python benchmarks/ws_load.py --url http://127.0.0.1:8501 --sessions 5 --seconds 30

With no ``--url`` it starts ``streamlit run app`` itself (``--server-cpus``) and pins itself to
``--client-cpus`` (``taskset``), so that the generator does not take the server's CPU.
"""

import argparse
import asyncio
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
HEADLINE = "Accuracy · "  # the first metric's label: "Accuracy · trained θf"
NUMBER, SLIDER = "exact %", "Prune (% of weights)"
TIMEOUT_S = 90.0
PRUNED = re.compile(r"· (\w+) scope · .* · ([\d.]+)% pruned ·")  # the header caption echoes the settings


@dataclass
class Run:
    """What one script run showed."""

    headline: str | None = None  # the headline accuracy, e.g. "97.12%"
    headline_at: float | None = None  # perf_counter() when it arrived
    caption_pct: float | None = None  # the sparsity the header caption shows, in %
    scope: str | None = None  # the scope it shows
    finished_at: float | None = None
    errors: list = field(default_factory=list)  # exception elements and error boxes on the page


class Visitor:
    """One browser tab's worth of protocol: a websocket, the widget ids it has seen, the current run."""

    def __init__(self, url: str, query: str = ""):
        self.ws_url = url.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"
        self.origin, self.query = url.rstrip("/"), query
        self.widgets, self.hashes = {}, set()  # label -> widget id; hashes of cacheable messages held
        self.page_hash = ""
        self.signalled = False  # the page asked for a second run (app/first_paint.py)
        self.run = Run()
        self.changed = asyncio.Event()  # set on every message of interest
        self.ws = self.reader = None

    async def open(self) -> Run:
        self.ws = await connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin, max_size=None,
                                open_timeout=TIMEOUT_S, ping_interval=None)
        self.reader = asyncio.create_task(self._read())
        first = await self.rerun([])
        if self.signalled:  # as a browser does once the first page is on screen: the run that draws the charts
            first.errors.extend((await self.rerun([])).errors)
        return first

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()

    async def _read(self):
        async for raw in self.ws:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            self._on(msg, time.perf_counter())

    def _on(self, msg: ForwardMsg, now: float):
        if msg.metadata.cacheable and msg.hash:
            self.hashes.add(msg.hash)
        kind = msg.WhichOneof("type")
        if kind == "new_session" and msg.new_session.page_script_hash:
            self.page_hash = msg.new_session.page_script_hash
        elif kind == "navigation" and msg.navigation.page_script_hash:
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "script_finished":
            self.run.finished_at = now
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element, now)
        self.changed.set()

    def _element(self, el, now: float):
        kind = el.WhichOneof("type")
        if kind == "metric" and el.metric.label.startswith(HEADLINE) and self.run.headline is None:
            self.run.headline, self.run.headline_at = el.metric.body, now
        elif kind == "markdown" and self.run.caption_pct is None and PRUNED.search(el.markdown.body):
            found = PRUNED.search(el.markdown.body)
            self.run.scope, self.run.caption_pct = found[1], float(found[2])
        elif kind in ("number_input", "slider"):
            self.widgets[getattr(el, kind).label] = getattr(el, kind).id
        elif kind == "bidi_component":  # app/first_paint.py's signal: a browser asks for the next run
            self.signalled = True
        elif kind == "exception":
            self.run.errors.append(f"{el.exception.type}: {el.exception.message}"[:200])
        elif kind == "alert" and el.alert.format == 1:  # st.error
            self.run.errors.append(el.alert.body[:200])

    async def rerun(self, widgets: list) -> Run:
        """Send one rerun with ``widgets`` (WidgetState list); returns the run once it finished."""
        self.run = Run()
        state = ClientState(query_string=self.query, page_script_hash=self.page_hash,
                            widget_states=WidgetStates(widgets=widgets), cached_message_hashes=sorted(self.hashes),
                            context_info=ContextInfo(timezone="UTC", timezone_offset=0, locale="en-US",
                                                     url=self.origin + "/?" + self.query))
        await self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        deadline = time.perf_counter() + TIMEOUT_S
        while self.run.finished_at is None:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.perf_counter()))
        return self.run

    def sparsity_widget(self, pct: float, slider: bool = False) -> WidgetState:
        """The sparsity control at ``pct`` %: the slider (one of its stops) or the exact-% box."""
        if slider:
            state = WidgetState(id=self.widgets[SLIDER])
            state.string_array_value.data.append(f"{pct:g}%")
            return state
        return WidgetState(id=self.widgets[NUMBER], double_value=pct)


def engine_expectation(model: str, scope: str):
    """pct -> the headline the page must show for the default criterion at ``pct`` % (as formatted there)."""
    sys.path.insert(0, str(ROOT))
    import pruning
    from pruning.core.readouts import default_limit

    m = pruning.load_model(model)
    limit = default_limit(m.dataset, str(m.device))

    def expect(pct: float) -> str:
        mask = pruning.compute_mask(m, "large_final", round(pct / 100, 6), scope=scope)
        return f"{pruning.evaluate(m, mask, limit=limit).accuracy:.2%}"
    return expect


def plan(sessions: int, moves: int, low: float = 50.0, high: float = 99.5, skip=frozenset()) -> list:
    """plan[i][j]: session i's sparsity (%) at move j, all different (0.01 steps), spread evenly over
    [low, high] and shuffled, so that the sessions move through the whole range at once; never one
    of ``skip``."""
    stops = [v for v in (round(low + k / 100, 2) for k in range(int(round((high - low) * 100)) + 1)) if v not in skip]
    count = sessions * moves
    if count > len(stops):
        raise ValueError(f"{count} moves need more than the {len(stops)} settings in {low}-{high}%")
    values = [stops[k] for k in np.linspace(0, len(stops) - 1, count).round().astype(int)]
    random.Random(0).shuffle(values)
    return [values[i * moves:(i + 1) * moves] for i in range(sessions)]


def percentiles(xs: list) -> dict:
    if not xs:
        return {"p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(xs, [50, 95]).tolist()
    return {"p50": p50, "p95": p95, "max": float(max(xs))}


async def load(url: str, model: str, sessions: int, seconds: float, think=(3.0, 5.0), expect=None,
               scope: str | None = None, slider: bool = False, start_spread: float = 3.0) -> dict:
    """``sessions`` visitors of ``model``, each moving the sparsity control to a new value every
    ``think`` seconds (uniform) for ``seconds``; latencies, errors and mix-ups.  ``expect(pct)``: the
    headline due at ``pct`` % (default: the engine's, computed before the run; None: only the
    sparsity the page echoes is checked)."""
    query = urllib.parse.urlencode({"model": model})
    moves = int(seconds / think[0]) + 1
    latencies, full_runs, problems, mixups, opened = [], [], [], [], []
    first = Visitor(url, query)  # learns the scope the page starts with, so that expectations match it
    run = await first.open()
    start_pct, scope = run.caption_pct, scope or run.scope
    await first.close()
    schedule = plan(sessions, moves, skip={start_pct})
    if expect is None:
        expect = engine_expectation(model, scope)
    wanted = {v: expect(v) for row in schedule for v in row}  # before any move: not during the timed run
    stop_at = time.perf_counter() + seconds + start_spread

    async def visitor(i: int):
        rng = random.Random(i)
        v = Visitor(url, query)
        try:
            await asyncio.sleep(rng.uniform(0, start_spread))
            t0 = time.perf_counter()
            run = await v.open()
            opened.append(time.perf_counter() - t0)
            problems.extend(f"session {i} first page: {e}" for e in run.errors)
            for value in schedule[i]:
                due = time.perf_counter() + rng.uniform(*think)
                if due > stop_at:
                    break
                t0 = time.perf_counter()
                run = await v.rerun([v.sparsity_widget(value, slider)])
                full_runs.append(run.finished_at - t0)
                if run.headline_at is not None:
                    latencies.append(run.headline_at - t0)
                problems.extend(f"session {i} at {value}%: {e}" for e in run.errors)
                if (wanted[value] is not None and run.headline != wanted[value]) or run.caption_pct != value:
                    mixups.append(f"session {i} set {value}% (engine: {wanted[value]}), shown {run.headline} "
                                  f"at {run.caption_pct}%")
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
        except (Exception, asyncio.TimeoutError) as exc:  # one failed visitor is reported, the others go on
            problems.append(f"session {i}: {type(exc).__name__}: {str(exc)[:160]}")
        finally:
            await v.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(visitor(i) for i in range(sessions)))
    return {"model": model, "sessions": sessions, "seconds": seconds, "think_seconds": list(think),
            "scope": scope, "control": "slider" if slider else "number box", "moves": len(latencies),
            "wall_seconds": time.perf_counter() - t0, **percentiles(latencies),
            "full_run": percentiles(full_runs), "first_page": percentiles(opened),
            "errors": problems, "mixups": mixups, "isolation_ok": not mixups}


async def cpu_per_move(url: str, pid: int, model: str, moves: int, expect=None) -> dict:
    """Server CPU seconds (user + system of process ``pid``) per slider move: one visitor of ``model``
    on the default page and tab moves the slider ``moves`` stops up from 50%, every stop a setting not
    seen before; each shown accuracy is checked against the engine's."""
    sys.path.insert(0, str(ROOT / "app"))
    from controls import GRID  # the slider's stops, in %

    v = Visitor(url, urllib.parse.urlencode({"model": model}))
    try:
        run = await v.open()
        stops = [p for p in GRID if p > 50.0][:moves + 1]
        expect = expect or engine_expectation(model, run.scope)
        # in a thread: the websocket stays served while the engine evaluates (a loop blocked for many
        # seconds misses the server's pings, and the server may drop the connection)
        wanted = await asyncio.to_thread(lambda: {p: expect(p) for p in stops})
        await v.rerun([v.sparsity_widget(stops[0], slider=True)])  # warm: the ranking is sorted once per setting
        before, wall, wrong = cpu_seconds(pid), [], []
        for p in stops[1:]:
            t0 = time.perf_counter()
            run = await v.rerun([v.sparsity_widget(p, slider=True)])
            wall.append(run.finished_at - t0)
            if run.headline != wanted[p] or run.caption_pct != p or run.errors:
                wrong.append(f"{p}%: shown {run.headline} at {run.caption_pct}%, engine {wanted[p]} {run.errors}")
        cpu = (cpu_seconds(pid) - before) / moves
    finally:
        await v.close()
    return {"model": model, "moves": moves, "cpu_seconds_per_move": cpu, "wall_seconds_median": float(np.median(wall)),
            "wrong": wrong}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The environment the deployments start the server with (deploy/Dockerfile, Procfile, deploy/replicas.sh)
DEPLOYED = {"MALLOC_ARENA_MAX": "1"}


def start_server(cpus: str | None = None, env: dict | None = None):
    """``streamlit run app`` on 127.0.0.1 (pinned to ``cpus`` with taskset), started as the deployments
    start it (``DEPLOYED``); (process, url, seconds to the health check)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--global.developmentMode", "false"]  # else on when streamlit is not in site-packages, and then
    # --server.port is refused (seen on the GPU machine, where the wheels were unpacked with pip --target)
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **DEPLOYED, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url, start
        except OSError as exc:
            if time.perf_counter() - start > 120 or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("streamlit did not start") from exc
            time.sleep(0.05)


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def pin(cpus: str | None):
    """Pin this process to ``cpus`` ("1", "2-3"), away from the server's."""
    if cpus:
        chosen = set()
        for part in cpus.split(","):
            lo, _, hi = part.partition("-")
            chosen.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, chosen)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return {k: int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running explorer (default: start one)")
    ap.add_argument("--model", default="mnist-lenet300-torch")
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--slider", action="store_true", help="move the slider, not the exact-%% box")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    args = ap.parse_args()
    pin(args.client_cpus)
    proc, url = None, args.url
    if url is None:
        proc, url, _ = start_server(args.server_cpus)
    try:
        out = asyncio.run(load(url, args.model, args.sessions, args.seconds, slider=args.slider))
        if proc is not None:
            out["server_memory"] = memory(proc.pid)
    finally:
        if proc is not None:
            stop_server(proc)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
