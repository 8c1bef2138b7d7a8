"""Everyone can read it (issue 18), in a real browser: the page and its charts follow the viewer's
light or dark theme, the page works on a phone-sized screen, and every control is reachable and
operable from the keyboard with a visible focus.

One Streamlit server serves the module's tests.  UPDATE_SCREENSHOT=1 writes the dark-theme picture
to docs/screenshot-dark.png (test_browser.py writes the light one, docs/screenshot.png) and the phone
one to docs/phone.png; BROWSER_SHOTS
names a folder for the other pictures.  Skips only where /usr/bin/chromium is missing.
"""

import io
import os
from pathlib import Path

import pytest

from conftest import ARGS, CHROMIUM, ROOT, running_explorer

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")

METRIC = '[data-testid="stMetricValue"]'
WAIT = 45_000  # ms: each wait (and so each test) stays well under a minute on a busy two-core machine


@pytest.fixture(scope="module")
def server():
    with running_explorer() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(server, browser):
    """open_page(**context options) -> a page showing the explorer, its first number drawn."""
    contexts = []

    def open_(**options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT)
        page.goto(server)
        page.locator(METRIC).first.wait_for()
        return page

    yield open_
    for context in contexts:
        context.close()


def shot(page, name: str, tmp_path, docs: str | None = None) -> Path:
    """Screenshot to docs/<docs> with UPDATE_SCREENSHOT=1, else to tmp_path (copied to BROWSER_SHOTS)."""
    update = docs and os.environ.get("UPDATE_SCREENSHOT") == "1"
    out = ROOT / "docs" / docs if update else tmp_path / name
    page.screenshot(path=str(out))
    if os.environ.get("BROWSER_SHOTS"):
        Path(os.environ["BROWSER_SHOTS"]).mkdir(parents=True, exist_ok=True)
        Path(os.environ["BROWSER_SHOTS"], name).write_bytes(out.read_bytes())
    return out


