"""Two replicas of the explorer behind nginx with sticky sessions (deploy/): every request of a
browser session, its websocket, a reconnect and an upload included, reaches one replica, the
sessions are spread over both, and each session sees its own result.

`deploy/replicas.sh 2` starts two `streamlit run app` on 127.0.0.1 and the distribution's nginx,
run as the current user with its own prefix in a temporary directory, on a loopback port.  Headless
Chromium opens four browser contexts (four cookie jars), each at its own sparsity.  nginx's access
log names, for every request, the browser's sticky key (its cookie) and the replica that served it:
that is the evidence, taken on the balancer's side.  Skips where nginx, Chromium or Playwright is
missing.  Bounded by BUDGET_S in all: it used about 22 s of CPU (user + system, every process
included) and took 102-133 s of wall time on the 2-core machine at load average 30.
"""

import csv
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ARGS, CHROMIUM, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
MODEL = "mnist-lenet300-torch"
SPARSITIES = (50, 80, 90, 95)  # % pruned, one per session: rows of the model's sweep.csv
COOKIE = "explorer_replica"  # set by deploy/nginx.conf.template
BUDGET_S = 180  # the whole test, start-up included: every wait gets what is left of it

pytest.importorskip("playwright.sync_api", reason="Playwright is missing (pip install -r requirements.txt)")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.skipif(NGINX is None, reason="nginx is missing (apt-get install nginx)"),
]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            held = []
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free ports")


def expected_accuracy(pct: int) -> str:
    """The accuracy the page shows for ``pct`` % pruned (large_final, layer scope, weights, θf), as
    precomputed on the full test set in the zoo's sweep.csv."""
    with open(ROOT / "pretrained" / MODEL / "sweep.csv") as f:
        for row in csv.DictReader(f):
            if ((row["strategy"], row["scope"], row["granularity"], row["weights"]) ==
                    ("large_final", "layer", "weight", "final") and float(row["sparsity"]) == pct / 100):
                return f"{float(row['accuracy']):.2%}"
    raise LookupError(pct)


def link(url: str, pct: int) -> str:
    return (f"{url}/?model={MODEL}&strategy=large_final&scope=layer&granularity=weight&weights=final"
            f"&sparsity_pct={pct}")


def served(run: Path) -> dict:
    """nginx's access log: sticky key -> [(replica, status, request), ...] in log order."""
    out = {}
    for line in (run / "logs" / "access.log").read_text().splitlines():
        m = re.fullmatch(r'(\S+) (\S+(?:, \S+)*) (\d+) "([^"]*)" \S+', line)
        assert m, f"unexpected access log line: {line}"
        out.setdefault(m[1], []).append((m[2], int(m[3]), m[4]))
    return out


def left_ms(deadline: float) -> float:
    """Milliseconds left before ``deadline`` (time.monotonic()), for a Playwright timeout."""
    return max(1.0, (deadline - time.monotonic()) * 1000)


