"""The Retrain tab in a real browser: Cancel during training stops it at the end of the epoch.

A click on Cancel makes Streamlit start a new script run at once (fast reruns) and stop the one
that is training at its next redraw, which the engine's per-epoch callback triggers; the job's
status tells that orphaned run to stop training.  Needs the MNIST training split.
"""

import os
import time

import pytest

from conftest import CHROMIUM, explorer_page

pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing"),
              pytest.mark.skipif(not os.environ.get("PRUNING_DATA_DIR"), reason="needs PRUNING_DATA_DIR")]


def test_cancel_stops_training_after_the_current_epoch(server, tmp_path):  # noqa: F811
    with explorer_page(server, 2400) as page:
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=120_000)
        page.get_by_role("tab", name="Retrain").click()
        train = page.get_by_role("button", name="Train", exact=True)
        train.wait_for(timeout=60_000)
        epochs = page.get_by_label("Epochs")
        epochs.fill("3")
        epochs.press("Enter")
        page.wait_for_timeout(1000)
        train.click()
        page.get_by_text("epoch 2 of 3").wait_for(timeout=180_000)  # the first epoch is done
        page.get_by_role("button", name="Cancel", exact=True).click()
        start = time.perf_counter()
        page.get_by_text("Cancelled after 1 of 9 epochs").wait_for(timeout=60_000)
        print(f"cancel shown after {time.perf_counter() - start:.1f} s")
        page.wait_for_timeout(20_000)  # long enough for more epochs, had training gone on
        assert page.get_by_text("Cancelled after 1 of 9 epochs").count() == 1
        labels = page.locator('[data-testid="stMetricLabel"]')
        assert labels.filter(has_text="rewind to θ0").count() == 1  # its result is kept
        assert labels.filter(has_text="fine-tune from θf").count() == 0  # never started
        assert page.get_by_text("—", exact=True).count() >= 5  # the table's cells of the runs not trained
        page.screenshot(path=str(tmp_path / "cancelled.png"))
        assert not page.locator('[data-testid="stException"]').count()
