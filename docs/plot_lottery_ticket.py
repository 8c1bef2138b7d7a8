"""Draw docs/lottery-ticket.png from the measured IMP table in docs/reproductions.md.

    python docs/plot_lottery_ticket.py

Reads the "Frankle & Carbin 2019" table (written by ``python -m pruning reproduce lottery-ticket``)
and plots the ticket and the random re-initialisation against the weights remaining; Chromium
(Debian's, through Playwright, as in the browser tests) renders the Plotly figure to a PNG.
"""

from pathlib import Path
import re

import plotly.graph_objects as go
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
SECTION = "## Frankle & Carbin 2019"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _mean_std(cell: str) -> tuple:
    """'0.981 ± 0.002' -> (0.981, 0.002); 'n/a' -> (None, None)."""
    if cell == "n/a":
        return None, None
    mean, _, std = cell.partition("±")
    return float(mean), float(std or 0)


def measured_rows(text: str) -> list:
    """[(remaining %, ticket, random or None, ticket std, random std or None)] (means and standard
    deviations over seeds) from the section's Markdown table."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"\d+", cells[0]):
            (ticket, ticket_std), (control, control_std) = _mean_std(cells[2]), _mean_std(cells[3])
            rows.append((float(cells[1].rstrip("%")), ticket, control, ticket_std, control_std))
    if not rows:
        raise SystemExit(f"no IMP table under '{SECTION}' in reproductions.md")
    return rows


def figure(rows: list) -> go.Figure:
    remaining = [r[0] for r in rows]
    fig = go.Figure()
    fig.add_scatter(x=remaining, y=[r[1] for r in rows], error_y=dict(array=[r[3] for r in rows]),
                    mode="lines+markers", name="ticket: rewind to θ0 (mean ± std over seeds)")
    control = [r for r in rows if r[2] is not None]
    fig.add_scatter(x=[r[0] for r in control], y=[r[2] for r in control], error_y=dict(array=[r[4] for r in control]),
                    mode="lines+markers", name="same masks, random re-initialisation", line=dict(dash="dash"))
    dense = rows[0][1]
    fig.add_hrect(y0=dense - 0.005, y1=dense + 0.005, fillcolor="grey", opacity=0.15, line_width=0,
                  annotation_text="dense ± 0.5 points", annotation_position="top left")
    fig.update_xaxes(type="log", autorange="reversed", title="weights remaining (%)",
                     tickvals=[100, 51.3, 26.3, 13.5, 7.0])
    fig.update_yaxes(title="test accuracy", tickformat=".1%")
    fig.update_layout(title="IMP on LeNet-300-100 (MNIST), measured by: python -m pruning reproduce lottery-ticket",
                      width=900, height=480, template="plotly_white",
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return fig


def main():
    rows = measured_rows((DOCS / "reproductions.md").read_text())
    html = figure(rows).to_html(include_plotlyjs=True, full_html=True)  # no network: plotly.js inline
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 480})
        page.set_content(html)
        page.locator(".main-svg").first.wait_for()
        page.screenshot(path=str(DOCS / "lottery-ticket.png"))
        browser.close()
    print(f"wrote {DOCS / 'lottery-ticket.png'} from {len(rows)} rounds")


if __name__ == "__main__":
    main()