def settled(page, pause: int = 1500):
    """Wait until the script run is over and the charts are drawn (and ``pause`` ms more)."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.wait_for_selector(".js-plotly-plot")
    page.wait_for_timeout(pause)


def changed(page, before: str) -> str:
    """Wait for the headline accuracy to differ from ``before``; returns the new one."""
    page.wait_for_function(f"old => document.querySelector('{METRIC}').innerText !== old", arg=before)
    value = page.locator(METRIC).first.inner_text()
    assert value.endswith("%")
    return value


def rgb(css: str) -> tuple:
    """'rgb(1, 2, 3)' or 'rgba(1, 2, 3, 1)' -> (1, 2, 3)."""
    return tuple(int(float(v)) for v in css[css.index("(") + 1:-1].split(",")[:3])


def luminance(colour: tuple) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    c = [v / 255 for v in colour]
    c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def contrast(a: tuple, b: tuple) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_page_and_charts_follow_the_viewers_colour_scheme(open_page, scheme, tmp_path):
    """The browser asks for light or dark: the page background follows, the charts' axis text reads
    on it (contrast at least 4.5:1) and every chart has its text alternative."""
    page = open_page(viewport={"width": 1400, "height": 1300}, color_scheme=scheme)
    before = page.locator(METRIC).first.inner_text()
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("ArrowRight")  # 89.6% -> 90%: the same view as docs/screenshot.png
    changed(page, before)
    settled(page)
    background = rgb(page.evaluate("getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor"))
    assert (luminance(background) < 0.05) if scheme == "dark" else (luminance(background) > 0.9), background
    ticks = page.locator(".js-plotly-plot .xtick text")
    assert ticks.count() > 0
    for i in range(min(ticks.count(), 4)):
        fill = rgb(ticks.nth(i).evaluate("e => getComputedStyle(e).fill"))
        assert contrast(fill, background) >= 4.5, (fill, background)
    charts = page.locator('[data-testid="stMain"] .js-plotly-plot').count()
    assert page.get_by_text("Chart as text").count() == charts == 4  # curve, layers and the Weights tab's two
    assert page.locator('[data-testid="stPlotlyChart"][aria-label*="Dense accuracy"]').count() == 1  # its name
    assert not page.locator('[data-testid="stException"]').count()
    out = shot(page, f"explorer-{scheme}.png", tmp_path, "screenshot-dark.png" if scheme == "dark" else None)
    assert out.stat().st_size > 10_000
    page.get_by_text("Chart as text").first.click()  # its content is drawn in the run that opening it asks for
    page.locator('[data-testid="stTable"] td').first.wait_for()
    page.get_by_text("Dense accuracy").first.wait_for()
    assert page.locator('[data-testid="stTable"] td').count() > 10


def test_phone_sized_screen(open_page, tmp_path):
    """390 x 844 (a phone): the accuracy shows without sideways scrolling, the sidebar opens and a
    control in it changes the accuracy."""
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2)
    metric = page.locator(METRIC).first
    before = metric.inner_text()
    assert before.endswith("%")
    box = metric.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    settled(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    widths = page.locator(".js-plotly-plot").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
    assert widths and max(widths) <= 390
    shot(page, "phone.png", tmp_path, "phone.png")
    page.locator('[data-testid="stExpandSidebarButton"]').tap()
    sidebar = page.locator('[data-testid="stSidebar"]')
    preset = sidebar.get_by_role("button", name="99.33%", exact=True)
    preset.scroll_into_view_if_needed()
    preset.wait_for(state="visible")
    assert sidebar.bounding_box()["width"] <= 390
    shot(page, "phone-sidebar.png", tmp_path)
    preset.tap()
    after = changed(page, before)
    print(f"phone: {before} -> {after}")
    assert not page.locator('[data-testid="stException"]').count()


FOCUSED = r"""() => {
  const e = document.activeElement;
  const widget = e.closest('[data-testid="stSelectbox"], [data-testid="stRadio"], [data-testid="stSlider"], '
                           + '[data-testid="stNumberInput"], [data-testid="stTextInput"]');
  const label = widget && widget.querySelector('[data-testid="stWidgetLabel"]');
  const target = e.closest('label') || e.closest('[data-testid="stSlider"]') || e;
  const r = target.getBoundingClientRect();
  return {tag: e.tagName, role: e.getAttribute('role'), name: e.getAttribute('aria-label') || '',
          label: label ? label.innerText.trim() : '', text: (e.innerText || '').trim().split('\n').pop().slice(0, 40),
          testid: (e.closest('[data-testid]') || e).dataset.testid || '', visible: e.matches(':focus-visible'),
          box: {x: Math.max(r.x - 6, 0), y: Math.max(r.y - 6, 0), width: r.width + 12, height: r.height + 12}};
}"""


def keys_to(page, matches, back=False, seen=None, limit=80) -> dict:
    """Press Tab (Shift+Tab with ``back``) until the focused element ``matches`` (``FOCUSED``'s dict);
    every element passed on the way is appended to ``seen``."""
    seen = [] if seen is None else seen
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        info = page.evaluate(FOCUSED)
        seen.append(info)
        if matches(info):
            return info
    pytest.fail(f"Tab never reached the control; last: {seen[-5:]}")


def choose_option(page, text):
    """In a focused select box: open it, type to filter, take the first match."""
    page.keyboard.press("ArrowDown")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def open_tab(page, name: str, back: bool = False):
    """Open tab ``name`` from the keyboard: Tab (Shift+Tab from inside a tab) to the tab list,
    arrow keys to the tab, Enter."""
    info = keys_to(page, lambda i: i["role"] == "tab", back)
    for _ in range(12):
        if info["text"] == name:
            selected = f"() => [...document.querySelectorAll('[role=tab]')].some(t => t.innerText.trim() === {name!r}" \
                       " && t.getAttribute('aria-selected') === 'true')"
            for _ in range(3):  # a busy page may miss a key press: Enter again while the tab has the focus
                page.keyboard.press("Enter")
                try:
                    page.wait_for_function(selected, timeout=10_000)
                    return
                except Exception:  # noqa: BLE001  playwright's TimeoutError: try once more
                    continue
            pytest.fail(f"Enter did not open the tab {name!r}")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("old => (document.activeElement.innerText || '').trim() !== old", arg=info["text"])
        info = page.evaluate(FOCUSED)
    pytest.fail(f"no tab {name!r}")


def focus_shows(page, info: dict) -> int:
    """Pixels of the focused control's area (measured once the layout is still) that change when the
    keyboard moves the focus on (Tab) and back (Shift+Tab): 0 means the focus does not show."""
    from PIL import Image, ImageChops

    box = info["box"]
    for _ in range(50):  # an expander opening above moves the control: wait until it stays put
        page.wait_for_timeout(100)
        box, moved_from = page.evaluate(FOCUSED)["box"], box
        if box == moved_from:
            break
    focused = Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
    page.keyboard.press("Tab")
    page.wait_for_timeout(200)
    away = Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
    page.keyboard.press("Shift+Tab")
    page.wait_for_timeout(200)
    diff = ImageChops.difference(focused, away).convert("L")
    return sum(1 for v in diff.get_flattened_data() if v > 24)


def test_every_control_is_reachable_and_operable_from_the_keyboard(open_page, tmp_path):
    """Tab and Shift+Tab alone reach every sidebar control, a chart's toolbar and text and the tabs; keys change
    the evaluation images, the sparsity (arrow keys on the slider), the scope, the criterion, the
    model and a preset, and open a tab; each change moves the accuracy, and the focus shows
    on every kind of control."""
    page = open_page(viewport={"width": 1400, "height": 1000})
    settled(page, 300)
    accuracy = page.locator(METRIC).first.inner_text()
    seen = []  # every element the keyboard focus landed on

    def tab_to(matches, back=False):
        return keys_to(page, matches, back, seen)

    def focus_visible(info):
        pixels = focus_shows(page, info)
        assert pixels >= 30, f"no visible focus on {info} ({pixels} pixels change)"

    def choose(text):
        choose_option(page, text)

    # forward through the sidebar to its last control; 500 images keep the rest of the test quick
    info = tab_to(lambda i: i["role"] == "combobox" and i["name"] == "Evaluation images")
    focus_visible(info)
    choose("500")
    accuracy = changed(page, accuracy)
    settled(page, 300)
    # and back up, changing each control on the way
    info = tab_to(lambda i: i["label"].startswith("Prune") and i["testid"] == "stSlider", back=True)
    focus_visible(info)
    page.keyboard.press("ArrowRight")  # one stop of the slider's grid: 89.6% -> 90%
    accuracy = changed(page, accuracy)
    settled(page, 300)
    info = tab_to(lambda i: i["label"] == "Scope" and i["tag"] == "INPUT", back=True)
    focus_visible(info)
    page.keyboard.press("ArrowRight")  # layer -> global
    accuracy = changed(page, accuracy)
    settled(page, 300)
    info = tab_to(lambda i: i["role"] == "combobox" and i["name"] == "Criterion", back=True)
    choose("movement")
    accuracy = changed(page, accuracy)
    settled(page, 300)
    info = tab_to(lambda i: i["role"] == "combobox" and i["name"] == "Model", back=True)
    focus_visible(info)
    choose("lenet5")  # another MNIST model: the 500 images stay
    page.get_by_text("mnist-lenet5-torch").first.wait_for()
    accuracy = changed(page, accuracy)
    settled(page, 300)
    # forward again: a preset, then into the page: a chart's text alternative and the tabs
    info = tab_to(lambda i: i["text"] == "20%")  # the presets are buttons
    focus_visible(info)
    page.keyboard.press("Enter")
    accuracy = changed(page, accuracy)
    settled(page, 300)
    info = tab_to(lambda i: i["name"] == "Download plot as a PNG")  # the chart's own toolbar
    focus_visible(info)
    info = tab_to(lambda i: i["text"] == "Chart as text")
    focus_visible(info)
    page.keyboard.press("Enter")  # opens it: its content is drawn in the run that this asks for
    page.locator('[data-testid="stTable"] td').first.wait_for()  # the first chart's numbers, opened by key
    page.get_by_text("Dense accuracy").first.wait_for()  # and its description
    settled(page, 300)
    info = tab_to(lambda i: i["role"] == "tab")
    focus_visible(info)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # Weights -> First layer -> Predictions
    page.keyboard.press("Enter")
    page.get_by_text("predictions changed").wait_for()

    labels = {i["label"] or i["name"] or i["text"] for i in seen}
    for control in ("Model", "Criterion", "Scope", "Granularity", "Mask applied to", "Prune (% of weights)",
                    "exact %", "20%", "55.78%", "89.6%", "99.33%", "Evaluation images", "Use your own model"):
        assert control in labels, (control, labels)
    unseen_focus = [i for i in seen if not i["visible"]]
    assert not unseen_focus, unseen_focus  # wherever Tab lands, the browser counts the focus as visible
    shot(page, "keyboard.png", tmp_path)
    assert not page.locator('[data-testid="stException"]').count()


def test_the_tabs_controls_work_from_the_keyboard(open_page, tmp_path):
    """In the tabs too, keys alone operate a control of each: the IMP player's Step forward, the
    Compare tab's criterion B, the Sensitivity tab's Apply button and an Export download."""
    page = open_page(viewport={"width": 1400, "height": 1000})
    settled(page, 300)
    main = page.locator('[data-testid="stMain"]')

    open_tab(page, "IMP rounds")
    page.get_by_text("Round 0 of").first.wait_for()
    assert page.get_by_role("tab", name="IMP rounds").get_attribute("aria-selected") == "true"
    settled(page, 300)
    keys_to(page, lambda i: i["text"] == "Step forward")
    page.keyboard.press("Enter")
    page.get_by_text("Round 1 of").first.wait_for()

    open_tab(page, "Compare", back=True)
    page.get_by_text("Accuracy B").wait_for()
    settled(page, 300)
    in_main = "() => !!document.activeElement.closest('[data-testid=stMain]')"
    keys_to(page, lambda i: i["role"] == "combobox" and i["name"] == "Criterion" and page.evaluate(in_main))
    choose_option(page, "movement")
    page.wait_for_function("() => location.search.includes('b_strategy=movement')", timeout=WAIT)
    assert "Jaccard" in main.inner_text()

    open_tab(page, "Sensitivity", back=True)
    page.get_by_role("button", name="Apply these budgets to the current mask").wait_for()
    settled(page, 300)
    keys_to(page, lambda i: i["text"] == "Apply these budgets to the current mask")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.search.includes('scope=sensitivity')", timeout=WAIT)

    open_tab(page, "Export", back=True)
    settled(page, 300)
    keys_to(page, lambda i: i["text"].startswith("Mask (.npz"))
    with page.expect_download(timeout=WAIT) as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(".npz")
    assert not page.locator('[data-testid="stException"]').count()
    shot(page, "keyboard-tabs.png", tmp_path)
