"""The Sensitivity tab in a real browser: the heatmap draws with its numbers, a target gives a budget
table, and the apply button switches the sidebar to the sensitivity scope (and the link with it).

UPDATE_SCREENSHOT=1 writes the tab's picture to docs/sensitivity.png (SENSITIVITY_MODEL picks the
model, default mnist-lenet300-torch); otherwise it goes to a temporary directory.
"""

import os
from pathlib import Path

import pytest

from conftest import CHROMIUM, ROOT, explorer_page

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing")
MODEL = os.environ.get("SENSITIVITY_MODEL", "mnist-lenet300-torch")  # docs/sensitivity.png: cifar10-resnet20-torch


def test_sensitivity_tab_heatmap_and_apply(server, tmp_path):  # noqa: F811
    with explorer_page(f"{server}/?model={MODEL}", 2000) as page:
        page.set_default_timeout(120_000)  # a loaded, shared CPU: every step may wait for a rerun
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=120_000)
        page.get_by_role("tab", name="Sensitivity").click(timeout=120_000)
        page.get_by_text("Per-layer budgets for a target").wait_for(timeout=120_000)
        tabs = page.locator('[data-testid="stTabs"]')
        tabs.locator(".js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
        assert tabs.locator(".js-plotly-plot .heatmaplayer text").count() >= 12  # the numbers as text
        box = tabs.get_by_test_id("stNumberInputField").first
        box.fill("90")
        box.press("Enter")
        page.get_by_text("90.00% of the weights overall").wait_for(timeout=120_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
        page.get_by_role("button", name="Apply these budgets to the current mask").click(timeout=120_000)
        page.wait_for_function("() => location.search.includes('scope=sensitivity')", timeout=60_000)
        page.wait_for_function("() => location.search.includes('sparsity_pct=90')", timeout=60_000)
        page.get_by_text("The sidebar is on the sensitivity scope").wait_for(timeout=120_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
        page.mouse.move(0, 0)  # the Apply button's tooltip off the picture
        page.locator("body").press("Escape")
        page.wait_for_timeout(2000)  # let the charts settle for the picture
        assert not page.locator('[data-testid="stException"]').count()
        update = os.environ.get("UPDATE_SCREENSHOT") == "1"
        out = ROOT / "docs" / "sensitivity.png" if update else tmp_path / "sensitivity.png"
        tabs.screenshot(path=str(out))
        assert out.stat().st_size > 10_000
        shots = os.environ.get("BROWSER_SHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            Path(shots, "sensitivity.png").write_bytes(out.read_bytes())
