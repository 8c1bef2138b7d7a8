"""The IMP rounds tab in a real browser: Step forward moves the round shown, Play advances the rounds
on its own (the fragment's timer), Pause stops them, and Play stops by itself on the last round.

UPDATE_SCREENSHOT=1 writes the tab's picture to docs/imp-player.png; otherwise it goes to a
temporary directory.
"""

import os
import re
import time

import pytest

import pruning
from conftest import CHROMIUM, ROOT, explorer_page

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing")
MODEL = "mnist-lenet300-torch"
LAST = len(pruning.load_imp_run(MODEL)) - 1  # the shipped run's last round


def shown(page) -> int:
    text = page.locator("strong").get_by_text(re.compile(rf"^Round \d+ of {LAST}$")).first.inner_text()
    return int(re.search(r"Round (\d+) of", text).group(1))


def test_imp_tab_steps_and_plays(server, tmp_path):  # noqa: F811
    start = time.perf_counter()
    with explorer_page(f"{server}/?model={MODEL}", 2300) as page:
        page.set_default_timeout(30_000)
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=40_000)
        page.get_by_role("tab", name="IMP rounds").click()
        page.get_by_text(f"Round 0 of {LAST}", exact=True).wait_for()
        page.get_by_role("button", name="Step forward").click()
        page.get_by_text(f"Round 1 of {LAST}", exact=True).wait_for()
        page.get_by_role("button", name="Play").click()
        page.get_by_text(f"Round 3 of {LAST}", exact=True).wait_for(timeout=15_000)  # a round a second, untouched
        page.get_by_role("button", name="Pause").click()
        page.get_by_role("button", name="Play").wait_for()
        stopped = shown(page)
        page.wait_for_timeout(2500)  # paused: two timer periods pass without a new round
        assert shown(page) == stopped
        page.get_by_role("slider").last.focus()  # the round slider: scrub with the keyboard
        step = 1 if stopped < 6 else -1
        for r in range(stopped + step, 6 + step, step):  # one key at a time: each press is a rerun
            page.keyboard.press("ArrowRight" if step > 0 else "ArrowLeft")
            page.get_by_text(f"Round {r} of {LAST}", exact=True).wait_for()
        page.get_by_text(f"Round 6 of {LAST}", exact=True).wait_for()
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
        page.add_style_tag(content='[data-testid="stHeader"] { display: none; }')  # not over the picture
        page.wait_for_timeout(1500)  # let the charts settle for the picture
        assert not page.locator('[data-testid="stException"]').count()
        update = os.environ.get("UPDATE_SCREENSHOT") == "1"
        out = ROOT / "docs" / "imp-player.png" if update else tmp_path / "imp-player.png"
        page.locator('[data-testid="stTabs"]').screenshot(path=str(out))
        assert out.stat().st_size > 10_000
        for r in range(7, LAST - 1):  # to two rounds before the last, then Play: timer ticks reach the last
            page.keyboard.press("ArrowRight")  # round, and it stops there
            page.get_by_text(f"Round {r} of {LAST}", exact=True).wait_for()
        page.get_by_role("button", name="Play").click()
        page.get_by_text(f"Round {LAST} of {LAST}", exact=True).wait_for(timeout=15_000)
        page.get_by_role("button", name="Play").wait_for(timeout=15_000)  # Pause became Play again
        page.wait_for_timeout(2500)
        assert shown(page) == LAST and not page.locator('[data-testid="stException"]').count()
    print(f"browser check: {time.perf_counter() - start:.1f} s")