@pytest.fixture
def balancer(tmp_path):
    """(url, run directory, replica addresses, deadline) of deploy/replicas.sh 2 on loopback ports;
    the deadline (time.monotonic()) is BUDGET_S after the start."""
    test_deadline = time.monotonic() + BUDGET_S
    listen, first = free_ports(1), free_ports(2)
    run = tmp_path / "run"
    env = {**os.environ, "LISTEN": f"127.0.0.1:{listen}", "REPLICA_PORT": str(first), "RUN_DIR": str(run),
           "PYTHON": sys.executable, "NGINX_BIN": NGINX, "PRUNING_DEFER_CHARTS": "1"}  # as deployed
    log = tmp_path / "replicas.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "deploy/replicas.sh", "2"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{listen}"
    try:
        try:
            wait_healthy(url, proc, test_deadline, "the balancer did not start")
        except pytest.fail.Exception:
            print(log.read_text())  # the script's own log, shown with the failure
            raise
        yield url, run, {f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"}, test_deadline
    finally:
        proc.terminate()  # the script stops nginx and both replicas
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_every_session_stays_on_its_replica_and_sees_its_own_result(balancer, tmp_path):
    from playwright import sync_api

    url, run, replicas, deadline = balancer
    start = time.monotonic()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # A context's first request gets its cookie from nginx; contexts are opened until two of
            # them sit on each replica (the cookie is random: each lands on either replica).
            on = {r: [] for r in replicas}
            opened = 0
            while min(map(len, on.values())) < 2:
                assert opened < 24, f"nginx's cookies did not spread 24 browsers over both replicas: {on}"
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                opened += 1
                assert context.request.get(f"{url}/_stcore/health").ok
                key = next(c["value"] for c in context.cookies() if c["name"] == COOKIE)
                replica = served(run)[key][0][0]
                if len(on[replica]) < 2:
                    on[replica].append((context, key, replica))
                else:
                    context.close()
            a, b = sorted(replicas)
            sessions = [on[a][0], on[b][0], on[a][1], on[b][1]]  # two sessions share each replica

            # Session 1 will lose its websocket and reconnect: the route lets the test close it.
            streams = []
            def relay(ws):
                streams.append(ws.connect_to_server())
            pages = []
            for i, ((context, _, _), pct) in enumerate(zip(sessions, SPARSITIES, strict=True)):
                page = context.new_page()
                if i == 1:
                    page.route_web_socket(re.compile(r".*/_stcore/stream$"), relay)
                page.goto(link(url, pct))
                pages.append(page)

            for page, pct in zip(pages, SPARSITIES, strict=True):  # all four computed at once
                page.get_by_text(f"{pct:.2f}% pruned").wait_for(timeout=left_ms(deadline))
                want = expected_accuracy(pct)
                page.wait_for_function(
                    "want => document.querySelector('[data-testid=\"stMetricValue\"]')?.innerText === want",
                    arg=want, timeout=left_ms(deadline))
            print(f"four results shown after {time.monotonic() - start:.1f} s")

            # Session 0 uploads a file (refused: not a weights file) through the balancer.
            junk = tmp_path / "junk.safetensors"
            junk.write_bytes(os.urandom(64 * 1024))
            pages[0].get_by_text("Use your own model").click()
            pages[0].locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(junk))
            refused = pages[0].get_by_text("junk.safetensors is not a valid .safetensors file")
            refused.wait_for(timeout=left_ms(deadline))
            print(f"upload refused after {time.monotonic() - start:.1f} s")

            # Session 1: the server side of its websocket closes; the page reconnects by itself.
            assert len(streams) == 1
            streams[0].close()
            while len(streams) < 2:
                assert time.monotonic() < deadline, "the page did not reconnect in time"
                pages[1].wait_for_timeout(200)
            pages[1].get_by_role("button", name="20%", exact=True).click()  # the session answers again
            pages[1].get_by_text("20.00% pruned").wait_for(timeout=left_ms(deadline))
            pages[1].wait_for_function(
                "want => document.querySelector('[data-testid=\"stMetricValue\"]')?.innerText === want",
                arg=expected_accuracy(20), timeout=left_ms(deadline))
            print(f"reconnected and moved after {time.monotonic() - start:.1f} s")

            for page, pct in zip(pages, (SPARSITIES[0], 20, *SPARSITIES[2:]), strict=True):  # each its own
                assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == expected_accuracy(pct)
                assert page.get_by_text(f"{pct:.2f}% pruned").count() == 1
                assert not page.locator('[data-testid="stException"]').count()
            for context, _, _ in sessions:
                context.close()
        finally:
            browser.close()

    # nginx's view: every request of a session went to the replica its cookie first landed on.
    # Session 1 reconnected at least once; under heavy load any page may also reconnect on its own
    # (a websocket ping unanswered for 30 s), and each reconnect has to land on the same replica.
    logged_by = time.monotonic() + 10  # nginx logs a websocket when it closes
    while True:
        log = served(run)
        streams_logged = [sum(" /_stcore/stream" in r for _, _, r in log.get(key, [])) for _, key, _ in sessions]
        if (min(streams_logged) >= 1 and streams_logged[1] >= 2) or time.monotonic() > logged_by:
            break
        time.sleep(0.2)
    assert min(streams_logged) >= 1 and streams_logged[1] >= 2, f"websockets logged per session: {streams_logged}"
    time.sleep(1)  # any websocket still closing
    log = served(run)
    for i, (_, key, replica) in enumerate(sessions):
        requests = log[key]
        assert {r for r, _, _ in requests} == {replica}, f"session {i} was served by {requests}"
        assert all(status == 101 for _, status, r in requests if " /_stcore/stream" in r)
        assert len(requests) > 10  # the page, its scripts, host-config, health, the websocket(s)
    uploads = [(status, r) for _, status, r in log[sessions[0][1]] if "/_stcore/upload_file/" in r]
    assert uploads and all(status in (200, 204) for status, _ in uploads), uploads
    assert {replica for _, _, replica in sessions} == replicas  # spread over both
    elapsed = time.monotonic() - start
    print(f"{opened} browsers opened for 2 per replica; four sessions served in {elapsed:.1f} s; "
          f"websockets per session {streams_logged}")
