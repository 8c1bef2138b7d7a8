"""Size one replica for docs/deployment.md: the resident memory (from /proc) and CPU time of one
`streamlit run app` while a real browser session visits the default model, then every zoo model.

    PYTHONPATH=. PRUNING_DATA_DIR=/path/to/datasets python deploy/measure.py [--markdown]

One headless Chromium page (/usr/bin/chromium) opens the explorer, waits for the accuracy and for
the page to finish running, then opens ``?model=NAME`` for each zoo model in turn (a new session
each time, as a student choosing models would cause: the process-wide caches stay), and last
uploads the zoo's LeNet-300-100 weights as a file (evaluated in a sandboxed worker).  After each
step the server's VmRSS and VmHWM (peak) are read from /proc/PID/status, with the RSS of its
child processes (the upload's sandboxed worker) and its user+system CPU seconds from
/proc/PID/stat.  Nothing is downloaded; CIFAR-10 models need PRUNING_DATA_DIR.
"""

import argparse
import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
TICK = os.sysconf("SC_CLK_TCK")
UPLOAD = ROOT / "pretrained" / "mnist-lenet300-torch" / "final.safetensors"  # the zoo's own weights, uploaded


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children(pid: int) -> list:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out + [g for c in out for g in children(c)]


def sample(pid: int, step: str, started: float) -> dict:
    kids = children(pid)
    return {"step": step, "rss_mb": status_kb(pid, "VmRSS") / 1024, "peak_mb": status_kb(pid, "VmHWM") / 1024,
            "children_mb": sum(status_kb(k, "VmRSS") for k in kids) / 1024, "children": len(kids),
            "cpu_s": cpu_s(pid), "wall_s": time.monotonic() - started}


def zoo() -> list:
    return sorted(p.parent.name for p in (ROOT / "pretrained").glob("*/model.json"))


def shown(page, timeout_ms: int = 300_000):
    """Wait until the page shows an accuracy and Streamlit has finished running it."""
    page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContainer"]')
    return [errors.nth(i).inner_text()[:200] for i in range(errors.count())]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON lines")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true",
                               "--browser.gatherUsageStats", "false"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(5)  # settle
        rows.append(sample(server.pid, "idle (started, no session)", started))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            notes = shown(page)
            rows.append({**sample(server.pid, "default page (mnist-lenet300-torch)", started), "notes": notes})
            for name in zoo():
                page.goto(f"{url}/?model={name}")
                notes = shown(page)
                rows.append({**sample(server.pid, f"after {name}", started), "notes": notes})
            # an upload: its sandboxed worker (a child process) loads and evaluates the file
            page.goto(url)
            shown(page)
            page.get_by_text("Use your own model").click()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(UPLOAD))
            page.get_by_text("your final.safetensors").first.wait_for(timeout=300_000)
            notes = shown(page)
            rows.append({**sample(server.pid, "an upload evaluated (its worker: children)", started), "notes": notes})
            browser.close()
        time.sleep(5)
        rows.append(sample(server.pid, "all zoo models visited, browser closed", started))
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.markdown:
        print("| step | RSS | peak RSS | server CPU s (cumulative) | notes |")
        print("|---|---|---|---|---|")
        for r in rows:
            notes = "; ".join(r.get("notes", [])).replace("|", "/").replace("\n", " ")
            print(f"| {r['step']} | {r['rss_mb']:,.0f} MB | {r['peak_mb']:,.0f} MB | {r['cpu_s']:.1f} | {notes} |")
    else:
        for r in rows:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
