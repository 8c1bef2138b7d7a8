"""The explorer in a real browser: `streamlit run app`, headless Chromium, move the prune slider
with the keyboard and wait for the accuracy to change.

UPDATE_SCREENSHOT=1 writes the screenshots to docs/ (screenshot.png, compare.png, supermask.png: the
README's pictures); otherwise they go to a temporary directory.  Skips only where /usr/bin/chromium is missing.
"""

import os
from pathlib import Path
import time

import pytest

from conftest import CHROMIUM, ROOT, explorer_page

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")


def test_slider_moves_the_accuracy(server, tmp_path):
    with explorer_page(server, 1300) as page:
        value = page.locator('[data-testid="stMetricValue"]').first
        value.wait_for(timeout=120_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        before = value.inner_text()
        slider = page.get_by_role("slider").first
        slider.focus()
        start = time.perf_counter()
        slider.press("ArrowRight")  # 89.6% -> 90%, the next stop of the grid
        page.wait_for_function(
            "old => document.querySelector('[data-testid=\"stMetricValue\"]').innerText !== old",
            arg=before, timeout=60_000)
        latency = time.perf_counter() - start
        after = value.inner_text()
        print(f"slider -> accuracy: {before} -> {after} in {latency:.2f} s")
        assert after.endswith("%") and after != before
        page.wait_for_function("() => location.search.includes('sparsity_pct=90.0')", timeout=60_000)  # shareable
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
        page.wait_for_timeout(3000)  # let the charts settle for the picture
        update = os.environ.get("UPDATE_SCREENSHOT") == "1"
        out = ROOT / "docs" / "screenshot.png" if update else tmp_path / "explorer.png"
        page.screenshot(path=str(out))
        assert out.stat().st_size > 10_000
        assert not page.locator('[data-testid="stException"]').count()


def test_an_upload_runs_in_its_worker_and_a_hostile_one_is_one_quoted_line(server, tmp_path):
    """In a real browser: a hostile .safetensors whose tensor name is Markdown (an image and a link)
    is refused in one line that shows the name as text, never as an image or a link; then the
    zoo's own weights uploaded as a file evaluate (in the session's sandboxed worker)."""
    from safetensors.numpy import load_file, save_file

    zoo = ROOT / "pretrained" / "mnist-lenet300-torch" / "final.safetensors"
    state = load_file(str(zoo))
    name = "![x](http://127.0.0.1:9/track.png)[click](http://evil)<b>bold</b>"
    state[name] = state.pop("fc3.bias")
    hostile = tmp_path / "evil.safetensors"
    save_file(state, str(hostile))
    with explorer_page(server, 1300) as page:
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=120_000)
        page.get_by_text("Use your own model").click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(hostile))
        alert = page.locator('[data-testid="stSidebar"] [data-testid="stAlertContainer"]').first
        alert.wait_for(timeout=120_000)
        text = alert.inner_text()
        assert "does not match" in text and name in text and "\n" not in text.strip()  # shown as text
        assert alert.locator("img").count() == 0 and alert.locator("a").count() == 0 and alert.locator("b").count() == 0
        page.screenshot(path=str(tmp_path / "refused.png"))
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(zoo))
        page.get_by_text("your final.safetensors").first.wait_for(timeout=120_000)
        metric = page.locator('[data-testid="stMetricValue"]').first
        assert metric.inner_text().endswith("%")
        page.screenshot(path=str(tmp_path / "uploaded.png"))
        shots = os.environ.get("BROWSER_SHOTS")
        if shots:
            for name in ("refused.png", "uploaded.png"):
                Path(shots, name).write_bytes((tmp_path / name).read_bytes())


def test_compare_tab_shows_two_settings(server, tmp_path):
    """The Compare tab: B's criterion set to movement gives a Jaccard overlap below 1, both points on
    the curves and the per-layer bars; B's settings join the address bar."""
    with explorer_page(server, 1300) as page:
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=120_000)
        page.get_by_role("tab", name="Compare").click()
        page.get_by_text("Accuracy B").wait_for(timeout=120_000)
        criterion = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first
        criterion.click()
        page.keyboard.type("movement")
        page.get_by_role("option", name="movement", exact=True).click()
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('[data-testid="stMetric"]')).some(
                   m => m.innerText.includes('Jaccard overlap') && !m.innerText.includes('1.000'))""",
            timeout=60_000)
        page.wait_for_function("() => location.search.includes('b_strategy=movement')", timeout=60_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
        tabs = page.locator('[data-testid="stTabs"]')
        tabs.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)  # the curves and the per-layer bars
        page.wait_for_timeout(3000)  # let the charts settle for the picture
        assert "B (live)" in tabs.inner_text() and "Jaccard A/B" in tabs.inner_text()
        assert not page.locator('[data-testid="stException"]').count()
        out = ROOT / "docs" / "compare.png" if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "compare.png"
        tabs.screenshot(path=str(out))
        assert out.stat().st_size > 10_000
        shots = os.environ.get("BROWSER_SHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            Path(shots, "compare.png").write_bytes(out.read_bytes())


def test_learned_supermask_from_a_shared_link(server, tmp_path):
    """A link to the learned supermask at 50% pruned on θ0 shows the engine's accuracy of that
    shipped mask on the untrained weights (UPDATE_SCREENSHOT=1: docs/supermask.png)."""
    import pruning

    model = pruning.load_model("mnist-lenet300-torch")
    mask = pruning.compute_mask(model, "learned_supermask", 0.5, scope="layer")
    expected = f"{pruning.evaluate(model, mask, 'init').accuracy:.2%}"
    link = f"{server}/?model=mnist-lenet300-torch&strategy=learned_supermask&scope=layer&weights=init&sparsity_pct=50.0"
    with explorer_page(link, 1300) as page:
        value = page.locator('[data-testid="stMetricValue"]').first
        value.wait_for(timeout=120_000)
        page.wait_for_function("v => document.querySelector('[data-testid=\"stMetricValue\"]').innerText === v",
                               arg=expected, timeout=60_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(3000)  # let the charts settle for the picture
        assert "learned_supermask" in page.locator('[data-testid="stMain"]').inner_text()
        assert not page.locator('[data-testid="stException"]').count()
        update = os.environ.get("UPDATE_SCREENSHOT") == "1"
        out = ROOT / "docs" / "supermask.png" if update else tmp_path / "supermask.png"
        page.screenshot(path=str(out))
        assert out.stat().st_size > 10_000
