"""Batch-norm recalibration in a real browser: open the ResNet-20 at 90% pruned (global scope) by its
link, flip the sidebar toggle and wait for the recalibrated accuracy beside the plain one.

UPDATE_SCREENSHOT=1 writes the picture to docs/bn-recalibration.png; otherwise to a temporary
directory.  Needs CIFAR-10 (PRUNING_DATA_DIR) and /usr/bin/chromium.
"""

import os
from pathlib import Path

import pytest

from pruning import data
from conftest import CHROMIUM, ROOT, explorer_page

pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing"),
              pytest.mark.skipif(not data.available("cifar10", "train"), reason="needs PRUNING_DATA_DIR (CIFAR-10)")]


def _percent(page, label: str) -> float:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return float(metric.locator('[data-testid="stMetricValue"]').inner_text().rstrip("%")) / 100


def test_toggle_shows_the_recalibrated_accuracy(server, tmp_path):  # noqa: F811
    link = f"{server}/?model=cifar10-resnet20-torch&strategy=large_final&scope=global&sparsity_pct=90.0"
    with explorer_page(link, 1300) as page:
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=300_000)
        toggle = page.locator('[data-testid="stSidebar"]').get_by_text("Re-estimate batch-norm statistics")
        toggle.wait_for(timeout=300_000)
        toggle.click()
        page.get_by_text("With recalibration").wait_for(timeout=300_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=300_000)
        without, after = _percent(page, "Without recalibration"), _percent(page, "With recalibration")
        print(f"90% global: {without:.2%} without, {after:.2%} with recalibration")
        assert after > without + 0.2  # the dense network's statistics are far off at 90%
        assert not page.locator('[data-testid="stException"]').count()
        page.wait_for_timeout(3000)  # let the charts settle for the picture
        update = os.environ.get("UPDATE_SCREENSHOT") == "1"
        out = ROOT / "docs" / "bn-recalibration.png" if update else tmp_path / "bn.png"
        page.screenshot(path=str(out))
        assert Path(out).stat().st_size > 10_000
